// Matrix products through CBLAS (OpenBLAS) and the normalisations.
#include "kernels/cpu/ops.hpp"

#include <cblas.h>

#include <algorithm>

#include <thread>

namespace rwkv::cpu {

void set_threads(int n) {
  openblas_set_num_threads(n > 0 ? n : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

void matmul(const float* X, size_t T, const Matrix& Wm, float* Y) {
  if (T == 0 || Wm.rows == 0) return;
  if (Wm.type != DType::F32) return matmul_quantized(X, T, Wm, Y);
  const float* W = Wm.f32();
  const int n_in = static_cast<int>(Wm.cols), n_out = static_cast<int>(Wm.rows);
  if (T == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n_out, n_in, 1.0f, W, n_in, X, 1, 0.0f, Y, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(T), n_out, n_in, 1.0f, X,
                n_in, W, n_in, 0.0f, Y, n_out);
  }
}

namespace {
// Mean and biased variance of n values, accumulated in double for stability.
void moments(const float* x, size_t n, double& mean, double& var) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += x[i];
  mean = s / static_cast<double>(n);
  double q = 0;
  for (size_t i = 0; i < n; ++i) q += (x[i] - mean) * (x[i] - mean);
  var = q / static_cast<double>(n);
}
}  // namespace

void layer_norm(const float* x, size_t T, size_t n, const float* weight, const float* bias,
                float eps, float* y) {
  for (size_t t = 0; t < T; ++t, x += n, y += n) {
    double mean, var;
    moments(x, n, mean, var);
    const double inv = 1.0 / std::sqrt(var + eps);
    for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>((x[i] - mean) * inv) * weight[i] + bias[i];
  }
}

void group_norm(const float* x, size_t T, size_t H, size_t N, const float* weight,
                const float* bias, float eps, float* y) {
  for (size_t t = 0; t < T; ++t)
    for (size_t h = 0; h < H; ++h) {
      const size_t o = (t * H + h) * N, c0 = h * N;
      double mean, var;
      moments(x + o, N, mean, var);
      const double inv = 1.0 / std::sqrt(var + eps);
      for (size_t i = 0; i < N; ++i)
        y[o + i] = static_cast<float>((x[o + i] - mean) * inv) * weight[c0 + i] + bias[c0 + i];
    }
}

}  // namespace rwkv::cpu
