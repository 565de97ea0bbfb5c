// libFuzzer target: any bytes as a state file (`--state-in`, the server's --state-dir) for the
// tiny RWKV-7 model of the shared data. Every input must either load or end in rwkv::Error with
// a one-line message; a state that loads must carry on: a session restored from it generates
// a few tokens with the sampler state it holds.
#include <cstdint>
#include <string>
#include <utility>

#include "fuzz_util.hpp"
#include "model/model.hpp"
#include "model/state_file.hpp"
#include "text/session.hpp"
#include "text/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto model = rwkv::Model::load(rwkv::fuzz::data_path("rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin"));
  static const auto tokenizer = rwkv::make_byte_tokenizer();
  try {
    rwkv::SavedState saved = rwkv::load_state_file(rwkv::fuzz::input_file(data, size), *model);
    rwkv::Session session(*model, *tokenizer, rwkv::SamplerOptions{});
    session.restore(std::move(saved));
    if (!session.has_logits()) session.feed({65});
    rwkv::GenerateOptions options;
    options.max_tokens = 3;
    session.generate(options, [](const std::string&) {});
  } catch (const rwkv::Error& e) {
    rwkv::fuzz::check_one_line(e);
  }
  return 0;
}
