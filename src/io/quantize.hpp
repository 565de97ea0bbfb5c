// Encoding float32 values into the element types we can store: the ggml block types (with
// ggml's reference rounding for the 32-value types, and a scale search of our own for the
// K-quants) and the plain float types. Decoding is `dequantize` in tensor.hpp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "io/tensor.hpp"

namespace rwkv {

// Encodes n values as type t (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K,
// Q6_K). n must be a multiple of the block size and the values finite (throws otherwise).
//   Q8_0, Q4_0, Q5_0: d from the value of largest magnitude, levels rounded as ggml's
//     quantize_row_*_ref do (bit-identical bytes).
//   Q4_1, Q5_1: d and m from the minimum and maximum, likewise bit-identical.
//   Q4_K, Q5_K, Q6_K: per sub-block, a small search over scales with a least-squares refit,
//     then the sub-block scales quantized against the super-block scale(s). Valid ggml blocks
//     with errors comparable to llama.cpp's; the bytes are not llama.cpp's.
std::vector<uint8_t> quantize(DType t, const float* x, size_t n);

// Types `quantize` can write, by dtype_name ("q4_k", "f16", ...); throws for anything else.
DType storable_type_from_name(const std::string& name);

}  // namespace rwkv
