// Data parallelism on one machine: the sequences of a batch are split over replicas of the
// model, one per thread, each running forward and backward on its share with single-threaded
// BLAS; their gradients are then added in a fixed order. With one replica this is exactly
// TrainModel. The parameters of replica 0 are the model's (the optimizer updates them);
// the others copy them before every pass.
#pragma once
#include <memory>
#include <vector>

#include "train/train_model.hpp"

namespace rwkv::train {

class DataParallel {
 public:
  // `replicas` ≥ 1 copies of the model made from `w`.
  DataParallel(const Weights& w, size_t replicas);

  TrainModel<float>& model() { return *replicas_[0]; }
  Parameters<float>& parameters() { return replicas_[0]->parameters(); }
  size_t replicas() const { return replicas_.size(); }

  // As TrainModel::forward_backward (ADDS the gradient into the parameters of replica 0): the
  // sequences go to the replicas in contiguous shares. The split depends on the number of
  // replicas, so the rounding of the sums does too; one replica computes what TrainModel does.
  LossValue forward_backward(const Batch& batch, bool l2wrap = true);
  // As TrainModel::loss, split the same way.
  LossValue loss(const Batch& batch, bool l2wrap = true);

 private:
  LossValue run(const Batch& batch, bool l2wrap, bool backward);

  std::vector<std::unique_ptr<TrainModel<float>>> replicas_;
};

}  // namespace rwkv::train
