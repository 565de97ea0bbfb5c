// Products of float16 and bfloat16 matrices on bfloat16 dot products (AVX512_BF16's vdpbf16ps:
// in each float32 lane, the sum of two bfloat16 products, so twice the multiply-adds of a
// float32 FMA per instruction), for many tokens (prefill). Both operands are rounded to
// bfloat16, to nearest even: the activations once per product (round_bf16), float16 weights
// as each block of panels is unpacked (bfloat16 weights are used as stored). A product of two
// bfloat16 values is exact in float32; the sums are float32.
#pragma once
#include <cstddef>
#include <cstdint>

#include "io/tensor.hpp"

namespace rwkv::cpu::simd {

// Whether the CPU has AVX512_BF16 and the kernels below run here (an x86-64 build with AVX-512).
bool bf16_dots_supported();

// Xb[t·bf16_stride(cols) + i] = bfloat16(X[t·cols + i]) rounded to nearest even, and 0 at
// i = cols where cols is odd (the dot products take values in pairs).
inline size_t bf16_stride(size_t cols) { return cols + (cols & 1); }
void round_bf16(const float* X, size_t T, size_t cols, uint16_t* Xb);

// A few tokens (bf16_packs(T): batched decode) are read packed instead, in groups of tokens, each
// group pair by pair: the pair (2p, 2p + 1) of token t0 + j of the group of nt tokens that starts
// at t0 at Xb[t0·bf16_stride(cols) + 2(p·nt + j)] (+1). round_bf16_packed makes that layout
// from X (T·bf16_stride(cols) values), once per product.
constexpr size_t kBf16UnpackMinTokens = 96;
inline bool bf16_packs(size_t T) { return T < kBf16UnpackMinTokens; }
void round_bf16_packed(const float* X, size_t T, size_t cols, uint16_t* Xb);

// Y[t·ldy + o] = Σ_i Xb[t][i] · bfloat16(W[o][i]) for rows o in [r0, r1) (multiples of
// kPanelRows) and T tokens, from the sixteen-row panels P of a float16 or bfloat16 matrix
// (simd.hpp); Xb as round_bf16 makes it, or round_bf16_packed where bf16_packs(T). Only where
// bf16_dots_supported().
void panel_rows_bf16(DType type, const void* P, size_t cols, size_t r0, size_t r1, const uint16_t* Xb, size_t T,
                     float* Y, size_t ldy);

}  // namespace rwkv::cpu::simd
