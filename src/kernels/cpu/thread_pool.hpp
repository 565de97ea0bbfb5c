// A persistent pool of worker threads for the data-parallel kernels (matrix rows, WKV heads).
// The caller takes part in the work. Workers spin briefly between jobs (one token's forward
// pass issues a hundred jobs a few microseconds apart) and then sleep, so an idle engine costs
// nothing. Calls from several threads at once are safe: one runs on the pool, the others run
// serially on their own thread; so does a call made inside a part of a job.
#pragma once
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <type_traits>

namespace rwkv::cpu {

// Threads the kernels use (the caller included); 0 = one per physical core. Default: one per
// physical core (physical_cores).
void set_threads(int n);
int thread_count();

// The physical cores this process may run on: the CPUs of its affinity mask, SMT siblings
// counted once (Linux's /sys/devices/system/cpu/cpuN/topology/thread_siblings_list); the
// logical CPUs where that cannot be read. A second hardware thread on a core adds no bandwidth
// and little arithmetic to these kernels, and shares the core's caches with the first.
int physical_cores();
// The cores among `cpus`, given each one's sibling list as that file words it (CPUs with the
// same list share a core); 0 where a list is empty (unknown). Exposed for tests.
int count_cores(std::span<const int> cpus, const std::function<std::string(int)>& siblings);

// How a job's range is shared out.
enum class Split {
  // Each thread one stretch of the range, which it reads front to back in shrinking pieces;
  // a thread done with its own takes half of the largest rest from its back. Streaming work
  // (a matrix-vector product reads its weights once) then reads one run of memory per
  // thread, which the hardware prefetchers follow, instead of pieces scattered over it.
  Contiguous,
  // Grain-sized pieces handed out one at a time from the front, for a caller that orders its
  // pieces itself (the GEMM's shrink towards the end, so the threads finish together).
  InOrder,
};

// Memory the caller expects its next job to read (a hint; up to kMaxRegions are used): a
// thread left without work at the end of this job, or waiting for the next one while the
// caller works alone, prefetches the part of it that its own stretch of a Contiguous split
// will read first (thread i of P from i/P of the way, at most kPrefetchBytes).
struct Region {
  const void* data = nullptr;
  size_t bytes = 0;
};
constexpr size_t kMaxRegions = 8, kPrefetchBytes = 256 * 1024;

// The hint for a job that reads `mine` (at most kMaxRegions): what the job after it read last
// time. A decode step runs the same jobs in the same order token after token, so each job is
// remembered (per calling thread, by its first region) as the follower of the job before it.
// A wrong guess (another model, another order) costs only useless prefetches, which never fault.
// Steps of kTrailTokens tokens or more (batched decode, prefill) keep their full-size products
// and WKV scans off the trail: those jobs are long, and prefetching for them measured slower
// (0.1B f16 B = 16: 0.986 for the products, 0.984 for the WKV states). The job that RWKV-7's
// low-rank products share below the prefill's GEMM (cpu::matmuls) keeps its hint.
constexpr size_t kTrailTokens = 16;
std::span<const Region> follower_hint(std::span<const Region> mine);

// Calls fn(begin, end) on disjoint ranges covering [0, n), each range a multiple of `grain`
// (except the last), spread over the pool; returns when all are done.
template <class Fn>
void parallel_for(size_t n, size_t grain, Fn&& fn, Split split = Split::Contiguous, std::span<const Region> then = {});

namespace detail {
using RangeFn = void (*)(void* ctx, size_t begin, size_t end);
void parallel_for(size_t n, size_t grain, RangeFn fn, void* ctx, Split split, std::span<const Region> then);
}  // namespace detail

template <class Fn>
void parallel_for(size_t n, size_t grain, Fn&& fn, Split split, std::span<const Region> then) {
  detail::parallel_for(
      n, grain, [](void* ctx, size_t b, size_t e) { (*static_cast<std::remove_reference_t<Fn>*>(ctx))(b, e); },
      const_cast<void*>(static_cast<const void*>(&fn)), split, then);
}

}  // namespace rwkv::cpu
