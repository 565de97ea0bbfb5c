// Matrix products with ggml block-quantized weights: activations quantized per block of 32 to
// 8 bits (Q8_0 for the symmetric types, Q8_1 for Q4_1/Q5_1), integer dot products per block,
// scaled by the two block scales (GG src/ggml-quants.c, vec_dot_*). Scalar reference code;
// the vectorised kernels belong to the CPU-speed work.
#include <cmath>
#include <cstring>
#include <vector>

#include "io/error.hpp"
#include "kernels/cpu/ops.hpp"

namespace rwkv::cpu {

namespace {
uint16_t u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t u32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
float h2f(const uint8_t* p) { return fp16_to_fp32(u16(p)); }

// Unpacks the 32 integer levels of one weight block (before the scale and the offset).
void levels(DType t, const uint8_t* b, int* q) {
  switch (t) {
    case DType::Q4_0:
      for (int j = 0; j < 16; ++j) { q[j] = (b[2 + j] & 15) - 8; q[j + 16] = (b[2 + j] >> 4) - 8; }
      return;
    case DType::Q4_1:
      for (int j = 0; j < 16; ++j) { q[j] = b[4 + j] & 15; q[j + 16] = b[4 + j] >> 4; }
      return;
    case DType::Q5_0: {
      const uint32_t qh = u32(b + 2);
      for (int j = 0; j < 16; ++j) {
        q[j] = ((b[6 + j] & 15) | (((qh >> j) & 1) << 4)) - 16;
        q[j + 16] = ((b[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
      }
      return;
    }
    case DType::Q5_1: {
      const uint32_t qh = u32(b + 4);
      for (int j = 0; j < 16; ++j) {
        q[j] = (b[8 + j] & 15) | (((qh >> j) & 1) << 4);
        q[j + 16] = (b[8 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      }
      return;
    }
    case DType::Q8_0:
      for (int j = 0; j < 32; ++j) q[j] = static_cast<int8_t>(b[2 + j]);
      return;
    default: fail("matmul: ", dtype_name(t), " is not a block type");
  }
}
}  // namespace

void quantize_q8(const float* x, size_t n, Q8Block* out) {
  for (size_t b = 0; b < n / 32; ++b, x += 32) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      out[b].q[j] = static_cast<int8_t>(std::round(x[j] * id));
      sum += out[b].q[j];
    }
    out[b].d = fp16_to_fp32(fp32_to_fp16(d));
    out[b].s = fp16_to_fp32(fp32_to_fp16(static_cast<float>(sum) * d));
  }
}

void matmul_quantized(const float* X, size_t T, const Matrix& W, float* Y) {
  const size_t nb = W.cols / 32, row_bytes = nb * dtype_block_bytes(W.type);
  if (nb * 32 != W.cols) fail("matmul: row length ", W.cols, " is not a multiple of 32");
  const bool has_min = W.type == DType::Q4_1 || W.type == DType::Q5_1;
  std::vector<Q8Block> xq(nb);
  int q[32];
  for (size_t t = 0; t < T; ++t) {
    quantize_q8(X + t * W.cols, W.cols, xq.data());
    for (size_t o = 0; o < W.rows; ++o) {
      const uint8_t* row = static_cast<const uint8_t*>(W.data) + o * row_bytes;
      float sum = 0;
      for (size_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + b * dtype_block_bytes(W.type);
        levels(W.type, blk, q);
        int dot = 0;
        for (int j = 0; j < 32; ++j) dot += q[j] * xq[b].q[j];
        sum += h2f(blk) * xq[b].d * static_cast<float>(dot);
        if (has_min) sum += h2f(blk + 2) * xq[b].s;  // the block minimum m times Σx
      }
      Y[t * W.rows + o] = sum;
    }
  }
}

}  // namespace rwkv::cpu
