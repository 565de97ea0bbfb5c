// Learning-rate schedules (spec §7.1, §7.2).
#include "train/schedule.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "io/error.hpp"

namespace rwkv::train {

ScheduleKind schedule_kind_from_string(const std::string& s) {
  if (s == "cosine") return ScheduleKind::Cosine;
  if (s == "exp") return ScheduleKind::Exponential;
  fail("unknown learning-rate schedule '", s, "' (expected cosine or exp)");
}

const char* schedule_kind_name(ScheduleKind k) { return k == ScheduleKind::Cosine ? "cosine" : "exp"; }

namespace {
// a/b clamped to [0, 1]; a run no longer than its warmup has finished decaying after it.
double progress(double a, double b) {
  if (b <= 0) return a >= 0 ? 1.0 : 0.0;
  return std::clamp(a / b, 0.0, 1.0);
}
}  // namespace

double learning_rate(const LrSchedule& s, int64_t step) {
  const double w = double(s.warmup_steps), t = double(step), total = double(s.total_steps);
  double lr;
  if (s.kind == ScheduleKind::Cosine) {
    const double p = progress(t - w, total - w);
    const double f = s.lr_init != 0 ? s.lr_final / s.lr_init : 0.0;
    lr = s.lr_init * ((0.5 + f / 2) + (0.5 - f / 2) * std::cos(std::numbers::pi * p));
    if (step < s.warmup_steps) lr *= 0.01 + 0.99 * t / w;
  } else {
    if (s.lr_final == s.lr_init) {
      lr = s.lr_init;
    } else {
      const double p = progress(t - w + 1, total - w);
      if (s.lr_final == 0 || s.lr_init == 0)
        lr = s.lr_init + (s.lr_final - s.lr_init) * p;
      else
        lr = s.lr_init * std::exp(std::log(s.lr_final / s.lr_init) * p);
    }
    if (step < s.warmup_steps) lr *= 0.2 + 0.8 * t / w;
  }
  return lr;
}

}  // namespace rwkv::train
