// Canonical weights back to an official RWKV-LM state dict (the inverse of
// canonical_from_state_dict for RWKV-4 and RWKV-7): the trainers' key names, the (1,1,C)
// shapes, RWKV-7's (in, out) low-rank matrices; and saving it as a .pth (io/pth_writer).
#pragma once
#include <string>
#include <vector>

#include "io/tensor.hpp"
#include "model/weights.hpp"

namespace rwkv {

// The tensors of the official state dict, in the trainer's module order, values in `type`
// (F32, F16 or BF16). RWKV-7's layer 0 gets zero v0/v1/v2, which it never uses but the
// official model class declares (spec §3.1). Throws rwkv::Error for other versions.
std::vector<Tensor> official_state_dict(const Weights& w, DType type = DType::F32);

// Writes official_state_dict(w, type) as a .pth that torch.load and read_pth read.
void save_pth(const Weights& w, const std::string& path, DType type = DType::F32);

}  // namespace rwkv
