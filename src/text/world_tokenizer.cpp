// The RWKV World tokenizer (spec §6.1): loads rwkv_vocab_v20230424.txt (or takes the token
// bytes from GGUF metadata), encodes by greedy longest match over UTF-8 bytes with a byte trie,
// decodes by concatenating token bytes.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "io/error.hpp"
#include "io/mapped_file.hpp"
#include "text/tokenizer.hpp"

namespace rwkv {

namespace {

constexpr int32_t kWorldVocabSize = 65536;  // ids 65530..65535 are embedding padding (spec §6.1)
constexpr size_t kMaxVocabSize = size_t{1} << 24;  // a bound for token lists from metadata

// Where a parse error is: every message names the file and line.
struct Where {
  const std::string& path;
  size_t line;

  template <typename... Args>
  [[noreturn]] void fail(const Args&... args) const {
    rwkv::fail(path, ":", line, ": ", args...);
  }
};


int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A decimal field of a vocabulary line; at most 9 digits so that it cannot overflow.
uint32_t parse_decimal(std::string_view s, const char* field, const Where& where) {
  if (s.empty() || s.size() > 9) where.fail(field, " '", s, "' is not a decimal number");
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') where.fail(field, " '", s, "' is not a decimal number");
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  return v;
}

// The bytes a Python str ('…', "…") or bytes (b'…') literal denotes. In a str, \xHH, \uHHHH,
// \UHHHHHHHH and octal escapes are code points that end up UTF-8 encoded; in a bytes literal \xHH
// and octal escapes are raw bytes. The two kinds must not be confused (spec §6.1: '\x80' is
// C2 80 but b'\x80' is 80).
std::string parse_literal(std::string_view lit, const Where& where) {
  const bool is_bytes = !lit.empty() && lit[0] == 'b';
  if (is_bytes) lit.remove_prefix(1);
  if (lit.size() < 2 || (lit[0] != '\'' && lit[0] != '"') || lit.back() != lit[0])
    where.fail("the token is not a quoted Python str or bytes literal");
  const char quote = lit[0];
  const std::string_view body = lit.substr(1, lit.size() - 2);

  std::string out;
  // Appends the value of a numeric escape: a code point in a str, a byte in a bytes literal.
  auto put_value = [&](uint32_t v, std::string_view escape) {
    if (is_bytes) {
      if (v > 0xff) where.fail("escape \\", escape, " is out of range in a bytes literal");
      out += static_cast<char>(v);
    } else {
      if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        where.fail("escape \\", escape, " is not a Unicode scalar value");
      append_utf8(out, v);
    }
  };
  for (size_t i = 0; i < body.size();) {
    const char c = body[i];
    if (c == quote) where.fail("unescaped ", quote, " inside the literal");
    if (c != '\\') {
      if (is_bytes && static_cast<uint8_t>(c) >= 0x80)
        where.fail("non-ASCII character in a bytes literal");
      out += c;
      ++i;
      continue;
    }
    if (i + 1 >= body.size()) where.fail("the literal ends inside an escape");
    const char e = body[i + 1];
    i += 2;
    switch (e) {
      case '\\': out += '\\'; continue;
      case '\'': out += '\''; continue;
      case '"': out += '"'; continue;
      case 'n': out += '\n'; continue;
      case 'r': out += '\r'; continue;
      case 't': out += '\t'; continue;
      case 'a': out += '\a'; continue;
      case 'b': out += '\b'; continue;
      case 'f': out += '\f'; continue;
      case 'v': out += '\v'; continue;
      default: break;
    }
    if (e >= '0' && e <= '7') {  // Python octal escape: one to three digits
      uint32_t v = static_cast<uint32_t>(e - '0');
      const size_t start = i - 1;
      for (int k = 0; k < 2 && i < body.size() && body[i] >= '0' && body[i] <= '7'; ++k, ++i)
        v = v * 8 + static_cast<uint32_t>(body[i] - '0');
      put_value(v, body.substr(start, i - start));
      continue;
    }
    size_t digits = 0;
    if (e == 'x') digits = 2;
    else if (e == 'u' && !is_bytes) digits = 4;
    else if (e == 'U' && !is_bytes) digits = 8;
    else where.fail("unsupported escape \\", e, " in ", is_bytes ? "a bytes" : "a str", " literal");
    if (i + digits > body.size()) where.fail("truncated escape \\", body.substr(i - 1));
    uint32_t v = 0;
    for (size_t k = 0; k < digits; ++k) {
      const int h = hex_value(body[i + k]);
      if (h < 0) where.fail("bad hex digit in escape \\", body.substr(i - 1, digits + 1));
      v = v * 16 + static_cast<uint32_t>(h);
    }
    put_value(v, body.substr(i - 1, digits + 1));
    i += digits;
  }
  return out;
}

class WorldTokenizer final : public Tokenizer {
 public:
  explicit WorldTokenizer(const std::string& path) {
    const auto file = MappedFile::open(path);
    parse_vocabulary(path, std::string_view(reinterpret_cast<const char*>(file->data()), file->size()));
    build_trie([&](int32_t id) { return path + ":" + std::to_string(id); },
               [&](int32_t id) { return "the one on line " + std::to_string(id); }, path);
  }

  // Token i has the bytes tokens[i]; "" for ids that no text encodes to.
  WorldTokenizer(const std::vector<std::string>& tokens, const std::string& source, const std::string& list) {
    if (tokens.empty() || tokens.size() > kMaxVocabSize)
      fail(source, ": ", list, " has ", tokens.size(), " tokens (1..", kMaxVocabSize, " expected)");
    offsets_.assign(1, 0);
    for (const std::string& t : tokens) {
      blob_ += t;
      if (blob_.size() > std::numeric_limits<uint32_t>::max()) fail(source, ": ", list, " exceeds 4 GiB");
      offsets_.push_back(static_cast<uint32_t>(blob_.size()));
    }
    const auto entry = [&](int32_t id) { return source + ": " + list + "[" + std::to_string(id) + "]"; };
    build_trie(entry, [&](int32_t id) { return list + "[" + std::to_string(id) + "]"; }, source);
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    check_utf8(text, "text");
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 1);
    const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
    const size_t n = text.size();
    for (size_t pos = 0; pos < n;) {
      // Walk the trie as far as the text allows, remembering the last node that ends a token.
      uint32_t node = 0;
      int32_t best = -1;
      size_t best_length = 0;
      for (size_t i = pos; i < n; ++i) {
        node = child(node, bytes[i]);
        if (node == kNoNode) break;
        if (nodes_[node].token >= 0) {
          best = nodes_[node].token;
          best_length = i - pos + 1;
        }
      }
      // best_length >= 1 here: loading checked that every byte is a token on its own.
      ids.push_back(best);
      pos += best_length;
    }
    return ids;
  }

  std::string token_bytes(int32_t id) const override {
    if (id < 0 || static_cast<size_t>(id) >= vocab_size())
      fail("token id ", id, " is outside the World vocabulary (0..", vocab_size() - 1, ")");
    return std::string(token_view(id));
  }

  size_t vocab_size() const override { return offsets_.size() - 1; }
  std::string name() const override { return "world"; }

 private:
  static constexpr uint32_t kNoNode = std::numeric_limits<uint32_t>::max();

  // Children of a node are the edges [first_edge, first_edge + edge_count), sorted by byte.
  // Nodes with many children (the root, a space, common first letters) also get a 256-entry
  // table so that the hottest lookups are one load instead of a binary search.
  static constexpr uint16_t kDenseChildren = 16;
  struct Node {
    uint32_t first_edge = 0;
    uint16_t edge_count = 0;
    int32_t token = -1;  // the id whose bytes are the path to this node, or -1
    uint32_t dense = 0;  // 1 + the offset of its table in dense_children_, or 0 for none
  };

  void parse_vocabulary(const std::string& path, std::string_view text) {
    offsets_.assign(2, 0);  // id 0 (end of text) has no bytes
    size_t line_number = 0;
    for (size_t start = 0; start < text.size();) {
      size_t end = text.find('\n', start);
      if (end == std::string_view::npos) end = text.size();
      std::string_view line = text.substr(start, end - start);
      start = end + 1;
      ++line_number;
      const Where where{path, line_number};
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // CRLF copy (LM RWKV-v5)
      try {
        check_utf8(line, "the line");
      } catch (const Error& e) {
        where.fail(e.what());
      }
      // The literal may contain spaces: it is everything between the first and the last space.
      const size_t first = line.find(' '), last = line.rfind(' ');
      if (first == std::string_view::npos || first == last)
        where.fail("expected '<id> <python-literal> <byte-length>'");
      const uint32_t id = parse_decimal(line.substr(0, first), "id", where);
      const uint32_t length = parse_decimal(line.substr(last + 1), "byte length", where);
      if (id != line_number)
        where.fail("id ", id, " where ", line_number, " was expected (ids are consecutive from 1)");
      if (id >= static_cast<uint32_t>(kWorldVocabSize))
        where.fail("id ", id, " is outside the vocabulary of ", kWorldVocabSize);
      const std::string token = parse_literal(line.substr(first + 1, last - first - 1), where);
      if (token.empty()) where.fail("empty token");
      if (token.size() != length)
        where.fail("the token is ", token.size(), " bytes but the line declares ", length);
      blob_ += token;
      if (blob_.size() > std::numeric_limits<uint32_t>::max()) where.fail("the vocabulary exceeds 4 GiB");
      offsets_.push_back(static_cast<uint32_t>(blob_.size()));
    }
    if (line_number == 0) fail(path, ": empty World vocabulary file");
    offsets_.resize(kWorldVocabSize + 1, static_cast<uint32_t>(blob_.size()));  // padding ids: ""
  }

  std::string_view token_view(int32_t id) const {
    return std::string_view(blob_).substr(offsets_[id], offsets_[id + 1] - offsets_[id]);
  }

  // Builds the trie breadth-first from the tokens sorted by bytes: the tokens below a node form
  // a contiguous run of the sorted list, so each node's children can be laid out contiguously.
  // `entry(id)` starts a message about token id ("vocab.txt:98"), `other(id)` names another
  // token inside one ("the one on line 98").
  template <typename Entry, typename Other>
  void build_trie(const Entry& entry, const Other& other, const std::string& source) {
    std::vector<std::string_view> bytes(offsets_.size() - 1);
    std::vector<int32_t> sorted;
    for (int32_t id = 0; id < static_cast<int32_t>(bytes.size()); ++id) {
      bytes[id] = token_view(id);
      if (!bytes[id].empty()) sorted.push_back(id);
    }
    std::sort(sorted.begin(), sorted.end(), [&](int32_t a, int32_t b) { return bytes[a] < bytes[b]; });
    for (size_t i = 1; i < sorted.size(); ++i)
      if (bytes[sorted[i]] == bytes[sorted[i - 1]]) {
        const int32_t a = std::min(sorted[i], sorted[i - 1]), b = std::max(sorted[i], sorted[i - 1]);
        fail(entry(b), ": the token repeats ", other(a));  // in a vocabulary file, line == id
      }

    struct Pending {
      uint32_t node;
      size_t lo, hi, depth;  // sorted[lo, hi) share their first `depth` bytes: this node's path
    };
    nodes_.assign(1, Node{});
    std::vector<Pending> queue{{0, 0, sorted.size(), 0}};
    for (size_t q = 0; q < queue.size(); ++q) {
      auto [node, lo, hi, depth] = queue[q];
      if (lo < hi && bytes[sorted[lo]].size() == depth) nodes_[node].token = sorted[lo++];
      nodes_[node].first_edge = static_cast<uint32_t>(edge_bytes_.size());
      while (lo < hi) {
        const char b = bytes[sorted[lo]][depth];
        size_t end = lo + 1;
        while (end < hi && bytes[sorted[end]][depth] == b) ++end;
        const uint32_t child_node = static_cast<uint32_t>(nodes_.size());
        nodes_.push_back(Node{});
        edge_bytes_.push_back(static_cast<uint8_t>(b));
        edge_targets_.push_back(child_node);
        ++nodes_[node].edge_count;
        queue.push_back({child_node, lo, end, depth + 1});
        lo = end;
      }
    }

    for (Node& n : nodes_) {
      if (n.edge_count <= kDenseChildren) continue;
      n.dense = static_cast<uint32_t>(dense_children_.size()) + 1;
      dense_children_.resize(dense_children_.size() + 256, kNoNode);
      for (uint32_t e = n.first_edge; e < n.first_edge + n.edge_count; ++e)
        dense_children_[n.dense - 1 + edge_bytes_[e]] = edge_targets_[e];
    }

    // Greedy matching always advances only if every single byte is a token (ids 1..256).
    for (int b = 0; b < 256; ++b) {
      const uint32_t c = child(0, static_cast<uint8_t>(b));
      if (c == kNoNode || nodes_[c].token < 0) {
        static const char* hex = "0123456789abcdef";
        fail(source, ": no token for the single byte 0x", hex[b >> 4], hex[b & 15],
             " (every byte needs one so that any text can be encoded)");
      }
    }
  }

  uint32_t child(uint32_t node, uint8_t byte) const {
    const Node& n = nodes_[node];
    if (n.dense != 0) return dense_children_[n.dense - 1 + byte];
    const uint8_t* begin = edge_bytes_.data() + n.first_edge;
    const uint8_t* end = begin + n.edge_count;
    const uint8_t* it = n.edge_count <= 8 ? std::find(begin, end, byte) : std::lower_bound(begin, end, byte);
    if (it == end || *it != byte) return kNoNode;
    return edge_targets_[n.first_edge + static_cast<uint32_t>(it - begin)];
  }

  std::string blob_;               // all token bytes, id after id
  std::vector<uint32_t> offsets_;  // token id's bytes are blob_[offsets_[id], offsets_[id + 1])
  std::vector<Node> nodes_;        // nodes_[0] is the root (the empty prefix)
  std::vector<uint8_t> edge_bytes_;
  std::vector<uint32_t> edge_targets_;
  std::vector<uint32_t> dense_children_;  // 256 child indices (or kNoNode) per dense node
};

}  // namespace

std::unique_ptr<Tokenizer> load_world_tokenizer(const std::string& vocab_path) {
  return std::make_unique<WorldTokenizer>(vocab_path);
}

std::unique_ptr<Tokenizer> make_world_tokenizer(const std::vector<std::string>& tokens, const std::string& source,
                                                const std::string& list) {
  return std::make_unique<WorldTokenizer>(tokens, source, list);
}

}  // namespace rwkv
