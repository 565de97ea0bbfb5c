// RWKV models in GGUF: which metadata keys and tensor names we read and write. rwkv6/rwkv7
// follow llama.cpp (formats.md §2.2–2.4); RWKV-4/5 use the GGUF spec's `rwkv` architecture
// with our tensor names (formats.md §2.8, docs/FORMATS.md). The container is io/gguf.
#pragma once
#include <string>

#include "model/weights.hpp"

namespace rwkv {

// Reads a GGUF model into the canonical form (names are already canonical).
Weights weights_from_gguf(const std::string& path);

// Element type of the large matrices in a written file; Keep writes every tensor as it is.
enum class SaveType { Keep, F32, F16, BF16 };
SaveType save_type_from_string(const std::string& s);  // "keep", "f32", "f16", "bf16"

// Writes `w` as a GGUF file (atomically). With F32/F16/BF16 the large matrices (embedding,
// head, linear and low-rank weights) take that type and everything else is float32, as
// llama.cpp's converter does (formats.md §2.5).
void save_gguf(const Weights& w, const std::string& path, SaveType type);

}  // namespace rwkv
