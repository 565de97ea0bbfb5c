// CPU kernels for the per-token work of every RWKV version: matrix products (SIMD, simd.hpp),
// normalisations and element-wise helpers. The WKV recurrences are in wkv.hpp.
// All arrays are row-major float32; T is the number of tokens (rows).
#pragma once
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <vector>

#include "io/tensor.hpp"
#include "kernels/cpu/simd.hpp"         // Act
#include "kernels/cpu/thread_pool.hpp"  // set_threads

namespace rwkv::cpu {

// A weight matrix (rows = out, cols = in, as an nn.Linear weight), row-major, in a float type
// (F32, F16, BF16) or a ggml block type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K) with
// blocks along each row, used as stored (typically straight from the memory-mapped file).
struct Matrix {
  DType type = DType::F32;
  const void* data = nullptr;
  size_t rows = 0, cols = 0;
  // Optional, for the types with an eight-row layout (simd::has_rows8_layout): rows
  // [0, rows − rows % 8) again, interleaved by eights
  // (simd::interleave_rows8), the layout the AVX2 kernels read fastest. Same results.
  const void* rows8 = nullptr;
  // Optional, for float16 and bfloat16 (simd::has_panel_layout): rows [0, rows − rows % 16)
  // again, in sixteen-row panels (simd::interleave_panels16), which every float16 product reads.
  const void* panels = nullptr;
  const float* f32() const { return static_cast<const float*>(data); }
};

bool is_float_type(DType t);

// Y[t][o] = Σ_i X[t][i] · W[o][i]  (X: T×W.cols, Y: T×W.rows), on the thread pool.
// Float types: float32 arithmetic on weights widened in registers (simd.hpp), tokens blocked
// so that weights are read once per block. Block types: each row of X is quantized to 8 bits
// per block and the dot products are integer sums scaled per block, as ggml (and so
// rwkv.cpp and llama.cpp) does.
void matmul(const float* X, size_t T, const Matrix& W, float* Y);

// Several independent products over the same T tokens, Y_j = X_j·W_jᵀ, as one job on the
// pool when T is small (decode): one token's forward pass then waits for the threads a few
// times per layer rather than once per matrix. From 16 tokens each full-size product is a job
// of its own and the low-rank ones with panels (a dimension of at most kLowRankMax) share one,
// up to the prefill's GEMM (64 tokens), where every product is a job of its own.
constexpr size_t kLowRankMax = 256;
struct Product {
  const float* X;
  const Matrix* W;
  float* Y;
};
void matmuls(size_t T, std::initializer_list<Product> products);

// Whether products of 16 tokens or more (prefill, batched decode) with a matrix (of 64 rows or
// more) of this type run on bfloat16 dot products (simd_bf16.hpp), where the CPU has AVX512_BF16:
// twice the multiply-adds of float32 FMAs per instruction, with the activations rounded to
// bfloat16. By default for bfloat16 matrices only (their weights are used exactly; ggml rounds
// the activations the same way). Float16 weights would be rounded to bfloat16 as well: faster
// (0.1B f16 prefill 1.6×) but outside rwkv.cpp's tolerance rule for FP16 files (TINY_MODELS.md
// §5; tests/tiny_models_test.cpp), so only on request. The environment variable RWKV_BF16_DOTS
// (off, bf16, all) sets the start (bf16_dots_mode reads it when first asked: an Error for any
// other word); set_bf16_dots changes it and returns the setting it replaces. Every other product
// is float32.
enum class Bf16Dots { Off, Bf16Weights, All };
bool bf16_dots(DType type);
Bf16Dots bf16_dots_mode();
Bf16Dots set_bf16_dots(Bf16Dots mode);
// The setting RWKV_BF16_DOTS names (off, bf16, all; unset or empty: bf16); an Error otherwise.
Bf16Dots bf16_dots_setting(const char* value);

// The obvious version (weights decoded row by row, double sums), for tests.
void matmul_reference(const float* X, size_t T, const Matrix& W, float* Y);

// The block-quantized product alone (W.type must be a block type): SIMD kernels on the thread
// pool, and the scalar version they are tested against (the same integer sums per block).
// `then`: the pool's prefetch hint for the job (thread_pool.hpp).
void matmul_quantized(const float* X, size_t T, const Matrix& W, float* Y, std::span<const Region> then = {});
void matmul_quantized_reference(const float* X, size_t T, const Matrix& W, float* Y);

// ggml's 8-bit activation blocks: Q8_0 (d, q[32]) and Q8_1 (d, s = d·Σq, q[32]); d and s
// are rounded to fp16 as ggml stores them. level_sum = Σq exactly, for the SIMD kernels that
// take levels without their offset (Σ(u − 8)·q = Σu·q − 8·Σq). Exposed for tests.
// A block of activations holding a value that is not finite (a hostile model's overflow) is
// marked with levels 0 and NaN scales: its products are NaN, as float arithmetic gives, and no
// level is made from a NaN (whose level sum would overflow int in the kernels).
struct Q8Block {
  float d, s, level_sum;
  int8_t q[32];
  void set_not_finite() { *this = {NAN, NAN, 0, {}}; }
};
void quantize_q8(const float* x, size_t n, Q8Block* out);

// ggml's 8-bit activations for the K-quant weights (Q8_K): per 256 values a float scale d
// (not rounded), the levels, and the sum of each 16 levels (for the sub-block minimums).
// Exposed for tests.
struct Q8KBlock {
  float d;
  int8_t q[256];
  int16_t bsums[16];
  void set_not_finite() { *this = {NAN, {}, {}}; }  // as Q8Block's
};
void quantize_q8_k(const float* x, size_t n, Q8KBlock* out);

// The activations of T tokens quantized for one block-type matrix (Q8_0/Q8_1 blocks, or Q8_K
// for the K-quants), and rows [r0, r1) of the product with them (Y as in matmul).
class QuantizedActivations {
 public:
  QuantizedActivations(const float* X, size_t T, const Matrix& W);
  void rows(const Matrix& W, size_t r0, size_t r1, float* Y) const;

 private:
  size_t T_;
  std::vector<Q8Block> q8_;
  std::vector<float> q8_d_, q8_s_;  // q8_'s scalars as arrays, for the SIMD kernels
  std::vector<int32_t> q8_level_sum_;
  std::vector<Q8KBlock> q8k_;
};

// LayerNorm of each of T rows of length n (biased variance, eps inside the root; spec §0.1).
void layer_norm(const float* x, size_t T, size_t n, const float* weight, const float* bias,
                float eps, float* y);

// The residual step between blocks, row by row (T rows of n): x ← (x + d [+ d_bias]) · scale,
// then, given a weight, y = LayerNorm(x) as layer_norm computes it. Each row is read once for
// both; rows shared out over the thread pool. d_bias may be null (no bias), weight null (no norm).
// (In place of a serial add and a norm: 0.1B f16 prefill, 512 tokens, 2 threads, 2.2–2.7 →
// 1.5–1.7 M cycles per layer, 3 alternating pairs.)
void add_layer_norm(float* x, const float* d, const float* d_bias, float scale, size_t T, size_t n,
                    const float* weight, const float* bias, float eps, float* y);

// GroupNorm: each row of H·N values is normalised per group of N, then scaled per channel.
void group_norm(const float* x, size_t T, size_t H, size_t N, const float* weight,
                const float* bias, float eps, float* y);

// y = act(x + bias) element-wise over T rows of n (bias per column, may be null; y may be x):
// SIMD (simd::activate), rows shared out over the thread pool.
using simd::Act;
void activate(Act act, const float* x, const float* bias, size_t T, size_t n, float* y);

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

}  // namespace rwkv::cpu
