// Highway's dynamic dispatch: this file is compiled once per target (foreach_target.h
// re-includes it), and HWY_DYNAMIC_DISPATCH picks the best one the CPU supports.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/aligned_allocator.h>
#include <hwy/cache_control.h>
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <type_traits>
#include <vector>

#include "io/error.hpp"
#include "kernels/cpu/simd.hpp"
#include "kernels/cpu/token_groups-inl.h"

HWY_BEFORE_NAMESPACE();
namespace rwkv::cpu::simd::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

constexpr size_t kAhead = 1024;  // bytes of weights asked for ahead of the product (rows and panels)

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

// Calls fn(K(), W as const K::T*) for the weight type K of `type`: the one switch over the
// float types that every float kernel's entry point shares.
template <class Fn>
HWY_INLINE void by_weight_type(DType type, const void* W, const Fn& fn) {
  switch (type) {
    case DType::F32: return fn(F32W(), static_cast<const float*>(W));
    case DType::F16: return fn(F16W(), static_cast<const hwy::float16_t*>(W));
    case DType::BF16: return fn(BF16W(), static_cast<const hwy::bfloat16_t*>(W));
    default: return;  // callers pass float types only
  }
}

// One row × TT tokens of dot products: each weight vector is loaded once for TT tokens. Two
// sets of accumulators (even and odd vectors of the row) keep 2·TT chains going, so that few
// tokens do not wait on the FMA latency.
template <class K, size_t TT>
HWY_INLINE void tile(const typename K::T* w, size_t cols, const float* X, float* Y, size_t ldy) {
  const DF d;
  const size_t L = hn::Lanes(d);
  VF acc[2][TT];
  for (size_t u = 0; u < 2; ++u)
    for (size_t t = 0; t < TT; ++t) acc[u][t] = hn::Zero(d);
  auto step = [&](size_t u, size_t i) {
    if (i * sizeof(typename K::T) % 64 == 0) hwy::Prefetch(reinterpret_cast<const uint8_t*>(w + i) + kAhead);
    const VF wv = K::load(d, w + i);
    for (size_t t = 0; t < TT; ++t) acc[u][t] = hn::MulAdd(wv, hn::LoadU(d, X + t * cols + i), acc[u][t]);
  };
  size_t i = 0;
  for (; i + 2 * L <= cols; i += 2 * L) step(0, i), step(1, i + L);
  if (i + L <= cols) step(0, i), i += L;
  for (size_t t = 0; t < TT; ++t) {
    float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc[0][t], acc[1][t])));
    for (size_t j = i; j < cols; ++j) s += K::one(w + j) * X[t * cols + j];
    Y[t * ldy] = s;
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

// One row against T tokens, in groups of up to 6 tokens.
template <class K>
HWY_INLINE void row_by_tokens(const typename K::T* w, size_t cols, const float* X, size_t T, float* Y, size_t ldy) {
  size_t t = 0;
  for (; t + 6 <= T; t += 6) tile<K, 6>(w, cols, X + t * cols, Y + t * ldy, ldy);
  const float* x = X + t * cols;
  float* y = Y + t * ldy;
  switch (T - t) {
    case 5: tile<K, 5>(w, cols, x, y, ldy); break;
    case 4: tile<K, 4>(w, cols, x, y, ldy); break;
    case 3: tile<K, 3>(w, cols, x, y, ldy); break;
    case 2: tile<K, 2>(w, cols, x, y, ldy); break;
    case 1: tile<K, 1>(w, cols, x, y, ldy); break;
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
  // Matrix-matrix, one row at a time against blocks of tokens small enough to stay in the
  // core's L2 cache. Rows side by side (2 on AVX2, 4 on AVX-512) shared each activation
  // vector among them, but were as many streams of weights, which the hardware prefetcher
  // followed less well than one. One row at a time, with the two sets of accumulators: 0.1B
  // f16 steps of B = 2, 4 and 8 1.52, 1.49 and 1.26 times faster, f32 B = 4 1.33 times
  // (medians of 3–4 alternating pairs).
  const size_t block = std::max<size_t>(6, (96 * 1024 / sizeof(float) / std::max<size_t>(cols, 1)) / 6 * 6);
  for (size_t t0 = 0; t0 < T; t0 += block) {
    const size_t tn = std::min(block, T - t0);
    for (size_t r = r0; r < r1; ++r) row_by_tokens<K>(W + r * cols, cols, X + t0 * cols, tn, Y + t0 * ldy + r, ldy);
  }
}

// ---- matrix-matrix for a few dozen tokens (batched decode): tokens along the vector lanes
// X is packed once per call, transposed in groups of G tokens (two vectors, or one when all the
// tokens fit one): Xp[g][i][0..G) = X[g·G + ·][i] (zero beyond T). Weight rows are broadcast one
// value at a time against the group's vectors: six rows against two vectors, or kOneVectorRows
// against one, so the accumulators hold finished outputs (no horizontal sums), and each weight is
// read once per token block. (With 16 tokens and 16 lanes, AVX-512, groups of two
// vectors would spend half of every FMA on padding.)
size_t TokenGroup(size_t T) {
  const size_t L = hn::Lanes(DF());
  return T <= L ? L : 2 * L;
}

void PackTokens(const float* X, size_t T, size_t cols, size_t G, float* Xp) {
  const size_t groups = (T + G - 1) / G;
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
// Rows against one vector of tokens (all the tokens in one, e.g. 16 on AVX-512). Twelve rows,
// twelve streams of weights, outran the 15 general registers: GCC kept the pointers in vector
// registers and the accumulators on the stack. `MatmulBatch/f32` (16 tokens, no panels, Zen 5,
// 2 threads) 768 × 768: 12 rows 178 GFLOP/s, 10 rows 312, 8 rows 353; 65536 × 768 149, 212, 197.
constexpr size_t kOneVectorRows = 8;

// out[j][0..2L) = Σ_i s_j[i] · p[i][0..2L) over i < n for six streams s_j, with p advancing by
// two vectors per step: each step broadcasts one value of each stream against the two vectors,
// so twelve accumulators hold 6 × 2L finished sums (no sums across lanes), stored (kAdd: added)
// as six rows of out, ld apart. Both matrix-matrix
// kernels are this loop: streams of weights against packed tokens, or streams of tokens
// against packed weights. A side job, if given, is called as side(i) before each L steps from
// i (whole vectors only): work for the load and store units while the FMAs run.
struct NoSide {
  HWY_INLINE void operator()(size_t) const {}
};
// step(i) for i < n, with side(i) and ahead() before each L steps from i: the side job spread
// among the FMAs by the out-of-order core.
template <class Side, class Step, class Ahead>
HWY_INLINE void steps_with_side(size_t n, size_t L, const Side& side, const Step& step, const Ahead& ahead) {
  size_t i = 0;
  for (; i + L <= n; i += L) {
    side(i);
    ahead();
    HWY_UNROLL(16)
    for (size_t u = 0; u < L; ++u) step(i + u);
  }
  for (; i < n; ++i) step(i);
}

template <bool kAdd = false, class Side = NoSide>
HWY_INLINE void six_by_two(const float* const* s, const float* HWY_RESTRICT p, size_t n, float* out, size_t ld,
                           const Side& side = {}) {
  const DF d;
  const size_t L = hn::Lanes(d);
  VF c00 = hn::Zero(d), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
     c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  const float *s0 = s[0], *s1 = s[1], *s2 = s[2], *s3 = s[3], *s4 = s[4], *s5 = s[5];
  auto step = [&](size_t i) {
    const VF p0 = hn::LoadU(d, p), p1 = hn::LoadU(d, p + L);
    VF a = hn::Set(d, s0[i]);
    c00 = hn::MulAdd(a, p0, c00), c01 = hn::MulAdd(a, p1, c01);
    a = hn::Set(d, s1[i]);
    c10 = hn::MulAdd(a, p0, c10), c11 = hn::MulAdd(a, p1, c11);
    a = hn::Set(d, s2[i]);
    c20 = hn::MulAdd(a, p0, c20), c21 = hn::MulAdd(a, p1, c21);
    a = hn::Set(d, s3[i]);
    c30 = hn::MulAdd(a, p0, c30), c31 = hn::MulAdd(a, p1, c31);
    a = hn::Set(d, s4[i]);
    c40 = hn::MulAdd(a, p0, c40), c41 = hn::MulAdd(a, p1, c41);
    a = hn::Set(d, s5[i]);
    c50 = hn::MulAdd(a, p0, c50), c51 = hn::MulAdd(a, p1, c51);
    p += 2 * L;
  };
  if constexpr (std::is_same_v<Side, NoSide>) {
    HWY_UNROLL(4)
    for (size_t i = 0; i < n; ++i) {
      hwy::Prefetch(p + 16 * L);
      step(i);
    }
  } else {
    steps_with_side(n, L, side, step, [&] { hwy::Prefetch(p + 16 * L); });
  }
  auto put = [&](VF c0, VF c1, float* o) {
    if constexpr (kAdd) c0 = hn::Add(hn::LoadU(d, o), c0), c1 = hn::Add(hn::LoadU(d, o + L), c1);
    hn::StoreU(c0, d, o), hn::StoreU(c1, d, o + L);
  };
  put(c00, c01, out), put(c10, c11, out + ld), put(c20, c21, out + 2 * ld);
  put(c30, c31, out + 3 * ld), put(c40, c41, out + 4 * ld), put(c50, c51, out + 5 * ld);
}

// out[j][0..L) = Σ_i s_j[i] · p[i][0..L) over i < n for R streams s_j, p advancing by one
// vector per step (R accumulators, stored as R rows of out, ld apart); the side job
// as in six_by_two.
template <size_t R, class Side>
HWY_INLINE void rows_by_one(const float* const* s, const float* HWY_RESTRICT p, size_t n, float* out, size_t ld,
                            const Side& side) {
  const DF d;
  const size_t L = hn::Lanes(d);
  VF c[R];
  for (size_t j = 0; j < R; ++j) c[j] = hn::Zero(d);
  size_t i = 0;
  for (; i + L <= n; i += L) {
    side(i);
    hwy::Prefetch(p + 16 * L);
    for (size_t u = 0; u < L; ++u) {
      const VF v = hn::LoadU(d, p + u * L);
      for (size_t j = 0; j < R; ++j) c[j] = hn::MulAdd(hn::Set(d, s[j][i + u]), v, c[j]);
    }
    p += L * L;
  }
  for (; i < n; ++i, p += L) {
    const VF v = hn::LoadU(d, p);
    for (size_t j = 0; j < R; ++j) c[j] = hn::MulAdd(hn::Set(d, s[j][i]), v, c[j]);
  }
  for (size_t j = 0; j < R; ++j) hn::StoreU(c[j], d, out + j * ld);
}

// Blocked as a GEMM: a chunk of at most kChunk columns, a block of token groups whose packed
// chunk stays in L2 (the rows of a group are then read once per block), and R rows at a time;
// partial sums of later chunks are added to Y. Float32 weights only: float16 and bfloat16
// matrices are read from their sixteen-row panels (panel_rows).
constexpr size_t kChunk = 1024;
constexpr size_t kTokenBlockBytes = 256 * 1024;

// R rows at a time: 6 against groups of two vectors of tokens, kOneVectorRows against groups of one.
template <size_t R>
void packed_rows_k(const float* W, size_t cols, size_t r0, size_t r1, const float* Xp, size_t T, float* Y,
                   size_t ldy) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const size_t G = R == kPackRows ? 2 * L : L, groups = (T + G - 1) / G;
  const size_t kc_max = std::min(cols, kChunk);
  const size_t block = std::max<size_t>(1, kTokenBlockBytes / (kc_max * G * sizeof(float)));
  thread_local std::vector<float> out_buf;
  out_buf.resize(R * G);
  // Row j of the group at r, for j beyond r1 the group's first row (its sums are not stored).
  auto row = [&](size_t r, size_t j, size_t k0) { return W + (r + j < r1 ? r + j : r) * cols + k0; };
  for (size_t k0 = 0; k0 < cols; k0 += kc_max) {
    const size_t kc = std::min(kc_max, cols - k0);
    for (size_t g0 = 0; g0 < groups; g0 += block) {
      const size_t g1 = std::min(groups, g0 + block);
      for (size_t r = r0; r < r1; r += R) {
        const size_t n = std::min(R, r1 - r);
        const float* w[R];
        const float* ahead[R];  // while the first token group runs, the group after next into L2
        for (size_t j = 0; j < R; ++j) {
          w[j] = row(r, j, k0);
          ahead[j] = r + 2 * R < r1 ? row(r + 2 * R, j, k0) : nullptr;
        }
        const auto side = [&](size_t i) {
          if (ahead[0] && i * sizeof(float) % 64 == 0)
            for (size_t j = 0; j < R; ++j) __builtin_prefetch(ahead[j] + i, 0, 2);
        };
        for (size_t g = g0; g < g1; ++g) {
          const float* p = Xp + g * cols * G + k0 * G;
          if (g == g0) {
            if constexpr (R == kPackRows)
              six_by_two(w, p, kc, out_buf.data(), G, side);
            else
              rows_by_one<R>(w, p, kc, out_buf.data(), G, side);
          } else if constexpr (R == kPackRows) {  // (one-vector groups: all tokens in one)
            six_by_two(w, p, kc, out_buf.data(), G);
          }
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

void PackedRows(const float* W, size_t cols, size_t r0, size_t r1, const float* Xp, size_t T, float* Y, size_t ldy) {
  if (TokenGroup(T) == hn::Lanes(DF()))
    packed_rows_k<kOneVectorRows>(W, cols, r0, r1, Xp, T, Y, ldy);
  else
    packed_rows_k<kPackRows>(W, cols, r0, r1, Xp, T, Y, ldy);
}

// ---- matrix-matrix (prefill): a packed GEMM in the manner of Goto and BLIS
// Each thread packs its weight rows, widened to float32, in panels of 2 vectors of rows,
// Wp[p][i][0..2L) = W[p·2L + ·][i], one chunk of columns at a time. The micro-kernel broadcasts
// 6 tokens' activations (read in place, 6 streams) against two vectors of weights: 12
// accumulators hold a finished 6 × 2L tile of Y, stored with whole vectors (Y is [token][row]).
// The 6 tokens' chunk (kc × 6 floats) stays in L1 while the weight panels of a row block (in
// L2) stream past it; each weight is widened once per call.
constexpr size_t kMR = 6;
// Columns per chunk at most: every chunk after the first adds its partial sums into Y, read
// back from L2 or L3. Chunks of 512 rather than 256 (a 768 × 3072 product: 6 passes over Y
// instead of 12): Matmul/f16 medians 2–8 % higher on one thread, 0–2 % on two, in two sets of
// 4 alternating runs; 0.1B and 0.4B prefill about 3 % faster in 3 pairs.
constexpr size_t kKC = 512;
constexpr size_t kBlockBytes = 256 * 1024;  // packed weights of a row block

// Y[t][0..2L) (+)= Σ_i x[t][i] · b[i][0..2L) for the 6 tokens t; only the first tn tokens and
// rn rows are written. A whole tile goes straight to Y; a partial one through a buffer.
HWY_INLINE void micro_kernel(const float* const* x, const float* HWY_RESTRICT b, size_t kc, float* y, size_t ldy,
                             size_t tn, size_t rn, bool add) {
  const DF d;
  const size_t L = hn::Lanes(d);
  if (tn == kMR && rn == 2 * L) {
    if (add)
      six_by_two<true>(x, b, kc, y, ldy);
    else
      six_by_two(x, b, kc, y, ldy);
    return;
  }
  HWY_ALIGN float tile[kMR * 2 * HWY_MAX_BYTES / sizeof(float)];
  six_by_two(x, b, kc, tile, 2 * L);
  for (size_t t = 0; t < tn; ++t)
    for (size_t r = 0; r < rn; ++r) y[t * ldy + r] = add ? y[t * ldy + r] + tile[t * 2 * L + r] : tile[t * 2 * L + r];
}

// Wp[p][i][v] = W[r0 + p·2L + v][k0 + i] as float32, zero for rows at or beyond r1. Four rows
// at a time are widened a vector at a time and interleaved (a 4 × L block becomes L runs of 4
// values), then each run is copied to its place in the panel.
template <class K>
void pack_weights(const typename K::T* W, size_t cols, size_t r0, size_t r1, size_t k0, size_t kc, float* Wp) {
  const DF d;
  const size_t L = hn::Lanes(d), NR = 2 * L;
  HWY_ALIGN float quads[HWY_MAX_BYTES >= 16 ? HWY_MAX_BYTES : 16];  // 4 × L floats
  for (size_t p = 0; r0 + p * NR < r1; ++p) {
    float* panel = Wp + p * kc * NR;
    for (size_t v0 = 0; v0 < NR; v0 += 4) {
      const typename K::T* w[4];
      bool valid[4];
      for (size_t j = 0; j < 4; ++j) {
        const size_t r = r0 + p * NR + v0 + j;
        valid[j] = r < r1;
        w[j] = W + (valid[j] ? r : r0) * cols + k0;
      }
      auto row_vec = [&](size_t j, size_t i) { return valid[j] ? K::load(d, w[j] + i) : hn::Zero(d); };
      size_t i = 0;
      for (; NR % 4 == 0 && i + L <= kc; i += L) {  // (one-lane targets have panels of 2 rows)
        hn::StoreInterleaved4(row_vec(0, i), row_vec(1, i), row_vec(2, i), row_vec(3, i), d, quads);
        for (size_t c = 0; c < L; ++c) std::memcpy(panel + (i + c) * NR + v0, quads + 4 * c, 4 * sizeof(float));
      }
      for (; i < kc; ++i)
        for (size_t j = 0; j < 4 && v0 + j < NR; ++j) panel[i * NR + v0 + j] = valid[j] ? K::one(w[j] + i) : 0.0f;
    }
  }
}

template <class K>
void gemm_rows_k(const typename K::T* W, size_t cols, size_t r0, size_t r1, const float* X, size_t T, float* Y,
                 size_t ldy) {
  const DF d;
  const size_t NR = 2 * hn::Lanes(d);
  // Columns in even chunks of at most kKC; rows in even blocks of whole panels whose packed
  // weights (rows × kc floats) stay within kBlockBytes.
  const size_t chunks = (cols + kKC - 1) / kKC, kc_max = (cols + chunks - 1) / chunks;
  const size_t n_rows = r1 - r0, max_rows = std::max(NR, kBlockBytes / (kc_max * sizeof(float)) / NR * NR);
  const size_t blocks = (n_rows + max_rows - 1) / max_rows;
  const size_t block_rows = ((n_rows + blocks - 1) / blocks + NR - 1) / NR * NR;
  thread_local hwy::AlignedFreeUniquePtr<float[]> wp;
  thread_local size_t wp_size = 0;
  if (wp_size < block_rows * kc_max) {
    wp_size = block_rows * kc_max;
    wp = hwy::AllocateAligned<float>(wp_size);
  }
  for (size_t rb = r0; rb < r1; rb += block_rows) {
    const size_t re = std::min(r1, rb + block_rows), panels = (re - rb + NR - 1) / NR;
    for (size_t k0 = 0; k0 < cols; k0 += kc_max) {
      const size_t kc = std::min(kc_max, cols - k0);
      pack_weights<K>(W, cols, rb, re, k0, kc, wp.get());
      for (size_t t0 = 0; t0 < T; t0 += kMR) {
        const size_t tn = std::min(kMR, T - t0);
        const float* x[kMR];  // a short last group repeats its last token (computed, not stored)
        for (size_t j = 0; j < kMR; ++j) x[j] = X + (t0 + std::min(j, tn - 1)) * cols + k0;
        float* y = Y + t0 * ldy + rb;
        for (size_t p = 0; p < panels; ++p)
          micro_kernel(x, wp.get() + p * kc * NR, kc, y + p * NR, ldy, tn, std::min(NR, re - rb - p * NR), k0 > 0);
      }
    }
  }
}

void GemmRows(const float* W, size_t cols, size_t r0, size_t r1, const float* X, size_t T, float* Y, size_t ldy) {
  gemm_rows_k<F32W>(W, cols, r0, r1, X, T, Y, ldy);
}

void FloatRows(DType type, const void* W, size_t cols, size_t r0, size_t r1, const float* X, size_t T, float* Y,
               size_t ldy) {
  by_weight_type(type, W, [&](auto k, const auto* w) { float_rows_k<decltype(k)>(w, cols, r0, r1, X, T, Y, ldy); });
}

// ---- sixteen-row panels (float16, bfloat16): P[g][i][0..16) = W[16g + ·][i]
// A column of a group of 16 rows is one run of 32 bytes, widened in registers to V = 16 / L
// vectors; NT tokens' activations are broadcast against them (NT·V accumulators: 6 × 2 on AVX2,
// 12 × 1 on AVX-512). Each group of rows is one sequential stream, and no call widens or
// repacks weights in memory: the copy was made once, at load.
constexpr size_t kPanelVectors = kPanelRows / hn::MaxLanes(DF());
constexpr size_t kPanelTokens = kPanelVectors >= 12 ? 1 : 12 / kPanelVectors;
static_assert(kPanelRows % hn::MaxLanes(DF()) == 0, "a panel column is whole vectors");
// Many tokens (prefill) take panels in pairs where a panel column is one vector (AVX-512): 12
// tokens against 2 widened vectors, 24 accumulators of the 32 registers, so each token's
// broadcast serves 2 FMAs and each widened vector 12. Against one panel at a time (12 × 1),
// Zen 5, 2 threads: `Matmul/f16` 768 × 768 … 768 × 3072 370 → 440 GFLOP/s, `GemmInCache/f16`
// 197 → 236 (95 % of one core's peak; 6 tokens 229, 8 tokens 234); 0.1B f16 prefill 1.20×
// (1.18–1.24, 4 alternating pairs).
constexpr size_t kPairPanels = kPanelVectors == 1 ? 2 : 1;
constexpr size_t kPairTokens = kPairPanels == 2 ? 12 : kPanelTokens;

// The activations a panel kernel reads, value i of token t of NT: from each token's row
// (TokenRows: x[t][i]), or from a copy packed token by token (PackedTokens: xp[i·NT + t], one
// pointer for all tokens, where 16 separate ones would not fit the general registers). first():
// token 0's row (alone, both layouts are the row).
struct TokenRows {
  const float* const* x;
  template <size_t NT>
  HWY_INLINE float at(size_t t, size_t i) const { return x[t][i]; }
  const float* first() const { return x[0]; }
};
struct PackedTokens {
  const float* HWY_RESTRICT xp;
  template <size_t NT>
  HWY_INLINE float at(size_t t, size_t i) const { return xp[i * NT + t]; }
  const float* first() const { return xp; }
};

// Y[t][16p + 0..16) (+)= Σ_{i<kc} x_t[i] · P_p[i][0..16) for NT tokens and NP panels, panel p
// at P + p·stride, asking for each panel `ahead` bytes before it is read.
template <class K, size_t NT, size_t NP = 1, class Tokens>
HWY_INLINE void panel_tokens(const Tokens& x, const typename K::T* P, size_t stride, size_t kc, float* y,
                             size_t ldy, bool add, size_t ahead) {
  const DF d;
  constexpr size_t L = hn::MaxLanes(DF()), V = kPanelVectors;
  // Fewer than 8 accumulators would wait on the FMA latency: U sets take the columns in turn.
  // 4 tokens on AVX-512 (U = 2): `MatmulFour/f16` 768 × 768, 1 thread, in L2, 121–123 → 176–177
  // GFLOP/s; 0.1B f16 B = 4 1.152× (8 alternating pairs, 0.978–1.280; memory-bound in the slow
  // state: another set of 6, 0.991).
  constexpr size_t U = std::max<size_t>(1, 8 / (NT * NP * V));
  VF acc[U][NT][NP * V];
  for (size_t u = 0; u < U; ++u)
    for (size_t t = 0; t < NT; ++t)
      for (size_t v = 0; v < NP * V; ++v) acc[u][t][v] = hn::Zero(d);
  // (Forced inline: GCC kept the call, the accumulators in memory, and 0.1B f16 prefill ran 0.82×.)
  auto column = [&](size_t u, size_t i) HWY_ATTR __attribute__((always_inline)) {
    VF w[NP * V];
    for (size_t p = 0; p < NP; ++p) {
      const typename K::T* col = P + p * stride + i * kPanelRows;
      hwy::Prefetch(reinterpret_cast<const uint8_t*>(col) + ahead);
      for (size_t v = 0; v < V; ++v) w[p * V + v] = K::load(d, col + v * L);
    }
    // Float32 weights on AVX-512: kept in registers by force. Left free to fold the loads into
    // the FMAs, GCC 12 spilled the 12 × 2 kernel's weights and token pointers to the stack (121
    // FMAs on stack operands): `GemmInCache/f32_panels` 162 → 250 GFLOP/s (f16: 256), `Matmul/f32`
    // 1 thread 152–161 → 219–238, 2 threads 269–298 → 383–399; 0.1B f32 prefill 1374, 1529 →
    // 2071, 2037 tokens/s (2 alternating pairs). (The same barrier on f16 weights: 256 → 203.)
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    if constexpr (std::is_same_v<K, F32W>)
      for (size_t v = 0; v < NP * V; ++v) asm("" : "+v"(w[v].raw));
#endif
    for (size_t t = 0; t < NT; ++t) {
      const VF b = hn::Set(d, x.template at<NT>(t, i));
      for (size_t v = 0; v < NP * V; ++v) acc[u][t][v] = hn::MulAdd(b, w[v], acc[u][t][v]);
    }
  };
  size_t i = 0;
  HWY_UNROLL(4)
  for (; i + U <= kc; i += U)
    for (size_t u = 0; u < U; ++u) column(u, i + u);
  for (; i < kc; ++i) column(0, i);
  for (size_t u = 1; u < U; ++u)
    for (size_t t = 0; t < NT; ++t)
      for (size_t v = 0; v < NP * V; ++v) acc[0][t][v] = hn::Add(acc[0][t][v], acc[u][t][v]);
  for (size_t t = 0; t < NT; ++t)
    for (size_t v = 0; v < NP * V; ++v) {
      float* o = y + t * ldy + v * L;
      hn::StoreU(add ? hn::Add(hn::LoadU(d, o), acc[0][t][v]) : acc[0][t][v], d, o);
    }
}

// One token: four sets of accumulators take the columns in turn, so that the sums do not wait
// on the FMA latency (a matrix-vector product reads each weight once: it is bound by memory).
// Each cache line of the panel is asked for kPanelAhead bytes ahead (a float16 column is half
// a line, a float32 one a whole line). 4 kB rather than 1 kB: on Zen 5, in the fast memory
// state, f16 decode 1.5B 42.2–42.7 → 38.8–39.3 ms a token and 0.1B 4.49–4.54 → 4.03–4.04
// (2 kB between), the same in the slow state (3 alternating rounds).
constexpr size_t kPanelAhead = 4096;
template <class K>
HWY_INLINE void panel_token(const float* x, const typename K::T* P, size_t kc, float* y, bool add) {
  const DF d;
  constexpr size_t L = hn::MaxLanes(DF()), V = kPanelVectors, U = 4;
  constexpr size_t kColumnsPerLine = std::max<size_t>(1, 64 / (kPanelRows * sizeof(typename K::T)));
  VF acc[U][V];
  for (size_t u = 0; u < U; ++u)
    for (size_t v = 0; v < V; ++v) acc[u][v] = hn::Zero(d);
  auto step = [&](size_t u, size_t c) {
    const typename K::T* col = P + c * kPanelRows;
    if (c % kColumnsPerLine == 0) hwy::Prefetch(reinterpret_cast<const uint8_t*>(col) + kPanelAhead);
    const VF b = hn::Set(d, x[c]);
    for (size_t v = 0; v < V; ++v) acc[u][v] = hn::MulAdd(b, K::load(d, col + v * L), acc[u][v]);
  };
  size_t i = 0;
  for (; i + U <= kc; i += U)
    for (size_t u = 0; u < U; ++u) step(u, i + u);
  for (; i < kc; ++i) step(0, i);
  for (size_t v = 0; v < V; ++v) {
    const VF s = hn::Add(hn::Add(acc[0][v], acc[1][v]), hn::Add(acc[2][v], acc[3][v]));
    hn::StoreU(add ? hn::Add(hn::LoadU(d, y + v * L), s) : s, d, y + v * L);
  }
}

// One group of nt ≤ NT tokens against NP panels (nt of them at compile time, for the registers).
template <class K, size_t NT, size_t NP, class Tokens>
HWY_INLINE void panel_group(size_t nt, const Tokens& x, const typename K::T* P, size_t stride, size_t kc, float* y,
                            size_t ldy, bool add, size_t ahead) {
  if constexpr (NT == 1 && NP == 1) {
    panel_token<K>(x.first(), P, kc, y, add);
  } else if constexpr (NT == 1) {
    panel_tokens<K, 1, NP>(x, P, stride, kc, y, ldy, add, ahead);
  } else {
    if (nt == NT) return panel_tokens<K, NT, NP>(x, P, stride, kc, y, ldy, add, ahead);
    panel_group<K, NT - 1, NP>(nt, x, P, stride, kc, y, ldy, add, ahead);
  }
}

// The tokens in even_groups of at most NT, each against `panels` panels of kc columns, panel j
// at first + j·stride, NP of them at a time: Y[t][r0 + 16j + ·] (+)= x[t] · panel j. The groups
// of several tokens ask for the weights `ahead` bytes before they read them.
template <class K, size_t NT = kPanelTokens, size_t NP = 1>
void panel_sweep(const typename K::T* first, size_t stride, size_t panels, size_t kc, const float* X, size_t ldx,
                 size_t T, float* Y, size_t ldy, bool add, size_t ahead) {
  even_groups<NT>(T, [&](size_t t0, size_t nt) HWY_ATTR __attribute__((always_inline)) {
    const float* x[NT];
    for (size_t j = 0; j < nt; ++j) x[j] = X + (t0 + j) * ldx;
    float* y = Y + t0 * ldy;
    size_t j = 0;
    for (; j + NP <= panels; j += NP)
      panel_group<K, NT, NP>(nt, TokenRows{x}, first + j * stride, stride, kc, y + j * kPanelRows, ldy, add, ahead);
    for (; j < panels; ++j)
      panel_group<K, NT, 1>(nt, TokenRows{x}, first + j * stride, stride, kc, y + j * kPanelRows, ldy, add, ahead);
  });
}

// Many tokens (prefill): columns in even chunks of at most kKC, rows in blocks whose panels'
// chunk stays within kBlockBytes. Per chunk, each group of tokens runs against the block's
// panels, the first bringing them from memory and the others finding them in L2. (Widening
// each block's chunk to float32 first, for the kernel's loads to need no conversion, measured
// the same for 0.1B f16 prefill: 0.998, 6 alternating pairs.)
//
// A few tokens (batched decode): whole rows, panel after panel, one sequential stream. A
// group's kernel reads from memory at 12 FMAs per 32 bytes (AVX2), too slowly for 1 kB ahead
// to cover the memory's latency: it asks kWholeRowsAhead (8 kB) ahead, into the next panel.
// (Measured with one group per block of panels, 0.1B f16, old/new step time, 6 alternating
// pairs each: 4 kB against 1 kB B = 6 1.069, B = 16 1.069; 8 kB against 4 kB 1.017 and 1.034;
// 16 kB against 4 kB 0.953 and 0.978.) With more than one group, the groups take each panel in slices of
// kSliceColumns in turn, the first bringing a slice from memory and the others finding it in L1,
// so that memory and arithmetic overlap all the way (one group after another over a block in
// L2, the first waited on memory while the others left it idle). 0.1B f16, old/new step time,
// medians of 6–8 alternating pairs, with the even groups: B = 8 1.108, B = 12 1.041, B = 16
// 1.029 and 1.061; slices of 128 columns 0.998 against 256, 64 0.97 against 128.
//
// On AVX-512 (a panel column one vector), 13 to 23 tokens run in groups of up to kBatchTokens
// = 16 (16 accumulators) from activations packed token by token (PackPanelTokens, once per
// product, by the caller): one pointer where 16 token pointers spilled from the general
// registers, and each column's widened weights serve 16 FMAs whose broadcasts come from the
// FMA's own load. `MatmulBatch/f16` (16 tokens) 2 threads 65536 × 768 340–397 → 430–434
// GFLOP/s, 3072 × 768 383–418 → 435–440 (1 thread 210 → 217–235); 0.1B B = 16 f16 1.069×,
// f32 1.152× (6 alternating pairs); up to 12 tokens the pointers fit (B = 8 0.99×, unchanged).
constexpr size_t kSliceColumns = 256, kWholeRowsAhead = 8192;
constexpr size_t kBatchTokens = kPanelVectors == 1 ? 16 : kPanelTokens;

// Batched decode reads the activations packed group by group (even_groups of kBatchTokens, as
// panel_rows_k reads them), each group column by column: Xp[t0·cols + i·nt + j] = X[t0 + j][i].
bool PanelPacks(size_t T) { return kBatchTokens > kPanelTokens && T > kPanelTokens && T < kMR * 4; }
// Four tokens by four columns at a time, transposed in registers; the rest one value at a time.
void PackPanelTokens(const float* X, size_t T, size_t cols, float* Xp) {
  even_groups<kBatchTokens>(T, [&](size_t t0, size_t nt) HWY_ATTR {
    float* out = Xp + t0 * cols;
    size_t j = 0;
#if HWY_TARGET != HWY_SCALAR
    const hn::Full128<float> d4;
    for (; j + 4 <= nt; j += 4) {
      const float* x = X + (t0 + j) * cols;
      size_t i = 0;
      for (; i + 4 <= cols; i += 4) {
        const auto a = hn::LoadU(d4, x + i), b = hn::LoadU(d4, x + cols + i);
        const auto c = hn::LoadU(d4, x + 2 * cols + i), e = hn::LoadU(d4, x + 3 * cols + i);
        const auto ab_lo = hn::InterleaveLower(d4, a, b), ce_lo = hn::InterleaveLower(d4, c, e);
        const auto ab_hi = hn::InterleaveUpper(d4, a, b), ce_hi = hn::InterleaveUpper(d4, c, e);
        float* o = out + i * nt + j;
        hn::StoreU(hn::ConcatLowerLower(d4, ce_lo, ab_lo), d4, o);
        hn::StoreU(hn::ConcatUpperUpper(d4, ce_lo, ab_lo), d4, o + nt);
        hn::StoreU(hn::ConcatLowerLower(d4, ce_hi, ab_hi), d4, o + 2 * nt);
        hn::StoreU(hn::ConcatUpperUpper(d4, ce_hi, ab_hi), d4, o + 3 * nt);
      }
      for (; i < cols; ++i)
        for (size_t u = 0; u < 4; ++u) out[i * nt + j + u] = x[u * cols + i];
    }
#endif
    for (; j < nt; ++j)
      for (size_t i = 0; i < cols; ++i) out[i * nt + j] = X[(t0 + j) * cols + i];
  });
}

template <class K>
void panel_rows_k(const typename K::T* P, size_t cols, size_t r0, size_t r1, const float* X, size_t T, float* Y,
                  size_t ldy, const float* Xp) {
  if (T < kMR * 4 && !PanelPacks(T)) {
    const size_t slice = T > kPanelTokens ? kSliceColumns : cols;
    for (size_t rb = r0; rb < r1; rb += kPanelRows)
      for (size_t k0 = 0; k0 < cols; k0 += slice)
        panel_sweep<K>(P + rb * cols + k0 * kPanelRows, 0, 1, std::min(slice, cols - k0), X + k0, cols, T, Y + rb,
                       ldy, k0 > 0, kWholeRowsAhead);
    return;
  }
  if (T < kMR * 4) {
    const size_t slice = T > kBatchTokens ? kSliceColumns : cols;  // (one group: whole rows)
    for (size_t rb = r0; rb < r1; rb += kPanelRows)
      for (size_t k0 = 0; k0 < cols; k0 += slice)
        even_groups<kBatchTokens>(T, [&](size_t t0, size_t nt) HWY_ATTR __attribute__((always_inline)) {
          panel_group<K, kBatchTokens, 1>(nt, PackedTokens{Xp + t0 * cols + k0 * nt}, P + rb * cols + k0 * kPanelRows, 0,
                                          std::min(slice, cols - k0), Y + t0 * ldy + rb, ldy, k0 > 0, kWholeRowsAhead);
        });
    return;
  }
  const size_t chunks = (cols + kKC - 1) / kKC, kc_max = (cols + chunks - 1) / chunks;
  const size_t block_rows =
      std::max(kPanelRows, kBlockBytes / (kc_max * sizeof(typename K::T)) / kPanelRows * kPanelRows);
  for (size_t rb = r0; rb < r1; rb += block_rows) {
    const size_t panels = (std::min(r1, rb + block_rows) - rb) / kPanelRows;
    for (size_t k0 = 0; k0 < cols; k0 += kc_max)
      panel_sweep<K, kPairTokens, kPairPanels>(P + rb * cols + k0 * kPanelRows, cols * kPanelRows, panels,
                                               std::min(kc_max, cols - k0), X + k0, cols, T, Y + rb, ldy, k0 > 0,
                                               kAhead);
  }
}

void PanelRows(DType type, const void* P, size_t cols, size_t r0, size_t r1, const float* X, size_t T, float* Y,
               size_t ldy, const float* Xp) {
  if (type == DType::F32) return panel_rows_k<F32W>(static_cast<const float*>(P), cols, r0, r1, X, T, Y, ldy, Xp);
  if (type == DType::F16)
    return panel_rows_k<F16W>(static_cast<const F16W::T*>(P), cols, r0, r1, X, T, Y, ldy, Xp);
  if (type == DType::BF16)
    return panel_rows_k<BF16W>(static_cast<const BF16W::T*>(P), cols, r0, r1, X, T, Y, ldy, Xp);
}

// One token, state S[value i][key j], rows i0 … i0 + R − 1 together: per row, sa = S_i·a,
// then the row's update and y_i. R rows at a time give R independent chains of FMAs in each
// loop (one row at a time, each loop was a single chain: `Wkv7/1` waited on FMA latency).
// `Wkv7/1` on AVX2: 0.50 → 0.78 M tokens/s per head (medians of 5 alternating runs; 2 rows at
// a time 0.61, 8 rows 0.74: their registers spill).
//
// In decode the state comes from DRAM: the weights streamed since the layer's last step have
// pushed it out of the caches. Each call asks for the same rows of the state scanned next
// (S_next: the next head's, or the next sequence's first head's in a batched step; without
// one, 16 kB further on, for N = 64 the next head of a layer) while it works on its own. 0.1B
// Q4_0 decode, old/new step time, medians of 10 and 12 alternating pairs: 1.036 and 1.023 (8
// kB ahead: 1.023); leaving the scan out altogether would give 1.064.
constexpr size_t kStateAhead = 16384;
template <size_t R>
HWY_INLINE void wkv7_token_rows(size_t N, const float* r, const float* w, const float* k, const float* v,
                                const float* a, const float* b, size_t i0, float* S, const float* S_next, float* y) {
  const DF d;
  const size_t L = hn::Lanes(d), NV = N / L * L;
  float* si[R];
  VF acc[R];
  for (size_t q = 0; q < R; ++q) si[q] = S + (i0 + q) * N, acc[q] = hn::Zero(d);
  const uint8_t* ahead = S_next ? reinterpret_cast<const uint8_t*>(S_next + i0 * N)
                                : reinterpret_cast<const uint8_t*>(si[0]) + kStateAhead;
  for (size_t o = 0; o < R * N * sizeof(float); o += 64) hwy::Prefetch(ahead + o);  // (never faults past the end)
  for (size_t j = 0; j < NV; j += L) {  // S·a with the old state
    const VF aj = hn::LoadU(d, a + j);
    for (size_t q = 0; q < R; ++q) acc[q] = hn::MulAdd(hn::LoadU(d, si[q] + j), aj, acc[q]);
  }
  float sa[R];
  VF vsa[R], vi[R];
  for (size_t q = 0; q < R; ++q) {
    sa[q] = hn::GetLane(hn::SumOfLanes(d, acc[q]));
    for (size_t j = NV; j < N; ++j) sa[q] += si[q][j] * a[j];
    vsa[q] = hn::Set(d, sa[q]), vi[q] = hn::Set(d, v[i0 + q]), acc[q] = hn::Zero(d);
  }
  for (size_t j = 0; j < NV; j += L) {
    const VF wj = hn::LoadU(d, w + j), bj = hn::LoadU(d, b + j), kj = hn::LoadU(d, k + j), rj = hn::LoadU(d, r + j);
    for (size_t q = 0; q < R; ++q) {
      VF s = hn::Mul(hn::LoadU(d, si[q] + j), wj);
      s = hn::MulAdd(vsa[q], bj, s);
      s = hn::MulAdd(vi[q], kj, s);
      hn::StoreU(s, d, si[q] + j);
      acc[q] = hn::MulAdd(s, rj, acc[q]);
    }
  }
  for (size_t q = 0; q < R; ++q) {
    float yi = hn::GetLane(hn::SumOfLanes(d, acc[q]));
    for (size_t j = NV; j < N; ++j) {
      si[q][j] = si[q][j] * w[j] + sa[q] * b[j] + v[i0 + q] * k[j];
      yi += si[q][j] * r[j];
    }
    y[i0 + q] = yi;
  }
}

// In a long run each token reads its head's slice (N values) of several [T][C] arrays, one row
// of C values after the last: in a prefill they come from L3 or memory (each array is 1.5 MB at
// 512 × 768), on lines the hardware prefetcher does not ask for in time. The scans ask for the
// slices kWkvTokensAhead tokens ahead while they work on the current one. 0.1B f16 prefill, 512
// tokens, 2 threads, the WKV-7 scans of a layer (time-stamp counter, 5 alternating pairs):
// 9.7–9.8 M cycles → 7.2–8.0 M (2 or 8 tokens ahead the same, 16 slower). `Wkv7` and `Wkv5` at
// T = 512, width 768, fastest of 8, 3 alternating rounds: 365–472 → 347–404 µs and
// 273–378 → 240–281 µs.
constexpr size_t kWkvTokensAhead = 4;
HWY_INLINE void prefetch_head_slices(size_t N, std::initializer_list<const float*> slices) {
  for (const float* s : slices)
    for (size_t i = 0; i < N; i += 64 / sizeof(float)) hwy::Prefetch(s + i);
}

// Long runs work on the transposed state, St[key j][value i], with the vector lanes along i:
// no sums across lanes. sa = S·a (all N values) accumulates over j in NV-vector chunks, two
// chains each: for the first token only (the update of each token gives the next one's).
template <size_t NV>
HWY_INLINE void wkv7_sa_chunk(size_t N, const float* St, const float* a, size_t i0, float* sa) {
  const DF d;
  const size_t L = hn::Lanes(d);
  VF even[NV], odd[NV];
  for (size_t c = 0; c < NV; ++c) even[c] = odd[c] = hn::Zero(d);
  size_t j = 0;
  for (; j + 2 <= N; j += 2) {
    const VF a0 = hn::Set(d, a[j]), a1 = hn::Set(d, a[j + 1]);
    for (size_t c = 0; c < NV; ++c) {
      even[c] = hn::MulAdd(hn::LoadU(d, St + j * N + i0 + c * L), a0, even[c]);
      odd[c] = hn::MulAdd(hn::LoadU(d, St + (j + 1) * N + i0 + c * L), a1, odd[c]);
    }
  }
  if (j < N)
    for (size_t c = 0; c < NV; ++c) even[c] = hn::MulAdd(hn::LoadU(d, St + j * N + i0 + c * L), hn::Set(d, a[j]), even[c]);
  for (size_t c = 0; c < NV; ++c) hn::StoreU(hn::Add(even[c], odd[c]), d, sa + i0 + c * L);
}

// The update of a chunk of NV vectors of values for one token, and y for them; with kNext,
// also the next token's sa from the updated rows (a_next: that token's a), so that each token
// after the first walks the state once.
template <size_t NV, bool kNext>
HWY_INLINE void wkv7_update_chunk(size_t N, const float* r, const float* w, const float* k, const float* v,
                                  const float* b, const float* sa, const float* a_next, size_t i0, float* St,
                                  float* y, float* sa_next) {
  const DF d;
  const size_t L = hn::Lanes(d);
  VF vs[NV], sas[NV], acc[NV], next[NV];
  for (size_t c = 0; c < NV; ++c) {
    vs[c] = hn::LoadU(d, v + i0 + c * L);
    sas[c] = hn::LoadU(d, sa + i0 + c * L);
    acc[c] = next[c] = hn::Zero(d);
  }
  for (size_t j = 0; j < N; ++j) {
    const VF wj = hn::Set(d, w[j]), bj = hn::Set(d, b[j]), kj = hn::Set(d, k[j]), rj = hn::Set(d, r[j]);
    [[maybe_unused]] VF aj;
    if constexpr (kNext) aj = hn::Set(d, a_next[j]);
    float* row = St + j * N + i0;
    for (size_t c = 0; c < NV; ++c) {
      VF s = hn::Mul(hn::LoadU(d, row + c * L), wj);
      s = hn::MulAdd(sas[c], bj, s);
      s = hn::MulAdd(vs[c], kj, s);
      hn::StoreU(s, d, row + c * L);
      acc[c] = hn::MulAdd(s, rj, acc[c]);
      if constexpr (kNext) next[c] = hn::MulAdd(s, aj, next[c]);
    }
  }
  for (size_t c = 0; c < NV; ++c) {
    hn::StoreU(acc[c], d, y + i0 + c * L);
    if constexpr (kNext) hn::StoreU(next[c], d, sa_next + i0 + c * L);
  }
}

// One token on the transposed state, given its sa; with a_next, the next token's sa as well.
// Chunks of up to 4 vectors of values: each chunk's sums for y and the next sa are chains of N
// dependent FMAs, so fewer, wider chunks wait less on them (those of 2 vectors, the widest
// before: `Wkv7/512` 1.71 → 1.81 M tokens/s, medians of 6 alternating runs on AVX2; the
// vectors that do not fit in registers are read back from L1).
template <bool kNext>
HWY_INLINE void wkv7_token_lanes(size_t N, const float* r, const float* w, const float* k, const float* v,
                                 const float* b, const float* sa, const float* a_next, float* St, float* y,
                                 float* sa_next) {
  const DF d;
  const size_t L = hn::Lanes(d);
  size_t i0 = 0;
  for (; i0 + 4 * L <= N; i0 += 4 * L) wkv7_update_chunk<4, kNext>(N, r, w, k, v, b, sa, a_next, i0, St, y, sa_next);
  for (; i0 + 2 * L <= N; i0 += 2 * L) wkv7_update_chunk<2, kNext>(N, r, w, k, v, b, sa, a_next, i0, St, y, sa_next);
  for (; i0 < N; i0 += L) wkv7_update_chunk<1, kNext>(N, r, w, k, v, b, sa, a_next, i0, St, y, sa_next);
}

// Long runs with whole vectors of rows work on the transposed state (transposed in and out
// once per call); a few tokens, or odd head sizes, on the state as it is.
void Wkv7Head(size_t T, size_t stride, size_t N, const float* r, const float* w, const float* k, const float* v,
              const float* a, const float* b, float* S, float* y, const float* S_next) {
  const DF d;
  if (T < 8 || N % hn::Lanes(d) != 0) {
    for (size_t t = 0; t < T; ++t) {
      const size_t o = t * stride;
      size_t i = 0;
      for (; i + 4 <= N; i += 4) wkv7_token_rows<4>(N, r + o, w + o, k + o, v + o, a + o, b + o, i, S, S_next, y + o);
      for (; i < N; ++i) wkv7_token_rows<1>(N, r + o, w + o, k + o, v + o, a + o, b + o, i, S, S_next, y + o);
    }
    return;
  }
  thread_local std::vector<float> St, sa, sa_next;
  St.resize(N * N);
  sa.resize(N);
  sa_next.resize(N);
  for (size_t i = 0; i < N; ++i)
    for (size_t j = 0; j < N; ++j) St[j * N + i] = S[i * N + j];
  const size_t L = hn::Lanes(d);
  size_t i0 = 0;
  for (; i0 + 4 * L <= N; i0 += 4 * L) wkv7_sa_chunk<4>(N, St.data(), a, i0, sa.data());
  for (; i0 < N; i0 += L) wkv7_sa_chunk<1>(N, St.data(), a, i0, sa.data());
  for (size_t t = 0; t < T; ++t) {
    const size_t o = t * stride;
    if (t + kWkvTokensAhead < T) {
      const size_t p = o + kWkvTokensAhead * stride;
      prefetch_head_slices(N, {r + p, w + p, k + p, v + p, a + p, b + p, y + p});
    }
    if (t + 1 < T)
      wkv7_token_lanes<true>(N, r + o, w + o, k + o, v + o, b + o, sa.data(), a + o + stride, St.data(), y + o,
                             sa_next.data());
    else
      wkv7_token_lanes<false>(N, r + o, w + o, k + o, v + o, b + o, sa.data(), nullptr, St.data(), y + o, nullptr);
    sa.swap(sa_next);
  }
  for (size_t i = 0; i < N; ++i)
    for (size_t j = 0; j < N; ++j) S[i * N + j] = St[j * N + i];
}

// RWKV-4 (spec §2.3) for channels [c0, c1): a vector of channels at a time, each scanned over
// the T tokens; the last channels one lane at a time with the same arithmetic. Every exponent
// is ≤ 0 by construction of q.
template <class D>
HWY_INLINE void wkv4_lanes(D d, size_t T, size_t A, size_t c, const float* k, const float* v, const float* w,
                           const float* u, float* aa, float* bb, float* pp, float* y) {
  auto a = hn::LoadU(d, aa + c), b = hn::LoadU(d, bb + c), p = hn::LoadU(d, pp + c);
  const auto wc = hn::LoadU(d, w + c), uc = hn::LoadU(d, u + c);
  for (size_t t = 0; t < T; ++t) {
    const auto kt = hn::LoadU(d, k + t * A + c), vt = hn::LoadU(d, v + t * A + c), ukt = hn::Add(uc, kt);
    auto q = hn::Max(p, ukt);
    auto e1 = hn::Exp(d, hn::Sub(p, q)), e2 = hn::Exp(d, hn::Sub(ukt, q));
    hn::StoreU(hn::Div(hn::MulAdd(e1, a, hn::Mul(e2, vt)), hn::MulAdd(e1, b, e2)), d, y + t * A + c);
    const auto pw = hn::Add(p, wc);
    q = hn::Max(pw, kt);
    e1 = hn::Exp(d, hn::Sub(pw, q));
    e2 = hn::Exp(d, hn::Sub(kt, q));
    a = hn::MulAdd(e1, a, hn::Mul(e2, vt));
    b = hn::MulAdd(e1, b, e2);
    p = q;
  }
  hn::StoreU(a, d, aa + c), hn::StoreU(b, d, bb + c), hn::StoreU(p, d, pp + c);
}

void Wkv4Channels(size_t T, size_t A, size_t c0, size_t c1, const float* k, const float* v, const float* w,
                  const float* u, float* aa, float* bb, float* pp, float* y) {
  const DF d;
  const hn::CappedTag<float, 1> d1;
  size_t c = c0;
  for (; c + hn::Lanes(d) <= c1; c += hn::Lanes(d)) wkv4_lanes(d, T, A, c, k, v, w, u, aa, bb, pp, y);
  for (; c < c1; ++c) wkv4_lanes(d1, T, A, c, k, v, w, u, aa, bb, pp, y);
}

// RWKV-5/6 for one head: y_i = (Σ_j r_j u_j k_j)·v_i + Σ_j r_j S_ji, then S_j ← k_j v + w_j S_j.
// One token's update and output for NV vectors of values i0 …: the state's rows j stream past
// NV accumulators of y, NV independent chains of FMAs (a single chain per vector, as before,
// waited on FMA latency: RWKV-5/6 decode and prefill both run this).
template <size_t NV>
HWY_INLINE void wkv5_token_chunk(size_t N, const float* rt, const float* kt, const float* vt, const float* wt,
                                 float bonus, size_t i0, float* S, float* yt) {
  const DF d;
  const size_t L = hn::Lanes(d);
  VF vi[NV], acc[NV];
  for (size_t c = 0; c < NV; ++c) {
    vi[c] = hn::LoadU(d, vt + i0 + c * L);
    acc[c] = hn::Mul(hn::Set(d, bonus), vi[c]);
  }
  for (size_t j = 0; j < N; ++j) {
    const VF rj = hn::Set(d, rt[j]), wj = hn::Set(d, wt[j]), kj = hn::Set(d, kt[j]);
    float* sj = S + j * N + i0;
    for (size_t c = 0; c < NV; ++c) {
      const VF s = hn::LoadU(d, sj + c * L);
      acc[c] = hn::MulAdd(rj, s, acc[c]);
      hn::StoreU(hn::MulAdd(wj, s, hn::Mul(kj, vi[c])), d, sj + c * L);
    }
  }
  for (size_t c = 0; c < NV; ++c) hn::StoreU(acc[c], d, yt + i0 + c * L);
}

void Wkv5Head(size_t T, size_t stride, size_t w_stride, size_t N, const float* r, const float* k, const float* v,
              const float* w, const float* u, float* S, float* y) {
  const DF d;
  const size_t L = hn::Lanes(d);
  for (size_t t = 0; t < T; ++t) {
    const float *rt = r + t * stride, *kt = k + t * stride, *vt = v + t * stride, *wt = w + t * w_stride;
    float* yt = y + t * stride;
    if (t + kWkvTokensAhead < T) {
      const size_t p = kWkvTokensAhead * stride;
      prefetch_head_slices(N, {rt + p, kt + p, vt + p, wt + kWkvTokensAhead * w_stride, yt + p});
    }
    float bonus = 0;
    for (size_t j = 0; j < N; ++j) bonus += rt[j] * u[j] * kt[j];
    size_t i = 0;
    for (; i + 4 * L <= N; i += 4 * L) wkv5_token_chunk<4>(N, rt, kt, vt, wt, bonus, i, S, yt);
    for (; i + L <= N; i += L) wkv5_token_chunk<1>(N, rt, kt, vt, wt, bonus, i, S, yt);
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

// ---- the token-shift mixes of RWKV-6/7: x_j = z + (prev − z)·μ_j, z and prev read once for all

template <class D>
HWY_INLINE void mix_step(D d, const float* z, const float* prev, const float* mu, size_t count, size_t C, size_t i,
                         size_t c, float* const* x) {
  const auto zc = hn::LoadU(d, z + i), dc = hn::Sub(hn::LoadU(d, prev + i), zc);
  for (size_t j = 0; j < count; ++j) hn::StoreU(hn::MulAdd(dc, hn::LoadU(d, mu + j * C + c), zc), d, x[j] + i);
}

void MixRows(const float* z, const float* prev, const float* mu, size_t count, size_t T, size_t C, float* const* x) {
  const DF d;
  const hn::CappedTag<float, 1> d1;  // the tail, with the same arithmetic
  const size_t L = hn::Lanes(d);
  for (size_t t = 0; t < T; ++t) {
    size_t c = 0;
    for (; c + L <= C; c += L) mix_step(d, z, prev, mu, count, C, t * C + c, c, x);
    for (; c < C; ++c) mix_step(d1, z, prev, mu, count, C, t * C + c, c, x);
  }
}

// ---- RWKV-7's per-head sums (the κ normalisation, the bonus)

// y = x ⊙ s; returns Σ y² (each y widened, summed in double lanes).
double ScaledSumSquares(const float* x, const float* s, size_t n, float* y) {
  const hn::Repartition<double, DF> dd;
  const hn::Rebind<float, decltype(dd)> df;  // as many floats as dd has doubles
  const size_t L = hn::Lanes(dd);
  auto squares = hn::Zero(dd);
  size_t i = 0;
  for (; i + L <= n; i += L) {
    const auto v = hn::Mul(hn::LoadU(df, x + i), hn::LoadU(df, s + i));
    hn::StoreU(v, df, y + i);
    const auto w = hn::PromoteTo(dd, v);
    squares = hn::MulAdd(w, w, squares);
  }
  double q = hn::GetLane(hn::SumOfLanes(dd, squares));
  for (; i < n; ++i) {
    y[i] = x[i] * s[i];
    q += double(y[i]) * y[i];
  }
  return q;
}

// Σ a·b·c in float lanes.
float Dot3(const float* a, const float* b, const float* c, size_t n) {
  const DF d;
  const size_t L = hn::Lanes(d);
  auto acc = hn::Zero(d);
  size_t i = 0;
  for (; i + L <= n; i += L) acc = hn::MulAdd(hn::Mul(hn::LoadU(d, a + i), hn::LoadU(d, b + i)), hn::LoadU(d, c + i), acc);
  float sum = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; i < n; ++i) sum += a[i] * b[i] * c[i];
  return sum;
}

// ---- normalisation: y = float((x − mean)·inv)·weight + bias, inv = 1/sqrt(var + eps), with the
// mean and the (biased) variance summed in double, a vector of doubles at a time.
void Normalize(const float* x, size_t n, const float* weight, const float* bias, float eps, float* y) {
  const hn::Repartition<double, DF> dd;
  const hn::Rebind<float, decltype(dd)> df;  // as many floats as dd has doubles
  const size_t L = hn::Lanes(dd);
  auto wide = [&](size_t i) { return hn::PromoteTo(dd, hn::LoadU(df, x + i)); };
  // Both sums in four chains of vectors (one chain waited on the adds' latency), then one:
  // a row of 768, 714–829 → 460–475 ns on AVX2 (3 alternating runs).
  auto s0 = hn::Zero(dd), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 4 * L <= n; i += 4 * L)
    s0 = hn::Add(s0, wide(i)), s1 = hn::Add(s1, wide(i + L)), s2 = hn::Add(s2, wide(i + 2 * L)),
    s3 = hn::Add(s3, wide(i + 3 * L));
  for (; i + L <= n; i += L) s0 = hn::Add(s0, wide(i));
  double s = hn::GetLane(hn::SumOfLanes(dd, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
  for (; i < n; ++i) s += x[i];
  const double mean = s / static_cast<double>(n);
  const auto vmean = hn::Set(dd, mean);
  auto dev = [&](size_t at) { return hn::Sub(wide(at), vmean); };
  s0 = s1 = s2 = s3 = hn::Zero(dd);
  for (i = 0; i + 4 * L <= n; i += 4 * L) {
    const auto d0 = dev(i), d1 = dev(i + L), d2 = dev(i + 2 * L), d3 = dev(i + 3 * L);
    s0 = hn::MulAdd(d0, d0, s0), s1 = hn::MulAdd(d1, d1, s1), s2 = hn::MulAdd(d2, d2, s2), s3 = hn::MulAdd(d3, d3, s3);
  }
  for (; i + L <= n; i += L) {
    const auto d0 = dev(i);
    s0 = hn::MulAdd(d0, d0, s0);
  }
  double q = hn::GetLane(hn::SumOfLanes(dd, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
  for (; i < n; ++i) q += (x[i] - mean) * (x[i] - mean);
  const double inv = 1.0 / std::sqrt(q / static_cast<double>(n) + eps);
  const auto vinv = hn::Set(dd, inv);
  for (i = 0; i + L <= n; i += L) {
    const auto z = hn::DemoteTo(df, hn::Mul(hn::Sub(wide(i), vmean), vinv));
    hn::StoreU(hn::MulAdd(z, hn::LoadU(df, weight + i), hn::LoadU(df, bias + i)), df, y + i);
  }
  for (; i < n; ++i) y[i] = static_cast<float>((x[i] - mean) * inv) * weight[i] + bias[i];
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
HWY_EXPORT(GemmRows);
HWY_EXPORT(PanelRows);
HWY_EXPORT(PanelPacks);
HWY_EXPORT(PackPanelTokens);
HWY_EXPORT(Wkv7Head);
HWY_EXPORT(Wkv4Channels);
HWY_EXPORT(Wkv5Head);
HWY_EXPORT(Activate);
HWY_EXPORT(MixRows);
HWY_EXPORT(Normalize);
HWY_EXPORT(ScaledSumSquares);
HWY_EXPORT(Dot3);
HWY_EXPORT(TargetName);

void float_rows(DType type, const void* W, size_t cols, size_t r0, size_t r1, const float* X, size_t T, float* Y,
                size_t ldy) {
  HWY_DYNAMIC_DISPATCH(FloatRows)(type, W, cols, r0, r1, X, T, Y, ldy);
}

size_t token_group(size_t T) { return HWY_DYNAMIC_DISPATCH(TokenGroup)(T); }

void pack_tokens(const float* X, size_t T, size_t cols, size_t G, float* Xp) {
  HWY_DYNAMIC_DISPATCH(PackTokens)(X, T, cols, G, Xp);
}

void packed_rows(const float* W, size_t cols, size_t r0, size_t r1, const float* Xp, size_t T, float* Y, size_t ldy) {
  HWY_DYNAMIC_DISPATCH(PackedRows)(W, cols, r0, r1, Xp, T, Y, ldy);
}

void gemm_rows(const float* W, size_t cols, size_t r0, size_t r1, const float* X, size_t T, float* Y, size_t ldy) {
  HWY_DYNAMIC_DISPATCH(GemmRows)(W, cols, r0, r1, X, T, Y, ldy);
}

bool has_panel_layout(DType type) { return type == DType::F32 || type == DType::F16 || type == DType::BF16; }

namespace {
// 8 columns of the 16 rows at a time: 16 runs of 8 values read, written back as 8 columns.
// (The values may lie at odd addresses: an rwkv.cpp file's.) E: uint16_t or uint32_t.
template <class E>
void interleave_panels(const uint8_t* in, size_t rows, size_t cols, uint8_t* o) {
  constexpr size_t kCols = 8;
  E block[kPanelRows][kCols], cols_out[kCols][kPanelRows];
  for (size_t g = 0; g < rows; g += kPanelRows)
    for (size_t i = 0; i < cols; i += kCols) {
      const size_t n = std::min(kCols, cols - i);
      for (size_t j = 0; j < kPanelRows; ++j) std::memcpy(block[j], in + ((g + j) * cols + i) * sizeof(E), n * sizeof(E));
      for (size_t c = 0; c < n; ++c)
        for (size_t j = 0; j < kPanelRows; ++j) cols_out[c][j] = block[j][c];
      std::memcpy(o, cols_out, n * kPanelRows * sizeof(E));
      o += n * kPanelRows * sizeof(E);
    }
}
}  // namespace

void interleave_panels16(DType type, const void* W, size_t rows, size_t cols, void* out) {
  if (!has_panel_layout(type) || rows % kPanelRows != 0)
    fail("interleave_panels16: ", dtype_name(type), " ", rows, " x ", cols, " has no sixteen-row panels");
  const auto* in = static_cast<const uint8_t*>(W);
  auto* o = static_cast<uint8_t*>(out);
  if (type == DType::F32)
    interleave_panels<uint32_t>(in, rows, cols, o);
  else
    interleave_panels<uint16_t>(in, rows, cols, o);
}

void panel_rows(DType type, const void* P, size_t cols, size_t r0, size_t r1, const float* X, size_t T, float* Y,
                size_t ldy, const float* Xp) {
  HWY_DYNAMIC_DISPATCH(PanelRows)(type, P, cols, r0, r1, X, T, Y, ldy, Xp);
}

bool panel_packs(size_t T) { return HWY_DYNAMIC_DISPATCH(PanelPacks)(T); }

void pack_panel_tokens(const float* X, size_t T, size_t cols, float* Xp) {
  HWY_DYNAMIC_DISPATCH(PackPanelTokens)(X, T, cols, Xp);
}

void wkv7_head(size_t T, size_t stride, size_t N, const float* r, const float* w, const float* k, const float* v,
               const float* a, const float* b, float* S, float* y, const float* S_next) {
  HWY_DYNAMIC_DISPATCH(Wkv7Head)(T, stride, N, r, w, k, v, a, b, S, y, S_next);
}

void wkv4_channels(size_t T, size_t A, size_t c0, size_t c1, const float* k, const float* v, const float* w,
                   const float* u, float* aa, float* bb, float* pp, float* y) {
  HWY_DYNAMIC_DISPATCH(Wkv4Channels)(T, A, c0, c1, k, v, w, u, aa, bb, pp, y);
}

void wkv5_head(size_t T, size_t stride, size_t w_stride, size_t N, const float* r, const float* k, const float* v,
               const float* w, const float* u, float* S, float* y) {
  HWY_DYNAMIC_DISPATCH(Wkv5Head)(T, stride, w_stride, N, r, k, v, w, u, S, y);
}

void activate(Act act, const float* x, const float* bias, size_t T, size_t n, float* y) {
  HWY_DYNAMIC_DISPATCH(Activate)(act, x, bias, T, n, y);
}

void mix_rows(const float* z, const float* prev, const float* mu, size_t count, size_t T, size_t C, float* const* x) {
  HWY_DYNAMIC_DISPATCH(MixRows)(z, prev, mu, count, T, C, x);
}

void normalize(const float* x, size_t n, const float* weight, const float* bias, float eps, float* y) {
  HWY_DYNAMIC_DISPATCH(Normalize)(x, n, weight, bias, eps, y);
}

double scaled_sum_squares(const float* x, const float* s, size_t n, float* y) {
  return HWY_DYNAMIC_DISPATCH(ScaledSumSquares)(x, s, n, y);
}

float dot3(const float* a, const float* b, const float* c, size_t n) { return HWY_DYNAMIC_DISPATCH(Dot3)(a, b, c, n); }

const char* target_name() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace rwkv::cpu::simd
#endif
