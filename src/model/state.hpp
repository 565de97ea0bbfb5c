// The recurrent state of a model: everything RNN mode carries from one token to the next.
// Owned by the caller; copy it to branch, reset it to start over. Layout per layer:
// att_x (C), ffn_x (C), then the WKV state (RWKV-4: aa, bb, pp of A each; RWKV-5/6/7: H·N·N).
#pragma once
#include <cstddef>
#include <vector>

#include "model/weights.hpp"

namespace rwkv {

class State {
 public:
  State() = default;
  explicit State(const Hparams& hp);
  static size_t size(const Hparams& hp);  // floats in a model's state (data().size())

  void reset();  // the fresh state: zeros, and pp = −1e30 for RWKV-4 (spec §2.3)
  float* att_x(int l) { return layer(l); }
  float* ffn_x(int l) { return layer(l) + n_embd_; }
  float* wkv(int l) { return layer(l) + 2 * n_embd_; }
  size_t wkv_size() const { return wkv_size_; }
  std::vector<float>& data() { return data_; }
  const std::vector<float>& data() const { return data_; }
  Arch arch() const { return arch_; }

 private:
  float* layer(int l) { return data_.data() + static_cast<size_t>(l) * per_layer(); }
  size_t per_layer() const { return 2 * n_embd_ + wkv_size_; }
  static size_t wkv_size(const Hparams& hp);
  Arch arch_ = Arch::RWKV7;
  int n_layer_ = 0;
  size_t n_embd_ = 0, dim_att_ = 0, wkv_size_ = 0;
  std::vector<float> data_;
};

}  // namespace rwkv
