// Picking the next token from logits: bans, presence/frequency penalties with decay (as
// ChatRWKV's PIPELINE, spec §8.2), a llama.cpp-style repetition penalty, then top-p, top-k,
// min-p and temperature on probabilities (spec §8.1), and a seeded draw. Greedy when the
// temperature is 0.
#pragma once
#include <cstdint>
#include <map>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace rwkv {

class Tokenizer;

struct SamplerOptions {
  float temperature = 1.0f;  // 0 = greedy
  float top_p = 0.85f;       // ≥ 1: no nucleus truncation
  int top_k = 0;             // 0: off
  float min_p = 0.0f;        // drop tokens below min_p · p_max; 0: off
  float presence_penalty = 0.2f;   // alpha_presence
  float frequency_penalty = 0.2f;  // alpha_frequency
  float penalty_decay = 0.996f;    // alpha_decay, applied to counts after every token
  float repetition_penalty = 1.0f; // llama.cpp style on the last `repetition_window` tokens; 1: off
  int repetition_window = 64;
  std::vector<int32_t> banned;
  uint64_t seed = 0;
};

class Sampler {
 public:
  // `tokenizer` (optional) decides which tokens count with weight 0 for the frequency penalty:
  // those whose text is a substring of " \t0123456789" (spec §8.2).
  Sampler(SamplerOptions options, const Tokenizer* tokenizer);

  // Applies bans and penalties to `logits` (modified) and draws a token.
  int32_t sample(std::span<float> logits);
  // Records an emitted token for the penalties (decay, then count).
  void accept(int32_t token);

  // The parts that make a continued run identical to an uninterrupted one.
  std::string save() const;
  void restore(const std::string& saved);  // throws rwkv::Error on malformed input

  const SamplerOptions& options() const { return opt_; }

 private:
  double uniform();  // in [0, 1), from the seeded generator
  SamplerOptions opt_;
  const Tokenizer* tokenizer_;
  std::map<int32_t, float> occurrence_;
  std::vector<int32_t> recent_;
  std::mt19937_64 rng_;
};

// spec §8.1 on probabilities: the index drawn from softmax(logits) after top-p, top-k, min-p
// and temperature; `u` in [0, 1) is the random draw. temperature 0 gives the arg-max.
int32_t sample_logits(std::span<const float> logits, float temperature, float top_p, int top_k, float min_p,
                      double u);

}  // namespace rwkv
