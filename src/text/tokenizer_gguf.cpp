// Tokenizers in GGUF metadata (formats.md §2.2, §2.8; docs/FORMATS.md "Tokenizers in GGUF").
#include "text/tokenizer_gguf.hpp"

#include <cstdint>
#include <optional>
#include <vector>

#include "io/error.hpp"
#include "model/weights.hpp"

namespace rwkv {

namespace {

// llama.cpp's token types (llama_token_type, the values of tokenizer.ggml.token_type).
enum TokenType : int32_t { kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

constexpr const char* kModel = "tokenizer.ggml.model";
constexpr const char* kTokens = "tokenizer.ggml.tokens";
constexpr const char* kTypes = "tokenizer.ggml.token_type";
constexpr const char* kMerges = "tokenizer.ggml.merges";
constexpr const char* kPre = "tokenizer.ggml.pre";
// Ours: the normalizer of a BPE tokenizer, which llama.cpp's keys cannot say ("NFC" for 20B).
// Under tokenizer.rwkv.*, where the GGUF spec keeps tokenizer.rwkv.world; llama.cpp ignores it.
constexpr const char* kNormalizer = "tokenizer.rwkv.normalizer";
// llama.cpp's name for GPT-2's pre-tokenizer regex, which is the ByteLevel pre-tokenizer of
// 20B_tokenizer.json (llama.cpp has no entry named for GPT-NeoX-20B; its "olmo" entry, made
// for a NeoX-20B-derived vocabulary, selects the same regex).
constexpr const char* kGpt2Pre = "gpt-2";
constexpr int32_t kWorldEndOfTurn = 261;  // "\n\n", what llama.cpp's converter writes (§2.2)

std::string pad_token(size_t id) { return "[PAD" + std::to_string(id) + "]"; }

const GgufValue* find(const GgufMetadata& md, const std::string& key) {
  for (const auto& [k, v] : md)
    if (k == key) return &v;
  return nullptr;
}

// A value's type for messages (never its contents, which may hold any bytes).
std::string type_text(const GgufValue& v) { return v.is_array() ? v.to_string() : gguf_type_name(v.type()); }

// The keys of one file, read with messages that name the file and key.
class Keys {
 public:
  Keys(const GgufMetadata& md, const std::string& source) : md_(md), source_(source) {}

  [[noreturn]] void bad(const std::string& key, const std::string& what) const { fail(source_, ": ", key, " ", what); }

  std::optional<std::string> string(const char* key) const {
    const GgufValue* v = find(md_, key);
    if (!v) return std::nullopt;
    if (!v->as_string()) bad(key, "is " + type_text(*v) + ", expected a string");
    return *v->as_string();
  }

  const std::vector<std::string>& strings(const char* key, size_t expected_size) const {
    const GgufValue* v = find(md_, key);
    if (!v) bad(key, "is missing");
    const std::vector<std::string>* list = v->as_string_array();
    if (!list) bad(key, "is " + type_text(*v) + ", expected an array of strings");
    if (expected_size != 0 && list->size() != expected_size)
      bad(key, "has " + std::to_string(list->size()) + " entries but the model's vocabulary has " +
                   std::to_string(expected_size));
    return *list;
  }

  // Token types, one per token (all normal when the key is absent, as llama.cpp takes it).
  std::vector<int32_t> types(size_t count) const {
    const GgufValue* v = find(md_, kTypes);
    if (!v) return std::vector<int32_t>(count, kNormal);
    const auto values = v->is_array() && v->array_type() != GgufType::BOOL ? v->as_int_array() : std::nullopt;
    if (!values) bad(kTypes, "is " + type_text(*v) + ", expected an array of integers");
    if (values->size() != count)
      bad(kTypes, "has " + std::to_string(values->size()) + " entries but " + kTokens + " has " + std::to_string(count));
    std::vector<int32_t> out(count);
    for (size_t i = 0; i < count; ++i) {
      if ((*values)[i] < kUndefined || (*values)[i] > kByte)
        bad(std::string(kTypes) + "[" + std::to_string(i) + "]", "= " + std::to_string((*values)[i]) + " is not a token type (0..6)");
      out[i] = static_cast<int32_t>((*values)[i]);
    }
    return out;
  }

 private:
  const GgufMetadata& md_;
  const std::string& source_;
};

// ---- writing

void check_fits(const std::string& what, size_t last_id, size_t vocab_size) {
  if (last_id >= vocab_size)
    fail("the ", what, " tokenizer has token id ", last_id, " but the model's vocabulary has only ", vocab_size, " ids");
}

// Token strings and types for the greedy-match kinds (World, bytes): llama.cpp's "rwkv" model.
void add_rwkv_tokens(const Tokenizer& t, bool world, size_t vocab_size, GgufMetadata& md) {
  std::vector<std::string> tokens(vocab_size);
  std::vector<int32_t> types(vocab_size, kUnused);
  for (size_t id = 0; id < vocab_size; ++id) {
    const std::string bytes = id < t.vocab_size() ? t.token_bytes(static_cast<int32_t>(id)) : std::string();
    if (world && id == 0) {
      tokens[id] = "<s>";  // end of text / separator (spec §6.1), as llama.cpp's converter names it
      types[id] = kControl;
    } else if (bytes.empty()) {
      tokens[id] = pad_token(id);
    } else {
      tokens[id] = escape_rwkv_token(bytes);
      types[id] = kNormal;
    }
  }
  for (size_t id = vocab_size; id < t.vocab_size(); ++id)
    if (!t.token_bytes(static_cast<int32_t>(id)).empty()) check_fits(t.name(), id, vocab_size);
  md.emplace_back(kModel, GgufValue::str("rwkv"));
  md.emplace_back(kTokens, GgufValue::str_array(std::move(tokens)));
  md.emplace_back(kTypes, GgufValue::i32_array(types));
}

void add_bpe_tokens(const BpeVocabulary& v, size_t vocab_size, GgufMetadata& md) {
  std::vector<std::string> tokens(vocab_size);
  std::vector<int32_t> types(vocab_size, kUnused);
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    if (v.tokens[id].empty()) continue;
    check_fits("BPE", id, vocab_size);
    tokens[id] = v.tokens[id];
    types[id] = kNormal;
  }
  // Added tokens as llama.cpp's converter writes them: their content, special ones as control
  // tokens, the others (20B's runs of spaces) as user-defined tokens.
  std::optional<uint32_t> end_of_text;
  for (const BpeVocabulary::AddedToken& a : v.added) {
    check_fits("BPE", static_cast<size_t>(a.id), vocab_size);
    tokens[a.id] = a.content;
    types[a.id] = a.special ? kControl : kUserDefined;
    if (a.special && a.content == "<|endoftext|>") end_of_text = static_cast<uint32_t>(a.id);
  }
  for (size_t id = 0; id < vocab_size; ++id)
    if (types[id] == kUnused) tokens[id] = pad_token(id);
  std::vector<std::string> merges;
  merges.reserve(v.merges.size());
  for (size_t k = 0; k < v.merges.size(); ++k) {
    const auto& [a, b] = v.merges[k];
    // "a b" is split at its first space after the first character, as llama.cpp does.
    if (a.empty() || b.empty() || a.find(' ', 1) != std::string::npos)
      fail("BPE merge ", k, " cannot be written as \"a b\" (a part is empty or has a space)");
    merges.push_back(a + " " + b);
  }
  md.emplace_back(kModel, GgufValue::str("gpt2"));
  md.emplace_back(kPre, GgufValue::str(kGpt2Pre));
  md.emplace_back(kTokens, GgufValue::str_array(std::move(tokens)));
  md.emplace_back(kTypes, GgufValue::i32_array(types));
  md.emplace_back(kMerges, GgufValue::str_array(std::move(merges)));
  if (end_of_text) {
    md.emplace_back("tokenizer.ggml.bos_token_id", GgufValue::u32(*end_of_text));
    md.emplace_back("tokenizer.ggml.eos_token_id", GgufValue::u32(*end_of_text));
  }
  md.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::boolean(false));
  if (v.nfc) md.emplace_back(kNormalizer, GgufValue::str("NFC"));
}

// ---- reading

std::unique_ptr<Tokenizer> rwkv_from_gguf(const Keys& keys, size_t vocab_size, const std::string& source) {
  const std::vector<std::string>& tokens = keys.strings(kTokens, vocab_size);
  const std::vector<int32_t> types = keys.types(tokens.size());
  // Only text tokens take part in matching; control and unused ones ("<s>", "[PAD65530]") have
  // no bytes, as in the vocabulary file they come from.
  std::vector<std::string> bytes(tokens.size());
  bool single_bytes = tokens.size() == 256;  // token i is byte i: the byte tokenizer
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (types[i] == kControl || types[i] == kUnused || types[i] == kUnknown) {
      single_bytes = false;
      continue;
    }
    try {
      bytes[i] = unescape_rwkv_token(tokens[i]);
    } catch (const Error& e) {
      fail(source, ": ", kTokens, "[", i, "]: ", e.what());
    }
    single_bytes &= bytes[i].size() == 1 && static_cast<uint8_t>(bytes[i][0]) == i;
  }
  if (single_bytes) return make_byte_tokenizer();
  return make_world_tokenizer(bytes, source, kTokens);
}

std::unique_ptr<Tokenizer> bpe_from_gguf(const Keys& keys, size_t vocab_size, const std::string& source) {
  if (const auto pre = keys.string(kPre); pre && *pre != kGpt2Pre && *pre != "olmo")
    keys.bad(kPre, "names a pre-tokenizer other than GPT-2's (gpt-2, olmo), which is not supported");
  BpeVocabulary v;
  if (const auto normalizer = keys.string(kNormalizer)) {
    if (*normalizer != "NFC") keys.bad(kNormalizer, "is not NFC, the only normalizer supported");
    v.nfc = true;
  }
  const std::vector<std::string>& tokens = keys.strings(kTokens, vocab_size);
  const std::vector<int32_t> types = keys.types(tokens.size());
  v.tokens.resize(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (types[i] == kUnused) continue;
    v.tokens[i] = tokens[i];
    if ((types[i] == kControl || types[i] == kUserDefined) && !tokens[i].empty())
      v.added.push_back({static_cast<int32_t>(i), tokens[i], types[i] == kControl, types[i] == kUserDefined});
  }
  const std::vector<std::string>& merges = keys.strings(kMerges, 0);
  v.merges.reserve(merges.size());
  for (size_t k = 0; k < merges.size(); ++k) {
    const size_t space = merges[k].find(' ', 1);
    if (space == std::string::npos || space + 1 == merges[k].size())
      keys.bad(std::string(kMerges) + "[" + std::to_string(k) + "]", "is not of the form \"a b\"");
    v.merges.emplace_back(merges[k].substr(0, space), merges[k].substr(space + 1));
  }
  return make_bpe_tokenizer(v, source, kMerges);
}

}  // namespace

std::string escape_rwkv_token(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  const bool both_quotes = bytes.find('\'') != std::string_view::npos && bytes.find('"') != std::string_view::npos;
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char ch : bytes) {
    const auto c = static_cast<uint8_t>(ch);
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\'': out += both_quotes ? "\\'" : "'"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          out += "\\x";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  return out;
}

std::string unescape_rwkv_token(std::string_view s) {
  const auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (++i == s.size()) fail("the token ends with a lone backslash");
    switch (s[i]) {
      case 't': out += '\t'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 'x': {
        const int hi = i + 1 < s.size() ? hex(s[i + 1]) : -1, lo = i + 2 < s.size() ? hex(s[i + 2]) : -1;
        if (hi < 0 || lo < 0) fail("\\x at offset ", i - 1, " is not followed by two hex digits");
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        break;
      }
      default: out += s[i];  // `\\`, `\'`, and any other escaped character stand for themselves
    }
  }
  return out;
}

GgufMetadata tokenizer_metadata(const TokenizerSource& source, size_t vocab_size) {
  if (!source.missing.empty()) fail(source.missing);
  GgufMetadata md;
  if (source.kind == "bytes") {
    add_rwkv_tokens(*make_byte_tokenizer(), false, vocab_size, md);
  } else if (source.kind == "world") {
    const auto world = load_world_tokenizer(source.file);
    add_rwkv_tokens(*world, true, vocab_size, md);
    // llama.cpp's converter: "\n\n" ends a turn (its chat hack), and its built-in chat template
    // of that name; only when id 261 is "\n\n", i.e. the official vocabulary.
    if (static_cast<size_t>(kWorldEndOfTurn) < vocab_size && world->token_bytes(kWorldEndOfTurn) == "\n\n") {
      md.emplace_back("tokenizer.ggml.eot_token_id", GgufValue::u32(kWorldEndOfTurn));
      md.emplace_back("tokenizer.chat_template", GgufValue::str("rwkv-world"));
    }
  } else if (source.kind == "20b") {
    add_bpe_tokens(read_bpe_vocabulary(source.file), vocab_size, md);
  } else {
    fail("unknown tokenizer kind '", source.kind, "'");
  }
  return md;
}

std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufMetadata& md, size_t vocab_size, const std::string& source) {
  const Keys keys(md, source);
  const auto model = keys.string(kModel);
  if (!model || *model == "none" || *model == "no_vocab") return nullptr;
  if (*model == "rwkv") return rwkv_from_gguf(keys, vocab_size, source);
  if (*model == "gpt2") return bpe_from_gguf(keys, vocab_size, source);
  keys.bad(kModel, "names a tokenizer that is not supported (rwkv and gpt2 are)");
}

std::string attach_tokenizer(Weights& w, const std::string& spec, const std::string& model_path) {
  const size_t vocab_size = static_cast<size_t>(w.hp.vocab_size);
  const bool automatic = spec.empty() || spec == "auto";
  if (automatic && w.tokenizer && tokenizer_from_gguf(*w.tokenizer, vocab_size, w.path)) return {};
  const TokenizerSource source = find_tokenizer(spec, vocab_size, model_path);
  if (!source.missing.empty())
    return source.missing + (w.tokenizer ? "; keeping the tokenizer metadata the input has"
                                          : "; the GGUF file will carry no tokenizer");
  w.tokenizer = std::make_shared<const GgufMetadata>(tokenizer_metadata(source, vocab_size));
  return {};
}

}  // namespace rwkv
