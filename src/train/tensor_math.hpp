// The per-token building blocks of training, forward and exact backward, templated on the
// number type (float to train, double for the gradient checks): linear layers as BLAS matrix
// products, layer/group norm, token shift and the two token-shift mixes. No model knowledge.
// Rows are B sequences × T tokens, row b·T + t; every backward ADDS into its gradients.
#pragma once
#include <cmath>
#include <cstddef>
#include <vector>

namespace rwkv::train {

template <typename F>
F sigmoid(F x) {
  return F(1) / (F(1) + std::exp(-x));
}

// ---- linear layers (W is (out, in), as every canonical matrix)

// Threads BLAS may use for one matrix product (1 while model replicas share the cores).
void set_blas_threads(int n);
int blas_threads();

// Y = X·Wᵀ: X is R×in, Y is R×out.
template <typename F>
void linear(const F* X, size_t R, const F* W, size_t out, size_t in, F* Y);

// Backward of Y = X·Wᵀ: dW += dYᵀ·X and, when dX is not null, dX += dY·W.
template <typename F>
void linear_backward(const F* X, const F* W, const F* dY, size_t R, size_t out, size_t in, F* dX, F* dW);

// ---- normalisation

// What the backward of a normalisation needs: x̂ (R × groups·n) and 1/σ (R × groups).
template <typename F>
struct NormSaved {
  std::vector<F> xhat, rstd;
};

// Each row of groups·n values is normalised per group of n with the biased variance and eps
// inside the root, then scaled and shifted per channel (spec §0.1). LayerNorm is groups = 1,
// RWKV-7's ln_x GroupNorm groups = H. Moments in double, as the engine's kernels. y may be x.
template <typename F>
void norm_forward(const F* x, size_t R, size_t groups, size_t n, const F* weight, const F* bias, F eps, F* y,
                  NormSaved<F>& saved);

// spec §3.9: dx += (ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂))/σ with ĝ = dy⊙γ; dγ += Σ dy⊙x̂; dβ += Σ dy.
template <typename F>
void norm_backward(const F* dy, size_t R, size_t groups, size_t n, const F* weight, const NormSaved<F>& saved,
                   F* dx, F* dweight, F* dbias);

// ---- token shift (spec §1.2; training starts every sequence from a zero state)

// prev[b, t] = z[b, t−1], prev[b, 0] = 0.
template <typename F>
void shift_forward(const F* z, size_t B, size_t T, size_t C, F* prev);

// dz[b, t−1] += dprev[b, t]; what would flow to position −1 is dropped (spec §3.9).
template <typename F>
void shift_backward(const F* dprev, size_t B, size_t T, size_t C, F* dz);

// RWKV-6/7 mix, weight on the previous token: x = z + (prev − z)⊙μ.
template <typename F>
void mix7_forward(const F* z, const F* prev, const F* mu, size_t R, size_t C, F* x);
template <typename F>
void mix7_backward(const F* z, const F* prev, const F* mu, const F* dx, size_t R, size_t C, F* dz, F* dprev, F* dmu);

// RWKV-4 mix, weight on the current token: x = z⊙μ + prev⊙(1 − μ).
template <typename F>
void mix4_forward(const F* z, const F* prev, const F* mu, size_t R, size_t C, F* x);
template <typename F>
void mix4_backward(const F* z, const F* prev, const F* mu, const F* dx, size_t R, size_t C, F* dz, F* dprev, F* dmu);

}  // namespace rwkv::train
