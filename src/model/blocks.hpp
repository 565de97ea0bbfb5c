// Pieces shared by several RWKV versions: the two token-shift mixes (spec §1.2) and the
// receptance-gated channel mix of RWKV-4/5/6 (spec §2.4, rwkv-spec-v5-v6.md §4.3).
#pragma once
#include <cstddef>
#include <vector>

#include "kernels/cpu/ops.hpp"
#include "model/model.hpp"

namespace rwkv {

// RWKV-4/5: weight on the current token, x = z⊙μ + z_prev⊙(1−μ).
inline void mix4(const float* z, const float* prev, const float* mu, size_t T, size_t C, float* x) {
  for (size_t t = 0; t < T; ++t)
    for (size_t c = 0; c < C; ++c) {
      const size_t i = t * C + c;
      x[i] = z[i] * mu[c] + prev[i] * (1.0f - mu[c]);
    }
}

// RWKV-6/7: weight on the previous token, x = z + (z_prev − z)⊙μ.
inline void mix7(const float* z, const float* prev, const float* mu, size_t T, size_t C, float* x) {
  cpu::simd::mix_rows(z, prev, mu, 1, T, C, &x);
}

struct GatedFfn {
  cpu::Matrix Wk, Wv, Wr;           // (F,C), (C,F), (C,C)
  const float *mix_k, *mix_r;       // token-shift weights
  bool mix_weighs_previous;         // RWKV-6 (mix7) rather than RWKV-4/5 (mix4)
};

// xk, xr = the version's token-shift mixes of z and z_prev;
// out = σ(W_r·xr) ⊙ (W_v · relu²(W_k·xk)) for T tokens.
inline void gated_channel_mix(const GatedFfn& f, const float* z, const float* prev, size_t T, size_t C,
                              size_t F, float* out) {
  Floats xk(T * C), xr(T * C), k(T * F), r(T * C);
  const auto mix = f.mix_weighs_previous ? mix7 : mix4;
  mix(z, prev, f.mix_k, T, C, xk.data());
  mix(z, prev, f.mix_r, T, C, xr.data());
  cpu::matmuls(T, {{xk.data(), &f.Wk, k.data()}, {xr.data(), &f.Wr, r.data()}});
  cpu::activate(cpu::Act::ReluSq, k.data(), nullptr, T, F, k.data());
  cpu::matmul(k.data(), T, f.Wv, out);
  cpu::activate(cpu::Act::Sigmoid, r.data(), nullptr, T, C, r.data());
  for (size_t i = 0; i < T * C; ++i) out[i] *= r[i];
}

}  // namespace rwkv
