// The WKV scans on the CPU: the SIMD kernels (simd.hpp), channels (RWKV-4) or heads (RWKV-5/6
// and RWKV-7) shared out over the thread pool.
#include "kernels/cpu/wkv.hpp"

#include <algorithm>

#include "kernels/cpu/simd.hpp"
#include "kernels/cpu/thread_pool.hpp"

namespace rwkv::cpu {

// Channels are independent scans: vectors of them are shared out over the thread pool, in
// pieces of at least ~32k channel-tokens (one token's scan, a microsecond, runs where it is
// called: handing it to the pool costs more).
void wkv4(size_t T, size_t A, const float* k, const float* v, const float* w, const float* u,
          float* aa, float* bb, float* pp, float* y) {
  const size_t grain = std::max<size_t>(64, 32768 / std::max<size_t>(T, 1));
  parallel_for(A, grain, [&](size_t c0, size_t c1) { simd::wkv4_channels(T, A, c0, c1, k, v, w, u, aa, bb, pp, y); });
}

// Heads are independent, and so are runs: fn(run, h, next) for every (run, head) pair, shared
// out over the thread pool as one job (next: the run of the pair after it, or null). In decode
// the job's states (`state_bytes` each) go on the trail of jobs (follower_hint): the job before
// it has a thread that would wait meanwhile prefetch its share of them. They come from memory,
// as the weights do, and a thread's first head found none of its rows fetched (each scan asks
// for the next pair's).
template <class Fn>
void each_run_head(std::span<const WkvRun> runs, size_t H, size_t state_bytes, const Fn& fn) {
  size_t tokens = 0;
  for (const WkvRun& run : runs) tokens += run.count;
  std::span<const Region> then;
  if (tokens < kTrailTokens) {
    Region states[kMaxRegions];
    const size_t n = std::min(runs.size(), kMaxRegions);
    for (size_t i = 0; i < n; ++i) states[i] = {runs[i].S, state_bytes};
    then = follower_hint({states, n});
  }
  parallel_for(runs.size() * H, 1, [&](size_t u0, size_t u1) {
    for (size_t u = u0; u < u1; ++u) fn(runs[u / H], u % H, u + 1 < runs.size() * H ? &runs[(u + 1) / H] : nullptr);
  }, Split::Contiguous, then);
}

void wkv5(size_t T, size_t H, size_t N, const float* r, const float* k, const float* v,
          const float* w, size_t w_stride, const float* u, float* S, float* y) {
  const WkvRun run{0, T, S};
  wkv5_runs({&run, 1}, H, N, r, k, v, w, w_stride, u, y);
}

void wkv5_runs(std::span<const WkvRun> runs, size_t H, size_t N, const float* r, const float* k, const float* v,
               const float* w, size_t w_stride, const float* u, float* y) {
  const size_t C = H * N;
  each_run_head(runs, H, H * N * N * sizeof(float), [&](const WkvRun& run, size_t h, const WkvRun*) {
    const size_t o = run.begin * C + h * N, ow = run.begin * w_stride + h * N;
    simd::wkv5_head(run.count, C, w_stride, N, r + o, k + o, v + o, w + ow, u + h * N, run.S + h * N * N, y + o);
  });
}

void wkv7(size_t T, size_t H, size_t N, const float* r, const float* w, const float* k,
          const float* v, const float* a, const float* b, float* S, float* y) {
  const WkvRun run{0, T, S};
  wkv7_runs({&run, 1}, H, N, r, w, k, v, a, b, y);
}

void wkv7_runs(std::span<const WkvRun> runs, size_t H, size_t N, const float* r, const float* w, const float* k,
               const float* v, const float* a, const float* b, float* y, const HeadFn& before, const HeadFn& after) {
  const size_t C = H * N;
  each_run_head(runs, H, H * N * N * sizeof(float), [&](const WkvRun& run, size_t h, const WkvRun* next) {
    if (before) before(run.begin, run.count, h);
    const size_t o = run.begin * C + h * N;
    // (The state scanned next: this run's next head, or the next run's first.)
    const float* S_next = next ? next->S + (h + 1) % H * N * N : nullptr;
    simd::wkv7_head(run.count, C, N, r + o, w + o, k + o, v + o, a + o, b + o, run.S + h * N * N, y + o, S_next);
    if (after) after(run.begin, run.count, h);
  });
}

}  // namespace rwkv::cpu
