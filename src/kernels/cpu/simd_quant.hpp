// SIMD kernels for the products of ggml block-quantized weights with 8-bit activations
// (Highway, run-time dispatch as in simd.hpp). Each function runs on one thread; the caller
// quantizes the activations once per call and splits the rows over the pool. The scalar
// reference is matmul_quantized_reference (quant_matmul.cpp); the tests compare the two.
#pragma once
#include <cstddef>
#include <cstdint>

#include "io/tensor.hpp"
#include "kernels/cpu/ops.hpp"  // Q8Block, Q8KBlock

namespace rwkv::cpu::simd {

// Y[t·ldy + o] = Σ_i W[o][i]·x[t][i] for rows o in [r0, r1) and tokens t in [0, T), with W a
// row-major matrix of `cols` columns in a 32-value block type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0)
// and x[t] the activations of token t quantized per 32 values (cols / 32 blocks per token).
// Each row is read from memory once per block of tokens (and from L1 for each token of the
// block), so weights stream from memory once per call when the tokens' activations fit in the
// core's cache. Every token is computed by the same operations, whatever T.
// xs holds the blocks' scalars as arrays, [t·blocks + b] (laid out once per product by the
// caller: the kernels load eight blocks' at a time).
struct Q8Scalars {
  const float* d;            // Q8Block::d
  const float* s;            // Q8Block::s
  const int32_t* level_sum;  // Q8Block::level_sum, an exact integer
};
void q8_rows(DType type, const void* W, size_t cols, size_t r0, size_t r1, const Q8Block* x, const Q8Scalars& xs,
             size_t T, float* Y, size_t ldy);

// The same for the K-quants (Q4_K, Q5_K, Q6_K) against activations quantized per 256 values.
void q8k_rows(DType type, const void* W, size_t cols, size_t r0, size_t r1, const Q8KBlock* x, size_t T,
              float* Y, size_t ldy);

// quantize_q8 and quantize_q8_k (ops.hpp) with vectors: the same bits.
void quantize_q8(const float* x, size_t n, Q8Block* out);
void quantize_q8_k(const float* x, size_t n, Q8KBlock* out);

}  // namespace rwkv::cpu::simd
