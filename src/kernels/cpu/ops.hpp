// CPU kernels for the per-token work of every RWKV version: matrix products (OpenBLAS),
// normalisations and element-wise helpers. The WKV recurrences are in wkv.hpp.
// All arrays are row-major float32; T is the number of tokens (rows).
#pragma once
#include <cmath>
#include <cstddef>

namespace rwkv::cpu {

// Y[t][o] = Σ_i X[t][i] · W[o][i]  (X: T×in, W: out×in as an nn.Linear weight, Y: T×out).
// One token uses a matrix-vector product, several tokens one matrix-matrix product.
void matmul(const float* X, size_t T, size_t in, const float* W, size_t out, float* Y);

// LayerNorm of each of T rows of length n (biased variance, eps inside the root; spec §0.1).
void layer_norm(const float* x, size_t T, size_t n, const float* weight, const float* bias,
                float eps, float* y);

// GroupNorm: each row of H·N values is normalised per group of N, then scaled per channel.
void group_norm(const float* x, size_t T, size_t H, size_t N, const float* weight,
                const float* bias, float eps, float* y);

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
inline float silu(float x) { return x / (1.0f + std::exp(-x)); }
inline float relu_sq(float x) { return x > 0 ? x * x : 0.0f; }

}  // namespace rwkv::cpu
