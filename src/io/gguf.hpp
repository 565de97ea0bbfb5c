// The GGUF container of llama.cpp/ggml (version 3, little-endian): typed metadata and tensors.
// Container only: which keys and tensor names an RWKV model uses is the model loader's business.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "io/mapped_file.hpp"
#include "io/tensor.hpp"

namespace rwkv {

// Metadata value types, numbered as in the file (formats.md §1).
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
// "u8", "i32", "string", "array", ... (for messages); "type N" for an invalid id.
std::string gguf_type_name(GgufType t);

// One metadata value. It keeps the exact GGUF type (a u32 stays a u32, a float's bits are kept
// as they are), so that reading a file and writing it again reproduces the same bytes; llama.cpp
// checks value types strictly (formats.md T16), so writers must choose types deliberately.
class GgufValue {
 public:
  static GgufValue u8(uint8_t v);
  static GgufValue i8(int8_t v);
  static GgufValue u16(uint16_t v);
  static GgufValue i16(int16_t v);
  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue i64(int64_t v);
  static GgufValue f32(float v);
  static GgufValue f64(double v);
  static GgufValue boolean(bool v);
  static GgufValue str(std::string v);
  // An array of `elem` values; every item must have type `elem` (throws otherwise). Arrays of
  // arrays may mix element types in their inner arrays, as the format allows.
  static GgufValue array(GgufType elem, const std::vector<GgufValue>& items);
  static GgufValue str_array(std::vector<std::string> items);
  static GgufValue i32_array(const std::vector<int32_t>& items);
  static GgufValue u32_array(const std::vector<uint32_t>& items);
  static GgufValue i64_array(const std::vector<int64_t>& items);
  static GgufValue u64_array(const std::vector<uint64_t>& items);
  static GgufValue f32_array(const std::vector<float>& items);
  static GgufValue f64_array(const std::vector<double>& items);

  GgufType type() const { return type_; }
  bool is_integer() const;  // u8 .. i64 (not bool)

  // Lenient scalar views: nullopt when the type does not fit. as_uint accepts every integer
  // type holding a non-negative value, as_int every integer type whose value fits int64,
  // as_float f32 and f64.
  std::optional<uint64_t> as_uint() const;
  std::optional<int64_t> as_int() const;
  std::optional<double> as_float() const;
  std::optional<bool> as_bool() const;
  const std::string* as_string() const;  // nullptr unless a string

  // Arrays. array_type/array_size/array_at throw Error if this is not an array.
  bool is_array() const { return type_ == GgufType::ARRAY; }
  GgufType array_type() const;
  size_t array_size() const;
  GgufValue array_at(size_t i) const;
  const std::vector<std::string>* as_string_array() const;  // nullptr unless array of string
  // Arrays of any integer type / of f32 or f64; nullopt otherwise (or if a value does not fit).
  std::optional<std::vector<int64_t>> as_int_array() const;
  std::optional<std::vector<double>> as_float_array() const;

  // Exact equality: same type, same bits (so NaN == NaN with the same payload, 0.0 != -0.0).
  bool operator==(const GgufValue& o) const;
  // Short form for messages and dumps: u32 5, string "rwkv7", array<string>[65536].
  std::string to_string() const;

 private:
  friend class GgufCodec;  // the reader/writer in gguf.cpp fill and walk the storage directly
  GgufValue() = default;
  static size_t scalar_size(GgufType t);  // bytes of a fixed-size type, 0 for string/array

  GgufType type_ = GgufType::U8;
  GgufType elem_ = GgufType::U8;     // element type of an array
  uint64_t bits_ = 0;                // a scalar's little-endian bytes, zero-extended
  std::string string_;               // STRING
  // Arrays are stored by element kind so that large arrays (65536 tokens) stay compact:
  std::vector<uint8_t> raw_;         // array of a fixed-size type: its bytes as in the file
  std::vector<std::string> strings_; // array of strings
  std::vector<GgufValue> arrays_;    // array of arrays
};

std::ostream& operator<<(std::ostream& os, const GgufValue& v);

using GgufMetadata = std::vector<std::pair<std::string, GgufValue>>;

struct GgufFile {
  uint32_t version = 3;
  uint32_t alignment = 32;  // general.alignment, or 32 when absent
  GgufMetadata metadata;    // in file order
  TensorSet tensors;        // in file order; data points into `file` (zero copy)
  std::shared_ptr<const MappedFile> file;
  size_t data_offset = 0;   // start of the tensor data section in the file

  const std::string& path() const { return tensors.source; }
  const GgufValue* find(const std::string& key) const;
  // Lenient typed look-ups: nullopt when the key is absent; throws Error naming file and key when
  // it is present with an incompatible type (a string where a number is wanted, a negative
  // value for get_uint).
  std::optional<uint64_t> get_uint(const std::string& key) const;
  std::optional<int64_t> get_int(const std::string& key) const;
  std::optional<double> get_float(const std::string& key) const;
  std::optional<bool> get_bool(const std::string& key) const;
  std::optional<std::string> get_string(const std::string& key) const;
  const std::vector<std::string>* get_string_array(const std::string& key) const;
  std::optional<std::vector<int64_t>> get_int_array(const std::string& key) const;
};

// Maps and validates a GGUF file (version 2 or 3). Throws Error naming file and field/tensor.
// Tensor types outside the ones DType covers (K-quants, IQ types, ...) are rejected.
GgufFile read_gguf(const std::string& path);

// Writes a version-3 GGUF: metadata and tensor infos in the given order, tensor data in the same
// order, each tensor padded with zeros to `alignment`. `alignment` must be a power of two >= 8;
// general.alignment is written only if it is in `metadata` (as u32, equal to `alignment`), and
// must be there when alignment != 32. Tensor names are at most 63 bytes (ggml's limit). The file
// appears atomically: written to path + ".tmp", then renamed; nothing is left on error.
void write_gguf(const std::string& path, const GgufMetadata& metadata,
                const std::vector<Tensor>& tensors, uint32_t alignment = 32);

// ggml tensor type ids (not rwkv.cpp's, formats.md T1).
std::optional<uint32_t> ggml_type_of(DType t);         // nullopt for U8
std::optional<DType> dtype_of_ggml_type(uint32_t id);   // nullopt for unsupported ids
std::string ggml_type_name(uint32_t id);                // "Q4_K", or "unknown" for unassigned ids

}  // namespace rwkv
