// Recurrent state allocation and reset.
#include "model/state.hpp"

#include <algorithm>

namespace rwkv {

State::State(const Hparams& hp)
    : arch_(hp.arch), n_layer_(hp.n_layer), n_embd_(hp.n_embd), dim_att_(hp.dim_att) {
  wkv_size_ = wkv_size(hp);
  data_.resize(size(hp));
  reset();
}

size_t State::wkv_size(const Hparams& hp) {
  return hp.arch == Arch::RWKV4 ? 3 * static_cast<size_t>(hp.dim_att)
                                : static_cast<size_t>(hp.n_head) * hp.head_size * hp.head_size;
}

size_t State::size(const Hparams& hp) {
  return static_cast<size_t>(hp.n_layer) * (2 * static_cast<size_t>(hp.n_embd) + wkv_size(hp));
}

void State::reset() {
  std::fill(data_.begin(), data_.end(), 0.0f);
  if (arch_ == Arch::RWKV4)
    for (int l = 0; l < n_layer_; ++l) std::fill_n(wkv(l) + 2 * dim_att_, dim_att_, -1e30f);
}

}  // namespace rwkv
