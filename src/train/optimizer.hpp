// Adam with decoupled weight decay (AdamW) over the parameters of a model in training, with
// the official trainers' parameter groups (spec §7.1, §7.2), and global gradient-norm
// clipping. The learning-rate schedule is the caller's: step() takes the rate to use.
#pragma once
#include <string>
#include <vector>

#include "model/weights.hpp"
#include "train/parameters.hpp"

namespace rwkv::train {

// How the official trainer treats one tensor: learning-rate multiplier, and whether weight
// decay applies (by canonical name; GGUF names, weights.hpp).
//   RWKV-7: att.w0 lr×2; emb, head and the nn.Linear matrices decay; the rest (LoRA
//           matrices, r_k, token-shift weights, norms, …) lr×1 without decay.
//   RWKV-4 (layerwise_lr = 1): time_decay lr×2, time_first lr×3, time_mix_* lr×1; every
//           matrix (emb, head, linears) decays.
struct ParameterGroup {
  double lr_scale = 1.0;
  bool weight_decay = false;
};
ParameterGroup official_group(Arch arch, const std::string& name);

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.99;
  double eps = 1e-8;          // RWKV-4 trainer 1e-8, RWKV-7 trainer 1e-18
  double weight_decay = 0.0;  // applied to the decay group only (demo 0.001 for RWKV-7)
};

// The official defaults of a version: betas (0.9, 0.99), eps 1e-18 for RWKV-7, else 1e-8.
AdamWOptions official_adamw_options(Arch arch, double weight_decay = 0.0);

template <typename F>
class AdamW {
 public:
  // Moments start at zero; groups come from official_group(arch, name) for every parameter.
  AdamW(Parameters<F>& params, Arch arch, AdamWOptions options);

  // One step with base learning rate lr, per element (as DeepSpeed's FusedAdam):
  //   m = β1·m + (1−β1)·g,  v = β2·v + (1−β2)·g²,  m̂ = m/(1−β1^t),  v̂ = v/(1−β2^t),
  //   p −= lr·s·(m̂/(√v̂ + eps) + wd·p)   with s the group's lr_scale, wd its weight decay.
  // Moments and arithmetic in double; the gradients are read, not cleared.
  void step(double lr);

  long long steps() const { return t_; }
  // The moments of parameter i (in Parameters order), and setting them and the step count
  // back, for checkpoints. restore() throws rwkv::Error when a size differs.
  const std::vector<double>& first_moment(size_t i) const { return m_.at(i); }
  const std::vector<double>& second_moment(size_t i) const { return v_.at(i); }
  void restore(size_t i, std::vector<double> m, std::vector<double> v);
  void set_steps(long long t) { t_ = t; }
  const ParameterGroup& group(size_t i) const { return groups_[i]; }

 private:
  Parameters<F>& params_;
  AdamWOptions o_;
  std::vector<ParameterGroup> groups_;      // per parameter, in Parameters order
  std::vector<std::vector<double>> m_, v_;  // per parameter
  long long t_ = 0;
};

// Scales every gradient by max_norm/(‖g‖ + 1e-6) when the global L2 norm ‖g‖ over all
// parameters exceeds max_norm (PyTorch's clip_grad_norm_, as both trainers use with 1.0).
// Returns ‖g‖ before clipping.
template <typename F>
double clip_gradient_norm(Parameters<F>& params, double max_norm);

}  // namespace rwkv::train
