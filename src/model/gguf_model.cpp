// GGUF <-> canonical weights: architecture names, hyper-parameter keys, layer-0 dummies.
#include "model/gguf_model.hpp"

#include <filesystem>
#include <regex>

#include "io/error.hpp"
#include "io/gguf.hpp"
#include "io/quantize.hpp"

namespace rwkv {

namespace {

std::string arch_key(Arch a) {
  switch (a) {
    case Arch::RWKV6: return "rwkv6";
    case Arch::RWKV7: return "rwkv7";
    default: return "rwkv";  // the GGUF spec's architecture for RWKV-4 (and our RWKV-5)
  }
}

// Tensors that llama.cpp's converter keeps in float32 whatever the output type (§2.5).
bool is_large_matrix(const Tensor& t) {
  static const std::regex keep_f32(R"(.*(_norm\.weight|time_mix_first\.weight|time_mix_w1\.weight|time_mix_w2\.weight|time_mix_decay_w1\.weight|time_mix_decay_w2\.weight|time_mix_lerp_fused\.weight)$)");
  size_t dims = 0;
  for (int64_t d : t.shape) dims += d != 1;
  const bool weight = t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".weight") == 0;
  return dims >= 2 && weight && !std::regex_match(t.name, keep_f32);
}

Tensor converted(const Tensor& t, SaveType type) {
  if (type == SaveType::Keep || !is_large_matrix(t)) {
    if (type == SaveType::Keep || t.dtype == DType::F32) return t;
    return make_f32_tensor(t.name, t.shape, t.to_f32());
  }
  const DType target = type == SaveType::F16 ? DType::F16 : type == SaveType::BF16 ? DType::BF16 : DType::F32;
  if (t.dtype == target) return t;
  auto values = t.to_f32();
  if (target == DType::F32) return make_f32_tensor(t.name, t.shape, std::move(values));
  std::vector<uint8_t> bytes(values.size() * 2);
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t h = target == DType::F16 ? fp32_to_fp16(values[i]) : fp32_to_bf16(values[i]);
    bytes[2 * i] = static_cast<uint8_t>(h);
    bytes[2 * i + 1] = static_cast<uint8_t>(h >> 8);
  }
  return make_owned_tensor(t.name, target, t.shape, std::move(bytes));
}

// llama.cpp's general.file_type ("mostly" type), taken from the attention key matrix.
uint32_t file_type_of(const std::vector<Tensor>& tensors) {
  for (const Tensor& t : tensors)
    if (t.name == "blk.0.time_mix_key.weight") switch (t.dtype) {
        case DType::F32: return 0;
        case DType::F16: return 1;
        case DType::Q4_0: return 2;
        case DType::Q4_1: return 3;
        case DType::Q8_0: return 7;
        case DType::Q5_0: return 8;
        case DType::Q5_1: return 9;
        case DType::Q4_K: return 14;  // MOSTLY_Q4_K_S
        case DType::Q5_K: return 16;  // MOSTLY_Q5_K_S
        case DType::Q6_K: return 18;
        case DType::BF16: return 32;
        default: break;
      }
  return 0;
}

}  // namespace

SaveType save_type_from_string(const std::string& s) {
  if (s == "keep") return SaveType::Keep;
  if (s == "f32") return SaveType::F32;
  if (s == "f16") return SaveType::F16;
  if (s == "bf16") return SaveType::BF16;
  fail("unknown output type '", s, "' (expected keep, f32, f16 or bf16)");
}

Weights weights_from_gguf(const std::string& path) {
  GgufFile f = read_gguf(path);
  Weights w;
  w.path = path;
  w.format = "GGUF v" + std::to_string(f.version);
  Hparams& hp = w.hp;
  const auto arch = f.get_string("general.architecture");
  if (!arch) fail(path, ": no general.architecture key");
  std::string a = *arch;
  if (a == "rwkv") {
    const auto v = f.get_uint("rwkv.architecture_version");
    if (!v) fail(path, ": architecture rwkv without rwkv.architecture_version");
    if (*v != 4 && *v != 5) fail(path, ": rwkv.architecture_version ", *v, " is not supported (4 or 5)");
    hp.arch = *v == 4 ? Arch::RWKV4 : Arch::RWKV5;
  } else if (a == "rwkv4") {
    hp.arch = Arch::RWKV4;
  } else if (a == "rwkv5") {
    hp.arch = Arch::RWKV5;
  } else if (a == "rwkv6") {
    hp.arch = Arch::RWKV6;
  } else if (a == "rwkv7") {
    hp.arch = Arch::RWKV7;
  } else {
    fail(path, ": architecture '", a, "' is not supported (rwkv, rwkv6 and rwkv7 are; hybrids such as arwkv7 and rwkv6qwen2 are not)");
  }
  if (auto eps = f.get_float(a + ".attention.layer_norm_epsilon")) hp.layer_norm_eps = static_cast<float>(*eps);
  if (hp.arch == Arch::RWKV5) {
    if (auto eps = f.get_float(a + ".attention.group_norm_epsilon")) hp.group_norm_eps = static_cast<float>(*eps);
  }
  if (auto head = f.get_uint(a + ".wkv.head_size")) {
    if (*head == 0 || *head > 4096) fail(path, ": ", a, ".wkv.head_size ", *head, " is invalid");
    hp.head_size = static_cast<int>(*head);
  }
  if (auto r = f.get_uint(a + ".rescale_every_n_layers")) {
    if (*r > 1000000) fail(path, ": ", a, ".rescale_every_n_layers ", *r, " is invalid");
    hp.rescale_every = static_cast<int>(*r);
  }
  GgufMetadata tokenizer;
  for (const auto& [key, value] : f.metadata)
    if (key.starts_with("tokenizer.")) tokenizer.emplace_back(key, value);
  if (!tokenizer.empty()) w.tokenizer = std::make_shared<const GgufMetadata>(std::move(tokenizer));
  w.tensors = std::move(f.tensors);
  infer_hparams(w.tensors, hp);
  // The keys are a cross-check only; sizes come from the tensors (formats.md T7).
  auto check = [&](const std::string& key, int value) {
    if (auto v = f.get_uint(a + "." + key); v && *v != static_cast<uint64_t>(value))
      fail(path, ": ", a, ".", key, " is ", *v, " but the tensors say ", value);
  };
  check("block_count", hp.n_layer);
  check("embedding_length", hp.n_embd);
  check("feed_forward_length", hp.dim_ffn);
  if (hp.arch == Arch::RWKV5 || hp.arch == Arch::RWKV6 || hp.arch == Arch::RWKV7) check("wkv.head_size", hp.head_size);
  return w;
}

namespace {

// The tensors of a GGUF file of ours: the canonical ones, and for RWKV-7 the layer-0
// time_mix_v0/v1/v2 that llama.cpp requires with the a-LoRA's shapes; layer 0 never uses
// them, so its converter writes copies of a0/a1/a2 (formats.md §2.4, trap T6).
std::vector<Tensor> file_tensors(const Weights& w) {
  std::vector<Tensor> tensors = w.tensors.tensors();
  if (w.hp.arch == Arch::RWKV7)
    for (const char* s : {"0", "1", "2"}) {
      const std::string vname = Weights::layer(0, std::string("time_mix_v") + s + ".weight");
      if (w.tensors.find(vname)) continue;
      Tensor d = w.get(Weights::layer(0, std::string("time_mix_a") + s + ".weight"));
      d.name = vname;
      tensors.push_back(d);
    }
  return tensors;
}

using Converter = std::function<Tensor(size_t index, size_t count, const Tensor&)>;

void write_model(const Weights& w, const std::string& path, const Converter& convert,
                 const GgufMetadata& extra_metadata = {}, const std::vector<Tensor>& extra_tensors = {}) {
  const Hparams& hp = w.hp;
  const std::string a = arch_key(hp.arch);
  std::vector<Tensor> tensors = file_tensors(w);
  bool quantized = false;
  for (size_t i = 0; i < tensors.size(); ++i) {
    tensors[i] = convert(i, tensors.size(), tensors[i]);
    quantized |= dtype_is_quantized(tensors[i].dtype);
  }
  std::string name = std::filesystem::path(w.path).stem().string();
  GgufMetadata md = {
      {"general.architecture", GgufValue::str(a)},
      {"general.type", GgufValue::str("model")},
      {"general.name", GgufValue::str(name.empty() ? "rwkv" : name)},
      {"general.file_type", GgufValue::u32(file_type_of(tensors))},
  };
  if (quantized) md.emplace_back("general.quantization_version", GgufValue::u32(2));
  if (hp.arch == Arch::RWKV4 || hp.arch == Arch::RWKV5)
    md.emplace_back("rwkv.architecture_version", GgufValue::u32(static_cast<uint32_t>(hp.arch)));
  auto u32 = [&](const std::string& key, int v) { md.emplace_back(a + "." + key, GgufValue::u32(static_cast<uint32_t>(v))); };
  u32("context_length", 1048576);  // RWKV has no context limit; llama.cpp requires the key
  u32("embedding_length", hp.n_embd);
  u32("block_count", hp.n_layer);
  u32("feed_forward_length", hp.dim_ffn);
  u32("attention.head_count", 0);  // unused by RWKV, required by llama.cpp (trap T15)
  md.emplace_back(a + ".attention.layer_norm_epsilon", GgufValue::f32(hp.layer_norm_eps));
  if (hp.arch != Arch::RWKV4) u32("wkv.head_size", hp.head_size);
  switch (hp.arch) {
    case Arch::RWKV4: u32("rescale_every_n_layers", 0); break;
    case Arch::RWKV5:
      u32("rescale_every_n_layers", 0);
      md.emplace_back("rwkv.attention.group_norm_epsilon", GgufValue::f32(hp.group_norm_eps));
      u32("minor_version", !hp.v5_gate ? 0 : hp.v5_decay_per_channel ? 2 : 1);
      break;
    case Arch::RWKV6:
      u32("rescale_every_n_layers", hp.rescale_every);
      u32("time_mix_extra_dim", hp.lora_mix);
      u32("time_decay_extra_dim", hp.lora_decay);
      break;
    case Arch::RWKV7:
      u32("attention.decay_lora_rank", hp.lora_w);
      u32("attention.iclr_lora_rank", hp.lora_a);
      u32("attention.value_residual_mix_lora_rank", hp.lora_v > 0 ? hp.lora_v : hp.lora_a);
      u32("attention.gate_lora_rank", hp.lora_g);
      break;
  }
  if (w.tokenizer)
    for (const auto& [key, value] : *w.tokenizer) {
      if (!key.starts_with("tokenizer.")) fail(path, ": tokenizer metadata key ", key, " is outside tokenizer.*");
      md.emplace_back(key, value);
    }
  md.insert(md.end(), extra_metadata.begin(), extra_metadata.end());
  tensors.insert(tensors.end(), extra_tensors.begin(), extra_tensors.end());
  write_gguf(path, md, tensors);
}

bool is_k_quant(DType t) { return t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K; }

}  // namespace

// llama.cpp's tensor_allows_quantization for RWKV (LCR src/llama-quant.cpp), plus RWKV-5's
// per-head decay and bonus, which llama.cpp does not know.
bool is_quantizable(const Tensor& t) {
  size_t dims = 0;
  for (int64_t d : t.shape) dims += d != 1;
  if (dims < 2) return false;
  auto ends_with = [&](const std::string& s) {
    return t.name.size() >= s.size() && t.name.compare(t.name.size() - s.size(), s.size(), s) == 0;
  };
  if (!ends_with("weight") || ends_with("_norm.weight")) return false;
  for (const char* small : {"time_mix_first", "time_mix_first_log", "time_mix_decay", "time_mix_w0", "time_mix_w1",
                            "time_mix_w2", "time_mix_v0", "time_mix_v1", "time_mix_v2", "time_mix_a0",
                            "time_mix_a1", "time_mix_a2", "time_mix_g1", "time_mix_g2", "time_mix_decay_w1",
                            "time_mix_decay_w2", "time_mix_lerp_fused"})
    if (ends_with(std::string(".") + small + ".weight")) return false;
  return true;
}

namespace {

// t's values in type `to` (t itself when it already has that type).
Tensor encoded(const Tensor& t, DType to, const std::string& source) {
  if (t.dtype == to) return t;
  try {
    const std::vector<float> values = t.to_f32();
    if (to == DType::F32) return make_f32_tensor(t.name, t.shape, values);
    return make_owned_tensor(t.name, to, t.shape, quantize(to, values.data(), values.size()));
  } catch (const Error& e) {
    fail(source, ": tensor ", t.name, ": ", e.what());
  }
}

}  // namespace

DType quantized_type(const Tensor& t, const QuantizeTypes& q) {
  if (!is_quantizable(t)) {
    const bool is_float = t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16;
    return is_float ? t.dtype : DType::F32;
  }
  DType type = t.name == "output.weight" ? q.head : t.name == "token_embd.weight" ? q.embd : q.type;
  const size_t row = t.shape.empty() ? 1 : static_cast<size_t>(t.shape.back());
  if (row % dtype_block_size(type) != 0 && is_k_quant(type))
    type = type == DType::Q4_K ? DType::Q5_0 : type == DType::Q5_K ? DType::Q5_1 : DType::Q8_0;
  if (row % dtype_block_size(type) != 0) type = DType::F16;
  return type;
}

void save_gguf(const Weights& w, const std::string& path, SaveType type) {
  write_model(w, path, [&](size_t, size_t, const Tensor& t) { return converted(t, type); });
}

void save_gguf(const Weights& w, const std::string& path, const GgufMetadata& extra_metadata,
               const std::vector<Tensor>& extra_tensors) {
  write_model(
      w, path, [](size_t, size_t, const Tensor& t) { return t; }, extra_metadata, extra_tensors);
}

void save_gguf(const Weights& w, const std::string& path, const QuantizeTypes& q, const SaveProgress& progress) {
  write_model(w, path, [&](size_t i, size_t n, const Tensor& t) {
    const DType to = quantized_type(t, q);
    if (progress) progress(i, n, t, to);
    return encoded(t, to, w.path);
  });
}

}  // namespace rwkv
