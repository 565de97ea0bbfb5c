// Batches split over model replicas on the thread pool.
#include "train/data_parallel.hpp"

#include <algorithm>
#include <exception>

#include "io/error.hpp"
#include "kernels/cpu/thread_pool.hpp"
#include "train/tensor_math.hpp"

namespace rwkv::train {

DataParallel::DataParallel(const Weights& w, size_t replicas) {
  if (replicas == 0) fail("training needs at least one model replica");
  for (size_t i = 0; i < replicas; ++i) replicas_.push_back(TrainModel<float>::from_weights(w));
}

LossValue DataParallel::forward_backward(const Batch& batch, bool l2wrap) { return run(batch, l2wrap, true); }
LossValue DataParallel::loss(const Batch& batch, bool l2wrap) { return run(batch, l2wrap, false); }

LossValue DataParallel::run(const Batch& batch, bool l2wrap, bool backward) {
  const size_t n = std::min(replicas_.size(), batch.B);
  if (n <= 1) return backward ? replicas_[0]->forward_backward(batch, l2wrap) : replicas_[0]->loss(batch, l2wrap);
  if (batch.inputs.size() != batch.B * batch.T || batch.targets.size() != batch.B * batch.T)
    fail("training: ", batch.inputs.size(), " inputs and ", batch.targets.size(), " targets for ", batch.B,
         " sequences of ", batch.T);

  // The replicas start from replica 0's current values, with zero gradients.
  auto& master = replicas_[0]->parameters().all();
  for (size_t k = 1; k < n; ++k) {
    auto& mine = replicas_[k]->parameters().all();
    for (size_t i = 0; i < master.size(); ++i) {
      std::copy(master[i].value.begin(), master[i].value.end(), mine[i].value.begin());
      if (backward) std::fill(mine[i].grad.begin(), mine[i].grad.end(), 0.0f);
    }
  }
  // Each replica's matrix products run on its own thread: BLAS must not start threads of its own.
  struct BlasThreads {
    int saved = blas_threads();
    BlasThreads() { set_blas_threads(1); }
    ~BlasThreads() { set_blas_threads(saved); }
  } one_blas_thread;
  std::vector<LossValue> parts(n);
  std::vector<std::exception_ptr> errors(n);  // an exception must not leave a pool thread
  const size_t mean_over = batch.mean_over ? batch.mean_over : batch.B * batch.T;
  cpu::parallel_for(n, 1, [&](size_t k0, size_t k1) {
    for (size_t k = k0; k < k1; ++k) try {
        const size_t b0 = batch.B * k / n, b1 = batch.B * (k + 1) / n, T = batch.T;
        const Batch part{b1 - b0, T, batch.inputs.subspan(b0 * T, (b1 - b0) * T),
                         batch.targets.subspan(b0 * T, (b1 - b0) * T), mean_over};
        parts[k] = backward ? replicas_[k]->forward_backward(part, l2wrap) : replicas_[k]->loss(part, l2wrap);
      } catch (...) {
        errors[k] = std::current_exception();
      }
  });
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  LossValue total;
  for (const LossValue& p : parts) {
    total.cross_entropy += p.cross_entropy;
    total.l2wrap_penalty += p.l2wrap_penalty;
  }
  if (backward) {
    // Replica 0 holds the sum, added replica by replica (the same order on every run);
    // the parameters are shared out over the threads.
    cpu::parallel_for(master.size(), 1, [&](size_t i0, size_t i1) {
      for (size_t i = i0; i < i1; ++i)
        for (size_t k = 1; k < n; ++k) {
          const auto& g = replicas_[k]->parameters().all()[i].grad;
          auto& sum = master[i].grad;
          for (size_t j = 0; j < sum.size(); ++j) sum[j] += g[j];
        }
    });
  }
  return total;
}

}  // namespace rwkv::train
