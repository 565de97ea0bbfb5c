// A model in training: its parameters, a time-parallel forward over a batch of sequences
// that keeps the activations the backward needs, the loss, and the hand-written backward.
// This file holds the skeleton shared by the versions (spec §1.1: embedding, ln0, blocks,
// ln_out, head); rwkv4_train.cpp and rwkv7_train.cpp hold their blocks. Not the optimizer.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/buffers.hpp"  // RecycledVector, for the per-step buffers
#include "model/weights.hpp"
#include "train/loss.hpp"
#include "train/parameters.hpp"
#include "train/tensor_math.hpp"

namespace rwkv::train {

// B sequences of T tokens, each starting from a fresh (zero) state; sequence b is
// inputs[b·T … b·T + T−1] and targets holds the token that should follow each input.
struct Batch {
  size_t B = 0, T = 0;
  std::span<const int32_t> inputs, targets;
  // The positions the loss is a mean over (0 = B·T): a part of a larger batch gives the larger
  // count, so that the losses and gradients of the parts add up to the whole's (data_parallel).
  size_t mean_over = 0;
};

template <typename F>
class TrainModel {
 public:
  // RWKV-4 or RWKV-7 weights in canonical form (any element type; decoded to F).
  static std::unique_ptr<TrainModel> from_weights(const Weights& w);
  virtual ~TrainModel() = default;

  const Hparams& hparams() const { return hp_; }
  Parameters<F>& parameters() { return params_; }
  const Parameters<F>& parameters() const { return params_; }
  // The current values as canonical float32 weights: Model::from_weights runs them and
  // save_gguf writes them.
  Weights to_weights() const;

  // Mean cross-entropy of the batch (and the L2Wrap penalty, see loss.hpp), forward only.
  LossValue loss(const Batch& batch, bool l2wrap = true);
  // The same, then the backward: ADDS the gradient of the mean cross-entropy (with the
  // L2Wrap term when l2wrap) into every parameter's grad.
  LossValue forward_backward(const Batch& batch, bool l2wrap = true);
  // The logits of all B·T positions, (B·T)×V, forward only.
  std::vector<F> logits(size_t B, size_t T, std::span<const int32_t> inputs);

 protected:
  explicit TrainModel(const Weights& w);

  // The blocks of one version. z: the LayerNorm output, R×C (R = B_·T_); out: R×C. Forward
  // keeps what the backward of the same layer needs; backward ADDS ∂L/∂z into dz given
  // dout = ∂L/∂out, and the parameter gradients into their grads. Backward runs layers
  // from the last to the first, after the forward of the same batch.
  virtual void time_mix_forward(int l, const F* z, F* out) = 0;
  virtual void time_mix_backward(int l, const F* dout, F* dz) = 0;
  virtual void channel_mix_forward(int l, const F* z, F* out) = 0;
  virtual void channel_mix_backward(int l, const F* dout, F* dz) = 0;

  Parameter<F>& take(const Weights& w, const std::string& name, const std::vector<int64_t>& shape) {
    return params_.take(w, name, shape);
  }

  Hparams hp_;
  Parameters<F> params_;
  std::string path_;       // of the weights, kept for to_weights (save_gguf names the model after it)
  std::shared_ptr<const GgufMetadata> tokenizer_;  // of the weights, kept for to_weights
  size_t B_ = 0, T_ = 0;  // of the batch in flight

 private:
  // Runs the model over inputs; leaves the logits in logits_.
  void forward(size_t B, size_t T, std::span<const int32_t> inputs);
  void backward();  // from the gradient of the logits, in logits_

  Parameter<F> *emb_, *ln0_w_ = nullptr, *ln0_b_ = nullptr, *ln_out_w_, *ln_out_b_, *head_;
  std::vector<Parameter<F>*> ln1_w_, ln1_b_, ln2_w_, ln2_b_;
  // Activations of the batch in flight.
  std::vector<int32_t> tokens_;
  NormSaved<F> ln0_saved_, ln_out_saved_;
  std::vector<NormSaved<F>> ln1_saved_, ln2_saved_;
  std::vector<F> z_out_, logits_;  // ln_out output (R×C); logits, then their gradient (R×V)
};

template <typename F>
std::unique_ptr<TrainModel<F>> make_rwkv4_train(const Weights& w);
template <typename F>
std::unique_ptr<TrainModel<F>> make_rwkv7_train(const Weights& w);

}  // namespace rwkv::train
