// The skeleton of training (spec §1.1) forward and backward: embedding, ln0, the blocks of
// the version, ln_out, head and the loss.
#include "train/train_model.hpp"

#include <algorithm>

#include "io/error.hpp"

namespace rwkv::train {

template <typename F>
std::unique_ptr<TrainModel<F>> TrainModel<F>::from_weights(const Weights& w) {
  switch (w.hp.arch) {
    case Arch::RWKV4: return make_rwkv4_train<F>(w);
    case Arch::RWKV7: return make_rwkv7_train<F>(w);
    default: fail(w.path, ": training supports RWKV-4 and RWKV-7 models, not RWKV-", w.hp.version_name());
  }
}

template <typename F>
TrainModel<F>::TrainModel(const Weights& w) : hp_(w.hp), path_(w.path), tokenizer_(w.tokenizer) {
  const int64_t C = hp_.n_embd, V = hp_.vocab_size;
  if (hp_.n_layer <= 0 || C <= 0 || V <= 0) fail(w.path, ": empty model");
  if (hp_.has_head_bias || hp_.has_att_output_bias || hp_.rescale_every > 0)
    fail(w.path, ": training does not support head or attention-output biases or rescaled layers");
  emb_ = &take(w, "token_embd.weight", {V, C});
  if (hp_.has_ln0) {
    ln0_w_ = &take(w, "token_embd_norm.weight", {C});
    ln0_b_ = &take(w, "token_embd_norm.bias", {C});
  }
  ln_out_w_ = &take(w, "output_norm.weight", {C});
  ln_out_b_ = &take(w, "output_norm.bias", {C});
  head_ = &take(w, "output.weight", {V, C});
  for (int l = 0; l < hp_.n_layer; ++l) {
    ln1_w_.push_back(&take(w, Weights::layer(l, "attn_norm.weight"), {C}));
    ln1_b_.push_back(&take(w, Weights::layer(l, "attn_norm.bias"), {C}));
    ln2_w_.push_back(&take(w, Weights::layer(l, "attn_norm_2.weight"), {C}));
    ln2_b_.push_back(&take(w, Weights::layer(l, "attn_norm_2.bias"), {C}));
  }
}

template <typename F>
Weights TrainModel<F>::to_weights() const {
  Weights w;
  w.path = path_;
  w.format = "training";
  w.hp = hp_;
  w.tensors = params_.to_tensors();
  w.tensors.source = path_;
  w.tokenizer = tokenizer_;  // a trained model keeps the tokenizer it was trained with
  infer_hparams(w.tensors, w.hp);
  return w;
}

template <typename F>
void TrainModel<F>::forward(size_t B, size_t T, std::span<const int32_t> inputs) {
  if (B == 0 || T == 0) fail("training: empty batch");
  if (inputs.size() != B * T) fail("training: ", inputs.size(), " input tokens for ", B, " sequences of ", T);
  const size_t C = hp_.n_embd, V = hp_.vocab_size, R = B * T, L = hp_.n_layer;
  const F eps = F(hp_.layer_norm_eps);
  B_ = B;
  T_ = T;
  tokens_.assign(inputs.begin(), inputs.end());
  RecycledVector<F> x(R * C), z(R * C), out(R * C);
  for (size_t row = 0; row < R; ++row) {
    const int32_t id = tokens_[row];
    if (id < 0 || size_t(id) >= V) fail("token id ", id, " is out of range (vocabulary size ", V, ")");
    std::copy_n(&emb_->value[size_t(id) * C], C, &x[row * C]);
  }
  if (ln0_w_) norm_forward(x.data(), R, 1, C, ln0_w_->value.data(), ln0_b_->value.data(), eps, x.data(), ln0_saved_);
  ln1_saved_.resize(L);
  ln2_saved_.resize(L);
  for (size_t l = 0; l < L; ++l) {
    norm_forward(x.data(), R, 1, C, ln1_w_[l]->value.data(), ln1_b_[l]->value.data(), eps, z.data(), ln1_saved_[l]);
    time_mix_forward(int(l), z.data(), out.data());
    for (size_t i = 0; i < R * C; ++i) x[i] += out[i];
    norm_forward(x.data(), R, 1, C, ln2_w_[l]->value.data(), ln2_b_[l]->value.data(), eps, z.data(), ln2_saved_[l]);
    channel_mix_forward(int(l), z.data(), out.data());
    for (size_t i = 0; i < R * C; ++i) x[i] += out[i];
  }
  z_out_.resize(R * C);
  norm_forward(x.data(), R, 1, C, ln_out_w_->value.data(), ln_out_b_->value.data(), eps, z_out_.data(), ln_out_saved_);
  logits_.resize(R * V);
  linear(z_out_.data(), R, head_->value.data(), V, C, logits_.data());
}

template <typename F>
void TrainModel<F>::backward() {
  const size_t C = hp_.n_embd, V = hp_.vocab_size, R = B_ * T_, L = hp_.n_layer;
  RecycledVector<F> dz_out(R * C, F(0)), dx(R * C, F(0)), dz(R * C);
  linear_backward(z_out_.data(), head_->value.data(), logits_.data(), R, V, C, dz_out.data(), head_->grad.data());
  norm_backward(dz_out.data(), R, 1, C, ln_out_w_->value.data(), ln_out_saved_, dx.data(), ln_out_w_->grad.data(),
                ln_out_b_->grad.data());
  // dx is ∂L/∂x after each block; x_out = x_in + f(LN(x_in)) adds LN's backward of ∂L/∂z.
  for (size_t l = L; l-- > 0;) {
    std::fill(dz.begin(), dz.end(), F(0));
    channel_mix_backward(int(l), dx.data(), dz.data());
    norm_backward(dz.data(), R, 1, C, ln2_w_[l]->value.data(), ln2_saved_[l], dx.data(), ln2_w_[l]->grad.data(),
                  ln2_b_[l]->grad.data());
    std::fill(dz.begin(), dz.end(), F(0));
    time_mix_backward(int(l), dx.data(), dz.data());
    norm_backward(dz.data(), R, 1, C, ln1_w_[l]->value.data(), ln1_saved_[l], dx.data(), ln1_w_[l]->grad.data(),
                  ln1_b_[l]->grad.data());
  }
  if (ln0_w_) {
    std::fill(dz.begin(), dz.end(), F(0));
    norm_backward(dx.data(), R, 1, C, ln0_w_->value.data(), ln0_saved_, dz.data(), ln0_w_->grad.data(),
                  ln0_b_->grad.data());
    dx.swap(dz);
  }
  for (size_t row = 0; row < R; ++row) {  // the embedding: scatter-add by token
    F* g = &emb_->grad[size_t(tokens_[row]) * C];
    for (size_t c = 0; c < C; ++c) g[c] += dx[row * C + c];
  }
}

namespace {
void check_targets(const Batch& batch) {
  if (batch.targets.size() != batch.B * batch.T)
    fail("training: ", batch.targets.size(), " targets for ", batch.B, " sequences of ", batch.T, " tokens");
}
}  // namespace

template <typename F>
LossValue TrainModel<F>::loss(const Batch& batch, bool l2wrap) {
  check_targets(batch);
  forward(batch.B, batch.T, batch.inputs);
  return cross_entropy<F>(logits_.data(), batch.targets.data(), batch.B * batch.T, hp_.vocab_size, nullptr, l2wrap,
                          batch.mean_over);
}

template <typename F>
LossValue TrainModel<F>::forward_backward(const Batch& batch, bool l2wrap) {
  check_targets(batch);
  forward(batch.B, batch.T, batch.inputs);
  const LossValue v =
      cross_entropy<F>(logits_.data(), batch.targets.data(), batch.B * batch.T, hp_.vocab_size, logits_.data(), l2wrap,
                       batch.mean_over);
  backward();
  return v;
}

template <typename F>
std::vector<F> TrainModel<F>::logits(size_t B, size_t T, std::span<const int32_t> inputs) {
  forward(B, T, inputs);
  return logits_;
}

template class TrainModel<float>;
template class TrainModel<double>;

}  // namespace rwkv::train
