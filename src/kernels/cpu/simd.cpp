// Highway's dynamic dispatch: this file is compiled once per target (foreach_target.h
// re-includes it), and HWY_DYNAMIC_DISPATCH picks the best one the CPU supports.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cpu/simd.hpp"

HWY_BEFORE_NAMESPACE();
namespace rwkv::cpu::simd::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

constexpr size_t kAhead = 1024;  // bytes of weights asked for ahead of the matrix-vector product

// One weight type: how a vector of weights and a single weight become float32.
struct F32W {
  using T = float;
  static HWY_INLINE VF load(DF d, const float* p) { return hn::LoadU(d, p); }
  static float one(const float* p) { return *p; }
};
struct F16W {
  using T = hwy::float16_t;
  static HWY_INLINE VF load(DF d, const T* p) { return hn::PromoteTo(d, hn::LoadU(hn::Rebind<T, DF>(), p)); }
  static float one(const T* p) {
    uint16_t bits;
    std::memcpy(&bits, p, 2);
    return fp16_to_fp32(bits);
  }
};
struct BF16W {
  using T = hwy::bfloat16_t;
  static HWY_INLINE VF load(DF d, const T* p) { return hn::PromoteTo(d, hn::LoadU(hn::Rebind<T, DF>(), p)); }
  static float one(const T* p) {
    uint16_t bits;
    std::memcpy(&bits, p, 2);
    return bf16_to_fp32(bits);
  }
};

// R rows × TT tokens of dot products: each weight vector is loaded once for TT tokens, each
// activation vector once for R rows.
template <class K, size_t R, size_t TT>
HWY_INLINE void tile(const typename K::T* W, size_t cols, const float* X, float* Y, size_t ldy) {
  const DF d;
  const size_t L = hn::Lanes(d);
  VF acc[R][TT];
  for (size_t r = 0; r < R; ++r)
    for (size_t t = 0; t < TT; ++t) acc[r][t] = hn::Zero(d);
  size_t i = 0;
  for (; i + L <= cols; i += L) {
    VF w[R];
    for (size_t r = 0; r < R; ++r) w[r] = K::load(d, W + r * cols + i);
    for (size_t t = 0; t < TT; ++t) {
      const VF x = hn::LoadU(d, X + t * cols + i);
      for (size_t r = 0; r < R; ++r) acc[r][t] = hn::MulAdd(w[r], x, acc[r][t]);
    }
  }
  for (size_t r = 0; r < R; ++r)
    for (size_t t = 0; t < TT; ++t) {
      float s = hn::GetLane(hn::SumOfLanes(d, acc[r][t]));
      for (size_t j = i; j < cols; ++j) s += K::one(W + r * cols + j) * X[t * cols + j];
      Y[t * ldy + r] = s;
    }
}

// Matrix-vector, one row at a time with four FMA chains. The weights are then one stream read
// front to back, which the hardware prefetcher follows best: on the development machine (Zen 3
// EPYC) one row at a time read f16 weights from DRAM at 11.5–13 GB/s, against 7–9 GB/s for 2
// or 4 interleaved rows and 14.2 GB/s for a plain streaming sum. Asking for the weights 1 kB
// ahead, once per cache line, keeps a few more loads in flight.
template <class K>
HWY_INLINE float matvec_row(const typename K::T* w, size_t cols, const float* x) {
  const DF d;
  const size_t L = hn::Lanes(d);
  VF a0 = hn::Zero(d), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 4 * L <= cols; i += 4 * L) {
    for (size_t b = 0; b < 4 * L * sizeof(typename K::T); b += 64)
      hwy::Prefetch(reinterpret_cast<const uint8_t*>(w + i) + kAhead + b);
    a0 = hn::MulAdd(K::load(d, w + i), hn::LoadU(d, x + i), a0);
    a1 = hn::MulAdd(K::load(d, w + i + L), hn::LoadU(d, x + i + L), a1);
    a2 = hn::MulAdd(K::load(d, w + i + 2 * L), hn::LoadU(d, x + i + 2 * L), a2);
    a3 = hn::MulAdd(K::load(d, w + i + 3 * L), hn::LoadU(d, x + i + 3 * L), a3);
  }
  for (; i + L <= cols; i += L) a0 = hn::MulAdd(K::load(d, w + i), hn::LoadU(d, x + i), a0);
  float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < cols; ++i) s += K::one(w + i) * x[i];
  return s;
}

// R rows against T tokens, in groups of up to 6 tokens.
template <class K, size_t R>
HWY_INLINE void rows_by_tokens(const typename K::T* W, size_t cols, const float* X, size_t T, float* Y,
                               size_t ldy) {
  size_t t = 0;
  for (; t + 6 <= T; t += 6) tile<K, R, 6>(W, cols, X + t * cols, Y + t * ldy, ldy);
  const float* x = X + t * cols;
  float* y = Y + t * ldy;
  switch (T - t) {
    case 5: tile<K, R, 5>(W, cols, x, y, ldy); break;
    case 4: tile<K, R, 4>(W, cols, x, y, ldy); break;
    case 3: tile<K, R, 3>(W, cols, x, y, ldy); break;
    case 2: tile<K, R, 2>(W, cols, x, y, ldy); break;
    case 1: tile<K, R, 1>(W, cols, x, y, ldy); break;
    default: break;
  }
}

template <class K>
void float_rows_k(const typename K::T* W, size_t cols, size_t r0, size_t r1, const float* X, size_t T,
                  float* Y, size_t ldy) {
  if (T == 1) {  // matrix-vector
    for (size_t r = r0; r < r1; ++r) Y[r] = matvec_row<K>(W + r * cols, cols, X);
    return;
  }
  // Matrix-matrix: blocks of tokens small enough to stay in the core's L2 cache while the
  // rows stream past; R rows × 6 tokens of accumulators fill the vector registers.
  constexpr size_t R = HWY_MAX_BYTES >= 64 ? 4 : 2;
  const size_t block = std::max<size_t>(6, (96 * 1024 / sizeof(float) / std::max<size_t>(cols, 1)) / 6 * 6);
  for (size_t t0 = 0; t0 < T; t0 += block) {
    const size_t tn = std::min(block, T - t0);
    const float* x = X + t0 * cols;
    float* y = Y + t0 * ldy;
    size_t r = r0;
    for (; r + R <= r1; r += R) rows_by_tokens<K, R>(W + r * cols, cols, x, tn, y + r, ldy);
    for (; r < r1; ++r) rows_by_tokens<K, 1>(W + r * cols, cols, x, tn, y + r, ldy);
  }
}

// ---- matrix-matrix with tokens along the vector lanes
// X is packed once per call, transposed in groups of G = 2 vectors of tokens:
// Xp[g][i][0..G) = X[g·G + ·][i] (zero beyond T). Six weight rows are broadcast one value at a
// time against two vectors of tokens, so 12 accumulators hold 6 × G finished outputs: no
// horizontal sums, and each weight is widened to float32 once per token block.
size_t TokenGroup() { return 2 * hn::Lanes(DF()); }

void PackTokens(const float* X, size_t T, size_t cols, float* Xp) {
  const size_t G = TokenGroup(), groups = (T + G - 1) / G;
  for (size_t g = 0; g < groups; ++g) {
    float* out = Xp + g * cols * G;
    for (size_t i = 0; i < cols; ++i)
      for (size_t j = 0; j < G; ++j) {
        const size_t t = g * G + j;
        out[i * G + j] = t < T ? X[t * cols + i] : 0.0f;
      }
  }
}

constexpr size_t kPackRows = 6;

// acc[r][v] = Σ_i w[r][i] · xp[i][v·L + lane] for one group of tokens.
HWY_INLINE void packed_tile(const float* const* w, const float* xp, size_t cols, float* out /* [6][G] */) {
  const DF d;
  const size_t L = hn::Lanes(d);
  VF a00 = hn::Zero(d), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00,
     a40 = a00, a41 = a00, a50 = a00, a51 = a00;
  const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3], *w4 = w[4], *w5 = w[5];
  for (size_t i = 0; i < cols; ++i) {
    const VF x0 = hn::LoadU(d, xp + i * 2 * L), x1 = hn::LoadU(d, xp + i * 2 * L + L);
    VF b = hn::Set(d, w0[i]);
    a00 = hn::MulAdd(b, x0, a00), a01 = hn::MulAdd(b, x1, a01);
    b = hn::Set(d, w1[i]);
    a10 = hn::MulAdd(b, x0, a10), a11 = hn::MulAdd(b, x1, a11);
    b = hn::Set(d, w2[i]);
    a20 = hn::MulAdd(b, x0, a20), a21 = hn::MulAdd(b, x1, a21);
    b = hn::Set(d, w3[i]);
    a30 = hn::MulAdd(b, x0, a30), a31 = hn::MulAdd(b, x1, a31);
    b = hn::Set(d, w4[i]);
    a40 = hn::MulAdd(b, x0, a40), a41 = hn::MulAdd(b, x1, a41);
    b = hn::Set(d, w5[i]);
    a50 = hn::MulAdd(b, x0, a50), a51 = hn::MulAdd(b, x1, a51);
  }
  const size_t G = 2 * L;
  hn::StoreU(a00, d, out), hn::StoreU(a01, d, out + L);
  hn::StoreU(a10, d, out + G), hn::StoreU(a11, d, out + G + L);
  hn::StoreU(a20, d, out + 2 * G), hn::StoreU(a21, d, out + 2 * G + L);
  hn::StoreU(a30, d, out + 3 * G), hn::StoreU(a31, d, out + 3 * G + L);
  hn::StoreU(a40, d, out + 4 * G), hn::StoreU(a41, d, out + 4 * G + L);
  hn::StoreU(a50, d, out + 5 * G), hn::StoreU(a51, d, out + 5 * G + L);
}

// Widens n weights to float32.
template <class K>
HWY_INLINE void widen(const typename K::T* src, size_t n, float* dst) {
  const DF d;
  const size_t L = hn::Lanes(d);
  size_t i = 0;
  for (; i + L <= n; i += L) hn::StoreU(K::load(d, src + i), d, dst + i);
  for (; i < n; ++i) dst[i] = K::one(src + i);
}

// Blocked as a GEMM: a chunk of at most kChunk columns, a block of token groups whose packed
// chunk stays in L2 (the weights of a row group are then read and widened once per block),
// and six rows at a time; partial sums of later chunks are added to Y.
constexpr size_t kChunk = 1024;
constexpr size_t kBlockBytes = 256 * 1024;

template <class K>
void packed_rows_k(const typename K::T* W, size_t cols, size_t r0, size_t r1, const float* Xp, size_t T,
                   float* Y, size_t ldy) {
  const size_t G = TokenGroup(), groups = (T + G - 1) / G;
  const size_t kc_max = std::min(cols, kChunk);
  const size_t block = std::max<size_t>(1, kBlockBytes / (kc_max * G * sizeof(float)));
  thread_local std::vector<float> rows_buf, out_buf;
  rows_buf.resize(kPackRows * kc_max);
  out_buf.resize(kPackRows * G);
  for (size_t k0 = 0; k0 < cols; k0 += kc_max) {
    const size_t kc = std::min(kc_max, cols - k0);
    for (size_t g0 = 0; g0 < groups; g0 += block) {
      const size_t g1 = std::min(groups, g0 + block);
      for (size_t r = r0; r < r1; r += kPackRows) {
        const size_t n = std::min(kPackRows, r1 - r);
        const float* w[kPackRows];
        for (size_t j = 0; j < kPackRows; ++j) {
          if (j < n && std::is_same_v<typename K::T, float>) {
            w[j] = reinterpret_cast<const float*>(W + (r + j) * cols + k0);
          } else {
            float* dst = rows_buf.data() + j * kc;
            if (j < n) widen<K>(W + (r + j) * cols + k0, kc, dst);
            else std::fill(dst, dst + kc, 0.0f);
            w[j] = dst;
          }
        }
        for (size_t g = g0; g < g1; ++g) {
          packed_tile(w, Xp + g * cols * G + k0 * G, kc, out_buf.data());
          const size_t tn = std::min(G, T - g * G);
          for (size_t j = 0; j < n; ++j)
            for (size_t t = 0; t < tn; ++t) {
              float& y = Y[(g * G + t) * ldy + r + j];
              y = k0 == 0 ? out_buf[j * G + t] : y + out_buf[j * G + t];
            }
        }
      }
    }
  }
}

void PackedRows(DType type, const void* W, size_t cols, size_t r0, size_t r1, const float* Xp, size_t T, float* Y,
                size_t ldy) {
  switch (type) {
    case DType::F32: return packed_rows_k<F32W>(static_cast<const float*>(W), cols, r0, r1, Xp, T, Y, ldy);
    case DType::F16:
      return packed_rows_k<F16W>(static_cast<const hwy::float16_t*>(W), cols, r0, r1, Xp, T, Y, ldy);
    case DType::BF16:
      return packed_rows_k<BF16W>(static_cast<const hwy::bfloat16_t*>(W), cols, r0, r1, Xp, T, Y, ldy);
    default: return;
  }
}

void FloatRows(DType type, const void* W, size_t cols, size_t r0, size_t r1, const float* X, size_t T, float* Y,
               size_t ldy) {
  switch (type) {
    case DType::F32: return float_rows_k<F32W>(static_cast<const float*>(W), cols, r0, r1, X, T, Y, ldy);
    case DType::F16:
      return float_rows_k<F16W>(static_cast<const hwy::float16_t*>(W), cols, r0, r1, X, T, Y, ldy);
    case DType::BF16:
      return float_rows_k<BF16W>(static_cast<const hwy::bfloat16_t*>(W), cols, r0, r1, X, T, Y, ldy);
    default: return;  // callers pass float types only
  }
}

HWY_INLINE float dot(const float* x, const float* y, size_t n) {
  const DF d;
  const size_t L = hn::Lanes(d);
  VF acc = hn::Zero(d);
  size_t j = 0;
  for (; j + L <= n; j += L) acc = hn::MulAdd(hn::LoadU(d, x + j), hn::LoadU(d, y + j), acc);
  float s = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; j < n; ++j) s += x[j] * y[j];
  return s;
}

void Wkv7Head(size_t T, size_t stride, size_t N, const float* r, const float* w, const float* k, const float* v,
              const float* a, const float* b, float* S, float* y) {
  const DF d;
  const size_t L = hn::Lanes(d);
  for (size_t t = 0; t < T; ++t) {
    const size_t o = t * stride;
    for (size_t i = 0; i < N; ++i) {
      float* si = S + i * N;
      const float sa = dot(si, a + o, N);  // S·a with the old state
      const VF vsa = hn::Set(d, sa), vi = hn::Set(d, v[o + i]);
      VF acc = hn::Zero(d);
      size_t j = 0;
      for (; j + L <= N; j += L) {
        VF s = hn::Mul(hn::LoadU(d, si + j), hn::LoadU(d, w + o + j));
        s = hn::MulAdd(vsa, hn::LoadU(d, b + o + j), s);
        s = hn::MulAdd(vi, hn::LoadU(d, k + o + j), s);
        hn::StoreU(s, d, si + j);
        acc = hn::MulAdd(s, hn::LoadU(d, r + o + j), acc);
      }
      float yi = hn::GetLane(hn::SumOfLanes(d, acc));
      for (; j < N; ++j) {
        si[j] = si[j] * w[o + j] + sa * b[o + j] + v[o + i] * k[o + j];
        yi += si[j] * r[o + j];
      }
      y[o + i] = yi;
    }
  }
}

// RWKV-5/6 for one head: y_i = (Σ_j r_j u_j k_j)·v_i + Σ_j r_j S_ji, then S_j ← k_j v + w_j S_j.
// The state rows j are walked once per vector of values i, with y accumulated in a register.
void Wkv5Head(size_t T, size_t stride, size_t w_stride, size_t N, const float* r, const float* k, const float* v,
              const float* w, const float* u, float* S, float* y) {
  const DF d;
  const size_t L = hn::Lanes(d);
  for (size_t t = 0; t < T; ++t) {
    const float *rt = r + t * stride, *kt = k + t * stride, *vt = v + t * stride, *wt = w + t * w_stride;
    float* yt = y + t * stride;
    float bonus = 0;
    for (size_t j = 0; j < N; ++j) bonus += rt[j] * u[j] * kt[j];
    size_t i = 0;
    for (; i + L <= N; i += L) {
      const VF vi = hn::LoadU(d, vt + i);
      VF acc = hn::Mul(hn::Set(d, bonus), vi);
      for (size_t j = 0; j < N; ++j) {
        float* sj = S + j * N + i;
        const VF s = hn::LoadU(d, sj);
        acc = hn::MulAdd(hn::Set(d, rt[j]), s, acc);
        hn::StoreU(hn::MulAdd(hn::Set(d, wt[j]), s, hn::Mul(hn::Set(d, kt[j]), vi)), d, sj);
      }
      hn::StoreU(acc, d, yt + i);
    }
    for (; i < N; ++i) {
      float acc = bonus * vt[i];
      for (size_t j = 0; j < N; ++j) {
        float& s = S[j * N + i];
        acc += rt[j] * s;
        s = wt[j] * s + kt[j] * vt[i];
      }
      yt[i] = acc;
    }
  }
}

// ---- element-wise activations (Highway's vector Exp and Tanh, 1–4 ulp)

template <class D, class V>
HWY_INLINE V SigmoidV(D d, V x) {
  // exp(−x) is finite for −x ≤ 88 (Exp is valid up to 104); below that σ is 0 in float anyway.
  const V e = hn::Exp(d, hn::Min(hn::Neg(x), hn::Set(d, 88.0f)));
  return hn::Div(hn::Set(d, 1.0f), hn::Add(hn::Set(d, 1.0f), e));
}

template <Act kAct, class D, class V>
HWY_INLINE V ActV(D d, V x) {
  if constexpr (kAct == Act::Sigmoid) return SigmoidV(d, x);
  if constexpr (kAct == Act::Tanh) return hn::Tanh(d, x);
  if constexpr (kAct == Act::ReluSq) {
    const V m = hn::Max(x, hn::Zero(d));
    return hn::Mul(m, m);
  }
  if constexpr (kAct == Act::DecayRwkv7) return hn::Exp(d, hn::Mul(hn::Set(d, -0.60653065971263342f), SigmoidV(d, x)));
  if constexpr (kAct == Act::DecayRwkv6) return hn::Exp(d, hn::Neg(hn::Exp(d, hn::Min(x, hn::Set(d, 88.0f)))));
}

template <Act kAct>
void activate_k(const float* x, const float* bias, size_t T, size_t n, float* y) {
  const DF d;
  const hn::CappedTag<float, 1> d1;  // the tail, with the same arithmetic
  const size_t L = hn::Lanes(d);
  for (size_t t = 0; t < T; ++t, x += n, y += n) {
    size_t i = 0;
    for (; i + L <= n; i += L) {
      VF v = hn::LoadU(d, x + i);
      if (bias) v = hn::Add(v, hn::LoadU(d, bias + i));
      hn::StoreU(ActV<kAct>(d, v), d, y + i);
    }
    for (; i < n; ++i) hn::StoreU(ActV<kAct>(d1, hn::Set(d1, x[i] + (bias ? bias[i] : 0.0f))), d1, y + i);
  }
}

void Activate(Act act, const float* x, const float* bias, size_t T, size_t n, float* y) {
  switch (act) {
    case Act::Sigmoid: return activate_k<Act::Sigmoid>(x, bias, T, n, y);
    case Act::Tanh: return activate_k<Act::Tanh>(x, bias, T, n, y);
    case Act::ReluSq: return activate_k<Act::ReluSq>(x, bias, T, n, y);
    case Act::DecayRwkv7: return activate_k<Act::DecayRwkv7>(x, bias, T, n, y);
    case Act::DecayRwkv6: return activate_k<Act::DecayRwkv6>(x, bias, T, n, y);
  }
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace rwkv::cpu::simd::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace rwkv::cpu::simd {

HWY_EXPORT(FloatRows);
HWY_EXPORT(TokenGroup);
HWY_EXPORT(PackTokens);
HWY_EXPORT(PackedRows);
HWY_EXPORT(Wkv7Head);
HWY_EXPORT(Wkv5Head);
HWY_EXPORT(Activate);
HWY_EXPORT(TargetName);

void float_rows(DType type, const void* W, size_t cols, size_t r0, size_t r1, const float* X, size_t T, float* Y,
                size_t ldy) {
  HWY_DYNAMIC_DISPATCH(FloatRows)(type, W, cols, r0, r1, X, T, Y, ldy);
}

size_t token_group() { return HWY_DYNAMIC_DISPATCH(TokenGroup)(); }

void pack_tokens(const float* X, size_t T, size_t cols, float* Xp) {
  HWY_DYNAMIC_DISPATCH(PackTokens)(X, T, cols, Xp);
}

void packed_rows(DType type, const void* W, size_t cols, size_t r0, size_t r1, const float* Xp, size_t T, float* Y,
                 size_t ldy) {
  HWY_DYNAMIC_DISPATCH(PackedRows)(type, W, cols, r0, r1, Xp, T, Y, ldy);
}

void wkv7_head(size_t T, size_t stride, size_t N, const float* r, const float* w, const float* k, const float* v,
               const float* a, const float* b, float* S, float* y) {
  HWY_DYNAMIC_DISPATCH(Wkv7Head)(T, stride, N, r, w, k, v, a, b, S, y);
}

void wkv5_head(size_t T, size_t stride, size_t w_stride, size_t N, const float* r, const float* k, const float* v,
               const float* w, const float* u, float* S, float* y) {
  HWY_DYNAMIC_DISPATCH(Wkv5Head)(T, stride, w_stride, N, r, k, v, w, u, S, y);
}

void activate(Act act, const float* x, const float* bias, size_t T, size_t n, float* y) {
  HWY_DYNAMIC_DISPATCH(Activate)(act, x, bias, T, n, y);
}

const char* target_name() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace rwkv::cpu::simd
#endif
