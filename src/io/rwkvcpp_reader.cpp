// rwkv.cpp `.bin` reader. Note its type ids differ from ggml's GGUF ids (formats.md trap T1).
#include "io/rwkvcpp_reader.hpp"

#include "io/bytes.hpp"
#include "io/error.hpp"
#include "io/mapped_file.hpp"

namespace rwkv {

namespace {
constexpr uint32_t kRwkvCppMagic = 0x67676d66;  // "fmgg" on disk

DType dtype_from_rwkvcpp(uint32_t id, const std::string& where) {
  switch (id) {
    case 0: return DType::F32;
    case 1: return DType::F16;
    case 2: return DType::Q4_0;
    case 3: return DType::Q4_1;
    case 7: return DType::Q5_0;
    case 8: return DType::Q5_1;
    case 9: return DType::Q8_0;
    default: fail(where, ": unknown or unsupported rwkv.cpp data type ", id);
  }
}
}  // namespace

bool is_rwkvcpp_file(const uint8_t* data, size_t size) {
  if (size < 4) return false;
  return load_le32(data) == kRwkvCppMagic;
}

RwkvCppFile read_rwkvcpp(const std::string& path) {
  auto file = MappedFile::open(path);
  ByteReader r(file->data(), file->size(), path);
  RwkvCppFile out;
  if (r.read<uint32_t>("magic") != kRwkvCppMagic) fail(path, ": not an rwkv.cpp model file (bad magic)");
  out.version = r.read<uint32_t>("version");
  if (out.version != 100 && out.version != 101)
    fail(path, ": unsupported rwkv.cpp file version ", out.version, " (expected 100 or 101)");
  out.n_vocab = r.read<uint32_t>("n_vocab");
  out.n_embed = r.read<uint32_t>("n_embed");
  out.n_layer = r.read<uint32_t>("n_layer");
  out.data_type = r.read<uint32_t>("data_type");
  out.tensors.source = path;
  while (!r.at_end()) {
    uint32_t n_dims = r.read<uint32_t>("tensor dim count");
    uint32_t name_len = r.read<uint32_t>("tensor name length");
    uint32_t type_id = r.read<uint32_t>("tensor data type");
    if (n_dims < 1 || n_dims > 3) fail(path, ": tensor at offset ", r.pos(), " has ", n_dims, " dimensions (1 to 3 allowed)");
    if (name_len == 0 || name_len > 1024) fail(path, ": tensor name length ", name_len, " at offset ", r.pos(), " is invalid");
    std::vector<int64_t> ne(n_dims);
    for (auto& d : ne) d = r.read<uint32_t>("tensor dimensions");
    Tensor t;
    t.name = r.read_string(name_len, "tensor name");
    t.dtype = dtype_from_rwkvcpp(type_id, path + ": tensor " + t.name);
    if (out.version == 100 && dtype_is_quantized(t.dtype))
      fail(path, ": tensor ", t.name, " uses the old (version 100) quantized layout, which is not supported; re-quantize it");
    t.shape.assign(ne.rbegin(), ne.rend());
    size_t numel = 1;
    for (int64_t d : ne) {
      if (d <= 0) fail(path, ": tensor ", t.name, " has a zero dimension");
      numel *= static_cast<size_t>(d);  // each d < 2^32 and at most 3 dims: the check below bounds it
      if (numel > r.size()) fail(path, ": tensor ", t.name, " declares more values than the file holds");
    }
    if (ne[0] % static_cast<int64_t>(dtype_block_size(t.dtype)) != 0)
      fail(path, ": tensor ", t.name, " row length ", ne[0], " is not a multiple of the ", dtype_name(t.dtype), " block");
    size_t nbytes = dtype_bytes(t.dtype, numel);
    t.data = r.take(nbytes, ("data of tensor " + t.name).c_str());
    t.owner = file;
    t.mapped = true;
    out.tensors.add(std::move(t));
  }
  return out;
}

}  // namespace rwkv
