// The WKV recurrences of RWKV-4, RWKV-5/6 and RWKV-7, advanced over T tokens from a state
// that the caller owns (RNN mode is T = 1). Projections around them are batched elsewhere;
// only these scans couple tokens. Layouts: token-major arrays [T][channels].
#pragma once
#include <cstddef>
#include <functional>
#include <span>

namespace rwkv::cpu {

// RWKV-4 (spec §2.3), stable form per channel. w = −exp(time_decay) (< 0), u = time_first.
// State per channel: aa, bb, pp (pp starts at −1e30). y: [T][A].
void wkv4(size_t T, size_t A, const float* k, const float* v, const float* w, const float* u,
          float* aa, float* bb, float* pp, float* y);

// Several runs of tokens in the same arrays (a batched decode step: one token per state): run
// j's `count` tokens start at token `begin` and continue its own state S. The *_runs scans share
// every run's heads out over the thread pool as one job.
struct WkvRun {
  size_t begin, count;
  float* S;
};

// RWKV-5/6 (rwkv-spec-v5-v6.md §4.1): per head, S[j=key][i=value],
// y_i = Σ_j r_j (u_j k_j v_i + S_ji);  S_ji ← k_j v_i + w_j S_ji.
// w: per-channel decay in (0,1); w_stride = 0 when constant over tokens (v5), C when per token (v6).
void wkv5(size_t T, size_t H, size_t N, const float* r, const float* k, const float* v,
          const float* w, size_t w_stride, const float* u, float* S, float* y);
void wkv5_runs(std::span<const WkvRun> runs, size_t H, size_t N, const float* r, const float* k, const float* v,
               const float* w, size_t w_stride, const float* u, float* y);

// RWKV-7 (spec §3.3): per head, S[i=value][j=key],
// S ← S·diag(ω) + (S·a) bᵀ + v kᵀ;  y = S·r (new state).
void wkv7(size_t T, size_t H, size_t N, const float* r, const float* w, const float* k,
          const float* v, const float* a, const float* b, float* S, float* y);
// before(begin, count, h) and after(…), when given, run in the same job just before and after
// the scan of head h of the run of `count` tokens from `begin` (the caller's per-head work on
// the same slices: in decode, one pool job instead of three, its serial work shared out).
using HeadFn = std::function<void(size_t begin, size_t count, size_t h)>;
void wkv7_runs(std::span<const WkvRun> runs, size_t H, size_t N, const float* r, const float* w, const float* k,
               const float* v, const float* a, const float* b, float* y, const HeadFn& before = {},
               const HeadFn& after = {});


}  // namespace rwkv::cpu
