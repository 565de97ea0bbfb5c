// Element-type conversions and ggml block decoding against slow, obvious references.
#include <cmath>
#include <cstring>
#include <bit>
#include <random>

#include "io/error.hpp"
#include "io/tensor.hpp"
#include "test_util.hpp"

namespace rwkv {
namespace {

// Reference fp16 decode by the definition: (-1)^s * 2^(e-15) * (1 + m/1024), subnormals 2^-14 * m/1024.
double ref_fp16(uint16_t h) {
  int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 0) v = std::ldexp(m / 1024.0, -14);
  else if (e == 31) v = m ? NAN : INFINITY;
  else v = std::ldexp(1.0 + m / 1024.0, e - 15);
  return s ? -v : v;
}

TEST(Fp16, DecodesEveryValueAsDefined) {
  for (uint32_t h = 0; h < 65536; ++h) {
    double want = ref_fp16(static_cast<uint16_t>(h));
    float got = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(want)) EXPECT_TRUE(std::isnan(got)) << h;
    else ASSERT_EQ(static_cast<double>(got), want) << h;
  }
}

TEST(Fp16, EncodeRoundsToNearestAndRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_fp16(f), h) << h;
  }
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-65000.f, 65000.f);
  for (int i = 0; i < 100000; ++i) {
    float x = (i % 2) ? u(rng) : u(rng) * 1e-6f;
    uint16_t h = fp32_to_fp16(x);
    double got = ref_fp16(h);
    // No other half value is closer to x.
    for (int d : {-1, 1}) {
      uint16_t n = static_cast<uint16_t>(h + d);
      if (((n >> 10) & 31) == 31 || (n ^ h) & 0x8000) continue;
      ASSERT_LE(std::fabs(got - x), std::fabs(ref_fp16(n) - x)) << x;
    }
  }
}

TEST(Bf16, RoundTripAndRounding) {
  EXPECT_EQ(bf16_to_fp32(0x3f80), 1.0f);
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie -> even
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // tie -> even
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(NAN))));
}

// One block of each type built by hand; values computed by the layout's definition.
TEST(Quant, Q5_0EveryHighBit) {
  for (int bit = 0; bit < 32; ++bit) {
    uint8_t blk[22] = {};
    uint16_t d = fp32_to_fp16(0.5f);
    std::memcpy(blk, &d, 2);
    uint32_t qh = 1u << bit;
    std::memcpy(blk + 2, &qh, 4);
    for (int j = 0; j < 16; ++j) blk[6 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    float out[32];
    dequantize(DType::Q5_0, blk, out, 32);
    for (int j = 0; j < 32; ++j) {
      int q = j < 16 ? j : 15 - (j - 16);
      if (j == bit) q += 16;
      ASSERT_EQ(out[j], (q - 16) * 0.5f) << "bit " << bit << " j " << j;
    }
  }
}

TEST(Quant, Q5_1AndQ4AndQ8) {
  uint8_t b51[24] = {};
  uint16_t d = fp32_to_fp16(0.25f), m = fp32_to_fp16(-1.0f);
  std::memcpy(b51, &d, 2);
  std::memcpy(b51 + 2, &m, 2);
  uint32_t qh = 0x80000001u;
  std::memcpy(b51 + 4, &qh, 4);
  for (int j = 0; j < 16; ++j) b51[8 + j] = static_cast<uint8_t>(3 | (5 << 4));
  float out[32];
  dequantize(DType::Q5_1, b51, out, 32);
  EXPECT_EQ(out[0], (3 + 16) * 0.25f - 1.0f);
  EXPECT_EQ(out[1], 3 * 0.25f - 1.0f);
  EXPECT_EQ(out[16], 5 * 0.25f - 1.0f);
  EXPECT_EQ(out[31], (5 + 16) * 0.25f - 1.0f);

  uint8_t b40[18] = {};
  std::memcpy(b40, &d, 2);
  b40[2] = 0xf0;  // value 0 = 0-8, value 16 = 15-8
  dequantize(DType::Q4_0, b40, out, 32);
  EXPECT_EQ(out[0], -8 * 0.25f);
  EXPECT_EQ(out[16], 7 * 0.25f);
  EXPECT_EQ(out[1], -8 * 0.25f);

  uint8_t b41[20] = {};
  std::memcpy(b41, &d, 2);
  std::memcpy(b41 + 2, &m, 2);
  b41[4 + 15] = 0x9a;
  dequantize(DType::Q4_1, b41, out, 32);
  EXPECT_EQ(out[15], 10 * 0.25f - 1.0f);
  EXPECT_EQ(out[31], 9 * 0.25f - 1.0f);
  EXPECT_EQ(out[0], -1.0f);

  uint8_t b80[34] = {};
  std::memcpy(b80, &d, 2);
  b80[2] = static_cast<uint8_t>(-128);
  b80[33] = 127;
  dequantize(DType::Q8_0, b80, out, 32);
  EXPECT_EQ(out[0], -32.0f);
  EXPECT_EQ(out[31], 31.75f);
  EXPECT_EQ(out[5], 0.0f);
}

TEST(Quant, RejectsPartialBlocks) {
  EXPECT_THROW(dtype_bytes(DType::Q8_0, 33), Error);
  EXPECT_EQ(dtype_bytes(DType::Q8_0, 64), 68u);
}

}  // namespace
}  // namespace rwkv
