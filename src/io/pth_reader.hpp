// Reads the tensors of an official PyTorch checkpoint (torch.save, zip format; spec §4.1–4.2)
// without running its pickle. Not for legacy (pre-1.6) files, TorchScript archives or big-endian data.
#pragma once
#include <string>

#include "io/tensor.hpp"

namespace rwkv {

// The top-level dict's tensors, in file order, named by their keys, with shapes as stored
// (PyTorch order) and dtypes F32/F16/BF16/F64/I64/I32/U8 (bool as U8). Contiguous tensors point
// into the file mapping; non-contiguous views are copied. Entries that are not tensors are
// skipped. Throws an Error naming the file (and tensor) for anything malformed.
TensorSet read_pth(const std::string& path);

}  // namespace rwkv
