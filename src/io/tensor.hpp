// Tensors as the file readers hand them over: a name, an element type, a shape in PyTorch
// order (outermost first, row-major, contiguous) and a pointer to bytes kept alive by `owner`
// (a file mapping or an owned buffer). Plus the element types and their decoding to float32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace rwkv {

// Element types. Block types follow ggml's layouts (32 values per block along the innermost
// dimension; 256 for the K-quants Q4_K, Q5_K, Q6_K). The numbering is ours: each file format
// maps its own type ids to these.
enum class DType : uint8_t { F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, F64, I64, I32, U8, Q4_K, Q5_K, Q6_K };

const char* dtype_name(DType t);
// Values per block (1 for plain types) and bytes per block.
size_t dtype_block_size(DType t);
size_t dtype_block_bytes(DType t);
bool dtype_is_quantized(DType t);
// Bytes for n values; n must be a multiple of the block size (throws otherwise).
size_t dtype_bytes(DType t, size_t n);

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);  // round to nearest even
float bf16_to_fp32(uint16_t b);
uint16_t fp32_to_bf16(float f);  // round to nearest even (NaN stays NaN)

// Decodes n values of type t (n a multiple of the block size) to float32.
void dequantize(DType t, const void* src, float* dst, size_t n);

// The dimensions of a shape other than those of size 1: shapes that differ only by such
// dimensions ([1, 1, C] and [C]) hold the same values in the same order.
std::vector<int64_t> squeezed(const std::vector<int64_t>& shape);

struct Tensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // PyTorch order
  const uint8_t* data = nullptr;
  std::shared_ptr<const void> owner;
  // The data lie in a read-only file mapping (owner): pages of it can be let go
  // (drop_mapped_pages) and are read again from the file if touched.
  bool mapped = false;

  size_t numel() const;
  size_t nbytes() const { return dtype_bytes(dtype, numel()); }
  std::string shape_string() const;  // e.g. "[768, 512]"
  // All values decoded to float32.
  std::vector<float> to_f32() const;
};

// Makes a float32 tensor that owns its values.
Tensor make_f32_tensor(std::string name, std::vector<int64_t> shape, std::vector<float> values);
// Makes a tensor of type t that owns a copy of `bytes`.
Tensor make_owned_tensor(std::string name, DType t, std::vector<int64_t> shape,
                         std::vector<uint8_t> bytes);

// Ordered collection of tensors by name, as read from one file.
class TensorSet {
 public:
  void add(Tensor t);  // throws on a duplicate name
  const Tensor* find(const std::string& name) const;
  const Tensor& get(const std::string& name) const;  // throws "missing tensor NAME"
  const std::vector<Tensor>& tensors() const { return tensors_; }
  std::vector<Tensor>& tensors() { return tensors_; }
  size_t size() const { return tensors_.size(); }
  std::string source;  // file path, for messages

 private:
  std::vector<Tensor> tensors_;
  std::map<std::string, size_t> index_;
};

}  // namespace rwkv
