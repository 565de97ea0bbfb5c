// GGUF reading and writing (formats.md §1; ggml docs/gguf.md). Not a model loader: no key or
// tensor name is interpreted here except general.alignment.
// Every count and length read from the file is checked against the bytes left before anything
// is allocated from it, so a hostile header ends in an Error, not in a huge allocation.
#include "io/gguf.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iomanip>
#include <iterator>
#include <limits>
#include <sstream>
#include <unordered_set>

#include "io/atomic_file.hpp"
#include "io/error.hpp"

namespace rwkv {

static_assert(std::endian::native == std::endian::little,
              "GGUF is read and written with memcpy, which assumes a little-endian host");

namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // bytes "GGUF" read as a little-endian u32
constexpr uint32_t kGgufVersion = 3;
constexpr uint32_t kDefaultAlignment = 32;
constexpr const char* kAlignmentKey = "general.alignment";
constexpr size_t kMaxKeyBytes = 65535;        // the spec's limit for keys
constexpr size_t kMaxNameBytesRead = 256;     // generous: llama.cpp itself stops at 63
constexpr size_t kMaxNameBytesWrite = 63;     // ggml GGML_MAX_NAME = 64 including the NUL
constexpr int kMaxArrayDepth = 8;             // nested arrays are legal but rare; bound recursion
constexpr uint32_t kMaxDims = 4;
// Smallest encodings, used to reject counts that cannot fit in the bytes left:
constexpr size_t kMinKvBytes = 8 + 4 + 1;              // empty key, type, 1-byte value
constexpr size_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, n_dims, ne[0], type, offset
constexpr size_t kMinStringBytes = 8;
constexpr size_t kMinArrayBytes = 4 + 8;

bool is_valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::F64); }
bool is_power_of_two_at_least_8(uint64_t a) { return a >= 8 && (a & (a - 1)) == 0; }
uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }
// A count that fits in the file can still be far more entries than the file really holds (a
// bogus count in a multi-GB model file); reserve at most this many and let real entries grow it.
size_t reserve_hint(uint64_t count) { return static_cast<size_t>(std::min<uint64_t>(count, 1u << 16)); }

// ggml type ids (ggml.h enum ggml_type), by index. Ids 4, 5, 31-33 and 36-38 were assigned and
// later removed; they keep their names so that an old file gets a clear message.
constexpr const char* kGgmlTypeNames[] = {
    "F32",      "F16",      "Q4_0",     "Q4_1",       "Q4_2",       "Q4_3",       "Q5_0",
    "Q5_1",     "Q8_0",     "Q8_1",     "Q2_K",       "Q3_K",       "Q4_K",       "Q5_K",
    "Q6_K",     "Q8_K",     "IQ2_XXS",  "IQ2_XS",     "IQ3_XXS",    "IQ1_S",      "IQ4_NL",
    "IQ3_S",    "IQ2_S",    "IQ4_XS",   "I8",         "I16",        "I32",        "I64",
    "F64",      "IQ1_M",    "BF16",     "Q4_0_4_4",   "Q4_0_4_8",   "Q4_0_8_8",   "TQ1_0",
    "TQ2_0",    "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4",
};

}  // namespace

// ---- type ids

std::string ggml_type_name(uint32_t id) {
  if (id < std::size(kGgmlTypeNames)) return kGgmlTypeNames[id];
  return "unknown";
}

std::optional<uint32_t> ggml_type_of(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q4_1: return 3;
    case DType::Q5_0: return 6;
    case DType::Q5_1: return 7;
    case DType::Q8_0: return 8;
    case DType::Q4_K: return 12;
    case DType::Q5_K: return 13;
    case DType::Q6_K: return 14;
    case DType::I32: return 26;
    case DType::I64: return 27;
    case DType::F64: return 28;
    case DType::BF16: return 30;
    case DType::U8: break;  // ggml has I8 (signed) only
  }
  return std::nullopt;
}

std::optional<DType> dtype_of_ggml_type(uint32_t id) {
  switch (id) {
    case 0: return DType::F32;
    case 1: return DType::F16;
    case 2: return DType::Q4_0;
    case 3: return DType::Q4_1;
    case 6: return DType::Q5_0;
    case 7: return DType::Q5_1;
    case 8: return DType::Q8_0;
    case 12: return DType::Q4_K;
    case 13: return DType::Q5_K;
    case 14: return DType::Q6_K;
    case 26: return DType::I32;
    case 27: return DType::I64;
    case 28: return DType::F64;
    case 30: return DType::BF16;
    default: return std::nullopt;
  }
}

std::string gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::U8: return "u8";
    case GgufType::I8: return "i8";
    case GgufType::U16: return "u16";
    case GgufType::I16: return "i16";
    case GgufType::U32: return "u32";
    case GgufType::I32: return "i32";
    case GgufType::F32: return "f32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "string";
    case GgufType::ARRAY: return "array";
    case GgufType::U64: return "u64";
    case GgufType::I64: return "i64";
    case GgufType::F64: return "f64";
  }
  return "type " + std::to_string(static_cast<uint32_t>(t));
}

// ---- GgufValue

namespace {

bool is_integer_type(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
    case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}

// The value of an integer scalar stored as zero-extended little-endian bits, sign-extended for
// the signed types. Unsigned values above INT64_MAX come back as nullopt.
std::optional<int64_t> int_of_bits(GgufType t, uint64_t bits) {
  switch (t) {
    case GgufType::U8: case GgufType::U16: case GgufType::U32: return static_cast<int64_t>(bits);
    case GgufType::U64:
      if (bits > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
      return static_cast<int64_t>(bits);
    case GgufType::I8: return static_cast<int8_t>(static_cast<uint8_t>(bits));
    case GgufType::I16: return static_cast<int16_t>(static_cast<uint16_t>(bits));
    case GgufType::I32: return static_cast<int32_t>(static_cast<uint32_t>(bits));
    case GgufType::I64: return static_cast<int64_t>(bits);
    default: return std::nullopt;
  }
}

std::optional<double> float_of_bits(GgufType t, uint64_t bits) {
  if (t == GgufType::F32) return std::bit_cast<float>(static_cast<uint32_t>(bits));
  if (t == GgufType::F64) return std::bit_cast<double>(bits);
  return std::nullopt;
}

}  // namespace

size_t GgufValue::scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

// Reader and writer of values: the one place that knows the storage layout besides GgufValue.
class GgufCodec {
 public:
  static GgufValue scalar(GgufType t, uint64_t bits) {
    GgufValue v;
    v.type_ = t;
    v.bits_ = bits;
    return v;
  }
  static GgufValue empty_array(GgufType elem) {
    GgufValue v;
    v.type_ = GgufType::ARRAY;
    v.elem_ = elem;
    return v;
  }
  static void append(GgufValue& array, const GgufValue& item) {
    size_t n = GgufValue::scalar_size(array.elem_);
    if (n) {
      const auto* p = reinterpret_cast<const uint8_t*>(&item.bits_);
      array.raw_.insert(array.raw_.end(), p, p + n);
    } else if (array.elem_ == GgufType::STRING) {
      array.strings_.push_back(item.string_);
    } else {
      array.arrays_.push_back(item);
    }
  }

  // Array nesting of a value: 0 for a scalar or string, 1 for an array of scalars, ...
  static int depth(const GgufValue& v) {
    if (v.type_ != GgufType::ARRAY) return 0;
    int d = 0;
    for (const GgufValue& a : v.arrays_) d = std::max(d, depth(a));
    return d + 1;
  }

  // ---- reading; `field` names the key for messages ("key tokenizer.ggml.tokens")
  static std::string read_string(ByteReader& r, const char* field) {
    uint64_t n = r.read<uint64_t>(field);
    if (n > r.remaining())
      fail(r.what(), ": ", field, ": string length ", n, " runs past the end of the file (",
           r.remaining(), " bytes left at offset ", r.pos(), ")");
    return r.read_string(static_cast<size_t>(n), field);
  }

  static GgufValue read_value(ByteReader& r, GgufType t, const std::string& field, int depth) {
    if (size_t n = GgufValue::scalar_size(t)) {
      GgufValue v = scalar(t, 0);
      std::memcpy(&v.bits_, r.take(n, field.c_str()), n);
      if (t == GgufType::BOOL && v.bits_ > 1)
        fail(r.what(), ": ", field, ": invalid bool value ", v.bits_, " (must be 0 or 1)");
      return v;
    }
    if (t == GgufType::STRING) {
      GgufValue v = scalar(t, 0);
      v.string_ = read_string(r, field.c_str());
      return v;
    }
    // An array: u32 element type, u64 count, elements.
    if (depth >= kMaxArrayDepth)
      fail(r.what(), ": ", field, ": arrays nested deeper than ", kMaxArrayDepth, " levels");
    uint32_t elem = r.read<uint32_t>(field.c_str());
    if (!is_valid_type(elem))
      fail(r.what(), ": ", field, ": array has unknown element type ", elem);
    GgufValue v = empty_array(static_cast<GgufType>(elem));
    uint64_t count = r.read<uint64_t>(field.c_str());
    size_t elem_bytes = GgufValue::scalar_size(v.elem_);
    size_t min_bytes = elem_bytes ? elem_bytes
                       : v.elem_ == GgufType::STRING ? kMinStringBytes : kMinArrayBytes;
    if (count > r.remaining() / min_bytes)
      fail(r.what(), ": ", field, ": array of ", count, " ", gguf_type_name(v.elem_),
           " elements cannot fit in the ", r.remaining(), " bytes left");
    if (elem_bytes) {
      const uint8_t* p = r.take(static_cast<size_t>(count) * elem_bytes, field.c_str());
      v.raw_.assign(p, p + count * elem_bytes);
      if (v.elem_ == GgufType::BOOL)
        for (uint8_t b : v.raw_)
          if (b > 1) fail(r.what(), ": ", field, ": invalid bool value ", int{b}, " in array");
    } else if (v.elem_ == GgufType::STRING) {
      v.strings_.reserve(reserve_hint(count));
      for (uint64_t i = 0; i < count; ++i) v.strings_.push_back(read_string(r, field.c_str()));
    } else {
      v.arrays_.reserve(reserve_hint(count));
      for (uint64_t i = 0; i < count; ++i)
        v.arrays_.push_back(read_value(r, GgufType::ARRAY, field, depth + 1));
    }
    return v;
  }

  // ---- writing
  static void put_bytes(std::vector<uint8_t>& out, const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  }
  template <typename T>
  static void put(std::vector<uint8_t>& out, T v) {
    put_bytes(out, &v, sizeof v);
  }
  static void put_string(std::vector<uint8_t>& out, const std::string& s) {
    put<uint64_t>(out, s.size());
    put_bytes(out, s.data(), s.size());
  }
  // The value without its leading type id (arrays start with their element type).
  static void put_value(std::vector<uint8_t>& out, const GgufValue& v) {
    if (size_t n = GgufValue::scalar_size(v.type_)) {
      put_bytes(out, &v.bits_, n);
    } else if (v.type_ == GgufType::STRING) {
      put_string(out, v.string_);
    } else {
      put<uint32_t>(out, static_cast<uint32_t>(v.elem_));
      put<uint64_t>(out, v.array_size());
      if (GgufValue::scalar_size(v.elem_)) {
        put_bytes(out, v.raw_.data(), v.raw_.size());
      } else if (v.elem_ == GgufType::STRING) {
        for (const std::string& s : v.strings_) put_string(out, s);
      } else {
        for (const GgufValue& a : v.arrays_) put_value(out, a);
      }
    }
  }
};

GgufValue GgufValue::u8(uint8_t v) { return GgufCodec::scalar(GgufType::U8, v); }
GgufValue GgufValue::i8(int8_t v) { return GgufCodec::scalar(GgufType::I8, static_cast<uint8_t>(v)); }
GgufValue GgufValue::u16(uint16_t v) { return GgufCodec::scalar(GgufType::U16, v); }
GgufValue GgufValue::i16(int16_t v) { return GgufCodec::scalar(GgufType::I16, static_cast<uint16_t>(v)); }
GgufValue GgufValue::u32(uint32_t v) { return GgufCodec::scalar(GgufType::U32, v); }
GgufValue GgufValue::i32(int32_t v) { return GgufCodec::scalar(GgufType::I32, static_cast<uint32_t>(v)); }
GgufValue GgufValue::u64(uint64_t v) { return GgufCodec::scalar(GgufType::U64, v); }
GgufValue GgufValue::i64(int64_t v) { return GgufCodec::scalar(GgufType::I64, static_cast<uint64_t>(v)); }
GgufValue GgufValue::f32(float v) { return GgufCodec::scalar(GgufType::F32, std::bit_cast<uint32_t>(v)); }
GgufValue GgufValue::f64(double v) { return GgufCodec::scalar(GgufType::F64, std::bit_cast<uint64_t>(v)); }
GgufValue GgufValue::boolean(bool v) { return GgufCodec::scalar(GgufType::BOOL, v ? 1 : 0); }

GgufValue GgufValue::str(std::string v) {
  GgufValue r = GgufCodec::scalar(GgufType::STRING, 0);
  r.string_ = std::move(v);
  return r;
}

GgufValue GgufValue::array(GgufType elem, const std::vector<GgufValue>& items) {
  if (!is_valid_type(static_cast<uint32_t>(elem)))
    fail("GgufValue::array: invalid element type ", static_cast<uint32_t>(elem));
  GgufValue r = GgufCodec::empty_array(elem);
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].type_ != elem)
      fail("GgufValue::array: item ", i, " is ", gguf_type_name(items[i].type_), ", expected ",
           gguf_type_name(elem));
    GgufCodec::append(r, items[i]);
  }
  return r;
}

GgufValue GgufValue::str_array(std::vector<std::string> items) {
  GgufValue r = GgufCodec::empty_array(GgufType::STRING);
  r.strings_ = std::move(items);
  return r;
}

namespace {
template <typename T>
GgufValue numeric_array(GgufType elem, const std::vector<T>& items, GgufValue (*make)(T)) {
  std::vector<GgufValue> values;
  values.reserve(items.size());
  for (T x : items) values.push_back(make(x));
  return GgufValue::array(elem, values);
}
}  // namespace

GgufValue GgufValue::i32_array(const std::vector<int32_t>& v) { return numeric_array(GgufType::I32, v, &i32); }
GgufValue GgufValue::u32_array(const std::vector<uint32_t>& v) { return numeric_array(GgufType::U32, v, &u32); }
GgufValue GgufValue::i64_array(const std::vector<int64_t>& v) { return numeric_array(GgufType::I64, v, &i64); }
GgufValue GgufValue::u64_array(const std::vector<uint64_t>& v) { return numeric_array(GgufType::U64, v, &u64); }
GgufValue GgufValue::f32_array(const std::vector<float>& v) { return numeric_array(GgufType::F32, v, &f32); }
GgufValue GgufValue::f64_array(const std::vector<double>& v) { return numeric_array(GgufType::F64, v, &f64); }

bool GgufValue::is_integer() const { return is_integer_type(type_); }

std::optional<uint64_t> GgufValue::as_uint() const {
  if (type_ == GgufType::U64) return bits_;
  auto i = int_of_bits(type_, bits_);
  if (!i || *i < 0) return std::nullopt;
  return static_cast<uint64_t>(*i);
}

std::optional<int64_t> GgufValue::as_int() const { return int_of_bits(type_, bits_); }
std::optional<double> GgufValue::as_float() const { return float_of_bits(type_, bits_); }

std::optional<bool> GgufValue::as_bool() const {
  if (type_ != GgufType::BOOL) return std::nullopt;
  return bits_ != 0;
}

const std::string* GgufValue::as_string() const {
  return type_ == GgufType::STRING ? &string_ : nullptr;
}

GgufType GgufValue::array_type() const {
  if (type_ != GgufType::ARRAY) fail("GGUF value ", to_string(), " is not an array");
  return elem_;
}

size_t GgufValue::array_size() const {
  GgufType e = array_type();
  if (size_t n = scalar_size(e)) return raw_.size() / n;
  return e == GgufType::STRING ? strings_.size() : arrays_.size();
}

GgufValue GgufValue::array_at(size_t i) const {
  size_t n = array_size();
  if (i >= n) fail("GGUF array index ", i, " out of range (size ", n, ")");
  if (size_t sz = scalar_size(elem_)) {
    uint64_t bits = 0;
    std::memcpy(&bits, raw_.data() + i * sz, sz);
    return GgufCodec::scalar(elem_, bits);
  }
  if (elem_ == GgufType::STRING) return str(strings_[i]);
  return arrays_[i];
}

const std::vector<std::string>* GgufValue::as_string_array() const {
  return type_ == GgufType::ARRAY && elem_ == GgufType::STRING ? &strings_ : nullptr;
}

std::optional<std::vector<int64_t>> GgufValue::as_int_array() const {
  if (type_ != GgufType::ARRAY || !is_integer_type(elem_)) return std::nullopt;
  size_t sz = scalar_size(elem_), n = raw_.size() / sz;
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    uint64_t bits = 0;
    std::memcpy(&bits, raw_.data() + i * sz, sz);
    auto x = int_of_bits(elem_, bits);
    if (!x) return std::nullopt;
    out[i] = *x;
  }
  return out;
}

std::optional<std::vector<double>> GgufValue::as_float_array() const {
  if (type_ != GgufType::ARRAY || (elem_ != GgufType::F32 && elem_ != GgufType::F64))
    return std::nullopt;
  size_t sz = scalar_size(elem_), n = raw_.size() / sz;
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) {
    uint64_t bits = 0;
    std::memcpy(&bits, raw_.data() + i * sz, sz);
    out[i] = *float_of_bits(elem_, bits);
  }
  return out;
}

bool GgufValue::operator==(const GgufValue& o) const {
  if (type_ != o.type_) return false;
  if (type_ == GgufType::STRING) return string_ == o.string_;
  if (type_ != GgufType::ARRAY) return bits_ == o.bits_;
  return elem_ == o.elem_ && raw_ == o.raw_ && strings_ == o.strings_ && arrays_ == o.arrays_;
}

std::string GgufValue::to_string() const {
  std::ostringstream s;
  s << gguf_type_name(type_);
  if (type_ == GgufType::ARRAY) {
    s << '<' << gguf_type_name(elem_) << ">[" << array_size() << ']';
  } else if (type_ == GgufType::STRING) {
    constexpr size_t kShown = 60;  // keep messages to one readable line
    s << " \"" << string_.substr(0, kShown) << (string_.size() > kShown ? "...\"" : "\"");
  } else if (type_ == GgufType::BOOL) {
    s << (bits_ ? " true" : " false");
  } else if (auto f = as_float()) {
    s << ' ' << std::setprecision(type_ == GgufType::F32 ? 9 : 17) << *f;
  } else if (type_ == GgufType::U64) {
    s << ' ' << bits_;
  } else {
    s << ' ' << *as_int();
  }
  return s.str();
}

std::ostream& operator<<(std::ostream& os, const GgufValue& v) { return os << v.to_string(); }

// ---- GgufFile look-ups

const GgufValue* GgufFile::find(const std::string& key) const {
  for (const auto& [k, v] : metadata)
    if (k == key) return &v;
  return nullptr;
}

std::optional<uint64_t> GgufFile::get_uint(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (auto u = v->as_uint()) return u;
  fail(path(), ": key ", key, " is ", v->to_string(), ", expected a non-negative integer");
}

std::optional<int64_t> GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (auto i = v->as_int()) return i;
  fail(path(), ": key ", key, " is ", v->to_string(), ", expected an integer");
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (auto f = v->as_float()) return f;
  fail(path(), ": key ", key, " is ", v->to_string(), ", expected f32 or f64");
}

std::optional<bool> GgufFile::get_bool(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (auto b = v->as_bool()) return b;
  fail(path(), ": key ", key, " is ", v->to_string(), ", expected bool");
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (const std::string* s = v->as_string()) return *s;
  fail(path(), ": key ", key, " is ", v->to_string(), ", expected string");
}

const std::vector<std::string>* GgufFile::get_string_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return nullptr;
  if (const auto* a = v->as_string_array()) return a;
  fail(path(), ": key ", key, " is ", v->to_string(), ", expected array<string>");
}

std::optional<std::vector<int64_t>> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (auto a = v->as_int_array()) return a;
  fail(path(), ": key ", key, " is ", v->to_string(), ", expected an array of integers");
}

// ---- reading

namespace {

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // PyTorch order
  uint64_t offset;             // from the start of the data section
  uint64_t nbytes;
};

// Validates ne (ggml order) for `dtype` and returns the tensor's byte size; `what` prefixes
// messages ("model.gguf: tensor blk.0.x").
uint64_t checked_nbytes(const std::string& what, DType dtype, const std::vector<uint64_t>& ne) {
  constexpr uint64_t kMaxDim = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t numel = 1;
  for (size_t d = 0; d < ne.size(); ++d) {
    if (ne[d] == 0 || ne[d] > kMaxDim)
      fail(what, " has invalid dimension ne[", d, "] = ", static_cast<int64_t>(ne[d]));
    if (__builtin_mul_overflow(numel, ne[d], &numel) || numel > kMaxDim)
      fail(what, " has too many elements (dimensions overflow 64 bits)");
  }
  size_t block = dtype_block_size(dtype);
  if (ne[0] % block != 0)
    fail(what, " has ne[0] = ", ne[0], ", not a multiple of the ", dtype_name(dtype),
         " block size ", block);
  uint64_t nbytes;
  if (__builtin_mul_overflow(numel / block, uint64_t{dtype_block_bytes(dtype)}, &nbytes))
    fail(what, " is too large (byte size overflows 64 bits)");
  return nbytes;
}

TensorInfo read_tensor_info(ByteReader& r, uint32_t alignment) {
  const std::string& path = r.what();
  TensorInfo t;
  t.name = GgufCodec::read_string(r, "tensor name");
  if (t.name.empty()) fail(path, ": tensor at offset ", r.pos(), " has an empty name");
  if (t.name.size() > kMaxNameBytesRead)
    fail(path, ": tensor name of ", t.name.size(), " bytes is too long (", t.name.substr(0, 64),
         "...)");
  const std::string what = path + ": tensor " + t.name;
  const std::string field = "tensor " + t.name;
  uint32_t n_dims = r.read<uint32_t>(field.c_str());
  if (n_dims == 0 || n_dims > kMaxDims)
    fail(what, " has n_dims ", n_dims, " (must be 1..", kMaxDims, ")");
  std::vector<uint64_t> ne(n_dims);
  for (uint64_t& n : ne) n = r.read<uint64_t>(field.c_str());
  uint32_t type = r.read<uint32_t>(field.c_str());
  std::optional<DType> dtype = dtype_of_ggml_type(type);
  if (!dtype) {
    std::string name = ggml_type_name(type);
    if (name == "unknown") fail(what, " has unknown ggml type ", type);
    fail(what, " has ggml type ", name, " (", type, "), which is not supported yet");
  }
  t.dtype = *dtype;
  t.nbytes = checked_nbytes(what, t.dtype, ne);
  t.offset = r.read<uint64_t>(field.c_str());
  if (t.offset % alignment != 0)
    fail(what, " has data offset ", t.offset, ", not a multiple of the alignment ", alignment);
  t.shape.assign(ne.rbegin(), ne.rend());
  return t;
}

uint32_t read_alignment(const std::string& path, const GgufMetadata& metadata) {
  for (const auto& [key, value] : metadata) {
    if (key != kAlignmentKey) continue;
    if (value.type() != GgufType::U32)
      fail(path, ": key ", kAlignmentKey, " is ", value.to_string(), ", expected u32");
    uint64_t a = *value.as_uint();
    if (!is_power_of_two_at_least_8(a))
      fail(path, ": key ", kAlignmentKey, " = ", a, " is not a power of two >= 8");
    return static_cast<uint32_t>(a);
  }
  return kDefaultAlignment;
}

}  // namespace

GgufFile read_gguf(const std::string& path) {
  GgufFile f;
  f.file = MappedFile::open(path);
  f.tensors.source = path;
  ByteReader r(f.file->data(), f.file->size(), path);

  uint32_t magic = r.read<uint32_t>("magic");
  if (magic != kGgufMagic) {
    std::ostringstream hex;
    hex << std::hex << std::setfill('0') << std::setw(8) << __builtin_bswap32(magic);
    fail(path, ": not a GGUF file (magic bytes 0x", hex.str(), ", expected \"GGUF\")");
  }
  f.version = r.read<uint32_t>("version");
  uint32_t swapped = __builtin_bswap32(f.version);
  if (f.version != swapped && swapped >= 1 && swapped <= 3)
    fail(path, ": big-endian GGUF file (version ", swapped, " byte-swapped), not supported");
  if (f.version == 1)
    fail(path, ": GGUF version 1 (32-bit counts) is not supported; re-convert the model");
  if (f.version != 2 && f.version != 3) fail(path, ": unsupported GGUF version ", f.version);

  uint64_t n_tensors = r.read<uint64_t>("tensor_count");
  uint64_t n_kv = r.read<uint64_t>("metadata_kv_count");
  if (n_kv > r.remaining() / kMinKvBytes)
    fail(path, ": metadata_kv_count ", n_kv, " cannot fit in the file (", f.file->size(), " bytes)");
  if (n_tensors > r.remaining() / kMinTensorInfoBytes)
    fail(path, ": tensor_count ", n_tensors, " cannot fit in the file (", f.file->size(), " bytes)");

  std::unordered_set<std::string> keys;
  f.metadata.reserve(reserve_hint(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = GgufCodec::read_string(r, "metadata key");
    if (key.empty()) fail(path, ": metadata key ", i, " is empty");
    if (key.size() > kMaxKeyBytes) fail(path, ": metadata key ", i, " is longer than 65535 bytes");
    // Old gguf-py versions could write general.architecture twice; ggml rejects that too.
    if (!keys.insert(key).second) fail(path, ": duplicate metadata key ", key);
    const std::string field = "key " + key;
    uint32_t type = r.read<uint32_t>(field.c_str());
    if (!is_valid_type(type)) fail(path, ": key ", key, " has unknown value type ", type);
    GgufValue value = GgufCodec::read_value(r, static_cast<GgufType>(type), field, 0);
    f.metadata.emplace_back(std::move(key), std::move(value));
  }
  f.alignment = read_alignment(path, f.metadata);

  std::vector<TensorInfo> infos;
  infos.reserve(reserve_hint(n_tensors));
  std::unordered_set<std::string> names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    infos.push_back(read_tensor_info(r, f.alignment));
    if (!names.insert(infos.back().name).second)
      fail(path, ": duplicate tensor ", infos.back().name);
  }
  f.data_offset = static_cast<size_t>(align_up(r.pos(), f.alignment));

  // Every tensor inside the file, and no two sharing bytes (a writer bug or a crafted file).
  const uint64_t size = f.file->size();
  for (const TensorInfo& t : infos) {
    if (f.data_offset > size || t.offset > size - f.data_offset ||
        t.nbytes > size - f.data_offset - t.offset)
      fail(path, ": tensor ", t.name, " data (", t.nbytes, " bytes at data offset ", t.offset,
           ") extends past the end of the file");
  }
  std::vector<const TensorInfo*> by_offset;
  for (const TensorInfo& t : infos) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& a = *by_offset[i - 1];
    const TensorInfo& b = *by_offset[i];
    if (a.offset + a.nbytes > b.offset)
      fail(path, ": tensors ", a.name, " and ", b.name, " overlap (data offsets ", a.offset,
           "+", a.nbytes, " and ", b.offset, ")");
  }

  for (TensorInfo& info : infos) {
    Tensor t;
    t.name = std::move(info.name);
    t.dtype = info.dtype;
    t.shape = std::move(info.shape);
    t.data = f.file->data() + f.data_offset + info.offset;
    t.owner = f.file;
    t.mapped = true;
    f.tensors.add(std::move(t));
  }
  return f;
}

// ---- writing

void write_gguf(const std::string& path, const GgufMetadata& metadata,
                const std::vector<Tensor>& tensors, uint32_t alignment) {
  if (!is_power_of_two_at_least_8(alignment))
    fail(path, ": alignment ", alignment, " is not a power of two >= 8");

  // The whole header is built and checked in memory first, so that invalid input never touches
  // the disk.
  std::vector<uint8_t> head;
  GgufCodec::put<uint32_t>(head, kGgufMagic);
  GgufCodec::put<uint32_t>(head, kGgufVersion);
  GgufCodec::put<uint64_t>(head, tensors.size());
  GgufCodec::put<uint64_t>(head, metadata.size());

  std::unordered_set<std::string> keys;
  bool alignment_written = false;
  for (const auto& [key, value] : metadata) {
    if (key.empty()) fail(path, ": empty metadata key");
    if (key.size() > kMaxKeyBytes) fail(path, ": metadata key longer than 65535 bytes");
    if (!keys.insert(key).second) fail(path, ": duplicate metadata key ", key);
    if (GgufCodec::depth(value) > kMaxArrayDepth)
      fail(path, ": key ", key, ": arrays nested deeper than ", kMaxArrayDepth, " levels");
    if (key == kAlignmentKey) {
      if (value.type() != GgufType::U32 || *value.as_uint() != alignment)
        fail(path, ": key ", kAlignmentKey, " is ", value.to_string(), ", expected u32 ", alignment);
      alignment_written = true;
    }
    GgufCodec::put_string(head, key);
    GgufCodec::put<uint32_t>(head, static_cast<uint32_t>(value.type()));
    GgufCodec::put_value(head, value);
  }
  if (alignment != kDefaultAlignment && !alignment_written)
    fail(path, ": alignment ", alignment, " requires key ", kAlignmentKey,
         " in the metadata (readers assume ", kDefaultAlignment, " without it)");

  std::unordered_set<std::string> names;
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    const std::string what = path + ": tensor " + t.name;
    if (t.name.empty()) fail(path, ": tensor with an empty name");
    if (t.name.size() > kMaxNameBytesWrite)
      fail(what, ": name is ", t.name.size(), " bytes, more than ggml's ", kMaxNameBytesWrite);
    if (!names.insert(t.name).second) fail(path, ": duplicate tensor ", t.name);
    std::optional<uint32_t> type = ggml_type_of(t.dtype);
    if (!type) fail(what, " has type ", dtype_name(t.dtype), ", which GGUF cannot store");
    if (t.shape.empty() || t.shape.size() > kMaxDims)
      fail(what, " has ", t.shape.size(), " dimensions (GGUF stores 1..", kMaxDims, ")");
    std::vector<uint64_t> ne;
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it)
      ne.push_back(*it < 0 ? 0 : static_cast<uint64_t>(*it));  // negative: reported as invalid
    uint64_t nbytes = checked_nbytes(what, t.dtype, ne);
    if (!t.data) fail(what, " has no data");
    GgufCodec::put_string(head, t.name);
    GgufCodec::put<uint32_t>(head, static_cast<uint32_t>(ne.size()));
    for (uint64_t n : ne) GgufCodec::put<uint64_t>(head, n);
    GgufCodec::put<uint32_t>(head, *type);
    GgufCodec::put<uint64_t>(head, offset);
    sizes.push_back(nbytes);
    offset += align_up(nbytes, alignment);
  }
  head.resize(static_cast<size_t>(align_up(head.size(), alignment)), 0);

  AtomicFile out(path);
  out.write(head.data(), head.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    out.write(tensors[i].data, static_cast<size_t>(sizes[i]));
    out.write_zeros(align_up(sizes[i], alignment) - sizes[i]);
  }
  out.commit();
}

}  // namespace rwkv
