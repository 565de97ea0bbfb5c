// Converting to our native GGUF form: every tiny model gives bit-identical logits after
// .bin → GGUF → load, type conversion behaves, and the written metadata is what llama.cpp reads.
#include <algorithm>
#include <cmath>
#include <utility>

#include "io/gguf.hpp"
#include "model/gguf_model.hpp"
#include "model/model.hpp"
#include "test_util.hpp"

namespace rwkv {
namespace {

using test::logits_all;

const std::vector<int32_t> kTokens = {84, 104, 105, 115, 32, 105, 115, 34, 105, 110};

class GgufConvert : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufConvert, BinToGgufGivesBitIdenticalLogits) {
  test::TempDir dir;
  const std::string in = test::data_path("rwkv_cpp_tiny/tiny-rwkv-" + GetParam() + ".bin");
  Weights w = load_weights(in);
  save_gguf(w, dir.file("m.gguf"), SaveType::Keep);
  auto a = Model::load(in);
  auto b = Model::load(dir.file("m.gguf"));
  EXPECT_EQ(b->weights().format, "GGUF v3");
  EXPECT_EQ(a->hparams().version_name(), b->hparams().version_name());
  EXPECT_EQ(a->hparams().group_norm_eps, b->hparams().group_norm_eps);
  EXPECT_EQ(a->parameter_count(), b->parameter_count());
  EXPECT_EQ(logits_all(*a, kTokens), logits_all(*b, kTokens));
}

INSTANTIATE_TEST_SUITE_P(Tiny, GgufConvert,
                         ::testing::Values("4v0-660K-FP32", "5v1-730K-FP16", "5v2-730K-Q5_1", "6v0-1m-FP32",
                                           "6v0-3m-Q5_0", "7v0-834K-FP32", "7v0-834K-Q5_1"),
                         [](const auto& p) {
                           std::string n = p.param;
                           for (char& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST(GgufConvert, HalfTypesConvertTheLargeMatricesOnly) {
  test::TempDir dir;
  Weights w = load_weights(test::data_path("rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin"));
  auto ref = logits_all(*Model::from_weights(w), kTokens);
  for (SaveType type : {SaveType::F16, SaveType::BF16}) {
    save_gguf(w, dir.file("h.gguf"), type);
    GgufFile f = read_gguf(dir.file("h.gguf"));
    const DType want = type == SaveType::F16 ? DType::F16 : DType::BF16;
    EXPECT_EQ(f.tensors.get("blk.3.time_mix_key.weight").dtype, want);
    EXPECT_EQ(f.tensors.get("output.weight").dtype, want);
    EXPECT_EQ(f.tensors.get("blk.3.time_mix_a1.weight").dtype, want);
    EXPECT_EQ(f.tensors.get("blk.3.time_mix_w1.weight").dtype, DType::F32);  // llama.cpp keeps it
    EXPECT_EQ(f.tensors.get("blk.3.time_mix_lerp_fused.weight").dtype, DType::F32);
    EXPECT_EQ(f.tensors.get("blk.3.attn_norm.weight").dtype, DType::F32);
    // Every weight of this model is bf16-representable (TINY_MODELS.md §6): no loss either way.
    auto got = logits_all(*Model::load(dir.file("h.gguf")), kTokens);
    for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(got[i], ref[i], 1e-5) << i;
  }
}

// The largest |a − b| over two logits vectors, and the largest |a|.
std::pair<double, double> max_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::fabs(double(a[i])));
  }
  return {diff, scale};
}

// llama.cpp's RWKV-6 files are pre-scaled (formats.md trap T3): layer l's output projection and
// FFN value divided by 2^⌊l/6⌋, rwkv6.rescale_every_n_layers = 6, and the hidden state halved
// after every 6th layer. Such a file gives the unscaled model's logits (up to the layer norms'
// eps, which does not scale with the state); the same weights without the halving do not.
TEST(GgufConvert, PrescaledRwkv6FilesGiveTheUnscaledLogits) {
  test::TempDir dir;
  const Weights w = load_weights(test::data_path("rwkv_cpp_tiny/tiny-rwkv-6v0-1m-FP32.bin"));
  ASSERT_EQ(w.hp.n_layer, 12);
  const auto ref = logits_all(*Model::from_weights(w), kTokens);
  Weights scaled = w;
  scaled.hp.rescale_every = 6;
  for (Tensor& t : scaled.tensors.tensors())
    for (int l = 6; l < w.hp.n_layer; ++l)
      if (t.name == Weights::layer(l, "time_mix_output.weight") || t.name == Weights::layer(l, "channel_mix_value.weight")) {
        std::vector<float> v = t.to_f32();
        for (float& x : v) x = std::ldexp(x, -(l / 6));
        t = make_f32_tensor(t.name, t.shape, std::move(v));
      }
  save_gguf(scaled, dir.file("s.gguf"), SaveType::Keep);
  EXPECT_EQ(read_gguf(dir.file("s.gguf")).get_uint("rwkv6.rescale_every_n_layers"), 6u);
  const auto [diff, scale] = max_difference(logits_all(*Model::load(dir.file("s.gguf")), kTokens), ref);
  EXPECT_LT(diff, 1e-4 * scale);
  scaled.hp.rescale_every = 0;
  const auto [wrong, unused] = max_difference(logits_all(*Model::from_weights(scaled), kTokens), ref);
  EXPECT_GT(wrong, 1e-2 * scale);
}

TEST(GgufConvert, WritesTheKeysLlamaCppReads) {
  test::TempDir dir;
  Weights w = load_weights(test::data_path("rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin"));
  save_gguf(w, dir.file("m.gguf"), SaveType::Keep);
  GgufFile f = read_gguf(dir.file("m.gguf"));
  EXPECT_EQ(f.get_string("general.architecture"), "rwkv7");
  EXPECT_EQ(f.find("rwkv7.block_count")->type(), GgufType::U32);
  EXPECT_EQ(f.get_uint("rwkv7.block_count"), 12u);
  EXPECT_EQ(f.get_uint("rwkv7.embedding_length"), 64u);
  EXPECT_EQ(f.get_uint("rwkv7.feed_forward_length"), 256u);
  EXPECT_EQ(f.get_uint("rwkv7.wkv.head_size"), 64u);
  EXPECT_EQ(f.get_uint("rwkv7.attention.decay_lora_rank"), 32u);
  EXPECT_EQ(f.find("rwkv7.attention.layer_norm_epsilon")->type(), GgufType::F32);
  // Layer-0 dummies with the a-LoRA's shapes, as llama.cpp's loader requires.
  EXPECT_EQ(f.tensors.get("blk.0.time_mix_v1.weight").shape, f.tensors.get("blk.0.time_mix_a1.weight").shape);
  EXPECT_EQ(f.tensors.get("blk.0.time_mix_lerp_fused.weight").shape, (std::vector<int64_t>{6, 1, 1, 64}));
  EXPECT_EQ(f.tensors.get("blk.0.time_mix_r_k.weight").shape, (std::vector<int64_t>{64}));

  Weights v5 = load_weights(test::data_path("rwkv_cpp_tiny/tiny-rwkv-5v1-730K-FP32.bin"));
  save_gguf(v5, dir.file("v5.gguf"), SaveType::Keep);
  GgufFile g = read_gguf(dir.file("v5.gguf"));
  EXPECT_EQ(g.get_string("general.architecture"), "rwkv");
  EXPECT_EQ(g.get_uint("rwkv.architecture_version"), 5u);
  EXPECT_FLOAT_EQ(static_cast<float>(*g.get_float("rwkv.attention.group_norm_epsilon")), 1e-5f);
}

TEST(GgufConvert, InconsistentKeysAndShapesAreRefusedByName) {
  test::TempDir dir;
  Weights w = load_weights(test::data_path("rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin"));
  // A tensor with a wrong shape: the message names it.
  Weights bad = w;
  for (Tensor& t : bad.tensors.tensors())
    if (t.name == "blk.2.time_mix_key.weight") t.shape = {32, 128};
  save_gguf(bad, dir.file("bad.gguf"), SaveType::Keep);
  try {
    Model::load(dir.file("bad.gguf"));
    FAIL() << "loaded a model with a wrongly shaped tensor";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.2.time_mix_key.weight"), std::string::npos) << e.what();
  }
  // A block_count key that disagrees with the tensors.
  GgufFile f = read_gguf(dir.file("bad.gguf"));
  GgufMetadata md = f.metadata;
  for (auto& [k, v] : md)
    if (k == "rwkv7.block_count") v = GgufValue::u32(13);
  write_gguf(dir.file("keys.gguf"), md, w.tensors.tensors());
  EXPECT_THROW(Model::load(dir.file("keys.gguf")), Error);
}

}  // namespace
}  // namespace rwkv
