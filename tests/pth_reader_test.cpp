// Tests of the zip lister, the restricted unpickler and the .pth reader: the real checkpoint in
// shared data, synthetic archives assembled here byte by byte, and hostile or truncated inputs.
#include "io/pth_reader.hpp"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "io/error.hpp"
#include "io/pickle.hpp"
#include "io/zip_reader.hpp"
#include "test_util.hpp"

namespace rwkv {
namespace {

using Buffer = std::vector<uint8_t>;

// ---- byte builders

void put_u16(Buffer& b, uint16_t v) {
  for (int i = 0; i < 2; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_u32(Buffer& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_u64(Buffer& b, uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_bytes(Buffer& b, const void* p, size_t n) {
  const uint8_t* c = static_cast<const uint8_t*>(p);
  b.insert(b.end(), c, c + n);
}
void put_string(Buffer& b, const std::string& s) { put_bytes(b, s.data(), s.size()); }
void patch_u32(Buffer& b, size_t pos, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[pos + i] = static_cast<uint8_t>(v >> (8 * i));
}
// Position of the first 4-byte little-endian `signature` at or after `from`.
size_t find_u32(const Buffer& b, uint32_t signature, size_t from = 0) {
  for (size_t i = from; i + 4 <= b.size(); ++i) {
    uint32_t v;
    std::memcpy(&v, b.data() + i, 4);
    if (v == signature) return i;
  }
  ADD_FAILURE() << "signature not found";
  return 0;
}

uint32_t reference_crc32(const Buffer& data) {
  uint32_t c = 0xffffffff;
  for (uint8_t byte : data) {
    c ^= byte;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
  }
  return ~c;
}

template <typename T>
Buffer raw(const std::vector<T>& values) {
  Buffer b(values.size() * sizeof(T));
  std::memcpy(b.data(), values.data(), b.size());
  return b;
}

// ---- a zip writer: stored entries, optional ZIP64 records, optional 64-byte data alignment

struct ZipItem {
  std::string name;
  Buffer data;
  uint16_t method = 0;
};

Buffer build_zip(const std::vector<ZipItem>& items, bool zip64 = false, size_t align = 0) {
  Buffer out;
  std::vector<uint64_t> offsets;
  for (const ZipItem& item : items) {
    offsets.push_back(out.size());
    Buffer extra;
    if (zip64) {
      put_u16(extra, 0x0001);
      put_u16(extra, 16);
      put_u64(extra, item.data.size());
      put_u64(extra, item.data.size());
    }
    if (align) {  // torch pads with an "FB" extra field so the data starts aligned (spec §4.1)
      size_t start = out.size() + 30 + item.name.size() + extra.size() + 4;
      size_t pad = (align - start % align) % align;
      put_u16(extra, 0x4246);
      put_u16(extra, static_cast<uint16_t>(pad));
      extra.insert(extra.end(), pad, 'Z');
    }
    put_u32(out, 0x04034b50);
    put_u16(out, zip64 ? 45 : 20);
    put_u16(out, 0);
    put_u16(out, item.method);
    put_u32(out, 0);
    put_u32(out, reference_crc32(item.data));
    put_u32(out, zip64 ? 0xffffffff : static_cast<uint32_t>(item.data.size()));
    put_u32(out, zip64 ? 0xffffffff : static_cast<uint32_t>(item.data.size()));
    put_u16(out, static_cast<uint16_t>(item.name.size()));
    put_u16(out, static_cast<uint16_t>(extra.size()));
    put_string(out, item.name);
    out.insert(out.end(), extra.begin(), extra.end());
    out.insert(out.end(), item.data.begin(), item.data.end());
  }
  const uint64_t directory = out.size();
  for (size_t i = 0; i < items.size(); ++i) {
    const ZipItem& item = items[i];
    Buffer extra;
    if (zip64) {
      put_u16(extra, 0x0001);
      put_u16(extra, 24);
      put_u64(extra, item.data.size());
      put_u64(extra, item.data.size());
      put_u64(extra, offsets[i]);
    }
    put_u32(out, 0x02014b50);
    put_u16(out, zip64 ? 45 : 20);
    put_u16(out, zip64 ? 45 : 20);
    put_u16(out, 0);
    put_u16(out, item.method);
    put_u32(out, 0);
    put_u32(out, reference_crc32(item.data));
    put_u32(out, zip64 ? 0xffffffff : static_cast<uint32_t>(item.data.size()));
    put_u32(out, zip64 ? 0xffffffff : static_cast<uint32_t>(item.data.size()));
    put_u16(out, static_cast<uint16_t>(item.name.size()));
    put_u16(out, static_cast<uint16_t>(extra.size()));
    put_u16(out, 0);
    put_u16(out, 0);
    put_u16(out, 0);
    put_u32(out, 0);
    put_u32(out, zip64 ? 0xffffffff : static_cast<uint32_t>(offsets[i]));
    put_string(out, item.name);
    out.insert(out.end(), extra.begin(), extra.end());
  }
  const uint64_t directory_size = out.size() - directory;
  if (zip64) {
    const uint64_t record = out.size();
    put_u32(out, 0x06064b50);
    put_u64(out, 44);
    put_u16(out, 45);
    put_u16(out, 45);
    put_u32(out, 0);
    put_u32(out, 0);
    put_u64(out, items.size());
    put_u64(out, items.size());
    put_u64(out, directory_size);
    put_u64(out, directory);
    put_u32(out, 0x07064b50);
    put_u32(out, 0);
    put_u64(out, record);
    put_u32(out, 1);
  }
  put_u32(out, 0x06054b50);
  put_u16(out, 0);
  put_u16(out, 0);
  put_u16(out, zip64 ? 0xffff : static_cast<uint16_t>(items.size()));
  put_u16(out, zip64 ? 0xffff : static_cast<uint16_t>(items.size()));
  put_u32(out, zip64 ? 0xffffffff : static_cast<uint32_t>(directory_size));
  put_u32(out, zip64 ? 0xffffffff : static_cast<uint32_t>(directory));
  put_u16(out, 0);
  return out;
}

// ---- a protocol-2 pickle writer emitting what torch.save emits for state dicts (spec §4.2)

class PickleWriter {
 public:
  PickleWriter() { op(0x80).op(2); }  // PROTO 2

  PickleWriter& op(uint8_t c) {
    b_.push_back(c);
    return *this;
  }
  // Raw bytes, for opcodes and arguments the helpers below do not cover.
  PickleWriter& u64(uint64_t v) {
    put_u64(b_, v);
    return *this;
  }
  PickleWriter& text(const std::string& s) {
    put_string(b_, s);
    return *this;
  }
  PickleWriter& global(const std::string& module, const std::string& name) {
    op('c');
    put_string(b_, module + "\n" + name + "\n");
    return *this;
  }
  PickleWriter& str(const std::string& s) {
    op('X');
    put_u32(b_, static_cast<uint32_t>(s.size()));
    put_string(b_, s);
    return *this;
  }
  PickleWriter& integer(int64_t v) {
    if (v >= 0 && v < 256) {
      op('K').op(static_cast<uint8_t>(v));
    } else if (v >= 0 && v < 65536) {
      op('M');
      put_u16(b_, static_cast<uint16_t>(v));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      op('J');
      put_u32(b_, static_cast<uint32_t>(v));
    } else {
      op(0x8a).op(8);
      put_u64(b_, static_cast<uint64_t>(v));
    }
    return *this;
  }
  PickleWriter& ints_tuple(const std::vector<int64_t>& v) {
    op('(');
    for (int64_t i : v) integer(i);
    return op('t');
  }
  PickleWriter& ordered_dict() { return global("collections", "OrderedDict").op(')').op('R'); }

  // _rebuild_tensor_v2((storage pid), offset, size, stride, False, OrderedDict())
  PickleWriter& tensor(const std::string& storage_type, const std::string& key, int64_t numel, int64_t offset,
                       const std::vector<int64_t>& size, const std::vector<int64_t>& stride) {
    global("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(').str("storage").global("torch", storage_type).str(key).str("cpu").integer(numel).op('t').op('Q');
    integer(offset).ints_tuple(size).ints_tuple(stride).op(0x89).ordered_dict();
    return op('t').op('R');
  }
  // The contiguous row-major strides of `size`.
  static std::vector<int64_t> strides(const std::vector<int64_t>& size) {
    std::vector<int64_t> s(size.size());
    int64_t n = 1;
    for (size_t i = size.size(); i-- > 0;) {
      s[i] = n;
      n *= size[i];
    }
    return s;
  }
  PickleWriter& tensor(const std::string& storage_type, const std::string& key,
                       const std::vector<int64_t>& size) {
    int64_t numel = 1;
    for (int64_t d : size) numel *= d;
    return tensor(storage_type, key, numel, 0, size, strides(size));
  }

  const Buffer& bytes() const { return b_; }

 private:
  Buffer b_;
};

// One state dict with one tensor, the smallest useful archive.
Buffer small_archive(bool zip64 = false) {
  PickleWriter p;
  p.ordered_dict().op('(').str("w").tensor("FloatStorage", "0", {2}).op('u').op('.');
  return build_zip({{"small/data.pkl", p.bytes()},
                    {"small/byteorder", Buffer{'l', 'i', 't', 't', 'l', 'e'}},
                    {"small/data/0", raw(std::vector<float>{1.5f, -2.0f})},
                    {"small/version", Buffer{'3', '\n'}}},
                   zip64);
}

// Writes `archive` to a temporary file and reads it.
TensorSet read_archive(const test::TempDir& dir, const Buffer& archive) {
  std::string path = dir.file("model.pth");
  // A fresh file each time: rewriting a truncated one makes ext4 flush it to disk on close.
  std::filesystem::remove(path);
  test::write_bytes(path, archive);
  return read_pth(path);
}

// The Error message of read_archive, or "" if it loaded.
std::string read_error(const test::TempDir& dir, const Buffer& archive) {
  try {
    read_archive(dir, archive);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// An archive with the given pickle and storages "0", "1", ... .
Buffer archive_with(const Buffer& pickle, const std::vector<Buffer>& storages) {
  std::vector<ZipItem> items{{"root/data.pkl", pickle}};
  for (size_t i = 0; i < storages.size(); ++i)
    items.push_back({"root/data/" + std::to_string(i), storages[i]});
  return build_zip(items);
}

std::vector<float> values(const Tensor& t) { return t.to_f32(); }

// ---- the real checkpoint

TEST(Pth, LoadsRealCheckpoint) {
  const std::string path = test::data_path("rwkv_lm/260123_reverse_L2_only_rwkv7.pth");
  TensorSet set = read_pth(path);
  EXPECT_EQ(set.source, path);
  // 99 tensors; the archive has 105 entries (the other 6: data.pkl, byteorder, version, ...).
  ASSERT_EQ(set.size(), 99u);
  EXPECT_EQ(set.tensors().front().name, "e.weight");
  EXPECT_EQ(set.tensors().back().name, "o.bias");

  const Tensor& emb = set.get("e.weight");
  EXPECT_EQ(emb.dtype, DType::F32);
  EXPECT_EQ(emb.shape, (std::vector<int64_t>{12, 32}));
  std::vector<float> e = values(emb);
  // Expected values read with Python's zipfile + struct from no_rosa5/data/0.
  EXPECT_EQ(e[0], -0x1.24f82ep-7f);
  EXPECT_EQ(e[1], 0x1.eb72p-2f);
  EXPECT_EQ(e[2], -0x1.09d9dep-4f);
  EXPECT_EQ(e[383], -0x1.ef57bep+1f);

  const Tensor& r_k = set.get("rwkv1.r_k");
  EXPECT_EQ(r_k.shape, (std::vector<int64_t>{2, 16}));
  EXPECT_EQ(values(r_k)[0], -0x1.539918p-2f);
  EXPECT_EQ(values(r_k)[31], -0x1.6db2d2p-5f);

  // Stored with stride (32, 32, 1): size-1 dimensions do not break contiguity.
  const Tensor& x_r = set.get("rwkv1.x_r");
  EXPECT_EQ(x_r.shape, (std::vector<int64_t>{1, 1, 32}));
  EXPECT_EQ(values(x_r)[0], -0x1.2bc686p+2f);
  EXPECT_EQ(values(x_r)[31], -0x1.000168p-1f);

  const Tensor& bias = set.get("o.bias");
  EXPECT_EQ(bias.shape, (std::vector<int64_t>{12}));
  EXPECT_EQ(values(bias)[0], -0x1.b387fap-1f);
  EXPECT_EQ(values(bias)[11], -0x1.09253ap+3f);

  // All zero copy: every tensor is kept alive by the one mapping.
  for (const Tensor& t : set.tensors()) EXPECT_EQ(t.owner.get(), emb.owner.get()) << t.name;
}

TEST(Pth, TensorsOutliveTheirSet) {
  Tensor kept;
  {
    TensorSet set = read_pth(test::data_path("rwkv_lm/260123_reverse_L2_only_rwkv7.pth"));
    kept = set.get("o.bias");
  }
  EXPECT_EQ(values(kept)[11], -0x1.09253ap+3f);
}

// ---- synthetic archives

uint16_t bf16(float f) { return fp32_to_bf16(f); }
uint16_t f16(float f) { return fp32_to_fp16(f); }

// A state dict exercising every feature: dtypes, shared storage with offsets, a transposed view,
// _rebuild_parameter, a 0-d and an empty tensor, two SETITEMS batches plus a SETITEM, a
// non-tensor entry and a _metadata BUILD.
Buffer feature_archive(bool zip64, size_t align) {
  using P = PickleWriter;
  P p;
  p.global("collections", "OrderedDict").op('q').op(0).op(')').op('R').op('q').op(1);
  p.op('(');
  p.str("a.bf16").tensor("BFloat16Storage", "0", {2, 3});
  p.str("b.f16").tensor("HalfStorage", "1", {4});
  p.str("c.first").tensor("FloatStorage", "2", 10, 0, {4}, {1});
  p.str("c.second").tensor("FloatStorage", "2", 10, 4, {2, 3}, {3, 1});
  p.op('u').op('(');
  p.str("d.transposed").tensor("FloatStorage", "3", 6, 0, {3, 2}, {1, 3});
  p.str("e.param").global("torch._utils", "_rebuild_parameter").op('(');
  p.tensor("LongStorage", "4", {3}).op(0x88).ordered_dict().op('t').op('R');
  p.str("f.x_r").tensor("DoubleStorage", "5", 4, 0, {1, 1, 4}, {4, 4, 1});
  p.str("g.scalar").tensor("IntStorage", "6", 2, 1, {}, {});
  p.str("h.empty").tensor("BoolStorage", "7", 0, 0, {0, 3}, {3, 1});
  p.str("step").integer(7);
  p.op('u');
  p.str("i.bool").tensor("BoolStorage", "8", {3}).op('s');
  // _metadata: {} '_metadata' OrderedDict() ( '' {'version': 1} u SETITEM BUILD
  p.op('}').str("_metadata").op('h').op(0).op(')').op('R').op('(').str("");
  p.op('}').str("version").integer(1).op('s').op('u').op('s').op('b').op('.');

  std::vector<uint16_t> a{bf16(1.0f), bf16(-2.0f), bf16(0.5f), bf16(3.0f), bf16(-0.25f), bf16(100.0f)};
  std::vector<uint16_t> b{f16(1.0f), f16(-1.5f), f16(65504.0f), 0x0001 /* smallest subnormal */};
  std::vector<float> c{0, 1, 2, 3, 10, 11, 12, 13, 14, 15};
  std::vector<float> d{1, 2, 3, 4, 5, 6};  // the [2, 3] matrix [[1, 2, 3], [4, 5, 6]]
  std::vector<int64_t> e{-1, 1LL << 40, 3};
  std::vector<double> f{0.5, 1.5, 2.5, 3.5};
  std::vector<int32_t> g{-9, 42};
  std::vector<ZipItem> items{
      {"weird_root/data.pkl", p.bytes()},     {"weird_root/byteorder", Buffer{'l', 'i', 't', 't', 'l', 'e'}},
      {"weird_root/data/0", raw(a)},          {"weird_root/data/1", raw(b)},
      {"weird_root/data/2", raw(c)},          {"weird_root/data/3", raw(d)},
      {"weird_root/data/4", raw(e)},          {"weird_root/data/5", raw(f)},
      {"weird_root/data/6", raw(g)},          {"weird_root/data/7", Buffer{}},
      {"weird_root/data/8", Buffer{1, 0, 1}}, {"weird_root/version", Buffer{'3', '\n'}}};
  return build_zip(items, zip64, align);
}

void check_feature_archive(const TensorSet& set) {
  std::vector<std::string> names;
  for (const Tensor& t : set.tensors()) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"a.bf16", "b.f16", "c.first", "c.second", "d.transposed",
                                             "e.param", "f.x_r", "g.scalar", "h.empty", "i.bool"}));

  const Tensor& a = set.get("a.bf16");
  EXPECT_EQ(a.dtype, DType::BF16);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(values(a), (std::vector<float>{1.0f, -2.0f, 0.5f, 3.0f, -0.25f, 100.0f}));

  const Tensor& b = set.get("b.f16");
  EXPECT_EQ(b.dtype, DType::F16);
  EXPECT_EQ(values(b), (std::vector<float>{1.0f, -1.5f, 65504.0f, std::ldexp(1.0f, -24)}));

  EXPECT_EQ(values(set.get("c.first")), (std::vector<float>{0, 1, 2, 3}));
  const Tensor& second = set.get("c.second");
  EXPECT_EQ(second.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(values(second), (std::vector<float>{10, 11, 12, 13, 14, 15}));

  const Tensor& t = set.get("d.transposed");
  EXPECT_EQ(t.shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(values(t), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  EXPECT_NE(t.owner.get(), a.owner.get());  // copied, not pointing into the mapping

  const Tensor& e = set.get("e.param");
  EXPECT_EQ(e.dtype, DType::I64);
  std::vector<int64_t> e_values(3);
  std::memcpy(e_values.data(), e.data, 24);
  EXPECT_EQ(e_values, (std::vector<int64_t>{-1, 1LL << 40, 3}));

  const Tensor& f = set.get("f.x_r");
  EXPECT_EQ(f.dtype, DType::F64);
  EXPECT_EQ(f.shape, (std::vector<int64_t>{1, 1, 4}));
  EXPECT_EQ(values(f), (std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f}));
  EXPECT_EQ(f.owner.get(), a.owner.get());  // zero copy

  const Tensor& g = set.get("g.scalar");
  EXPECT_EQ(g.dtype, DType::I32);
  EXPECT_TRUE(g.shape.empty());
  int32_t g_value;
  std::memcpy(&g_value, g.data, 4);
  EXPECT_EQ(g_value, 42);  // storage offset 1

  const Tensor& h = set.get("h.empty");
  EXPECT_EQ(h.dtype, DType::U8);
  EXPECT_EQ(h.shape, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(h.numel(), 0u);

  const Tensor& i = set.get("i.bool");
  EXPECT_EQ(i.dtype, DType::U8);
  EXPECT_EQ(std::vector<uint8_t>(i.data, i.data + 3), (std::vector<uint8_t>{1, 0, 1}));

  EXPECT_EQ(set.find("step"), nullptr);
  EXPECT_EQ(set.find("_metadata"), nullptr);
}

TEST(Pth, ReadsSyntheticArchive) {
  test::TempDir dir;
  check_feature_archive(read_archive(dir, feature_archive(false, 0)));
}

TEST(Pth, ReadsSyntheticZip64ArchiveWithAlignedData) {
  test::TempDir dir;
  Buffer archive = feature_archive(true, 64);
  check_feature_archive(read_archive(dir, archive));
  // The data of every stored entry starts 64-byte aligned, as newer torch writes it.
  for (const ZipEntry& e : list_zip(archive, "archive")) EXPECT_EQ(e.offset % 64, 0u) << e.name;
}

TEST(Pth, MissingByteorderMeansLittleEndian) {
  test::TempDir dir;
  PickleWriter p;
  p.ordered_dict().op('(').str("w").tensor("FloatStorage", "0", {2}).op('u').op('.');
  TensorSet set = read_archive(dir, archive_with(p.bytes(), {raw(std::vector<float>{1, 2})}));
  EXPECT_EQ(values(set.get("w")), (std::vector<float>{1, 2}));
}

TEST(Pth, PlainDictAndTopLevelDataPkl) {
  test::TempDir dir;
  PickleWriter p;
  p.op('}').str("w").tensor("FloatStorage", "0", {1}).op('s').op('.');
  Buffer archive = build_zip({{"data.pkl", p.bytes()}, {"data/0", raw(std::vector<float>{7})}});
  EXPECT_EQ(values(read_archive(dir, archive).get("w")), (std::vector<float>{7}));
}

// ---- malformed archives

TEST(Pth, EveryTruncationIsAnError) {
  test::TempDir dir;
  for (bool zip64 : {false, true}) {
    Buffer archive = small_archive(zip64);
    EXPECT_EQ(values(read_archive(dir, archive).get("w")), (std::vector<float>{1.5f, -2.0f}));
    for (size_t n = 0; n < archive.size(); ++n) {
      Buffer prefix(archive.begin(), archive.begin() + static_cast<std::ptrdiff_t>(n));
      EXPECT_NE(read_error(dir, prefix), "") << "prefix of " << n << " bytes, zip64 " << zip64;
    }
  }
}

TEST(Pth, CorruptedBytesGiveErrorsNotCrashes) {
  test::TempDir dir;
  const Buffer archive = small_archive(true);
  std::mt19937 rng(7);
  for (int round = 0; round < 1500; ++round) {
    Buffer bad = archive;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) bad[rng() % bad.size()] = static_cast<uint8_t>(rng());
    try {
      read_archive(dir, bad);
    } catch (const Error&) {
      // expected for most; anything else escaping fails the test
    }
  }
}

TEST(Pth, RejectsWrongMagic) {
  test::TempDir dir;
  EXPECT_NE(read_error(dir, Buffer{'h', 'e', 'l', 'l', 'o'}).find("not a PyTorch zip checkpoint"),
            std::string::npos);
  PickleWriter legacy;  // pre-1.6 files start with a bare pickle
  legacy.op('N').op('.');
  EXPECT_NE(read_error(dir, legacy.bytes()).find("legacy or unknown format"), std::string::npos);
  EXPECT_NE(read_error(dir, Buffer{}).find("not a PyTorch zip checkpoint"), std::string::npos);
}

TEST(Pth, RejectsForbiddenGlobal) {
  test::TempDir dir;
  PickleWriter p;
  p.global("os", "system").op('(').str("touch /tmp/pwned").op('t').op('R').op('.');
  std::string message = read_error(dir, archive_with(p.bytes(), {}));
  EXPECT_NE(message.find("forbidden pickle global 'os.system'"), std::string::npos) << message;
  EXPECT_NE(message.find("model.pth"), std::string::npos) << message;
}

TEST(Pth, RejectsUnknownOpcode) {
  test::TempDir dir;
  PickleWriter p;
  p.ordered_dict().op(0xff).op('.');
  std::string message = read_error(dir, archive_with(p.bytes(), {}));
  EXPECT_NE(message.find("0xff"), std::string::npos) << message;
  EXPECT_NE(message.find("offset 29"), std::string::npos) << message;
}

TEST(Pth, RejectsShortStorage) {
  test::TempDir dir;
  PickleWriter p;
  p.ordered_dict().op('(').str("w").tensor("FloatStorage", "0", {10}).op('u').op('.');
  std::string message = read_error(dir, archive_with(p.bytes(), {raw(std::vector<float>(9))}));
  EXPECT_NE(message.find("tensor 'w'"), std::string::npos) << message;
  EXPECT_NE(message.find("holds 36 bytes"), std::string::npos) << message;
}

TEST(Pth, RejectsHugeNumel) {
  test::TempDir dir;
  const int64_t huge = int64_t{1} << 62;
  PickleWriter p;
  p.ordered_dict().op('(').str("w").tensor("FloatStorage", "0", huge, 0, {huge}, {1}).op('u').op('.');
  EXPECT_NE(read_error(dir, archive_with(p.bytes(), {raw(std::vector<float>(4))})).find("tensor 'w'"),
            std::string::npos);
  // Sizes whose product overflows 64 bits.
  PickleWriter q;
  q.ordered_dict().op('(').str("w").tensor("FloatStorage", "0", 4, 0, {huge, huge}, {1, 1}).op('u').op('.');
  EXPECT_NE(read_error(dir, archive_with(q.bytes(), {raw(std::vector<float>(4))})).find("tensor 'w'"),
            std::string::npos);
  // Strides that overflow when multiplied by sizes.
  PickleWriter r;
  r.ordered_dict().op('(').str("w").tensor("FloatStorage", "0", 4, 0, {2, 2}, {huge, huge}).op('u').op('.');
  EXPECT_NE(read_error(dir, archive_with(r.bytes(), {raw(std::vector<float>(4))})).find("reaches outside"),
            std::string::npos);
}

TEST(Pth, RejectsViewOutsideStorage) {
  test::TempDir dir;
  auto error_for = [&](int64_t offset, std::vector<int64_t> size, std::vector<int64_t> stride) {
    PickleWriter p;
    p.ordered_dict().op('(').str("v").tensor("FloatStorage", "0", 6, offset, size, stride).op('u').op('.');
    return read_error(dir, archive_with(p.bytes(), {raw(std::vector<float>(6))}));
  };
  EXPECT_EQ(error_for(2, {4}, {1}), "");
  EXPECT_NE(error_for(3, {4}, {1}).find("tensor 'v'"), std::string::npos);
  EXPECT_NE(error_for(0, {2, 3}, {4, 1}).find("reaches outside its storage"), std::string::npos);
  EXPECT_EQ(error_for(0, {3, 2}, {1, 3}), "");  // a transpose: copied
  EXPECT_NE(error_for(0, {3, 2}, {1, 4}).find("reaches outside its storage"), std::string::npos);
  EXPECT_EQ(error_for(0, {3, 2}, {1, 2}), "");  // elements overlap, but no more than the storage: copied
  EXPECT_NE(error_for(0, {100, 6}, {0, 1}).find("more elements than its storage"), std::string::npos);
}

TEST(Pth, RejectsCompressedEntry) {
  test::TempDir dir;
  PickleWriter p;
  p.ordered_dict().op('(').str("w").tensor("FloatStorage", "0", {2}).op('u').op('.');
  Buffer archive = build_zip({{"r/data.pkl", p.bytes()}, {"r/data/0", raw(std::vector<float>{1, 2}), 8}});
  std::string message = read_error(dir, archive);
  EXPECT_NE(message.find("'r/data/0' is compressed"), std::string::npos) << message;
}

TEST(Pth, RejectsBigEndianAndMissingStorage) {
  test::TempDir dir;
  PickleWriter p;
  p.ordered_dict().op('(').str("w").tensor("FloatStorage", "0", {2}).op('u').op('.');
  Buffer big = build_zip({{"r/data.pkl", p.bytes()},
                          {"r/byteorder", Buffer{'b', 'i', 'g'}},
                          {"r/data/0", raw(std::vector<float>{1, 2})}});
  EXPECT_NE(read_error(dir, big).find("big-endian"), std::string::npos);
  std::string message = read_error(dir, build_zip({{"r/data.pkl", p.bytes()}}));
  EXPECT_NE(message.find("'r/data/0' is missing"), std::string::npos) << message;
  EXPECT_NE(read_error(dir, build_zip({{"r/other", Buffer{1}}})).find("no data.pkl"), std::string::npos);
}

TEST(Pth, RejectsNonDictAndInconsistentStorage) {
  test::TempDir dir;
  PickleWriter list;
  list.op(']').op('.');
  EXPECT_NE(read_error(dir, archive_with(list.bytes(), {})).find("expected a dict"), std::string::npos);
  PickleWriter p;  // storage "0" declared as float32 and as float16
  p.ordered_dict().op('(').str("a").tensor("FloatStorage", "0", {2}).str("b").tensor("HalfStorage", "0", {4});
  p.op('u').op('.');
  EXPECT_NE(read_error(dir, archive_with(p.bytes(), {raw(std::vector<float>{1, 2})})).find("two different"),
            std::string::npos);
}

// ---- the zip lister on hostile central directories

TEST(Zip, ListsEntriesAndSizes) {
  for (bool zip64 : {false, true}) {
    Buffer archive = small_archive(zip64);
    std::vector<ZipEntry> entries = list_zip(archive, "a.zip");
    ASSERT_EQ(entries.size(), 4u);
    EXPECT_EQ(entries[2].name, "small/data/0");
    EXPECT_EQ(entries[2].size, 8u);
    EXPECT_EQ(entries[2].method, 0);
    std::span<const uint8_t> data = zip_entry_data(archive, entries[2], "a.zip");
    float f[2];
    std::memcpy(f, data.data(), 8);
    EXPECT_EQ(f[1], -2.0f);
  }
}

TEST(Zip, FindsEndRecordBehindComment) {
  Buffer archive = small_archive();
  const std::string comment(300, 'c');
  archive[archive.size() - 2] = static_cast<uint8_t>(comment.size());
  archive[archive.size() - 1] = static_cast<uint8_t>(comment.size() >> 8);
  put_string(archive, comment);
  EXPECT_EQ(list_zip(archive, "a.zip").size(), 4u);
}

std::string zip_error(const Buffer& archive) {
  try {
    list_zip(archive, "bad.zip");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Zip, RejectsHostileSizesAndOffsets) {
  const Buffer good = small_archive();
  const size_t central = find_u32(good, 0x02014b50);
  const size_t end = find_u32(good, 0x06054b50, central);

  Buffer huge_size = good;  // first entry claims 4 GiB - 2
  patch_u32(huge_size, central + 20, 0xfffffffe);
  patch_u32(huge_size, central + 24, 0xfffffffe);
  EXPECT_NE(zip_error(huge_size).find("reaches past"), std::string::npos);

  Buffer overlapping = good;  // first entry's data would run into the next entries
  patch_u32(overlapping, central + 20, 200);
  patch_u32(overlapping, central + 24, 200);
  EXPECT_EQ(zip_error(overlapping), "");  // within the data area: allowed, like overlapping views
  patch_u32(overlapping, central + 20, static_cast<uint32_t>(central));
  patch_u32(overlapping, central + 24, static_cast<uint32_t>(central));
  EXPECT_NE(zip_error(overlapping).find("reaches past"), std::string::npos);

  Buffer bad_local = good;
  patch_u32(bad_local, central + 42, 0x7fffffff);
  EXPECT_NE(zip_error(bad_local).find("local header offset"), std::string::npos);

  Buffer not_local = good;  // offset pointing at the middle of some data
  patch_u32(not_local, central + 42, 5);
  EXPECT_NE(zip_error(not_local).find("bad zip local header signature"), std::string::npos);

  Buffer too_many = good;  // announces more entries than the directory holds
  too_many[end + 10] = 200;
  EXPECT_NE(zip_error(too_many).find("fewer than the 200 entries"), std::string::npos);

  Buffer far_directory = good;
  patch_u32(far_directory, end + 16, 0xfffffff0);
  EXPECT_NE(zip_error(far_directory).find("outside the archive"), std::string::npos);

  Buffer encrypted = good;
  encrypted[central + 8] = 1;
  EXPECT_NE(zip_error(encrypted).find("encrypted"), std::string::npos);

  EXPECT_NE(zip_error(Buffer(10, 0)).find("too short"), std::string::npos);
  EXPECT_NE(zip_error(Buffer(100, 0)).find("no zip end-of-central-directory"), std::string::npos);
}

TEST(Zip, RejectsHostileZip64Records) {
  const Buffer good = small_archive(true);
  const size_t locator = find_u32(good, 0x07064b50);
  Buffer bad_record = good;
  patch_u32(bad_record, locator + 8, 0x7ffffff0);
  EXPECT_NE(zip_error(bad_record).find("zip64 end record offset"), std::string::npos);

  const size_t record = find_u32(good, 0x06064b50);
  Buffer huge_count = good;  // 2^64 - 1 entries
  patch_u32(huge_count, record + 32, 0xffffffff);
  patch_u32(huge_count, record + 36, 0xffffffff);
  EXPECT_NE(zip_error(huge_count).find("fewer than the"), std::string::npos);

  const size_t central = find_u32(good, 0x02014b50);
  Buffer short_extra = good;  // the zip64 extra field ends before the local header offset
  short_extra[central + 46 + std::string("small/data.pkl").size() + 2] = 16;
  EXPECT_NE(zip_error(short_extra).find("local header offset"), std::string::npos);
}

// ---- the unpickler on its own

pickle::Unpickled run_pickle(const Buffer& b) { return pickle::unpickle(b, "test.pkl"); }

std::string pickle_error(const Buffer& b) {
  try {
    run_pickle(b);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Pickle, ReadsScalarsAndContainers) {
  PickleWriter p;
  p.op(0x95).u64(0);  // FRAME with a zero length hint
  p.op(']').op(0x94).op('(');
  p.integer(200).integer(60000).integer(-5).integer(int64_t{1} << 40).integer(-(int64_t{1} << 40));
  p.op(0x8a).op(3).op(0x00).op(0x80).op(0x00);  // LONG1 32768 (two's complement, little-endian)
  p.op(0x8a).op(2).op(0x00).op(0x80);           // LONG1 -32768
  p.op(0x8a).op(1).op(0xff);                    // LONG1 -1
  p.op(0x8a).op(0);                             // LONG1 0
  p.op('G');
  for (uint8_t byte : {0x3f, 0xf8, 0, 0, 0, 0, 0, 0}) p.op(byte);  // 1.5 big-endian
  p.op(0x8c).op(3).op('a').op('b').op('c');
  p.op('C').op(2).op(0).op(1);
  p.op('N').op(0x88).op(0x89);
  p.op(0x8c).op(11).text("collections").op(0x8c).op(11).text("OrderedDict");
  p.op(0x93).op(')').op('R');
  p.op('h').op(0);  // the list itself: a cycle, freed by the arena
  p.op('e').op('.');

  pickle::Unpickled u = run_pickle(p.bytes());
  const pickle::List* list = pickle::as<pickle::List>(u.root());
  ASSERT_NE(list, nullptr);
  const auto& v = list->items;
  ASSERT_EQ(v.size(), 17u);
  EXPECT_EQ(std::get<int64_t>(v[0]), 200);
  EXPECT_EQ(std::get<int64_t>(v[1]), 60000);
  EXPECT_EQ(std::get<int64_t>(v[2]), -5);
  EXPECT_EQ(std::get<int64_t>(v[3]), int64_t{1} << 40);
  EXPECT_EQ(std::get<int64_t>(v[4]), -(int64_t{1} << 40));
  EXPECT_EQ(std::get<int64_t>(v[5]), 32768);
  EXPECT_EQ(std::get<int64_t>(v[6]), -32768);
  EXPECT_EQ(std::get<int64_t>(v[7]), -1);
  EXPECT_EQ(std::get<int64_t>(v[8]), 0);
  EXPECT_EQ(std::get<double>(v[9]), 1.5);
  EXPECT_EQ(pickle::as<pickle::Str>(v[10])->text, "abc");
  EXPECT_EQ(pickle::as<pickle::Bytes>(v[11])->data, std::string("\0\1", 2));
  EXPECT_TRUE(std::holds_alternative<pickle::None>(v[12]));
  EXPECT_EQ(std::get<bool>(v[13]), true);
  EXPECT_EQ(std::get<bool>(v[14]), false);
  EXPECT_NE(pickle::as<pickle::Dict>(v[15]), nullptr);
  EXPECT_EQ(pickle::as<pickle::List>(v[16]), list);
  EXPECT_STREQ(pickle::type_name(v[16]), "list");
}

TEST(Pickle, RejectsForbiddenGlobals) {
  PickleWriter a;
  a.global("os", "system").op('.');
  EXPECT_NE(pickle_error(a.bytes()).find("forbidden pickle global 'os.system'"), std::string::npos);
  PickleWriter b;
  b.str("builtins").str("eval").op(0x93).op('.');
  EXPECT_NE(pickle_error(b.bytes()).find("forbidden pickle global 'builtins.eval'"), std::string::npos);
  PickleWriter c;  // an allowed module with another name
  c.global("torch._utils", "_rebuild_qtensor").op('.');
  EXPECT_NE(pickle_error(c.bytes()).find("forbidden"), std::string::npos);
  PickleWriter d;  // a storage type is allowed as a marker but is not callable
  d.global("torch", "FloatStorage").op(')').op('R').op('.');
  EXPECT_NE(pickle_error(d.bytes()).find("not callable"), std::string::npos);
}

TEST(Pickle, RejectsUnknownOpcodes) {
  for (uint8_t op : {uint8_t{'a'}, uint8_t{'i'}, uint8_t{'o'}, uint8_t{'I'}, uint8_t{0x81}, uint8_t{0xff}}) {
    PickleWriter p;
    p.op('N').op(op).op('.');
    std::string message = pickle_error(p.bytes());
    EXPECT_NE(message.find("unsupported pickle opcode"), std::string::npos) << message;
    EXPECT_NE(message.find("at offset 3"), std::string::npos) << message;
  }
}

TEST(Pickle, RejectsUnderflowsAndBadMemo) {
  auto error_of = [](std::initializer_list<uint8_t> ops) {
    PickleWriter p;
    for (uint8_t op : ops) p.op(op);
    return pickle_error(p.bytes());
  };
  EXPECT_NE(error_of({'.'}).find("stack underflow"), std::string::npos);
  EXPECT_NE(error_of({'t', '.'}).find("no MARK"), std::string::npos);
  EXPECT_NE(error_of({'N', 's', '.'}).find("stack underflow"), std::string::npos);
  EXPECT_NE(error_of({'N', '(', 0x85, '.'}).find("stack underflow"), std::string::npos);  // across the MARK
  EXPECT_NE(error_of({'N', '(', '.'}).find("stack underflow"), std::string::npos);
  EXPECT_NE(error_of({'h', 3, '.'}).find("memo index 3"), std::string::npos);
  EXPECT_NE(error_of({'q', 0, '.'}).find("stack underflow"), std::string::npos);
  EXPECT_NE(error_of({'N', 'N', 'N', 's', '.'}).find("not a dict"), std::string::npos);
  EXPECT_NE(error_of({'}', '(', 'N', 'u', '.'}).find("odd number"), std::string::npos);
  EXPECT_NE(error_of({'N', 'N', 'Q', '.'}).find("not a 5-tuple"), std::string::npos);
  EXPECT_NE(error_of({'N', ')', 'R', '.'}).find("cannot call"), std::string::npos);
  EXPECT_NE(error_of({'N'}).find("truncated"), std::string::npos);  // no STOP
  EXPECT_NE(error_of({0x8a, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, '.'}).find("too large"), std::string::npos);
}

TEST(Pickle, RejectsAbsurdLengths) {
  PickleWriter p;
  p.op('X').op(0xff).op(0xff).op(0xff).op(0xff).op('.');
  EXPECT_NE(pickle_error(p.bytes()).find("truncated"), std::string::npos);
  PickleWriter q;
  q.op('T').op(0xff).op(0xff).op(0xff).op(0xff).op('.');
  EXPECT_NE(pickle_error(q.bytes()).find("negative length"), std::string::npos);
  PickleWriter r;
  r.op(0x95).u64(uint64_t{1} << 62);
  EXPECT_NE(pickle_error(r.bytes()).find("frame"), std::string::npos);
  PickleWriter s;  // a GLOBAL line without its newline
  s.op('c').text("collections OrderedDict");
  EXPECT_NE(pickle_error(s.bytes()).find("unterminated"), std::string::npos);
}

TEST(Pickle, CapsTheStackAndSurvivesDeepNesting) {
  Buffer many(1'000'010, 'N');
  many[0] = 0x80, many[1] = 2;
  many.push_back('.');
  EXPECT_NE(pickle_error(many).find("stack exceeds"), std::string::npos);
  Buffer marks(1'000'010, '(');
  marks.push_back('.');
  EXPECT_NE(pickle_error(marks).find("open MARKs"), std::string::npos);
  // A tuple nested 100 000 deep: freeing it recursively would overflow the stack.
  Buffer deep{0x80, 2, ')'};
  deep.insert(deep.end(), 100'000, 0x85);
  deep.push_back('.');
  pickle::Unpickled u = run_pickle(deep);
  EXPECT_NE(pickle::as<pickle::Tuple>(u.root()), nullptr);
}

TEST(Pickle, RandomMutationsGiveErrorsNotCrashes) {
  PickleWriter p;
  p.ordered_dict().op('(').str("a").tensor("FloatStorage", "0", {2, 3});
  p.str("b").tensor("BFloat16Storage", "1", 4, 1, {3}, {1}).op('u').op('.');
  std::mt19937 rng(11);
  int loaded = 0;
  for (int round = 0; round < 5000; ++round) {
    Buffer bad = p.bytes();
    int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) bad[rng() % bad.size()] = static_cast<uint8_t>(rng());
    if (rng() % 4 == 0) bad.resize(rng() % bad.size());
    try {
      run_pickle(bad);
      ++loaded;
    } catch (const Error&) {
    }
  }
  EXPECT_GT(loaded, 0);
}

}  // namespace
}  // namespace rwkv
