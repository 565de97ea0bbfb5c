// ggml's quantizer and dequantizer over GGUF files, for scripts/check-ggml-quants.sh: built
// against a llama.cpp build's libggml-base (ggml's public API only), never part of librwkv.
//
//   ggml_quants quantize IN.gguf OUT.gguf LIKE.gguf
//       every tensor of IN (float) gets the type it has in LIKE (a file `rwkv quantize` wrote),
//       quantized by ggml_quantize_chunk without an importance matrix (what llama-quantize runs);
//       OUT is written by ggml's GGUF writer with IN's metadata
//   ggml_quants dequantize IN.gguf OUT.gguf
//       every tensor to F32 with ggml's to_float (what llama-quantize --allow-requantize F32 runs)
//   ggml_quants error Q.gguf REF.gguf
//       relative RMS error of Q's block-quantized tensors (dequantized by ggml) against REF's
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ggml.h"
#include "gguf.h"

namespace {

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "ggml_quants: %s\n", message.c_str());
  std::exit(1);
}

struct File {
  gguf_context* gguf = nullptr;
  ggml_context* ctx = nullptr;  // the tensors with their data
  explicit File(const std::string& path) {
    gguf = gguf_init_from_file(path.c_str(), {false, &ctx});
    if (!gguf) die("cannot read " + path);
  }
  ~File() {
    gguf_free(gguf);
    ggml_free(ctx);
  }
  int64_t count() const { return gguf_get_n_tensors(gguf); }
  ggml_tensor* tensor(int64_t i) const { return ggml_get_tensor(ctx, gguf_get_tensor_name(gguf, i)); }
  ggml_tensor* find(const char* name) const { return ggml_get_tensor(ctx, name); }
};

std::vector<float> to_f32(const ggml_tensor* t) {
  std::vector<float> out(static_cast<size_t>(ggml_nelements(t)));
  if (t->type == GGML_TYPE_F32) std::memcpy(out.data(), t->data, out.size() * sizeof(float));
  else ggml_get_type_traits(t->type)->to_float(t->data, out.data(), ggml_nelements(t));
  return out;
}

// Writes every tensor of IN as type_of(tensor) to OUT, with IN's metadata (ggml's GGUF writer):
// quantized by ggml_quantize_chunk, or dequantized by to_float.
template <class TypeOf>
void rewrite(const File& in, const std::string& out_path, const TypeOf& type_of) {
  ggml_context* meta = ggml_init({static_cast<size_t>(in.count() + 1) * ggml_tensor_overhead(), nullptr, true});
  std::vector<std::vector<uint8_t>> store(static_cast<size_t>(in.count()));
  gguf_context* out = gguf_init_empty();
  gguf_set_kv(out, in.gguf);
  for (int64_t i = 0; i < in.count(); ++i) {
    const ggml_tensor* t = in.tensor(i);
    const ggml_type type = type_of(t);
    ggml_tensor* n = ggml_new_tensor(meta, type, ggml_n_dims(t), t->ne);
    ggml_set_name(n, t->name);
    auto& data = store[static_cast<size_t>(i)];
    data.resize(ggml_nbytes(n));
    n->data = data.data();
    const std::vector<float> values = to_f32(t);
    if (type == GGML_TYPE_F32) std::memcpy(n->data, values.data(), values.size() * sizeof(float));
    else ggml_quantize_chunk(type, values.data(), n->data, 0, ggml_nrows(t), t->ne[0], nullptr);
    gguf_add_tensor(out, n);
  }
  if (!gguf_write_to_file(out, out_path.c_str(), false)) die("cannot write " + out_path);
  gguf_free(out);
  ggml_free(meta);
}

void quantize(const std::string& in_path, const std::string& out_path, const std::string& like_path) {
  const File in(in_path), types(like_path);
  rewrite(in, out_path, [&](const ggml_tensor* t) {
    const ggml_tensor* ref = types.find(t->name);
    if (!ref) die(std::string("tensor ") + t->name + " is not in " + like_path);
    if (t->type != GGML_TYPE_F32) die(std::string("tensor ") + t->name + " of " + in_path + " is not F32");
    return ref->type;
  });
}

void dequantize(const std::string& in_path, const std::string& out_path) {
  rewrite(File(in_path), out_path, [](const ggml_tensor*) { return GGML_TYPE_F32; });
}

void error(const std::string& q_path, const std::string& ref_path) {
  const File q(q_path), ref(ref_path);
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < q.count(); ++i) {
    const ggml_tensor* t = q.tensor(i);
    if (!ggml_is_quantized(t->type)) continue;
    const ggml_tensor* r = ref.find(t->name);
    if (!r || ggml_nelements(r) != ggml_nelements(t)) die(std::string("tensor ") + t->name + " differs in " + ref_path);
    const std::vector<float> a = to_f32(t), b = to_f32(r);
    for (size_t j = 0; j < a.size(); ++j) {
      diff += (static_cast<double>(a[j]) - b[j]) * (static_cast<double>(a[j]) - b[j]);
      norm += static_cast<double>(b[j]) * b[j];
    }
  }
  std::printf("%.3f%%\n", norm > 0 ? 100.0 * std::sqrt(diff / norm) : 0.0);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "quantize" && argc == 5) quantize(argv[2], argv[3], argv[4]);
  else if (mode == "dequantize" && argc == 4) dequantize(argv[2], argv[3]);
  else if (mode == "error" && argc == 4) error(argv[2], argv[3]);
  else die("usage: ggml_quants quantize IN OUT LIKE | dequantize IN OUT | error Q REF");
  return 0;
}
