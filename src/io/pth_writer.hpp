// Writes tensors as a PyTorch checkpoint in torch.save's zip format (spec §4.1–4.2): a
// protocol-2 pickle of an OrderedDict of tensors rebuilt by torch._utils._rebuild_tensor_v2
// over persistent storages, each storage an aligned stored zip entry. What read_pth reads;
// no model knowledge (the official key names are model/state_dict's business).
#pragma once
#include <string>
#include <vector>

#include "io/tensor.hpp"

namespace rwkv {

struct PthWriteOptions {
  std::string root = "archive";  // the directory every entry lives in
  bool force_zip64 = false;      // ZIP64 records even for a small file (tests)
};

// Writes `tensors` (F32, F16, BF16, F64, I64, I32 or U8; contiguous, shapes as PyTorch sees
// them) in order under their names, one storage per tensor, atomically.
void write_pth(const std::string& path, const std::vector<Tensor>& tensors, const PthWriteOptions& options = {});

}  // namespace rwkv
