// binidx reader and writer (spec §7.4).
#include "io/binidx.hpp"

#include <cstring>
#include <limits>

#include "io/atomic_file.hpp"
#include "io/error.hpp"
#include "io/mapped_file.hpp"

namespace rwkv {

namespace {

constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
constexpr uint8_t kUint16 = 8, kInt32 = 4;

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// Bytes per token of a dtype code, 0 for codes that are not integer types.
size_t item_size(uint8_t code) {
  switch (code) {
    case 1: case 2: return 1;  // uint8, int8
    case 3: case 8: return 2;  // int16, uint16
    case 4: return 4;          // int32
    case 5: return 8;          // int64
    default: return 0;         // 6, 7: floating point
  }
}

int64_t load_token(const uint8_t* p, uint8_t code) {
  switch (code) {
    case 1: return p[0];
    case 2: return static_cast<int8_t>(p[0]);
    case 3: { int16_t v; std::memcpy(&v, p, 2); return v; }
    case 8: { uint16_t v; std::memcpy(&v, p, 2); return v; }
    case 4: { int32_t v; std::memcpy(&v, p, 4); return v; }
    default: { int64_t v; std::memcpy(&v, p, 8); return v; }
  }
}

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(&out[at], &v, sizeof(T));
}

}  // namespace

std::string binidx_prefix(const std::string& path) {
  if (ends_with(path, ".bin") || ends_with(path, ".idx")) return path.substr(0, path.size() - 4);
  return path;
}

bool is_binidx_path(const std::string& path) { return ends_with(path, ".bin") || ends_with(path, ".idx"); }

void write_binidx(const std::string& prefix, std::span<const int32_t> tokens,
                  std::span<const uint64_t> document_sizes, size_t vocab_size) {
  uint64_t total = 0;
  for (uint64_t s : document_sizes) {
    if (s > uint64_t(std::numeric_limits<int32_t>::max()))
      fail(prefix, ".idx: a document of ", s, " tokens is too long for the int32 sizes of binidx");
    total += s;
  }
  if (total != tokens.size()) fail(prefix, ": document sizes add up to ", total, ", not ", tokens.size(), " tokens");
  const uint8_t code = vocab_size <= 65536 ? kUint16 : kInt32;
  const size_t item = item_size(code);

  std::vector<uint8_t> bin;
  bin.reserve(tokens.size() * item);
  for (int32_t t : tokens) {
    if (t < 0 || size_t(t) >= vocab_size) fail(prefix, ".bin: token ", t, " is outside the vocabulary of ", vocab_size);
    if (code == kUint16) put(bin, static_cast<uint16_t>(t));
    else put(bin, t);
  }

  std::vector<uint8_t> idx(kMagic, kMagic + sizeof kMagic);
  put<uint64_t>(idx, 1);  // version
  put<uint8_t>(idx, code);
  put<uint64_t>(idx, document_sizes.size());
  put<uint64_t>(idx, document_sizes.size() + 1);  // doc_idx: one sentence per document
  for (uint64_t s : document_sizes) put(idx, static_cast<int32_t>(s));
  int64_t offset = 0;
  for (uint64_t s : document_sizes) {
    put(idx, offset);
    offset += int64_t(s * item);
  }
  for (uint64_t i = 0; i <= document_sizes.size(); ++i) put(idx, int64_t(i));

  AtomicFile b(prefix + ".bin"), x(prefix + ".idx");
  b.write(bin.data(), bin.size());
  x.write(idx.data(), idx.size());
  b.commit();
  x.commit();
}

Binidx read_binidx(const std::string& prefix) {
  const std::string idx_path = prefix + ".idx", bin_path = prefix + ".bin";
  auto idx_file = MappedFile::open(idx_path);
  auto bin_file = MappedFile::open(bin_path);
  ByteReader r(idx_file->data(), idx_file->size(), idx_path);
  if (r.remaining() < sizeof kMagic || std::memcmp(r.take(sizeof kMagic, "magic"), kMagic, sizeof kMagic) != 0)
    fail(idx_path, ": not a binidx index (no MMIDIDX magic)");
  const uint64_t version = r.read<uint64_t>("version");
  if (version != 1) fail(idx_path, ": binidx version ", version, " is not supported (1 is)");
  Binidx out;
  out.dtype_code = r.read<uint8_t>("dtype");
  const size_t item = item_size(out.dtype_code);
  if (item == 0) fail(idx_path, ": dtype code ", int(out.dtype_code), " is not an integer token type");
  const uint64_t n = r.read<uint64_t>("size count");
  const uint64_t m = r.read<uint64_t>("document count");
  // sizes (4 bytes each), pointers (8) and doc_idx (8) must fit in what is left.
  if (n > r.remaining() / 12 || m > (r.remaining() - n * 12) / 8)
    fail(idx_path, ": ", n, " sizes and ", m, " document indices do not fit in the file");
  if (bin_file->size() % item != 0)
    fail(bin_path, ": ", bin_file->size(), " bytes is not a whole number of ", item, "-byte tokens");
  const uint64_t count = bin_file->size() / item;

  out.document_sizes.resize(n);
  uint64_t total = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const int32_t s = r.read<int32_t>("sizes");
    if (s < 0) fail(idx_path, ": size ", i, " is negative (", s, ")");
    out.document_sizes[i] = uint64_t(s);
    total += uint64_t(s);
  }
  if (total != count) fail(idx_path, ": the sizes add up to ", total, " tokens but ", bin_path, " holds ", count);
  uint64_t expected = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const int64_t p = r.read<int64_t>("pointers");
    if (p < 0 || uint64_t(p) != expected)
      fail(idx_path, ": byte offset ", i, " is ", p, ", expected ", expected, " (the sizes before it)");
    expected += out.document_sizes[i] * item;
  }

  out.tokens.resize(count);
  const uint8_t* p = bin_file->data();
  for (uint64_t i = 0; i < count; ++i) {
    const int64_t t = load_token(p + i * item, out.dtype_code);
    if (t < 0 || t > std::numeric_limits<int32_t>::max()) fail(bin_path, ": token ", i, " has the invalid id ", t);
    out.tokens[i] = static_cast<int32_t>(t);
  }
  return out;
}

}  // namespace rwkv
