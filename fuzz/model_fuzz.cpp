// libFuzzer target: any bytes as a model file. Model::load recognises GGUF, PyTorch .pth and
// rwkv.cpp .bin from the first bytes, as `rwkv` does. Every input must either load or end in
// rwkv::Error with a one-line message; any other exception, a crash or a sanitizer report is a
// finding. A model that loads must also run: two tokens in RNN mode and two at once.
#include <cstdint>
#include <vector>

#include "fuzz_util.hpp"
#include "model/model.hpp"

namespace {

void run_tokens(const rwkv::Model& model) {
  const auto vocab = static_cast<int32_t>(model.hparams().vocab_size);
  const std::vector<int32_t> tokens = {0, vocab - 1};
  std::vector<float> logits(static_cast<size_t>(vocab));
  rwkv::State one = model.new_state();
  for (int32_t t : tokens) model.forward(one, {&t, 1}, rwkv::Logits::Last, logits.data());
  rwkv::State both = model.new_state();
  model.forward(both, tokens, rwkv::Logits::Last, logits.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto model = rwkv::Model::load(rwkv::fuzz::input_file(data, size));
    // Hostile shapes can be legal and large; the forward pass is only run on small models so
    // that each input stays fast.
    if (model->parameter_count() <= (size_t{1} << 22)) run_tokens(*model);
  } catch (const rwkv::Error& e) {
    rwkv::fuzz::check_one_line(e);
  }
  return 0;
}
