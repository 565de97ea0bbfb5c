#include "kernels/cpu/thread_pool.hpp"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace rwkv::cpu {
namespace {

unsigned cores() { return std::max(1u, std::thread::hardware_concurrency()); }

// Set while this thread runs a part of a job: a parallel_for inside it (training runs the WKV
// scans inside model replicas that are themselves parts of a job) runs serially right there,
// instead of the caller trying to lock the pool it already holds.
thread_local bool t_in_job = false;

class Pool {
 public:
  ~Pool() { resize(1); }

  int size() {
    std::lock_guard<std::mutex> lock(busy_);
    return static_cast<int>(workers_.size()) + 1;
  }

  void resize(int n) {
    std::lock_guard<std::mutex> lock(busy_);
    stop_workers();
    // Each worker starts from the current generation: one started late must still see the
    // first job published after this.
    const uint64_t now = generation_.load(std::memory_order_acquire);
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i, now] { work(i, now); });
  }

  void run(size_t n, size_t grain, detail::RangeFn fn, void* ctx) {
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
    // Every worker takes a part (possibly empty) and reports back, so none can still be
    // reading this job when the next one is written.
    const size_t parts = workers_.size() + 1;
    job_ = {fn, ctx, n, grain, parts};
    pending_.store(static_cast<int>(parts) - 1, std::memory_order_relaxed);
    publish();
    do_part(0);
    while (pending_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }

 private:
  struct Job {
    detail::RangeFn fn = nullptr;
    void* ctx = nullptr;
    size_t n = 0, grain = 1, parts = 0;
  };

  // Part p of the job: chunks split as evenly as the grain allows.
  void do_part(size_t p) {
    const size_t chunks = (job_.n + job_.grain - 1) / job_.grain;
    const size_t b = chunks * p / job_.parts * job_.grain;
    const size_t e = std::min(job_.n, chunks * (p + 1) / job_.parts * job_.grain);
    struct InJob {
      InJob() { t_in_job = true; }
      ~InJob() { t_in_job = false; }
    } in_job;
    if (b < e) job_.fn(job_.ctx, b, e);
  }

  void work(int id, uint64_t seen) {
    for (;;) {
      // Spin for a while (the next job usually follows within microseconds), then sleep.
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
      uint64_t g;
      int spins = 0;
      while ((g = generation_.load(std::memory_order_acquire)) == seen) {
        if (++spins % 64 == 0 && std::chrono::steady_clock::now() > until) {
          std::unique_lock<std::mutex> lock(sleep_mu_);
          wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        }
      }
      seen = g;
      if (stopping_.load(std::memory_order_acquire)) return;
      do_part(static_cast<size_t>(id));
      pending_.fetch_sub(1, std::memory_order_acq_rel);
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
  Job job_;
  std::mutex sleep_mu_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stopping_{false};
};

Pool& pool() {
  static Pool* p = [] {
    auto* q = new Pool;  // never destroyed: workers may outlive static destruction order
    q->resize(static_cast<int>(cores()));
    return q;
  }();
  return *p;
}

}  // namespace

void set_threads(int n) {
  const int threads = n > 0 ? n : static_cast<int>(cores());
  pool().resize(threads);
  openblas_set_num_threads(threads);  // the GEMMs still done by OpenBLAS (initialisation)
}

int thread_count() { return pool().size(); }

namespace detail {
void parallel_for(size_t n, size_t grain, RangeFn fn, void* ctx) {
  if (n == 0) return;
  pool().run(n, std::max<size_t>(grain, 1), fn, ctx);
}
}  // namespace detail

}  // namespace rwkv::cpu
