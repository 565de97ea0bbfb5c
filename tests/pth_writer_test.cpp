// Writing .pth files (io/zip_writer, io/pth_writer, model/state_dict): CRC-32, zip archives
// (ZIP64 too) that our reader lists back with aligned data, a pickle our unpickler reads, and
// new RWKV-4/RWKV-7 models exported under the official names that load back to the same
// canonical tensors and logits.
#include <gtest/gtest.h>

#include <cstring>

#include "io/error.hpp"
#include "io/pth_reader.hpp"
#include "io/pth_writer.hpp"
#include "io/zip_reader.hpp"
#include "io/zip_writer.hpp"
#include "model/init.hpp"
#include "model/model.hpp"
#include "model/state_dict.hpp"
#include "test_util.hpp"

namespace rwkv {
namespace {

using test::TempDir;

std::span<const uint8_t> span_of(const std::string& s) {
  return std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

TEST(PthWriter, Crc32) {
  EXPECT_EQ(crc32(span_of("123456789")), 0xcbf43926u);  // the standard check value
  EXPECT_EQ(crc32(span_of("")), 0u);
  EXPECT_EQ(crc32(span_of("6789"), crc32(span_of("12345"))), 0xcbf43926u);
}

TEST(PthWriter, ZipRoundTripPlainAndZip64) {
  TempDir dir;
  for (bool zip64 : {false, true}) {
    const std::string path = dir.file(zip64 ? "b.zip" : "a.zip");
    ZipWriter z(path, zip64);
    z.add("root/one", span_of("hello"));
    z.add("root/two", span_of(std::string(1000, 'x')), 64);
    z.add("root/empty", span_of(""));
    z.finish();
    const auto archive = test::read_bytes(path);
    const auto entries = list_zip(archive, path);
    ASSERT_EQ(entries.size(), 3u);
    EXPECT_EQ(entries[0].name, "root/one");
    EXPECT_EQ(entries[1].size, 1000u);
    for (const ZipEntry& e : entries) EXPECT_EQ(e.offset % 64, 0u) << e.name;  // aligned data
    auto data = zip_entry_data(archive, entries[0], path);
    EXPECT_EQ(std::string(data.begin(), data.end()), "hello");
    EXPECT_EQ(zip_entry_data(archive, entries[2], path).size(), 0u);
  }
}

TEST(PthWriter, TensorsRoundTrip) {
  TempDir dir;
  std::vector<Tensor> tensors;
  tensors.push_back(make_f32_tensor("a.weight", {2, 3}, {1, 2, 3, 4, 5, 6}));
  tensors.push_back(make_f32_tensor("b", {1, 1, 4}, {-1, 0.5f, 1e30f, -0.0f}));
  tensors.push_back(make_owned_tensor("c", DType::BF16, {2}, {0x80, 0x3f, 0x00, 0xc0}));  // 1, -2
  tensors.push_back(make_f32_tensor("scalar", {}, {7}));
  std::vector<float> big(70000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = float(i);
  tensors.push_back(make_f32_tensor("big", {70000}, big));  // sizes above 65535 (BININT)
  for (bool zip64 : {false, true}) {
    const std::string path = dir.file(zip64 ? "z64.pth" : "t.pth");
    write_pth(path, tensors, {"my_model", zip64});
    const TensorSet back = read_pth(path);
    ASSERT_EQ(back.tensors().size(), tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      const Tensor& a = tensors[i];
      const Tensor& b = back.tensors()[i];
      EXPECT_EQ(b.name, a.name);
      EXPECT_EQ(b.shape, a.shape) << a.name;
      EXPECT_EQ(b.dtype, a.dtype) << a.name;
      ASSERT_EQ(b.nbytes(), a.nbytes()) << a.name;
      EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes()), 0) << a.name;
    }
  }
  EXPECT_THROW(write_pth(dir.file("q.pth"), {make_owned_tensor("q", DType::Q8_0, {32}, std::vector<uint8_t>(34))}),
               Error);
}

void expect_export_round_trip(Arch arch) {
  TempDir dir;
  InitOptions o;
  o.arch = arch;
  o.n_layer = 2;
  o.n_embd = 32;
  o.head_size = 16;
  o.vocab_size = 50;
  o.seed = 3;
  Weights w = init_weights(o);
  // Fresh RWKV-7 models have zero matrices (att.output, w1, ...): give every tensor distinct
  // values so that a swapped or untransposed tensor shows.
  TensorSet varied;
  size_t k = 0;
  for (const Tensor& t : w.tensors.tensors()) {
    std::vector<float> v = t.to_f32();
    for (float& x : v) x += 0.001f * float(++k % 97);
    varied.add(make_f32_tensor(t.name, t.shape, v));
  }
  w.tensors = varied;
  const std::string path = dir.file("m.pth");
  save_pth(w, path);

  // The official names and shapes (spec §2.1, §3.1).
  const TensorSet raw = read_pth(path);
  EXPECT_TRUE(raw.find("emb.weight"));
  EXPECT_TRUE(raw.find("blocks.0.ln0.weight"));
  EXPECT_TRUE(raw.find("head.weight"));
  if (arch == Arch::RWKV7) {
    EXPECT_EQ(raw.get("blocks.1.att.x_a").shape, (std::vector<int64_t>{1, 1, 32}));
    EXPECT_EQ(raw.get("blocks.1.att.r_k").shape, (std::vector<int64_t>{2, 16}));
    const Tensor& w1 = raw.get("blocks.1.att.w1");  // (C, D): stored for x·w1
    EXPECT_EQ(w1.shape[0], 32);
    EXPECT_TRUE(raw.find("blocks.0.att.v1"));  // layer 0's unused value-residual path
  } else {
    EXPECT_EQ(raw.get("blocks.1.att.time_mix_k").shape, (std::vector<int64_t>{1, 1, 32}));
    EXPECT_EQ(raw.get("blocks.1.att.time_decay").shape, (std::vector<int64_t>{32}));
  }

  // Loaded back, the canonical tensors are the same values.
  const Weights back = load_weights(path);
  EXPECT_EQ(back.hp.arch, arch);
  for (const Tensor& t : w.tensors.tensors()) {
    const Tensor* b = back.tensors.find(t.name);
    ASSERT_TRUE(b) << t.name;
    EXPECT_EQ(b->to_f32(), t.to_f32()) << t.name;
  }
  // And the model computes the same logits.
  auto m1 = Model::from_weights(w), m2 = Model::load(path);
  const std::vector<int32_t> tokens = {1, 7, 3, 49, 0};
  std::vector<float> l1(50 * tokens.size()), l2(l1.size());
  State s1 = m1->new_state(), s2 = m2->new_state();
  m1->forward(s1, tokens, Logits::All, l1.data());
  m2->forward(s2, tokens, Logits::All, l2.data());
  EXPECT_EQ(l1, l2);

  // bf16 export: the values rounded, the names the same.
  save_pth(w, dir.file("h.pth"), DType::BF16);
  EXPECT_EQ(read_pth(dir.file("h.pth")).get("emb.weight").dtype, DType::BF16);
}

TEST(PthWriter, Rwkv7ExportLoadsBack) { expect_export_round_trip(Arch::RWKV7); }
TEST(PthWriter, Rwkv4ExportLoadsBack) { expect_export_round_trip(Arch::RWKV4); }

}  // namespace
}  // namespace rwkv
