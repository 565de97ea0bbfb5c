#include "kernels/cpu/thread_pool.hpp"

#include <cblas.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace rwkv::cpu {
namespace {

// Set while this thread runs a part of a job: a parallel_for inside it (training runs the WKV
// scans inside model replicas that are themselves parts of a job) runs serially right there,
// instead of the caller trying to lock the pool it already holds.
thread_local bool t_in_job = false;

class Pool {
 public:
  ~Pool() { resize(1); }

  // Lock-free, so that a part of a job may ask (the caller holds busy_ meanwhile).
  int size() const { return size_.load(std::memory_order_relaxed); }

  void resize(int n) {
    std::lock_guard<std::mutex> lock(busy_);
    stop_workers();
    // Each worker starts from the current generation: one started late must still see the
    // first job published after this.
    const uint64_t now = generation_.load(std::memory_order_acquire);
    spans_ = std::make_unique<Span[]>(static_cast<size_t>(std::max(n, 1)));
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, now, i] { work(now, static_cast<size_t>(i)); });
    size_.store(static_cast<int>(workers_.size()) + 1, std::memory_order_relaxed);
  }

  // The range is cut into units (chunks of `grain`, merged when there are more than kMask of
  // them) and laid out in spans, one per thread for a Contiguous job (one for all, InOrder).
  // Every thread, the caller included, claims units until none are left: a worker that the OS
  // has not scheduled (other processes on the cores) then only delays what it holds, and the
  // other threads take the rest of its span.
  void run(size_t n, size_t grain, detail::RangeFn fn, void* ctx, Split split, std::span<const Region> then) {
    if (t_in_job) {
      fn(ctx, 0, n);
      return;
    }
    std::unique_lock<std::mutex> lock(busy_, std::try_to_lock);
    const size_t chunks = (n + grain - 1) / grain;
    if (!lock.owns_lock() || workers_.empty() || chunks < 2) {
      fn(ctx, 0, n);  // pool busy (another caller) or nothing to share
      return;
    }
    const size_t unit = (chunks + kMask - 1) / kMask, units = (chunks + unit - 1) / unit;
    const size_t threads = workers_.size() + 1, spans = split == Split::Contiguous ? threads : 1;
    fn_.store(fn, std::memory_order_relaxed);
    ctx_.store(ctx, std::memory_order_relaxed);
    n_.store(n, std::memory_order_relaxed);
    unit_.store(unit * grain, std::memory_order_relaxed);
    in_order_.store(spans == 1, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    const size_t regions = std::min(then.size(), kMaxRegions);
    for (size_t i = 0; i < regions; ++i) {
      then_[i].data.store(static_cast<const char*>(then[i].data), std::memory_order_relaxed);
      then_[i].bytes.store(then[i].bytes, std::memory_order_relaxed);
    }
    then_count_.store(regions, std::memory_order_relaxed);
    const uint64_t seq = ++sequence_ & kSeqMask;
    for (size_t i = 0; i < threads; ++i)  // (InOrder: spans past the first are empty)
      spans_[i].word.store(span_word(seq, std::min(units, units * i / spans), std::min(units, units * (i + 1) / spans)),
                           std::memory_order_release);
    publish();
    take_units(0);
    Prefetcher ahead(*this, 0);
    for (int spins = 0; done_.load(std::memory_order_acquire) != units; ++spins)
      if (!ahead.step() && spins > 1000) std::this_thread::yield();
  }

 private:
  // A span's word packs (job sequence, front, back) in units: a thread decides from the word
  // alone whether a unit is left, and a claim (compare-exchange) succeeds only while that job
  // is current. The caller writes a job's fields before publishing its spans and rewrites them
  // only after every unit is done, so fields read after a successful claim belong to the job.
  static constexpr uint64_t kBits = 20, kMask = (uint64_t{1} << kBits) - 1, kSeqMask = (uint64_t{1} << 24) - 1;
  static uint64_t span_word(uint64_t seq, uint64_t front, uint64_t back) {
    return (seq << (2 * kBits)) | (front << kBits) | back;
  }
  static uint64_t front_of(uint64_t w) { return (w >> kBits) & kMask; }
  static uint64_t back_of(uint64_t w) { return w & kMask; }
  struct alignas(64) Span {  // a cache line each: the threads claim from their own
    std::atomic<uint64_t> word{0};
  };

  // Claims units [u0, u1) for thread `self`: from the front of its own span, a quarter of what
  // is left at a time (InOrder: one unit from the front of the one span); when its own span is
  // empty, half of the largest rest of another span, from its back. False when none is left.
  bool claim(size_t self, uint64_t& u0, uint64_t& u1) {
    const bool in_order = in_order_.load(std::memory_order_relaxed);
    Span& own = spans_[in_order ? 0 : self];
    uint64_t w = own.word.load(std::memory_order_acquire);
    while (front_of(w) < back_of(w)) {
      const uint64_t k = in_order ? 1 : std::max<uint64_t>(1, (back_of(w) - front_of(w)) / 4);
      if (own.word.compare_exchange_weak(w, w + (k << kBits), std::memory_order_acq_rel, std::memory_order_acquire)) {
        u0 = front_of(w);
        u1 = u0 + k;
        return true;
      }
    }
    if (in_order) return false;
    const size_t threads = static_cast<size_t>(size());
    for (;;) {
      Span* victim = nullptr;
      uint64_t most = 0;
      for (size_t j = 0; j < threads; ++j) {
        const uint64_t v = spans_[j].word.load(std::memory_order_acquire);
        if (back_of(v) > front_of(v) + most) {
          most = back_of(v) - front_of(v);
          victim = &spans_[j];
          w = v;
        }
      }
      if (!victim) return false;
      const uint64_t k = std::max<uint64_t>(1, most / 2);
      if (victim->word.compare_exchange_strong(w, w - k, std::memory_order_acq_rel, std::memory_order_acquire)) {
        u1 = back_of(w);
        u0 = u1 - k;
        return true;
      }
    }
  }

  // Runs the units this thread claims; adds their count to done_ once, at the end (one write
  // to the shared counter per thread and job, not one per piece).
  void take_units(size_t self) {
    uint64_t u0, u1, mine = 0;
    while (claim(self, u0, u1)) {
      const auto fn = fn_.load(std::memory_order_relaxed);
      void* ctx = ctx_.load(std::memory_order_relaxed);
      const size_t n = n_.load(std::memory_order_relaxed), unit = unit_.load(std::memory_order_relaxed);
      const size_t b = u0 * unit, e = std::min(n, u1 * unit);
      if (b < e) {
        struct InJob {  // cleared however fn returns
          InJob() { t_in_job = true; }
          ~InJob() { t_in_job = false; }
        } in_job;
        fn(ctx, b, e);
      }
      mine += u1 - u0;
    }
    if (mine) done_.fetch_add(mine, std::memory_order_acq_rel);
  }

  // Walks this thread's share of the next job's regions (the `then` hint), one step of 4 kB
  // at a time: prefetches into the core's own cache (L2), which the weights streaming past
  // in the meantime do not evict: that job is next. The hint's fields may change under it
  // (a new job): it reads them once, and a stale hint only costs some useless prefetches.
  class Prefetcher {
   public:
    Prefetcher(const Pool& pool, size_t self) {
      const size_t count = pool.then_count_.load(std::memory_order_relaxed), threads = static_cast<size_t>(pool.size());
      size_t total = 0;
      for (size_t i = 0; i < count; ++i) {
        regions_[i] = {pool.then_[i].data.load(std::memory_order_relaxed), pool.then_[i].bytes.load(std::memory_order_relaxed)};
        total += regions_[i].bytes;
      }
      count_ = count;
      skip_ = total / threads * self;
      left_ = std::min(total / threads, kPrefetchBytes);
    }
    // False when done.
    bool step() {
      size_t step = std::min<size_t>(left_, 4096);
      if (step == 0) return false;
      left_ -= step;
      while (step > 0 && region_ < count_) {
        const size_t bytes = regions_[region_].bytes;
        const char* data = static_cast<const char*>(regions_[region_].data);
        if (skip_ >= bytes) {
          skip_ -= bytes;
          ++region_;
          continue;
        }
        const size_t take = std::min(step, bytes - skip_);
        for (size_t o = 0; o < take; o += 64) __builtin_prefetch(data + skip_ + o, 0, 2);
        skip_ += take;
        step -= take;
      }
      return region_ < count_;
    }

   private:
    Region regions_[kMaxRegions];
    size_t count_ = 0, region_ = 0, skip_ = 0, left_ = 0;
  };

  void work(uint64_t seen, size_t self) {
    for (;;) {
      // Spin for a while (the next job usually follows within microseconds), then sleep;
      // meanwhile prefetch this thread's share of the next job.
      Prefetcher ahead(*this, self);
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
      uint64_t g;
      int spins = 0;
      while ((g = generation_.load(std::memory_order_acquire)) == seen) {
        if (ahead.step()) continue;
        if (++spins % 64 == 0 && std::chrono::steady_clock::now() > until) {
          std::unique_lock<std::mutex> lock(sleep_mu_);
          wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        }
      }
      seen = g;
      if (stopping_.load(std::memory_order_acquire)) return;
      take_units(self);
    }
  }

  // A new generation: spinning workers see it at once, sleeping ones are woken. The counter
  // changes under the sleep mutex so that a worker going to sleep cannot miss it.
  void publish() {
    {
      std::lock_guard<std::mutex> lock(sleep_mu_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
  }

  void stop_workers() {
    if (workers_.empty()) return;
    stopping_.store(true, std::memory_order_release);
    publish();
    for (auto& w : workers_) w.join();
    workers_.clear();
    stopping_.store(false, std::memory_order_release);
  }

  std::mutex busy_;  // held by the caller of a job (and by resize)
  std::vector<std::thread> workers_;
  std::atomic<int> size_{1};
  uint64_t sequence_ = 0;  // jobs run (written by the caller holding busy_)
  std::atomic<detail::RangeFn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<size_t> n_{0}, unit_{1}, done_{0};
  std::atomic<bool> in_order_{false};
  struct HintRegion {
    std::atomic<const char*> data{nullptr};
    std::atomic<size_t> bytes{0};
  };
  HintRegion then_[kMaxRegions];
  std::atomic<size_t> then_count_{0};
  std::unique_ptr<Span[]> spans_;
  std::mutex sleep_mu_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stopping_{false};
};

Pool& pool() {
  static Pool* p = [] {
    auto* q = new Pool;  // never destroyed: workers may outlive static destruction order
    q->resize(physical_cores());
    return q;
  }();
  return *p;
}

}  // namespace

int count_cores(std::span<const int> cpus, const std::function<std::string(int)>& siblings) {
  std::set<std::string> cores;
  for (int cpu : cpus) {
    std::string list = siblings(cpu);
    while (!list.empty() && std::isspace(static_cast<unsigned char>(list.back()))) list.pop_back();
    if (list.empty()) return 0;
    cores.insert(list);
  }
  return static_cast<int>(cores.size());
}

int physical_cores() {
  static const int n = [] {
    const int logical = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
#ifdef __linux__
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return logical;
    std::vector<int> cpus;
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    const int found = count_cores(cpus, [](int c) {
      std::ifstream in("/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/thread_siblings_list");
      std::string list;
      std::getline(in, list);
      return list;
    });
    if (found > 0) return found;
    return cpus.empty() ? logical : std::min(logical, static_cast<int>(cpus.size()));
#else
    return logical;
#endif
  }();
  return n;
}

void set_threads(int n) {
  const int threads = n > 0 ? n : physical_cores();
  pool().resize(threads);
  openblas_set_num_threads(threads);  // the GEMMs still done by OpenBLAS (initialisation)
}

int thread_count() { return pool().size(); }

std::span<const Region> follower_hint(std::span<const Region> mine) {
  struct Regions {
    Region regions[kMaxRegions];
    size_t count = 0;
  };
  thread_local std::unordered_map<const void*, Regions> followers;
  thread_local const void* previous = nullptr;
  if (mine.empty()) return {};
  Regions job;
  job.count = std::min(mine.size(), kMaxRegions);
  std::copy_n(mine.begin(), job.count, job.regions);
  if (followers.size() > 4096) followers.clear();  // (many models or states in turn)
  if (previous) followers[previous] = job;
  previous = job.regions[0].data;
  const auto it = followers.find(previous);
  if (it == followers.end()) return {};
  return {it->second.regions, it->second.count};
}

namespace detail {
void parallel_for(size_t n, size_t grain, RangeFn fn, void* ctx, Split split, std::span<const Region> then) {
  if (n == 0) return;
  pool().run(n, std::max<size_t>(grain, 1), fn, ctx, split, then);
}
}  // namespace detail

}  // namespace rwkv::cpu
