// Highway kernels for the bfloat16 dot products of simd_bf16.hpp. This file is compiled once per
// target (foreach_target.h re-includes it); HWY_DYNAMIC_DISPATCH picks one. The products need
// AVX-512 and AVX512_BF16; the rounding runs on every target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/simd_bf16.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
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

// Float32 bits plus what rounds them to nearest even at bit 16: the bfloat16 is the upper half.
HWY_INLINE uint32_t rounded_bits(uint32_t u) { return u + 0x7FFF + ((u >> 16) & 1); }
template <class DU>
HWY_INLINE hn::Vec<DU> rounded_bits(DU du, hn::Vec<DU> u) {
  return hn::Add(u, hn::Add(hn::Set(du, 0x7FFF), hn::And(hn::ShiftRight<16>(u), hn::Set(du, 1))));
}

void RoundBf16(const float* X, size_t T, size_t cols, uint16_t* Xb) {
  const hn::ScalableTag<float> df;
  const hn::RebindToUnsigned<decltype(df)> du;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<uint16_t, decltype(df)> d16;
  const size_t N = hn::Lanes(df), ld = bf16_stride(cols);
  for (size_t t = 0; t < T; ++t) {
    const float* x = X + t * cols;
    uint16_t* out = Xb + t * ld;
    size_t i = 0;
    for (; i + N <= cols; i += N) {
      const auto high = hn::ShiftRight<16>(rounded_bits(du, hn::BitCast(du, hn::LoadU(df, x + i))));
      hn::StoreU(hn::DemoteTo(d16, hn::BitCast(di, high)), d16, out + i);  // (every value ≤ 0xFFFF)
    }
    for (; i < cols; ++i) {
      uint32_t u;
      std::memcpy(&u, x + i, 4);
      out[i] = static_cast<uint16_t>(rounded_bits(u) >> 16);
    }
    if (cols & 1) out[cols] = 0;
  }
}

#if RWKV_X86_AVX512
using DF = hn::Full512<float>;
using DU = hn::Full512<uint32_t>;

// acc + the sums of the pairs of bfloat16 products of a and b, lane by lane. Highway 1.0.3 has no
// bfloat16 dot product and GCC 12 compiles the intrinsic only with -mavx512bf16, which Highway's
// targets do not set: the instruction is written out, and used only where the CPU has it.
HWY_INLINE __m512 dpbf16(__m512 acc, __m512i a, __m512i b) {
  asm("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}

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
      return hn::ShiftRight<16>(rounded_bits(du, hn::BitCast(du, hn::PromoteTo(df, hn::LoadU(dh, p)))));
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

// Y[t][16q + ·] (+)= Σ_p pairs of xb_t · panel q for NT tokens (rows ldb apart) and NP unpacked
// panels (stride apart): NT·NP accumulators, each token's broadcast pair serving NP dot products
// and each panel's vector NT.
template <size_t NT, size_t NP>
HWY_INLINE void dots(const uint16_t* xb, size_t ldb, const uint32_t* w, size_t stride, size_t kcp, float* y,
                     size_t ldy, bool add) {
  __m512 acc[NT][NP];
  for (size_t t = 0; t < NT; ++t)
    for (size_t q = 0; q < NP; ++q) acc[t][q] = _mm512_setzero_ps();
  for (size_t p = 0; p < kcp; ++p) {
    __m512i wv[NP];
    for (size_t q = 0; q < NP; ++q) wv[q] = _mm512_loadu_si512(w + q * stride + p * kPanelRows);
    for (size_t t = 0; t < NT; ++t) {
      int32_t pair;
      std::memcpy(&pair, xb + t * ldb + 2 * p, 4);
      const __m512i x = _mm512_set1_epi32(pair);
      for (size_t q = 0; q < NP; ++q) acc[t][q] = dpbf16(acc[t][q], wv[q], x);
    }
  }
  for (size_t t = 0; t < NT; ++t)
    for (size_t q = 0; q < NP; ++q) {
      float* o = y + t * ldy + q * kPanelRows;
      _mm512_storeu_ps(o, add ? _mm512_add_ps(_mm512_loadu_ps(o), acc[t][q]) : acc[t][q]);
    }
}

// nt ≤ NT tokens (NT at compile time, for the registers).
template <size_t NT, size_t NP>
HWY_INLINE void dots_group(size_t nt, const uint16_t* xb, size_t ldb, const uint32_t* w, size_t stride, size_t kcp,
                           float* y, size_t ldy, bool add) {
  if constexpr (NT > 1)
    if (nt < NT) return dots_group<NT - 1, NP>(nt, xb, ldb, w, stride, kcp, y, ldy, add);
  dots<NT, NP>(xb, ldb, w, stride, kcp, y, ldy, add);
}

// 12 tokens against 2 panels: 24 accumulators of the 32 registers (as the float32 prefill).
constexpr size_t kTokens = 12, kPairsMax = 256;             // chunks of at most 512 columns
constexpr size_t kBlockBytes = 256 * 1024;                  // unpacked weights of a block of panels

template <class T>
void panel_rows_k(const T* P, size_t cols, size_t r0, size_t r1, const uint16_t* Xb, size_t T_, float* Y,
                  size_t ldy) {
  const size_t ldb = bf16_stride(cols), pairs = ldb / 2;
  const size_t chunks = (pairs + kPairsMax - 1) / kPairsMax, kcp_max = (pairs + chunks - 1) / chunks;
  const size_t block_panels = std::max<size_t>(1, kBlockBytes / (kcp_max * kPanelRows * 4));
  thread_local std::vector<uint32_t> unpacked;
  unpacked.resize(block_panels * kcp_max * kPanelRows);
  uint32_t* const w = unpacked.data();
  for (size_t rb = r0; rb < r1; rb += block_panels * kPanelRows) {
    const size_t panels = (std::min(r1, rb + block_panels * kPanelRows) - rb) / kPanelRows;
    for (size_t p0 = 0; p0 < pairs; p0 += kcp_max) {
      const size_t kcp = std::min(kcp_max, pairs - p0), stride = kcp * kPanelRows;
      unpack_pairs(P + rb * cols, cols, panels, 2 * p0, kcp, w);
      for (size_t t0 = 0; t0 < T_; t0 += kTokens) {
        const size_t nt = std::min(kTokens, T_ - t0);
        const uint16_t* xb = Xb + t0 * ldb + 2 * p0;
        float* y = Y + t0 * ldy + rb;
        size_t g = 0;
        for (; g + 2 <= panels; g += 2)
          dots_group<kTokens, 2>(nt, xb, ldb, w + g * stride, stride, kcp, y + g * kPanelRows, ldy, p0 > 0);
        if (g < panels) dots_group<kTokens, 1>(nt, xb, ldb, w + g * stride, stride, kcp, y + g * kPanelRows, ldy, p0 > 0);
      }
    }
  }
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
HWY_EXPORT(PanelRowsBf16);

bool bf16_dots_supported() { return HWY_DYNAMIC_DISPATCH(Bf16DotsSupported)(); }

void round_bf16(const float* X, size_t T, size_t cols, uint16_t* Xb) {
  HWY_DYNAMIC_DISPATCH(RoundBf16)(X, T, cols, Xb);
}

void panel_rows_bf16(DType type, const void* P, size_t cols, size_t r0, size_t r1, const uint16_t* Xb, size_t T,
                     float* Y, size_t ldy) {
  HWY_DYNAMIC_DISPATCH(PanelRowsBf16)(type, P, cols, r0, r1, Xb, T, Y, ldy);
}

}  // namespace rwkv::cpu::simd
#endif
