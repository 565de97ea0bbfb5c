// ggml's K-quant super-blocks (GG src/ggml-common.h): 256 values per block, split into
// sub-blocks that each have a small integer scale. Unpacking to integer levels and scales and
// packing them back; no arithmetic on values (dequantize, quantize and the matmul use these).
#pragma once
#include <cstddef>
#include <cstdint>

namespace rwkv::kquant {

constexpr size_t kBlock = 256;  // ggml's QK_K

// Byte offsets inside one super-block.
//   Q4_K (144 B): f16 d @0, f16 dmin @2, scales[12] @4, qs[128] @16 (4-bit levels)
//   Q5_K (176 B): f16 d @0, f16 dmin @2, scales[12] @4, qh[32] @16 (5th bits), qs[128] @48
//   Q6_K (210 B): ql[128] @0 (low 4 bits), qh[64] @128 (high 2 bits), int8 scales[16] @192,
//                 f16 d @208
constexpr size_t kQ4KBytes = 144, kQ5KBytes = 176, kQ6KBytes = 210;

// Q4_K and Q5_K: value i of sub-block j (32 values) is d·scale[j]·q − dmin·min[j], with
// 6-bit scale[j] and min[j] packed into 12 bytes: j < 4 use the low 6 bits of bytes j and j+4;
// j ≥ 4 use the nibbles of byte j+4 (scale low, min high) and the top 2 bits of bytes j−4
// (scale) and j (min) as their bits 4–5.
void unpack_scales(const uint8_t* packed, uint8_t scale[8], uint8_t min[8]);
void pack_scales(const uint8_t scale[8], const uint8_t min[8], uint8_t* packed);  // values < 64

// Levels of one super-block in value order: Q4_K 0..15, Q5_K 0..31, Q6_K −32..31.
// 4-bit levels: byte l of the c-th 32-byte group of qs holds value 64c+l (low nibble) and
// 64c+32+l (high nibble). Q5_K's 5th bit of value 64c+l is bit 2c of qh[l], of 64c+32+l bit
// 2c+1. Q6_K, per half h of 128 values: ql[64h+l] holds values 128h+l (low) and 128h+64+l
// (high), ql[64h+32+l] values 128h+32+l and 128h+96+l; qh[32h+l] bits 0–1, 2–3, 4–5, 6–7
// are the high bits of values 128h+l, +32, +64, +96. Q6_K's scale[i/16] applies to value i.
void levels_q4_k(const uint8_t* block, int8_t q[kBlock]);
void levels_q5_k(const uint8_t* block, int8_t q[kBlock]);
void levels_q6_k(const uint8_t* block, int8_t q[kBlock]);
void pack_q4_k(const uint8_t q[kBlock], uint8_t* block);  // the qs part only
void pack_q5_k(const uint8_t q[kBlock], uint8_t* block);  // the qh and qs parts
void pack_q6_k(const int8_t q[kBlock], uint8_t* block);   // the ql and qh parts

// Decodes one super-block to 256 floats, with ggml's order of float operations
// (dequantize_row_q*_K), so the values are bit-identical to ggml's.
void dequantize_q4_k(const uint8_t* block, float* y);
void dequantize_q5_k(const uint8_t* block, float* y);
void dequantize_q6_k(const uint8_t* block, float* y);

}  // namespace rwkv::kquant
