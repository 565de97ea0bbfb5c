// A persistent pool of worker threads for the data-parallel kernels (matrix rows, WKV heads).
// The caller takes part in the work. Workers spin briefly between jobs (one token's forward
// pass issues a hundred jobs a few microseconds apart) and then sleep, so an idle engine costs
// nothing. Calls from several threads at once are safe: one runs on the pool, the others run
// serially on their own thread; so does a call made inside a part of a job.
#pragma once
#include <cstddef>
#include <type_traits>

namespace rwkv::cpu {

// Threads the kernels use (the caller included); 0 = one per core. Default: one per core.
void set_threads(int n);
int thread_count();

// Calls fn(begin, end) on disjoint ranges covering [0, n), each range a multiple of `grain`
// (except the last), spread over the pool; returns when all are done.
template <class Fn>
void parallel_for(size_t n, size_t grain, Fn&& fn);

namespace detail {
using RangeFn = void (*)(void* ctx, size_t begin, size_t end);
void parallel_for(size_t n, size_t grain, RangeFn fn, void* ctx);
}  // namespace detail

template <class Fn>
void parallel_for(size_t n, size_t grain, Fn&& fn) {
  detail::parallel_for(
      n, grain, [](void* ctx, size_t b, size_t e) { (*static_cast<std::remove_reference_t<Fn>*>(ctx))(b, e); },
      const_cast<void*>(static_cast<const void*>(&fn)));
}

}  // namespace rwkv::cpu
