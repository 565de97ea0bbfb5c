// Highway's dynamic dispatch: this file is compiled once per target (foreach_target.h
// re-includes it), and HWY_DYNAMIC_DISPATCH picks the best one the CPU supports.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "train/wkv7_train_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "train/wkv7_train_simd.hpp"

HWY_BEFORE_NAMESPACE();
namespace rwkv::train::simd::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

size_t Lanes() { return hn::Lanes(DF()); }

// One step, key-major state ST: sa = S·a (old state), S ← S·diag(ω) + sa bᵀ + v kᵀ, y = S·r,
// for NV vectors of value indices from i0. Each lane holds one value index i; the sums over the
// key index j run in order, as the reference's. NV vectors at once are NV independent chains of
// FMAs (one vector at a time waited on FMA latency); each lane's arithmetic is the same.
template <size_t NV>
HWY_INLINE void step_chunk(size_t N, size_t i0, const float* r, const float* w, const float* k, const float* v,
                           const float* a, const float* b, float* ST, float* y, float* sa) {
  const DF d;
  const size_t L = hn::Lanes(d);
  VF vsa[NV], vv[NV], vy[NV];
  for (size_t c = 0; c < NV; ++c) vsa[c] = vy[c] = hn::Zero(d), vv[c] = hn::LoadU(d, v + i0 + c * L);
  for (size_t j = 0; j < N; ++j) {
    const VF aj = hn::Set(d, a[j]);
    for (size_t c = 0; c < NV; ++c) vsa[c] = hn::MulAdd(hn::LoadU(d, ST + j * N + i0 + c * L), aj, vsa[c]);
  }
  for (size_t c = 0; c < NV; ++c) hn::StoreU(vsa[c], d, sa + i0 + c * L);
  for (size_t j = 0; j < N; ++j) {
    const VF wj = hn::Set(d, w[j]), bj = hn::Set(d, b[j]), kj = hn::Set(d, k[j]), rj = hn::Set(d, r[j]);
    for (size_t c = 0; c < NV; ++c) {
      float* col = ST + j * N + i0 + c * L;
      VF s = hn::Mul(hn::LoadU(d, col), wj);
      s = hn::MulAdd(vsa[c], bj, s);
      s = hn::MulAdd(vv[c], kj, s);
      hn::StoreU(s, d, col);
      vy[c] = hn::MulAdd(s, rj, vy[c]);
    }
  }
  for (size_t c = 0; c < NV; ++c) hn::StoreU(vy[c], d, y + i0 + c * L);
}

HWY_INLINE void step(size_t N, const float* r, const float* w, const float* k, const float* v, const float* a,
                     const float* b, float* ST, float* y, float* sa) {
  const size_t L = hn::Lanes(DF());
  size_t i = 0;
  for (; i + 4 * L <= N; i += 4 * L) step_chunk<4>(N, i, r, w, k, v, a, b, ST, y, sa);
  for (; i < N; i += L) step_chunk<1>(N, i, r, w, k, v, a, b, ST, y, sa);
}

void ForwardHead(size_t T, size_t stride, size_t N, size_t chunk, const float* r, const float* w, const float* k,
                 const float* v, const float* a, const float* b, float* y, float* snapshots) {
  const size_t NN = N * N;
  thread_local std::vector<float> ST, sa;
  ST.assign(NN, 0.0f);
  sa.resize(N);
  for (size_t t = 0; t < T; ++t) {
    if (t % chunk == 0) std::copy(ST.begin(), ST.end(), snapshots + (t / chunk) * NN);
    const size_t o = t * stride;
    step(N, r + o, w + o, k + o, v + o, a + o, b + o, ST.data(), y + o, sa.data());
  }
}

HWY_INLINE float sum(DF d, VF v) { return hn::GetLane(hn::SumOfLanes(d, v)); }

void BackwardHead(size_t T, size_t stride, size_t N, size_t chunk, const float* r, const float* w, const float* k,
                  const float* v, const float* a, const float* b, const float* snapshots, const float* dy, float* dr,
                  float* dw, float* dk, float* dv, float* da, float* db) {
  const DF d;
  const size_t L = hn::Lanes(d), NN = N * N, n_chunks = (T + chunk - 1) / chunk;
  // states[τ] = S before step t0 + τ of the chunk; dST = ∂L/∂S (key-major), carried backwards.
  thread_local std::vector<float> states, sa, y_unused, dST, dsa, dv_step;
  states.resize((chunk + 1) * NN);
  sa.resize(chunk * N);
  y_unused.resize(N);
  dST.assign(NN, 0.0f);
  dsa.resize(N);
  dv_step.resize(N);
  for (size_t c = n_chunks; c-- > 0;) {
    const size_t t0 = c * chunk, len = std::min(chunk, T - t0);
    std::copy(snapshots + c * NN, snapshots + (c + 1) * NN, states.begin());
    for (size_t tau = 0; tau < len; ++tau) {
      const size_t o = (t0 + tau) * stride;
      std::copy(&states[tau * NN], &states[(tau + 1) * NN], &states[(tau + 1) * NN]);
      step(N, r + o, w + o, k + o, v + o, a + o, b + o, &states[(tau + 1) * NN], y_unused.data(), &sa[tau * N]);
    }
    for (size_t tau = len; tau-- > 0;) {
      const size_t o = (t0 + tau) * stride;
      const float* S_new = &states[(tau + 1) * NN];
      const float* S_old = &states[tau * NN];
      const float *sat = &sa[tau * N], *dyt = dy + o, *vt = v + o;
      std::fill(dsa.begin(), dsa.end(), 0.0f);
      std::fill(dv_step.begin(), dv_step.end(), 0.0f);
      for (size_t j = 0; j < N; ++j) {
        float* col = &dST[j * N];  // ∂L/∂S[·][j]
        const float* new_j = S_new + j * N;
        const float* old_j = S_old + j * N;
        const VF rj = hn::Set(d, r[o + j]), kj = hn::Set(d, k[o + j]), bj = hn::Set(d, b[o + j]);
        VF acc_r = hn::Zero(d), acc_w = hn::Zero(d), acc_k = hn::Zero(d), acc_b = hn::Zero(d);
        for (size_t i = 0; i < N; i += L) {
          // y = S_new·r: dr_j = Σ_i S_new[i][j]·dy_i, and dS += dy rᵀ.
          const VF g = hn::LoadU(d, dyt + i);
          acc_r = hn::MulAdd(hn::LoadU(d, new_j + i), g, acc_r);
          const VF cv = hn::MulAdd(g, rj, hn::LoadU(d, col + i));
          hn::StoreU(cv, d, col + i);
          // S_new = S_old·diag(ω) + sa bᵀ + v kᵀ with sa = S_old·a.
          acc_w = hn::MulAdd(cv, hn::LoadU(d, old_j + i), acc_w);
          acc_k = hn::MulAdd(cv, hn::LoadU(d, vt + i), acc_k);
          acc_b = hn::MulAdd(cv, hn::LoadU(d, sat + i), acc_b);
          hn::StoreU(hn::MulAdd(cv, kj, hn::LoadU(d, &dv_step[i])), d, &dv_step[i]);
          hn::StoreU(hn::MulAdd(cv, bj, hn::LoadU(d, &dsa[i])), d, &dsa[i]);
        }
        dr[o + j] += sum(d, acc_r);
        dw[o + j] += sum(d, acc_w);
        dk[o + j] += sum(d, acc_k);
        db[o + j] += sum(d, acc_b);
      }
      for (size_t i = 0; i < N; i += L)
        hn::StoreU(hn::Add(hn::LoadU(d, dv + o + i), hn::LoadU(d, &dv_step[i])), d, dv + o + i);
      for (size_t j = 0; j < N; ++j) {
        float* col = &dST[j * N];
        const float* old_j = S_old + j * N;
        const VF wj = hn::Set(d, w[o + j]), aj = hn::Set(d, a[o + j]);
        VF acc = hn::Zero(d);
        for (size_t i = 0; i < N; i += L) {
          const VF s = hn::LoadU(d, &dsa[i]);
          acc = hn::MulAdd(hn::LoadU(d, old_j + i), s, acc);
          hn::StoreU(hn::MulAdd(s, aj, hn::Mul(hn::LoadU(d, col + i), wj)), d, col + i);  // ∂L/∂S_old
        }
        da[o + j] += sum(d, acc);
      }
    }
  }
}

}  // namespace rwkv::train::simd::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace rwkv::train::simd {

HWY_EXPORT(Lanes);
HWY_EXPORT(ForwardHead);
HWY_EXPORT(BackwardHead);

bool wkv7_supports(size_t N) {
  static const size_t lanes = HWY_DYNAMIC_DISPATCH(Lanes)();
  return N > 0 && N % lanes == 0;
}

void wkv7_forward_head(size_t T, size_t stride, size_t N, size_t chunk, const float* r, const float* w,
                       const float* k, const float* v, const float* a, const float* b, float* y, float* snapshots) {
  HWY_DYNAMIC_DISPATCH(ForwardHead)(T, stride, N, chunk, r, w, k, v, a, b, y, snapshots);
}

void wkv7_backward_head(size_t T, size_t stride, size_t N, size_t chunk, const float* r, const float* w,
                        const float* k, const float* v, const float* a, const float* b, const float* snapshots,
                        const float* dy, float* dr, float* dw, float* dk, float* dv, float* da, float* db) {
  HWY_DYNAMIC_DISPATCH(BackwardHead)(T, stride, N, chunk, r, w, k, v, a, b, snapshots, dy, dr, dw, dk, dv, da, db);
}

}  // namespace rwkv::train::simd
#endif
