// Highway kernels for the bfloat16 dot products of simd_bf16.hpp. This file is compiled once per
// target (foreach_target.h re-includes it); HWY_DYNAMIC_DISPATCH picks one. The products need
// AVX-512 and AVX512_BF16; the rounding runs on every target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/simd_bf16.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "io/error.hpp"
#include "kernels/cpu/simd.hpp"
#include "kernels/cpu/simd_bf16.hpp"
#include "kernels/cpu/token_groups-inl.h"

HWY_BEFORE_NAMESPACE();
namespace rwkv::cpu::simd::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#define RWKV_X86_AVX512 (HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3)

bool Bf16DotsSupported() {
#if RWKV_X86_AVX512
  static const bool has = __builtin_cpu_supports("avx512bf16");
  return has;
#else
  return false;
#endif
}

// The bfloat16 nearest to float32 values, ties to even (fp32_to_bf16 one value at a time), in the
// low half of each lane: the bits plus what rounds them at bit 16, the upper half kept. A NaN
// stays a NaN (quiet; adding could carry its payload into the sign: a NaN from a hostile file
// must not come out as a zero).
template <class DF>
HWY_INLINE hn::Vec<hn::RebindToUnsigned<DF>> bf16_bits(DF /* tag */, hn::Vec<DF> v) {
  const hn::RebindToUnsigned<DF> du;
  const auto u = hn::BitCast(du, v);
  const auto rounded = hn::Add(u, hn::Add(hn::Set(du, 0x7FFF), hn::And(hn::ShiftRight<16>(u), hn::Set(du, 1))));
  return hn::ShiftRight<16>(hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), hn::Or(u, hn::Set(du, 0x400000)), rounded));
}

void RoundBf16(const float* X, size_t T, size_t cols, uint16_t* Xb) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<uint16_t, decltype(df)> d16;
  const size_t N = hn::Lanes(df), ld = bf16_stride(cols);
  for (size_t t = 0; t < T; ++t) {
    const float* x = X + t * cols;
    uint16_t* out = Xb + t * ld;
    size_t i = 0;
    for (; i + N <= cols; i += N) {
      const auto bits = bf16_bits(df, hn::LoadU(df, x + i));
      hn::StoreU(hn::DemoteTo(d16, hn::BitCast(di, bits)), d16, out + i);  // (every value ≤ 0xFFFF)
    }
    for (; i < cols; ++i) out[i] = fp32_to_bf16(x[i]);
    if (cols & 1) out[cols] = 0;
  }
}

// Below kBf16UnpackMinTokens tokens (batched decode) each pair of weights is made in registers from
// the panels as stored, by each group of at most kDirectTokens tokens (direct_rows); from it,
// once per block of panels, into memory (unpacked_rows). (0.1B f16, B = 64: 42.2 and 49.4 → 37.7
// and 43.8 ms a step in 2 alternating pairs with 96 rather than 64; 512 tokens made in registers:
// 3404 and 3450 → 2696 and 2713 tokens/s.)
// The groups (even_groups) lay out the packed activations too.
constexpr size_t kDirectTokens = 24;  // (kBf16UnpackMinTokens: simd_bf16.hpp)

void RoundBf16Packed(const float* X, size_t T, size_t cols, uint16_t* Xb) {
  const size_t ld = bf16_stride(cols), pairs = ld / 2;
  thread_local std::vector<uint16_t> rows;
  rows.resize(T * ld);
  RoundBf16(X, T, cols, rows.data());
  even_groups<kDirectTokens>(T, [&](size_t t0, size_t nt) {
    uint16_t* out = Xb + t0 * ld;
    for (size_t j = 0; j < nt; ++j) {
      const uint16_t* row = rows.data() + (t0 + j) * ld;
      for (size_t p = 0; p < pairs; ++p) std::memcpy(out + 2 * (p * nt + j), row + 2 * p, 4);
    }
  });
}

#if RWKV_X86_AVX512
using DF = hn::Full512<float>;
using DU = hn::Full512<uint32_t>;

// acc + the sums of the pairs of bfloat16 products of a and b, lane by lane; and two float32
// vectors rounded to bfloat16 (to nearest even), lo's in the lower half. Highway 1.0.3 has no
// bfloat16 arithmetic and GCC 12 compiles these intrinsics only with -mavx512bf16, which
// Highway's targets do not set: the instructions are written out, and used only where the CPU
// has them.
HWY_INLINE __m512 dpbf16(__m512 acc, __m512i a, __m512i b) {
  asm("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}
HWY_INLINE __m512i cvtne2ps2bf16(__m512 hi, __m512 lo) {
  __m512i r;
  asm("vcvtne2ps2bf16 %2, %1, %0" : "=v"(r) : "v"(hi), "v"(lo));
  return r;
}

// Where the dot products find the weights, in pairs of columns: pair(q, p) is the vector whose
// lane j holds W[16q + j][c] in its low half and W[16q + j][c + 1] in its high half (c = 2p from
// the first column it was made for), both bfloat16.
//
// Unpacked: a block of panels made into such pairs once (unpack_pairs), for many tokens.
struct Unpacked {
  const uint32_t* w;
  size_t stride;  // between panels
  HWY_INLINE __m512i pair(size_t q, size_t p) const { return _mm512_loadu_si512(w + q * stride + p * kPanelRows); }
  HWY_INLINE void ahead(size_t, size_t) const {}
};
// Panel: one panel as stored (NP = 1), a pair made in registers each time (a column pair of a
// panel is 64 bytes, two float16 columns or two bfloat16 ones: widened and rounded, then
// interleaved), for a few tokens, where making it costs less than storing and loading it again.
// `ahead_bytes`: how far ahead of the reading the weights are asked for (with Ahead).
template <class T>
struct Panel {
  const T* P;  // its first column pair
  size_t ahead_bytes;
  HWY_INLINE __m512i pair(size_t /* q: 0 */, size_t p) const {
    // Value i of the 32 read goes to 16-bit lane 2i (i < 16, column c) or 2(i − 16) + 1.
    const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                           21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const T* c = P + 2 * p * kPanelRows;
    __m512i both;
    if constexpr (std::is_same_v<T, hwy::float16_t>) {
      const __m512 lo = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c)));
      const __m512 hi = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + kPanelRows)));
      both = cvtne2ps2bf16(hi, lo);
    } else {
      both = _mm512_loadu_si512(c);
    }
    return _mm512_permutexvar_epi16(order, both);
  }
  HWY_INLINE void ahead(size_t /* q: 0 */, size_t p) const {
    hwy::Prefetch(reinterpret_cast<const uint8_t*>(P + 2 * p * kPanelRows) + ahead_bytes);
  }
};

// A block of `panels` panels (the first at P, each rows 16 × cols), columns [c0, c0 + 2·kcp),
// unpacked in pairs of columns: out[(g·kcp + p)·16 + j] holds W[16g + j][c0 + 2p] in its low half
// and W[16g + j][c0 + 2p + 1] (0 past the last column) in its high half, both bfloat16.
template <class T>
void unpack_pairs(const T* P, size_t cols, size_t panels, size_t c0, size_t kcp, uint32_t* out) {
  const DF df;
  const DU du;
  const hn::Rebind<T, DF> dh;
  auto column = [&](const T* p) HWY_ATTR {  // bfloat16 bits in the low half of each lane
    if constexpr (std::is_same_v<T, hwy::float16_t>)
      return bf16_bits(df, hn::PromoteTo(df, hn::LoadU(dh, p)));
    else
      return hn::PromoteTo(du, hn::LoadU(hn::Rebind<uint16_t, DU>(), reinterpret_cast<const uint16_t*>(p)));
  };
  for (size_t g = 0; g < panels; ++g) {
    const T* panel = P + g * kPanelRows * cols;
    uint32_t* o = out + g * kcp * kPanelRows;
    for (size_t p = 0; p < kcp; ++p) {
      const size_t c = c0 + 2 * p;
      const auto low = column(panel + c * kPanelRows);
      const auto high = c + 1 < cols ? hn::ShiftLeft<16>(column(panel + (c + 1) * kPanelRows)) : hn::Zero(du);
      hn::StoreU(hn::Or(low, high), du, o + p * kPanelRows);
    }
  }
}

// Where the dot products find the activations' pairs: pair(t, p) of token t, pair p. Rows: each
// token's row (ldb apart); Packed: NT tokens pair by pair (round_bf16_packed), one pointer for all
// (16 row pointers took more general registers than there are).
struct Rows {
  const uint16_t* xb;
  size_t ldb;
  template <size_t NT>
  HWY_INLINE int32_t pair(size_t t, size_t p) const {
    int32_t v;
    std::memcpy(&v, xb + t * ldb + 2 * p, 4);
    return v;
  }
};
struct Packed {
  const uint16_t* xp;
  template <size_t NT>
  HWY_INLINE int32_t pair(size_t t, size_t p) const {
    int32_t v;
    std::memcpy(&v, xp + 2 * (p * NT + t), 4);
    return v;
  }
};

// Y[t][16q + ·] (+)= Σ_p pairs of x_t · panel q for NT tokens and NP panels of `w` (kcp pairs):
// NT·NP accumulators, each token's broadcast pair serving NP dot products and each panel's vector
// NT. Ahead: the weights are asked for ahead of the reading.
template <size_t NT, size_t NP, bool Ahead, class X, class W>
HWY_INLINE void dots(const X& x, const W& w, size_t kcp, float* y, size_t ldy, bool add) {
  // (Every loop over tokens and panels unrolled, for the accumulators to stay in registers: GCC
  // left those of 16 tokens in memory.)
  __m512 acc[NT][NP];
  HWY_UNROLL(32)
  for (size_t t = 0; t < NT; ++t)
    for (size_t q = 0; q < NP; ++q) acc[t][q] = _mm512_setzero_ps();
  for (size_t p = 0; p < kcp; ++p) {
    __m512i wv[NP];
    for (size_t q = 0; q < NP; ++q) {
      if constexpr (Ahead) w.ahead(q, p);
      wv[q] = w.pair(q, p);
    }
    HWY_UNROLL(32)
    for (size_t t = 0; t < NT; ++t) {
      const __m512i xt = _mm512_set1_epi32(x.template pair<NT>(t, p));
      HWY_UNROLL(2)
      for (size_t q = 0; q < NP; ++q) acc[t][q] = dpbf16(acc[t][q], wv[q], xt);
    }
  }
  HWY_UNROLL(32)
  for (size_t t = 0; t < NT; ++t)
    for (size_t q = 0; q < NP; ++q) {
      float* o = y + t * ldy + q * kPanelRows;
      _mm512_storeu_ps(o, add ? _mm512_add_ps(_mm512_loadu_ps(o), acc[t][q]) : acc[t][q]);
    }
}

// nt ≤ NT tokens (NT at compile time, for the registers).
template <size_t NT, size_t NP, bool Ahead = false, class X, class W>
HWY_INLINE void dots_group(size_t nt, const X& x, const W& w, size_t kcp, float* y, size_t ldy, bool add) {
  if constexpr (NT > 1)
    if (nt < NT) return dots_group<NT - 1, NP, Ahead>(nt, x, w, kcp, y, ldy, add);
  dots<NT, NP, Ahead>(x, w, kcp, y, ldy, add);
}

// 12 tokens against 2 panels: 24 accumulators of the 32 registers (as the float32 prefill), the
// tokens in even_groups of at most kTokens.
constexpr size_t kTokens = 12;

// Many tokens (prefill): columns in chunks of at most kPairsMax pairs, rows in blocks of panels
// whose unpacked chunk stays within kBlockBytes (in L2); each group of tokens runs against the
// whole block.
constexpr size_t kPairsMax = 256, kBlockBytes = 256 * 1024;
template <class T>
void unpacked_rows(const T* P, size_t cols, size_t r0, size_t r1, const uint16_t* Xb, size_t T_, float* Y, size_t ldy) {
  const size_t ldb = bf16_stride(cols), pairs = ldb / 2;
  const size_t chunks = (pairs + kPairsMax - 1) / kPairsMax, kcp_max = (pairs + chunks - 1) / chunks;
  const size_t block_panels = std::max<size_t>(1, kBlockBytes / (kcp_max * kPanelRows * 4));
  thread_local std::vector<uint32_t> unpacked;
  unpacked.resize(block_panels * kcp_max * kPanelRows);
  for (size_t rb = r0; rb < r1; rb += block_panels * kPanelRows) {
    const size_t panels = (std::min(r1, rb + block_panels * kPanelRows) - rb) / kPanelRows;
    for (size_t p0 = 0; p0 < pairs; p0 += kcp_max) {
      const size_t kcp = std::min(kcp_max, pairs - p0), stride = kcp * kPanelRows;
      unpack_pairs(P + rb * cols, cols, panels, 2 * p0, kcp, unpacked.data());
      even_groups<kTokens>(T_, [&](size_t t0, size_t nt) HWY_ATTR {
        const uint16_t* xb = Xb + t0 * ldb + 2 * p0;
        float* y = Y + t0 * ldy + rb;
        size_t j = 0;
        for (; j + 2 <= panels; j += 2)
          dots_group<kTokens, 2>(nt, Rows{xb, ldb}, Unpacked{unpacked.data() + j * stride, stride}, kcp,
                                 y + j * kPanelRows, ldy, p0 > 0);
        if (j < panels)
          dots_group<kTokens, 1>(nt, Rows{xb, ldb}, Unpacked{unpacked.data() + j * stride, stride}, kcp,
                                 y + j * kPanelRows, ldy, p0 > 0);
      });
    }
  }
}

// A few tokens (batched decode): panel after panel from the panels as stored, each pair made in
// registers once per group of tokens (so the groups are as few as fit the registers: up to
// kDirectTokens accumulators, against one panel), in slices of kSlicePairs pairs that the
// groups take in turn, the first bringing them from memory (asking kAheadBytes ahead) and the
// others finding them in L1. The activations come packed (round_bf16_packed). A last odd column
// is made into a pair with a zero (as the activations' padding), apart from the others, which
// are read two columns at a time.
constexpr size_t kSlicePairs = 128, kAheadBytes = 8192;
template <class T>
void direct_rows(const T* P, size_t cols, size_t r0, size_t r1, const uint16_t* Xb, size_t T_, float* Y, size_t ldy) {
  const size_t ldb = bf16_stride(cols), whole = cols / 2;
  const size_t slice = T_ > kDirectTokens ? kSlicePairs : std::max<size_t>(1, whole);  // (one group: whole rows)
  for (size_t rb = r0; rb < r1; rb += kPanelRows) {
    const T* panel = P + rb * cols;
    for (size_t p0 = 0; p0 < whole; p0 += slice) {
      const size_t kcp = std::min(slice, whole - p0);
      const Panel<T> w{panel + 2 * p0 * kPanelRows, kAheadBytes};
      even_groups<kDirectTokens>(T_, [&](size_t t0, size_t nt) HWY_ATTR {
        const Packed x{Xb + t0 * ldb + 2 * p0 * nt};
        float* y = Y + t0 * ldy + rb;
        if (t0 == 0) return dots_group<kDirectTokens, 1, true>(nt, x, w, kcp, y, ldy, p0 > 0);
        dots_group<kDirectTokens, 1>(nt, x, w, kcp, y, ldy, p0 > 0);
      });
    }
    if (cols & 1) {  // the last column and a zero
      T last[2 * kPanelRows] = {};
      std::memcpy(last, panel + (cols - 1) * kPanelRows, sizeof(T) * kPanelRows);
      const Panel<T> w{last, 0};
      even_groups<kDirectTokens>(T_, [&](size_t t0, size_t nt) HWY_ATTR {
        const Packed x{Xb + t0 * ldb + 2 * whole * nt};
        dots_group<kDirectTokens, 1>(nt, x, w, 1, Y + t0 * ldy + rb, ldy, cols > 1);
      });
    }
  }
}

template <class T>
void panel_rows_k(const T* P, size_t cols, size_t r0, size_t r1, const uint16_t* Xb, size_t T_, float* Y,
                  size_t ldy) {
  if (bf16_packs(T_)) return direct_rows(P, cols, r0, r1, Xb, T_, Y, ldy);
  unpacked_rows(P, cols, r0, r1, Xb, T_, Y, ldy);
}
#endif

void PanelRowsBf16(DType type, const void* P, size_t cols, size_t r0, size_t r1, const uint16_t* Xb, size_t T,
                   float* Y, size_t ldy) {
#if RWKV_X86_AVX512
  if (Bf16DotsSupported()) {
    if (type == DType::F16)
      return panel_rows_k(static_cast<const hwy::float16_t*>(P), cols, r0, r1, Xb, T, Y, ldy);
    if (type == DType::BF16)
      return panel_rows_k(static_cast<const hwy::bfloat16_t*>(P), cols, r0, r1, Xb, T, Y, ldy);
  }
#else
  (void)P, (void)cols, (void)r0, (void)r1, (void)Xb, (void)T, (void)Y, (void)ldy;
#endif
  throw Error(std::string("bfloat16 dot products: not supported here for ") + dtype_name(type) + " weights");
}

}  // namespace rwkv::cpu::simd::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace rwkv::cpu::simd {

HWY_EXPORT(Bf16DotsSupported);
HWY_EXPORT(RoundBf16);
HWY_EXPORT(RoundBf16Packed);
HWY_EXPORT(PanelRowsBf16);

bool bf16_dots_supported() { return HWY_DYNAMIC_DISPATCH(Bf16DotsSupported)(); }

void round_bf16(const float* X, size_t T, size_t cols, uint16_t* Xb) {
  HWY_DYNAMIC_DISPATCH(RoundBf16)(X, T, cols, Xb);
}

void round_bf16_packed(const float* X, size_t T, size_t cols, uint16_t* Xb) {
  HWY_DYNAMIC_DISPATCH(RoundBf16Packed)(X, T, cols, Xb);
}

void panel_rows_bf16(DType type, const void* P, size_t cols, size_t r0, size_t r1, const uint16_t* Xb, size_t T,
                     float* Y, size_t ldy) {
  HWY_DYNAMIC_DISPATCH(PanelRowsBf16)(type, P, cols, r0, r1, Xb, T, Y, ldy);
}

}  // namespace rwkv::cpu::simd
#endif
