// The restricted unpickler: opcode loop over the protocol-2 subset of spec §4.2 plus the listed
// protocol-4 opcodes. Semantics follow CPython's _pickle.c (including its rule that an opcode may
// not pop below the last MARK); anything outside the subset is an Error.
#include "io/pickle.hpp"

#include <bit>
#include <cstring>
#include <unordered_map>

#include "io/error.hpp"
#include "io/mapped_file.hpp"

namespace rwkv::pickle {

namespace {

// Hostile-input caps. Every other amount (objects, memo entries, container items) is bounded by
// the number of opcodes, so by the pickle's length.
constexpr size_t kMaxStack = 1'000'000;
constexpr size_t kMaxMarks = 1'000'000;

struct StorageType {
  const char* name;
  DType dtype;
};
// Spec §4.2: storage-type globals of module `torch`.
constexpr StorageType kStorageTypes[] = {
    {"FloatStorage", DType::F32},  {"HalfStorage", DType::F16}, {"BFloat16Storage", DType::BF16},
    {"DoubleStorage", DType::F64}, {"LongStorage", DType::I64}, {"IntStorage", DType::I32},
    {"ByteStorage", DType::U8},    {"BoolStorage", DType::U8},
};

const StorageType* find_storage_type(const Global& g) {
  if (g.module != "torch") return nullptr;
  for (const StorageType& t : kStorageTypes)
    if (g.name == t.name) return &t;
  return nullptr;
}

bool is(const Global& g, const char* module, const char* name) {
  return g.module == module && g.name == name;
}

bool allowed(const Global& g) {
  return is(g, "collections", "OrderedDict") || is(g, "torch._utils", "_rebuild_tensor_v2") ||
         is(g, "torch._utils", "_rebuild_parameter") || find_storage_type(g) != nullptr;
}

const char* opcode_name(uint8_t op) {
  switch (op) {
    case 0x80: return "PROTO";
    case 0x95: return "FRAME";
    case '}': return "EMPTY_DICT";
    case ']': return "EMPTY_LIST";
    case ')': return "EMPTY_TUPLE";
    case '(': return "MARK";
    case 't': return "TUPLE";
    case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";
    case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";
    case 0x94: return "MEMOIZE";
    case 'h': return "BINGET";
    case 'j': return "LONG_BINGET";
    case 'X': return "BINUNICODE";
    case 0x8c: return "SHORT_BINUNICODE";
    case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING";
    case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    case 'c': return "GLOBAL";
    case 0x93: return "STACK_GLOBAL";
    case 'K': return "BININT1";
    case 'M': return "BININT2";
    case 'J': return "BININT";
    case 0x8a: return "LONG1";
    case 'G': return "BINFLOAT";
    case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";
    case 'N': return "NONE";
    case 'Q': return "BINPERSID";
    case 'R': return "REDUCE";
    case 's': return "SETITEM";
    case 'u': return "SETITEMS";
    case 'e': return "APPENDS";
    case 'b': return "BUILD";
    case '.': return "STOP";
    default: return nullptr;
  }
}

std::string hex_byte(uint8_t b) {
  const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

}  // namespace

class Machine {
 public:
  Machine(std::span<const uint8_t> bytes, const std::string& what)
      : in_(bytes.data(), bytes.size(), what), what_(what) {}

  Unpickled run() {
    for (;;) {
      op_offset_ = in_.pos();
      op_ = in_.read<uint8_t>("opcode");
      if (!opcode_name(op_))
        fail(what_, ": unsupported pickle opcode ", hex_byte(op_), printable(op_), " at offset ", op_offset_);
      if (op_ == '.') {
        out_.root_ = pop();
        return std::move(out_);
      }
      step();
    }
  }

 private:
  [[noreturn]] void bad(const std::string& message) const {
    fail(what_, ": pickle opcode ", opcode_name(op_), " at offset ", op_offset_, ": ", message);
  }
  static std::string printable(uint8_t b) {
    return b >= 0x20 && b < 0x7f ? std::string(" ('") + static_cast<char>(b) + "')" : std::string();
  }

  template <typename T>
  Value make(T object) {
    out_.arena_.push_back(std::make_unique<Object>(Object{std::move(object)}));
    return out_.arena_.back().get();
  }

  // The stack above the last MARK is what an opcode may touch (CPython's "fence").
  size_t fence() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(Value v) {
    if (stack_.size() >= kMaxStack) bad("stack exceeds " + std::to_string(kMaxStack) + " items");
    stack_.push_back(v);
  }
  Value pop() {
    if (stack_.size() <= fence()) bad("stack underflow");
    Value v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value& top() {
    if (stack_.size() <= fence()) bad("stack underflow");
    return stack_.back();
  }
  std::vector<Value> pop_mark() {
    if (marks_.empty()) bad("no MARK to pop to");
    const size_t k = marks_.back();
    marks_.pop_back();
    std::vector<Value> items(stack_.begin() + static_cast<std::ptrdiff_t>(k), stack_.end());
    stack_.resize(k);
    return items;
  }

  void memo_put(uint64_t index) { memo_[index] = top(); }
  void memo_get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) bad("memo index " + std::to_string(index) + " was never stored");
    push(it->second);
  }

  void push_global(std::string module, std::string name) {
    Global g{std::move(module), std::move(name)};
    if (!allowed(g))
      fail(what_, ": forbidden pickle global '", g.module, ".", g.name, "' at offset ", op_offset_);
    push(make(std::move(g)));
  }
  std::string read_line(const char* field) {
    const uint8_t* start = in_.take(0, field);
    const void* newline = std::memchr(start, '\n', in_.remaining());
    if (!newline) bad(std::string("unterminated ") + field);
    const size_t n = static_cast<size_t>(static_cast<const uint8_t*>(newline) - start);
    std::string s = in_.read_string(n, field);
    in_.take(1, field);
    return s;
  }

  int64_t read_long1() {
    const uint8_t n = in_.read<uint8_t>("LONG1 length");
    const uint8_t* p = in_.take(n, "LONG1 bytes");
    if (n > 8) bad("integer of " + std::to_string(n) + " bytes is too large");
    uint64_t u = 0;
    for (size_t i = 0; i < n; ++i) u |= static_cast<uint64_t>(p[i]) << (8 * i);
    if (n > 0 && n < 8 && (p[n - 1] & 0x80)) u |= ~uint64_t{0} << (8 * n);  // sign-extend
    return static_cast<int64_t>(u);
  }

  static bool as_int(const Value& v, int64_t& out) {
    if (const int64_t* i = std::get_if<int64_t>(&v)) {
      out = *i;
      return true;
    }
    return false;
  }
  // A tuple of non-negative ints (tensor size or stride).
  std::vector<int64_t> int_tuple(const Value& v, const char* field) {
    const Tuple* t = as<Tuple>(v);
    if (!t) bad(std::string(field) + " is a " + type_name(v) + ", expected a tuple");
    std::vector<int64_t> out;
    out.reserve(t->items.size());
    for (const Value& item : t->items) {
      int64_t i;
      if (!as_int(item, i) || i < 0)
        bad(std::string(field) + " holds something other than a non-negative int");
      out.push_back(i);
    }
    return out;
  }

  // Spec §4.2: persistent_load(("storage", type, key, location, numel)).
  Value persistent_load(const Value& pid) {
    const Tuple* t = as<Tuple>(pid);
    if (!t || t->items.size() != 5) bad("persistent id is not a 5-tuple");
    const Str* tag = as<Str>(t->items[0]);
    const Global* type = as<Global>(t->items[1]);
    const Str* key = as<Str>(t->items[2]);
    const Str* location = as<Str>(t->items[3]);
    Storage s;
    if (!tag || tag->text != "storage") bad("persistent id does not start with 'storage'");
    const StorageType* st = type ? find_storage_type(*type) : nullptr;
    if (!st) bad("persistent id does not name a storage type");
    if (!key || !location) bad("persistent id key or location is not a string");
    if (!as_int(t->items[4], s.numel) || s.numel < 0)
      bad("persistent id element count is not a non-negative int");
    s.dtype = st->dtype;
    s.key = key->text;
    s.location = location->text;
    return make(std::move(s));
  }

  // REDUCE on the allow-listed callables only (spec §4.2).
  Value call(const Global& f, const Tuple& args) {
    const std::vector<Value>& a = args.items;
    if (is(f, "collections", "OrderedDict")) {
      if (!a.empty()) bad("OrderedDict called with arguments");
      return make(Dict{});
    }
    if (is(f, "torch._utils", "_rebuild_tensor_v2")) {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (a.size() != 6 && a.size() != 7) bad("_rebuild_tensor_v2 takes 6 or 7 arguments");
      TensorView t;
      t.storage = as<Storage>(a[0]);
      if (!t.storage)
        bad("_rebuild_tensor_v2: first argument is a " + std::string(type_name(a[0])) + ", not a storage");
      if (!as_int(a[1], t.storage_offset) || t.storage_offset < 0)
        bad("_rebuild_tensor_v2: storage offset is not a non-negative int");
      t.size = int_tuple(a[2], "_rebuild_tensor_v2 size");
      t.stride = int_tuple(a[3], "_rebuild_tensor_v2 stride");
      if (t.size.size() != t.stride.size()) bad("_rebuild_tensor_v2: size and stride differ in length");
      return make(std::move(t));
    }
    if (is(f, "torch._utils", "_rebuild_parameter")) {
      // (tensor, requires_grad, backward_hooks): the parameter is just its tensor.
      if (a.size() != 3 || !as<TensorView>(a[0]))
        bad("_rebuild_parameter takes (tensor, requires_grad, hooks)");
      return a[0];
    }
    bad("'" + f.module + "." + f.name + "' is not callable");
  }

  void step() {
    switch (op_) {
      case 0x80: in_.read<uint8_t>("protocol"); return;  // PROTO: any version, opcodes are checked
      case 0x95: {                                       // FRAME: framing is only a read-ahead hint
        const uint64_t n = in_.read<uint64_t>("frame length");
        if (n > in_.remaining()) bad("frame of " + std::to_string(n) + " bytes is longer than the rest");
        return;
      }
      case '}': push(make(Dict{})); return;
      case ']': push(make(List{})); return;
      case ')': push(make(Tuple{})); return;
      case '(':
        if (marks_.size() >= kMaxMarks) bad("more than " + std::to_string(kMaxMarks) + " open MARKs");
        marks_.push_back(stack_.size());
        return;
      case 't': push(make(Tuple{pop_mark()})); return;
      case 0x85:
      case 0x86:
      case 0x87: {
        std::vector<Value> items(static_cast<size_t>(op_ - 0x84));
        for (size_t i = items.size(); i-- > 0;) items[i] = pop();
        push(make(Tuple{std::move(items)}));
        return;
      }
      case 'q': memo_put(in_.read<uint8_t>("memo index")); return;
      case 'r': memo_put(in_.read<uint32_t>("memo index")); return;
      case 0x94: memo_put(memo_.size()); return;
      case 'h': memo_get(in_.read<uint8_t>("memo index")); return;
      case 'j': memo_get(in_.read<uint32_t>("memo index")); return;
      // Lengths are checked against the remaining bytes by ByteReader before anything is allocated.
      case 'X': push(make(Str{in_.read_string(in_.read<uint32_t>("length"), "BINUNICODE")})); return;
      case 0x8c: push(make(Str{in_.read_string(in_.read<uint8_t>("length"), "SHORT_BINUNICODE")})); return;
      case 'U': push(make(Str{in_.read_string(in_.read<uint8_t>("length"), "SHORT_BINSTRING")})); return;
      case 'T': {
        const int32_t n = in_.read<int32_t>("length");
        if (n < 0) bad("negative length");
        push(make(Str{in_.read_string(static_cast<size_t>(n), "BINSTRING")}));
        return;
      }
      case 'B': push(make(Bytes{in_.read_string(in_.read<uint32_t>("length"), "BINBYTES")})); return;
      case 'C': push(make(Bytes{in_.read_string(in_.read<uint8_t>("length"), "SHORT_BINBYTES")})); return;
      case 'c': {
        std::string module = read_line("GLOBAL module");
        std::string name = read_line("GLOBAL name");
        push_global(std::move(module), std::move(name));
        return;
      }
      case 0x93: {
        const Value name = pop(), module = pop();
        const Str* n = as<Str>(name);
        const Str* m = as<Str>(module);
        if (!n || !m) bad("module and name are not strings");
        push_global(m->text, n->text);
        return;
      }
      case 'K': push(int64_t{in_.read<uint8_t>("int")}); return;
      case 'M': push(int64_t{in_.read<uint16_t>("int")}); return;
      case 'J': push(int64_t{in_.read<int32_t>("int")}); return;
      case 0x8a: push(read_long1()); return;
      case 'G': {  // BINFLOAT: 8-byte big-endian double
        const uint8_t* p = in_.take(8, "float");
        uint64_t u = 0;
        for (size_t i = 0; i < 8; ++i) u = (u << 8) | p[i];
        push(std::bit_cast<double>(u));
        return;
      }
      case 0x88: push(true); return;
      case 0x89: push(false); return;
      case 'N': push(None{}); return;
      case 'Q': {
        const Value pid = pop();
        push(persistent_load(pid));
        return;
      }
      case 'R': {
        const Value args = pop(), callable = pop();
        const Global* f = as<Global>(callable);
        const Tuple* a = as<Tuple>(args);
        if (!f) bad(std::string("cannot call a ") + type_name(callable));
        if (!a) bad("arguments are not a tuple");
        push(call(*f, *a));
        return;
      }
      case 's': {
        const Value value = pop(), key = pop();
        dict_below("SETITEM").push_back({key, value});
        return;
      }
      case 'u': {
        std::vector<Value> items = pop_mark();
        if (items.size() % 2) bad("odd number of items for key/value pairs");
        auto& dict = dict_below("SETITEMS");
        for (size_t i = 0; i < items.size(); i += 2) dict.push_back({items[i], items[i + 1]});
        return;
      }
      case 'e': {
        std::vector<Value> items = pop_mark();
        Object* const* o = std::get_if<Object*>(&top());
        List* list = o ? std::get_if<List>(&(*o)->v) : nullptr;
        if (!list) bad(std::string("target is a ") + type_name(top()) + ", not a list");
        list->items.insert(list->items.end(), items.begin(), items.end());
        return;
      }
      case 'b':
        // Spec §4.2: for state dicts BUILD only sets _metadata, which we do not need.
        pop();
        top();
        return;
      default: bad("not implemented");  // unreachable: run() rejected it
    }
  }

  std::vector<std::pair<Value, Value>>& dict_below(const char* opcode) {
    Object* const* o = std::get_if<Object*>(&top());
    Dict* dict = o ? std::get_if<Dict>(&(*o)->v) : nullptr;
    if (!dict) bad(std::string(opcode) + " target is a " + type_name(top()) + ", not a dict");
    return dict->items;
  }

  ByteReader in_;
  const std::string& what_;
  Unpickled out_;
  std::vector<Value> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value> memo_;
  size_t op_offset_ = 0;
  uint8_t op_ = 0;
};

Unpickled unpickle(std::span<const uint8_t> bytes, const std::string& what) {
  return Machine(bytes, what).run();
}

const char* type_name(const Value& v) {
  struct Namer {
    const char* operator()(None) const { return "None"; }
    const char* operator()(bool) const { return "bool"; }
    const char* operator()(int64_t) const { return "int"; }
    const char* operator()(double) const { return "float"; }
    const char* operator()(const Object* o) const {
      if (!o) return "null";
      static constexpr const char* names[] = {"str",  "bytes", "global",  "tuple",
                                              "list", "dict",  "storage", "tensor"};
      return names[o->v.index()];
    }
  };
  return std::visit(Namer{}, v);
}

}  // namespace rwkv::pickle
