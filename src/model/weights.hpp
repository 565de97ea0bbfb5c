// A model's weights in one canonical form, whatever file they came from: tensor names and
// orientations are those of our GGUF files (llama.cpp's for rwkv6/rwkv7, formats.md §2.8 for
// rwkv4/rwkv5), values are raw (no exp/sign transforms; formats.md trap T4), and every
// 2-D matrix is (out, in), applied as W·x. Loaders convert into this form; models read from it.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "io/gguf.hpp"
#include "io/tensor.hpp"

namespace rwkv {

enum class Arch { RWKV4 = 4, RWKV5 = 5, RWKV6 = 6, RWKV7 = 7 };

struct Hparams {
  Arch arch = Arch::RWKV7;
  int n_layer = 0;
  int n_embd = 0;      // C
  int vocab_size = 0;  // V
  int dim_att = 0;     // A (RWKV-4 attention width; C for the others)
  int dim_ffn = 0;     // F
  int head_size = 0;   // N (RWKV-5/6/7)
  int n_head = 0;      // H = C / N
  // RWKV-5 variants by feature (rwkv-spec-v5-v6.md §2).
  bool v5_gate = false;               // 5.1 and 5.2 have an output gate
  bool v5_decay_per_channel = false;  // 5.2: decay per channel, else per head
  bool v5_first_is_log = false;       // 5.0/5.1 store log(u) (time_first), 5.2 stores u
  // Low-rank sizes, read from the tensors.
  int lora_mix = 0, lora_decay = 0;                    // RWKV-6
  int lora_w = 0, lora_a = 0, lora_v = 0, lora_g = 0;  // RWKV-7
  float layer_norm_eps = 1e-5f;
  float group_norm_eps = 64e-5f;  // rwkv-spec-v5-v6.md §6: 1e-5 for v5 from rwkv.cpp files
  int rescale_every = 0;          // RWKV-6 GGUF from llama.cpp: weights pre-divided (trap T3)
  // Optional parts (present in some checkpoints, e.g. the RWKV-v8 toy layout).
  bool has_ln0 = true;
  bool has_head_bias = false;
  bool has_att_output_bias = false;

  std::string version_name() const;  // "4", "5.0", "5.1", "5.2", "6.0", "7"
};

struct Weights {
  std::string path;
  std::string format;  // "PyTorch .pth", "rwkv.cpp .bin", "GGUF"
  Hparams hp;
  TensorSet tensors;  // canonical names
  std::map<std::string, std::string> source_names;  // canonical -> name in the file, where different
  // The tokenizer.* metadata of a GGUF file (formats.md §2.2, docs/FORMATS.md "Tokenizers"):
  // read from the file, written again by save_gguf; null when there is none. Shared, as a
  // World vocabulary is 65536 strings.
  std::shared_ptr<const GgufMetadata> tokenizer;

  // "blocks.1.att.key.weight (blk.1.time_mix_key.weight)" or just the canonical name.
  std::string describe(const std::string& canonical) const;

  const Tensor& get(const std::string& name) const { return tensors.get(name); }
  // Name of a per-layer tensor: layer(3, "time_mix_key.weight") = "blk.3.time_mix_key.weight".
  static std::string layer(int l, const std::string& suffix);
};

// Loads any supported file (.pth, rwkv.cpp .bin, GGUF), detected by its first bytes.
Weights load_weights(const std::string& path);

// Converts an official RWKV-LM state dict (names as in `.pth`, or as rwkv.cpp's `.bin` wrote
// them when `from_rwkvcpp`) to the canonical form, detecting the version from the keys.
Weights canonical_from_state_dict(TensorSet raw, bool from_rwkvcpp);

// Fills the sizes of `hp` from the canonical tensors (arch, head_size for v7 GGUF and the
// flags set by the loader are kept) and checks that they agree with each other.
void infer_hparams(const TensorSet& tensors, Hparams& hp);

}  // namespace rwkv
