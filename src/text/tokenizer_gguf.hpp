// Tokenizers in GGUF metadata: the tokenizer.* keys we write for the World, 20B and byte
// tokenizers (llama.cpp's forms, formats.md §2.2 and §2.8, docs/FORMATS.md "Tokenizers in GGUF")
// and the tokenizer built back from them. Not the container (io/gguf) nor the tokenizers.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "io/gguf.hpp"
#include "text/tokenizer.hpp"

namespace rwkv {

struct Weights;

// llama.cpp's token string for RWKV token bytes (its converter stores Python's bytes repr without
// the b'…' quotes): `\` → `\\`; tab, LF, CR → `\t`, `\n`, `\r`; other bytes below 0x20 or from
// 0x7f on → `\x` and two lowercase hex digits; `'` → `\'` only when the bytes hold both `'` and
// `"`; every other byte as it is. The result is ASCII.
std::string escape_rwkv_token(std::string_view bytes);
// The bytes of an escaped token as llama.cpp's reader (llama_unescape_rwkv_token) takes them:
// `\t`, `\n`, `\r`, `\x` + two hex digits (either case), a backslash before any other character
// gives that character. Throws Error for a backslash at the end or a `\x` without two hex digits.
std::string unescape_rwkv_token(std::string_view escaped);

// The tokenizer.* keys describing the tokenizer `source` names (find_tokenizer) for a model of
// `vocab_size` ids; ids the tokenizer lacks are written as unused "[PAD<id>]" tokens. Throws
// if the tokenizer has a token at an id the model does not have.
GgufMetadata tokenizer_metadata(const TokenizerSource& source, size_t vocab_size);

// The tokenizer the tokenizer.* keys in `md` describe, or null when they name none (no
// tokenizer.ggml.model, or "none"/"no_vocab"). `vocab_size` is the model's (0: not checked);
// `source` names the file in messages. Throws Error naming the key for metadata that is
// missing, of the wrong type, or inconsistent (a token list whose length is not vocab_size).
std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufMetadata& md, size_t vocab_size, const std::string& source);

// Gives `w` the tokenizer metadata save_gguf writes, from `spec` as find_tokenizer reads it.
// "" / "auto" keeps metadata `w` already has (a GGUF input's, checked by building its
// tokenizer), else takes the tokenizer the search finds (`model_path`: where "next to the
// model" is); an explicit spec replaces what `w` has. When no tokenizer can be had (its file
// is not found, or auto meets an unknown vocabulary size) `w` is left as it was and the
// returned one-line warning says so; "" otherwise.
std::string attach_tokenizer(Weights& w, const std::string& spec, const std::string& model_path);

}  // namespace rwkv
