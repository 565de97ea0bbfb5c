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
// W8 (may be null): W's rows (all `rows` of them) also interleaved by eights (interleave_rows8),
// read where the CPU has the eight-row kernel (rows8_kernel). Either way each row's result is
// the same bits.
void q8_rows(DType type, const void* W, const void* W8, size_t rows, size_t cols, size_t r0, size_t r1,
             const Q8Block* x, const Q8Scalars& xs, size_t T, float* Y, size_t ldy);

// The eight-row layouts (has_rows8_layout). The 32-value types: rows in groups of 8; per group,
// per block column, the 8 rows' fp16 scales d (16 bytes); Q4_1 and Q5_1: their fp16 minimums
// (16 bytes); Q5_0 and Q5_1: their fifth bits, one 32-bit word per row, bit 8i + 2k + h the
// fifth bit of the level in the low (h = 0) or high (h = 1) nibble of byte i of vector k
// below; then their levels in 32-byte vectors whose 4-byte lane r holds 4 levels of row r:
// the bytes qs[4k .. 4k + 3] of row r's block in vector k (4 vectors for the 4- and 5-bit
// types, whose byte j holds levels j and j + 16; 8 for Q8_0). The same size as the rows it
// holds. With 4 activations broadcast to every lane, pmaddubsw and pmaddwd then leave each
// row's sum in its own lane: no horizontal adds; a shift and a mask put the fifth bits of a
// vector's nibbles in place. Where rows8_pairs(type) (every type here, on CPUs with
// AVX512-VNNI, whose kernels read sixteen rows at once), the groups of each whole pair (rows
// 16p to 16p + 15) take turns by block (super-block) column: group 2p's column b, then group
// 2p + 1's, then both groups' column b + 1; a last group without a partner is laid out alone.
// The same size.
//
// Q4_K: per group, per super-block column (kRows8Q4KBytes): the 8 rows' fp16 d (16 bytes) and
// dmin (16), their sub-block scales and minimums unpacked to bytes (for each pair p of
// sub-blocks, 8 rows of sub-block 2p then 8 of 2p + 1: 64 bytes each), then for each 64-value
// chunk c 8 vectors whose lane r holds bytes qs[32c + 4k .. 4k + 3] of row r (low nibbles:
// sub-block 2c, high: 2c + 1). 1184 bytes for the 1152 of the 8 super-blocks it holds.
// Q5_K (kRows8Q5KBytes): the same, with the fifth bits between the minimums and the levels:
// per chunk c, for vectors 0–3 and then 4–7, one word per row as the 32-value types have
// (1440 bytes for 1408).
// Q6_K (kRows8Q6KBytes, the same size as its rows): per group, per super-block column, the 8
// rows' fp16 d (16 bytes), their int8 scales (8 rows of sub-block j at 16 + 8j), then for each
// 32-byte piece ch = 2h + c of ql the 8 vectors as above (low nibbles: values 128h + 32c + l,
// high: + 64), then for each piece 4 vectors of words, one per row: in word j, bits
// 8i + 4kk + 2n and + 1 are the two high bits of the low (n = 0) or high (n = 1) nibble of byte
// i of vector 2j + kk.
constexpr size_t kRows8Q4KBytes = 1184, kRows8Q5KBytes = 1440, kRows8Q6KBytes = 1680;
bool has_rows8_layout(DType type);
size_t rows8_bytes(DType type, size_t rows, size_t cols);  // rows a multiple of 8
// Whether this CPU's kernels read that layout (AVX2 and up).
bool rows8_kernel();
// Whether interleave_rows8 lays out this type's groups in pairs on this CPU (above).
bool rows8_pairs(DType type);
// Writes rows [0, rows) of W (rows a multiple of 8) in that layout.
void interleave_rows8(DType type, const void* W, size_t rows, size_t cols, void* out);

// The same for the K-quants (Q4_K, Q5_K, Q6_K) against activations quantized per 256 values.
// W8 as for q8_rows.
void q8k_rows(DType type, const void* W, const void* W8, size_t rows, size_t cols, size_t r0, size_t r1, const Q8KBlock* x,
              size_t T, float* Y, size_t ldy);

// quantize_q8 and quantize_q8_k (ops.hpp) with vectors: the same bits.
void quantize_q8(const float* x, size_t n, Q8Block* out);
void quantize_q8_k(const float* x, size_t n, Q8KBlock* out);

}  // namespace rwkv::cpu::simd
