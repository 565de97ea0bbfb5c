// The WKV scans on the CPU: a straightforward loop per channel for RWKV-4, the SIMD kernels
// (simd.hpp) for RWKV-5/6 and RWKV-7, heads shared out over the thread pool.
#include "kernels/cpu/wkv.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/simd.hpp"
#include "kernels/cpu/thread_pool.hpp"

namespace rwkv::cpu {

namespace {

// RWKV-4 channels [c0, c1): each channel is its own scan.
void wkv4_channels(size_t T, size_t A, size_t c0, size_t c1, const float* k, const float* v, const float* w,
                   const float* u, float* aa, float* bb, float* pp, float* y) {
  for (size_t c = c0; c < c1; ++c) {
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

}  // namespace

void wkv4(size_t T, size_t A, const float* k, const float* v, const float* w, const float* u,
          float* aa, float* bb, float* pp, float* y) {
  parallel_for(A, 64, [&](size_t c0, size_t c1) { wkv4_channels(T, A, c0, c1, k, v, w, u, aa, bb, pp, y); });
}

// Heads are independent: they are shared out over the thread pool.
void wkv5(size_t T, size_t H, size_t N, const float* r, const float* k, const float* v,
          const float* w, size_t w_stride, const float* u, float* S, float* y) {
  const size_t C = H * N;
  parallel_for(H, 1, [&](size_t h0, size_t h1) {
    for (size_t h = h0; h < h1; ++h) {
      const size_t o = h * N;
      simd::wkv5_head(T, C, w_stride, N, r + o, k + o, v + o, w + o, u + o, S + h * N * N, y + o);
    }
  });
}

void wkv7(size_t T, size_t H, size_t N, const float* r, const float* w, const float* k,
          const float* v, const float* a, const float* b, float* S, float* y) {
  const size_t C = H * N;
  parallel_for(H, 1, [&](size_t h0, size_t h1) {
    for (size_t h = h0; h < h1; ++h) {
      const size_t o = h * N;
      simd::wkv7_head(T, C, N, r + o, w + o, k + o, v + o, a + o, b + o, S + h * N * N, y + o);
    }
  });
}

}  // namespace rwkv::cpu
