// The GPT-NeoX "20B" byte-level BPE tokenizer (spec §6.2): loads a Hugging Face tokenizer.json
// (BPE model, NFC normalizer, ByteLevel pre-tokenizer/decoder) and encodes/decodes with it.
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "io/error.hpp"
#include "text/tokenizer.hpp"

namespace rwkv {

namespace {

using nlohmann::json;

// Ids above this are rejected so that a corrupt file cannot make us allocate a huge table.
constexpr int64_t kMaxTokenId = (int64_t{1} << 22) - 1;
// Pieces longer than this are not cached: they are rare and would make the cache large.
constexpr size_t kMaxCachedPiece = 256;

// ---- UTF-8 helpers (input is already validated by check_utf8 or by the JSON parser)

struct DecodedChar {
  char32_t cp;
  size_t len;
};

// The code point at s[i]. Invalid sequences (never in validated input) decode as one byte.
DecodedChar decode_char(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  const uint8_t c = b(0);
  if (c < 0x80) return {c, 1};
  if (c >= 0xc0 && c < 0xe0 && i + 1 < s.size()) return {char32_t((c & 0x1f) << 6 | (b(1) & 0x3f)), 2};
  if (c >= 0xe0 && c < 0xf0 && i + 2 < s.size())
    return {char32_t((c & 0x0f) << 12 | (b(1) & 0x3f) << 6 | (b(2) & 0x3f)), 3};
  if (c >= 0xf0 && i + 3 < s.size())
    return {char32_t((c & 0x07) << 18 | (b(1) & 0x3f) << 12 | (b(2) & 0x3f) << 6 | (b(3) & 0x3f)), 4};
  return {c, 1};
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<uint8_t>(c) < 0x80; });
}

// Unicode NFC (spec §6.2 step 2). ASCII is already NFC, which skips utf8proc for most text.
std::string nfc(std::string_view s) {
  if (is_ascii(s)) return std::string(s);
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                   &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) fail("NFC normalisation failed: ", utf8proc_errmsg(n));
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
}

// ---- byte-level table (spec §6.2 step 4)

// byte → printable code point: 0x21–0x7E, 0xA1–0xAC, 0xAE–0xFF map to themselves, the other
// 68 bytes in increasing order to U+0100, U+0101, …
std::array<char32_t, 256> make_byte_to_char() {
  std::array<char32_t, 256> table{};
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
    table[b] = printable ? char32_t(b) : next++;
  }
  return table;
}

// ---- GPT-2 pre-tokenisation (spec §6.2 step 3)

enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };

// `\s` as the regex engine of HF tokenizers (Oniguruma) defines it for Unicode: U+0009–U+000D,
// U+0085 and the categories Zs, Zl, Zp (= the White_Space property). Python's `re` would also
// count U+001C–U+001F; the library, whose ids we must reproduce, does not.
bool is_unicode_space(char32_t cp, utf8proc_category_t cat) {
  return (cp >= 0x09 && cp <= 0x0d) || cp == 0x85 || cat == UTF8PROC_CATEGORY_ZS ||
         cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

CharClass classify_slow(char32_t cp) {
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  switch (cat) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return CharClass::kLetter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return CharClass::kNumber;
    default:
      return is_unicode_space(cp, cat) ? CharClass::kSpace : CharClass::kOther;
  }
}

const std::array<CharClass, 128>& ascii_classes() {
  static const std::array<CharClass, 128> table = [] {
    std::array<CharClass, 128> t{};
    for (char32_t c = 0; c < 128; ++c) t[c] = classify_slow(c);
    return t;
  }();
  return table;
}

struct ClassifiedChar {
  char32_t cp;
  size_t len;
  CharClass cls;
};

ClassifiedChar char_at(std::string_view s, size_t i) {
  const DecodedChar d = decode_char(s, i);
  return {d.cp, d.len, d.cp < 128 ? ascii_classes()[d.cp] : classify_slow(d.cp)};
}

// End (byte offset) of the pre-token starting at s[i]: the first alternative of
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// that matches at i, as a backtracking regex engine would choose it.
size_t pre_token_end(std::string_view s, size_t i) {
  const size_t n = s.size();
  const ClassifiedChar c = char_at(s, i);
  if (c.cp == '\'' && i + 1 < n) {
    const char x = s[i + 1];
    if (x == 's' || x == 't' || x == 'm' || x == 'd') return i + 2;
    const std::string_view two = s.substr(i + 1, 2);
    if (two == "re" || two == "ve" || two == "ll") return i + 3;
  }
  // ` ?X+` for X in {letters, numbers, other}: an optional leading ASCII space joins the run.
  size_t start = i;
  CharClass run = c.cls;
  size_t first_len = c.len;
  if (c.cp == ' ' && i + 1 < n) {
    const ClassifiedChar d = char_at(s, i + 1);
    if (d.cls != CharClass::kSpace) {
      start = i + 1;
      run = d.cls;
      first_len = d.len;
    }
  }
  if (run != CharClass::kSpace) {
    size_t j = start + first_len;
    while (j < n) {
      const ClassifiedChar d = char_at(s, j);
      if (d.cls != run) break;
      j += d.len;
    }
    return j;
  }
  // Whitespace. `\s+(?!\S)` takes the whole run at the end of the text; before a non-space it
  // backtracks one character so that the last space can start the next piece (" word");
  // a lone space before a non-space falls through to `\s+`.
  size_t j = i, last = i;
  while (j < n) {
    const ClassifiedChar d = char_at(s, j);
    if (d.cls != CharClass::kSpace) break;
    last = j;
    j += d.len;
  }
  if (j == n) return n;
  return last > i ? last : j;
}

// ---- added tokens (spec §6.2 step 1)

// Leftmost-longest matcher over a small set of literal strings.
class LiteralMatcher {
 public:
  void add(std::string text, int32_t id) { entries_.push_back({std::move(text), id}); }

  // Must be called after the last add().
  void finish() {
    for (auto& bucket : by_first_byte_) bucket.clear();
    for (size_t k = 0; k < entries_.size(); ++k)
      by_first_byte_[static_cast<uint8_t>(entries_[k].text[0])].push_back(k);
    for (auto& bucket : by_first_byte_)
      std::stable_sort(bucket.begin(), bucket.end(),
                       [&](size_t a, size_t b) { return entries_[a].text.size() > entries_[b].text.size(); });
  }

  bool empty() const { return entries_.empty(); }

  struct Match {
    size_t pos, len;
    int32_t id;
  };

  // The leftmost match at or after `from`, the longest among those starting there.
  bool find(std::string_view s, size_t from, Match& m) const {
    for (size_t pos = from; pos < s.size(); ++pos) {
      for (size_t k : by_first_byte_[static_cast<uint8_t>(s[pos])]) {
        const std::string& t = entries_[k].text;
        if (s.substr(pos, t.size()) == t) {
          m = {pos, t.size(), entries_[k].id};
          return true;
        }
      }
    }
    return false;
  }

  // Calls on_text(segment) for text between matches and on_token(id) for each match, in order.
  template <typename OnText, typename OnToken>
  void split(std::string_view s, OnText&& on_text, OnToken&& on_token) const {
    size_t pos = 0;
    Match m{};
    while (!entries_.empty() && find(s, pos, m)) {
      if (m.pos > pos) on_text(s.substr(pos, m.pos - pos));
      on_token(m.id);
      pos = m.pos + m.len;
    }
    if (pos < s.size()) on_text(s.substr(pos));
  }

 private:
  struct Entry {
    std::string text;
    int32_t id;
  };
  std::vector<Entry> entries_;
  std::array<std::vector<size_t>, 256> by_first_byte_;
};

// ---- the tokenizer

struct Merge {
  uint32_t rank;
  int32_t result;
};

uint64_t pair_key(int32_t a, int32_t b) { return uint64_t(uint32_t(a)) << 32 | uint32_t(b); }

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(const BpeVocabulary& v, const std::string& source, const std::string& merges_field) : path_(source) {
    build(v, merges_field);
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    check_utf8(text, "text");
    std::vector<int32_t> ids;
    // Per call, so that encode() stays thread-safe without locks.
    std::unordered_map<std::string, std::vector<int32_t>> cache;
    const auto emit = [&](int32_t id) { ids.push_back(id); };
    raw_tokens_.split(
        text,
        [&](std::string_view segment) {
          const std::string normalized = nfc_ ? nfc(segment) : std::string(segment);
          normalized_tokens_.split(
              normalized, [&](std::string_view rest) { encode_segment(rest, cache, ids); }, emit);
        },
        emit);
    return ids;
  }

  std::string token_bytes(int32_t id) const override {
    if (id < 0 || static_cast<size_t>(id) >= token_bytes_.size())
      fail(path_, ": token id ", id, " is outside the vocabulary (0..", token_bytes_.size() - 1, ")");
    return token_bytes_[id];
  }

  size_t vocab_size() const override { return token_bytes_.size(); }
  std::string name() const override { return "20b"; }
  int32_t end_of_text() const override { return 0; }

 private:
  // Steps 3–5 of spec §6.2 on a normalised segment without added tokens.
  void encode_segment(std::string_view s, std::unordered_map<std::string, std::vector<int32_t>>& cache,
                      std::vector<int32_t>& ids) const {
    for (size_t i = 0; i < s.size();) {
      const size_t end = pre_token_end(s, i);
      const std::string_view piece = s.substr(i, end - i);
      i = end;
      if (piece.size() == 1) {
        ids.push_back(byte_id(piece[0]));
      } else if (piece.size() > kMaxCachedPiece) {
        bpe(piece, ids);
      } else {
        auto [it, inserted] = cache.try_emplace(std::string(piece));
        if (inserted) bpe(piece, it->second);
        ids.insert(ids.end(), it->second.begin(), it->second.end());
      }
    }
  }

  int32_t byte_id(char c) const {
    const int32_t id = byte_ids_[static_cast<uint8_t>(c)];
    if (id < 0) {
      fail(path_, ": byte 0x", std::hex, int(static_cast<uint8_t>(c)),
           " has no token in model.vocab (not a byte-level vocabulary)");
    }
    return id;
  }

  // Spec §6.2 step 5: starting from one symbol per byte, repeatedly merge the adjacent pair of
  // lowest rank. A heap keyed on (rank, position) visits equal-rank pairs left to right, which
  // is the "all non-overlapping occurrences, left to right" rule; a merged symbol can never
  // re-form the pair just merged, so no later occurrence is missed. O(n log n) per piece.
  void bpe(std::string_view piece, std::vector<int32_t>& out) const {
    struct Symbol {
      int32_t id;
      int32_t prev, next;  // -1 at the ends
    };
    struct Candidate {
      uint32_t rank;
      int32_t left, right;
      int32_t left_id, right_id;  // to recognise candidates made stale by other merges
      int32_t result;
      bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
    };
    const int32_t n = static_cast<int32_t>(piece.size());
    if (n == 0) return;
    std::vector<Symbol> sym(n);
    for (int32_t k = 0; k < n; ++k) sym[k] = {byte_id(piece[k]), k - 1, k + 1 < n ? k + 1 : -1};

    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
    const auto consider = [&](int32_t left) {
      if (left < 0) return;
      const int32_t right = sym[left].next;
      if (right < 0) return;
      const auto it = merges_.find(pair_key(sym[left].id, sym[right].id));
      if (it != merges_.end())
        heap.push({it->second.rank, left, right, sym[left].id, sym[right].id, it->second.result});
    };
    for (int32_t k = 0; k + 1 < n; ++k) consider(k);

    while (!heap.empty()) {
      const Candidate c = heap.top();
      heap.pop();
      Symbol& l = sym[c.left];
      if (l.id != c.left_id || l.next != c.right || sym[c.right].id != c.right_id) continue;
      // The right symbol is unlinked; its id is cleared so stale candidates see the change.
      Symbol& r = sym[c.right];
      l.id = c.result;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = c.left;
      r.id = -1;
      r.prev = r.next = -1;
      consider(l.prev);
      consider(c.left);
    }
    for (int32_t k = 0; k >= 0; k = sym[k].next) out.push_back(sym[k].id);
  }

  // ---- building the tables

  void build(const BpeVocabulary& v, const std::string& merges_field) {
    nfc_ = v.nfc;
    // Token string → id for the merges and the byte symbols. A repeated string keeps its first
    // id, as a reverse map built in id order would.
    std::unordered_map<std::string, int32_t> ids;
    ids.reserve(v.tokens.size());
    for (size_t id = 0; id < v.tokens.size(); ++id)
      if (!v.tokens[id].empty()) ids.emplace(v.tokens[id], static_cast<int32_t>(id));

    // The rank of a merge is its index. A repeated pair keeps its last rank, as a dict/hash map
    // built from the list would.
    merges_.reserve(v.merges.size());
    for (size_t k = 0; k < v.merges.size(); ++k) {
      const auto& [a, b] = v.merges[k];
      const auto lookup = [&](const std::string& token) {
        const auto it = ids.find(token);
        if (it == ids.end())
          fail(path_, ": ", merges_field, "[", k, "] uses \"", token, "\", which is not in the vocabulary");
        return it->second;
      };
      const int32_t ia = lookup(a), ib = lookup(b), result = lookup(a + b);
      merges_[pair_key(ia, ib)] = Merge{static_cast<uint32_t>(k), result};
    }

    // Initial symbols: the token of each byte's printable character.
    const auto byte_to_char = make_byte_to_char();
    for (int b = 0; b < 256; ++b) {
      std::string ch;
      append_utf8(ch, byte_to_char[b]);
      const auto it = ids.find(ch);
      byte_ids_[b] = it != ids.end() ? it->second : -1;
    }

    // Added tokens: non-normalised ones match the raw text, normalised ones the NFC text
    // (spec §6.2 step 1).
    size_t size = v.tokens.size();
    for (const BpeVocabulary::AddedToken& t : v.added) {
      if (t.id < 0 || t.id > kMaxTokenId) fail(path_, ": added token id ", t.id, " is out of range");
      if (t.content.empty()) fail(path_, ": added token ", t.id, " is empty");
      if (t.normalized) normalized_tokens_.add(nfc_ ? nfc(t.content) : t.content, t.id);
      else raw_tokens_.add(t.content, t.id);
      size = std::max(size, static_cast<size_t>(t.id) + 1);
    }
    raw_tokens_.finish();
    normalized_tokens_.finish();

    // Decoding table: added tokens take precedence over the vocabulary (as in the library's
    // id_to_token); special ones decode to nothing (its decoder skips them).
    token_bytes_.assign(size, std::string());
    std::unordered_map<char32_t, uint8_t> char_to_byte;
    for (int b = 0; b < 256; ++b) char_to_byte[byte_to_char[b]] = static_cast<uint8_t>(b);
    const auto to_bytes = [&](const std::string& token) {
      // A token with any character outside the byte table (the space-run tokens) contributes its
      // own UTF-8 bytes verbatim, as the library's ByteLevel decoder does for the whole token.
      std::string bytes;
      for (size_t i = 0; i < token.size();) {
        const DecodedChar d = decode_char(token, i);
        const auto it = char_to_byte.find(d.cp);
        if (it == char_to_byte.end()) return token;
        bytes += static_cast<char>(it->second);
        i += d.len;
      }
      return bytes;
    };
    for (size_t id = 0; id < v.tokens.size(); ++id) token_bytes_[id] = to_bytes(v.tokens[id]);
    for (const BpeVocabulary::AddedToken& t : v.added) {
      const std::string content = t.normalized && nfc_ ? nfc(t.content) : t.content;
      token_bytes_[t.id] = t.special ? std::string() : to_bytes(content);
    }
  }

  std::string path_;
  bool nfc_ = false;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) → rank and merged id
  std::array<int32_t, 256> byte_ids_{};         // byte → id of its byte-level character
  LiteralMatcher raw_tokens_, normalized_tokens_;
  std::vector<std::string> token_bytes_;  // id → bytes ("" for special and absent ids)
};

// ---- reading tokenizer.json

class TokenizerJson {
 public:
  explicit TokenizerJson(const std::string& path) : path_(path) {}

  BpeVocabulary read() {
    std::ifstream file(path_, std::ios::binary);
    if (!file) fail(path_, ": cannot open tokenizer file");
    json root;
    try {
      root = json::parse(file);
    } catch (const json::exception& e) {
      fail(path_, ": not valid JSON (", e.what(), ")");
    }
    if (!root.is_object()) fail(path_, ": top level is not a JSON object");

    BpeVocabulary v;
    v.nfc = read_normalizer(member(root, "", "normalizer"));
    check_byte_level(member(root, "", "pre_tokenizer"), "pre_tokenizer", true);
    check_byte_level(member(root, "", "decoder"), "decoder", false);
    if (root.contains("post_processor")) {
      // A ByteLevel post-processor only adjusts offsets; others (templates) would add ids.
      const json& post = root["post_processor"];
      if (!post.is_null() && type_of(post) != "ByteLevel") bad("post_processor", "is unsupported (not ByteLevel)");
    }

    const json& model = member(root, "", "model");
    const std::string type = string_member(model, "model", "type");
    if (type != "BPE") bad("model.type", "is \"" + type + "\", expected \"BPE\"");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      const auto it = model.find(key);
      if (it != model.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty()))
        bad(std::string("model.") + key, "is unsupported (byte-level BPE has none)");
    }
    if (const auto it = model.find("dropout"); it != model.end() && !it->is_null()) {
      if (!it->is_number() || it->get<double>() != 0.0) bad("model.dropout", "is unsupported (must be null)");
    }

    // model.vocab: token string → id.
    const json& vocab = member(model, "model", "vocab");
    if (!vocab.is_object()) bad("model.vocab", "is not an object");
    for (const auto& [token, value] : vocab.items()) {
      const int32_t id = id_value(value, "model.vocab[\"" + token + "\"]");
      if (static_cast<size_t>(id) >= v.tokens.size()) v.tokens.resize(static_cast<size_t>(id) + 1);
      if (!v.tokens[id].empty()) bad("model.vocab[\"" + token + "\"]", "repeats id " + std::to_string(id));
      v.tokens[id] = token;
    }

    // model.merges: "a b" or ["a", "b"].
    const json& merges = member(model, "model", "merges");
    if (!merges.is_array()) bad("model.merges", "is not a list");
    v.merges.reserve(merges.size());
    for (size_t k = 0; k < merges.size(); ++k) {
      const std::string field = "model.merges[" + std::to_string(k) + "]";
      const json& m = merges[k];
      if (m.is_string()) {
        const std::string line = m.get<std::string>();
        const size_t space = line.find(' ');
        if (space == std::string::npos || space == 0 || space + 1 == line.size())
          bad(field, "is not of the form \"a b\"");
        v.merges.emplace_back(line.substr(0, space), line.substr(space + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        v.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        bad(field, "is neither \"a b\" nor [\"a\", \"b\"]");
      }
    }

    const json& added_tokens = member(root, "", "added_tokens");
    if (!added_tokens.is_array()) bad("added_tokens", "is not a list");
    for (size_t k = 0; k < added_tokens.size(); ++k) {
      const std::string name = "added_tokens[" + std::to_string(k) + "]";
      const json& t = added_tokens[k];
      BpeVocabulary::AddedToken a;
      a.id = id_value(member(t, name, "id"), name + ".id");
      a.content = string_member(t, name, "content");
      a.special = bool_member(t, name, "special");
      a.normalized = bool_member(t, name, "normalized");
      if (a.content.empty()) bad(name + ".content", "is empty");
      for (const char* flag : {"single_word", "lstrip", "rstrip"}) {
        const auto it = t.find(flag);
        if (it != t.end() && !(it->is_boolean() && !it->get<bool>()))
          bad(name + "." + flag, "is unsupported (must be false)");
      }
      v.added.push_back(std::move(a));
    }
    return v;
  }

 private:
  [[noreturn]] void bad(const std::string& field, const std::string& what) const {
    fail(path_, ": ", field, " ", what);
  }

  const json& member(const json& obj, const std::string& obj_name, const char* key) const {
    const std::string field = obj_name.empty() ? std::string(key) : obj_name + "." + key;
    if (!obj.is_object()) bad(obj_name, "is not an object");
    const auto it = obj.find(key);
    if (it == obj.end()) fail(path_, ": missing field ", field);
    return *it;
  }

  std::string string_member(const json& obj, const std::string& obj_name, const char* key) const {
    const json& v = member(obj, obj_name, key);
    if (!v.is_string()) bad(obj_name + "." + key, "is not a string");
    return v.get<std::string>();
  }

  bool bool_member(const json& obj, const std::string& obj_name, const char* key) const {
    const json& v = member(obj, obj_name, key);
    if (!v.is_boolean()) bad(obj_name + "." + key, "is not a boolean");
    return v.get<bool>();
  }

  int32_t id_value(const json& v, const std::string& field) const {
    if (!v.is_number_integer()) bad(field, "is not an integer id");
    const int64_t id = v.get<int64_t>();
    if (id < 0 || id > kMaxTokenId) bad(field, "= " + std::to_string(id) + " is out of range");
    return static_cast<int32_t>(id);
  }

  static std::string type_of(const json& obj) {
    if (!obj.is_object()) return {};
    const auto it = obj.find("type");
    return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
  }

  // Spec §6.2: normalizer NFC; also accepted: null and a Sequence of NFC normalizers.
  bool read_normalizer(const json& n) const {
    if (n.is_null()) return false;
    const std::string type = type_of(n);
    if (type == "NFC") return true;
    if (type == "Sequence") {
      const json& list = member(n, "normalizer", "normalizers");
      if (!list.is_array()) bad("normalizer.normalizers", "is not a list");
      for (const json& item : list) {
        if (type_of(item) != "NFC") bad("normalizer", "is an unsupported normalizer (only NFC is supported)");
      }
      return !list.empty();
    }
    bad("normalizer", "is an unsupported normalizer (only NFC is supported)");
  }

  // Spec §6.2: pre_tokenizer and decoder are ByteLevel. A prefix space in the pre-tokenizer
  // (add_prefix_space true) is rejected rather than emulated: where the library inserts it
  // depends on its version, and no RWKV tokenizer uses it. The decoder ignores the flag.
  void check_byte_level(const json& p, const char* field, bool is_pre_tokenizer) const {
    if (type_of(p) != "ByteLevel") bad(field, "is unsupported (only ByteLevel is supported)");
    const bool prefix_space = bool_member(p, field, "add_prefix_space");
    if (is_pre_tokenizer && prefix_space) bad(std::string(field) + ".add_prefix_space", "= true is unsupported");
    if (const auto it = p.find("use_regex"); it != p.end() && !(it->is_boolean() && it->get<bool>()))
      bad(std::string(field) + ".use_regex", "is unsupported (must be true)");
  }

  std::string path_;
};

}  // namespace

BpeVocabulary read_bpe_vocabulary(const std::string& json_path) { return TokenizerJson(json_path).read(); }

std::unique_ptr<Tokenizer> make_bpe_tokenizer(const BpeVocabulary& vocabulary, const std::string& source,
                                              const std::string& merges_field) {
  return std::make_unique<BpeTokenizer>(vocabulary, source, merges_field);
}

std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::string& json_path) {
  return make_bpe_tokenizer(read_bpe_vocabulary(json_path), json_path, "model.merges");
}

}  // namespace rwkv
