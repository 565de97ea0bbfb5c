// Reader of rwkv.cpp's `.bin` model files (spec §5.1): a 24-byte header and a flat list of
// tensors. Tensors are returned exactly as stored (names and values as rwkv.cpp wrote them);
// undoing rwkv.cpp's transformations is the model loader's job.
#pragma once
#include <cstdint>
#include <string>

#include "io/tensor.hpp"

namespace rwkv {

struct RwkvCppFile {
  uint32_t version = 0;  // 100 or 101
  uint32_t n_vocab = 0, n_embed = 0, n_layer = 0;
  uint32_t data_type = 0;  // rwkv.cpp type id of most weights (informational)
  TensorSet tensors;       // shapes in PyTorch order (the file's ne reversed)
};

// True if the file starts with the rwkv.cpp magic.
bool is_rwkvcpp_file(const uint8_t* data, size_t size);
RwkvCppFile read_rwkvcpp(const std::string& path);

}  // namespace rwkv
