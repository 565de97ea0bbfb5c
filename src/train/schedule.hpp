// The learning-rate schedules of the official trainers: warmup, then cosine decay (RWKV-7,
// spec §7.2) or exponential decay (RWKV-4, spec §7.1), as a function of the step. No state.
#pragma once
#include <cstdint>
#include <string>

namespace rwkv::train {

enum class ScheduleKind { Cosine, Exponential };

// "cosine" or "exp"; throws rwkv::Error otherwise.
ScheduleKind schedule_kind_from_string(const std::string& s);
const char* schedule_kind_name(ScheduleKind k);

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::Cosine;
  double lr_init = 6e-4, lr_final = 6e-5;
  int64_t warmup_steps = 10;  // 0 = none
  int64_t total_steps = 1;
};

// The rate of optimizer step `step` (0-based: the number of steps already taken).
//   Cosine (RWKV-7 trainer; progress over steps equals its progress over tokens, B and T fixed):
//     p = clamp((step − warmup)/(total − warmup), 0, 1), f = lr_final/lr_init,
//     lr = lr_init·((0.5 + f/2) + (0.5 − f/2)·cos(π·p));  during warmup lr·(0.01 + 0.99·step/warmup).
//   Exponential (RWKV-4 trainer): p = clamp((step − warmup + 1)/(total − warmup), 0, 1),
//     lr = lr_init·exp(ln(f)·p) (linear when either end is 0, constant when they are equal);
//     during warmup lr·(0.2 + 0.8·step/warmup).
double learning_rate(const LrSchedule& s, int64_t step);

}  // namespace rwkv::train
