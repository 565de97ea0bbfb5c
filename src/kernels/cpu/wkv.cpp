// The WKV scans on the CPU: straightforward loops for RWKV-4/5/6, the SIMD kernel for RWKV-7.
#include "kernels/cpu/wkv.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/simd.hpp"

namespace rwkv::cpu {

void wkv4(size_t T, size_t A, const float* k, const float* v, const float* w, const float* u,
          float* aa, float* bb, float* pp, float* y) {
  for (size_t c = 0; c < A; ++c) {
    float a = aa[c], b = bb[c], p = pp[c];
    const float wc = w[c], uc = u[c];
    for (size_t t = 0; t < T; ++t) {
      const float kt = k[t * A + c], vt = v[t * A + c];
      // output: exponents are all ≤ 0 by construction of q
      float q = std::max(p, uc + kt);
      float e1 = std::exp(p - q), e2 = std::exp(uc + kt - q);
      y[t * A + c] = (e1 * a + e2 * vt) / (e1 * b + e2);
      // state update
      q = std::max(p + wc, kt);
      e1 = std::exp(p + wc - q);
      e2 = std::exp(kt - q);
      a = e1 * a + e2 * vt;
      b = e1 * b + e2;
      p = q;
    }
    aa[c] = a;
    bb[c] = b;
    pp[c] = p;
  }
}

void wkv5(size_t T, size_t H, size_t N, const float* r, const float* k, const float* v,
          const float* w, size_t w_stride, const float* u, float* S, float* y) {
  const size_t C = H * N;
  for (size_t t = 0; t < T; ++t) {
    const float* rt = r + t * C;
    const float* kt = k + t * C;
    const float* vt = v + t * C;
    const float* wt = w + t * w_stride;
    float* yt = y + t * C;
    for (size_t h = 0; h < H; ++h) {
      float* s = S + h * N * N;
      const size_t o = h * N;
      for (size_t i = 0; i < N; ++i) yt[o + i] = 0.0f;
      for (size_t j = 0; j < N; ++j) {
        const float rj = rt[o + j], kj = kt[o + j], uj = u[o + j], wj = wt[o + j];
        float* sj = s + j * N;
        for (size_t i = 0; i < N; ++i) {
          const float kv = kj * vt[o + i];
          yt[o + i] += rj * (uj * kv + sj[i]);
          sj[i] = kv + wj * sj[i];
        }
      }
    }
  }
}

void wkv7(size_t T, size_t H, size_t N, const float* r, const float* w, const float* k,
          const float* v, const float* a, const float* b, float* S, float* y) {
  const size_t C = H * N;
  for (size_t h = 0; h < H; ++h) {
    const size_t o = h * N;
    simd::wkv7_head(T, C, N, r + o, w + o, k + o, v + o, a + o, b + o, S + h * N * N, y + o);
  }
}

}  // namespace rwkv::cpu
