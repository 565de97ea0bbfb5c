// Quantizing: ggml's reference rounding for the 32-value types (hand-made blocks and rwkv.cpp's
// own quantized files), error bounds of every type on gaussian data, bad input, which tensors
// a quantized file quantizes, and whole models (the tiny rwkv.cpp models and a 256-wide
// RWKV-7 whose matrices are all K-quants) against their float logits; `rwkv quantize`.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <regex>

#include "io/error.hpp"
#include "io/gguf.hpp"
#include "io/quantize.hpp"
#include "kernels/cpu/ops.hpp"
#include "model/gguf_model.hpp"
#include "model/init.hpp"
#include "model/model.hpp"
#include "model/perplexity.hpp"
#include "test_util.hpp"

namespace rwkv {
namespace {

using test::tiny;

const std::vector<DType> kBlockTypes = {DType::Q8_0, DType::Q5_0, DType::Q5_1, DType::Q4_0,
                                        DType::Q4_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::vector<float> round_trip(DType t, const std::vector<float>& x) {
  const auto bytes = quantize(t, x.data(), x.size());
  EXPECT_EQ(bytes.size(), dtype_bytes(t, x.size()));
  std::vector<float> y(x.size());
  dequantize(t, bytes.data(), y.data(), y.size());
  return y;
}

double relative_rms_error(const std::vector<float>& x, const std::vector<float>& y) {
  double e = 0, s = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    e += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
    s += double(x[i]) * x[i];
  }
  return std::sqrt(e / s);
}

uint16_t f16_at(const std::vector<uint8_t>& b, size_t i) { return static_cast<uint16_t>(b[i] | (b[i + 1] << 8)); }
uint32_t u32_at(const std::vector<uint8_t>& b, size_t i) {
  return uint32_t(b[i]) | uint32_t(b[i + 1]) << 8 | uint32_t(b[i + 2]) << 16 | uint32_t(b[i + 3]) << 24;
}

// ---- the 32-value types: ggml's reference rounding, worked out by hand

TEST(Quantize, Q8_0HandMadeBlock) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);  // amax 16: d = 16/127
  const auto b = quantize(DType::Q8_0, x.data(), 32);
  EXPECT_EQ(f16_at(b, 0), fp32_to_fp16(16.0f / 127));
  EXPECT_EQ(static_cast<int8_t>(b[2 + 0]), -127);
  EXPECT_EQ(static_cast<int8_t>(b[2 + 17]), 8);     // 1·127/16 = 7.94
  EXPECT_EQ(static_cast<int8_t>(b[2 + 31]), 119);   // 15·127/16 = 119.06
}

TEST(Quantize, Q4_0HandMadeBlockRoundsHalfUp) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = 0.5f * static_cast<float>(j - 16);  // −8 … 7.5: d = −8/−8 = 1
  const auto b = quantize(DType::Q4_0, x.data(), 32);
  EXPECT_EQ(f16_at(b, 0), 0x3C00);  // 1.0
  // level = (int)(x + 8.5), capped at 15: x[0] = −8 → 0, x[1] = −7.5 → 1, x[16] = 0 → 8,
  // x[17] = 0.5 → 9, x[31] = 7.5 → 16 → 15.
  EXPECT_EQ(b[2 + 0], 0x80);
  EXPECT_EQ(b[2 + 1], 0x91);
  EXPECT_EQ(b[2 + 15], 0xF8);
}

TEST(Quantize, Q4_1HandMadeBlock) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = 1.0f + 0.5f * static_cast<float>(j % 16);  // min 1, max 8.5: d = 0.5
  const auto b = quantize(DType::Q4_1, x.data(), 32);
  EXPECT_EQ(f16_at(b, 0), 0x3800);  // d = 7.5/15 = 0.5
  EXPECT_EQ(f16_at(b, 2), 0x3C00);  // m = 1
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b[4 + j], j | j << 4) << j;
}

TEST(Quantize, Q5_0HandMadeBlock) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = 0.5f * static_cast<float>(j - 16);  // d = −8/−16 = 0.5, level = j
  const auto b = quantize(DType::Q5_0, x.data(), 32);
  EXPECT_EQ(f16_at(b, 0), 0x3800);
  EXPECT_EQ(u32_at(b, 2), 0xFFFF0000u);  // levels 16..31 (the second half) have the 5th bit
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b[6 + j], j | j << 4) << j;
}

TEST(Quantize, Q5_1HandMadeBlock) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = 0.5f * static_cast<float>(j) - 3;  // min −3, max 12.5: d = 0.5
  const auto b = quantize(DType::Q5_1, x.data(), 32);
  EXPECT_EQ(f16_at(b, 0), 0x3800);
  EXPECT_EQ(f16_at(b, 2), 0xC200);  // −3
  EXPECT_EQ(u32_at(b, 4), 0xFFFF0000u);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b[8 + j], j | j << 4) << j;
}

// rwkv.cpp's Q5_0/Q5_1 files were quantized by ggml from the FP32 ones: quantizing the FP32
// matrices again gives the same bytes.
TEST(Quantize, ReproducesRwkvCppQuantizedFiles) {
  for (const std::string model : {"4v0-660K", "7v0-834K"}) {
    const Weights f32 = load_weights(tiny(model + "-FP32"));
    for (const std::string type : {"Q5_0", "Q5_1"}) {
      const Weights q = load_weights(tiny(model + "-" + type));
      size_t compared = 0;
      for (const Tensor& t : q.tensors.tensors()) {
        if (!dtype_is_quantized(t.dtype)) continue;
        const auto values = f32.get(t.name).to_f32();
        const auto bytes = quantize(t.dtype, values.data(), values.size());
        ASSERT_EQ(bytes, std::vector<uint8_t>(t.data, t.data + t.nbytes())) << model << " " << type << " " << t.name;
        ++compared;
      }
      EXPECT_GT(compared, 10u) << model << " " << type;
    }
  }
}

// ---- error bounds on gaussian data (values printed for docs/FORMATS.md)

TEST(Quantize, GaussianErrorBounds) {
  std::mt19937 rng(11);
  std::normal_distribution<float> gauss;
  std::vector<float> x(256 * 64);
  for (float& v : x) v = gauss(rng);
  std::map<DType, double> err;
  for (DType t : kBlockTypes) {
    err[t] = relative_rms_error(x, round_trip(t, x));
    std::printf("  %s: relative RMS error %.4f\n", dtype_name(t), err[t]);
  }
  // Q8_0: half a level of amax/127 (amax ≈ 2.1σ in a block of 32) is already 0.48%; ggml's
  // rounding measures 0.53% here.
  EXPECT_LT(err[DType::Q8_0], 0.006);
  EXPECT_LT(err[DType::Q6_K], 0.02);
  EXPECT_LT(err[DType::Q5_0], 0.05);
  EXPECT_LT(err[DType::Q5_1], 0.05);
  EXPECT_LT(err[DType::Q5_K], 0.04);
  EXPECT_LT(err[DType::Q4_0], 0.10);
  EXPECT_LT(err[DType::Q4_1], 0.10);
  EXPECT_LT(err[DType::Q4_K], 0.08);
  EXPECT_LT(err[DType::Q4_K], err[DType::Q4_0]);
  EXPECT_LT(err[DType::Q4_K], err[DType::Q4_1]);
  EXPECT_LT(err[DType::Q5_K], err[DType::Q5_0]);
  EXPECT_LT(err[DType::Q6_K], err[DType::Q5_K]);
  // Float types: exact for f32, half-precision rounding otherwise.
  EXPECT_EQ(round_trip(DType::F32, x), x);
  EXPECT_LT(relative_rms_error(x, round_trip(DType::F16, x)), 1e-3);
  EXPECT_LT(relative_rms_error(x, round_trip(DType::BF16, x)), 5e-3);
}

// Rows with a shifted mean and widely different scales per sub-block stay accurate with the
// K-quants' per-sub-block scales and minimums.
TEST(Quantize, KQuantsFollowSubBlockScalesAndOffsets) {
  std::mt19937 rng(12);
  std::normal_distribution<float> gauss;
  std::vector<float> x(256 * 16);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.3f + gauss(rng) * std::pow(2.0f, static_cast<float>((i / 32) % 5) - 2);
  for (DType t : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    const double e = relative_rms_error(x, round_trip(t, x));
    EXPECT_LT(e, t == DType::Q4_K ? 0.1 : t == DType::Q5_K ? 0.05 : 0.03) << dtype_name(t);
  }
}

TEST(Quantize, SpecialBlocksDecodeSanely) {
  std::vector<std::vector<float>> cases = {
      std::vector<float>(256, 0.0f), std::vector<float>(256, 2.5f), std::vector<float>(256, -1.0f), {}, {}};
  cases[3].assign(256, 0.0f);
  cases[3][100] = 1e4f;  // one huge value
  cases[4].resize(256);
  for (size_t i = 0; i < 256; ++i) cases[4][i] = 1e-7f * static_cast<float>(i % 7);  // below fp16's range
  for (DType t : kBlockTypes)
    for (size_t c = 0; c < cases.size(); ++c) {
      const auto y = round_trip(t, cases[c]);
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_TRUE(std::isfinite(y[i])) << dtype_name(t) << " case " << c;
        // Constant blocks are exact up to fp16 rounding; others within their largest value.
        if (c <= 2) {
          ASSERT_NEAR(y[i], cases[c][i], 2e-3 * std::fabs(cases[c][i]) + 1e-6) << dtype_name(t) << " " << c;
        }
        ASSERT_LE(std::fabs(y[i]), 1.01f * 1e4f);
      }
      if (c == 0) {
        for (float v : y) ASSERT_EQ(v, 0.0f) << dtype_name(t);
      }
    }
}

TEST(Quantize, BadInputIsAOneLineError) {
  std::vector<float> x(300, 1.0f);
  auto expect_error = [](auto&& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(needle), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  };
  expect_error([&] { quantize(DType::Q4_K, x.data(), 300); }, "300 values to q4_k: not a multiple of its block size 256");
  expect_error([&] { quantize(DType::Q8_0, x.data(), 33); }, "not a multiple of its block size 32");
  expect_error([&] { quantize(DType::I32, x.data(), 32); }, "cannot quantize to i32");
  x[5] = std::nanf("");
  expect_error([&] { quantize(DType::Q4_0, x.data(), 32); }, "value 5 is nan");
  expect_error([] { storable_type_from_name("q3_k"); }, "unknown type 'q3_k'");
  EXPECT_EQ(storable_type_from_name("q6_k"), DType::Q6_K);
  EXPECT_EQ(storable_type_from_name("bf16"), DType::BF16);
}

// ---- which tensors a quantized file quantizes

TEST(QuantizePolicy, LargeMatricesOnlyWithLlamaCppFallbacks) {
  static const std::regex large(
      R"(token_embd\.weight|output\.weight|blk\.\d+\.(time_mix_(key|value|receptance|output|gate)|channel_mix_(key|value|receptance))\.weight)");
  const QuantizeTypes q4k{DType::Q4_K, DType::Q4_K, DType::Q4_K};
  for (const std::string model : {"4v0-660K-FP32", "5v1-730K-FP32", "5v2-730K-FP16", "6v0-1m-FP32", "7v0-834K-FP32", "6v0-3m-Q5_1"}) {
    const Weights w = load_weights(tiny(model));
    for (const Tensor& t : w.tensors.tensors()) {
      const bool want = std::regex_match(t.name, large);
      EXPECT_EQ(is_quantizable(t), want) << model << " " << t.name;
      const DType got = quantized_type(t, q4k);
      if (!want) {
        EXPECT_EQ(got, dtype_is_quantized(t.dtype) ? DType::F32 : t.dtype) << model << " " << t.name;
      } else if (t.shape.back() % 256 == 0) {
        EXPECT_EQ(got, DType::Q4_K) << model << " " << t.name;
      } else {
        EXPECT_EQ(got, DType::Q5_0) << model << " " << t.name;  // llama.cpp's fallback
      }
    }
  }
  Tensor odd = make_f32_tensor("blk.0.channel_mix_key.weight", {4, 48}, std::vector<float>(192));
  EXPECT_EQ(quantized_type(odd, q4k), DType::F16);  // 48 is not a multiple of 32 either
  EXPECT_EQ(quantized_type(odd, {DType::Q8_0, DType::Q8_0, DType::Q8_0}), DType::F16);
  EXPECT_EQ(quantized_type(odd, {DType::BF16, DType::Q8_0, DType::Q8_0}), DType::BF16);
  Tensor head = make_f32_tensor("output.weight", {4, 256}, std::vector<float>(1024));
  EXPECT_EQ(quantized_type(head, {DType::Q4_K, DType::Q6_K, DType::Q8_0}), DType::Q6_K);
  Tensor emb = make_f32_tensor("token_embd.weight", {4, 256}, std::vector<float>(1024));
  EXPECT_EQ(quantized_type(emb, {DType::Q4_K, DType::Q6_K, DType::Q8_0}), DType::Q8_0);
}

TEST(QuantizePolicy, WrittenFileHasTheTypesAndProgressSeesEveryTensor) {
  test::TempDir dir;
  const Weights w = load_weights(tiny("7v0-834K-FP32"));
  size_t calls = 0, count = 0;
  save_gguf(w, dir.file("q.gguf"), QuantizeTypes{DType::Q4_K, DType::Q6_K, DType::Q8_0},
            [&](size_t i, size_t n, const Tensor&, DType) {
              EXPECT_EQ(i, calls);
              ++calls;
              count = n;
            });
  EXPECT_EQ(calls, count);
  EXPECT_EQ(count, w.tensors.size() + 3);  // and RWKV-7's layer-0 v0/v1/v2 dummies
  GgufFile f = read_gguf(dir.file("q.gguf"));
  EXPECT_EQ(f.tensors.get("blk.0.time_mix_key.weight").dtype, DType::Q5_0);      // row 64
  EXPECT_EQ(f.tensors.get("blk.0.channel_mix_value.weight").dtype, DType::Q4_K);  // row 256
  EXPECT_EQ(f.tensors.get("output.weight").dtype, DType::Q8_0);                   // q6_k falls back
  EXPECT_EQ(f.tensors.get("token_embd.weight").dtype, DType::Q8_0);
  EXPECT_EQ(f.tensors.get("blk.0.time_mix_a1.weight").dtype, DType::F32);
  EXPECT_EQ(f.get_uint("general.quantization_version"), 2u);
}

TEST(QuantizePolicy, TruncatedQuantizedTensorIsAOneLineError) {
  test::TempDir dir;
  save_gguf(load_weights(tiny("7v0-834K-FP32")), dir.file("q.gguf"), QuantizeTypes{DType::Q4_K, DType::Q4_K, DType::Q4_K});
  auto bytes = test::read_bytes(dir.file("q.gguf"));
  // The last tensor in the file is a K-quant one? Cut into the middle of the data either way.
  for (size_t cut : {bytes.size() - 1, bytes.size() - 100, bytes.size() / 2}) {
    test::write_bytes(dir.file("t.gguf"), std::vector<uint8_t>(bytes.begin(), bytes.begin() + cut));
    try {
      Model::load(dir.file("t.gguf"));
      ADD_FAILURE() << "loaded a file cut at " << cut;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
      EXPECT_NE(m.find("t.gguf"), std::string::npos) << m;
    }
  }
}

// ---- whole models

using test::logits_all;

struct Deviation {
  float max_abs = 0;
  double rms = 0;         // root mean square of the logit differences
  double top1_agree = 0;  // fraction of positions with the same top token
};

Deviation compare(const std::vector<float>& ref, const std::vector<float>& got, size_t V) {
  Deviation d;
  size_t same = 0;
  for (size_t p = 0; p < ref.size() / V; ++p) {
    auto a = ref.begin() + p * V, b = got.begin() + p * V;
    same += std::max_element(a, a + V) - a == std::max_element(b, b + V) - b;
    for (size_t i = 0; i < V; ++i) {
      d.max_abs = std::max(d.max_abs, std::fabs(a[i] - b[i]));
      d.rms += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    }
  }
  d.rms = std::sqrt(d.rms / double(ref.size()));
  d.top1_agree = double(same) / double(ref.size() / V);
  return d;
}

using test::kPrompt70;

// Every tiny model, FP32 → quantized GGUF → logits after each of 70 bytes against the FP32
// model's. The tiny models are 64/128 wide, so their K-quant files are mostly the 32-value
// fallbacks (only the 256-wide FFN value matrices are Q4_K). These models are very sensitive
// to weight noise (rwkv.cpp's own Q5_1 files move the v5 logits by up to 0.9); the bounds are
// the measured deviations (printed) with about 50% margin.
TEST(QuantizedModels, TinyModelsStayCloseToFp32) {
  test::TempDir dir;
  const std::vector<int32_t> tokens(kPrompt70, kPrompt70 + 70);
  struct Case {
    std::string model;
    float q8_max, q4k_max;
    double q4k_top1;
  };
  for (const Case& c : {Case{"4v0-660K", 0.13f, 0.55f, 0.9}, Case{"5v1-730K", 1.0f, 2.5f, 0.65},
                        Case{"5v2-730K", 0.4f, 2.0f, 0.8}, Case{"6v0-1m", 0.42f, 1.7f, 0.95},
                        Case{"7v0-834K", 0.05f, 0.2f, 0.95}}) {
    const Weights w = load_weights(tiny(c.model + "-FP32"));
    const auto ref = logits_all(*Model::from_weights(w), tokens);
    for (DType type : {DType::Q8_0, DType::Q4_K}) {
      save_gguf(w, dir.file("q.gguf"), QuantizeTypes{type, type, type});
      const Deviation d = compare(ref, logits_all(*Model::load(dir.file("q.gguf")), tokens), 256);
      std::printf("  %s %s: max |logit - fp32| %.4f, RMS %.4f, same top byte at %.0f%% of positions\n",
                  c.model.c_str(), dtype_name(type), d.max_abs, d.rms, 100 * d.top1_agree);
      if (type == DType::Q8_0) {
        EXPECT_LE(d.max_abs, c.q8_max) << c.model;
        EXPECT_GE(d.top1_agree, 0.95) << c.model;
      } else {
        EXPECT_LE(d.max_abs, c.q4k_max) << c.model;
        EXPECT_GE(d.top1_agree, c.q4k_top1) << c.model;
      }
    }
  }
}

// The CPU-speed issue's accuracy rule: a Q8_0 model (llama.cpp's policy: embedding and head
// quantized too) scores a perplexity within 1% of its float model, on 6 windows of 256 bytes
// of tinyshakespeare: every tiny model, and the model we trained (models/).
TEST(QuantizedModels, Q8_0PerplexityWithinOnePercentOfFloat) {
  test::TempDir dir;
  const auto text = test::read_bytes(test::data_path("corpus/tinyshakespeare_input.txt"));
  const std::vector<int32_t> tokens(text.begin(), text.begin() + 1536);
  std::vector<std::string> files;
  for (const char* m : {"4v0-660K", "5v1-730K", "5v2-730K", "6v0-1m", "7v0-834K"}) files.push_back(tiny(std::string(m) + "-FP32"));
  files.push_back(std::string(RWKV_MODELS_DIR) + "/shakespeare-rwkv7-4x256.gguf");
  for (const std::string& file : files) {
    const Weights w = load_weights(file);
    const double ref = evaluate_perplexity(*Model::from_weights(w), tokens, 256).perplexity();
    save_gguf(w, dir.file("q8.gguf"), QuantizeTypes{DType::Q8_0, DType::Q8_0, DType::Q8_0});
    const double q8 = evaluate_perplexity(*Model::load(dir.file("q8.gguf")), tokens, 256).perplexity();
    std::printf("  %s: perplexity float %.4f, Q8_0 %.4f (%+.3f%%)\n", file.c_str(), ref, q8, 100 * (q8 / ref - 1));
    EXPECT_LT(std::abs(q8 / ref - 1), 0.01) << file;
  }
}

// The same rule for float16 and bfloat16 models read in sequence mode, their products from 16
// tokens on bfloat16 dot products where the CPU has them (cpu::Bf16Dots::All: activations and
// float16 weights rounded to bfloat16): within 0.2% of the float model in float32 arithmetic (on
// Zen 5 at most 0.06%, the float16 5v2; without the dot products float16 0.002% and bfloat16,
// whose weights are rounded as stored, 0.04%).
TEST(QuantizedModels, SixteenBitPerplexityWithinAFifthPercentOfFloat) {
  test::TempDir dir;
  const auto text = test::read_bytes(test::data_path("corpus/tinyshakespeare_input.txt"));
  const std::vector<int32_t> tokens(text.begin(), text.begin() + 1536);
  std::vector<std::string> files;
  for (const char* m : {"4v0-660K", "5v2-730K", "6v0-1m", "7v0-834K"}) files.push_back(tiny(std::string(m) + "-FP32"));
  files.push_back(std::string(RWKV_MODELS_DIR) + "/shakespeare-rwkv7-4x256.gguf");
  for (const std::string& file : files) {
    const Weights w = load_weights(file);
    const auto setting = cpu::set_bf16_dots(cpu::Bf16Dots::Off);  // (the model we trained is float16)
    const double ref = evaluate_perplexity(*Model::from_weights(w), tokens, 256).perplexity();
    cpu::set_bf16_dots(cpu::Bf16Dots::All);
    for (DType type : {DType::F16, DType::BF16}) {
      save_gguf(w, dir.file("h.gguf"), QuantizeTypes{type, type, type});
      const auto model = Model::load(dir.file("h.gguf"));
      const double got = evaluate_perplexity(*model, tokens, 256).perplexity();
      std::printf("  %s: perplexity float %.4f, %s %.4f (%+.4f%%)%s\n", file.c_str(), ref, dtype_name(type), got,
                  100 * (got / ref - 1), cpu::bf16_dots(type) ? " on bfloat16 dot products" : "");
      EXPECT_LT(std::abs(got / ref - 1), 0.002) << file << " " << dtype_name(type);
    }
    cpu::set_bf16_dots(setting);
  }
}

// Our Q5_0 with float embedding and head (what rwkv.cpp quantizes) gives exactly the logits of
// rwkv.cpp's own Q5_0 file: same bytes, same products. (Not 6v0, whose file also has
// quantized low-rank matrices, which llama.cpp's policy keeps in float.)
TEST(QuantizedModels, OurQ5_0EqualsRwkvCppQ5_0) {
  test::TempDir dir;
  const std::vector<int32_t> tokens(kPrompt70, kPrompt70 + 70);
  for (const std::string model : {"4v0-660K", "5v1-730K", "5v2-730K", "7v0-834K"}) {
    save_gguf(load_weights(tiny(model + "-FP32")), dir.file("q.gguf"),
              QuantizeTypes{DType::Q5_0, DType::F32, DType::F32});
    EXPECT_EQ(logits_all(*Model::load(dir.file("q.gguf")), tokens),
              logits_all(*Model::load(tiny(model + "-Q5_0")), tokens))
        << model;
  }
}

// A 256-wide RWKV-7 whose every large matrix (embedding and head included) is a whole number of
// K-quant super-blocks per row: the logits of each K type against float32, with Q8_0 and Q4_0
// for scale. The official initialisation leaves several matrices zero, so they are filled with
// N(0, 1/in) here; this random 2-layer model is sensitive (Q8_0 moves its logits by 1.7% of
// the largest). Bounds: measured RMS deviation (printed) with about 50% margin.
TEST(QuantizedModels, KQuantModelStaysCloseToFp32) {
  test::TempDir dir;
  InitOptions o;
  o.arch = Arch::RWKV7;
  o.n_layer = 2;
  o.n_embd = 256;
  o.vocab_size = 512;
  o.head_size = 64;
  o.seed = 4;
  Weights w = init_weights(o);
  std::mt19937 rng(13);
  for (Tensor& t : w.tensors.tensors())
    if (is_quantizable(t)) {
      std::normal_distribution<float> gauss(0.0f, 1.0f / std::sqrt(static_cast<float>(t.shape.back())));
      std::vector<float> v(t.numel());
      for (float& x : v) x = gauss(rng);
      if (t.name == "token_embd.weight")
        for (float& x : v) x *= 16;
      t = make_f32_tensor(t.name, t.shape, std::move(v));
    }
  w.path = dir.file("k.gguf");
  std::vector<int32_t> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back((i * 97 + 5) % 512);
  const auto ref = logits_all(*Model::from_weights(w), tokens);
  std::map<DType, double> rms;
  for (DType type : {DType::Q8_0, DType::Q6_K, DType::Q5_K, DType::Q4_K, DType::Q4_0}) {
    save_gguf(w, dir.file("q.gguf"), QuantizeTypes{type, type, type});
    GgufFile f = read_gguf(dir.file("q.gguf"));
    EXPECT_EQ(f.tensors.get("blk.1.channel_mix_key.weight").dtype, type);
    EXPECT_EQ(f.tensors.get("token_embd.weight").dtype, type);
    EXPECT_EQ(f.tensors.get("output.weight").dtype, type);
    auto m = Model::load(dir.file("q.gguf"));
    const auto got = logits_all(*m, tokens);
    const Deviation d = compare(ref, got, 512);
    rms[type] = d.rms;
    std::printf("  256-wide RWKV-7 %s: max |logit - fp32| %.4f, RMS %.4f, same top token at %.0f%%\n",
                dtype_name(type), d.max_abs, d.rms, 100 * d.top1_agree);
    // RNN mode gives the same logits as sequence mode for the quantized model too.
    State s = m->new_state();
    std::vector<float> last(512);
    for (int32_t tok : tokens) m->forward(s, {&tok, 1}, Logits::Last, last.data());
    for (size_t i = 0; i < 512; ++i) ASSERT_NEAR(last[i], got[(tokens.size() - 1) * 512 + i], 1e-4f);
  }
  EXPECT_LT(rms[DType::Q8_0], 0.023);
  EXPECT_LT(rms[DType::Q6_K], 0.06);
  EXPECT_LT(rms[DType::Q5_K], 0.12);
  EXPECT_LT(rms[DType::Q4_K], 0.22);
  EXPECT_LT(rms[DType::Q6_K], rms[DType::Q5_K]);
  EXPECT_LT(rms[DType::Q5_K], rms[DType::Q4_K]);
  EXPECT_LT(rms[DType::Q4_K], rms[DType::Q4_0]);
}

// ---- the command

TEST(QuantizeCli, WritesAQuantizedModelAndRefusesUnknownTypes) {
  test::TempDir dir;
  auto r = test::run_cli("quantize " + tiny("7v0-834K-FP16") + " " + dir.file("q.gguf") + " q4_k --head-type q8_0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("q5_0 (fallback)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("q4_k"), std::string::npos) << r.output;
  GgufFile f = read_gguf(dir.file("q.gguf"));
  EXPECT_EQ(f.tensors.get("output.weight").dtype, DType::Q8_0);
  EXPECT_EQ(f.tensors.get("token_embd.weight").dtype, DType::Q5_0);
  EXPECT_EQ(f.tensors.get("blk.2.time_mix_g1.weight").dtype, DType::F16);  // kept as stored
  r = test::run_cli("logits -m " + dir.file("q.gguf") + " -t 34,105,110 -o " + dir.file("l"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = test::run_cli("quantize " + tiny("7v0-834K-FP16") + " " + dir.file("x.gguf") + " q3_k");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("q3_k"), std::string::npos) << r.output;
  r = test::run_cli("quantize " + dir.file("missing.bin") + " " + dir.file("x.gguf") + " q8_0");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("rwkv: error:"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace rwkv
