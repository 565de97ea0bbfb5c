// Machine probes: a streaming read over a large buffer and a register-resident FMA loop.
#include "perf/machine.hpp"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/thread_pool.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RWKV_PERF_X86 1
#endif

namespace rwkv::perf {
namespace {

using clock = std::chrono::steady_clock;

// Runs work(i) for i in [0, threads): inline for one thread, else on std::threads.
template <typename Work>
double timed_parallel(int threads, const Work& work) {
  const auto t0 = clock::now();
  if (threads == 1) {
    work(0);
  } else {
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) pool.emplace_back([&work, i] { work(i); });
    for (auto& t : pool) t.join();
  }
  return std::chrono::duration<double>(clock::now() - t0).count();
}

int clamp_threads(int threads) {
  return threads > 0 ? threads : cpu::physical_cores();
}

// Integer sums, so that the compiler may vectorise and reorder them freely. With kAhead > 0
// each cache line is also asked for kAhead bytes before it is read, as the weight kernels
// do: on the AMD EPYC (Zen 3) guests of our sessions a plain read of 2 threads reached 15–20
// GB/s and the same read asking 1 KiB ahead 17–23 % more, while f16 decode read faster than
// the plain probe (up to 128 % of its "floor"). 1 KiB was the best of 256 B–4 KiB there.
template <size_t kAhead>
uint64_t sum_words(const uint64_t* p, size_t n) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {  // one 64-byte line
    if constexpr (kAhead > 0) __builtin_prefetch(reinterpret_cast<const char*>(p + i) + kAhead);
    s0 += p[i] + p[i + 4];
    s1 += p[i + 1] + p[i + 5];
    s2 += p[i + 2] + p[i + 6];
    s3 += p[i + 3] + p[i + 7];
  }
  for (; i < n; ++i) s0 += p[i];
  return s0 + s1 + s2 + s3;
}

volatile uint64_t word_sink;
volatile float float_sink;

// ---- FMA loops: enough independent accumulators to cover the FMA latency on every port
// (latency 4-5 cycles x 2 units); the result goes to a sink so the loop is not removed.

constexpr float kMul = 0.999999f, kAdd = 1e-6f;

#if RWKV_PERF_X86
__attribute__((target("avx512f"))) float fma_loop_avx512(long iters) {
  constexpr int K = 16;
  __m512 acc[K];
  for (int j = 0; j < K; ++j) acc[j] = _mm512_set1_ps(0.001f * static_cast<float>(j));
  const __m512 a = _mm512_set1_ps(kMul), b = _mm512_set1_ps(kAdd);
  for (long k = 0; k < iters; ++k) {
#pragma GCC unroll 16
    for (int j = 0; j < K; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  }
  float out = 0, lanes[16];
  for (int j = 0; j < K; ++j) {
    _mm512_storeu_ps(lanes, acc[j]);
    for (float v : lanes) out += v;
  }
  return out;
}

__attribute__((target("avx2,fma"))) float fma_loop_avx2(long iters) {
  constexpr int K = 12;  // 12 accumulators + 2 constants fit the 16 ymm registers
  __m256 acc[K];
  for (int j = 0; j < K; ++j) acc[j] = _mm256_set1_ps(0.001f * static_cast<float>(j));
  const __m256 a = _mm256_set1_ps(kMul), b = _mm256_set1_ps(kAdd);
  for (long k = 0; k < iters; ++k) {
#pragma GCC unroll 12
    for (int j = 0; j < K; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  }
  float out = 0, lanes[8];
  for (int j = 0; j < K; ++j) {
    _mm256_storeu_ps(lanes, acc[j]);
    for (float v : lanes) out += v;
  }
  return out;
}
#endif

float fma_loop_scalar(long iters) {
  constexpr int K = 16;
  float acc[K];
  for (int j = 0; j < K; ++j) acc[j] = 0.001f * static_cast<float>(j);
  for (long k = 0; k < iters; ++k)
    for (int j = 0; j < K; ++j) acc[j] = std::fma(acc[j], kMul, kAdd);
  float out = 0;
  for (float v : acc) out += v;
  return out;
}

struct FmaLoop {
  float (*run)(long iters);
  long iters;             // per pass and thread: about 0.05-0.1 s on a current core
  double flops_per_iter;  // 2 per lane and accumulator
  const char* isa;
};

FmaLoop best_fma_loop() {
#if RWKV_PERF_X86
  if (__builtin_cpu_supports("avx512f")) return {fma_loop_avx512, 10'000'000, 2.0 * 16 * 16, "avx512f"};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return {fma_loop_avx2, 20'000'000, 2.0 * 12 * 8, "avx2+fma"};
#endif
  return {fma_loop_scalar, 2'000'000, 2.0 * 16, "scalar"};
}

}  // namespace

double read_bandwidth_gb_s(int threads, size_t bytes, int runs) {
  threads = clamp_threads(threads);
  const size_t words = std::max<size_t>(bytes / sizeof(uint64_t), threads);
  // Uninitialised on purpose: each thread writes its own share first, so on a NUMA machine
  // the pages sit next to the thread that reads them.
  std::unique_ptr<uint64_t[]> buffer(new uint64_t[words]);
  const size_t share = (words + threads - 1) / threads;
  auto range = [&](int i, size_t& begin, size_t& end) {
    begin = std::min(words, share * i);
    end = std::min(words, begin + share);
  };
  timed_parallel(threads, [&](int i) {
    size_t b, e;
    range(i, b, e);
    for (size_t k = b; k < e; ++k) buffer[k] = k;
  });
  std::vector<uint64_t> sums(threads);
  double best = 0;
  for (int r = 0; r < 2 * std::max(1, runs); ++r) {  // each run a plain read and a prefetched one
    const double s = timed_parallel(threads, [&](int i) {
      size_t b, e;
      range(i, b, e);
      sums[i] = r % 2 == 0 ? sum_words<0>(buffer.get() + b, e - b) : sum_words<1024>(buffer.get() + b, e - b);
    });
    best = r == 0 ? s : std::min(best, s);
    for (uint64_t v : sums) word_sink = word_sink + v;
  }
  return static_cast<double>(words * sizeof(uint64_t)) / best / 1e9;
}

double read_bandwidth_gb_s_in_child(int threads, size_t bytes, int runs) {
  int fd[2];
  if (::pipe(fd) != 0) return 0;
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd[0]);
    ::close(fd[1]);
    return 0;
  }
  if (pid == 0) {  // the child: only this thread exists here; it allocates, reads and reports
    ::close(fd[0]);
    double v = 0;
    try {
      v = read_bandwidth_gb_s(threads, bytes, runs);
    } catch (...) {
      v = 0;
    }
    const ssize_t n = ::write(fd[1], &v, sizeof v);
    ::_exit(n == static_cast<ssize_t>(sizeof v) ? 0 : 1);
  }
  ::close(fd[1]);
  double v = 0;
  ssize_t n;
  do n = ::read(fd[0], &v, sizeof v);
  while (n < 0 && errno == EINTR);
  ::close(fd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const bool ok = n == static_cast<ssize_t>(sizeof v) && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return ok && std::isfinite(v) && v > 0 ? v : 0;
}

double fma_peak_gflop_s(int threads, int runs) {
  threads = clamp_threads(threads);
  const FmaLoop loop = best_fma_loop();
  std::vector<float> results(threads);
  double best = 0;
  for (int r = 0; r < std::max(1, runs); ++r) {
    const double s = timed_parallel(threads, [&](int i) { results[i] = loop.run(loop.iters); });
    best = r == 0 ? s : std::min(best, s);
    for (float v : results) float_sink = float_sink + v;
  }
  return loop.flops_per_iter * static_cast<double>(loop.iters) * threads / best / 1e9;
}

std::string fma_isa() { return best_fma_loop().isa; }

size_t huge_page_bytes() {
  std::ifstream f("/proc/self/smaps_rollup");
  std::string line;
  size_t kb = 0;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string key;
    size_t value = 0;
    if (in >> key >> value && (key == "AnonHugePages:" || key == "FilePmdMapped:" || key == "ShmemPmdMapped:"))
      kb += value;
  }
  return kb * 1024;
}

size_t peak_rss_bytes() {
  rusage u{};
  if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
  return static_cast<size_t>(u.ru_maxrss) * 1024;  // Linux reports kilobytes
}

}  // namespace rwkv::perf
