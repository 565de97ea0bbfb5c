// Session: feeding prompts, the sample-emit-feed loop and streaming text output.
#include "text/session.hpp"

#include <algorithm>

#include "io/error.hpp"
#include "text/text_stream.hpp"

namespace rwkv {

std::string clean_chat_text(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;  // \r\n → \n
    if (c == '\n' && !out.empty() && out.back() == '\n') continue;
    out += c;
  }
  const char* space = " \t\n\r\f\v";
  const size_t a = out.find_first_not_of(space);
  if (a == std::string::npos) return "";
  return out.substr(a, out.find_last_not_of(space) - a + 1);
}

Session::Session(const Model& model, const Tokenizer& tokenizer, SamplerOptions sampling)
    : model_(model), tokenizer_(tokenizer), sampler_(std::move(sampling), &tokenizer), state_(model.new_state()) {
  if (tokenizer.vocab_size() > static_cast<size_t>(model.hparams().vocab_size))
    fail("the ", tokenizer.name(), " tokenizer has ", tokenizer.vocab_size(), " tokens but the model only ",
         model.hparams().vocab_size);
}

void Session::feed(const std::vector<int32_t>& tokens, size_t chunk_len) {
  if (tokens.empty()) return;
  logits_.resize(model_.hparams().vocab_size);
  for (size_t pos = 0; pos < tokens.size(); pos += chunk_len) {
    const size_t n = std::min(chunk_len, tokens.size() - pos);
    const bool last = pos + n == tokens.size();
    model_.forward(state_, {&tokens[pos], n}, last ? Logits::Last : Logits::None, last ? logits_.data() : nullptr);
  }
  tokens_read_ += tokens.size();
}

GenerateResult Session::generate(const GenerateOptions& o, const std::function<void(const std::string&)>& on_text) {
  if (!has_logits()) fail("generate: nothing to continue from (empty prompt and no saved state)");
  TextStream stream(o.stop);
  GenerateResult result;
  auto emit = [&](const std::string& text) {
    if (!text.empty() && on_text) on_text(text);
  };
  result.stopped_by = "length";
  for (int i = 0; i < o.max_tokens; ++i) {
    std::vector<float> l = logits_;
    const int32_t token = sampler_.sample(l);
    if (o.stop_at_end_of_text && token == tokenizer_.end_of_text()) {
      result.stopped_by = "end of text";
      break;
    }
    result.tokens.push_back(token);
    sampler_.accept(token);
    feed({token});  // the state always includes every emitted token
    emit(stream.add(tokenizer_.token_bytes(token)));
    if (stream.stopped()) {
      result.stopped_by = "stop string";
      break;
    }
  }
  emit(stream.flush());
  result.text = stream.text();
  return result;
}

SavedState Session::save() const { return {state_, logits_, sampler_.save(), {}}; }

void Session::restore(SavedState saved) {
  state_ = std::move(saved.state);
  logits_ = std::move(saved.logits);
  if (!saved.sampler.empty()) sampler_.restore(saved.sampler);
}

}  // namespace rwkv
