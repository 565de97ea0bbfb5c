// The training loss: mean cross-entropy over every position of a batch, with the gradient of
// the logits and RWKV's L2Wrap term (spec §7.3). No model knowledge.
#pragma once
#include <cstddef>
#include <cstdint>

namespace rwkv::train {

struct LossValue {
  double cross_entropy = 0;  // mean over the R positions: what training reports
  // 1e-4/(2R)·Σ (max logit)²: not part of the loss, but the function whose gradient L2Wrap adds
  // (at the argmax, 1e-4/R·max); cross_entropy + l2wrap_penalty is what its gradient checks.
  double l2wrap_penalty = 0;
};

// The L2Wrap factor: 1e-4 per position, divided by the number of positions (spec §7.3).
constexpr double kL2WrapFactor = 1e-4;

// logits: R rows of V. When dlogits is not null it receives ∂(mean cross-entropy)/∂logits =
// (softmax − onehot(target))/R, plus, with l2wrap, 1e-4/R·y_max at each row's first argmax
// (ties go to the smallest index, as the fused RWKV-7 kernel). dlogits may equal logits.
// mean_over (0 = R) replaces R as the number of positions the mean is over, for a part of a
// larger batch: the values and gradients of the parts then add up to those of the whole.
// Throws rwkv::Error on a target outside [0, V).
template <typename F>
LossValue cross_entropy(const F* logits, const int32_t* targets, size_t R, size_t V, F* dlogits, bool l2wrap,
                        size_t mean_over = 0);

}  // namespace rwkv::train
