// Tests of the World tokenizer (spec §6.1): the shared test vectors, the spec's examples, every
// vocabulary entry, random round trips against a naive greedy reference, and malformed vocabularies.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/error.hpp"
#include "test_util.hpp"
#include "text/tokenizer.hpp"

namespace rwkv {
namespace {

using Ids = std::vector<int32_t>;

constexpr int32_t kLastId = 65529;  // the file holds ids 1..65529

std::string vocab_path() { return test::data_path("tokenizers/rwkv_vocab_v20230424.txt"); }

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Loaded once for the whole file; the load time is printed, not asserted.
const Tokenizer& world() {
  static const std::unique_ptr<Tokenizer> tokenizer = [] {
    const auto start = std::chrono::steady_clock::now();
    auto t = load_world_tokenizer(vocab_path());
    std::printf("[ world    ] vocabulary loaded in %.1f ms\n", 1e3 * seconds_since(start));
    return t;
  }();
  return *tokenizer;
}

bool is_utf8(std::string_view s) {
  try {
    check_utf8(s, "s");
    return true;
  } catch (const Error&) {
    return false;
  }
}

std::string from_hex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  return out;
}

// Greedy longest match written the obvious way (try every length, longest first), as an
// independent check of the trie.
class NaiveGreedy {
 public:
  explicit NaiveGreedy(const Tokenizer& t) {
    for (int32_t id = 1; id <= kLastId; ++id) {
      bytes_.push_back(t.token_bytes(id));
      max_length_ = std::max(max_length_, bytes_.back().size());
    }
    for (int32_t id = 1; id <= kLastId; ++id) ids_.emplace(bytes_[id - 1], id);
  }
  Ids encode(std::string_view s) const {
    Ids out;
    for (size_t pos = 0; pos < s.size();) {
      for (size_t length = std::min(max_length_, s.size() - pos); length > 0; --length) {
        auto it = ids_.find(s.substr(pos, length));
        if (it != ids_.end()) {
          out.push_back(it->second);
          pos += length;
          break;
        }
      }
    }
    return out;
  }

 private:
  std::vector<std::string> bytes_;  // owns the bytes the map's keys point into
  std::unordered_map<std::string_view, int32_t> ids_;
  size_t max_length_ = 0;
};

// One code point as UTF-8 (the library's encoder, tested in utf8_test.cpp).
std::string encode_utf8(uint32_t cp) {
  std::string out;
  append_utf8(out, cp);
  return out;
}

// Random valid UTF-8: ASCII, whitespace, code points of every encoded length, and common
// words so that long vocabulary entries get matched too.
std::string random_text(std::mt19937& rng) {
  static const char* words[] = {" the", " and", "ing", "tion", "\n\n", "    ", "Hello", " world", "的", "是",
                                "今天", "Привет", "こんにちは", "안녕", "😀", "<|endoftext|>", "\r\n"};
  auto pick = [&](uint32_t lo, uint32_t hi) { return std::uniform_int_distribution<uint32_t>(lo, hi)(rng); };
  std::string s;
  const uint32_t pieces = pick(0, 60);
  for (uint32_t i = 0; i < pieces; ++i) {
    switch (pick(0, 7)) {
      case 0: case 1: s += encode_utf8(pick(0x21, 0x7e)); break;
      case 2: s += pick(0, 3) == 0 ? '\n' : ' '; break;
      case 3: s += encode_utf8(pick(0x80, 0x7ff)); break;
      case 4: {
        uint32_t cp = pick(0x800, 0xffff - 0x800);
        if (cp >= 0xd800) cp += 0x800;  // skip the surrogates
        s += encode_utf8(cp);
        break;
      }
      case 5: s += encode_utf8(pick(0x10000, 0x10ffff)); break;
      default: s += words[pick(0, std::size(words) - 1)]; break;
    }
  }
  return s;
}

// ---- the real vocabulary

TEST(WorldTokenizer, LoadsTheVocabulary) {
  const Tokenizer& t = world();
  EXPECT_EQ(t.name(), "world");
  EXPECT_EQ(t.vocab_size(), 65536u);
  EXPECT_EQ(t.end_of_text(), 0);
  // Ids without bytes: end of text and the embedding padding.
  EXPECT_EQ(t.token_bytes(0), "");
  for (int32_t id = kLastId + 1; id < 65536; ++id) EXPECT_EQ(t.token_bytes(id), "") << id;
  EXPECT_THROW(t.token_bytes(-1), Error);
  EXPECT_THROW(t.token_bytes(65536), Error);
  // Ids 1..256 are the single bytes.
  for (int32_t id = 1; id <= 256; ++id) EXPECT_EQ(t.token_bytes(id), std::string(1, static_cast<char>(id - 1))) << id;
  EXPECT_EQ(t.token_bytes(kLastId), std::string(128, ' '));
  // Lengths are non-decreasing with id and at most 128 (spec §6.1).
  size_t previous = 0;
  for (int32_t id = 1; id <= kLastId; ++id) {
    const size_t length = t.token_bytes(id).size();
    EXPECT_GE(length, previous) << id;
    previous = length;
  }
  EXPECT_EQ(previous, 128u);
}

TEST(WorldTokenizer, SpecExamples) {
  const Tokenizer& t = world();
  EXPECT_EQ(t.token_bytes(261), "\n\n");
  EXPECT_EQ(t.token_bytes(129), "\x80");      // b'\x80': a raw byte
  EXPECT_EQ(t.token_bytes(2423), "\xc2\x80");  // '\x80': the code point U+0080 in UTF-8
  EXPECT_EQ(t.encode("\n\n"), (Ids{261}));
  EXPECT_EQ(t.encode("User: hi\n\nAssistant:"), (Ids{24281, 59, 4571, 261, 5585, 41693, 59}));
  EXPECT_EQ(t.encode("The Eiffel tower is in the city of"),
            (Ids{6699, 304, 25740, 109, 39990, 4600, 4596, 22590, 30449, 4706}));
  EXPECT_EQ(t.encode("I'll 'd test блабла 以下は、]) -> <|endoftext|><|padding|> int"),
            (Ids{74, 5229, 274, 101, 32223, 5092, 27980, 2795, 27980, 33, 10399, 10258, 10139, 10079, 1682,
                 3463, 295, 125, 25258, 7588, 2318, 125, 790, 125, 49520, 125, 63, 21888}));
  // Special strings are ordinary text: never id 0.
  const Ids special = t.encode("<|endoftext|>");
  EXPECT_EQ(std::count(special.begin(), special.end(), 0), 0);
  EXPECT_TRUE(t.encode("").empty());
}

TEST(WorldTokenizer, SharedTestVectors) {
  const Tokenizer& t = world();
  std::ifstream f(test::data_path("tokenizers/tokenizer_test_vectors.jsonl"));
  ASSERT_TRUE(f) << "cannot read tokenizer_test_vectors.jsonl";
  size_t count = 0;
  for (std::string line; std::getline(f, line);) {
    if (line.empty()) continue;
    const auto v = nlohmann::json::parse(line);
    if (v.at("tokenizer") != "world_v20230424") continue;
    ++count;
    const std::string name = v.at("name"), text = v.at("text");
    const Ids ids = v.at("ids").get<Ids>();
    EXPECT_EQ(text, from_hex(v.at("utf8_hex").get<std::string>())) << name;
    EXPECT_EQ(t.encode(text), ids) << name;
    if (v.at("decode_roundtrip").get<bool>()) {
      EXPECT_EQ(t.decode_bytes(ids), text) << name;
      EXPECT_EQ(t.decode(ids), text) << name;
    }
  }
  EXPECT_GE(count, 29u);
}

// Greedy longest match of a whole token is the token itself (tokens are unique and nothing
// longer fits), so every entry whose bytes are valid UTF-8 encodes to exactly its own id.
TEST(WorldTokenizer, EveryEntryEncodesToItself) {
  const Tokenizer& t = world();
  size_t checked = 0;
  for (int32_t id = 1; id <= kLastId; ++id) {
    const std::string bytes = t.token_bytes(id);
    if (is_utf8(bytes)) {
      EXPECT_EQ(t.encode(bytes), (Ids{id})) << "id " << id;
      ++checked;
    } else {
      EXPECT_THROW(t.encode(bytes), Error) << "id " << id;
    }
  }
  EXPECT_GT(checked, 65000u);
}

TEST(WorldTokenizer, RandomTextRoundTripsAndMatchesNaiveGreedy) {
  const Tokenizer& t = world();
  const NaiveGreedy naive(t);
  std::mt19937 rng(20230424);
  for (int i = 0; i < 2000; ++i) {
    const std::string s = random_text(rng);
    const Ids ids = t.encode(s);
    ASSERT_EQ(t.decode_bytes(ids), s) << "string " << i;
    for (int32_t id : ids) {
      ASSERT_TRUE(id >= 1 && id <= kLastId) << id;
    }
    if (i < 150) {
      EXPECT_EQ(ids, naive.encode(s)) << "string " << i;
    }
  }
  // Ordinary prose too, where long tokens are common.
  const auto corpus = test::read_bytes(test::data_path("corpus/tinyshakespeare_input.txt"));
  const std::string prose(corpus.begin(), corpus.begin() + 8192);
  EXPECT_EQ(t.encode(prose), naive.encode(prose));
}

// Speed is printed for the report; only correctness is asserted.
TEST(WorldTokenizer, EncodesOneMegabyte) {
  const Tokenizer& t = world();
  const auto corpus = test::read_bytes(test::data_path("corpus/tinyshakespeare_input.txt"));
  const std::string mixed = "今天天气不错，我们去公园散步吧。 Съешь же ещё этих мягких французских булок. "
                            "안녕하세요 😀👍🏽 مرحبا بالعالم नमस्ते दुनिया\n";
  std::string text;
  for (size_t at = 0; text.size() < (1u << 20); at = (at + 4096) % (corpus.size() - 4096)) {
    text.append(corpus.begin() + at, corpus.begin() + at + 4096);
    text += mixed;
  }
  text.resize(complete_utf8_prefix(std::string_view(text).substr(0, 1u << 20)));

  const auto start = std::chrono::steady_clock::now();
  const Ids ids = t.encode(text);
  const double seconds = seconds_since(start);
  std::printf("[ world    ] encoded %zu bytes into %zu tokens in %.1f ms (%.1f MB/s)\n", text.size(), ids.size(),
              1e3 * seconds, text.size() / seconds / 1e6);
  EXPECT_EQ(t.decode_bytes(ids), text);
  EXPECT_LT(ids.size(), text.size() / 2);
}

TEST(WorldTokenizer, RejectsInvalidUtf8) {
  const Tokenizer& t = world();
  for (const char* bad : {"\xff", "abc\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80", "ok \xe2\x82"}) {
    EXPECT_THROW(t.encode(bad), Error) << bad;
  }
  try {
    t.encode("ab\xff");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("text"), std::string::npos) << e.what();
  }
}

TEST(WorldTokenizer, CrlfCopyLoadsTheSame) {
  test::TempDir dir;
  const auto lf = test::read_bytes(vocab_path());
  std::string crlf;
  crlf.reserve(lf.size() + 70000);
  for (uint8_t c : lf) {
    if (c == '\n') crlf += '\r';
    crlf += static_cast<char>(c);
  }
  const std::string path = dir.file("vocab_crlf.txt");
  test::write_bytes(path, std::vector<uint8_t>(crlf.begin(), crlf.end()));
  const auto copy = load_world_tokenizer(path);
  for (int32_t id = 0; id < 65536; ++id) {
    ASSERT_EQ(copy->token_bytes(id), world().token_bytes(id)) << id;
  }
}

// ---- small and malformed vocabularies

// The 256 single bytes, as bytes literals, then entries exercising the literal syntax.
std::vector<std::string> small_vocab() {
  std::vector<std::string> lines;
  static const char* hex = "0123456789abcdef";
  for (int b = 0; b < 256; ++b)
    lines.push_back(std::to_string(b + 1) + " b'\\x" + hex[b >> 4] + hex[b & 15] + "' 1");
  lines.push_back(R"(257 'ab' 2)");
  lines.push_back(R"(258 '\xe9t\u00e9' 5)");  // str: \xe9 is U+00E9, two bytes in UTF-8
  lines.push_back(R"(259 b'\xe9t' 2)");        // bytes: \xe9 is one raw byte
  lines.push_back(R"(260 "it's" 4)");
  lines.push_back(R"(261 '\\\'\"\n\r\t' 6)");
  lines.push_back(R"(262 '\U0001F600' 4)");
  lines.push_back(R"(263 'a b' 3)");           // the literal may contain spaces
  lines.push_back(R"(264 '\101\0' 2)");        // octal escapes
  return lines;
}

std::string write_vocab(const test::TempDir& dir, const std::vector<std::string>& lines, const char* eol = "\n") {
  std::string text;
  for (const auto& line : lines) text += line + eol;
  const std::string path = dir.file("vocab.txt");
  test::write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
  return path;
}

// The message of the Error loading `path` throws, or "" if it loads.
std::string world_load_error(const std::string& path) {
  try {
    load_world_tokenizer(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(WorldTokenizerVocab, SmallVocabularyParsesBothLiteralKinds) {
  test::TempDir dir;
  for (const char* eol : {"\n", "\r\n"}) {
    const auto t = load_world_tokenizer(write_vocab(dir, small_vocab(), eol));
    EXPECT_EQ(t->token_bytes(257), "ab");
    EXPECT_EQ(t->token_bytes(258), "\xc3\xa9t\xc3\xa9");
    EXPECT_EQ(t->token_bytes(259), "\xe9t");
    EXPECT_EQ(t->token_bytes(260), "it's");
    EXPECT_EQ(t->token_bytes(261), "\\'\"\n\r\t");
    EXPECT_EQ(t->token_bytes(262), "\xf0\x9f\x98\x80");
    EXPECT_EQ(t->token_bytes(263), "a b");
    EXPECT_EQ(t->token_bytes(264), std::string("A\0", 2));
    EXPECT_EQ(t->token_bytes(265), "");
    EXPECT_EQ(t->encode("abétéa b!"), (Ids{257, 258, 263, 34}));
    EXPECT_EQ(t->encode("aé"), (Ids{98, 196, 170}));  // é alone is two single bytes
  }
  // No trailing newline is fine too.
  std::string text;
  for (const auto& line : small_vocab()) text += (text.empty() ? "" : "\n") + line;
  test::write_bytes(dir.file("vocab.txt"), std::vector<uint8_t>(text.begin(), text.end()));
  EXPECT_EQ(load_world_tokenizer(dir.file("vocab.txt"))->token_bytes(264), std::string("A\0", 2));
}

TEST(WorldTokenizerVocab, MalformedLinesNameFileAndLine) {
  test::TempDir dir;
  const std::vector<std::string> bad_line_257 = {
      "257 'ab' 3",          // wrong byte length
      "257 'ab' 1",          // wrong byte length
      R"(257 '\q' 2)",       // unknown escape
      R"(257 '\x4' 1)",      // truncated \x
      R"(257 '\xg0' 1)",     // bad hex digit
      R"(257 '\ud800' 3)",   // surrogate
      R"(257 '\U00110000' 4)",  // beyond U+10FFFF
      R"(257 b'\u0041' 1)",  // \u is not an escape in bytes
      R"(257 b'\400' 1)",    // octal beyond a byte
      "257 b'\xc3\xa9' 2",   // non-ASCII in a bytes literal
      "257 'ab 2",           // unterminated
      "257 'ab\" 2",         // mismatched quotes
      "257 'a'b' 3",         // unescaped quote
      R"(257 'ab\' 2)",      // ends inside an escape
      "257 ab 2",            // not a literal
      "257 'ab'",            // no byte length
      "257",                 // nothing but an id
      "",                    // blank line
      "x57 'ab' 2",          // id not a number
      "257 'ab' two",        // length not a number
      "-257 'ab' 2",         // signed id
      "257 '' 0",            // empty token
      "258 'ab' 2",          // ids not consecutive
      "256 'ab' 2",          // ids not consecutive
      "257 'a\xff' 2",       // not UTF-8
  };
  for (const auto& bad : bad_line_257) {
    auto lines = small_vocab();
    lines[256] = bad;
    const std::string path = write_vocab(dir, lines);
    const std::string message = world_load_error(path);
    EXPECT_NE(message.find(path + ":257: "), std::string::npos) << bad << " -> " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(WorldTokenizerVocab, MissingLineBreaksTheIdSequence) {
  test::TempDir dir;
  auto lines = small_vocab();
  lines.erase(lines.begin() + 256);  // line 257 now holds id 258
  const std::string path = write_vocab(dir, lines);
  const std::string message = world_load_error(path);
  EXPECT_NE(message.find(path + ":257: id 258"), std::string::npos) << message;
}

TEST(WorldTokenizerVocab, DuplicateTokenIsRejected) {
  test::TempDir dir;
  auto lines = small_vocab();
  lines[256] = "257 'a' 1";  // the same bytes as id 98
  const std::string path = write_vocab(dir, lines);
  const std::string message = world_load_error(path);
  EXPECT_NE(message.find(path + ":257: "), std::string::npos) << message;
  EXPECT_NE(message.find("line 98"), std::string::npos) << message;
}

TEST(WorldTokenizerVocab, EveryByteNeedsASingleByteToken) {
  test::TempDir dir;
  auto lines = small_vocab();
  lines.resize(255);  // bytes 0x00..0xfe only
  const std::string message = world_load_error(write_vocab(dir, lines));
  EXPECT_NE(message.find("0xff"), std::string::npos) << message;
}

TEST(WorldTokenizerVocab, EmptyAndMissingFiles) {
  test::TempDir dir;
  const std::string empty = write_vocab(dir, {});
  EXPECT_NE(world_load_error(empty).find(empty), std::string::npos) << world_load_error(empty);
  const std::string missing = dir.file("no_such_vocab.txt");
  EXPECT_NE(world_load_error(missing).find(missing), std::string::npos) << world_load_error(missing);
  const std::string directory = dir.file("");
  EXPECT_NE(world_load_error(directory).find(directory), std::string::npos) << world_load_error(directory);
}

TEST(WorldTokenizerVocab, IdsBeyondTheVocabularyAreRejected) {
  test::TempDir dir;
  const auto real = test::read_bytes(vocab_path());
  std::string text(real.begin(), real.end());
  for (int id = kLastId + 1; id <= 65536; ++id) text += std::to_string(id) + " 'zq" + std::to_string(id) + "' 7\n";
  const std::string path = dir.file("vocab.txt");
  test::write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
  const std::string message = world_load_error(path);
  EXPECT_NE(message.find(path + ":65536: "), std::string::npos) << message;
}

}  // namespace
}  // namespace rwkv
