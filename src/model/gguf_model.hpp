// RWKV models in GGUF: which metadata keys and tensor names we read and write. rwkv6/rwkv7
// follow llama.cpp (formats.md §2.2–2.4); RWKV-4/5 use the GGUF spec's `rwkv` architecture
// with our tensor names (formats.md §2.8, docs/FORMATS.md). The container is io/gguf.
#pragma once
#include <functional>
#include <string>

#include "io/gguf.hpp"
#include "model/weights.hpp"

namespace rwkv {

// Reads a GGUF model into the canonical form (names are already canonical).
Weights weights_from_gguf(const std::string& path);

// Element type of the large matrices in a written file; Keep writes every tensor as it is.
enum class SaveType { Keep, F32, F16, BF16 };
SaveType save_type_from_string(const std::string& s);  // "keep", "f32", "f16", "bf16"

// Writes `w` as a GGUF file (atomically). With F32/F16/BF16 the large matrices (embedding,
// head, linear and low-rank weights) take that type and everything else is float32, as
// llama.cpp's converter does (formats.md §2.5). The tokenizer metadata `w` carries (its
// `tokenizer`, e.g. from text/tokenizer_gguf's attach_tokenizer) is written after the model's keys.
void save_gguf(const Weights& w, const std::string& path, SaveType type);

// The same with every tensor as it is (SaveType::Keep), and more metadata keys and tensors after
// the model's: the file still loads as the model (training checkpoints, train/checkpoint.hpp).
void save_gguf(const Weights& w, const std::string& path, const GgufMetadata& extra_metadata,
               const std::vector<Tensor>& extra_tensors);

// Types of a quantized file (rwkv quantize): `type` for the large matrices, `head` for
// output.weight, `embd` for token_embd.weight. Any type `quantize` (io/quantize.hpp) writes.
struct QuantizeTypes {
  DType type, head, embd;
};

// Whether `t` is quantized, by llama.cpp's policy (formats.md §2.5, docs/FORMATS.md): only
// 2-D `.weight` tensors other than norms and RWKV's small ones (LoRA, lerps, decay, bonus).
bool is_quantizable(const Tensor& t);

// The type `t` is written with under `q`. Tensors that are not quantizable keep F32/F16/BF16
// (a block type becomes F32). A row length that does not fit the type falls back as
// llama.cpp does: Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, and to F16 when even 32 does not
// divide it.
DType quantized_type(const Tensor& t, const QuantizeTypes& q);

// Called before each tensor is encoded: its position and the number of tensors, the tensor as
// read, and the type it gets.
using SaveProgress = std::function<void(size_t index, size_t count, const Tensor& from, DType to)>;

// Writes `w` as a GGUF file (atomically) with the types quantized_type gives.
void save_gguf(const Weights& w, const std::string& path, const QuantizeTypes& q,
               const SaveProgress& progress = {});

}  // namespace rwkv
