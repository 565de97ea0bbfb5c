// The GPT-NeoX 20B byte-level BPE tokenizer (spec §6.2): the shared test vectors, the spec's
// examples, a round-trip property, and malformed tokenizer files.
#include <utf8proc.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "io/error.hpp"
#include "test_util.hpp"
#include "text/tokenizer.hpp"

namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;

// Loaded once: parsing the 1.4 MB file for every test would dominate the suite's time.
const rwkv::Tokenizer& neox() {
  static const std::unique_ptr<rwkv::Tokenizer> tok =
      rwkv::load_bpe_tokenizer(rwkv::test::data_path("tokenizers/20B_tokenizer.json"));
  return *tok;
}

std::string nfc(const std::string& s) {
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                              static_cast<utf8proc_ssize_t>(s.size()), &out,
                              static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) throw std::runtime_error("utf8proc_map failed");
  std::string r(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return r;
}

std::string utf8(char32_t cp) {
  std::string s;
  utf8proc_uint8_t buf[4];
  const auto n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buf);
  s.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
  return s;
}

// ---- the real 20B tokenizer

TEST(BpeTokenizer, Basics) {
  const auto& t = neox();
  EXPECT_EQ(t.vocab_size(), 50277u);
  EXPECT_EQ(t.name(), "20b");
  EXPECT_EQ(t.end_of_text(), 0);
  // Special tokens decode to nothing; the space-run tokens to their spaces (id = 50278 − run).
  EXPECT_EQ(t.token_bytes(0), "");
  EXPECT_EQ(t.token_bytes(1), "");
  EXPECT_EQ(t.token_bytes(50254), std::string(24, ' '));
  EXPECT_EQ(t.token_bytes(50276), std::string(2, ' '));
  EXPECT_EQ(t.token_bytes(187), "\n");  // "Ċ"
  EXPECT_EQ(t.token_bytes(535), "\n\n");
  EXPECT_EQ(t.token_bytes(12092), "Hello");
  EXPECT_EQ(t.token_bytes(1533), " world");  // "Ġworld"
  EXPECT_THROW(t.token_bytes(50277), rwkv::Error);
  EXPECT_THROW(t.token_bytes(-1), rwkv::Error);
}

TEST(BpeTokenizer, SpecTableExamples) {
  const auto& t = neox();
  const std::vector<std::pair<std::string, Ids>> cases = {
      {"\nThe following is a", {187, 510, 1563, 310, 247}},
      {"\n\n", {535}},
      {"Hello world", {12092, 1533}},
      {"User: hi\n\nAssistant:", {6989, 27, 14260, 187, 187, 6717, 5567, 27}},
      {"Bob: hello\n\nAlice:", {26845, 27, 23120, 187, 187, 2422, 547, 27}},
      {"The Eiffel tower is in the city of", {510, 444, 1648, 293, 15469, 310, 275, 253, 2846, 273}},
      {"a    b", {66, 50274, 67}},
  };
  for (const auto& [text, ids] : cases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(t.encode(text), ids);
    EXPECT_EQ(t.decode_bytes(ids), text);
  }
}

std::string without_special_tokens(std::string s) {
  for (const std::string special : {"<|endoftext|>", "<|padding|>"}) {
    for (size_t p; (p = s.find(special)) != std::string::npos;) s.erase(p, special.size());
  }
  return s;
}

TEST(BpeTokenizer, SharedTestVectors) {
  const auto& t = neox();
  std::ifstream f(rwkv::test::data_path("tokenizers/tokenizer_test_vectors.jsonl"));
  ASSERT_TRUE(f.good());
  std::string line;
  int count = 0;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    const json v = json::parse(line);
    if (v.at("tokenizer") != "gpt_neox_20b") continue;
    ++count;
    const std::string text = v.at("text").get<std::string>();
    const Ids ids = v.at("ids").get<Ids>();
    SCOPED_TRACE(v.at("name").get<std::string>());
    EXPECT_EQ(t.encode(text), ids);
    if (v.at("decode_roundtrip").get<bool>()) {
      // The vectors were made with the special tokens kept in the decoded text; our
      // token_bytes gives "" for them (the library's default decode skips them, spec §6.2).
      EXPECT_EQ(t.decode_bytes(ids), without_special_tokens(text));
    } else {
      EXPECT_EQ(t.decode_bytes(ids), nfc(text));  // the `combining` vector: NFC changes the text
    }
  }
  EXPECT_GE(count, 25);
}

TEST(BpeTokenizer, WhitespaceRunsAndAddedTokens) {
  const auto& t = neox();
  // `\s+(?!\S)` leaves the last newline before a word; at the end the run stays whole.
  EXPECT_EQ(t.encode("\n\nHello"), (Ids{187, 187, 12092}));
  EXPECT_EQ(t.encode("Hello\n\n"), (Ids{12092, 535}));
  // 25 spaces: one 24-space token, then a single space that BPE joins with the next word.
  const Ids x = t.encode(" x");
  ASSERT_EQ(x.size(), 1u);
  EXPECT_EQ(t.encode(std::string(25, ' ') + "x"), (Ids{50254, x[0]}));
  // Special tokens are matched anywhere in the raw text.
  EXPECT_EQ(t.encode("<|padding|>"), (Ids{1}));
  EXPECT_EQ(t.encode("Hello<|endoftext|>Hello"), (Ids{12092, 0, 12092}));
  EXPECT_EQ(t.decode_bytes(t.encode("Hello<|endoftext|>Hello")), "HelloHello");
  // Empty text.
  EXPECT_TRUE(t.encode("").empty());
}

TEST(BpeTokenizer, NormalizesToNfc) {
  const auto& t = neox();
  const std::string composed = "caf\xc3\xa9";     // café with U+00E9
  const std::string decomposed = "cafe\xcc\x81";  // e + U+0301
  EXPECT_EQ(t.encode(decomposed), t.encode(composed));
  EXPECT_EQ(t.decode_bytes(t.encode(decomposed)), composed);
}

TEST(BpeTokenizer, RejectsInvalidUtf8) {
  const auto& t = neox();
  for (const std::string bad : {"\xff", "abc\xc3", "a\xed\xa0\x80z", "\xc0\xaf"}) {
    EXPECT_THROW(t.encode(bad), rwkv::Error);
  }
}

// Property: decoding the encoding gives back the NFC form of any text (spec §6.2 is lossless
// apart from normalisation). Characters are drawn from ASCII (controls included), Latin-1,
// combining accents (so that NFC has work to do) and CJK.
TEST(BpeTokenizer, RandomTextRoundTrips) {
  const auto& t = neox();
  std::mt19937 rng(20240607);
  const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x00, 0x7f}, {0x20, 0x7e}, {0x20, 0x7e}, {0x80, 0xff}, {0x300, 0x36f}, {0x4e00, 0x9fff}, {' ', ' '}};
  for (int k = 0; k < 500; ++k) {
    std::string s;
    const int len = std::uniform_int_distribution<int>(0, 40)(rng);
    for (int i = 0; i < len; ++i) {
      const auto& [lo, hi] = ranges[std::uniform_int_distribution<size_t>(0, ranges.size() - 1)(rng)];
      s += utf8(std::uniform_int_distribution<uint32_t>(lo, hi)(rng));
    }
    const Ids ids = t.encode(s);
    for (int32_t id : ids) {
      ASSERT_TRUE(id >= 0 && static_cast<size_t>(id) < t.vocab_size());
    }
    EXPECT_EQ(t.decode_bytes(ids), nfc(s)) << "case " << k;
  }
}

TEST(BpeTokenizer, LongTextRoundTrips) {
  const auto& t = neox();
  std::ifstream f(rwkv::test::data_path("corpus/tinyshakespeare_input.txt"), std::ios::binary);
  ASSERT_TRUE(f.good());
  std::string text(100000, '\0');
  f.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(f.gcount()));
  const Ids ids = t.encode(text);
  EXPECT_LT(ids.size(), text.size() / 2);  // BPE compresses English well below 2 bytes/token
  EXPECT_EQ(t.decode_bytes(ids), text);
  // A long piece with no spaces goes through BPE in one piece.
  const std::string word(20000, 'a');
  EXPECT_EQ(t.decode_bytes(t.encode(word)), word);
}

// ---- small synthetic tokenizer files

// The 256 byte-level characters (spec §6.2 step 4) in byte order.
std::vector<std::string> byte_chars() {
  std::vector<std::string> chars;
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
    chars.push_back(utf8(printable ? char32_t(b) : next++));
  }
  return chars;
}

// A valid file: bytes are ids 0..255, "aa" = 256 and "aaa" = 257 (merges in both syntaxes),
// "<|endoftext|>" = 300 (special), "--" = 301 (normalised, not special); 258..299 are unused.
json minimal_file() {
  json vocab = json::object();
  const auto chars = byte_chars();
  for (int b = 0; b < 256; ++b) vocab[chars[b]] = b;
  vocab["aa"] = 256;
  vocab["aaa"] = 257;
  json added = json::array();
  added.push_back({{"id", 300}, {"content", "<|endoftext|>"}, {"special", true}, {"normalized", false},
                   {"single_word", false}, {"lstrip", false}, {"rstrip", false}});
  added.push_back({{"id", 301}, {"content", "--"}, {"special", false}, {"normalized", true}});
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}};
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", {{"type", "Sequence"}, {"normalizers", json::array({{{"type", "NFC"}}})}}},
          {"pre_tokenizer", byte_level},
          {"post_processor", byte_level},
          {"decoder", byte_level},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"vocab", vocab},
            {"merges", json::array({"a a", json::array({"aa", "a"})})}}}};
}

std::string write_json(const rwkv::test::TempDir& dir, const json& j) {
  const std::string path = dir.file("tokenizer.json");
  std::ofstream(path) << j.dump();
  return path;
}

// The message of the Error that loading `path` throws ("" if none).
std::string bpe_load_error(const std::string& path) {
  try {
    rwkv::load_bpe_tokenizer(path);
  } catch (const rwkv::Error& e) {
    return e.what();
  }
  return "";
}

TEST(BpeTokenizerFile, MinimalFileEncodesAndDecodes) {
  rwkv::test::TempDir dir;
  const auto t = rwkv::load_bpe_tokenizer(write_json(dir, minimal_file()));
  EXPECT_EQ(t->vocab_size(), 302u);
  // Merge ranks: "a a" (0) applies left to right before "aa a" (1).
  EXPECT_EQ(t->encode("aaa"), (Ids{257}));
  EXPECT_EQ(t->encode("aaaa"), (Ids{256, 256}));
  EXPECT_EQ(t->encode("aaaaa"), (Ids{256, 257}));
  EXPECT_EQ(t->encode("b a"), (Ids{'b', ' ', 'a'}));
  EXPECT_EQ(t->encode("x<|endoftext|>--"), (Ids{'x', 300, 301}));
  EXPECT_EQ(t->token_bytes(' '), " ");
  EXPECT_EQ(t->token_bytes(256), "aa");
  EXPECT_EQ(t->token_bytes(300), "");  // special
  EXPECT_EQ(t->token_bytes(301), "--");
  EXPECT_EQ(t->token_bytes(280), "");  // no entry
  EXPECT_THROW(t->token_bytes(302), rwkv::Error);
}

TEST(BpeTokenizerFile, NullNormalizerSkipsNfc) {
  rwkv::test::TempDir dir;
  json j = minimal_file();
  j["normalizer"] = nullptr;
  const auto t = rwkv::load_bpe_tokenizer(write_json(dir, j));
  EXPECT_EQ(t->decode_bytes(t->encode("e\xcc\x81")), "e\xcc\x81");
}

TEST(BpeTokenizerFile, MissingFile) {
  const std::string msg = bpe_load_error("/nonexistent/20B_tokenizer.json");
  EXPECT_NE(msg.find("/nonexistent/20B_tokenizer.json"), std::string::npos) << msg;
}

TEST(BpeTokenizerFile, NotJson) {
  rwkv::test::TempDir dir;
  const std::string path = dir.file("tokenizer.json");
  std::ofstream(path) << "{\"model\": [1, 2,";
  const std::string msg = bpe_load_error(path);
  EXPECT_NE(msg.find("not valid JSON"), std::string::npos) << msg;
}

TEST(BpeTokenizerFile, BadFieldsAreNamed) {
  rwkv::test::TempDir dir;
  struct Case {
    const char* expected;  // part of the message
    void (*mutate)(json&);
  };
  const Case cases[] = {
      {"model.type", [](json& j) { j["model"]["type"] = "WordPiece"; }},
      {"model.merges", [](json& j) { j["model"]["merges"] = "a a"; }},
      {"model.merges[0]", [](json& j) { j["model"]["merges"][0] = "a"; }},
      {"model.merges[1]", [](json& j) { j["model"]["merges"][1] = json::array({"aa", "q"}); }},
      {"model.vocab", [](json& j) { j["model"].erase("vocab"); }},
      {"model.vocab", [](json& j) { j["model"]["vocab"]["aa"] = "256"; }},
      {"model", [](json& j) { j.erase("model"); }},
      {"unsupported normalizer", [](json& j) { j["normalizer"] = {{"type", "Lowercase"}}; }},
      {"unsupported normalizer",
       [](json& j) { j["normalizer"]["normalizers"].push_back({{"type", "NFKC"}}); }},
      {"pre_tokenizer", [](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }},
      {"pre_tokenizer.add_prefix_space", [](json& j) { j["pre_tokenizer"]["add_prefix_space"] = true; }},
      {"decoder", [](json& j) { j["decoder"] = nullptr; }},
      {"added_tokens[0].id", [](json& j) { j["added_tokens"][0]["id"] = "300"; }},
      {"added_tokens[1].content", [](json& j) { j["added_tokens"][1].erase("content"); }},
      {"added_tokens", [](json& j) { j["added_tokens"] = json::object(); }},
  };
  for (const Case& c : cases) {
    json j = minimal_file();
    c.mutate(j);
    const std::string msg = bpe_load_error(write_json(dir, j));
    EXPECT_NE(msg.find(c.expected), std::string::npos) << "expected \"" << c.expected << "\" in: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

}  // namespace
