// The tokenizer interface: text (UTF-8 bytes) to token ids and ids back to bytes. Three kinds:
// World (RWKV vocabulary, greedy longest match), 20B (GPT-NeoX byte-level BPE) and bytes
// (id = byte value). Streaming-safe decoding to text is in utf8_stream.hpp.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rwkv {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Encodes UTF-8 text. Throws rwkv::Error on invalid UTF-8.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // The raw bytes of one token ("" for ids without text, such as World's 0 or 65530..65535);
  // throws rwkv::Error for an id outside the vocabulary.
  virtual std::string token_bytes(int32_t id) const = 0;
  // Number of ids (the model's vocabulary size this tokenizer is meant for).
  virtual size_t vocab_size() const = 0;
  virtual std::string name() const = 0;  // "world", "20b", "bytes"
  // Id of the end-of-text token (0 for all three).
  virtual int32_t end_of_text() const { return 0; }

  // Concatenated token bytes (may be invalid UTF-8 when cut mid-character).
  std::string decode_bytes(std::span<const int32_t> ids) const;
  // Decoded text with invalid bytes shown as U+FFFD.
  std::string decode(std::span<const int32_t> ids) const;
};

// The World tokenizer from rwkv_vocab_v20230424.txt (spec §6.1).
std::unique_ptr<Tokenizer> load_world_tokenizer(const std::string& vocab_path);
// A greedy longest-match tokenizer like World over the given token bytes (token i has the bytes
// tokens[i]; "" for ids no text encodes to). Every single byte must be a token. `source` and
// `list` name the origin in messages ("model.gguf", "tokenizer.ggml.tokens").
std::unique_ptr<Tokenizer> make_world_tokenizer(const std::vector<std::string>& tokens, const std::string& source,
                                                const std::string& list);

// The parts of a byte-level BPE tokenizer (spec §6.2) as a Hugging Face tokenizer.json holds
// them; GGUF metadata holds the same (tokenizer_gguf.hpp).
struct BpeVocabulary {
  std::vector<std::string> tokens;  // model.vocab by id, in byte-level characters ("Ġthe"); "" where absent
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  struct AddedToken {
    int32_t id;
    std::string content;
    bool special;     // a control token: decodes to nothing
    bool normalized;  // matched in the normalised (NFC) text rather than the raw text
  };
  std::vector<AddedToken> added;
  bool nfc = false;  // the normalizer is NFC
};
// Reads and checks a tokenizer.json (BPE model, NFC or no normalizer, ByteLevel pre-tokenizer).
BpeVocabulary read_bpe_vocabulary(const std::string& json_path);
// The tokenizer of `vocabulary`; `source` and `merges_field` name its origin in messages.
std::unique_ptr<Tokenizer> make_bpe_tokenizer(const BpeVocabulary& vocabulary, const std::string& source,
                                              const std::string& merges_field);
// The GPT-NeoX 20B tokenizer from its Hugging Face tokenizer.json (spec §6.2).
std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::string& json_path);
// Vocabulary 256, id = byte value (the tiny test models and byte-level training).
std::unique_ptr<Tokenizer> make_byte_tokenizer();

// Appends the UTF-8 encoding of code point `cp` (≤ U+10FFFF) to `out`.
void append_utf8(std::string& out, char32_t cp);
// Throws rwkv::Error naming the offset of the first invalid byte if `s` is not valid UTF-8.
void check_utf8(std::string_view s, const char* what);
// `s` with every invalid UTF-8 sequence replaced by U+FFFD (one per maximal invalid subpart).
std::string sanitize_utf8(std::string_view s);
// Length of the longest prefix of `s` that ends on a character boundary, treating a trailing
// incomplete-but-possibly-valid sequence as not yet complete (for streaming).
size_t complete_utf8_prefix(std::string_view s);

}  // namespace rwkv

namespace rwkv {

struct Weights;

// What a tokenizer spec names: kind "world", "20b" or "bytes" and its vocabulary file ("" for
// bytes). When none can be had, `missing` says why (the file was not found where it was looked
// for, or "auto" met a vocabulary size it has no tokenizer for).
struct TokenizerSource {
  std::string kind, file, missing;
};
// `spec` is "world", "20b", "bytes", a path to a World vocabulary (.txt) or to a tokenizer.json,
// or "" / "auto" to choose from the vocabulary size (65536 → World, 50277 → 20B, 256 → bytes;
// spec §4.3). Vocabulary files are looked up in $RWKV_TOKENIZER_DIR, next to the model file, in
// ./tokenizers and in the current directory. Throws for a spec that names nothing (an unknown
// word, a path that does not exist).
TokenizerSource find_tokenizer(const std::string& spec, size_t model_vocab_size, const std::string& model_path);

// The tokenizer `spec` names (as find_tokenizer reads it); throws if its file is not found.
std::unique_ptr<Tokenizer> resolve_tokenizer(const std::string& spec, size_t model_vocab_size,
                                             const std::string& model_path);
// The tokenizer of a loaded model: an explicit `spec` first, then the tokenizer the model file
// carries (GGUF tokenizer.* metadata, tokenizer_gguf.hpp), then the search above.
std::unique_ptr<Tokenizer> resolve_tokenizer(const std::string& spec, const Weights& weights);

}  // namespace rwkv
