// Highway kernels for block-quantized weights × 8-bit activations (see simd_quant.hpp). This file
// is compiled once per target (foreach_target.h re-includes it); HWY_DYNAMIC_DISPATCH picks one.
//
// Each block of weights is unpacked in registers to one byte per weight (its integer level) and
// dotted with 8-bit activations: integer products summed exactly per block (32-value types) or
// super-block (K-quants), scaled in float. On AVX2, eight rows at a time from their
// interleaved copy (each row's sum in its own lane); elsewhere one row at a time. Either way a
// group of rows stays in L1 for the tokens of a block.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/simd_quant.cpp"
// Also compile for AVX-512 with VNNI (Ice Lake and later, Zen 4 and later): its byte dot
// products (vpdpbusd) replace pmaddubsw + pmaddwd. Highway leaves this target out by default.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "io/error.hpp"
#include "io/k_quants.hpp"
#include "kernels/cpu/simd_quant.hpp"

#ifndef RWKV_SIMD_QUANT_ONCE
#define RWKV_SIMD_QUANT_ONCE
namespace rwkv::cpu::simd {
// Whether the CPU has AVX512-VNNI (the 512-bit byte dot products of rows16_tokens).
inline bool avx512_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = __builtin_cpu_supports("avx512vnni");
  return has;
#else
  return false;
#endif
}
}  // namespace rwkv::cpu::simd
#endif

HWY_BEFORE_NAMESPACE();
namespace rwkv::cpu::simd::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Unpacking makes kN levels per vector (32 with AVX2, 16 with SSE4, 1 on HWY_SCALAR); products
// use int16 lanes.
using D8 = hn::CappedTag<uint8_t, 32>;
using V8 = hn::Vec<D8>;
constexpr size_t kN = hn::MaxLanes(D8());
using D16 = hn::CappedTag<int16_t, 16>;
using D32 = hn::Repartition<int32_t, D16>;
using DF = hn::Repartition<float, D16>;
using VI32 = hn::Vec<D32>;
using VF = hn::Vec<DF>;

#define RWKV_X86_AVX2 (HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2)
// AVX-512 VNNI (HWY_AVX3_DL, compiled in below): vpdpbusd on 256-bit vectors.
#define RWKV_X86_VNNI (HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3_DL)
// On a lambda: inlined wherever it is called, as the kernels it wraps would be if called directly
// (without it, the Q4_K eight-row kernel ran 30 % slower through rows_in_eights).
#define RWKV_INLINE_LAMBDA __attribute__((always_inline))

uint16_t u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// An fp16 value in the weights (F16C where there is one).
HWY_INLINE float half(const uint8_t* p) {
  const hn::CappedTag<float, 1> d;
  const auto* h = reinterpret_cast<const hwy::float16_t*>(p);
  return hn::GetLane(hn::PromoteTo(d, hn::LoadU(hn::Rebind<hwy::float16_t, decltype(d)>(), h)));
}

// ---- 32 levels of one block in registers, and their dot product with 32 activations

// Levels as bytes (int8_t, or uint8_t below 64) in 32 / kN vectors.
struct Levels {
  V8 v[32 / kN];
};

// Builds the levels from chunk(j), the vector of levels j .. j + kN − 1.
template <class Chunk>
HWY_INLINE Levels make_levels(const Chunk& chunk) {
  Levels q;
  for (size_t j = 0; j < 32; j += kN) q.v[j / kN] = chunk(j);
  return q;
}

// Multipliers of the products of one sub-block: values 0–15 by lo, values 16–31 by hi, in the
// form dot32 takes them (on AVX2 the int16 vector that pmaddwd multiplies the pair sums by).
#if RWKV_X86_AVX2
using SubScales = __m256i;
HWY_INLINE SubScales sub_scales(int16_t lo, int16_t hi) {
  return _mm256_setr_m128i(_mm_set1_epi16(lo), _mm_set1_epi16(hi));
}
#else
struct SubScales {
  int16_t lo, hi;
};
HWY_INLINE SubScales sub_scales(int16_t lo, int16_t hi) { return {lo, hi}; }
#endif

// Σ q·x over the 32 values (with kScaled, times the sub-block scales s) as int32 partial sums:
// the lanes add up to the dot product. L is the type of the levels.
template <class L, bool kScaled>
HWY_INLINE VI32 dot32(const Levels& q, const int8_t* x, SubScales s) {
#if RWKV_X86_AVX2
  // pmaddubsw (unsigned × signed bytes, pairs added to int16) then pmaddwd (pairs to int32).
  // No int16 overflow: |x| ≤ 127 and levels < 64, or |level| ≤ 128 after the sign trick.
  static_assert(kN == 32);
  const __m256i w = q.v[0].raw, xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  __m256i pairs;
  if constexpr (std::is_signed_v<L>)
    pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xv, w));
  else
    pairs = _mm256_maddubs_epi16(w, xv);
  // int16 lane i holds values 2i and 2i + 1: lanes 0–7 values 0–15, lanes 8–15 values 16–31.
  return VI32{_mm256_madd_epi16(pairs, kScaled ? s : _mm256_set1_epi16(1))};
#else
  // Portable: widen both to int16 and multiply-add pairs into int32.
  alignas(32) L w[32];
  for (size_t j = 0; j < 32; j += kN) hn::Store(q.v[j / kN], D8(), reinterpret_cast<uint8_t*>(w) + j);
  const D16 d16;
  const D32 d32;
  VI32 sum0 = hn::Zero(d32), sum1 = hn::Zero(d32);
  for (size_t j = 0; j < 32; j += hn::Lanes(d16)) {
    auto wv = hn::PromoteTo(d16, hn::LoadU(hn::Rebind<L, D16>(), w + j));
    if constexpr (kScaled) wv = hn::Mul(wv, hn::Set(d16, j < 16 ? s.lo : s.hi));
    const auto xv = hn::PromoteTo(d16, hn::LoadU(hn::Rebind<int8_t, D16>(), x + j));
    sum0 = hn::ReorderWidenMulAccumulate(d32, wv, xv, sum0, sum1);
  }
  return hn::Add(sum0, sum1);
#endif
}

HWY_INLINE int32_t sum_lanes(VI32 v) { return hn::GetLane(hn::SumOfLanes(D32(), v)); }

// ---- unpacking

HWY_INLINE V8 low_nibbles(V8 v) { return hn::And(v, hn::Set(D8(), uint8_t{15})); }
HWY_INLINE V8 high_nibbles(V8 v) { return hn::ShiftRight<4>(v); }
HWY_INLINE V8 nibbles(V8 v, bool high) { return high ? high_nibbles(v) : low_nibbles(v); }

// Levels j .. j + kN − 1 of a block whose levels 0–15 are the low nibbles of the 16 bytes qs
// and levels 16–31 the high nibbles.
HWY_INLINE V8 packed_nibbles(const uint8_t* qs, size_t j) {
#if RWKV_X86_AVX2
  // The 16 bytes in both halves (a load, no shuffle); the upper half's dwords shifted by 4.
  (void)j;  // kN == 32: one vector holds all 32 levels
  const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
  return low_nibbles(V8{_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4))});
#elif HWY_TARGET != HWY_SCALAR
  if constexpr (kN == 32) {  // one 16-byte load, the high nibbles shifted into the upper half
    const hn::Half<D8> dh;
    const hn::Repartition<uint16_t, decltype(dh)> dw;
    const auto v = hn::LoadU(dh, qs);
    return low_nibbles(hn::Combine(D8(), hn::BitCast(dh, hn::ShiftRight<4>(hn::BitCast(dw, v))), v));
  }
#endif
  return nibbles(hn::LoadU(D8(), qs + j % 16), j >= 16);
}

// Lane i is 16 where bit j + i of `bits` is set, else 0 (j + i < 32): the 5th bit of Q5 levels.
HWY_INLINE V8 fifth_bits(uint32_t bits, size_t j) {
  const D8 d;
  alignas(32) static constexpr uint8_t kBit[32] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128,
                                                   1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
#if HWY_TARGET == HWY_SCALAR
  const V8 spread = hn::Set(d, static_cast<uint8_t>(bits >> (j / 8 * 8)));
#else
  // Every 4 bytes of `bytes` are the 4 bytes of `bits`; lane i picks byte (j + i) / 8.
  alignas(32) static constexpr uint8_t kByte[32] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                    2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
  const V8 bytes = hn::BitCast(d, hn::Set(hn::Repartition<uint32_t, D8>(), bits));
  const V8 spread = hn::TableLookupBytes(bytes, hn::LoadU(d, kByte + j));
#endif
  return hn::IfThenElseZero(hn::TestBit(spread, hn::LoadU(d, kBit + j)), hn::Set(d, uint8_t{16}));
}

// The 32-value block types (GG ggml-common.h): bytes per block, the level type, whether the
// block has a minimum, the offset subtracted from the unsigned levels (done once per block on
// the activation sums: Σ(u − k)·x = Σu·x − k·Σx, cheaper than centring every level), where an
// eight-row group's levels and fifth bits start (interleave_rows8; 0: none) and the 32
// levels of a block. The fp16 scale d is at byte 0, the fp16 minimum m (kMin) at byte 2.
// Levels j < 16 are in the low nibbles of the 16 bytes qs, levels j ≥ 16 in the high nibbles.
struct Q4_0B {
  static constexpr size_t kBytes = 18;
  static constexpr bool kMin = false;
  static constexpr int kOffset = 8;
  static constexpr size_t kLevelsAt = 16, kHighAt = 0;  // in the eight-row layout
  using L = uint8_t;
  static HWY_INLINE Levels unpack(const uint8_t* b) {
    return make_levels([b](size_t j) { return packed_nibbles(b + 2, j); });
  }
};
struct Q4_1B {
  static constexpr size_t kBytes = 20;
  static constexpr bool kMin = true;
  static constexpr int kOffset = 0;
  static constexpr size_t kLevelsAt = 32, kHighAt = 0;  // in the eight-row layout
  using L = uint8_t;
  static HWY_INLINE Levels unpack(const uint8_t* b) {
    return make_levels([b](size_t j) { return packed_nibbles(b + 4, j); });
  }
};
struct Q5_0B {  // the 5th bit of level j is bit j of the 32 bits qh
  static constexpr size_t kBytes = 22;
  static constexpr bool kMin = false;
  static constexpr int kOffset = 16;
  static constexpr size_t kLevelsAt = 48, kHighAt = 16;  // in the eight-row layout
  using L = uint8_t;
  static HWY_INLINE Levels unpack(const uint8_t* b) {
    uint32_t qh;
    std::memcpy(&qh, b + 2, 4);
    return make_levels([b, qh](size_t j) { return hn::Or(packed_nibbles(b + 6, j), fifth_bits(qh, j)); });
  }
};
struct Q5_1B {
  static constexpr size_t kBytes = 24;
  static constexpr bool kMin = true;
  static constexpr int kOffset = 0;
  static constexpr size_t kLevelsAt = 64, kHighAt = 32;  // in the eight-row layout
  using L = uint8_t;
  static HWY_INLINE Levels unpack(const uint8_t* b) {
    uint32_t qh;
    std::memcpy(&qh, b + 4, 4);
    return make_levels(
        [b, qh](size_t j) { return hn::Or(packed_nibbles(b + 8, j), fifth_bits(qh, j)); });
  }
};
struct Q8_0B {
  static constexpr size_t kBytes = 34;
  static constexpr bool kMin = false;
  static constexpr int kOffset = 0;
  static constexpr size_t kLevelsAt = 16, kHighAt = 0;  // in the eight-row layout
  using L = int8_t;
  static HWY_INLINE Levels unpack(const uint8_t* b) {
    return make_levels([b](size_t j) { return hn::LoadU(D8(), b + 2 + j); });
  }
};

// The weights are read once, in order. Asking for them 1 kB ahead keeps more loads from memory
// in flight than the hardware prefetcher does alone (20–40% faster matrix-vector products
// from DRAM on the development machine, a Zen 3 EPYC, at 2 kB). 1 kB against 2 kB, decode,
// medians of 6 alternating pairs: 0.4B Q8_0 1.12 (every pair faster), Q4_0 1.01; 0.1B Q8_0
// 1.02, Q4_0 1.03, Q4_K 1.02; RWKV-4 169M Q8_0 1.03 (4 kB: 0.4B Q8_0 1.00, Q4_0 0.95;
// 512 B: 0.4B Q4_0 0.95, Q4_K 0.96, Q8_0 0.95).
// `bytes`: the span to cover, from p; `ahead`: how far ahead (the sixteen-row kernels: kPairAhead).
constexpr size_t kRowsAhead = 1024;
HWY_INLINE void prefetch_ahead(const uint8_t* p, size_t bytes, size_t ahead = kRowsAhead) {
  for (size_t i = 0; i < bytes; i += 64) hwy::Prefetch(p + ahead + i);
}

// ---- 32-value blocks: one row against one token

// The activations of one token in the arrays the kernels read: per block the scale d, the
// exact level sum Σq (for the offsets) and s = d·Σq rounded as ggml stores it (for the minimums).
struct TokenSums {
  const Q8Block* x;
  const float* d;
  const int32_t* level_sum;
  const float* s;
};

// One row against one token: Σ_b d_b·x_b.d·Σ(u − k)·x (+ m_b·x_b.s), block after block (the
// targets without the eight-row kernel). Every token is computed by this same sequence of
// operations, alone or among many, so sequence mode and RNN mode give the same bits. The
// weights are prefetched about once per cache line.
template <class B>
HWY_INLINE float row_token(const uint8_t* w, size_t blocks, const TokenSums& x) {
  using L = typename B::L;
  constexpr bool kPrefetchOdd = 2 * B::kBytes > 64;  // one prefetch per 2 blocks reaches every line
  float sum = 0;
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* wb = w + b * B::kBytes;
    if (b % 2 == 0 || kPrefetchOdd) prefetch_ahead(wb, 1);
    const int32_t dot = sum_lanes(dot32<L, false>(B::unpack(wb), x.x[b].q, sub_scales(1, 1))) - B::kOffset * x.level_sum[b];
    sum += half(wb) * x.d[b] * static_cast<float>(dot);
    if constexpr (B::kMin) sum += half(wb + 2) * x.s[b];
  }
  return sum;
}

// ---- 32-value types, eight rows at a time (the layout of interleave_rows8 in simd_quant.hpp)

// One row against one token, block after block: the integer sum of block b (offset removed)
// times the scale d_b·x_b.d, then (kMin) the minimum m_b times x_b.s, each added with a fused
// multiply-add. rows8_token computes each of its eight rows by exactly these operations, one
// row per lane, so a row gives the same bits whichever of the two computes it (rows outside
// whole groups of eight, matrices without the copy).
template <class B>
HWY_INLINE float row_token_fma(const uint8_t* w, size_t blocks, const TokenSums& x) {
  using L = typename B::L;
  constexpr bool kPrefetchOdd = 2 * B::kBytes > 64;
  const hn::CappedTag<float, 1> d1;
  auto acc = hn::Zero(d1);
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* wb = w + b * B::kBytes;
    if (b % 2 == 0 || kPrefetchOdd) prefetch_ahead(wb, 1);
    const int32_t dot = sum_lanes(dot32<L, false>(B::unpack(wb), x.x[b].q, sub_scales(1, 1))) - B::kOffset * x.level_sum[b];
    const float scale = half(wb) * x.d[b];
    acc = hn::MulAdd(hn::Set(d1, static_cast<float>(dot)), hn::Set(d1, scale), acc);
    if constexpr (B::kMin) acc = hn::MulAdd(hn::Set(d1, half(wb + 2)), hn::Set(d1, x.s[b]), acc);
  }
  return hn::GetLane(acc);
}

#if RWKV_X86_AVX2
// The bits above the nibbles of one vector of an eight-row group, from each row's word of
// them (interleave_rows8): kBits bits (1: the fifth bit of Q5 levels, 2: Q6_K's high bits)
// from bit 8i + P of the word moved to bit 4 of byte i, above the nibble.
template <int P, int kBits>
HWY_INLINE __m256i bits_above_nibbles(__m256i words) {
  const __m256i at4 = P <= 4 ? _mm256_slli_epi32(words, 4 - P) : _mm256_srli_epi32(words, P - 4);
  return _mm256_and_si256(at4, _mm256_set1_epi8(static_cast<char>(((1 << kBits) - 1) << 4)));
}

// sum + the dot products of each 4 unsigned bytes of u with the 4 signed bytes of s beside them,
// in int32 lanes: one vpdpbusd with VNNI, else pmaddubsw then pmaddwd (the pair sums in int16
// must not saturate: callers keep |u · s| pair sums within int16).
HWY_INLINE __m256i dot4_add(__m256i sum, __m256i u, __m256i s) {
#if RWKV_X86_VNNI
  return _mm256_dpbusd_epi32(sum, u, s);
#else
  return _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

// Eight rows (one interleaved group, `blocks` block columns of 8·B::kBytes bytes, `step` bytes
// apart: 8·B::kBytes, or twice that in a pair of groups) against NT tokens x[0..NT): token t's
// result for row r in lane r of out[t]. Per block column, the
// activations' levels 4k .. 4k + 3 are broadcast to every lane and multiplied with the vector
// holding those levels of all 8 rows: byte dot products of 4 (dot4_add) leave each row's sum in
// its own int32 lane. The weights are unpacked once for the NT tokens; each token's sums and
// float operations are those it gets alone (NT = 1), so a row gives the same bits however many
// tokens share the pass.
template <class B, size_t NT>
HWY_INLINE void rows8_tokens(const uint8_t* g, size_t blocks, size_t step, const TokenSums* x, __m256* out) {
  constexpr bool kQ8 = std::is_same_v<B, Q8_0B>, kFifth = B::kHighAt != 0;
  __m256 acc[NT];
  for (size_t t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (size_t b = 0; b < blocks; ++b, g += step) {
    prefetch_ahead(g, 8 * B::kBytes);
    auto xs = [x, b](size_t t, size_t k) {  // token t's activations 4k .. 4k + 3 in every lane
      int32_t v;
      std::memcpy(&v, x[t].x[b].q + 4 * k, 4);
      return _mm256_set1_epi32(v);
    };
    auto levels = [g](size_t v) {
      return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + B::kLevelsAt + 32 * v));
    };
    __m256i sum[NT];
    for (size_t t = 0; t < NT; ++t) sum[t] = _mm256_setzero_si256();
    if constexpr (kQ8) {
      // Signed levels: |w| against x with w's sign; pair sums up to 32512, widened at once.
      for (size_t k = 0; k < 8; ++k) {
        const __m256i w = levels(k), magnitude = _mm256_sign_epi8(w, w);
        for (size_t t = 0; t < NT; ++t) sum[t] = dot4_add(sum[t], magnitude, _mm256_sign_epi8(xs(t, k), w));
      }
    } else {
      // Unsigned levels against |x| ≤ 127: a pair sum is at most 3810 (4 bits) or 7874 (5 bits),
      // so without VNNI 8 (4 bits) or 4 (5 bits) of them are added in int16 before widening.
      const __m256i low4 = _mm256_set1_epi8(15);
      [[maybe_unused]] __m256i high;
      if constexpr (kFifth) high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + B::kHighAt));
      [[maybe_unused]] __m256i pairs[NT];
      for (size_t t = 0; t < NT; ++t) pairs[t] = _mm256_setzero_si256();
      auto vector = [&](auto v) RWKV_INLINE_LAMBDA {
        const __m256i w = levels(v);
        __m256i lo = _mm256_and_si256(w, low4), hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), low4);
        if constexpr (kFifth) {
          lo = _mm256_or_si256(lo, bits_above_nibbles<2 * v, 1>(high));
          hi = _mm256_or_si256(hi, bits_above_nibbles<2 * v + 1, 1>(high));
        }
        for (size_t t = 0; t < NT; ++t) {
#if RWKV_X86_VNNI
          sum[t] = dot4_add(dot4_add(sum[t], lo, xs(t, v)), hi, xs(t, v + 4));
#else
          pairs[t] = _mm256_add_epi16(pairs[t], _mm256_maddubs_epi16(lo, xs(t, v)));
          pairs[t] = _mm256_add_epi16(pairs[t], _mm256_maddubs_epi16(hi, xs(t, v + 4)));
          if (!kFifth ? v == 3 : v % 2 == 1) {
            sum[t] = _mm256_add_epi32(sum[t], _mm256_madd_epi16(pairs[t], _mm256_set1_epi16(1)));
            pairs[t] = _mm256_setzero_si256();
          }
#endif
        }
      };
      vector(std::integral_constant<int, 0>());
      vector(std::integral_constant<int, 1>());
      vector(std::integral_constant<int, 2>());
      vector(std::integral_constant<int, 3>());
      if constexpr (B::kOffset != 0)
        for (size_t t = 0; t < NT; ++t)
          sum[t] = _mm256_sub_epi32(sum[t], _mm256_set1_epi32(B::kOffset * x[t].level_sum[b]));
    }
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g)));
    for (size_t t = 0; t < NT; ++t)
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[t]), _mm256_mul_ps(d, _mm256_set1_ps(x[t].d[b])), acc[t]);
    if constexpr (B::kMin) {
      const __m256 m = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + 16)));
      for (size_t t = 0; t < NT; ++t) acc[t] = _mm256_fmadd_ps(m, _mm256_set1_ps(x[t].s[b]), acc[t]);
    }
  }
  for (size_t t = 0; t < NT; ++t) out[t] = acc[t];
}

#if RWKV_X86_VNNI
// Sixteen rows of the 32-value types in 512-bit vectors, from
// a pair of eight-row groups laid out block column by block column (rows8_pairs): per block
// column, group a's 8·kBytes bytes, then group b's, so that the pair is one stream. Rows of a
// in lanes 0–7, of b in 8–15; each lane's operations are rows8_tokens', so every row gives the
// same bits. One instruction does the work of two (Zen 5 runs 512-bit operations at full
// width): `MatvecInCache/q4_0` 2424 → 1495 ns; `Matvec/q4_0` 65536 × 768, 2 threads, from DRAM
// while the machine delivered ~62 GB/s, 539 → 489–501 µs (10 alternating rounds; read as two
// streams, groups a and b one after the other, it was slower than the eight-row kernel). With
// fifth bits (Q5_0, Q5_1): `MatvecInCache/q5_0` 2998 → 1875–2093 ns; 0.4B decode 1.09×
// (Q5_1 1.07×), prefill 1.86×, B = 16 1.44× (4 and 3 alternating pairs).

// The sixteen-row kernels ask for the weights 4 kB ahead, where the eight-row ones ask 1 kB:
// a pair's block column is twice as long and read faster. Q4_K, at 1 kB, 1.5B decode took
// 25.5–26.1 ms a token against the eight-row kernel's 24.0–24.6; at 2 kB 23.0–23.7, at 4 kB
// 22.8–23.2 (fastest of 3 alternating rounds, the slow memory state). Q4_0, 1 kB → 4 kB: 1.5B
// 16.6–17.8 → 14.8–14.9 ms in the fast state, 22.4 → 21.6–22.3 in the slow one (5 rounds).
constexpr size_t kPairAhead = 4096;

// sum + vpdpbusd(u, s) on 512-bit vectors. Highway 1.0.3 compiles its AVX3_DL target with the
// 256-bit AVX-VNNI only, so the compiler would refuse the intrinsic there: the instruction is
// written out, and used only where the CPU has AVX512-VNNI (avx512_vnni()).
HWY_INLINE __m512i dpbusd512(__m512i sum, __m512i u, __m512i s) {
  asm("vpdpbusd %2, %1, %0" : "+v"(sum) : "v"(u), "v"(s));
  return sum;
}

// The two groups of a pair side by side, the second `apart` bytes after the first: 32 bytes of
// each (pair_bytes), or 8 fp16 values of each widened to float32 (pair_halves).
HWY_INLINE __m512i pair_bytes(const uint8_t* p, size_t apart) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + apart)), 1);
}
HWY_INLINE __m512 pair_halves(const uint8_t* p, size_t apart) {
  return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
                                                 _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + apart)), 1));
}

// bits_above_nibbles on a pair's 512 bits: each group's words as the eight-row kernel reads them.
template <int P, int kBits>
HWY_INLINE __m512i bits_above_nibbles512(__m512i words) {
  const __m512i at4 = P <= 4 ? _mm512_slli_epi32(words, 4 - P) : _mm512_srli_epi32(words, P - 4);
  return _mm512_and_si512(at4, _mm512_set1_epi8(static_cast<char>(((1 << kBits) - 1) << 4)));
}

template <class B, size_t NT>
HWY_INLINE void rows16_tokens(const uint8_t* g, size_t blocks, const TokenSums* x, __m512* out) {
  constexpr bool kFifth = B::kHighAt != 0;
  constexpr size_t kGroup = 8 * B::kBytes;
  __m512 acc[NT];
  for (size_t t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(15);
  for (size_t b = 0; b < blocks; ++b, g += 2 * kGroup) {
    prefetch_ahead(g, 2 * kGroup, kPairAhead);
    auto xs = [x, b](size_t t, size_t k) {  // token t's activations 4k .. 4k + 3 in every lane
      int32_t v;
      std::memcpy(&v, x[t].x[b].q + 4 * k, 4);
      return _mm512_set1_epi32(v);
    };
    __m512i sum[NT];
    for (size_t t = 0; t < NT; ++t) sum[t] = _mm512_setzero_si512();
    if constexpr (std::is_same_v<B, Q8_0B>) {
      // Signed levels (AVX-512 has no vpsignb): w + 128, unsigned, against x, then 128·Σx
      // off, the same integer sum as the eight-row kernel's |w| against x with w's sign.
      const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
      for (size_t v = 0; v < 8; ++v) {
        const __m512i w = _mm512_xor_si512(pair_bytes(g + B::kLevelsAt + 32 * v, kGroup), flip);
        for (size_t t = 0; t < NT; ++t) sum[t] = dpbusd512(sum[t], w, xs(t, v));
      }
      for (size_t t = 0; t < NT; ++t) sum[t] = _mm512_sub_epi32(sum[t], _mm512_set1_epi32(128 * x[t].level_sum[b]));
    } else {
      [[maybe_unused]] __m512i high;
      if constexpr (kFifth) high = pair_bytes(g + B::kHighAt, kGroup);
      auto vector = [&](auto v) RWKV_INLINE_LAMBDA {
        const __m512i w = pair_bytes(g + B::kLevelsAt + 32 * v, kGroup);
        __m512i lo = _mm512_and_si512(w, low4), hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), low4);
        if constexpr (kFifth) {
          lo = _mm512_or_si512(lo, bits_above_nibbles512<2 * v, 1>(high));
          hi = _mm512_or_si512(hi, bits_above_nibbles512<2 * v + 1, 1>(high));
        }
        for (size_t t = 0; t < NT; ++t)
          sum[t] = dpbusd512(dpbusd512(sum[t], lo, xs(t, v)), hi, xs(t, v + 4));
      };
      vector(std::integral_constant<int, 0>());
      vector(std::integral_constant<int, 1>());
      vector(std::integral_constant<int, 2>());
      vector(std::integral_constant<int, 3>());
    }
    if constexpr (B::kOffset != 0)
      for (size_t t = 0; t < NT; ++t)
        sum[t] = _mm512_sub_epi32(sum[t], _mm512_set1_epi32(B::kOffset * x[t].level_sum[b]));
    const __m512 d = pair_halves(g, kGroup);
    for (size_t t = 0; t < NT; ++t)
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[t]), _mm512_mul_ps(d, _mm512_set1_ps(x[t].d[b])), acc[t]);
    if constexpr (B::kMin) {
      const __m512 m = pair_halves(g + 16, kGroup);
      for (size_t t = 0; t < NT; ++t) acc[t] = _mm512_fmadd_ps(m, _mm512_set1_ps(x[t].s[b]), acc[t]);
    }
  }
  for (size_t t = 0; t < NT; ++t) out[t] = acc[t];
}
#endif
#endif

bool Rows8Kernel() { return RWKV_X86_AVX2; }
bool Rows16Kernel() { return RWKV_X86_VNNI && avx512_vnni(); }

// ---- K-quants: super-blocks of 256 (layouts in io/k_quants.hpp), sub-blocks of 32

// The sub-block scales and minimums of a Q4_K/Q5_K super-block: 6 bits each, packed in the 12
// bytes at b + 4 (io/k_quants.hpp). With words a, b, c of those bytes, scales 0–3 are the low 6
// bits of a's bytes and minimums 0–3 those of b's; scales 4–7 are c's low nibbles with the top
// 2 bits of a's bytes above, minimums 4–7 c's high nibbles with the top 2 bits of b's bytes.
struct KScales {
#if RWKV_X86_AVX2
  __m256i scales, mins;  // int16 scale (minimum) j in lane j of each 128-bit half
#else
  int16_t scale[8], min[8];
#endif

  static HWY_INLINE KScales unpack(const uint8_t* block) {
    uint32_t w[3];
    std::memcpy(w, block + 4, 12);
    const uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, top2 = 0x30303030;
    const uint32_t sc0 = w[0] & low6, sc1 = (w[2] & low4) | ((w[0] >> 2) & top2);
    const uint32_t mn0 = w[1] & low6, mn1 = ((w[2] >> 4) & low4) | ((w[1] >> 2) & top2);
    KScales k;
#if RWKV_X86_AVX2
    const __m128i bytes = _mm_setr_epi32(static_cast<int>(sc0), static_cast<int>(sc1), static_cast<int>(mn0),
                                         static_cast<int>(mn1));
    const __m256i wide = _mm256_cvtepu8_epi16(bytes);  // scales 0–7, minimums 0–7
    k.scales = _mm256_permute2x128_si256(wide, wide, 0x00);
    k.mins = _mm256_permute2x128_si256(wide, wide, 0x11);
#else
    const uint32_t sc[2] = {sc0, sc1}, mn[2] = {mn0, mn1};
    for (int j = 0; j < 8; ++j) {
      k.scale[j] = static_cast<int16_t>((sc[j / 4] >> (8 * (j % 4))) & 0xff);
      k.min[j] = static_cast<int16_t>((mn[j / 4] >> (8 * (j % 4))) & 0xff);
    }
#endif
    return k;
  }

  // Sub-block j's scale for all its 32 values.
  HWY_INLINE SubScales sub(size_t j) const {
#if RWKV_X86_AVX2
    alignas(32) static constexpr uint8_t kPick[8][32] = {  // bytes 2j, 2j + 1 (int16 lane j) everywhere
        {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1},
        {2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3},
        {4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5},
        {6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7},
        {8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9},
        {10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11,
         10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11},
        {12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13,
         12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13},
        {14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15,
         14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15}};
    return _mm256_shuffle_epi8(scales, _mm256_load_si256(reinterpret_cast<const __m256i*>(kPick[j])));
#else
    return sub_scales(scale[j], scale[j]);
#endif
  }

  // Σ_j min_j·(bsums[2j] + bsums[2j + 1]), the minimums times the activations' 16-value sums,
  // as int32 lanes that add up to it.
  HWY_INLINE VI32 min_dot(const int16_t* bsums) const {
#if RWKV_X86_AVX2
    alignas(32) static constexpr uint8_t kPairs[32] = {0, 1, 0, 1, 2,  3,  2,  3,  4,  5,  4,  5,  6,  7,  6,  7,
                                                       8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12, 13, 14, 15, 14, 15};
    const __m256i pairs = _mm256_shuffle_epi8(mins, _mm256_load_si256(reinterpret_cast<const __m256i*>(kPairs)));
    const __m256i sums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsums));
    return VI32{_mm256_madd_epi16(sums, pairs)};
#else
    int32_t sum = 0;
    for (size_t j = 0; j < 8; ++j) sum += min[j] * (bsums[2 * j] + bsums[2 * j + 1]);
    const D32 d32;
    return hn::IfThenElseZero(hn::FirstN(d32, 1), hn::Set(d32, sum));
#endif
  }
};

// Q6_K's int8 scale per 16 values: two per sub-block.
struct Q6Scales {
  const int8_t* scale;
  static HWY_INLINE Q6Scales unpack(const uint8_t* block) { return {reinterpret_cast<const int8_t*>(block + 192)}; }
  HWY_INLINE SubScales sub(size_t j) const { return sub_scales(scale[2 * j], scale[2 * j + 1]); }
};

// Q4_K and Q5_K: 6-bit scale and minimum per sub-block; levels 64c + l in the low nibbles of
// qs[32c + l], 64c + 32 + l in the high nibbles (Q5_K: 5th bit = bit 2c or 2c + 1 of qh[l]).
struct Q4_KB {
  static constexpr size_t kBytes = kquant::kQ4KBytes;
  static constexpr bool kMin = true;
  using Scales = KScales;
  using L = uint8_t;
  static HWY_INLINE Levels unpack(const uint8_t* b, size_t sub) {
    const uint8_t* qs = b + 16 + 32 * (sub / 2);
    return make_levels([qs, sub](size_t j) { return nibbles(hn::LoadU(D8(), qs + j), sub % 2); });
  }
  static float d(const uint8_t* b) { return half(b); }
  static float dmin(const uint8_t* b) { return half(b + 2); }
};

struct Q5_KB {
  static constexpr size_t kBytes = kquant::kQ5KBytes;
  static constexpr bool kMin = true;
  using Scales = KScales;
  using L = uint8_t;
  static HWY_INLINE Levels unpack(const uint8_t* b, size_t sub) {
    const uint8_t *qh = b + 16, *qs = b + 48 + 32 * (sub / 2);
    const D8 d8;
    const V8 bit = hn::Set(d8, static_cast<uint8_t>(1u << sub)), sixteen = hn::Set(d8, uint8_t{16});
    return make_levels([=](size_t j) {
      const V8 high = hn::IfThenElseZero(hn::TestBit(hn::LoadU(d8, qh + j), bit), sixteen);
      return hn::Or(nibbles(hn::LoadU(d8, qs + j), sub % 2), high);
    });
  }
  static float d(const uint8_t* b) { return half(b); }
  static float dmin(const uint8_t* b) { return half(b + 2); }
};

// Q6_K: levels 128h + 32s + l (s = 0..3): 4 low bits in ql[64h + 32(s % 2) + l] (low nibble for
// s < 2), 2 high bits at bits 2s, 2s + 1 of qh[32h + l]; minus 32. One int8 scale per 16.
struct Q6_KB {
  static constexpr size_t kBytes = kquant::kQ6KBytes;
  static constexpr bool kMin = false;
  using Scales = Q6Scales;
  using L = int8_t;
  static HWY_INLINE Levels unpack(const uint8_t* b, size_t sub) {
    const size_t h = sub / 4, s = sub % 4;
    const uint8_t *ql = b + 64 * h + 32 * (s % 2), *qh = b + 128 + 32 * h;
    const D8 d8;
    return make_levels([=](size_t j) {
      const V8 hv = hn::LoadU(d8, qh + j);
      // bits 2s, 2s + 1 of qh moved to bits 4–5
      const V8 high = hn::And(s == 0   ? hn::ShiftLeft<4>(hv)
                              : s == 1 ? hn::ShiftLeft<2>(hv)
                              : s == 2 ? hv
                                       : hn::ShiftRight<2>(hv),
                              hn::Set(d8, uint8_t{0x30}));
      return hn::Sub(hn::Or(nibbles(hn::LoadU(d8, ql + j), s >= 2), high), hn::Set(d8, uint8_t{32}));
    });
  }
  static float d(const uint8_t* b) { return half(b + 208); }
};

// A K-quant row against one token, super-block after super-block: the exact integer sums
// Σ_j scale_j·Σ q·x (and for Q4_K/Q5_K Σ_j min_j·Σ x) of the super-block, scaled with fused
// multiply-adds. rows_tokens_k and rows_tokens_q6k compute each of their rows by these
// same operations, one row per lane.
template <class K>
HWY_INLINE float row_token_fma_k(const uint8_t* w, size_t blocks, const Q8KBlock* x) {
  const hn::CappedTag<float, 1> d1;
  auto acc = hn::Zero(d1);
  for (size_t b = 0; b < blocks; ++b, w += K::kBytes) {
    prefetch_ahead(w, K::kBytes);
    const auto scales = K::Scales::unpack(w);
    VI32 sum = hn::Zero(D32());
    for (size_t j = 0; j < 8; ++j)
      sum = hn::Add(sum, dot32<typename K::L, true>(K::unpack(w, j), x[b].q + 32 * j, scales.sub(j)));
    acc = hn::MulAdd(hn::Set(d1, static_cast<float>(sum_lanes(sum))), hn::Set(d1, K::d(w) * x[b].d), acc);
    if constexpr (K::kMin) {
      const int32_t msum = sum_lanes(scales.min_dot(x[b].bsums));
      acc = hn::NegMulAdd(hn::Set(d1, static_cast<float>(msum)), hn::Set(d1, K::dmin(w) * x[b].d), acc);
    }
  }
  return hn::GetLane(acc);
}

#if RWKV_X86_AVX2
// Eight rows of Q4_K or Q5_K (interleave_rows8's layout: per super-block column
// kRows8Q4KBytes or kRows8Q5KBytes) against NT tokens x[0..NT) (each a row of Q8_K blocks):
// token t's result for row r in lane r of out[t]. The levels and scales are unpacked once for
// the NT tokens; each token's integer sums are exact and its float operations those it gets
// alone, so a row gives the same bits however many tokens share the pass.
// A token's Σx over sub-blocks 2c and 2c + 1 of a super-block, as the int16 pair (Σx_2c,
// Σx_2c+1) in every int32 lane, for c = 0–3 (|Σx| ≤ 32·127).
HWY_INLINE std::array<__m256i, 4> sub_block_pair_sums(const Q8KBlock& x) {
  const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums));
  const __m256i sx = _mm256_hadd_epi16(bs, bs);  // pairs 0–1 in the low half, 2–3 in the high
  std::array<__m256i, 4> pairs;
  for (int c = 0; c < 4; ++c) pairs[c] = _mm256_permutevar8x32_epi32(sx, _mm256_set1_epi32(c < 2 ? c : c + 2));
  return pairs;
}

// The vector operations the K-quant kernels need, on one eight-row group in 256-bit vectors
// (Group8) or on a pair of groups in 512-bit ones (Pair16, with AVX512-VNNI: the second group
// `apart` bytes after the first, its rows in the upper half), so that one template computes
// both widths and every row goes through the same operations in either.
struct Group8 {
  using I = __m256i;
  using F = __m256;
  static constexpr size_t kGroups = 1, kAhead = kRowsAhead;
  static HWY_INLINE I bytes(const uint8_t* p, size_t) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static HWY_INLINE I bcast16(const uint8_t* p, size_t) {  // 16 bytes in both 128-bit halves
    return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  template <class Spread>  // 16 bytes spread, widened to int16
  static HWY_INLINE I widen(const uint8_t* p, size_t, const Spread& spread) {
    return _mm256_cvtepi8_epi16(spread(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static HWY_INLINE F halves(const uint8_t* p, size_t) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static HWY_INLINE I per_group(__m256i v) { return v; }  // a 256-bit value for each group
  static HWY_INLINE I zero() { return _mm256_setzero_si256(); }
  static HWY_INLINE F zero_f() { return _mm256_setzero_ps(); }
  static HWY_INLINE I bytes_of(int8_t b) { return _mm256_set1_epi8(b); }
  static HWY_INLINE I words_of(int32_t w) { return _mm256_set1_epi32(w); }
  static HWY_INLINE I and_(I a, I b) { return _mm256_and_si256(a, b); }
  static HWY_INLINE I or_(I a, I b) { return _mm256_or_si256(a, b); }
  static HWY_INLINE I high_nibbles(I a) { return _mm256_srli_epi16(a, 4); }
  static HWY_INLINE I shuffle(I a, I table) { return _mm256_shuffle_epi8(a, table); }
  static HWY_INLINE I add16(I a, I b) { return _mm256_add_epi16(a, b); }
  static HWY_INLINE I add32(I a, I b) { return _mm256_add_epi32(a, b); }
  static HWY_INLINE I sub32(I a, I b) { return _mm256_sub_epi32(a, b); }
  static HWY_INLINE I times32(I a) { return _mm256_slli_epi32(a, 5); }
  static HWY_INLINE I maddubs(I u, I s) { return _mm256_maddubs_epi16(u, s); }
  static HWY_INLINE I madd(I a, I b) { return _mm256_madd_epi16(a, b); }
  template <int P, int kBits>
  static HWY_INLINE I above_nibbles(I words) { return bits_above_nibbles<P, kBits>(words); }
  static HWY_INLINE F to_float(I a) { return _mm256_cvtepi32_ps(a); }
  static HWY_INLINE F scaled(F d, float x) { return _mm256_mul_ps(d, _mm256_set1_ps(x)); }
  static HWY_INLINE F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static HWY_INLINE F fnmadd(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
};

#if RWKV_X86_VNNI
struct Pair16 {
  using I = __m512i;
  using F = __m512;
  static constexpr size_t kGroups = 2, kAhead = kPairAhead;
  static HWY_INLINE I bytes(const uint8_t* p, size_t apart) { return pair_bytes(p, apart); }
  static HWY_INLINE I bcast16(const uint8_t* p, size_t apart) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(Group8::bcast16(p, 0)), Group8::bcast16(p + apart, 0), 1);
  }
  template <class Spread>
  static HWY_INLINE I widen(const uint8_t* p, size_t apart, const Spread& spread) {
    const __m128i a = spread(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    const __m128i b = spread(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + apart)));
    return _mm512_cvtepi8_epi16(_mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1));
  }
  static HWY_INLINE F halves(const uint8_t* p, size_t apart) { return pair_halves(p, apart); }
  static HWY_INLINE I per_group(__m256i v) { return _mm512_broadcast_i64x4(v); }
  static HWY_INLINE I zero() { return _mm512_setzero_si512(); }
  static HWY_INLINE F zero_f() { return _mm512_setzero_ps(); }
  static HWY_INLINE I bytes_of(int8_t b) { return _mm512_set1_epi8(b); }
  static HWY_INLINE I words_of(int32_t w) { return _mm512_set1_epi32(w); }
  static HWY_INLINE I and_(I a, I b) { return _mm512_and_si512(a, b); }
  static HWY_INLINE I or_(I a, I b) { return _mm512_or_si512(a, b); }
  static HWY_INLINE I high_nibbles(I a) { return _mm512_srli_epi16(a, 4); }
  static HWY_INLINE I shuffle(I a, I table) { return _mm512_shuffle_epi8(a, table); }
  static HWY_INLINE I add16(I a, I b) { return _mm512_add_epi16(a, b); }
  static HWY_INLINE I add32(I a, I b) { return _mm512_add_epi32(a, b); }
  static HWY_INLINE I sub32(I a, I b) { return _mm512_sub_epi32(a, b); }
  static HWY_INLINE I times32(I a) { return _mm512_slli_epi32(a, 5); }
  static HWY_INLINE I maddubs(I u, I s) { return _mm512_maddubs_epi16(u, s); }
  static HWY_INLINE I madd(I a, I b) { return _mm512_madd_epi16(a, b); }
  template <int P, int kBits>
  static HWY_INLINE I above_nibbles(I words) { return bits_above_nibbles512<P, kBits>(words); }
  static HWY_INLINE F to_float(I a) { return _mm512_cvtepi32_ps(a); }
  static HWY_INLINE F scaled(F d, float x) { return _mm512_mul_ps(d, _mm512_set1_ps(x)); }
  static HWY_INLINE F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static HWY_INLINE F fnmadd(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
};
#endif

// Quarter q of a K-quant super-block column of W::kGroups groups of `bytes` (1184–1680) each,
// asked for W::kAhead bytes ahead: a quarter at a time through the arithmetic rather than in one
// burst of 19–27 lines at its start (eight rows, RWKV-7 decode, medians of sets of 5–6
// alternating pairs: 1.5B Q4_K 0.5–7 % faster in four sets, 0.1B Q5_K 4 %, 0.1B Q6_K 7 %).
template <class W>
HWY_INLINE void prefetch_quarter(const uint8_t* g, size_t bytes, size_t q) {
  const size_t quarter = W::kGroups * bytes / 4;
  prefetch_ahead(g + q * quarter, quarter + 63, W::kAhead);
}

// Eight rows of Q4_K or Q5_K (Group8), or sixteen from a pair of groups (Pair16), against NT
// tokens; a super-block column every `step` bytes (8 rows: one group's column, or two in a
// pair; 16: a pair's), the pair's second group `apart` bytes after the first.
template <class W, class K, size_t NT>
HWY_INLINE void rows_tokens_k(const uint8_t* g, size_t blocks, size_t step, size_t apart, const Q8KBlock* const* x,
                              typename W::F* out) {
  using I = typename W::I;
  constexpr bool kFifth = std::is_same_v<K, Q5_KB>;
  constexpr size_t kGroupBytes = kFifth ? kRows8Q5KBytes : kRows8Q4KBytes, kLevelsAt = kFifth ? 416 : 160;
  constexpr int8_t Z = -128;  // pshufb: a zero byte
  // From 16 bytes v[0..7], u[0..7] in both halves: int16 pairs (v[r], v[r]), (u[r], u[r]), (v[r], u[r]) in lane r.
  const __m256i first8 = _mm256_setr_epi8(0, Z, 0, Z, 1, Z, 1, Z, 2, Z, 2, Z, 3, Z, 3, Z, 4, Z, 4, Z, 5, Z, 5, Z, 6, Z, 6,
                                          Z, 7, Z, 7, Z);
  const I first = W::per_group(first8);
  const I second = W::per_group(_mm256_add_epi8(first8, _mm256_setr_epi8(8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0,
                                                                          8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0)));
  const I both = W::per_group(_mm256_setr_epi8(0, Z, 8, Z, 1, Z, 9, Z, 2, Z, 10, Z, 3, Z, 11, Z, 4, Z, 12, Z, 5, Z, 13, Z,
                                               6, Z, 14, Z, 7, Z, 15, Z));
  const I low4 = W::bytes_of(15);
  typename W::F acc[NT];
  for (size_t t = 0; t < NT; ++t) acc[t] = W::zero_f();
  for (size_t b = 0; b < blocks; ++b, g += step) {
    const uint8_t* qs = g + kLevelsAt;
    I isum[NT];
    for (size_t t = 0; t < NT; ++t) isum[t] = W::zero();
    for (size_t c = 0; c < 4; ++c) {  // sub-blocks 2c (low nibbles) and 2c + 1 (high nibbles)
      prefetch_quarter<W>(g, kGroupBytes, c);
      // Pair sums of at most 3810 (4-bit levels): 8 fit an int16 lane; of 7874 (Q5_K): 4 do.
      I plo[NT], phi[NT];
      for (size_t t = 0; t < NT; ++t) plo[t] = phi[t] = W::zero();
      const I sc = W::bcast16(g + 32 + 16 * c, apart), scale_lo = W::shuffle(sc, first),
              scale_hi = W::shuffle(sc, second);
      auto widen = [&] {
        for (size_t t = 0; t < NT; ++t) {
          isum[t] = W::add32(isum[t], W::madd(plo[t], scale_lo));
          isum[t] = W::add32(isum[t], W::madd(phi[t], scale_hi));
          plo[t] = phi[t] = W::zero();
        }
      };
      [[maybe_unused]] I high[2];
      if constexpr (kFifth)
        for (size_t h = 0; h < 2; ++h) high[h] = W::bytes(g + 160 + 64 * c + 32 * h, apart);
      auto vector = [&](auto k) RWKV_INLINE_LAMBDA {
        const I w = W::bytes(qs + 256 * c + 32 * k, apart);
        I lo = W::and_(w, low4), hi = W::and_(W::high_nibbles(w), low4);
        if constexpr (kFifth) {
          lo = W::or_(lo, W::template above_nibbles<2 * (k % 4), 1>(high[k / 4]));
          hi = W::or_(hi, W::template above_nibbles<2 * (k % 4) + 1, 1>(high[k / 4]));
        }
        for (size_t t = 0; t < NT; ++t) {
          int32_t xlo, xhi;
          std::memcpy(&xlo, x[t][b].q + 64 * c + 4 * k, 4);
          std::memcpy(&xhi, x[t][b].q + 64 * c + 32 + 4 * k, 4);
          plo[t] = W::add16(plo[t], W::maddubs(lo, W::words_of(xlo)));
          phi[t] = W::add16(phi[t], W::maddubs(hi, W::words_of(xhi)));
        }
        if (kFifth && k == 3) widen();
      };
      vector(std::integral_constant<int, 0>());
      vector(std::integral_constant<int, 1>());
      vector(std::integral_constant<int, 2>());
      vector(std::integral_constant<int, 3>());
      vector(std::integral_constant<int, 4>());
      vector(std::integral_constant<int, 5>());
      vector(std::integral_constant<int, 6>());
      vector(std::integral_constant<int, 7>());
      widen();
    }
    // The minimums: (min_2c, min_2c+1) of each row, unpacked once, against (Σx of sub-blocks
    // 2c, 2c + 1) of each token, the latter as one int32 in every lane.
    I mins[4];
    for (size_t c = 0; c < 4; ++c) mins[c] = W::shuffle(W::bcast16(g + 96 + 16 * c, apart), both);
    I msum[NT];
    for (size_t t = 0; t < NT; ++t) {
      const auto pairs = sub_block_pair_sums(x[t][b]);
      msum[t] = W::zero();
      for (size_t c = 0; c < 4; ++c) msum[t] = W::add32(msum[t], W::madd(mins[c], W::per_group(pairs[c])));
    }
    const typename W::F d = W::halves(g, apart), dmin = W::halves(g + 16, apart);
    for (size_t t = 0; t < NT; ++t) {
      acc[t] = W::fmadd(W::to_float(isum[t]), W::scaled(d, x[t][b].d), acc[t]);
      acc[t] = W::fnmadd(W::to_float(msum[t]), W::scaled(dmin, x[t][b].d), acc[t]);
    }
  }
  for (size_t t = 0; t < NT; ++t) out[t] = acc[t];
}

// Eight rows of Q6_K (Group8) or sixteen (Pair16), as rows_tokens_k. Levels are taken unsigned
// (0–63): the offset of 32 comes off once per super-block as 32·Σ_j scale_j·Σx over the
// 16-value sub-blocks j. Sixteen rows: `MatvecInCache/q6_k` 3215 → 2552 ns; `Matvec/q6_k`
// 65536 × 768 from DRAM, 2 threads, 924–1046 → 586–635 µs; 0.4B Q6_K decode 1.10×, prefill
// 1.46×, B = 16 1.39× (3–4 alternating pairs).
template <class W, size_t NT>
HWY_INLINE void rows_tokens_q6k(const uint8_t* g, size_t blocks, size_t step, size_t apart, const Q8KBlock* const* x,
                                typename W::F* out) {
  using I = typename W::I;
  const I low4 = W::bytes_of(15);
  auto twice = [](__m128i s) { return _mm_unpacklo_epi8(s, s); };                      // (s_r, s_r)
  auto halves = [](__m128i s) { return _mm_unpacklo_epi8(s, _mm_srli_si128(s, 8)); };  // (s_r, s_r+8)
  typename W::F acc[NT];
  for (size_t t = 0; t < NT; ++t) acc[t] = W::zero_f();
  for (size_t b = 0; b < blocks; ++b, g += step) {
    I isum[NT], msum[NT];
    for (size_t t = 0; t < NT; ++t) isum[t] = msum[t] = W::zero();
    for (size_t j = 0; j < 8; ++j) {  // (scale_2j, scale_2j+1) of each row against (Σx_2j, Σx_2j+1)
      const I pairs = W::widen(g + 16 + 16 * j, apart, halves);
      for (size_t t = 0; t < NT; ++t) {
        int32_t sx;
        std::memcpy(&sx, x[t][b].bsums + 2 * j, 4);
        msum[t] = W::add32(msum[t], W::madd(pairs, W::words_of(sx)));
      }
    }
    for (size_t ch = 0; ch < 4; ++ch) {  // ql[32ch ..]: values 128h + 32c + l (low nibbles), + 64 (high); ch = 2h + c
      prefetch_quarter<W>(g, kRows8Q6KBytes, ch);
      const size_t v0 = 128 * (ch / 2) + 32 * (ch % 2);  // the first value of the low nibbles
      const uint8_t* levels = g + 144 + 256 * ch;
      const uint8_t* words = g + 1168 + 128 * ch;
      // Pair sums of at most 2·63·127: two fit an int16 lane before widening.
      auto two_vectors = [&](auto j) RWKV_INLINE_LAMBDA {
        const I word = W::bytes(words + 32 * j, apart);
        I plo[NT], phi[NT];
        for (size_t t = 0; t < NT; ++t) plo[t] = phi[t] = W::zero();
        auto vector = [&](auto kk) RWKV_INLINE_LAMBDA {  // vector k = 2j + kk
          constexpr int k = 2 * decltype(j)::value + decltype(kk)::value;
          const I w = W::bytes(levels + 32 * k, apart);
          const I lo = W::or_(W::and_(w, low4), W::template above_nibbles<4 * decltype(kk)::value, 2>(word));
          const I hi = W::or_(W::and_(W::high_nibbles(w), low4), W::template above_nibbles<4 * decltype(kk)::value + 2, 2>(word));
          for (size_t t = 0; t < NT; ++t) {
            int32_t xlo, xhi;
            std::memcpy(&xlo, x[t][b].q + v0 + 4 * k, 4);
            std::memcpy(&xhi, x[t][b].q + v0 + 64 + 4 * k, 4);
            plo[t] = W::add16(plo[t], W::maddubs(lo, W::words_of(xlo)));
            phi[t] = W::add16(phi[t], W::maddubs(hi, W::words_of(xhi)));
          }
        };
        vector(std::integral_constant<int, 0>());
        vector(std::integral_constant<int, 1>());
        // Vectors 2j, 2j + 1 lie in 16-value sub-block v0/16 + j/2 (low) and 4 more (high).
        const size_t sub = v0 / 16 + decltype(j)::value / 2;
        const I scale_lo = W::widen(g + 16 + 8 * sub, apart, twice), scale_hi = W::widen(g + 16 + 8 * (sub + 4), apart, twice);
        for (size_t t = 0; t < NT; ++t) {
          isum[t] = W::add32(isum[t], W::madd(plo[t], scale_lo));
          isum[t] = W::add32(isum[t], W::madd(phi[t], scale_hi));
        }
      };
      two_vectors(std::integral_constant<int, 0>());
      two_vectors(std::integral_constant<int, 1>());
      two_vectors(std::integral_constant<int, 2>());
      two_vectors(std::integral_constant<int, 3>());
    }
    const typename W::F d = W::halves(g, apart);
    for (size_t t = 0; t < NT; ++t) {
      isum[t] = W::sub32(isum[t], W::times32(msum[t]));
      acc[t] = W::fmadd(W::to_float(isum[t]), W::scaled(d, x[t][b].d), acc[t]);
    }
  }
  for (size_t t = 0; t < NT; ++t) out[t] = acc[t];
}
#endif

// ---- rows × tokens

// Tokens per pass over the rows: their activations (`token_bytes` each) should stay in the
// core's L2 cache while the rows stream past.
size_t token_block(size_t token_bytes) { return std::max<size_t>(1, (128 * 1024) / std::max<size_t>(token_bytes, 1)); }

// Rows [r0, r1) against tokens [0, T), in blocks of tb tokens (each row, or group of eight
// rows, stays in L1 for the tokens of a block). Where the eight-row copy W8 holds a whole group
// inside [r0, r1), eight<n>(group, step, t, out) gives the eight results of tokens t .. t + n − 1
// as n vectors, n = kTokens while that many are left, then 2 and 1 (AVX2 and up; elsewhere
// `eight` is a null placeholder); other rows one(r, t), one at a time. group_bytes: the bytes
// of one group in W8; chunk: of one group's block column. The groups of rows [0, paired) lie in
// pairs (rows8_pairs), block columns of the two in turn (step 2·chunk, the second group chunk
// further on): there sixteen<n>(pair, t, out), where given, takes both groups at once.
template <size_t kTokens, class Eight, class One, class Sixteen = std::nullptr_t>
HWY_INLINE void rows_in_eights([[maybe_unused]] const void* W8, [[maybe_unused]] size_t group_bytes,
                               [[maybe_unused]] size_t chunk, [[maybe_unused]] size_t paired, size_t r0, size_t r1,
                               size_t T, size_t tb, float* Y, size_t ldy, [[maybe_unused]] const Eight& eight,
                               const One& one, [[maybe_unused]] const Sixteen& sixteen = nullptr) {
  for (size_t t0 = 0; t0 < T; t0 += tb) {
    const size_t t1 = std::min(T, t0 + tb);
    for (size_t r = r0; r < r1;) {
#if RWKV_X86_AVX2
      if (W8 && r % 8 == 0 && r + 8 <= r1) {
        const uint8_t* g = static_cast<const uint8_t*>(W8) + r / 8 * group_bytes;
        const bool in_pair = r < paired;
        if (in_pair && r % 16 == 8) g = g - group_bytes + chunk;  // the second group of its pair
        const size_t rows = std::is_same_v<Sixteen, std::nullptr_t> || !in_pair || r % 16 || r + 16 > r1 ? 8 : 16;
        size_t t = t0;
        // The passes after a group's (a pair's) first find it in L1; they ask for the next
        // one's bytes meanwhile, a share each, for its first pass to find them in L2 (the first
        // pass had waited on memory with the arithmetic idle, the later ones on arithmetic with
        // the memory idle). AVX-512 VNNI, 0.1B, old/new step time, alternating pairs: Q8_0 B =
        // 16 1.31× (6 pairs), Q4_0 B = 16 1.22× (6), B = 8 1.27× (4), Q8_0 B = 64 1.12× (4),
        // Q4_K B = 16 1.01× (4); prefill unchanged (Q8_0, Q4_K 1.00×); one token, one pass: no
        // change. AVX2 (Highway's AVX3 targets disabled), `MatmulQuant`, 16 tokens, 2 threads:
        // Q8_0 1.13×, Q4_0 1.05×, Q4_K 1.02× (2 alternating rounds).
        const size_t later = (t1 - t0 + kTokens - 1) / kTokens - 1;
        const size_t span = rows == 16 ? 2 * group_bytes : in_pair ? 0 : group_bytes;  // (bytes of a group or pair)
        const bool has_next = rows == 16 ? r + 32 <= std::min(r1, paired) : r + 16 <= r1;
        const size_t share = later > 0 && span > 0 && has_next ? (span + later - 1) / later : 0;
        const uint8_t* next = g + span;
        auto tokens = [&]<size_t n>(std::integral_constant<size_t, n>) RWKV_INLINE_LAMBDA {
          if (share > 0 && t > t0 && next < g + 2 * span) {
            for (size_t o = 0; o < share; o += 64) _mm_prefetch(reinterpret_cast<const char*>(next + o), _MM_HINT_T1);
            next += share;
          }
#if RWKV_X86_VNNI
          if constexpr (!std::is_same_v<Sixteen, std::nullptr_t>) {
            if (rows == 16) {
              __m512 out[n];
              sixteen.template operator()<n>(g, t, out);
              for (size_t i = 0; i < n; ++i) _mm512_storeu_ps(Y + (t + i) * ldy + r, out[i]);
              t += n;
              return;
            }
          }
#endif
          __m256 out[n];
          eight.template operator()<n>(g, in_pair ? 2 * chunk : chunk, t, out);
          for (size_t i = 0; i < n; ++i) _mm256_storeu_ps(Y + (t + i) * ldy + r, out[i]);
          t += n;
        };
        while (t + kTokens <= t1) tokens(std::integral_constant<size_t, kTokens>());
        if constexpr (kTokens > 4)
          while (t + 4 <= t1) tokens(std::integral_constant<size_t, 4>());
        if constexpr (kTokens > 2)
          while (t + 2 <= t1) tokens(std::integral_constant<size_t, 2>());
        while (t < t1) tokens(std::integral_constant<size_t, 1>());
        r += rows;
        continue;
      }
#endif
      for (size_t t = t0; t < t1; ++t) Y[t * ldy + r] = one(r, t);
      ++r;
    }
  }
}

// Up to this many tokens (batched decode), the types whose unpacking takes more registers
// (fifth bits, K-quants but Q6_K) still take 4 tokens per pass; more (prefill), 2. Four per pass
// against two, medians of 3–4 alternating pairs: Q4_K B = 8 1.10, B = 16 1.13 faster; Q5_0 B = 4
// 1.23, B = 16 1.07; but prefill 0.94 (Q4_K) and 0.90 (Q5_0). With the switch at 16 tokens, a
// second set: Q4_K B = 4 1.16, B = 16 0.95; Q5_0 B = 4 1.11, B = 16 1.09.
constexpr size_t kFewTokens = 16;

// 32-value types: eight rows at a time through W8, their interleaved copy, where there is one
// and the kernel for it (AVX2), four tokens at a time (with fifth bits, beyond kFewTokens two);
// with AVX512-VNNI sixteen rows (a pair of groups) against eight tokens at a time, then four,
// two, one (against four: 0.1B B = 16 Q8_0 1.05×, Q4_0 1.04×, Q5_0 1.04×; prefill Q8_0 1.05×,
// Q4_0 1.02×, Q5_1 1.07×; 4–6 alternating pairs); the other rows one at a time, there with the
// same float operations (row_token_fma), elsewhere by row_token.
template <class B>
void q8_rows_b(const void* W, const void* W8, [[maybe_unused]] size_t rows, size_t cols, size_t r0, size_t r1,
               const Q8Block* x, const Q8Scalars& xs, size_t T, float* Y, size_t ldy) {
  constexpr bool kRows8 = RWKV_X86_AVX2;
  const size_t blocks = cols / 32, row_bytes = blocks * B::kBytes;
  const uint8_t* w = static_cast<const uint8_t*>(W);
  auto token = [&](size_t t) {
    const size_t o = t * blocks;
    return TokenSums{x + o, xs.d + o, xs.level_sum + o, xs.s + o};
  };
  auto one = [&](size_t r, size_t t) RWKV_INLINE_LAMBDA {
    if constexpr (kRows8)
      return row_token_fma<B>(w + r * row_bytes, blocks, token(t));
    else
      return row_token<B>(w + r * row_bytes, blocks, token(t));
  };
#if RWKV_X86_AVX2
  auto eight = [&]<size_t n>(const uint8_t* g, size_t step, size_t t, __m256* out) RWKV_INLINE_LAMBDA {
    TokenSums sums[n];
    for (size_t i = 0; i < n; ++i) sums[i] = token(t + i);
    rows8_tokens<B, n>(g, blocks, step, sums, out);
  };
#else
  const std::nullptr_t eight = nullptr;
#endif
  const size_t tb = token_block(blocks * sizeof(Q8Block)), group = 8 * row_bytes, chunk = 8 * B::kBytes;
#if RWKV_X86_VNNI
  if (avx512_vnni()) {  // (the layout rows8_pairs gives this target on this CPU)
    auto sixteen = [&]<size_t n>(const uint8_t* g, size_t t, __m512* out) RWKV_INLINE_LAMBDA {
      TokenSums sums[n];
      for (size_t i = 0; i < n; ++i) sums[i] = token(t + i);
      rows16_tokens<B, n>(g, blocks, sums, out);
    };
    return rows_in_eights<8>(W8, group, chunk, rows / 16 * 16, r0, r1, T, tb, Y, ldy, eight, one, sixteen);
  }
#endif
  if (B::kHighAt == 0 || T <= kFewTokens)
    rows_in_eights<4>(W8, group, chunk, 0, r0, r1, T, tb, Y, ldy, eight, one);
  else
    rows_in_eights<2>(W8, group, chunk, 0, r0, r1, T, tb, Y, ldy, eight, one);
}

// The K-quants: eight rows at a time through W8 where there is one, Q4_K and Q5_K four tokens at
// a time up to kFewTokens, else (and Q6_K always) two; the other rows one at a time by the same
// float operations (row_token_fma_k).
template <class K>
void k_rows8(const void* W, const void* W8, [[maybe_unused]] size_t rows, size_t cols, size_t r0, size_t r1,
             const Q8KBlock* x, size_t T, float* Y, size_t ldy) {
  const size_t blocks = cols / 256, row_bytes = blocks * K::kBytes;
  const uint8_t* w = static_cast<const uint8_t*>(W);
  auto one = [&](size_t r, size_t t) RWKV_INLINE_LAMBDA {
    return row_token_fma_k<K>(w + r * row_bytes, blocks, x + t * blocks);
  };
#if RWKV_X86_AVX2
  auto eight = [&]<size_t n>(const uint8_t* g, size_t step, size_t t, __m256* out) RWKV_INLINE_LAMBDA {
    const Q8KBlock* tokens[n];
    for (size_t i = 0; i < n; ++i) tokens[i] = x + (t + i) * blocks;
    if constexpr (std::is_same_v<K, Q6_KB>)
      rows_tokens_q6k<Group8, n>(g, blocks, step, 0, tokens, out);
    else
      rows_tokens_k<Group8, K, n>(g, blocks, step, 0, tokens, out);
  };
#else
  const std::nullptr_t eight = nullptr;
#endif
  constexpr size_t kGroupBytes = std::is_same_v<K, Q4_KB>   ? kRows8Q4KBytes
                                 : std::is_same_v<K, Q5_KB> ? kRows8Q5KBytes
                                                            : kRows8Q6KBytes;
  const size_t tb = token_block(blocks * sizeof(Q8KBlock));
  // The rows [0, paired) in pairs, each taken by sixteen where given (see rows_in_eights).
  auto run = [&](size_t paired, const auto& sixteen) {
    if (!std::is_same_v<K, Q6_KB> && T <= kFewTokens)
      rows_in_eights<4>(W8, blocks * kGroupBytes, kGroupBytes, paired, r0, r1, T, tb, Y, ldy, eight, one, sixteen);
    else
      rows_in_eights<2>(W8, blocks * kGroupBytes, kGroupBytes, paired, r0, r1, T, tb, Y, ldy, eight, one, sixteen);
  };
#if RWKV_X86_VNNI
  if (avx512_vnni()) {  // (the layout rows8_pairs gives this target on this CPU)
    auto sixteen = [&]<size_t n>(const uint8_t* g, size_t t, __m512* out) RWKV_INLINE_LAMBDA {
      const Q8KBlock* tokens[n];
      for (size_t i = 0; i < n; ++i) tokens[i] = x + (t + i) * blocks;
      if constexpr (std::is_same_v<K, Q6_KB>)
        rows_tokens_q6k<Pair16, n>(g, blocks, 2 * kGroupBytes, kGroupBytes, tokens, out);
      else
        rows_tokens_k<Pair16, K, n>(g, blocks, 2 * kGroupBytes, kGroupBytes, tokens, out);
    };
    return run(rows / 16 * 16, sixteen);
  }
#endif
  run(0, nullptr);
}

void Q8Rows(DType type, const void* W, const void* W8, size_t rows, size_t cols, size_t r0, size_t r1,
            const Q8Block* x, const Q8Scalars& xs, size_t T, float* Y, size_t ldy) {
  switch (type) {
    case DType::Q4_0: return q8_rows_b<Q4_0B>(W, W8, rows, cols, r0, r1, x, xs, T, Y, ldy);
    case DType::Q4_1: return q8_rows_b<Q4_1B>(W, W8, rows, cols, r0, r1, x, xs, T, Y, ldy);
    case DType::Q5_0: return q8_rows_b<Q5_0B>(W, W8, rows, cols, r0, r1, x, xs, T, Y, ldy);
    case DType::Q5_1: return q8_rows_b<Q5_1B>(W, W8, rows, cols, r0, r1, x, xs, T, Y, ldy);
    case DType::Q8_0: return q8_rows_b<Q8_0B>(W, W8, rows, cols, r0, r1, x, xs, T, Y, ldy);
    default: return;  // callers pass these types only
  }
}

void Q8KRows(DType type, const void* W, const void* W8, size_t rows, size_t cols, size_t r0, size_t r1, const Q8KBlock* x,
             size_t T, float* Y, size_t ldy) {
  switch (type) {
    case DType::Q4_K: return k_rows8<Q4_KB>(W, W8, rows, cols, r0, r1, x, T, Y, ldy);
    case DType::Q5_K: return k_rows8<Q5_KB>(W, W8, rows, cols, r0, r1, x, T, Y, ldy);
    case DType::Q6_K: return k_rows8<Q6_KB>(W, W8, rows, cols, r0, r1, x, T, Y, ldy);
    default: return;  // callers pass these types only
  }
}

// ---- quantizing the activations (bit for bit as quantize_q8 / quantize_q8_k in ops.hpp)

using DI = hn::Repartition<int32_t, DF>;
using D8I = hn::Rebind<int8_t, DI>;

// The largest magnitude among n values (a multiple of the lane count), as the bits of a float:
// with the sign bits cleared, integers order the bits as the floats, and every infinity or NaN
// (0x7f800000 and up) lies above every finite value, so one pass finds the maximum and whether
// all are finite.
HWY_INLINE uint32_t max_magnitude_bits(const float* x, size_t n) {
  const DF df;
  const DI di;
  const auto magnitude = [&](size_t j) { return hn::And(hn::BitCast(di, hn::LoadU(df, x + j)), hn::Set(di, 0x7fffffff)); };
  auto m = magnitude(0);
  for (size_t j = hn::Lanes(df); j < n; j += hn::Lanes(df)) m = hn::Max(m, magnitude(j));
  return static_cast<uint32_t>(hn::GetLane(hn::MaxOfLanes(di, m)));
}
constexpr uint32_t kNotFinite = 0x7f800000;  // the bits of +infinity

// std::round: to nearest, halfway cases away from zero (the difference v − trunc(v) is exact).
HWY_INLINE VF round_half_away(VF v) {
  const DF df;
  const VF t = hn::Trunc(v);
  const VF away = hn::IfThenElseZero(hn::Ge(hn::Abs(hn::Sub(v, t)), hn::Set(df, 0.5f)), hn::CopySign(hn::Set(df, 1.0f), v));
  return hn::Add(t, away);
}

// Stores the levels of n values (a multiple of the lane count) and returns their sum.
template <class Round>
HWY_INLINE int32_t store_levels(const float* x, size_t n, float scale, const Round& round, int8_t* q) {
  const DF df;
  const DI di;
  hn::Vec<DI> sum = hn::Zero(di);
  for (size_t j = 0; j < n; j += hn::Lanes(df)) {
    const auto level = hn::ConvertTo(di, round(hn::Mul(hn::LoadU(df, x + j), hn::Set(df, scale))));
    sum = hn::Add(sum, level);
    hn::StoreU(hn::DemoteTo(D8I(), level), D8I(), q + j);
  }
  return hn::GetLane(hn::SumOfLanes(di, sum));
}

#if RWKV_X86_AVX2
// The levels round(x·scale) of 32 values (within ±127) stored as bytes at q: the four vectors
// packed together (two packs, a pack and a permute: the packs interleave the lanes by 128-bit
// halves) and stored at once. first16 and last16: the levels of values 0–15 and 16–31 as
// vectors whose lanes add up to their sums.
template <class Round>
HWY_INLINE void levels32(const float* x, float scale, const Round& round, int8_t* q, __m256i& first16, __m256i& last16) {
  static_assert(hn::MaxLanes(DF()) == 8);
  const DF df;
  __m256i l[4];
  // (cvttps2dq itself: the rounded values are whole and small, so Highway's handling of values
  // outside int32 is not needed.)
  for (size_t k = 0; k < 4; ++k) l[k] = _mm256_cvttps_epi32(round(hn::Mul(hn::LoadU(df, x + 8 * k), hn::Set(df, scale))).raw);
  const __m256i a = _mm256_packs_epi32(l[0], l[1]), b = _mm256_packs_epi32(l[2], l[3]);
  const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), bytes);
  first16 = _mm256_add_epi32(l[0], l[1]);
  last16 = _mm256_add_epi32(l[2], l[3]);
}
#endif

// store_levels for one block of 32 with round_half_away (with AVX2 by levels32).
HWY_INLINE int32_t store_levels32(const float* x, float scale, int8_t* q) {
#if RWKV_X86_AVX2
  __m256i first16, last16;
  levels32(x, scale, round_half_away, q, first16, last16);
  return hn::GetLane(hn::SumOfLanes(DI(), hn::Vec<DI>{_mm256_add_epi32(first16, last16)}));
#else
  return store_levels(x, 32, scale, round_half_away, q);
#endif
}

// fp16_to_fp32(fp32_to_fp16(v)) for a finite v: by F16C where the target has it (AVX2 and up:
// the same rounding, to nearest even, and the same overflow to infinity). The portable
// conversions took 30 % of quantize_q8's time (768 values: 1030 ns, 716 with F16C).
HWY_INLINE float round_to_fp16(float v) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  return _cvtsh_ss(_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT));
#else
  return fp16_to_fp32(fp32_to_fp16(v));
#endif
}

// Eight blocks at a time, each step of the work for all eight before the next step: a block
// alone is one long chain of dependent operations (maximum, two divisions, levels, sum, fp16
// rounding), and done block after block the chains hardly overlapped (768 values: 609 ns
// block after block, 328–375 ns so, with levels32's conversion).
void QuantizeQ8(const float* x, size_t n, Q8Block* out) {
  constexpr size_t kGroup = 8;
  const size_t blocks = n / 32;
  for (size_t b0 = 0; b0 < blocks; b0 += kGroup, x += 32 * kGroup, out += kGroup) {
    const size_t m = std::min(kGroup, blocks - b0);
    uint32_t amax[kGroup];
    float d[kGroup], id[kGroup];
    int32_t sum[kGroup];
    for (size_t i = 0; i < m; ++i) amax[i] = max_magnitude_bits(x + 32 * i, 32);
    for (size_t i = 0; i < m; ++i) {
      d[i] = std::bit_cast<float>(amax[i]) / 127.0f;
      id[i] = d[i] != 0.0f ? 1.0f / d[i] : 0.0f;
    }
    for (size_t i = 0; i < m; ++i)
      if (amax[i] < kNotFinite) sum[i] = store_levels32(x + 32 * i, id[i], out[i].q);
    for (size_t i = 0; i < m; ++i) {
      if (amax[i] >= kNotFinite) {
        out[i].set_not_finite();
        continue;
      }
      out[i].d = round_to_fp16(d[i]);
      out[i].s = round_to_fp16(static_cast<float>(sum[i]) * d[i]);
      out[i].level_sum = static_cast<float>(sum[i]);
    }
  }
}

void QuantizeQ8K(const float* x, size_t n, Q8KBlock* out) {
  const DF df;
  for (size_t b = 0; b < n / kquant::kBlock; ++b, x += kquant::kBlock) {
    const uint32_t amax_bits = max_magnitude_bits(x, kquant::kBlock);
    if (amax_bits >= kNotFinite) {
      out[b].set_not_finite();
      continue;
    }
    // The value of largest magnitude (the first one, as the reference scans) maps to −127.
    const float amax = std::bit_cast<float>(amax_bits);
    float max = 0;
    for (size_t j = 0; amax != 0 && j < kquant::kBlock; j += hn::Lanes(df)) {
      const intptr_t at = hn::FindFirstTrue(df, hn::Eq(hn::Abs(hn::LoadU(df, x + j)), hn::Set(df, amax)));
      if (at >= 0) {
        max = x[j + static_cast<size_t>(at)];
        break;
      }
    }
    const float iscale = amax != 0 ? -127.0f / max : 0.0f;
    auto round_to_127 = [df](VF v) { return hn::Min(hn::Round(v), hn::Set(df, 127.0f)); };  // as nearbyint
#if RWKV_X86_AVX2
    // The 16 sums of 16 levels by a tree of horizontal adds rather than one reduction each:
    // after two rounds, h2[k] holds in each 128-bit half the partial sums of groups 4k .. 4k + 3
    // over that half's lanes.
    __m256i p[16], h1[8], h2[4];
    for (size_t c = 0; c < 8; ++c) levels32(x + 32 * c, iscale, round_to_127, out[b].q + 32 * c, p[2 * c], p[2 * c + 1]);
    for (size_t k = 0; k < 8; ++k) h1[k] = _mm256_hadd_epi32(p[2 * k], p[2 * k + 1]);
    for (size_t k = 0; k < 4; ++k) h2[k] = _mm256_hadd_epi32(h1[2 * k], h1[2 * k + 1]);
    auto halves_added = [](__m256i u, __m256i v) {  // groups of u, then of v, in order
      return _mm256_add_epi32(_mm256_permute2x128_si256(u, v, 0x20), _mm256_permute2x128_si256(u, v, 0x31));
    };
    // (packs interleaves by 128-bit halves: 64-bit pieces 0, 2, 1, 3 are groups 0–15 in order.)
    const __m256i sums = _mm256_permute4x64_epi64(_mm256_packs_epi32(halves_added(h2[0], h2[1]), halves_added(h2[2], h2[3])), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].bsums), sums);
#else
    for (size_t g = 0; g < 16; ++g)
      out[b].bsums[g] = static_cast<int16_t>(store_levels(x + 16 * g, 16, iscale, round_to_127, out[b].q + 16 * g));
#endif
    out[b].d = amax != 0 ? 1 / iscale : 0.0f;
  }
}

#undef RWKV_X86_AVX2
#undef RWKV_INLINE_LAMBDA

}  // namespace rwkv::cpu::simd::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace rwkv::cpu::simd {

HWY_EXPORT(Q8Rows);
HWY_EXPORT(Rows8Kernel);
HWY_EXPORT(Rows16Kernel);
HWY_EXPORT(Q8KRows);
HWY_EXPORT(QuantizeQ8);
HWY_EXPORT(QuantizeQ8K);

void quantize_q8(const float* x, size_t n, Q8Block* out) { HWY_DYNAMIC_DISPATCH(QuantizeQ8)(x, n, out); }
void quantize_q8_k(const float* x, size_t n, Q8KBlock* out) { HWY_DYNAMIC_DISPATCH(QuantizeQ8K)(x, n, out); }

void q8_rows(DType type, const void* W, const void* W8, size_t rows, size_t cols, size_t r0, size_t r1,
             const Q8Block* x, const Q8Scalars& xs, size_t T, float* Y, size_t ldy) {
  HWY_DYNAMIC_DISPATCH(Q8Rows)(type, W, W8, rows, cols, r0, r1, x, xs, T, Y, ldy);
}

bool rows8_kernel() { return HWY_DYNAMIC_DISPATCH(Rows8Kernel)(); }

bool rows8_pairs(DType type) {
  return has_rows8_layout(type) && HWY_DYNAMIC_DISPATCH(Rows16Kernel)();
}

bool has_rows8_layout(DType type) {
  switch (type) {
    case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::Q8_0: case DType::Q4_K:
    case DType::Q5_K: case DType::Q6_K:
      return true;
    default: return false;
  }
}

size_t rows8_bytes(DType type, size_t rows, size_t cols) {
  if (type == DType::Q4_K || type == DType::Q5_K)
    return rows / 8 * (cols / 256) * (type == DType::Q4_K ? kRows8Q4KBytes : kRows8Q5KBytes);
  return rows * dtype_bytes(type, cols);  // the 32-value types and Q6_K: the same size
}

namespace {
// A row's word of the bits above the nibbles, as bits_above_nibbles reads it, for the 4 / kBits
// vectors it covers: kBits bits at 8i + kBits·(2k + h) are bits(k, i, h), those above the low
// (h = 0) or high (h = 1) nibble of byte i of vector k (1 bit: Q5's fifth; 2: Q6_K's high bits).
template <uint32_t kBits, class Bits>
uint32_t nibble_bits_word(const Bits& bits) {
  uint32_t word = 0;
  for (uint32_t k = 0; k < 4 / kBits; ++k)
    for (uint32_t i = 0; i < 4; ++i)
      for (uint32_t h = 0; h < 2; ++h)
        word |= (static_cast<uint32_t>(bits(k, i, h)) & ((1u << kBits) - 1)) << (8 * i + kBits * (2 * k + h));
  return word;
}
}  // namespace

void interleave_rows8(DType type, const void* W, size_t rows, size_t cols, void* out) {
  const bool k_quant = type == DType::Q4_K || type == DType::Q5_K || type == DType::Q6_K;
  const size_t block = k_quant ? 256 : 32;
  if (!has_rows8_layout(type) || rows % 8 != 0 || cols % block != 0)
    fail("interleave_rows8: ", dtype_name(type), " ", rows, " x ", cols, " has no eight-row layout");
  const size_t bb = dtype_block_bytes(type), blocks = cols / block, row_bytes = blocks * bb;
  const auto* in = static_cast<const uint8_t*>(W);
  auto* o = static_cast<uint8_t*>(out);
  // Where group g's block column b of `column` bytes goes: the groups of whole pairs take turns
  // by column (rows8_pairs), the others follow one another.
  const bool pairs = rows8_pairs(type);
  auto column_at = [&](size_t g, size_t b, size_t column) {
    if (pairs && g < rows / 16 * 2) return static_cast<uint8_t*>(out) + ((g / 2) * 2 * blocks + 2 * b + g % 2) * column;
    return static_cast<uint8_t*>(out) + (g * blocks + b) * column;
  };
  if (type == DType::Q6_K) {  // ql: 128 bytes at 0, qh: 64 at 128, int8 scales: 16 at 192, d at 208
    for (size_t g = 0; g < rows / 8; ++g)
      for (size_t b = 0; b < blocks; ++b) {
        o = column_at(g, b, kRows8Q6KBytes);
        for (size_t r = 0; r < 8; ++r) {
          const uint8_t* src = in + (8 * g + r) * row_bytes + b * bb;
          std::memcpy(o + 2 * r, src + 208, 2);
          for (size_t j = 0; j < 16; ++j) o[16 + 8 * j + r] = src[192 + j];
          for (size_t ch = 0; ch < 4; ++ch) {  // values 128h + 32c + l and + 64: ch = 2h + c
            for (size_t k = 0; k < 8; ++k) std::memcpy(o + 144 + 256 * ch + 32 * k + 4 * r, src + 32 * ch + 4 * k, 4);
            // Word j covers vectors 2j, 2j + 1: the high bits of byte i's low (n = 0) or high
            // (n = 1) nibble in vector 2j + kk are bits 2(c + 2n), + 1 of qh[32h + 4(2j + kk) + i].
            const size_t h = ch / 2, c = ch % 2;
            for (size_t j = 0; j < 4; ++j) {
              const uint32_t word = nibble_bits_word<2>([&](uint32_t kk, uint32_t i, uint32_t n) {
                return src[128 + 32 * h + 4 * (2 * j + kk) + i] >> (2 * (c + 2 * n));
              });
              std::memcpy(o + 1168 + 128 * ch + 32 * j + 4 * r, &word, 4);
            }
          }
        }
      }
    return;
  }
  if (k_quant) {
    const bool fifth = type == DType::Q5_K;  // qh: 32 bytes at 16 (bit j of qh[l]: sub-block j, value l)
    const size_t qs_at = fifth ? 48 : 16, levels_at = fifth ? 416 : 160;
    for (size_t g = 0; g < rows / 8; ++g)
      for (size_t b = 0; b < blocks; ++b) {
        o = column_at(g, b, fifth ? kRows8Q5KBytes : kRows8Q4KBytes);
        for (size_t r = 0; r < 8; ++r) {
          const uint8_t* src = in + (8 * g + r) * row_bytes + b * bb;
          std::memcpy(o + 2 * r, src, 2);       // d
          std::memcpy(o + 16 + 2 * r, src + 2, 2);  // dmin
          uint8_t scale[8], min[8];
          kquant::unpack_scales(src + 4, scale, min);
          for (size_t j = 0; j < 8; ++j) {  // pair p = j / 2: 8 rows of sub-block 2p, then of 2p + 1
            o[32 + 16 * (j / 2) + 8 * (j % 2) + r] = scale[j];
            o[96 + 16 * (j / 2) + 8 * (j % 2) + r] = min[j];
          }
          for (size_t k = 0; k < 32; ++k) std::memcpy(o + levels_at + 32 * k + 4 * r, src + qs_at + 4 * k, 4);
          // Chunk c (sub-blocks 2c, 2c + 1), vectors 4H .. 4H + 3: byte i of vector k holds value
          // 4k + i of both sub-blocks.
          for (size_t c = 0; fifth && c < 4; ++c)
            for (size_t H = 0; H < 2; ++H) {
              const uint32_t word = nibble_bits_word<1>(
                  [&](uint32_t k, uint32_t i, uint32_t h) { return src[16 + 4 * (4 * H + k) + i] >> (2 * c + h); });
              std::memcpy(o + 160 + 64 * c + 32 * H + 4 * r, &word, 4);
            }
        }
      }
    return;
  }
  // The 32-value types: d at byte 0 of a block, then the minimum m and the fifth bits qh where
  // the type has them, then the 16 or 32 bytes qs.
  const bool min = type == DType::Q4_1 || type == DType::Q5_1, fifth = type == DType::Q5_0 || type == DType::Q5_1;
  const size_t qs_at = 2 + (min ? 2 : 0) + (fifth ? 4 : 0), vectors = (bb - qs_at) / 4;
  const size_t high_at = min ? 32 : 16, levels_at = high_at + (fifth ? 32 : 0);
  for (size_t g = 0; g < rows / 8; ++g)
    for (size_t b = 0; b < blocks; ++b) {
      o = column_at(g, b, 8 * bb);
      for (size_t r = 0; r < 8; ++r) {
        const uint8_t* src = in + (8 * g + r) * row_bytes + b * bb;
        std::memcpy(o + 2 * r, src, 2);  // the scale d
        if (min) std::memcpy(o + 16 + 2 * r, src + 2, 2);
        if (fifth) {  // byte i of vector k holds levels 4k + i and 4k + i + 16
          uint32_t qh;
          std::memcpy(&qh, src + qs_at - 4, 4);
          const uint32_t word =
              nibble_bits_word<1>([qh](uint32_t k, uint32_t i, uint32_t h) { return qh >> (4 * k + i + 16 * h); });
          std::memcpy(o + high_at + 4 * r, &word, 4);
        }
        for (size_t k = 0; k < vectors; ++k) std::memcpy(o + levels_at + 32 * k + 4 * r, src + qs_at + 4 * k, 4);
      }
    }
}

void q8k_rows(DType type, const void* W, const void* W8, size_t rows, size_t cols, size_t r0, size_t r1, const Q8KBlock* x,
              size_t T, float* Y, size_t ldy) {
  HWY_DYNAMIC_DISPATCH(Q8KRows)(type, W, W8, rows, cols, r0, r1, x, T, Y, ldy);
}

}  // namespace rwkv::cpu::simd
#endif
