// Forward and backward of the per-token building blocks, for float and double.
#include "train/tensor_math.hpp"

#include <cblas.h>

namespace rwkv::train {

namespace {

// Row-major GEMM C = alpha·op(A)·op(B) + beta·C, dispatched on the number type.
void gemm(bool ta, bool tb, size_t m, size_t n, size_t k, float alpha, const float* A, size_t lda, const float* Bm,
          size_t ldb, float beta, float* Cm, size_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              alpha, A, int(lda), Bm, int(ldb), beta, Cm, int(ldc));
}
void gemm(bool ta, bool tb, size_t m, size_t n, size_t k, double alpha, const double* A, size_t lda,
          const double* Bm, size_t ldb, double beta, double* Cm, size_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              alpha, A, int(lda), Bm, int(ldb), beta, Cm, int(ldc));
}

}  // namespace

void set_blas_threads(int n) { openblas_set_num_threads(n > 0 ? n : 1); }
int blas_threads() { return openblas_get_num_threads(); }

template <typename F>
void linear(const F* X, size_t R, const F* W, size_t out, size_t in, F* Y) {
  if (R == 0 || out == 0) return;
  if (in == 0) {
    for (size_t i = 0; i < R * out; ++i) Y[i] = 0;
    return;
  }
  gemm(false, true, R, out, in, F(1), X, in, W, in, F(0), Y, out);
}

template <typename F>
void linear_backward(const F* X, const F* W, const F* dY, size_t R, size_t out, size_t in, F* dX, F* dW) {
  if (R == 0 || out == 0 || in == 0) return;
  gemm(true, false, out, in, R, F(1), dY, out, X, in, F(1), dW, in);  // dW += dYᵀ·X
  if (dX) gemm(false, false, R, in, out, F(1), dY, out, W, in, F(1), dX, in);  // dX += dY·W
}

template <typename F>
void norm_forward(const F* x, size_t R, size_t groups, size_t n, const F* weight, const F* bias, F eps, F* y,
                  NormSaved<F>& saved) {
  const size_t C = groups * n;
  saved.xhat.resize(R * C);
  saved.rstd.resize(R * groups);
  for (size_t row = 0; row < R; ++row)
    for (size_t g = 0; g < groups; ++g) {
      const size_t o = row * C + g * n;
      double s = 0;
      for (size_t i = 0; i < n; ++i) s += x[o + i];
      const double mean = s / double(n);
      double q = 0;
      for (size_t i = 0; i < n; ++i) q += (x[o + i] - mean) * (x[o + i] - mean);
      const double inv = 1.0 / std::sqrt(q / double(n) + double(eps));
      saved.rstd[row * groups + g] = F(inv);
      for (size_t i = 0; i < n; ++i) {
        const F xh = F((x[o + i] - mean) * inv);
        saved.xhat[o + i] = xh;
        y[o + i] = xh * weight[g * n + i] + bias[g * n + i];
      }
    }
}

template <typename F>
void norm_backward(const F* dy, size_t R, size_t groups, size_t n, const F* weight, const NormSaved<F>& saved,
                   F* dx, F* dweight, F* dbias) {
  const size_t C = groups * n;
  for (size_t row = 0; row < R; ++row)
    for (size_t g = 0; g < groups; ++g) {
      const size_t o = row * C + g * n, c0 = g * n;
      const F* xh = &saved.xhat[o];
      F mean_g = 0, mean_gx = 0;
      for (size_t i = 0; i < n; ++i) {
        const F gh = dy[o + i] * weight[c0 + i];
        mean_g += gh;
        mean_gx += gh * xh[i];
        dweight[c0 + i] += dy[o + i] * xh[i];
        dbias[c0 + i] += dy[o + i];
      }
      mean_g /= F(n);
      mean_gx /= F(n);
      const F rstd = saved.rstd[row * groups + g];
      for (size_t i = 0; i < n; ++i) dx[o + i] += (dy[o + i] * weight[c0 + i] - mean_g - xh[i] * mean_gx) * rstd;
    }
}

template <typename F>
void shift_forward(const F* z, size_t B, size_t T, size_t C, F* prev) {
  for (size_t b = 0; b < B; ++b)
    for (size_t t = 0; t < T; ++t) {
      F* p = prev + (b * T + t) * C;
      for (size_t c = 0; c < C; ++c) p[c] = t == 0 ? F(0) : z[(b * T + t - 1) * C + c];
    }
}

template <typename F>
void shift_backward(const F* dprev, size_t B, size_t T, size_t C, F* dz) {
  for (size_t b = 0; b < B; ++b)
    for (size_t t = 1; t < T; ++t) {
      const F* d = dprev + (b * T + t) * C;
      F* o = dz + (b * T + t - 1) * C;
      for (size_t c = 0; c < C; ++c) o[c] += d[c];
    }
}

template <typename F>
void mix7_forward(const F* z, const F* prev, const F* mu, size_t R, size_t C, F* x) {
  for (size_t r = 0; r < R; ++r)
    for (size_t c = 0; c < C; ++c) {
      const size_t i = r * C + c;
      x[i] = z[i] + (prev[i] - z[i]) * mu[c];
    }
}

template <typename F>
void mix7_backward(const F* z, const F* prev, const F* mu, const F* dx, size_t R, size_t C, F* dz, F* dprev,
                   F* dmu) {
  for (size_t r = 0; r < R; ++r)
    for (size_t c = 0; c < C; ++c) {
      const size_t i = r * C + c;
      dz[i] += dx[i] * (F(1) - mu[c]);
      dprev[i] += dx[i] * mu[c];
      dmu[c] += dx[i] * (prev[i] - z[i]);
    }
}

template <typename F>
void mix4_forward(const F* z, const F* prev, const F* mu, size_t R, size_t C, F* x) {
  for (size_t r = 0; r < R; ++r)
    for (size_t c = 0; c < C; ++c) {
      const size_t i = r * C + c;
      x[i] = z[i] * mu[c] + prev[i] * (F(1) - mu[c]);
    }
}

template <typename F>
void mix4_backward(const F* z, const F* prev, const F* mu, const F* dx, size_t R, size_t C, F* dz, F* dprev,
                   F* dmu) {
  for (size_t r = 0; r < R; ++r)
    for (size_t c = 0; c < C; ++c) {
      const size_t i = r * C + c;
      dz[i] += dx[i] * mu[c];
      dprev[i] += dx[i] * (F(1) - mu[c]);
      dmu[c] += dx[i] * (z[i] - prev[i]);
    }
}

#define RWKV_TRAIN_INSTANTIATE(F)                                                                                  \
  template void linear(const F*, size_t, const F*, size_t, size_t, F*);                                            \
  template void linear_backward(const F*, const F*, const F*, size_t, size_t, size_t, F*, F*);                     \
  template void norm_forward(const F*, size_t, size_t, size_t, const F*, const F*, F, F*, NormSaved<F>&);          \
  template void norm_backward(const F*, size_t, size_t, size_t, const F*, const NormSaved<F>&, F*, F*, F*);        \
  template void shift_forward(const F*, size_t, size_t, size_t, F*);                                               \
  template void shift_backward(const F*, size_t, size_t, size_t, F*);                                              \
  template void mix7_forward(const F*, const F*, const F*, size_t, size_t, F*);                                    \
  template void mix7_backward(const F*, const F*, const F*, const F*, size_t, size_t, F*, F*, F*);                 \
  template void mix4_forward(const F*, const F*, const F*, size_t, size_t, F*);                                    \
  template void mix4_backward(const F*, const F*, const F*, const F*, size_t, size_t, F*, F*, F*);
RWKV_TRAIN_INSTANTIATE(float)
RWKV_TRAIN_INSTANTIATE(double)
#undef RWKV_TRAIN_INSTANTIATE

}  // namespace rwkv::train
