// Tokenizers in GGUF metadata: llama.cpp's escaping of RWKV tokens for every World token, the
// World / 20B / byte tokenizers written by convert, quantize and init and read back from the
// file alone, metadata copied through, and hostile metadata refused with one-line errors.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/error.hpp"
#include "io/gguf.hpp"
#include "model/gguf_model.hpp"
#include "model/model.hpp"
#include "test_util.hpp"
#include "text/tokenizer.hpp"
#include "text/tokenizer_gguf.hpp"

namespace rwkv {
namespace {

using Ids = std::vector<int32_t>;

std::string world_vocab() { return test::data_path("tokenizers/rwkv_vocab_v20230424.txt"); }
std::string bpe_json() { return test::data_path("tokenizers/20B_tokenizer.json"); }
std::string tiny_model_path() { return test::data_path("rwkv_cpp_tiny/tiny-rwkv-4v0-660K-FP32.bin"); }

// The test vectors of one tokenizer ("world" or "20b") from the shared jsonl file.
struct Vector {
  std::string name, text;
  Ids ids;
};
std::vector<Vector> vectors(const std::string& kind) {
  std::ifstream f(test::data_path("tokenizers/tokenizer_test_vectors.jsonl"));
  std::vector<Vector> out;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    if (j["tokenizer"].get<std::string>().rfind(kind, 0) != 0) continue;
    out.push_back({j["name"].get<std::string>(), j["text"].get<std::string>(), j["ids"].get<Ids>()});
  }
  return out;
}

// Runs a command with the vocabulary files out of reach: no RWKV_TOKENIZER_DIR, and the
// current directory (searched as . and ./tokenizers) an empty one.
class NoVocabulary {
 public:
  explicit NoVocabulary(const std::string& dir) : old_(std::filesystem::current_path()) {
    if (const char* env = std::getenv("RWKV_TOKENIZER_DIR")) saved_env_ = env;
    ::unsetenv("RWKV_TOKENIZER_DIR");
    std::filesystem::create_directories(dir);
    std::filesystem::current_path(dir);
  }
  ~NoVocabulary() {
    std::filesystem::current_path(old_);
    if (!saved_env_.empty()) ::setenv("RWKV_TOKENIZER_DIR", saved_env_.c_str(), 1);
  }

 private:
  std::filesystem::path old_;
  std::string saved_env_;
};

const GgufValue& key(const GgufFile& f, const std::string& name) {
  const GgufValue* v = f.find(name);
  if (!v) throw std::runtime_error("no key " + name);
  return *v;
}

std::vector<std::string> tokens_of(const GgufFile& f) { return *key(f, "tokenizer.ggml.tokens").as_string_array(); }

// The message of the Error `f` throws ("" if none), checked to be one line.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    return m;
  }
  ADD_FAILURE() << "no error";
  return {};
}

// ---- escaping

TEST(RwkvTokenEscape, MatchesLlamaCppConverter) {
  EXPECT_EQ(escape_rwkv_token("\n\n"), "\\n\\n");
  EXPECT_EQ(escape_rwkv_token("以下"), "\\xe4\\xbb\\xa5\\xe4\\xb8\\x8b");
  EXPECT_EQ(escape_rwkv_token("\x80"), "\\x80");          // id 129, b'\x80'
  EXPECT_EQ(escape_rwkv_token("\xc2\x80"), "\\xc2\\x80");  // id 2423, '\x80' as a str
  EXPECT_EQ(escape_rwkv_token("a\\b\tc\rd"), "a\\\\b\\tc\\rd");
  EXPECT_EQ(escape_rwkv_token(std::string("\0\x1f\x7f ~", 5)), "\\x00\\x1f\\x7f ~");
  EXPECT_EQ(escape_rwkv_token("it's"), "it's");           // Python switches to "..." quotes
  EXPECT_EQ(escape_rwkv_token("say \"x\""), "say \"x\"");
  EXPECT_EQ(escape_rwkv_token("'\""), "\\'\"");           // both quotes: ' is escaped
}

TEST(RwkvTokenEscape, UnescapeReadsAsLlamaCppDoes) {
  EXPECT_EQ(unescape_rwkv_token("\\n\\t\\r"), "\n\t\r");
  EXPECT_EQ(unescape_rwkv_token("\\xe4\\xBB"), "\xe4\xbb");  // uppercase hex accepted
  EXPECT_EQ(unescape_rwkv_token("\\'\\\"\\\\\\q"), "'\"\\q");  // any other escaped char is itself
  EXPECT_EQ(unescape_rwkv_token("<s>"), "<s>");
  EXPECT_NE(error_of([] { unescape_rwkv_token("ab\\"); }).find("backslash"), std::string::npos);
  EXPECT_NE(error_of([] { unescape_rwkv_token("\\x4"); }).find("hex"), std::string::npos);
  EXPECT_NE(error_of([] { unescape_rwkv_token("\\xg0"); }).find("hex"), std::string::npos);
}

TEST(RwkvTokenEscape, EveryWorldTokenRoundTrips) {
  const auto world = load_world_tokenizer(world_vocab());
  size_t count = 0;
  for (int32_t id = 1; id <= 65529; ++id) {
    const std::string bytes = world->token_bytes(id);
    const std::string escaped = escape_rwkv_token(bytes);
    for (char c : escaped) ASSERT_TRUE(c >= 0x20 && c <= 0x7e) << id;  // pure printable ASCII
    ASSERT_EQ(unescape_rwkv_token(escaped), bytes) << id;
    ++count;
  }
  EXPECT_EQ(count, 65529u);
}

// ---- bytes

TEST(GgufTokenizer, ConvertWithByteTokenizerReadsBackTheSameEncodings) {
  test::TempDir dir;
  const auto r = test::run_cli("convert " + tiny_model_path() + " " + dir.file("b.gguf") + " --tokenizer bytes");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("warning"), std::string::npos) << r.output;
  const GgufFile f = read_gguf(dir.file("b.gguf"));
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "rwkv");
  const auto tokens = tokens_of(f);
  ASSERT_EQ(tokens.size(), 256u);
  EXPECT_EQ(tokens[0], "\\x00");
  EXPECT_EQ(tokens[10], "\\n");
  EXPECT_EQ(tokens['A'], "A");
  EXPECT_EQ(tokens['\\'], "\\\\");
  EXPECT_EQ(tokens[0xff], "\\xff");
  EXPECT_EQ(key(f, "tokenizer.ggml.token_type").as_int_array(), std::vector<int64_t>(256, 1));
  EXPECT_EQ(f.find("tokenizer.ggml.eot_token_id"), nullptr);

  NoVocabulary none(dir.file("empty"));
  const auto model = Model::load(dir.file("b.gguf"));
  ASSERT_TRUE(model->weights().tokenizer);
  const auto from_file = resolve_tokenizer("", model->weights());
  EXPECT_EQ(from_file->name(), "bytes");
  const auto reference = make_byte_tokenizer();
  for (const std::string text : {"Hello, world!\n", "καλημέρα 🌍", "tab\there \\ and 'quotes\""})
    EXPECT_EQ(from_file->encode(text), reference->encode(text)) << text;
  // An explicit --tokenizer wins over the file's own.
  EXPECT_THROW(resolve_tokenizer("world", model->weights()), Error);  // not found from here
}

TEST(GgufTokenizer, TinyModelsGetTheByteTokenizerByDefault) {
  test::TempDir dir;
  const auto r = test::run_cli("quantize " + test::data_path("rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin") + " " +
                               dir.file("q.gguf") + " q8_0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_gguf(dir.file("q.gguf")).get_string("tokenizer.ggml.model"), "rwkv");
  EXPECT_EQ(resolve_tokenizer("", Model::load(dir.file("q.gguf"))->weights())->name(), "bytes");
}

// ---- World

class GgufWorld : public ::testing::Test {
 protected:
  // A one-layer RWKV-4 with the World vocabulary size, written by rwkv init with its tokenizer.
  static void SetUpTestSuite() {
    dir_ = new test::TempDir;
    const auto r = test::run_cli("init --arch rwkv4 --layers 1 --embd 32 --vocab 65536 --tokenizer " + world_vocab() +
                                 " -o " + dir_->file("w.gguf"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string model() { return dir_->file("w.gguf"); }
  static test::TempDir* dir_;
};
test::TempDir* GgufWorld::dir_ = nullptr;

TEST_F(GgufWorld, WritesLlamaCppsKeys) {
  const GgufFile f = read_gguf(model());
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "rwkv");
  const auto tokens = tokens_of(f);
  ASSERT_EQ(tokens.size(), 65536u);
  const auto types = *key(f, "tokenizer.ggml.token_type").as_int_array();
  EXPECT_EQ(key(f, "tokenizer.ggml.token_type").array_type(), GgufType::I32);
  EXPECT_EQ(tokens[0], "<s>");
  EXPECT_EQ(types[0], 3);
  EXPECT_EQ(tokens[1], "\\x00");
  EXPECT_EQ(tokens[129], "\\x80");
  EXPECT_EQ(tokens[261], "\\n\\n");
  EXPECT_EQ(tokens[2423], "\\xc2\\x80");
  EXPECT_EQ(types[65529], 1);
  EXPECT_EQ(tokens[65530], "[PAD65530]");
  EXPECT_EQ(types[65535], 5);
  EXPECT_EQ(key(f, "tokenizer.ggml.eot_token_id").type(), GgufType::U32);
  EXPECT_EQ(f.get_uint("tokenizer.ggml.eot_token_id"), 261u);
  EXPECT_EQ(f.get_string("tokenizer.chat_template"), "rwkv-world");
  EXPECT_EQ(f.find("tokenizer.ggml.merges"), nullptr);
}

TEST_F(GgufWorld, TheFileAloneEncodesTheTestVectors) {
  test::TempDir here;
  NoVocabulary none(here.file("empty"));
  const auto m = Model::load(model());
  const auto t = resolve_tokenizer("", m->weights());
  EXPECT_EQ(t->name(), "world");
  EXPECT_EQ(t->vocab_size(), 65536u);
  const auto vs = vectors("world");
  ASSERT_GT(vs.size(), 20u);
  for (const Vector& v : vs) EXPECT_EQ(t->encode(v.text), v.ids) << v.name;
  // Every token decodes to the bytes of the vocabulary file.
  const auto reference = load_world_tokenizer(world_vocab());
  for (int32_t id = 0; id < 65536; ++id) ASSERT_EQ(t->token_bytes(id), reference->token_bytes(id)) << id;
  // The command line finds it too, with no vocabulary file anywhere.
  const auto r = test::run_cli("generate -m " + model() + " -p 'Hello' -n 3 --temperature 0");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(GgufWorld, ConvertAndQuantizeCopyTheMetadataThrough) {
  test::TempDir here;
  NoVocabulary none(here.file("empty"));
  const GgufFile original = read_gguf(model());
  for (const std::string& command : {"convert " + model() + " " + here.file("c.gguf") + " --dtype f16",
                                     "quantize " + model() + " " + here.file("c.gguf") + " q8_0"}) {
    const auto r = test::run_cli(command);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output.find("warning"), std::string::npos) << r.output;
    const GgufFile copy = read_gguf(here.file("c.gguf"));
    for (const auto& [k, v] : original.metadata)
      if (k.starts_with("tokenizer.")) {
        EXPECT_TRUE(copy.find(k) && *copy.find(k) == v) << k;
      }
  }
  // An explicit --tokenizer replaces it (here with bytes, padded to the model's 65536 ids).
  const auto r = test::run_cli("convert " + model() + " " + here.file("b.gguf") + " --tokenizer bytes");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const GgufFile bytes = read_gguf(here.file("b.gguf"));
  EXPECT_EQ(tokens_of(bytes)[65], "A");
  EXPECT_EQ(tokens_of(bytes)[300], "[PAD300]");
  EXPECT_EQ(bytes.find("tokenizer.chat_template"), nullptr);
  EXPECT_EQ(resolve_tokenizer("", Model::load(here.file("b.gguf"))->weights())->encode("A"), (Ids{65}));
}

TEST(GgufTokenizer, MissingVocabularyWarnsAndWritesNone) {
  test::TempDir dir;
  NoVocabulary none(dir.file("empty"));
  auto r = test::run_cli("init --arch rwkv4 --layers 1 --embd 16 --vocab 65536 -o " + dir.file("w.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("rwkv: warning: tokenizer file rwkv_vocab_v20230424.txt not found"), std::string::npos)
      << r.output;
  EXPECT_EQ(read_gguf(dir.file("w.gguf")).find("tokenizer.ggml.model"), nullptr);
  r = test::run_cli("init --arch rwkv4 --layers 1 --embd 16 --vocab 100 -o " + dir.file("v.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("warning: cannot choose a tokenizer for vocabulary size 100"), std::string::npos) << r.output;
  // A vocabulary size the tokenizer does not fit is an error, not a warning.
  r = test::run_cli("init --arch rwkv4 --layers 1 --embd 16 --vocab 100 --tokenizer bytes -o " + dir.file("x.gguf"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("has only 100 ids"), std::string::npos) << r.output;
}

// ---- 20B

TEST(GgufTokenizer, Bpe20bFromTheFileAloneEncodesTheTestVectors) {
  test::TempDir dir;
  const auto r = test::run_cli("init --arch rwkv4 --layers 1 --embd 16 --vocab 50277 -o " +
                               dir.file("n.gguf") + " --tokenizer " + bpe_json());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const GgufFile f = read_gguf(dir.file("n.gguf"));
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(f.get_string("tokenizer.rwkv.normalizer"), "NFC");
  EXPECT_EQ(key(f, "tokenizer.ggml.merges").array_size(), 50009u);
  EXPECT_EQ((*f.get_string_array("tokenizer.ggml.merges"))[0], "Ġ Ġ");
  const auto tokens = tokens_of(f);
  const auto types = *key(f, "tokenizer.ggml.token_type").as_int_array();
  ASSERT_EQ(tokens.size(), 50277u);
  EXPECT_EQ(tokens[0], "<|endoftext|>");
  EXPECT_EQ(types[0], 3);
  EXPECT_EQ(tokens[50276], "  ");
  EXPECT_EQ(types[50276], 4);
  EXPECT_EQ(types[12092], 1);
  EXPECT_EQ(f.get_uint("tokenizer.ggml.eos_token_id"), 0u);

  NoVocabulary none(dir.file("empty"));
  const auto t = resolve_tokenizer("", Model::load(dir.file("n.gguf"))->weights());
  EXPECT_EQ(t->name(), "20b");
  const auto vs = vectors("gpt_neox_20b");
  ASSERT_GT(vs.size(), 10u);
  for (const Vector& v : vs) EXPECT_EQ(t->encode(v.text), v.ids) << v.name;
  const auto reference = load_bpe_tokenizer(bpe_json());
  ASSERT_EQ(t->vocab_size(), reference->vocab_size());
  for (int32_t id = 0; id < 50277; ++id) ASSERT_EQ(t->token_bytes(id), reference->token_bytes(id)) << id;
}

// ---- hostile metadata

GgufMetadata rwkv_bytes_metadata(size_t n = 256) {
  std::vector<std::string> tokens;
  for (size_t i = 0; i < n; ++i) tokens.push_back(escape_rwkv_token(std::string(1, static_cast<char>(i))));
  return {{"tokenizer.ggml.model", GgufValue::str("rwkv")}, {"tokenizer.ggml.tokens", GgufValue::str_array(tokens)}};
}

void set(GgufMetadata& md, const std::string& k, GgufValue v) {
  for (auto& [key_name, value] : md)
    if (key_name == k) {
      value = std::move(v);
      return;
    }
  md.emplace_back(k, std::move(v));
}

std::string gguf_load_error(const GgufMetadata& md, size_t vocab = 256) {
  return error_of([&] { tokenizer_from_gguf(md, vocab, "bad.gguf"); });
}

TEST(GgufTokenizerHostile, RwkvMetadataIsChecked) {
  EXPECT_EQ(tokenizer_from_gguf(rwkv_bytes_metadata(), 256, "ok.gguf")->name(), "bytes");
  EXPECT_EQ(tokenizer_from_gguf({}, 256, "none.gguf"), nullptr);

  std::string m = gguf_load_error(rwkv_bytes_metadata(), 300);
  EXPECT_NE(m.find("bad.gguf: tokenizer.ggml.tokens has 256 entries but the model's vocabulary has 300"), std::string::npos) << m;

  GgufMetadata md = rwkv_bytes_metadata();
  set(md, "tokenizer.ggml.tokens", GgufValue::i32_array(std::vector<int32_t>(256, 1)));
  m = gguf_load_error(md);
  EXPECT_NE(m.find("tokenizer.ggml.tokens is array<i32>[256], expected an array of strings"), std::string::npos) << m;

  md = rwkv_bytes_metadata();
  set(md, "tokenizer.ggml.model", GgufValue::u32(1));
  EXPECT_NE(gguf_load_error(md).find("tokenizer.ggml.model is u32, expected a string"), std::string::npos);
  set(md, "tokenizer.ggml.model", GgufValue::str("llama"));
  EXPECT_NE(gguf_load_error(md).find("tokenizer.ggml.model names a tokenizer that is not supported"), std::string::npos);

  md = rwkv_bytes_metadata();
  set(md, "tokenizer.ggml.token_type", GgufValue::str_array(std::vector<std::string>(256, "1")));
  EXPECT_NE(gguf_load_error(md).find("tokenizer.ggml.token_type is array<string>[256], expected an array of integers"),
            std::string::npos);
  set(md, "tokenizer.ggml.token_type", GgufValue::i32_array(std::vector<int32_t>(255, 1)));
  EXPECT_NE(gguf_load_error(md).find("token_type has 255 entries"), std::string::npos);
  std::vector<int32_t> types(256, 1);
  types[7] = 9;
  set(md, "tokenizer.ggml.token_type", GgufValue::i32_array(types));
  EXPECT_NE(gguf_load_error(md).find("tokenizer.ggml.token_type[7] = 9 is not a token type"), std::string::npos);

  md = rwkv_bytes_metadata();
  auto tokens = *md[1].second.as_string_array();
  tokens[40] = "\\x4";
  set(md, "tokenizer.ggml.tokens", GgufValue::str_array(tokens));
  m = gguf_load_error(md);
  EXPECT_NE(m.find("bad.gguf: tokenizer.ggml.tokens[40]: \\x at offset 0"), std::string::npos) << m;
  tokens[40] = "(";
  tokens[41] = "(";  // byte 0x29 now has no token, and 0x28 two
  set(md, "tokenizer.ggml.tokens", GgufValue::str_array(tokens));
  m = gguf_load_error(md);
  EXPECT_NE(m.find("tokenizer.ggml.tokens[41]: the token repeats tokenizer.ggml.tokens[40]"), std::string::npos) << m;
  tokens[41] = "zz";  // no repeat now, but byte 0x29 ')' has no token
  set(md, "tokenizer.ggml.tokens", GgufValue::str_array(tokens));
  m = gguf_load_error(md);
  EXPECT_NE(m.find("no token for the single byte 0x29"), std::string::npos) << m;
}

GgufMetadata small_bpe_metadata() {
  // Byte-level characters for a, b and the merge "a b" → "ab", plus <|endoftext|>.
  std::vector<std::string> tokens = {"<|endoftext|>", "a", "b", "ab"};
  return {{"tokenizer.ggml.model", GgufValue::str("gpt2")},
          {"tokenizer.ggml.pre", GgufValue::str("gpt-2")},
          {"tokenizer.ggml.tokens", GgufValue::str_array(tokens)},
          {"tokenizer.ggml.token_type", GgufValue::i32_array({3, 1, 1, 1})},
          {"tokenizer.ggml.merges", GgufValue::str_array({"a b"})}};
}

TEST(GgufTokenizerHostile, Gpt2MetadataIsChecked) {
  const auto t = tokenizer_from_gguf(small_bpe_metadata(), 4, "ok.gguf");
  EXPECT_EQ(t->encode("ab<|endoftext|>ba"), (Ids{3, 0, 2, 1}));
  EXPECT_EQ(t->token_bytes(0), "");

  GgufMetadata md = small_bpe_metadata();
  md.erase(md.begin() + 4);
  EXPECT_NE(gguf_load_error(md, 4).find("bad.gguf: tokenizer.ggml.merges is missing"), std::string::npos);
  md = small_bpe_metadata();
  set(md, "tokenizer.ggml.merges", GgufValue::str_array({"a c"}));
  std::string m = gguf_load_error(md, 4);
  EXPECT_NE(m.find("tokenizer.ggml.merges[0] uses \"c\", which is not in the vocabulary"), std::string::npos) << m;
  set(md, "tokenizer.ggml.merges", GgufValue::str_array({"ab"}));
  EXPECT_NE(gguf_load_error(md, 4).find("tokenizer.ggml.merges[0] is not of the form"), std::string::npos);
  md = small_bpe_metadata();
  set(md, "tokenizer.ggml.pre", GgufValue::str("llama-bpe"));
  EXPECT_NE(gguf_load_error(md, 4).find("tokenizer.ggml.pre names a pre-tokenizer other than GPT-2's"), std::string::npos);
  md = small_bpe_metadata();
  set(md, "tokenizer.rwkv.normalizer", GgufValue::str("NFKC"));
  EXPECT_NE(gguf_load_error(md, 4).find("tokenizer.rwkv.normalizer is not NFC"), std::string::npos);
  EXPECT_NE(gguf_load_error(small_bpe_metadata(), 5).find("has 4 entries but the model's vocabulary has 5"), std::string::npos);
}

TEST(GgufTokenizerHostile, CommandsRefuseABadFileAndAnExplicitTokenizerRepairsIt) {
  test::TempDir dir;
  ASSERT_EQ(test::run_cli("convert " + tiny_model_path() + " " + dir.file("m.gguf")).exit_code, 0);
  GgufFile f = read_gguf(dir.file("m.gguf"));
  GgufMetadata md = f.metadata;
  set(md, "tokenizer.ggml.tokens", GgufValue::str_array(std::vector<std::string>(200, "x")));
  write_gguf(dir.file("bad.gguf"), md, f.tensors.tensors());

  auto r = test::run_cli("generate -m " + dir.file("bad.gguf") + " -p hi -n 1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("rwkv: error: " + dir.file("bad.gguf") + ": tokenizer.ggml.tokens has 200 entries"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  r = test::run_cli("convert " + dir.file("bad.gguf") + " " + dir.file("out.gguf"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  // An explicit tokenizer on the command line is used instead of the file's.
  r = test::run_cli("generate -m " + dir.file("bad.gguf") + " -p hi -n 1 --tokenizer bytes");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = test::run_cli("convert " + dir.file("bad.gguf") + " " + dir.file("out.gguf") + " --tokenizer bytes");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(tokens_of(read_gguf(dir.file("out.gguf"))).size(), 256u);
}

}  // namespace
}  // namespace rwkv
