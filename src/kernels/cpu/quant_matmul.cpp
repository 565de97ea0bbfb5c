// Matrix products with ggml block-quantized weights: activations quantized per block of 32 to
// 8 bits (Q8_0 for the symmetric types, Q8_1 for Q4_1/Q5_1), integer dot products per block,
// scaled by the two block scales (GG src/ggml-quants.c, vec_dot_*). K-quant weights take
// activations quantized per 256 values (Q8_K) and sum integer dots per sub-block times the
// sub-block's integer scale. matmul_quantized_reference is the scalar reference; matmul_quantized
// quantizes the activations once per call and runs the SIMD kernels of simd_quant.hpp on the
// thread pool.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "io/error.hpp"
#include "io/k_quants.hpp"
#include "kernels/cpu/ops.hpp"
#include "kernels/cpu/simd_quant.hpp"
#include "kernels/cpu/thread_pool.hpp"

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

// ---- K-quants: one super-block of weights · one Q8_K block of activations

int dot32(const int8_t* a, const int8_t* b) {
  int s = 0;
  for (int l = 0; l < 32; ++l) s += a[l] * b[l];
  return s;
}

// Q4_K and Q5_K: Σ_j (d·scale_j·Σ q·x − dmin·min_j·Σ x) over the 8 sub-blocks of 32; the
// activation sums come from the 16-value sums of the Q8_K block.
float dot_scaled_with_min(const uint8_t* w, const int8_t q[kquant::kBlock], const Q8KBlock& x) {
  uint8_t scale[8], min[8];
  kquant::unpack_scales(w + 4, scale, min);
  int sum = 0, min_sum = 0;
  for (int j = 0; j < 8; ++j) {
    sum += scale[j] * dot32(q + 32 * j, x.q + 32 * j);
    min_sum += min[j] * (x.bsums[2 * j] + x.bsums[2 * j + 1]);
  }
  return h2f(w) * x.d * static_cast<float>(sum) - h2f(w + 2) * x.d * static_cast<float>(min_sum);
}

float dot_q4_k(const uint8_t* w, const Q8KBlock& x) {
  int8_t q[kquant::kBlock];
  kquant::levels_q4_k(w, q);
  return dot_scaled_with_min(w, q, x);
}

float dot_q5_k(const uint8_t* w, const Q8KBlock& x) {
  int8_t q[kquant::kBlock];
  kquant::levels_q5_k(w, q);
  return dot_scaled_with_min(w, q, x);
}

// Q6_K: d·Σ_g scale_g·Σ q·x over the 16 sub-blocks of 16.
float dot_q6_k(const uint8_t* w, const Q8KBlock& x) {
  int8_t q[kquant::kBlock];
  kquant::levels_q6_k(w, q);
  const int8_t* scale = reinterpret_cast<const int8_t*>(w + 192);
  int sum = 0;
  for (int g = 0; g < 16; ++g) {
    int s = 0;
    for (int l = 0; l < 16; ++l) s += q[16 * g + l] * x.q[16 * g + l];
    sum += scale[g] * s;
  }
  return h2f(w + 208) * x.d * static_cast<float>(sum);
}

bool is_k_quant(DType t) { return t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K; }

void matmul_k_quant_reference(const float* X, size_t T, const Matrix& W, float* Y) {
  const size_t nb = W.cols / kquant::kBlock, block_bytes = dtype_block_bytes(W.type);
  if (nb * kquant::kBlock != W.cols) fail("matmul: row length ", W.cols, " is not a multiple of 256");
  float (*dot)(const uint8_t*, const Q8KBlock&) =
      W.type == DType::Q4_K ? dot_q4_k : W.type == DType::Q5_K ? dot_q5_k : dot_q6_k;
  std::vector<Q8KBlock> xq(nb);
  for (size_t t = 0; t < T; ++t) {
    quantize_q8_k(X + t * W.cols, W.cols, xq.data());
    for (size_t o = 0; o < W.rows; ++o) {
      const uint8_t* row = static_cast<const uint8_t*>(W.data) + o * nb * block_bytes;
      float sum = 0;
      for (size_t b = 0; b < nb; ++b) sum += dot(row + b * block_bytes, xq[b]);
      Y[t * W.rows + o] = sum;
    }
  }
}
}  // namespace

// As ggml's quantize_row_q8_K_ref: the value of largest magnitude maps to level −127.
void quantize_q8_k(const float* x, size_t n, Q8KBlock* out) {
  for (size_t b = 0; b < n / kquant::kBlock; ++b, x += kquant::kBlock) {
    Q8KBlock& y = out[b];
    if (!std::all_of(x, x + kquant::kBlock, [](float v) { return std::isfinite(v); })) {
      y.set_not_finite();
      continue;
    }
    float amax = 0, max = 0;
    for (size_t j = 0; j < kquant::kBlock; ++j)
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    const float iscale = amax != 0 ? -127.0f / max : 0.0f;
    for (size_t j = 0; j < kquant::kBlock; ++j)
      y.q[j] = static_cast<int8_t>(std::min(127.0f, std::nearbyint(iscale * x[j])));
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += y.q[16 * g + l];
      y.bsums[g] = static_cast<int16_t>(s);
    }
    y.d = amax != 0 ? 1 / iscale : 0.0f;
  }
}

void quantize_q8(const float* x, size_t n, Q8Block* out) {
  for (size_t b = 0; b < n / 32; ++b, x += 32) {
    if (!std::all_of(x, x + 32, [](float v) { return std::isfinite(v); })) {
      out[b].set_not_finite();
      continue;
    }
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
    out[b].level_sum = static_cast<float>(sum);
  }
}

void matmul_quantized_reference(const float* X, size_t T, const Matrix& W, float* Y) {
  if (is_k_quant(W.type)) return matmul_k_quant_reference(X, T, W, Y);
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

// ---- the fast path: activations quantized once per call, rows shared out over the threads

QuantizedActivations::QuantizedActivations(const float* X, size_t T, const Matrix& W) : T_(T) {
  const size_t block = is_k_quant(W.type) ? kquant::kBlock : 32, blocks = W.cols / block;
  if (blocks * block != W.cols) fail("matmul: row length ", W.cols, " is not a multiple of ", block);
  if (!is_k_quant(W.type) && W.type != DType::Q4_0 && W.type != DType::Q4_1 && W.type != DType::Q5_0 &&
      W.type != DType::Q5_1 && W.type != DType::Q8_0)
    fail("matmul: ", dtype_name(W.type), " is not a block type");
  // Each token's activations are quantized once and serve every row.
  auto each_token = [&](auto& out, auto quantize) {
    out.resize(T * blocks);
    auto* q = out.data();  // (workers see their own thread_locals; this is a member, shared)
    parallel_for(T, 1, [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; ++t) quantize(X + t * W.cols, W.cols, q + t * blocks);
    });
  };
  if (is_k_quant(W.type)) {
    each_token(q8k_, simd::quantize_q8_k);
    return;
  }
  each_token(q8_, simd::quantize_q8);
  q8_d_.resize(q8_.size()), q8_s_.resize(q8_.size()), q8_level_sum_.resize(q8_.size());
  for (size_t i = 0; i < q8_.size(); ++i) {
    q8_d_[i] = q8_[i].d;
    q8_s_[i] = q8_[i].s;
    q8_level_sum_[i] = static_cast<int32_t>(q8_[i].level_sum);
  }
}

void QuantizedActivations::rows(const Matrix& W, size_t r0, size_t r1, float* Y) const {
  if (is_k_quant(W.type))
    simd::q8k_rows(W.type, W.data, W.rows8, W.rows, W.cols, r0, r1, q8k_.data(), T_, Y, W.rows);
  else
    simd::q8_rows(W.type, W.data, W.rows8, W.rows, W.cols, r0, r1, q8_.data(), {q8_d_.data(), q8_s_.data(), q8_level_sum_.data()}, T_,
                  Y, W.rows);
}

void matmul_quantized(const float* X, size_t T, const Matrix& W, float* Y, std::span<const Region> then) {
  const QuantizedActivations xq(X, T, W);
  parallel_for(W.rows, 16, [&](size_t r0, size_t r1) { xq.rows(W, r0, r1, Y); }, Split::Contiguous, then);
}

}  // namespace rwkv::cpu
