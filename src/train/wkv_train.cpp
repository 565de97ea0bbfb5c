// WKV-4 and WKV-7 forward and backward for training: scalar loops templated on the number type
// (the reference; WKV-4 always), spread over the thread pool by channel (WKV-4) or by
// (sequence, head) (WKV-7, float through the SIMD kernels of wkv7_train_simd).
#include "train/wkv_train.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/cpu/thread_pool.hpp"
#include "model/buffers.hpp"
#include "train/wkv7_train_simd.hpp"

namespace rwkv::train {

namespace {
// Initial p of the stable WKV-4 state: every exp(p − …) underflows to 0 (spec §2.3).
constexpr double kMinP = -1e30;
}  // namespace

// ---- RWKV-4

namespace {

template <typename F>
void wkv4_forward_channels(size_t B, size_t T, size_t A, size_t c0, size_t c1, const F* k, const F* v, const F* w,
                           const F* u, F* y) {
  for (size_t s = 0; s < B; ++s)
    for (size_t c = c0; c < c1; ++c) {
      F a = 0, b = 0, p = F(kMinP);
      const F wc = w[c], uc = u[c];
      for (size_t t = 0; t < T; ++t) {
        const size_t i = (s * T + t) * A + c;
        const F kt = k[i], vt = v[i];
        F q = std::max(p, uc + kt);
        F e1 = std::exp(p - q), e2 = std::exp(uc + kt - q);
        y[i] = (e1 * a + e2 * vt) / (e1 * b + e2);
        q = std::max(p + wc, kt);
        e1 = std::exp(p + wc - q);
        e2 = std::exp(kt - q);
        a = e1 * a + e2 * vt;
        b = e1 * b + e2;
        p = q;
      }
    }
}

// Channels [c0, c1) of every sequence: each channel's dw, du are summed over the sequences in
// order, so splitting by channel keeps the result independent of the threads.
template <typename F>
void wkv4_backward_channels(size_t B, size_t T, size_t A, size_t c0, size_t c1, const F* k, const F* v, const F* w,
                            const F* u, const F* y, const F* dy, F* dk, F* dv, F* dw, F* du) {
  RecycledVector<F> Q(T), Rv(T);  // Q_t = g_t·e^q/D_t and R_t = u + k_t − q (spec §2.7)
  for (size_t s = 0; s < B; ++s)
    for (size_t c = c0; c < c1; ++c) {
      const F wc = w[c], uc = u[c];
      auto at = [&](size_t t) { return (s * T + t) * A + c; };
      // 1. Forward re-run with the scaled derivatives of A and B by w: A' = ga·e^p, B' = gb·e^p.
      F a = 0, b = 0, p = F(kMinP), ga = 0, gb = 0, gw = 0, gu = 0;
      for (size_t t = 0; t < T; ++t) {
        const size_t i = at(t);
        const F kt = k[i], vt = v[i], yt = y[i];
        F q = std::max(p, uc + kt);
        F e1 = std::exp(p - q), e2 = std::exp(uc + kt - q);
        const F Qt = dy[i] / (e1 * b + e2);
        gw += (ga - gb * yt) * e1 * Qt;
        gu += (vt - yt) * e2 * Qt;
        Q[t] = Qt;
        Rv[t] = uc + kt - q;
        q = std::max(p + wc, kt);
        e1 = std::exp(p + wc - q);
        e2 = std::exp(kt - q);
        ga = e1 * (a + ga);
        gb = e1 * (b + gb);
        a = e1 * a + e2 * vt;
        b = e1 * b + e2;
        p = q;
      }
      dw[c] += gw;
      du[c] += gu;
      // 2. Reverse sweep: α = a·e^p and −β = b·e^p, the decayed sums of g/D and g·y/D over later tokens.
      a = 0;
      b = 0;
      p = F(kMinP);
      for (size_t t = T; t-- > 0;) {
        const size_t i = at(t);
        const F kt = k[i], vt = v[i], yt = y[i];
        const F e1 = Q[t] * std::exp(Rv[t]);  // g_t·E_t/D_t
        const F e2 = std::exp(kt + p);
        dk[i] += e1 * (vt - yt) + e2 * (a * vt + b);
        dv[i] += e1 + e2 * a;
        const F s_t = Rv[t] - uc - kt;  // −q of the forward step
        const F m = std::max(p + wc, s_t);
        const F f1 = std::exp(p + wc - m), f2 = Q[t] * std::exp(s_t - m);
        a = f1 * a + f2;
        b = f1 * b - f2 * yt;
        p = m;
      }
    }
}

}  // namespace

template <typename F>
void wkv4_forward(size_t B, size_t T, size_t A, const F* k, const F* v, const F* w, const F* u, F* y) {
  cpu::parallel_for(A, 8, [&](size_t c0, size_t c1) { wkv4_forward_channels(B, T, A, c0, c1, k, v, w, u, y); });
}

template <typename F>
void wkv4_backward(size_t B, size_t T, size_t A, const F* k, const F* v, const F* w, const F* u, const F* y,
                   const F* dy, F* dk, F* dv, F* dw, F* du) {
  cpu::parallel_for(A, 8, [&](size_t c0, size_t c1) {
    wkv4_backward_channels(B, T, A, c0, c1, k, v, w, u, y, dy, dk, dv, dw, du);
  });
}

// ---- RWKV-7
//
// Each head's state is kept key-major, ST[j][i] = S[i][j], so that every loop over the value
// index i runs over contiguous memory and vectorises without reordering any sum: the forward
// adds in the same order as kernels/cpu/wkv (over j for each i).

namespace {

// Σ x⊙y with eight partial sums (which the compiler can keep in vector registers).
template <typename F>
F dot(const F* x, const F* y, size_t n) {
  F acc[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (size_t u = 0; u < 8; ++u) acc[u] += x[i + u] * y[i + u];
  F tail = 0;
  for (; i < n; ++i) tail += x[i] * y[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

// One step of one head: sa = S·a (old state), S ← S·diag(ω) + sa bᵀ + v kᵀ, y = S·r (new).
// ST is key-major; sa and y receive N values.
template <typename F>
void wkv7_step(size_t N, const F* r, const F* w, const F* k, const F* v, const F* a, const F* b, F* ST, F* y, F* sa) {
  for (size_t i = 0; i < N; ++i) sa[i] = 0;
  for (size_t j = 0; j < N; ++j) {
    const F* col = ST + j * N;
    const F aj = a[j];
    for (size_t i = 0; i < N; ++i) sa[i] += col[i] * aj;
  }
  for (size_t i = 0; i < N; ++i) y[i] = 0;
  for (size_t j = 0; j < N; ++j) {
    F* col = ST + j * N;
    const F wj = w[j], bj = b[j], kj = k[j], rj = r[j];
    for (size_t i = 0; i < N; ++i) {
      col[i] = col[i] * wj + sa[i] * bj + v[i] * kj;
      y[i] += col[i] * rj;
    }
  }
}

size_t chunks_of(size_t T) { return (T + kWkv7Chunk - 1) / kWkv7Chunk; }

}  // namespace

template <typename F>
void wkv7_forward_reference(size_t B, size_t T, size_t H, size_t N, const F* r, const F* w, const F* k, const F* v,
                            const F* a, const F* b, F* y, Wkv7Saved<F>& saved) {
  const size_t C = H * N, NN = N * N, n_chunks = chunks_of(T);
  saved.states.assign(B * H * n_chunks * NN, F(0));
  RecycledVector<F> ST(NN), sa(N);
  for (size_t s = 0; s < B; ++s)
    for (size_t h = 0; h < H; ++h) {
      std::fill(ST.begin(), ST.end(), F(0));
      F* snapshots = &saved.states[(s * H + h) * n_chunks * NN];
      for (size_t t = 0; t < T; ++t) {
        if (t % kWkv7Chunk == 0) std::copy(ST.begin(), ST.end(), snapshots + (t / kWkv7Chunk) * NN);
        const size_t o = (s * T + t) * C + h * N;
        wkv7_step(N, r + o, w + o, k + o, v + o, a + o, b + o, ST.data(), y + o, sa.data());
      }
    }
}

template <typename F>
void wkv7_backward_reference(size_t B, size_t T, size_t H, size_t N, const F* r, const F* w, const F* k,
                             const F* v, const F* a, const F* b, const Wkv7Saved<F>& saved, const F* dy, F* dr,
                             F* dw, F* dk, F* dv, F* da, F* db) {
  const size_t C = H * N, NN = N * N, n_chunks = chunks_of(T);
  // states[τ] = S before step t0 + τ of the chunk (so states[τ+1] is the state after it).
  RecycledVector<F> states((kWkv7Chunk + 1) * NN), sa(kWkv7Chunk * N), y_unused(N), dST(NN), dsa(N), dv_step(N);
  for (size_t s = 0; s < B; ++s)
    for (size_t h = 0; h < H; ++h) {
      std::fill(dST.begin(), dST.end(), F(0));  // ∂L/∂S_t (key-major), carried backwards over the steps
      const F* snapshots = &saved.states[(s * H + h) * n_chunks * NN];
      for (size_t c = n_chunks; c-- > 0;) {
        const size_t t0 = c * kWkv7Chunk, len = std::min(kWkv7Chunk, T - t0);
        // Recompute the chunk's states from its snapshot, with the forward's arithmetic.
        std::copy(snapshots + c * NN, snapshots + (c + 1) * NN, states.begin());
        for (size_t tau = 0; tau < len; ++tau) {
          const size_t o = (s * T + t0 + tau) * C + h * N;
          std::copy(&states[tau * NN], &states[(tau + 1) * NN], &states[(tau + 1) * NN]);
          wkv7_step(N, r + o, w + o, k + o, v + o, a + o, b + o, &states[(tau + 1) * NN], y_unused.data(),
                    &sa[tau * N]);
        }
        for (size_t tau = len; tau-- > 0;) {
          const size_t o = (s * T + t0 + tau) * C + h * N;
          const F* S_new = &states[(tau + 1) * NN];
          const F* S_old = &states[tau * NN];
          const F *sat = &sa[tau * N], *dyt = dy + o, *vt = v + o;
          std::fill(dsa.begin(), dsa.end(), F(0));
          std::fill(dv_step.begin(), dv_step.end(), F(0));
          for (size_t j = 0; j < N; ++j) {
            F* col = &dST[j * N];  // ∂L/∂S[·][j]
            // y = S_new·r: dr_j = Σ_i S_new[i][j]·dy_i, and dS += dy rᵀ.
            dr[o + j] += dot(S_new + j * N, dyt, N);
            const F rj = r[o + j];
            for (size_t i = 0; i < N; ++i) col[i] += dyt[i] * rj;
            // S_new = S_old·diag(ω) + sa bᵀ + v kᵀ with sa = S_old·a.
            dw[o + j] += dot(col, S_old + j * N, N);
            dk[o + j] += dot(col, vt, N);
            db[o + j] += dot(col, sat, N);
            const F kj = k[o + j], bj = b[o + j];
            for (size_t i = 0; i < N; ++i) {
              dv_step[i] += col[i] * kj;
              dsa[i] += col[i] * bj;
            }
          }
          for (size_t i = 0; i < N; ++i) dv[o + i] += dv_step[i];
          for (size_t j = 0; j < N; ++j) {
            F* col = &dST[j * N];
            da[o + j] += dot(S_old + j * N, dsa.data(), N);
            const F wj = w[o + j], aj = a[o + j];
            for (size_t i = 0; i < N; ++i) col[i] = col[i] * wj + dsa[i] * aj;  // ∂L/∂S_old
          }
        }
      }
    }
}

template <typename F>
void wkv7_forward(size_t B, size_t T, size_t H, size_t N, const F* r, const F* w, const F* k, const F* v,
                  const F* a, const F* b, F* y, Wkv7Saved<F>& saved) {
  if constexpr (std::is_same_v<F, float>) {
    if (simd::wkv7_supports(N)) {
      const size_t C = H * N, NN = N * N, n_chunks = chunks_of(T);
      saved.states.resize(B * H * n_chunks * NN);
      cpu::parallel_for(B * H, 1, [&](size_t u0, size_t u1) {
        for (size_t u = u0; u < u1; ++u) {  // unit u = sequence u / H, head u % H
          const size_t o = (u / H) * T * C + (u % H) * N;
          simd::wkv7_forward_head(T, C, N, kWkv7Chunk, r + o, w + o, k + o, v + o, a + o, b + o, y + o,
                                  &saved.states[u * n_chunks * NN]);
        }
      });
      return;
    }
  }
  wkv7_forward_reference(B, T, H, N, r, w, k, v, a, b, y, saved);
}

template <typename F>
void wkv7_backward(size_t B, size_t T, size_t H, size_t N, const F* r, const F* w, const F* k, const F* v,
                   const F* a, const F* b, const Wkv7Saved<F>& saved, const F* dy, F* dr, F* dw, F* dk, F* dv, F* da,
                   F* db) {
  if constexpr (std::is_same_v<F, float>) {
    if (simd::wkv7_supports(N)) {
      const size_t C = H * N, NN = N * N, n_chunks = chunks_of(T);
      cpu::parallel_for(B * H, 1, [&](size_t u0, size_t u1) {
        for (size_t u = u0; u < u1; ++u) {
          const size_t o = (u / H) * T * C + (u % H) * N;
          simd::wkv7_backward_head(T, C, N, kWkv7Chunk, r + o, w + o, k + o, v + o, a + o, b + o,
                                   &saved.states[u * n_chunks * NN], dy + o, dr + o, dw + o, dk + o, dv + o, da + o,
                                   db + o);
        }
      });
      return;
    }
  }
  wkv7_backward_reference(B, T, H, N, r, w, k, v, a, b, saved, dy, dr, dw, dk, dv, da, db);
}

#define RWKV_TRAIN_INSTANTIATE(F)                                                                                 \
  template void wkv4_forward(size_t, size_t, size_t, const F*, const F*, const F*, const F*, F*);                 \
  template void wkv4_backward(size_t, size_t, size_t, const F*, const F*, const F*, const F*, const F*, const F*, \
                              F*, F*, F*, F*);                                                                    \
  template void wkv7_forward(size_t, size_t, size_t, size_t, const F*, const F*, const F*, const F*, const F*,    \
                             const F*, F*, Wkv7Saved<F>&);                                                        \
  template void wkv7_backward(size_t, size_t, size_t, size_t, const F*, const F*, const F*, const F*, const F*,   \
                              const F*, const Wkv7Saved<F>&, const F*, F*, F*, F*, F*, F*, F*);                   \
  template void wkv7_forward_reference(size_t, size_t, size_t, size_t, const F*, const F*, const F*, const F*,     \
                                       const F*, const F*, F*, Wkv7Saved<F>&);                                    \
  template void wkv7_backward_reference(size_t, size_t, size_t, size_t, const F*, const F*, const F*, const F*,    \
                                        const F*, const F*, const Wkv7Saved<F>&, const F*, F*, F*, F*, F*, F*, F*);
RWKV_TRAIN_INSTANTIATE(float)
RWKV_TRAIN_INSTANTIATE(double)
#undef RWKV_TRAIN_INSTANTIATE

}  // namespace rwkv::train
