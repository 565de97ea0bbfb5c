// GGUF container tests: byte-exact round trips for every value type and tensor type, the exact
// byte layout against a hand-assembled file, and rejection of malformed files with one-line errors.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>

#include "io/error.hpp"
#include "io/gguf.hpp"
#include "test_util.hpp"

namespace rwkv {
namespace {

using test::read_bytes;
using test::TempDir;
using test::write_bytes;

// ---- a little-endian byte builder for hand-made files

struct Bytes {
  std::vector<uint8_t> b;
  Bytes& raw(const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
    return *this;
  }
  Bytes& u32(uint32_t v) { return raw(&v, 4); }
  Bytes& u64(uint64_t v) { return raw(&v, 8); }
  Bytes& str(const std::string& s) { return u64(s.size()).raw(s.data(), s.size()); }
  Bytes& append(const Bytes& o) { return raw(o.b.data(), o.b.size()); }
  Bytes& pad(size_t alignment) {
    b.resize((b.size() + alignment - 1) / alignment * alignment, 0);
    return *this;
  }
};

Bytes tensor_info(const std::string& name, const std::vector<uint64_t>& ne, uint32_t type,
                  uint64_t offset) {
  Bytes t;
  t.str(name).u32(static_cast<uint32_t>(ne.size()));
  for (uint64_t n : ne) t.u64(n);
  t.u32(type).u64(offset);
  return t;
}

// magic, version, counts, kv bytes, tensor infos, zero padding to `alignment`, then `data_bytes`
// bytes of data (0x11 each).
std::vector<uint8_t> assemble(uint64_t n_tensors, uint64_t n_kv, const Bytes& kvs,
                              const Bytes& infos, size_t data_bytes, uint32_t version = 3,
                              size_t alignment = 32) {
  Bytes f;
  f.raw("GGUF", 4).u32(version).u64(n_tensors).u64(n_kv).append(kvs).append(infos).pad(alignment);
  f.b.resize(f.b.size() + data_bytes, 0x11);
  return f.b;
}

// One F32 tensor "w" of shape ne (ggml order) at `offset`, and one u32 key.
std::vector<uint8_t> one_tensor_file(const std::vector<uint64_t>& ne = {4}, uint32_t type = 0,
                                     uint64_t offset = 0, size_t data_bytes = 16) {
  Bytes kv;
  kv.str("general.file_type").u32(4).u32(0);
  return assemble(1, 1, kv, tensor_info("w", ne, type, offset), data_bytes);
}

// Writes `bytes`, reads them back and expects an Error whose message is one line naming the
// file and containing every string in `parts`.
void expect_read_error(const std::string& path, const std::vector<uint8_t>& bytes,
                       const std::vector<std::string>& parts) {
  write_bytes(path, bytes);
  try {
    read_gguf(path);
    ADD_FAILURE() << "no error for " << path << " (expected: " << parts[0] << ")";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    for (const std::string& p : parts) EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
  }
}

template <typename F>
void expect_gguf_error(F&& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no error (expected: " << part << ")";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

std::vector<uint8_t> random_bytes(std::mt19937& rng, size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = static_cast<uint8_t>(rng());
  return v;
}

// Metadata using every value type, including arrays of strings, arrays of arrays with mixed
// inner types, empty arrays, empty strings, and float bit patterns that arithmetic would change.
GgufMetadata every_value_type() {
  GgufMetadata m;
  m.emplace_back("general.architecture", GgufValue::str("rwkv7"));
  m.emplace_back("t.u8", GgufValue::u8(250));
  m.emplace_back("t.i8", GgufValue::i8(-7));
  m.emplace_back("t.u16", GgufValue::u16(65000));
  m.emplace_back("t.i16", GgufValue::i16(-30000));
  m.emplace_back("t.u32", GgufValue::u32(4000000000u));
  m.emplace_back("t.i32", GgufValue::i32(-2000000000));
  m.emplace_back("t.f32", GgufValue::f32(1e-5f));
  m.emplace_back("t.f32_nan", GgufValue::f32(std::bit_cast<float>(0x7fc12345u)));
  m.emplace_back("t.f32_negzero", GgufValue::f32(-0.0f));
  m.emplace_back("t.bool_true", GgufValue::boolean(true));
  m.emplace_back("t.bool_false", GgufValue::boolean(false));
  m.emplace_back("t.string_empty", GgufValue::str(""));
  m.emplace_back("t.string_utf8", GgufValue::str("以下 \\x80 \n\t\"'"));
  m.emplace_back("t.u64", GgufValue::u64(std::numeric_limits<uint64_t>::max()));
  m.emplace_back("t.i64", GgufValue::i64(std::numeric_limits<int64_t>::min()));
  m.emplace_back("t.f64", GgufValue::f64(6.4e-4));
  m.emplace_back("t.arr_u8", GgufValue::array(GgufType::U8, {GgufValue::u8(1), GgufValue::u8(255)}));
  m.emplace_back("t.arr_i8", GgufValue::array(GgufType::I8, {GgufValue::i8(-128), GgufValue::i8(127)}));
  m.emplace_back("t.arr_u16", GgufValue::array(GgufType::U16, {GgufValue::u16(1), GgufValue::u16(2)}));
  m.emplace_back("t.arr_i16", GgufValue::array(GgufType::I16, {GgufValue::i16(-1)}));
  m.emplace_back("t.arr_u32", GgufValue::u32_array({1, 2, 3}));
  m.emplace_back("t.arr_i32", GgufValue::i32_array({3, 1, 5, -1}));
  m.emplace_back("t.arr_f32", GgufValue::f32_array({0.5f, -1.25f}));
  m.emplace_back("t.arr_bool", GgufValue::array(GgufType::BOOL, {GgufValue::boolean(true), GgufValue::boolean(false)}));
  m.emplace_back("t.arr_str", GgufValue::str_array({"<s>", "\\n\\n", "", "[PAD65530]"}));
  m.emplace_back("t.arr_u64", GgufValue::u64_array({1ull << 40}));
  m.emplace_back("t.arr_i64", GgufValue::i64_array({-(1ll << 40)}));
  m.emplace_back("t.arr_f64", GgufValue::f64_array({1.0 / 3.0}));
  m.emplace_back("t.arr_empty", GgufValue::array(GgufType::F32, {}));
  m.emplace_back("t.arr_nested",
                 GgufValue::array(GgufType::ARRAY,
                                  {GgufValue::str_array({"a", "bc"}), GgufValue::i32_array({}),
                                   GgufValue::array(GgufType::ARRAY, {GgufValue::u32_array({7})})}));
  return m;
}

// ---- GgufValue

TEST(GgufValue, ScalarsKeepTypeAndValue) {
  EXPECT_EQ(GgufValue::u8(7).type(), GgufType::U8);
  EXPECT_EQ(GgufValue::i8(-7).as_int(), -7);
  EXPECT_EQ(GgufValue::i16(-300).as_int(), -300);
  EXPECT_EQ(GgufValue::u32(5).type(), GgufType::U32);
  EXPECT_EQ(GgufValue::i64(-5).as_int(), -5);
  EXPECT_EQ(GgufValue::f32(1e-5f).as_float(), static_cast<double>(1e-5f));
  EXPECT_EQ(GgufValue::f64(0.1).as_float(), 0.1);
  EXPECT_EQ(GgufValue::boolean(true).as_bool(), true);
  EXPECT_EQ(*GgufValue::str("rwkv7").as_string(), "rwkv7");
  EXPECT_EQ(GgufValue::u32(5).to_string(), "u32 5");
  EXPECT_EQ(GgufValue::str("rwkv7").to_string(), "string \"rwkv7\"");
  EXPECT_EQ(GgufValue::str_array({"a", "b"}).to_string(), "array<string>[2]");
  // Exact type is part of the value: a u32 5 is not a u64 5 (llama.cpp checks types, T16).
  EXPECT_FALSE(GgufValue::u32(5) == GgufValue::u64(5));
  EXPECT_FALSE(GgufValue::f32(0.0f) == GgufValue::f32(-0.0f));
  EXPECT_TRUE(GgufValue::f32(NAN) == GgufValue::f32(NAN));
}

TEST(GgufValue, LenientGettersAcceptEveryIntegerAndFloatType) {
  for (const GgufValue& v : {GgufValue::u8(5), GgufValue::i8(5), GgufValue::u16(5), GgufValue::i16(5),
                             GgufValue::u32(5), GgufValue::i32(5), GgufValue::u64(5), GgufValue::i64(5)}) {
    EXPECT_TRUE(v.is_integer());
    EXPECT_EQ(v.as_uint(), 5u) << v;
    EXPECT_EQ(v.as_int(), 5) << v;
    EXPECT_EQ(v.as_float(), std::nullopt) << v;
  }
  EXPECT_EQ(GgufValue::i32(-1).as_uint(), std::nullopt);
  EXPECT_EQ(GgufValue::u64(std::numeric_limits<uint64_t>::max()).as_int(), std::nullopt);
  EXPECT_EQ(GgufValue::u64(std::numeric_limits<uint64_t>::max()).as_uint(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(GgufValue::boolean(true).as_uint(), std::nullopt);
  EXPECT_EQ(GgufValue::str("5").as_uint(), std::nullopt);
  EXPECT_EQ(GgufValue::f32(5).as_uint(), std::nullopt);
  EXPECT_EQ(GgufValue::u32(5).as_string(), nullptr);
}

TEST(GgufValue, Arrays) {
  GgufValue a = GgufValue::i32_array({3, -1, 5});
  EXPECT_EQ(a.array_type(), GgufType::I32);
  EXPECT_EQ(a.array_size(), 3u);
  EXPECT_EQ(a.array_at(1), GgufValue::i32(-1));
  EXPECT_EQ(a.as_int_array(), (std::vector<int64_t>{3, -1, 5}));
  EXPECT_EQ(a.as_float_array(), std::nullopt);
  EXPECT_EQ(a.as_string_array(), nullptr);
  EXPECT_THROW(a.array_at(3), Error);
  EXPECT_THROW(GgufValue::u32(1).array_size(), Error);

  GgufValue s = GgufValue::str_array({"x", "yz"});
  ASSERT_NE(s.as_string_array(), nullptr);
  EXPECT_EQ(*s.as_string_array(), (std::vector<std::string>{"x", "yz"}));
  EXPECT_EQ(s.array_at(1), GgufValue::str("yz"));

  EXPECT_EQ(GgufValue::f32_array({0.5f, 2.f}).as_float_array(), (std::vector<double>{0.5, 2.0}));
  EXPECT_EQ(GgufValue::u32_array({1, 2}), GgufValue::array(GgufType::U32, {GgufValue::u32(1), GgufValue::u32(2)}));
  EXPECT_FALSE(GgufValue::u32_array({1, 2}) == GgufValue::i32_array({1, 2}));
  expect_gguf_error([] { GgufValue::array(GgufType::U32, {GgufValue::u32(1), GgufValue::i32(2)}); }, "item 1 is i32");

  GgufValue nested = GgufValue::array(GgufType::ARRAY, {GgufValue::str_array({"a"}), GgufValue::f64_array({1.0})});
  EXPECT_EQ(nested.array_size(), 2u);
  EXPECT_EQ(nested.array_at(1).array_type(), GgufType::F64);
}

// ---- round trips

TEST(GgufRoundTrip, EveryValueTypeIsByteIdentical) {
  TempDir dir;
  const GgufMetadata meta = every_value_type();
  const std::string a = dir.file("a.gguf"), b = dir.file("b.gguf");
  write_gguf(a, meta, {});
  GgufFile f = read_gguf(a);
  EXPECT_EQ(f.version, 3u);
  EXPECT_EQ(f.alignment, 32u);
  ASSERT_EQ(f.metadata.size(), meta.size());
  for (size_t i = 0; i < meta.size(); ++i) {
    EXPECT_EQ(f.metadata[i].first, meta[i].first);
    EXPECT_EQ(f.metadata[i].second, meta[i].second) << meta[i].first;
  }
  EXPECT_EQ(f.tensors.size(), 0u);
  write_gguf(b, f.metadata, f.tensors.tensors(), f.alignment);
  EXPECT_EQ(read_bytes(a), read_bytes(b));
  EXPECT_FALSE(std::filesystem::exists(a + ".tmp"));
}

TEST(GgufRoundTrip, EveryTensorTypeIsByteIdenticalAndZeroCopy) {
  TempDir dir;
  std::mt19937 rng(42);
  const std::vector<std::pair<DType, std::vector<int64_t>>> specs = {
      {DType::F32, {5}},          {DType::F16, {3, 7}},        {DType::BF16, {2, 3, 5}},
      {DType::Q8_0, {4, 64}},     {DType::Q5_0, {2, 2, 32}},   {DType::Q5_1, {1, 2, 3, 96}},
      {DType::Q4_0, {32}},        {DType::Q4_1, {3, 2, 1, 32}}, {DType::F64, {3}},
      {DType::I32, {2, 2}},       {DType::I64, {1, 1, 1, 1}},  {DType::F32, {1}},
  };
  std::vector<Tensor> tensors;
  for (size_t i = 0; i < specs.size(); ++i) {
    Tensor shape_only;
    shape_only.dtype = specs[i].first;
    shape_only.shape = specs[i].second;
    tensors.push_back(make_owned_tensor("blk." + std::to_string(i) + "." + dtype_name(specs[i].first),
                                        specs[i].first, specs[i].second,
                                        random_bytes(rng, shape_only.nbytes())));
  }
  GgufMetadata meta = every_value_type();
  const std::string a = dir.file("a.gguf"), b = dir.file("b.gguf");
  write_gguf(a, meta, tensors);

  GgufFile f = read_gguf(a);
  EXPECT_EQ(f.path(), a);
  EXPECT_EQ(f.tensors.source, a);
  EXPECT_EQ(f.data_offset % 32, 0u);
  ASSERT_EQ(f.tensors.size(), tensors.size());
  const uint8_t* map_begin = f.file->data();
  const uint8_t* map_end = map_begin + f.file->size();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& want = tensors[i];
    const Tensor& got = f.tensors.tensors()[i];
    EXPECT_EQ(got.name, want.name);
    EXPECT_EQ(got.dtype, want.dtype) << want.name;
    EXPECT_EQ(got.shape, want.shape) << want.name;
    ASSERT_EQ(got.nbytes(), want.nbytes());
    EXPECT_EQ(std::memcmp(got.data, want.data, want.nbytes()), 0) << want.name;
    // Zero copy: the bytes are the mapping's own, aligned as the file says.
    EXPECT_GE(got.data, map_begin);
    EXPECT_LE(got.data + got.nbytes(), map_end);
    EXPECT_EQ((got.data - map_begin) % 32, 0) << want.name;
    EXPECT_EQ(got.owner.get(), static_cast<const void*>(f.file.get()));
  }
  // Decoding through the mapping gives the same values (compared as bits: random scales may be NaN).
  std::vector<float> got = f.tensors.get("blk.3.q8_0").to_f32(), want = tensors[3].to_f32();
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);

  write_gguf(b, f.metadata, f.tensors.tensors(), f.alignment);
  EXPECT_EQ(read_bytes(a), read_bytes(b));

  // Rewriting a file in place from its own mapping works: the new file replaces the old by rename.
  write_gguf(a, f.metadata, f.tensors.tensors(), f.alignment);
  EXPECT_EQ(read_bytes(a), read_bytes(b));
}

TEST(GgufRoundTrip, ExactLayoutOfASmallFile) {
  // What the writer must produce, assembled by hand from the spec (formats.md §1).
  TempDir dir;
  const std::string path = dir.file("small.gguf");
  write_gguf(path, {{"general.architecture", GgufValue::str("rwkv7")}},
             {make_f32_tensor("a", {3}, {1.f, 2.f, 3.f})});
  Bytes want;
  want.raw("GGUF", 4).u32(3).u64(1).u64(1);
  want.str("general.architecture").u32(8).str("rwkv7");
  want.append(tensor_info("a", {3}, 0, 0)).pad(32);
  const float values[] = {1.f, 2.f, 3.f};
  want.raw(values, sizeof values).pad(32);
  EXPECT_EQ(read_bytes(path), want.b);
}

TEST(GgufRoundTrip, Alignment64IsHonouredOnWriteAndRead) {
  TempDir dir;
  std::mt19937 rng(7);
  GgufMetadata meta = {{"general.architecture", GgufValue::str("rwkv7")},
                       {"general.alignment", GgufValue::u32(64)}};
  std::vector<Tensor> tensors = {
      make_owned_tensor("x", DType::F16, {3}, random_bytes(rng, 6)),
      make_owned_tensor("y", DType::Q8_0, {2, 32}, random_bytes(rng, 68)),
      make_owned_tensor("z", DType::F32, {16}, random_bytes(rng, 64)),
  };
  const std::string a = dir.file("a.gguf"), b = dir.file("b.gguf");
  write_gguf(a, meta, tensors, 64);
  GgufFile f = read_gguf(a);
  EXPECT_EQ(f.alignment, 64u);
  EXPECT_EQ(f.data_offset % 64, 0u);
  for (const Tensor& t : f.tensors.tensors()) EXPECT_EQ((t.data - f.file->data()) % 64, 0) << t.name;
  for (size_t i = 0; i < tensors.size(); ++i)
    EXPECT_EQ(std::memcmp(f.tensors.tensors()[i].data, tensors[i].data, tensors[i].nbytes()), 0);
  EXPECT_EQ(read_bytes(a).size() % 64, 0u);
  write_gguf(b, f.metadata, f.tensors.tensors(), f.alignment);
  EXPECT_EQ(read_bytes(a), read_bytes(b));

  // A hand-made file: the second tensor starts at data offset 64, which only alignment 64 allows
  // after a 4-byte tensor; the data section itself starts at a multiple of 64.
  Bytes kv, infos;
  kv.str("general.alignment").u32(4).u32(64);
  infos.append(tensor_info("p", {1}, 0, 0)).append(tensor_info("q", {2}, 0, 64));
  Bytes file;
  file.raw("GGUF", 4).u32(3).u64(2).u64(1).append(kv).append(infos).pad(64);
  const float p = 1.5f, q[2] = {2.5f, -3.f};
  file.raw(&p, 4).pad(64).raw(q, 8);
  write_bytes(dir.file("hand.gguf"), file.b);
  GgufFile h = read_gguf(dir.file("hand.gguf"));
  EXPECT_EQ(h.alignment, 64u);
  EXPECT_EQ(h.data_offset, file.b.size() - 72);
  EXPECT_EQ(h.tensors.get("p").to_f32(), std::vector<float>{1.5f});
  EXPECT_EQ(h.tensors.get("q").to_f32(), (std::vector<float>{2.5f, -3.f}));
}

TEST(GgufRoundTrip, FileLookupsAreLenientButTypeChecked) {
  TempDir dir;
  const std::string path = dir.file("a.gguf");
  write_gguf(path, every_value_type(), {});
  GgufFile f = read_gguf(path);
  EXPECT_EQ(f.get_uint("t.u8"), 250u);
  EXPECT_EQ(f.get_uint("t.u32"), 4000000000u);
  EXPECT_EQ(f.get_uint("t.u64"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(f.get_int("t.i32"), -2000000000);
  EXPECT_EQ(f.get_int("t.i8"), -7);
  EXPECT_EQ(f.get_float("t.f32"), static_cast<double>(1e-5f));
  EXPECT_EQ(f.get_float("t.f64"), 6.4e-4);
  EXPECT_EQ(f.get_bool("t.bool_true"), true);
  EXPECT_EQ(f.get_string("general.architecture"), "rwkv7");
  ASSERT_NE(f.get_string_array("t.arr_str"), nullptr);
  EXPECT_EQ(f.get_string_array("t.arr_str")->at(1), "\\n\\n");
  EXPECT_EQ(f.get_int_array("t.arr_i32"), (std::vector<int64_t>{3, 1, 5, -1}));
  EXPECT_EQ(f.get_uint("missing"), std::nullopt);
  EXPECT_EQ(f.get_string("missing"), std::nullopt);
  EXPECT_EQ(f.find("missing"), nullptr);
  ASSERT_NE(f.find("t.u16"), nullptr);
  EXPECT_EQ(*f.find("t.u16"), GgufValue::u16(65000));
  expect_gguf_error([&] { f.get_uint("t.i8"); }, "key t.i8 is i8 -7");
  expect_gguf_error([&] { f.get_uint("general.architecture"); }, "a.gguf: key general.architecture");
  expect_gguf_error([&] { f.get_float("t.u32"); }, "expected f32 or f64");
  expect_gguf_error([&] { f.get_string("t.u32"); }, "expected string");
  expect_gguf_error([&] { f.get_string_array("t.arr_i32"); }, "expected array<string>");
}

// ---- writer checks

TEST(GgufWriter, RejectsWhatReadersCannotTake) {
  TempDir dir;
  const std::string path = dir.file("w.gguf");
  auto f32 = [](const std::string& name, std::vector<int64_t> shape) {
    Tensor t;
    t.shape = shape;
    return make_owned_tensor(name, DType::F32, shape, std::vector<uint8_t>(t.nbytes()));
  };
  auto write = [&](GgufMetadata m, std::vector<Tensor> t, uint32_t alignment = 32) {
    return [=] { write_gguf(path, m, t, alignment); };
  };
  expect_gguf_error(write({}, {make_owned_tensor("u", DType::U8, {4}, {1, 2, 3, 4})}), "tensor u has type u8");
  expect_gguf_error(write({}, {f32(std::string(64, 'n'), {1})}), "more than ggml's 63");
  write_gguf(path, {}, {f32(std::string(63, 'n'), {1})});  // exactly 63 bytes is fine
  expect_gguf_error(write({}, {f32("", {1})}), "empty name");
  expect_gguf_error(write({}, {f32("a", {1}), f32("a", {2})}), "duplicate tensor a");
  expect_gguf_error(write({}, {f32("a", {})}), "has 0 dimensions");
  expect_gguf_error(write({}, {f32("a", {1, 1, 1, 1, 1})}), "has 5 dimensions");
  {
    Tensor t = f32("a", {2});
    t.shape = {2, 0};
    expect_gguf_error(write({}, {t}), "invalid dimension ne[0] = 0");
  }
  {
    Tensor t = make_owned_tensor("q", DType::Q8_0, {32}, std::vector<uint8_t>(34));
    t.shape = {2, 16};
    expect_gguf_error(write({}, {t}), "not a multiple of the q8_0 block size 32");
  }
  {
    Tensor t = f32("a", {2});
    t.data = nullptr;
    expect_gguf_error(write({}, {t}), "has no data");
  }
  expect_gguf_error(write({{"k", GgufValue::u8(1)}, {"k", GgufValue::u8(2)}}, {}), "duplicate metadata key k");
  expect_gguf_error(write({{"", GgufValue::u8(1)}}, {}), "empty metadata key");
  expect_gguf_error(write({}, {}, 48), "alignment 48 is not a power of two");
  expect_gguf_error(write({}, {}, 4), "alignment 4 is not a power of two");
  expect_gguf_error(write({}, {}, 64), "requires key general.alignment");
  expect_gguf_error(write({{"general.alignment", GgufValue::u32(32)}}, {}, 64), "expected u32 64");
  expect_gguf_error(write({{"general.alignment", GgufValue::u64(64)}}, {}, 64), "expected u32 64");
  GgufValue deep = GgufValue::u32_array({1});
  for (int i = 0; i < 8; ++i) deep = GgufValue::array(GgufType::ARRAY, {deep});
  expect_gguf_error(write({{"deep", deep}}, {}), "nested deeper");
  // None of the refusals left a file behind.
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(GgufWriter, LeavesNoTemporaryFileOnError) {
  TempDir dir;
  // The target is a directory: the data is written, the final rename fails.
  const std::string target = dir.file("is_a_dir");
  std::filesystem::create_directories(target + "/x");
  expect_gguf_error([&] { write_gguf(target, {}, {make_f32_tensor("a", {1}, {1.f})}); }, "cannot rename");
  EXPECT_FALSE(std::filesystem::exists(target + ".tmp"));
  expect_gguf_error([&] { write_gguf(dir.file("no/such/dir/a.gguf"), {}, {}); }, "cannot create");
}

// ---- reader checks

TEST(GgufReader, EveryTruncationFailsCleanly) {
  TempDir dir;
  std::mt19937 rng(3);
  GgufMetadata meta = {{"general.architecture", GgufValue::str("rwkv7")},
                       {"a.u32", GgufValue::u32(5)},
                       {"a.tokens", GgufValue::str_array({"<s>", "ab"})},
                       {"a.nested", GgufValue::array(GgufType::ARRAY, {GgufValue::i32_array({1, 2})})},
                       {"a.f64", GgufValue::f64(1.0)}};
  // The last tensor is 32 bytes, so the file ends exactly where its data ends: every strict
  // prefix is missing something the reader needs.
  std::vector<Tensor> tensors = {make_owned_tensor("q", DType::Q8_0, {32}, random_bytes(rng, 34)),
                                 make_owned_tensor("w", DType::F32, {2, 4}, random_bytes(rng, 32))};
  const std::string full = dir.file("full.gguf");
  write_gguf(full, meta, tensors);
  const std::vector<uint8_t> bytes = read_bytes(full);
  ASSERT_NO_THROW(read_gguf(full));
  const std::string cut = dir.file("cut.gguf");
  for (size_t n = 0; n < bytes.size(); ++n) {
    write_bytes(cut, std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n)));
    try {
      read_gguf(cut);
      ADD_FAILURE() << "prefix of " << n << " bytes was accepted";
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_EQ(m.rfind(cut, 0), 0u) << m;  // starts with the file name
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  }
}

TEST(GgufReader, AcceptsTheHandMadeBaseline) {
  // The malformed files below are small edits of this one; make sure the unedited one is valid.
  TempDir dir;
  write_bytes(dir.file("ok.gguf"), one_tensor_file());
  GgufFile f = read_gguf(dir.file("ok.gguf"));
  EXPECT_EQ(f.tensors.get("w").shape, std::vector<int64_t>{4});
  EXPECT_EQ(f.get_uint("general.file_type"), 0u);
  // Version 2 has the same layout and is accepted.
  std::vector<uint8_t> v2 = one_tensor_file();
  v2[4] = 2;
  write_bytes(dir.file("v2.gguf"), v2);
  EXPECT_EQ(read_gguf(dir.file("v2.gguf")).version, 2u);
}

TEST(GgufReader, RejectsBadMagicAndVersions) {
  TempDir dir;
  const std::string path = dir.file("bad.gguf");
  std::vector<uint8_t> f = one_tensor_file();
  f[0] = 'X';
  expect_read_error(path, f, {"not a GGUF file"});
  expect_read_error(path, {}, {"truncated while reading magic"});
  f = one_tensor_file();
  f[4] = 1;
  expect_read_error(path, f, {"version 1"});
  f[4] = 4;
  expect_read_error(path, f, {"unsupported GGUF version 4"});
  f[4] = 0;
  f[7] = 3;  // version 3 written big-endian
  expect_read_error(path, f, {"big-endian"});
}

TEST(GgufReader, RejectsCountsAndLengthsThatCannotFit) {
  TempDir dir;
  const std::string path = dir.file("bad.gguf");
  Bytes kv;
  kv.str("general.file_type").u32(4).u32(0);
  Bytes infos = tensor_info("w", {4}, 0, 0);
  // These must fail before allocating anything proportional to the count.
  expect_read_error(path, assemble(1ull << 60, 1, kv, infos, 16), {"tensor_count 1152921504606846976"});
  expect_read_error(path, assemble(1, 1ull << 60, kv, infos, 16), {"metadata_kv_count"});
  expect_read_error(path, assemble(~0ull, ~0ull, kv, infos, 16), {"cannot fit"});
  Bytes long_key;
  long_key.u64(1ull << 62).raw("abc", 3);
  expect_read_error(path, assemble(0, 1, long_key, {}, 0), {"metadata key", "string length 4611686018427387904"});
  Bytes long_value;
  long_value.str("k").u32(8).u64(~0ull);
  expect_read_error(path, assemble(0, 1, long_value, {}, 0), {"key k", "string length"});
  Bytes long_name;
  long_name.u64(1ull << 40);
  expect_read_error(path, assemble(1, 1, kv, long_name, 16), {"tensor name", "string length"});
  Bytes big_array;
  big_array.str("toks").u32(9).u32(8).u64(1ull << 61);
  expect_read_error(path, assemble(0, 1, big_array, {}, 0), {"key toks", "array of 2305843009213693952 string"});
  Bytes big_u32_array;
  big_u32_array.str("ids").u32(9).u32(4).u64(1000);
  expect_read_error(path, assemble(0, 1, big_u32_array, {}, 64), {"key ids", "cannot fit"});
}

TEST(GgufReader, RejectsBadValues) {
  TempDir dir;
  const std::string path = dir.file("bad.gguf");
  Bytes unknown;
  unknown.str("k").u32(13).u32(0);
  expect_read_error(path, assemble(0, 1, unknown, {}, 0), {"key k has unknown value type 13"});
  Bytes unknown_elem;
  unknown_elem.str("k").u32(9).u32(99).u64(0);
  expect_read_error(path, assemble(0, 1, unknown_elem, {}, 0), {"key k", "unknown element type 99"});
  Bytes bad_bool;
  bad_bool.str("b").u32(7).raw("\x02", 1);
  expect_read_error(path, assemble(0, 1, bad_bool, {}, 0), {"key b", "invalid bool value 2"});
  Bytes deep;
  deep.str("deep").u32(9);
  for (int i = 0; i < 20; ++i) deep.u32(9).u64(1);
  deep.u32(0).u64(0);
  expect_read_error(path, assemble(0, 1, deep, {}, 0), {"key deep", "nested deeper"});
  Bytes dup;
  dup.str("k").u32(0).raw("\x01", 1).str("k").u32(0).raw("\x02", 1);
  expect_read_error(path, assemble(0, 2, dup, {}, 0), {"duplicate metadata key k"});
  Bytes empty_key;
  empty_key.str("").u32(0).raw("\x01", 1);
  expect_read_error(path, assemble(0, 1, empty_key, {}, 0), {"metadata key 0 is empty"});
  // Messages quote keys with their control bytes written as \xNN, so they stay one line (a
  // fuzzer's finding); a key holding one is read, as ggml reads it.
  Bytes newline_key;
  newline_key.str("a").u32(0).raw("\x01", 1).str("general.\nname").u32(99);
  expect_read_error(path, assemble(0, 2, newline_key, {}, 0), {"key general.\\x0aname has unknown value type 99"});
  Bytes odd_key;
  odd_key.str("general.\nname").u32(0).raw("\x01", 1);
  write_bytes(path, assemble(0, 1, odd_key, {}, 0));
  EXPECT_EQ(read_gguf(path).metadata.at(0).first, "general.\nname");
  // general.alignment must be a u32 power of two >= 8.
  for (uint32_t a : {0u, 4u, 48u}) {
    Bytes al;
    al.str("general.alignment").u32(4).u32(a);
    expect_read_error(path, assemble(0, 1, al, {}, 0), {"general.alignment = " + std::to_string(a)});
  }
  Bytes al64;
  al64.str("general.alignment").u32(10).u64(64);
  expect_read_error(path, assemble(0, 1, al64, {}, 0), {"general.alignment is u64 64, expected u32"});
}

TEST(GgufReader, RejectsBadTensorInfos) {
  TempDir dir;
  const std::string path = dir.file("bad.gguf");
  expect_read_error(path, one_tensor_file({4, 1, 1, 1, 1}), {"tensor w has n_dims 5"});
  expect_read_error(path, one_tensor_file({}), {"tensor w has n_dims 0"});
  expect_read_error(path, one_tensor_file({4, 0}), {"tensor w", "ne[1] = 0"});
  expect_read_error(path, one_tensor_file({~0ull}), {"tensor w", "ne[0] = -1"});
  expect_read_error(path, one_tensor_file({1ull << 32, 1ull << 32}), {"tensor w", "too many elements"});
  expect_read_error(path, one_tensor_file({16}, 8, 0, 34), {"tensor w", "ne[0] = 16", "q8_0 block size 32"});
  expect_read_error(path, one_tensor_file({256}, 10, 0, 84), {"tensor w has ggml type Q2_K (10), which is not supported yet"});
  expect_read_error(path, one_tensor_file({32}, 24, 0, 32), {"tensor w has ggml type I8 (24)"});
  expect_read_error(path, one_tensor_file({32}, 4, 0, 32), {"tensor w has ggml type Q4_2 (4)"});
  expect_read_error(path, one_tensor_file({4}, 1000, 0, 16), {"tensor w has unknown ggml type 1000"});
  expect_read_error(path, one_tensor_file({4}, 0, 16, 48), {"tensor w has data offset 16, not a multiple of the alignment 32"});
  expect_read_error(path, one_tensor_file({4}, 0, 0, 15), {"tensor w data", "extends past the end"});
  expect_read_error(path, one_tensor_file({4}, 0, 1ull << 63, 16), {"tensor w data", "extends past the end"});
  Bytes kv;
  Bytes long_name = tensor_info(std::string(257, 'n'), {4}, 0, 0);
  expect_read_error(path, assemble(1, 0, kv, long_name, 16), {"tensor name of 257 bytes is too long"});
  Bytes empty_name = tensor_info("", {4}, 0, 0);
  expect_read_error(path, assemble(1, 0, kv, empty_name, 16), {"empty name"});
  // A name holding control bytes is quoted with them as \xNN (one line), and read as ggml reads it.
  const std::pair<std::string, std::string> odd_names[] = {
      {"blk.0.ffn\n.weight", "blk.0.ffn\\x0a.weight"}, {"w\x7f", "w\\x7f"}, {"\x1b[2J\r", "\\x1b[2J\\x0d"}};
  for (const auto& [name, quoted] : odd_names) {
    expect_read_error(path, assemble(1, 0, kv, tensor_info(name, {4, 1, 1, 1, 1}, 0, 0), 16), {"tensor " + quoted + " has n_dims 5"});
    write_bytes(path, assemble(1, 0, kv, tensor_info(name, {4}, 0, 0), 16));
    EXPECT_NE(read_gguf(path).tensors.find(name), nullptr);
  }
  // Names up to 256 bytes are read (llama.cpp's writers keep to 63, others may not).
  write_bytes(path, assemble(1, 0, kv, tensor_info(std::string(256, 'n'), {4}, 0, 0), 16));
  EXPECT_NO_THROW(read_gguf(path));
}

TEST(GgufReader, RejectsOverlapsAndDuplicates) {
  TempDir dir;
  const std::string path = dir.file("bad.gguf");
  Bytes kv;
  Bytes overlap;
  overlap.append(tensor_info("a", {16}, 0, 0)).append(tensor_info("b", {4}, 0, 32));
  expect_read_error(path, assemble(2, 0, kv, overlap, 128), {"tensors a and b overlap"});
  Bytes reversed;  // order of infos does not matter for the check
  reversed.append(tensor_info("b", {4}, 0, 32)).append(tensor_info("a", {16}, 0, 0));
  expect_read_error(path, assemble(2, 0, kv, reversed, 128), {"tensors a and b overlap"});
  Bytes same;
  same.append(tensor_info("a", {4}, 0, 0)).append(tensor_info("b", {4}, 0, 0));
  expect_read_error(path, assemble(2, 0, kv, same, 64), {"overlap"});
  Bytes adjacent;  // touching is fine
  adjacent.append(tensor_info("a", {8}, 0, 0)).append(tensor_info("b", {4}, 0, 32));
  write_bytes(path, assemble(2, 0, kv, adjacent, 48));
  EXPECT_NO_THROW(read_gguf(path));
  Bytes dup;
  dup.append(tensor_info("a", {4}, 0, 0)).append(tensor_info("a", {4}, 0, 32));
  expect_read_error(path, assemble(2, 0, kv, dup, 64), {"duplicate tensor a"});
}

TEST(GgufTypes, GgmlIdsAreGgmlsNotRwkvCpps) {
  // formats.md T1: Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, BF16 = 30 in GGUF.
  EXPECT_EQ(ggml_type_of(DType::Q5_0), 6u);
  EXPECT_EQ(ggml_type_of(DType::Q5_1), 7u);
  EXPECT_EQ(ggml_type_of(DType::Q8_0), 8u);
  EXPECT_EQ(ggml_type_of(DType::BF16), 30u);
  EXPECT_EQ(ggml_type_of(DType::U8), std::nullopt);
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                  DType::Q5_1, DType::Q8_0, DType::F64, DType::I64, DType::I32})
    EXPECT_EQ(dtype_of_ggml_type(*ggml_type_of(t)), t) << dtype_name(t);
  EXPECT_EQ(ggml_type_name(14), "Q6_K");
  EXPECT_EQ(ggml_type_name(29), "IQ1_M");
  EXPECT_EQ(ggml_type_name(34), "TQ1_0");
  EXPECT_EQ(ggml_type_name(39), "MXFP4");
  EXPECT_EQ(ggml_type_name(40), "unknown");
}

}  // namespace
}  // namespace rwkv
