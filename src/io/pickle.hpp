// A restricted unpickler for the pickles inside torch.save checkpoints (spec §4.2): a stack machine
// over a fixed opcode subset that builds plain values. It never runs code: GLOBAL accepts only an
// allow-list (OrderedDict, the tensor rebuild functions, storage types) and REDUCE only those.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "io/tensor.hpp"

namespace rwkv::pickle {

struct Object;
struct None {};

// Scalars are held inline; everything else lives in the Unpickled arena and is referred to by
// pointer. So copies (memo, BINGET) cost nothing whatever the value's size, and self-referencing
// or deeply nested containers are freed without recursion.
using Value = std::variant<None, bool, int64_t, double, Object*>;

struct Str {
  std::string text;  // UTF-8 bytes as stored
};
struct Bytes {
  std::string data;
};
// A GLOBAL from the allow-list, as a callable (OrderedDict, _rebuild_*) or as a storage-type marker.
struct Global {
  std::string module, name;
};
struct Tuple {
  std::vector<Value> items;
};
struct List {
  std::vector<Value> items;
};
// dict or OrderedDict; keeps insertion order, and duplicate keys as they come.
struct Dict {
  std::vector<std::pair<Value, Value>> items;
};
// What persistent_load makes of ("storage", type, key, location, numel): the bytes are in the
// archive entry <root>/data/<key>, numel elements of dtype.
struct Storage {
  DType dtype = DType::F32;
  std::string key, location;
  int64_t numel = 0;
};
// _rebuild_tensor_v2(storage, storage_offset, size, stride, ...): a view into a storage, in
// elements. Offsets, sizes and strides are non-negative; bounds are the caller's to check.
struct TensorView {
  const Storage* storage = nullptr;
  int64_t storage_offset = 0;
  std::vector<int64_t> size, stride;
};

struct Object {
  std::variant<Str, Bytes, Global, Tuple, List, Dict, Storage, TensorView> v;
};

// The result of unpickling: the value STOP returned and the arena owning every object.
class Unpickled {
 public:
  const Value& root() const { return root_; }

 private:
  friend class Machine;
  std::vector<std::unique_ptr<Object>> arena_;
  Value root_;
};

// Runs the pickle in `bytes`; `what` (e.g. "model.pth: archive/data.pkl") starts every error.
// Errors name the opcode and its offset; a forbidden global reads "forbidden pickle global 'os.system'".
Unpickled unpickle(std::span<const uint8_t> bytes, const std::string& what);

// The object of type T that v refers to, or nullptr.
template <typename T>
const T* as(const Value& v) {
  Object* const* o = std::get_if<Object*>(&v);
  return o && *o ? std::get_if<T>(&(*o)->v) : nullptr;
}

// "int", "str", "tuple", ... for messages.
const char* type_name(const Value& v);

}  // namespace rwkv::pickle
