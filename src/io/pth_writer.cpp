// The .pth writer: the pickle opcodes torch.save emits for a state dict, then the zip.
#include "io/pth_writer.hpp"

#include <cstring>

#include "io/error.hpp"
#include "io/zip_writer.hpp"

namespace rwkv {

namespace {

// The pickle of a state dict, protocol 2, built opcode by opcode (spec §4.2 lists them).
class PickleBuilder {
 public:
  PickleBuilder() {
    op(0x80);  // PROTO 2
    op(2);
  }
  void op(uint8_t b) { out_.push_back(b); }
  void global(const std::string& module, const std::string& name) {
    op('c');
    text(module + "\n" + name + "\n");
  }
  void str(const std::string& s) {  // BINUNICODE
    op('X');
    const uint32_t n = uint32_t(s.size());
    for (int i = 0; i < 4; ++i) op(uint8_t(n >> (8 * i)));
    text(s);
  }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {  // BININT1
      op('K');
      op(uint8_t(v));
    } else if (v >= 0 && v < 65536) {  // BININT2
      op('M');
      op(uint8_t(v));
      op(uint8_t(v >> 8));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {  // BININT
      op('J');
      for (int i = 0; i < 4; ++i) op(uint8_t(uint32_t(v) >> (8 * i)));
    } else {  // LONG1: the shortest little-endian two's complement
      uint8_t bytes[8];
      std::memcpy(bytes, &v, 8);
      int n = 8;
      while (n > 1 && ((bytes[n - 1] == 0 && !(bytes[n - 2] & 0x80)) || (bytes[n - 1] == 0xff && (bytes[n - 2] & 0x80)))) --n;
      op(0x8a);
      op(uint8_t(n));
      for (int i = 0; i < n; ++i) op(bytes[i]);
    }
  }
  void int_tuple(const std::vector<int64_t>& v) {
    if (v.empty()) return op(')');
    op('(');  // MARK
    for (int64_t x : v) integer(x);
    op('t');  // TUPLE
  }
  void empty_ordered_dict() {
    global("collections", "OrderedDict");
    op(')');
    op('R');  // REDUCE: OrderedDict()
  }
  std::vector<uint8_t> finish() {
    op('.');  // STOP
    return std::move(out_);
  }

 private:
  void text(const std::string& s) { out_.insert(out_.end(), s.begin(), s.end()); }
  std::vector<uint8_t> out_;
};

const char* storage_type(DType t, const std::string& name) {
  switch (t) {
    case DType::F32: return "FloatStorage";
    case DType::F16: return "HalfStorage";
    case DType::BF16: return "BFloat16Storage";
    case DType::F64: return "DoubleStorage";
    case DType::I64: return "LongStorage";
    case DType::I32: return "IntStorage";
    case DType::U8: return "ByteStorage";
    default: fail("tensor ", name, " is ", dtype_name(t), ", which a .pth cannot hold");
  }
}

}  // namespace

void write_pth(const std::string& path, const std::vector<Tensor>& tensors, const PthWriteOptions& options) {
  // torch.save batches SETITEMS by 1000 pairs; so do we.
  constexpr size_t kBatch = 1000;
  PickleBuilder p;
  p.empty_ordered_dict();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (i % kBatch == 0) p.op('(');  // MARK
    p.str(t.name);
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.op('(');
    // The storage: persistent id ("storage", type, key, location, numel).
    p.op('(');
    p.str("storage");
    p.global("torch", storage_type(t.dtype, t.name));
    p.str(std::to_string(i));
    p.str("cpu");
    p.integer(int64_t(t.numel()));
    p.op('t');
    p.op('Q');  // BINPERSID
    p.integer(0);  // storage offset
    std::vector<int64_t> stride(t.shape.size());
    int64_t s = 1;
    for (size_t d = t.shape.size(); d-- > 0;) {
      stride[d] = s;
      s *= t.shape[d];
    }
    p.int_tuple(t.shape);
    p.int_tuple(stride);
    p.op(0x89);  // requires_grad = False
    p.empty_ordered_dict();  // backward hooks
    p.op('t');
    p.op('R');
    if (i % kBatch == kBatch - 1 || i + 1 == tensors.size()) p.op('u');  // SETITEMS
  }
  const std::vector<uint8_t> pickle = p.finish();

  ZipWriter zip(path, options.force_zip64);
  const std::string root = options.root + "/";
  zip.add(root + "data.pkl", pickle);
  const std::string order = "little";
  zip.add(root + "byteorder", std::span(reinterpret_cast<const uint8_t*>(order.data()), order.size()));
  for (size_t i = 0; i < tensors.size(); ++i)
    zip.add(root + "data/" + std::to_string(i), std::span(tensors[i].data, tensors[i].nbytes()));
  const std::string version = "3\n";
  zip.add(root + "version", std::span(reinterpret_cast<const uint8_t*>(version.data()), version.size()));
  zip.finish();
}

}  // namespace rwkv
