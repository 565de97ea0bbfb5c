// The SIMD, multi-threaded products of block-quantized weights (matmul_quantized) against the
// scalar reference (matmul_quantized_reference): the integer sums per block are the same, so the
// results differ only by the order of float additions.
// simd_quant.cpp compiles AVX-512 with VNNI too (HWY_AVX3_DL); so does this loop over targets.
#define HWY_WANT_AVX3_DL
#include <hwy/targets.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "io/error.hpp"
#include "kernels/cpu/ops.hpp"
#include "kernels/cpu/simd_quant.hpp"
#include "test_util.hpp"

namespace rwkv {
namespace {

const DType kBlockTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                             DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// Sane fp16 scales (and minimums) in block number b.
void set_scales(DType type, uint8_t* block, size_t b) {
  const uint16_t d = fp32_to_fp16(0.01f * (1 + b % 5)), m = fp32_to_fp16(-0.05f);
  switch (type) {
    case DType::Q6_K: std::memcpy(block + 208, &d, 2); break;
    case DType::Q4_1: case DType::Q5_1: case DType::Q4_K: case DType::Q5_K:
      std::memcpy(block, &d, 2);
      std::memcpy(block + 2, &m, 2);
      break;
    default: std::memcpy(block, &d, 2); break;
  }
}

// Random levels and bits in every block, with sane scales in place.
std::vector<uint8_t> random_weights(DType type, size_t rows, size_t cols, std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<uint8_t> W(rows * dtype_bytes(type, cols));
  for (auto& b : W) b = static_cast<uint8_t>(byte(rng));
  const size_t bb = dtype_block_bytes(type);
  for (size_t b = 0; b < W.size() / bb; ++b) set_scales(type, &W[b * bb], b);
  return W;
}

void expect_fast_matches_reference(DType type, size_t rows, size_t cols, size_t T, std::mt19937& rng) {
  const auto W = random_weights(type, rows, cols, rng);
  std::normal_distribution<float> gauss;
  std::vector<float> X(T * cols), fast(T * rows), ref(T * rows), Wf(rows * cols);
  for (float& v : X) v = gauss(rng);
  const cpu::Matrix M{type, W.data(), rows, cols};
  cpu::matmul_quantized(X.data(), T, M, fast.data());
  cpu::matmul_quantized_reference(X.data(), T, M, ref.data());
  dequantize(type, W.data(), Wf.data(), Wf.size());
  for (size_t t = 0; t < T; ++t)
    for (size_t o = 0; o < rows; ++o) {
      double magnitude = 0;
      for (size_t i = 0; i < cols; ++i) magnitude += std::fabs(double(Wf[o * cols + i]) * X[t * cols + i]);
      ASSERT_NEAR(fast[t * rows + o], ref[t * rows + o], 1e-5 * magnitude + 1e-6)
          << dtype_name(type) << " rows=" << rows << " cols=" << cols << " T=" << T << " t=" << t << " o=" << o;
    }
}

TEST(QuantSimd, EveryTypeMatchesTheScalarReference) {
  std::mt19937 rng(11);
  for (int threads : {1, 2}) {
    cpu::set_threads(threads);
    for (DType type : kBlockTypes)
      for (size_t T : {1, 3, 17}) {
        expect_fast_matches_reference(type, 37, 512, T, rng);
        expect_fast_matches_reference(type, 5, 768, T, rng);
      }
  }
  cpu::set_threads(0);
}

// Each instruction set compiled in: AVX-512 with VNNI (vpdpbusd), AVX-512 and AVX2 (pmaddubsw),
// SSE4 and SSSE3 (the portable Highway code), scalar; as far as this CPU runs them.
TEST(QuantSimd, EveryInstructionSetMatchesTheScalarReference) {
  std::mt19937 rng(14);
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    SCOPED_TRACE(hwy::TargetName(target));
    hwy::SetSupportedTargetsForTest(target);
    for (DType type : kBlockTypes) expect_fast_matches_reference(type, 7, 512, 3, rng);
  }
  hwy::SetSupportedTargetsForTest(0);
}

// Long rows: the tokens' activations no longer fit one pass, so rows are unpacked once per
// block of tokens.
TEST(QuantSimd, ManyTokensOverLongRows) {
  std::mt19937 rng(12);
  cpu::set_threads(2);
  for (DType type : kBlockTypes) expect_fast_matches_reference(type, 19, 8192, 17, rng);
  cpu::set_threads(0);
}

// Levels at the ends of their ranges (Q8_0's −128, all fifth bits set, Q6_K's −32) against
// activations at ±127, where an int16 pair sum is closest to overflowing.
TEST(QuantSimd, ExtremeLevelsAndActivations) {
  for (DType type : kBlockTypes) {
    const size_t rows = 3, cols = 256, bb = dtype_block_bytes(type);
    std::vector<uint8_t> W(rows * dtype_bytes(type, cols));
    for (size_t b = 0; b < W.size() / bb; ++b) {  // every level byte 0x80 or 0xff
      std::memset(&W[b * bb], b % 2 ? 0xff : 0x80, bb);
      set_scales(type, &W[b * bb], b);
    }
    std::vector<float> X(2 * cols), fast(2 * rows), ref(2 * rows);
    for (size_t i = 0; i < cols; ++i) {
      X[i] = i % 2 ? 1.0f : -1.0f;
      X[cols + i] = -1.0f;
    }
    const cpu::Matrix M{type, W.data(), rows, cols};
    cpu::matmul_quantized(X.data(), 2, M, fast.data());
    cpu::matmul_quantized_reference(X.data(), 2, M, ref.data());
    for (size_t i = 0; i < fast.size(); ++i)
      EXPECT_NEAR(fast[i], ref[i], 1e-5 * std::fabs(ref[i]) + 1e-4) << dtype_name(type) << " " << i;
  }
}

// The types with an eight-row layout (simd::interleave_rows8), on each instruction set this CPU
// runs (AVX2 and up read the layout; the others read rows one at a time): every row gives the
// same bits as the row-at-a-time kernel, over whole groups, the rows left over (21 = 2·8 + 5,
// 29 = 3·8 + 5: where groups lie in pairs, simd::rows8_pairs, a pair and a last group alone),
// ranges that start and end inside a group (or between the groups of a pair), levels and
// activations at the ends of their ranges, and 7 or 19 tokens (the kernels' passes of 4, 2 and
// 1 tokens; beyond 16, of 2 for some types); and both stay close to the scalar reference.
// Then the layout's refusals.
TEST(QuantSimd, EightRowLayoutGivesTheSameBits) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    SCOPED_TRACE(hwy::TargetName(target));
    hwy::SetSupportedTargetsForTest(target);
    std::mt19937 rng(16);
    std::normal_distribution<float> gauss;
    for (DType type : kBlockTypes) {
      ASSERT_TRUE(cpu::simd::has_rows8_layout(type));
      const bool k_quant = type == DType::Q4_K || type == DType::Q5_K || type == DType::Q6_K;
      for (size_t cols : k_quant ? std::vector<size_t>{256, 768} : std::vector<size_t>{96, 768})
        for (size_t T : {size_t{7}, size_t{19}})
        for (int extreme = 0; extreme < 2; ++extreme)
        for (size_t rows : {21, 29}) {
          auto W = random_weights(type, rows, cols, rng);
          const size_t bb = dtype_block_bytes(type);
          if (extreme)
            for (size_t b = 0; b < W.size() / bb; ++b) {  // levels 0x80 / 0xff: −128 or 15 (Q4_K: scales too)
              std::memset(&W[b * bb], b % 2 ? 0xff : 0x80, bb);
              set_scales(type, &W[b * bb], b);
            }
          std::vector<uint8_t> W8(cpu::simd::rows8_bytes(type, rows / 8 * 8, cols));
          cpu::simd::interleave_rows8(type, W.data(), rows / 8 * 8, cols, W8.data());
          std::vector<float> X(T * cols);
          // (Extreme: token 0 all ones, so that every product has the same sign and the integer
          // sums are largest.)
          for (size_t i = 0; i < X.size(); ++i) X[i] = extreme ? (i < cols || i % 3 ? 1.0f : -1.0f) : gauss(rng);
          const cpu::Matrix plain{type, W.data(), rows, cols};
          cpu::Matrix eights = plain;
          eights.rows8 = W8.data();
          std::vector<float> a(T * rows), b(T * rows), ref(T * rows);
          for (int threads : {1, 2}) {
            cpu::set_threads(threads);
            cpu::matmul_quantized(X.data(), T, plain, a.data());
            cpu::matmul_quantized(X.data(), T, eights, b.data());
            ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << dtype_name(type) << " cols " << cols << " T " << T;
          }
          cpu::set_threads(0);
          const cpu::QuantizedActivations xq(X.data(), T, plain);
          std::fill(b.begin(), b.end(), 0.0f);
          xq.rows(eights, 3, 12, b.data());
          xq.rows(eights, 12, rows, b.data());
          xq.rows(eights, 0, 3, b.data());
          ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << dtype_name(type) << " ranges";
          std::fill(b.begin(), b.end(), 0.0f);  // each group alone, the second of a pair too
          for (size_t r = 0; r < rows; r += 8) xq.rows(eights, r, std::min(rows, r + 8), b.data());
          ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << dtype_name(type) << " groups";
          cpu::matmul_quantized_reference(X.data(), T, plain, ref.data());
          for (size_t i = 0; i < ref.size(); ++i)
            EXPECT_NEAR(b[i], ref[i], 1e-5 * std::fabs(ref[i]) + 1e-3) << dtype_name(type) << " " << i;
        }
    }
  }
  hwy::SetSupportedTargetsForTest(0);
  std::vector<uint8_t> W(dtype_bytes(DType::Q4_0, 64) * 8), out(W.size());
  EXPECT_THROW(cpu::simd::interleave_rows8(DType::Q4_0, W.data(), 7, 64, out.data()), Error);
  EXPECT_FALSE(cpu::simd::has_rows8_layout(DType::F16));
  EXPECT_THROW(cpu::simd::interleave_rows8(DType::F16, W.data(), 8, 64, out.data()), Error);
  EXPECT_THROW(cpu::simd::interleave_rows8(DType::Q6_K, W.data(), 8, 100, out.data()), Error);
}

// Activations to quantize: random, with halfway cases (levels exactly k + 0.5), equal
// magnitudes of both signs, zeros.
std::vector<float> activations_to_quantize(std::mt19937& rng) {
  std::normal_distribution<float> gauss;
  std::vector<float> x(1024);
  for (float& v : x) v = gauss(rng);
  for (size_t i = 0; i < 256; ++i) x[256 + i] = i == 0 ? 127.0f : (static_cast<float>(i % 40) - 20.0f) + 0.5f;
  for (size_t i = 0; i < 256; ++i) x[512 + i] = i == 3 ? -127.0f : i == 9 ? 127.0f : static_cast<float>(i % 7) - 3.5f;
  std::fill(x.begin() + 768, x.begin() + 800, 0.0f);
  // Scales at the ends of fp16's range (the SIMD kernels round them by F16C, the reference in
  // software): a block whose d is subnormal in fp16, and one whose s = d·Σq overflows it.
  for (size_t i = 832; i < 864; ++i) x[i] = 3e-4f * gauss(rng);
  for (size_t i = 864; i < 896; ++i) x[i] = 3e4f + static_cast<float>(i);
  return x;
}

TEST(QuantSimd, QuantizedActivationsAreBitIdentical) {
  std::mt19937 rng(15);
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    SCOPED_TRACE(hwy::TargetName(target));
    hwy::SetSupportedTargetsForTest(target);
    const auto x = activations_to_quantize(rng);
    std::vector<cpu::Q8Block> a(x.size() / 32), b(x.size() / 32);
    cpu::quantize_q8(x.data(), x.size(), a.data());
    cpu::simd::quantize_q8(x.data(), x.size(), b.data());
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].d, b[i].d) << i;
      ASSERT_EQ(a[i].s, b[i].s) << i;
      ASSERT_EQ(a[i].level_sum, b[i].level_sum) << i;
      ASSERT_EQ(0, std::memcmp(a[i].q, b[i].q, 32)) << i;
    }
    std::vector<cpu::Q8KBlock> c(x.size() / 256), e(x.size() / 256);
    cpu::quantize_q8_k(x.data(), x.size(), c.data());
    cpu::simd::quantize_q8_k(x.data(), x.size(), e.data());
    for (size_t i = 0; i < c.size(); ++i) {
      ASSERT_EQ(c[i].d, e[i].d) << i;
      ASSERT_EQ(0, std::memcmp(c[i].q, e[i].q, 256)) << i;
      ASSERT_EQ(0, std::memcmp(c[i].bsums, e[i].bsums, sizeof(c[i].bsums))) << i;
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

// Activations that are not finite (a hostile model's overflow) give NaN products, as float
// arithmetic would, in every kernel; no level is made from them (the fuzzer found the SIMD
// kernels multiplying a level sum made from NaN, an int overflow). Other tokens are untouched.
TEST(QuantSimd, NonFiniteActivationsGiveNanProducts) {
  std::mt19937 rng(16);
  const size_t rows = 16, cols = 512, T = 3;
  std::normal_distribution<float> gauss;
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    SCOPED_TRACE(hwy::TargetName(target));
    hwy::SetSupportedTargetsForTest(target);
    for (DType type : kBlockTypes) {
      const auto W = random_weights(type, rows, cols, rng);
      std::vector<uint8_t> W8(cpu::simd::rows8_bytes(type, rows, cols));
      cpu::simd::interleave_rows8(type, W.data(), rows, cols, W8.data());
      const cpu::Matrix plain{type, W.data(), rows, cols};
      cpu::Matrix eights = plain;
      eights.rows8 = W8.data();
      for (float bad : {NAN, INFINITY, -INFINITY}) {
        std::vector<float> X(T * cols);
        for (float& v : X) v = gauss(rng);
        X[cols + 300] = bad;  // token 1 only
        std::vector<float> a(T * rows), b(T * rows), ref(T * rows);
        cpu::matmul_quantized(X.data(), T, plain, a.data());
        cpu::matmul_quantized(X.data(), T, eights, b.data());
        cpu::matmul_quantized_reference(X.data(), T, plain, ref.data());
        for (size_t t = 0; t < T; ++t)
          for (size_t o = 0; o < rows; ++o) {
            const size_t i = t * rows + o;
            if (t == 1) {
              EXPECT_TRUE(std::isnan(a[i]) && std::isnan(b[i]) && std::isnan(ref[i])) << dtype_name(type) << " " << o;
            } else {
              EXPECT_TRUE(std::isfinite(ref[i])) << dtype_name(type);
              EXPECT_EQ(a[i], b[i]) << dtype_name(type);
            }
          }
      }
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(QuantSimd, RejectsRowsThatAreNotWholeBlocksAndFloatTypes) {
  std::vector<uint8_t> W(1024);
  std::vector<float> X(64), Y(1);
  EXPECT_THROW(cpu::matmul_quantized(X.data(), 1, {DType::Q8_0, W.data(), 1, 48}, Y.data()), Error);
  EXPECT_THROW(cpu::matmul_quantized(X.data(), 1, {DType::Q6_K, W.data(), 1, 64}, Y.data()), Error);
  EXPECT_THROW(cpu::matmul_quantized(X.data(), 1, {DType::F16, W.data(), 1, 64}, Y.data()), Error);
}

}  // namespace
}  // namespace rwkv
