// libFuzzer target: any bytes as text for the three tokenizers (World and 20B from the shared
// data's vocabularies, and bytes) and for the streaming decoder. Properties checked:
// - encode either throws rwkv::Error (the text is not UTF-8) or gives ids inside the vocabulary,
//   and it accepts exactly the texts check_utf8 accepts;
// - World and bytes give back the text byte for byte; 20B gives back its normal form (NFC),
//   which comes back unchanged through the tokenizer again;
// - TextStream, fed one token's bytes at a time, releases exactly the text.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "text/text_stream.hpp"
#include "text/tokenizer.hpp"

namespace {

#define CHECK(cond)                                                               \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                               \
    }                                                                             \
  } while (0)

struct Tokenizers {
  std::unique_ptr<rwkv::Tokenizer> world = rwkv::load_world_tokenizer(rwkv::fuzz::data_path("tokenizers/rwkv_vocab_v20230424.txt"));
  std::unique_ptr<rwkv::Tokenizer> neox = rwkv::load_bpe_tokenizer(rwkv::fuzz::data_path("tokenizers/20B_tokenizer.json"));
  std::unique_ptr<rwkv::Tokenizer> bytes = rwkv::make_byte_tokenizer();
};

// The ids of `text` (each checked against the vocabulary), or false where encode throws Error.
bool encode(const rwkv::Tokenizer& tok, std::string_view text, std::vector<int32_t>& ids) {
  try {
    ids = tok.encode(text);
  } catch (const rwkv::Error&) {
    return false;
  }
  for (int32_t id : ids) CHECK(id >= 0 && static_cast<size_t>(id) < tok.vocab_size());
  return true;
}

void check_stream(const rwkv::Tokenizer& tok, const std::vector<int32_t>& ids, const std::string& want) {
  rwkv::TextStream stream({});
  std::string got;
  for (int32_t id : ids) got += stream.add(tok.token_bytes(id));
  got += stream.flush();
  CHECK(got == want);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Tokenizers tokenizers;
  const std::string text(reinterpret_cast<const char*>(data), size);
  bool valid = true;
  try {
    rwkv::check_utf8(text, "input");
  } catch (const rwkv::Error&) {
    valid = false;
  }
  std::vector<int32_t> ids;
  for (const rwkv::Tokenizer* tok : {tokenizers.world.get(), tokenizers.bytes.get()}) {
    CHECK(encode(*tok, text, ids) == valid);
    if (!valid) continue;
    CHECK(tok->decode_bytes(ids) == text);
    check_stream(*tok, ids, text);
  }
  CHECK(encode(*tokenizers.neox, text, ids) == valid);
  if (valid) {
    const std::string normal = tokenizers.neox->decode_bytes(ids);
    check_stream(*tokenizers.neox, ids, normal);
    // A control token (<|endoftext|>, ...) decodes to nothing, so the text around it, normalised
    // apart, meets again: only texts without one must come back unchanged.
    bool controls = false;
    for (int32_t id : ids) controls = controls || tokenizers.neox->token_bytes(id).empty();
    std::vector<int32_t> again;
    CHECK(encode(*tokenizers.neox, normal, again));
    if (!controls) CHECK(tokenizers.neox->decode_bytes(again) == normal);
  }
  return 0;
}
