// Cross-entropy with L2Wrap, accumulated in double.
#include "train/loss.hpp"

#include <cmath>

#include "io/error.hpp"

namespace rwkv::train {

template <typename F>
LossValue cross_entropy(const F* logits, const int32_t* targets, size_t R, size_t V, F* dlogits, bool l2wrap,
                        size_t mean_over) {
  LossValue out;
  if (R == 0) return out;
  const double inv_R = 1.0 / double(mean_over ? mean_over : R);
  double ce = 0, penalty = 0;
  for (size_t row = 0; row < R; ++row) {
    const F* y = logits + row * V;
    const int32_t target = targets[row];
    if (target < 0 || size_t(target) >= V) fail("training: target token ", target, " is out of range (vocabulary size ", V, ")");
    size_t arg = 0;
    for (size_t i = 1; i < V; ++i)
      if (y[i] > y[arg]) arg = i;  // strict: ties keep the smallest index
    const double max = y[arg], target_logit = y[target];
    double sum = 0;
    for (size_t i = 0; i < V; ++i) sum += std::exp(double(y[i]) - max);
    const double lse = max + std::log(sum);
    ce += lse - target_logit;
    penalty += max * max;
    if (dlogits) {
      F* d = dlogits + row * V;
      for (size_t i = 0; i < V; ++i) d[i] = F(std::exp(double(y[i]) - lse) * inv_R);  // reads y[i] before writing
      d[target] -= F(inv_R);
      if (l2wrap) d[arg] += F(kL2WrapFactor * inv_R * max);
    }
  }
  out.cross_entropy = ce * inv_R;
  out.l2wrap_penalty = l2wrap ? kL2WrapFactor * inv_R * 0.5 * penalty : 0.0;
  return out;
}

template LossValue cross_entropy(const float*, const int32_t*, size_t, size_t, float*, bool, size_t);
template LossValue cross_entropy(const double*, const int32_t*, size_t, size_t, double*, bool, size_t);

}  // namespace rwkv::train
