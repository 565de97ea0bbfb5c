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

  // Lock-free, so that a part of a job may ask (the caller holds busy_ meanwhile).
  int size() const { return size_.load(std::memory_order_relaxed); }

  void resize(int n) {
    std::lock_guard<std::mutex> lock(busy_);
    stop_workers();
    // Each worker starts from the current generation: one started late must still see the
    // first job published after this.
    const uint64_t now = generation_.load(std::memory_order_acquire);
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, now] { work(now); });
    size_.store(static_cast<int>(workers_.size()) + 1, std::memory_order_relaxed);
  }

  // The job is cut into more pieces than threads (at most kPieceMask); every thread, the caller included, claims
  // pieces until none are left. A worker that the OS has not scheduled (other processes on
  // the cores) then only delays the piece it holds, and the caller does the rest.
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
    const size_t parts = std::min(chunks, 16 * (workers_.size() + 1));
    fn_.store(fn, std::memory_order_relaxed);
    ctx_.store(ctx, std::memory_order_relaxed);
    n_.store(n, std::memory_order_relaxed);
    grain_.store(grain, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    claim_.store(claim_word(++sequence_ & 0xffffff, parts), std::memory_order_release);
    publish();
    take_parts();
    for (int spins = 0; done_.load(std::memory_order_acquire) != parts; ++spins)
      if (spins > 1000) std::this_thread::yield();
  }

 private:
  // `claim_` packs (job sequence, pieces, next piece) into one word, so a thread decides from
  // that word alone whether a piece is left, and a claim (compare-exchange) succeeds only while
  // that job is current. The caller writes a job's fields before publishing its word and
  // rewrites them only after every piece is done, so fields read after a successful claim
  // belong to the claimed job.
  static constexpr uint64_t kPieceBits = 20, kPieceMask = (uint64_t{1} << kPieceBits) - 1;
  static uint64_t claim_word(uint64_t seq, uint64_t parts) { return (seq << (2 * kPieceBits)) | (parts << kPieceBits); }

  // Where piece p of `parts` starts: pieces shrink linearly towards the end of the job (piece
  // p spans the chunks between 1 − (1 − p/parts)² and 1 − (1 − (p+1)/parts)² of the way), and
  // are claimed in order, so the threads run out of work within a small piece of each other.
  static size_t first_chunk(size_t chunks, size_t parts, size_t p) {
    const uint64_t whole = uint64_t{parts} * parts, rest = parts - p;
    return static_cast<size_t>(chunks * (whole - rest * rest) / whole);
  }

  void take_parts() {
    uint64_t c = claim_.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t p = c & kPieceMask, parts = (c >> kPieceBits) & kPieceMask;
      if (p >= parts) return;
      if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      const auto fn = fn_.load(std::memory_order_relaxed);
      void* ctx = ctx_.load(std::memory_order_relaxed);
      const size_t n = n_.load(std::memory_order_relaxed), grain = grain_.load(std::memory_order_relaxed);
      const size_t chunks = (n + grain - 1) / grain;
      const size_t b = first_chunk(chunks, parts, p) * grain, e = std::min(n, first_chunk(chunks, parts, p + 1) * grain);
      if (b < e) {
        struct InJob {  // cleared however fn returns
          InJob() { t_in_job = true; }
          ~InJob() { t_in_job = false; }
        } in_job;
        fn(ctx, b, e);
      }
      done_.fetch_add(1, std::memory_order_acq_rel);
      c = claim_.load(std::memory_order_acquire);
    }
  }

  void work(uint64_t seen) {
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
      take_parts();
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
  std::atomic<size_t> n_{0}, grain_{1}, done_{0};
  std::atomic<uint64_t> claim_{0};
  std::mutex sleep_mu_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
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
