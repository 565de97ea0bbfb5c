// Perplexity over fresh-state windows (see perplexity.hpp for the exact convention).
#include "model/perplexity.hpp"

#include <algorithm>
#include <vector>

#include "io/error.hpp"

namespace rwkv {

double negative_log_likelihood(std::span<const float> logits, int32_t target) {
  if (target < 0 || static_cast<size_t>(target) >= logits.size())
    fail("token id ", target, " is out of range (vocabulary size ", logits.size(), ")");
  double max = logits[0];
  for (float v : logits) max = std::max(max, static_cast<double>(v));
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - max);
  return -(static_cast<double>(logits[target]) - max - std::log(sum));
}

PerplexityResult evaluate_perplexity(const Model& model, std::span<const int32_t> tokens, size_t ctx,
                                     size_t max_windows, const PerplexityProgress& progress) {
  if (ctx < 2) fail("the context must be at least 2 tokens (got ", ctx, ")");
  // A last window of one token has nothing to score.
  size_t windows = tokens.size() / ctx + (tokens.size() % ctx >= 2 ? 1 : 0);
  if (windows == 0) fail("too few tokens to score: ", tokens.size(), " (need at least 2)");
  if (max_windows > 0) windows = std::min(windows, max_windows);

  // The logits of a window are computed in chunks that carry the state, so that memory stays
  // at kChunk × V floats however long the context; the results equal those of one forward
  // call over the window up to float rounding.
  constexpr size_t kChunk = 256;
  const size_t V = model.hparams().vocab_size;
  std::vector<float> logits(std::min(kChunk, ctx) * V);
  PerplexityResult r;
  for (size_t w = 0; w < windows; ++w) {
    const size_t begin = w * ctx, end = std::min(tokens.size(), begin + ctx);
    State state = model.new_state();
    // Positions begin … end−2 predict the next token; the window's last token is only a target.
    for (size_t pos = begin; pos + 1 < end; pos += kChunk) {
      const size_t n = std::min(kChunk, end - 1 - pos);
      model.forward(state, tokens.subspan(pos, n), Logits::All, logits.data());
      for (size_t i = 0; i < n; ++i) r.total_nll += negative_log_likelihood({&logits[i * V], V}, tokens[pos + i + 1]);
      r.tokens_scored += n;
    }
    ++r.windows;
    if (progress) progress(w + 1, windows, r);
  }
  return r;
}

}  // namespace rwkv
