// UTF-8 validation, U+FFFD replacement and streaming boundaries; the byte tokenizer; the
// decoding helpers shared by every tokenizer.
#include <cstdint>

#include "io/error.hpp"
#include "text/tokenizer.hpp"

namespace rwkv {

namespace {

// The UTF-8 sequence at s[i]: `length` is its size if valid, else 0; `prefix` is how many
// bytes form a valid beginning of a sequence (at least 1), and `truncated` says the string ended
// inside an otherwise valid sequence. Byte ranges from RFC 3629's table.
struct Utf8Sequence {
  size_t length, prefix;
  bool truncated;
};

Utf8Sequence scan_utf8(std::string_view s, size_t i) {
  const uint8_t c = static_cast<uint8_t>(s[i]);
  if (c < 0x80) return {1, 1, false};
  size_t n;
  uint8_t lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (c >= 0xc2 && c <= 0xdf) n = 2;
  else if (c == 0xe0) { n = 3; lo = 0xa0; }
  else if (c >= 0xe1 && c <= 0xec) n = 3;
  else if (c == 0xed) { n = 3; hi = 0x9f; }
  else if (c >= 0xee && c <= 0xef) n = 3;
  else if (c == 0xf0) { n = 4; lo = 0x90; }
  else if (c >= 0xf1 && c <= 0xf3) n = 4;
  else if (c == 0xf4) { n = 4; hi = 0x8f; }
  else return {0, 1, false};
  for (size_t k = 1; k < n; ++k) {
    if (i + k >= s.size()) return {0, k, true};
    const uint8_t x = static_cast<uint8_t>(s[i + k]);
    if (k == 1 ? (x < lo || x > hi) : (x < 0x80 || x > 0xbf)) return {0, k, false};
  }
  return {n, n, false};
}

class ByteTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text) const override {
    check_utf8(text, "text");
    std::vector<int32_t> ids;
    ids.reserve(text.size());
    for (char c : text) ids.push_back(static_cast<uint8_t>(c));
    return ids;
  }
  std::string token_bytes(int32_t id) const override {
    if (id < 0 || id > 255) fail("token id ", id, " is outside the byte vocabulary (0..255)");
    return std::string(1, static_cast<char>(id));
  }
  size_t vocab_size() const override { return 256; }
  std::string name() const override { return "bytes"; }
};

}  // namespace

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

void check_utf8(std::string_view s, const char* what) {
  static const char* hex = "0123456789abcdef";
  for (size_t i = 0; i < s.size();) {
    const Utf8Sequence q = scan_utf8(s, i);
    if (q.length == 0) {
      const uint8_t c = static_cast<uint8_t>(s[i]);
      fail(what, " is not valid UTF-8 (byte 0x", hex[c >> 4], hex[c & 15], " at offset ", i, ")");
    }
    i += q.length;
  }
}

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const Utf8Sequence q = scan_utf8(s, i);
    if (q.length > 0) {
      out.append(s.substr(i, q.length));
      i += q.length;
    } else {  // one U+FFFD per maximal invalid subpart (the Unicode recommendation)
      out += "\xef\xbf\xbd";
      i += q.prefix;
    }
  }
  return out;
}

size_t complete_utf8_prefix(std::string_view s) {
  // Only the last 3 bytes can start an unfinished character.
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const size_t i = s.size() - back;
    if ((static_cast<uint8_t>(s[i]) & 0xc0) == 0x80) continue;  // continuation: look further back
    return scan_utf8(s, i).truncated ? i : s.size();
  }
  return s.size();
}

std::string Tokenizer::decode_bytes(std::span<const int32_t> ids) const {
  std::string out;
  for (int32_t id : ids) out += token_bytes(id);
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const { return sanitize_utf8(decode_bytes(ids)); }

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

}  // namespace rwkv
