// Perplexity of a model on a token sequence: the mean negative log-likelihood of each token
// given the ones before it, over consecutive windows that each start from a fresh state.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <span>

#include "model/model.hpp"

namespace rwkv {

struct PerplexityResult {
  size_t windows = 0;        // windows evaluated
  size_t tokens_scored = 0;  // predictions scored (a window of n tokens scores n − 1)
  double total_nll = 0;      // Σ −ln p(token | earlier tokens of its window), in nats

  double mean_nll() const { return tokens_scored ? total_nll / static_cast<double>(tokens_scored) : 0; }
  double perplexity() const { return std::exp(mean_nll()); }
};

// Called after each window with the windows done, the total number of windows and the result
// so far.
using PerplexityProgress = std::function<void(size_t done, size_t total, const PerplexityResult&)>;

// The windows are tokens [0, ctx), [ctx, 2·ctx), …; the last one may be shorter and is
// skipped if it has a single token. Each starts from a fresh state (so no window sees the text
// before it) and runs in sequence mode; position i of a window, i = 1 … n−1, is scored with
// the log-softmax (in double) of the logits after positions 0 … i−1. `max_windows` > 0 stops
// after that many windows. Throws rwkv::Error if ctx < 2 or there is no window to score.
PerplexityResult evaluate_perplexity(const Model& model, std::span<const int32_t> tokens, size_t ctx,
                                     size_t max_windows = 0, const PerplexityProgress& progress = {});

// −ln softmax(logits)[target], computed in double.
double negative_log_likelihood(std::span<const float> logits, int32_t target);

}  // namespace rwkv
