// ggml's K-quant super-blocks (Q4_K, Q5_K, Q6_K): decoding of hand-made blocks whose values
// were worked out by hand from the layout description (formats.md §1, ggml-common.h), the
// packing helpers, and the integer matrix products against a dequantize-then-float reference.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "io/error.hpp"
#include "io/k_quants.hpp"
#include "io/tensor.hpp"
#include "kernels/cpu/ops.hpp"
#include "test_util.hpp"

namespace rwkv {
namespace {

// 6-bit scales and mins of the hand-made Q4_K/Q5_K blocks, and their 12 packed bytes computed
// by hand: bytes 0–3 = scale[0..3] | (scale[4..7] >> 4) << 6, bytes 4–7 = min[0..3] |
// (min[4..7] >> 4) << 6, bytes 8–11 = (scale[4..7] & 15) | (min[4..7] & 15) << 4.
const uint8_t kScale[8] = {1, 2, 3, 4, 18, 37, 52, 63};
const uint8_t kMin[8] = {0, 5, 10, 63, 33, 20, 7, 49};
const uint8_t kPacked[12] = {0x41, 0x82, 0xC3, 0xC4, 0x80, 0x45, 0x0A, 0xFF, 0x12, 0x45, 0x74, 0x1F};

uint8_t pattern_a(size_t i) { return static_cast<uint8_t>((i * 37 + 11) & 255); }
uint8_t pattern_b(size_t i) { return static_cast<uint8_t>((i * 7) & 255); }

// d = 0.5 (fp16 0x3800), dmin = 0.25 (0x3400), the scales above, qs[i] = pattern_a(i).
std::vector<uint8_t> q4k_block() {
  std::vector<uint8_t> b(144);
  b[0] = 0x00, b[1] = 0x38, b[2] = 0x00, b[3] = 0x34;
  std::memcpy(&b[4], kPacked, 12);
  for (size_t i = 0; i < 128; ++i) b[16 + i] = pattern_a(i);
  return b;
}

// As q4k_block, with qh[i] = pattern_b(i) at 16 and the nibbles at 48.
std::vector<uint8_t> q5k_block() {
  std::vector<uint8_t> b(176);
  b[0] = 0x00, b[1] = 0x38, b[2] = 0x00, b[3] = 0x34;
  std::memcpy(&b[4], kPacked, 12);
  for (size_t i = 0; i < 32; ++i) b[16 + i] = pattern_b(i);
  for (size_t i = 0; i < 128; ++i) b[48 + i] = pattern_a(i);
  return b;
}

// ql[i] = pattern_a(i), qh[i] = pattern_b(i), scale[g] = 9g − 70, d = 0.25.
std::vector<uint8_t> q6k_block() {
  std::vector<uint8_t> b(210);
  for (size_t i = 0; i < 128; ++i) b[i] = pattern_a(i);
  for (size_t i = 0; i < 64; ++i) b[128 + i] = pattern_b(i);
  for (int g = 0; g < 16; ++g) b[192 + g] = static_cast<uint8_t>(static_cast<int8_t>(9 * g - 70));
  b[208] = 0x00, b[209] = 0x34;
  return b;
}

TEST(KQuants, TypeSizesAreGgmls) {
  EXPECT_EQ(dtype_block_size(DType::Q4_K), 256u);
  EXPECT_EQ(dtype_block_bytes(DType::Q4_K), 144u);
  EXPECT_EQ(dtype_block_bytes(DType::Q5_K), 176u);
  EXPECT_EQ(dtype_block_bytes(DType::Q6_K), 210u);
  EXPECT_STREQ(dtype_name(DType::Q5_K), "q5_k");
  EXPECT_TRUE(dtype_is_quantized(DType::Q6_K));
  EXPECT_EQ(dtype_bytes(DType::Q6_K, 512), 420u);
  EXPECT_THROW(dtype_bytes(DType::Q4_K, 128), Error);
}

TEST(KQuants, ScalesUnpackAndPackAsTheLayoutSays) {
  uint8_t scale[8], min[8], packed[12];
  kquant::unpack_scales(kPacked, scale, min);
  for (int j = 0; j < 8; ++j) {
    EXPECT_EQ(scale[j], kScale[j]) << j;
    EXPECT_EQ(min[j], kMin[j]) << j;
  }
  kquant::pack_scales(kScale, kMin, packed);
  EXPECT_EQ(std::vector<uint8_t>(packed, packed + 12), std::vector<uint8_t>(kPacked, kPacked + 12));
}

// Values worked out by hand, e.g. Q4_K value 250: group c = 3, position 58 → l = 26, byte
// qs[96 + 26] = 173 = 0xAD, high nibble 10; sub-block 7 (scale 63, min 49):
// 0.5·63·10 − 0.25·49 = 302.75.
TEST(KQuants, Q4KDecodesHandMadeBlock) {
  auto b = q4k_block();
  std::vector<float> y(256);
  dequantize(DType::Q4_K, b.data(), y.data(), 256);
  EXPECT_EQ(y[0], 5.5f);      // qs[0] = 0x0B low 11; sub-block 0 (scale 1, min 0): 0.5·1·11
  EXPECT_EQ(y[33], 1.75f);    // qs[1] = 0x30 high 3; sub-block 1 (scale 2, min 5): 0.5·2·3 − 1.25
  EXPECT_EQ(y[200], 76.25f);  // qs[104] = 0x13 low 3; sub-block 6 (scale 52, min 7): 78 − 1.75
  EXPECT_EQ(y[250], 302.75f);
  // Every value from the index formula of the layout.
  for (size_t v = 0; v < 256; ++v) {
    const size_t c = v / 64, l = v % 32, j = v / 32;
    const uint8_t byte = pattern_a(32 * c + l);
    const int level = (v % 64) < 32 ? byte & 15 : byte >> 4;
    EXPECT_EQ(y[v], 0.5f * kScale[j] * level - 0.25f * kMin[j]) << v;
  }
}

TEST(KQuants, Q5KDecodesHandMadeBlock) {
  auto b = q5k_block();
  std::vector<float> y(256);
  dequantize(DType::Q5_K, b.data(), y.data(), 256);
  EXPECT_EQ(y[250], 806.75f);  // qs[122] high 10, qh[26] = 182 bit 7 set → 26; 0.5·63·26 − 12.25
  EXPECT_EQ(y[200], 76.25f);   // qh[8] = 56 bit 6 clear → level 3
  EXPECT_EQ(y[65], 21.5f);     // qs[33] = 0xD0 low 0, qh[1] = 7 bit 2 set → 16; 0.5·3·16 − 2.5
  for (size_t v = 0; v < 256; ++v) {
    const size_t c = v / 64, l = v % 32, j = v / 32;
    const bool high = (v % 64) >= 32;
    const uint8_t byte = pattern_a(32 * c + l);
    const int level = (high ? byte >> 4 : byte & 15) | (((pattern_b(l) >> (2 * c + high)) & 1) << 4);
    EXPECT_EQ(y[v], 0.5f * kScale[j] * level - 0.25f * kMin[j]) << v;
  }
}

TEST(KQuants, Q6KDecodesHandMadeBlock) {
  auto b = q6k_block();
  std::vector<float> y(256);
  dequantize(DType::Q6_K, b.data(), y.data(), 256);
  EXPECT_EQ(y[0], 367.5f);    // ql[0] = 0x0B low 11, qh[0] bits 0–1 = 0 → −21; scale −70; 0.25·−70·−21
  EXPECT_EQ(y[40], -39.0f);   // ql[40] = 0xD3 low 3, qh[8] = 56 bits 2–3 = 2 → 35 − 32 = 3; scale −52
  EXPECT_EQ(y[130], 2.5f);    // ql[66] = 0x95 low 5, qh[34] = 238 bits 0–1 = 2 → 5; scale 2
  EXPECT_EQ(y[200], -85.5f);  // ql[72] = 0x73 high 7, qh[40] = 24 bits 4–5 = 1 → −9; scale 38
  EXPECT_EQ(y[255], 97.5f);   // ql[127] = 0x66 high 6, qh[63] = 185 bits 6–7 = 2 → 6; scale 65
}

TEST(KQuants, LevelsPackAndUnpackInverse) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> u(0, 255);
  uint8_t q[256];
  int8_t got[256], s[256];
  std::vector<uint8_t> block(210);
  for (int i = 0; i < 256; ++i) q[i] = static_cast<uint8_t>(u(rng) & 15);
  kquant::pack_q4_k(q, block.data());
  kquant::levels_q4_k(block.data(), got);
  for (int i = 0; i < 256; ++i) ASSERT_EQ(got[i], q[i]) << i;
  for (int i = 0; i < 256; ++i) q[i] = static_cast<uint8_t>(u(rng) & 31);
  kquant::pack_q5_k(q, block.data());
  kquant::levels_q5_k(block.data(), got);
  for (int i = 0; i < 256; ++i) ASSERT_EQ(got[i], q[i]) << i;
  for (int i = 0; i < 256; ++i) s[i] = static_cast<int8_t>((u(rng) & 63) - 32);
  kquant::pack_q6_k(s, block.data());
  kquant::levels_q6_k(block.data(), got);
  for (int i = 0; i < 256; ++i) ASSERT_EQ(got[i], s[i]) << i;
}

TEST(KQuants, Q8KActivationsAsGgml) {
  std::vector<float> x(256);
  for (int i = 0; i < 256; ++i) x[i] = std::sin(0.1f * i) * (i == 77 ? 3.0f : 1.0f);
  cpu::Q8KBlock b;
  cpu::quantize_q8_k(x.data(), 256, &b);
  EXPECT_EQ(b.q[77], -127);  // the value of largest magnitude maps to −127
  EXPECT_FLOAT_EQ(b.d, x[77] / -127.0f);
  for (int g = 0; g < 16; ++g) {
    int s = 0;
    for (int l = 0; l < 16; ++l) s += b.q[16 * g + l];
    EXPECT_EQ(b.bsums[g], s);
  }
  for (int i = 0; i < 256; ++i) EXPECT_LE(std::fabs(b.q[i] * b.d - x[i]), std::fabs(b.d) / 2 + 1e-6f) << i;
  std::vector<float> zero(256, 0.0f);
  cpu::quantize_q8_k(zero.data(), 256, &b);
  EXPECT_EQ(b.d, 0.0f);
  EXPECT_EQ(b.q[0], 0);
}

// Random blocks with sane fp16 scales: the integer product equals Σ dequant(w)·dequant(q8k(x))
// up to float summation.
TEST(KQuants, MatmulMatchesDequantizedReference) {
  std::mt19937 rng(9);
  std::uniform_int_distribution<int> byte(0, 255);
  std::normal_distribution<float> gauss;
  const size_t in = 512, out = 5;
  for (DType type : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    const size_t bb = dtype_block_bytes(type);
    std::vector<uint8_t> W(out * dtype_bytes(type, in));
    for (auto& b : W) b = static_cast<uint8_t>(byte(rng));
    for (size_t b = 0; b < W.size() / bb; ++b) {
      const uint16_t d = fp32_to_fp16(0.001f * (1 + b % 3)), dmin = fp32_to_fp16(0.002f);
      if (type == DType::Q6_K) {
        std::memcpy(&W[b * bb + 208], &d, 2);
      } else {
        std::memcpy(&W[b * bb], &d, 2);
        std::memcpy(&W[b * bb + 2], &dmin, 2);
      }
    }
    std::vector<float> Wf(out * in);
    dequantize(type, W.data(), Wf.data(), Wf.size());
    for (size_t T : {1, 3}) {
      std::vector<float> X(T * in), Y(T * out);
      for (float& v : X) v = gauss(rng);
      cpu::matmul(X.data(), T, {type, W.data(), out, in}, Y.data());
      for (size_t t = 0; t < T; ++t) {
        std::vector<cpu::Q8KBlock> q(in / 256);
        cpu::quantize_q8_k(&X[t * in], in, q.data());
        for (size_t o = 0; o < out; ++o) {
          double ref = 0, magnitude = 0;
          for (size_t i = 0; i < in; ++i) {
            const double term = double(Wf[o * in + i]) * q[i / 256].d * q[i / 256].q[i % 256];
            ref += term;
            magnitude += std::fabs(term);
          }
          ASSERT_NEAR(Y[t * out + o], ref, 1e-5 * magnitude + 1e-6) << dtype_name(type) << " T=" << T;
        }
      }
    }
  }
}

TEST(KQuants, MatmulRejectsRowsThatAreNotWholeSuperBlocks) {
  std::vector<uint8_t> W(144);
  std::vector<float> X(128), Y(1);
  EXPECT_THROW(cpu::matmul(X.data(), 1, {DType::Q4_K, W.data(), 1, 128}, Y.data()), Error);
}

}  // namespace
}  // namespace rwkv
