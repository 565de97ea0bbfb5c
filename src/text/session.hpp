// A conversation with a model: a state, the logits for the next token and a sampler, plus
// text in (prompts read in sequence mode) and text out (tokens sampled, fed back, and streamed
// as valid UTF-8, holding back what could still become a stop string).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "model/model.hpp"
#include "model/state_file.hpp"
#include "text/sampler.hpp"
#include "text/tokenizer.hpp"

namespace rwkv {

struct GenerateOptions {
  int max_tokens = 128;
  std::vector<std::string> stop;  // stop when the generated text contains one (not printed)
  bool stop_at_end_of_text = true;
};

struct GenerateResult {
  std::string text;            // the generated text, up to a stop string
  std::vector<int32_t> tokens; // every sampled token that was emitted (and fed)
  std::string stopped_by;      // "length", "end of text" or "stop string"
};

// spec §8.3: \r\n → \n, runs of newlines collapsed into one, trimmed, so that a chat message
// never contains the turn separator "\n\n". Used by `rwkv chat` and `rwkv serve`.
std::string clean_chat_text(const std::string& text);

class Session {
 public:
  Session(const Model& model, const Tokenizer& tokenizer, SamplerOptions sampling);

  // Reads tokens in sequence mode (chunks of `chunk_len`), leaving the logits of the last one.
  void feed(const std::vector<int32_t>& tokens, size_t chunk_len = 256);
  void feed_text(const std::string& text) { feed(tokenizer_.encode(text)); }
  bool has_logits() const { return !logits_.empty(); }
  const std::vector<float>& logits() const { return logits_; }

  // Samples, emits and feeds tokens until a limit, the end-of-text token or a stop string.
  // `on_text` receives the printable text as it becomes safe to print.
  GenerateResult generate(const GenerateOptions& options, const std::function<void(const std::string&)>& on_text);

  SavedState save() const;
  void restore(SavedState saved);

  size_t tokens_read() const { return tokens_read_; }
  State& state() { return state_; }

 private:
  const Model& model_;
  const Tokenizer& tokenizer_;
  Sampler sampler_;
  State state_;
  std::vector<float> logits_;
  size_t tokens_read_ = 0;
};

}  // namespace rwkv
