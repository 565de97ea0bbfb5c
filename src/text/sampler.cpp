// Sampling (spec §8.1, §8.2) with our documented differences: top_p ≥ 1 means no truncation
// (PIP degenerates to greedy there), and min-p / repetition penalty are llama.cpp's.
#include "text/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>

#include "io/error.hpp"
#include "text/tokenizer.hpp"

namespace rwkv {

int32_t sample_logits(std::span<const float> logits, float temperature, float top_p, int top_k, float min_p,
                      double u) {
  const size_t V = logits.size();
  if (V == 0) fail("sample: no logits");
  if (temperature <= 0.0f) {  // greedy; ties go to the lowest id
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  // softmax in double for a stable cumulative sum
  const float m = *std::max_element(logits.begin(), logits.end());
  if (!std::isfinite(m)) fail("sample: every token is banned or the logits are not finite");
  std::vector<double> p(V);
  double sum = 0;
  for (size_t i = 0; i < V; ++i) sum += p[i] = std::exp(double(logits[i]) - m);
  for (double& x : p) x /= sum;

  std::vector<uint32_t> order(V);
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return p[a] > p[b]; });
  const double p_max = p[order[0]];
  // top-p: keep tokens with p ≥ the probability at which the cumulative sum reaches top_p.
  if (top_p < 1.0f) {
    double cum = 0, cutoff = p_max;
    for (uint32_t i : order) {
      cum += p[i];
      if (cum >= top_p) {
        cutoff = p[i];
        break;
      }
    }
    for (double& x : p)
      if (x < cutoff) x = 0;
  }
  if (top_k > 0 && static_cast<size_t>(top_k) < V)
    for (size_t r = static_cast<size_t>(top_k); r < V; ++r) p[order[r]] = 0;
  if (min_p > 0)
    for (double& x : p)
      if (x < min_p * p_max) x = 0;
  if (temperature != 1.0f)
    for (double& x : p)
      if (x > 0) x = std::pow(x, 1.0 / temperature);
  double total = 0;
  for (double x : p) total += x;
  double target = u * total, acc = 0;
  int32_t last = static_cast<int32_t>(order[0]);
  for (size_t i = 0; i < V; ++i) {
    if (p[i] <= 0) continue;
    acc += p[i];
    last = static_cast<int32_t>(i);
    if (acc > target) return last;
  }
  return last;
}

Sampler::Sampler(SamplerOptions options, const Tokenizer* tokenizer)
    : opt_(std::move(options)), tokenizer_(tokenizer), rng_(opt_.seed) {
  if (!(opt_.temperature >= 0) || !(opt_.top_p >= 0) || opt_.top_k < 0 || !(opt_.min_p >= 0 && opt_.min_p <= 1) ||
      !(opt_.repetition_penalty > 0) || opt_.repetition_window < 0 || !std::isfinite(opt_.presence_penalty) ||
      !std::isfinite(opt_.frequency_penalty) || !(opt_.penalty_decay >= 0 && opt_.penalty_decay <= 1))
    fail("invalid sampling settings (temperature, top-p, min-p ≥ 0; top-k ≥ 0; repetition penalty > 0; decay in [0, 1])");
}

double Sampler::uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::sample(std::span<float> logits) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int32_t id : opt_.banned)
    if (id >= 0 && static_cast<size_t>(id) < logits.size()) logits[id] = neg_inf;
  for (const auto& [id, count] : occurrence_)
    if (static_cast<size_t>(id) < logits.size()) logits[id] -= opt_.presence_penalty + count * opt_.frequency_penalty;
  if (opt_.repetition_penalty != 1.0f) {
    std::vector<int32_t> seen(recent_);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int32_t id : seen) {
      if (static_cast<size_t>(id) >= logits.size()) continue;
      float& l = logits[id];
      l = l > 0 ? l / opt_.repetition_penalty : l * opt_.repetition_penalty;
    }
  }
  // The draw is taken even when greedy so that the stream does not depend on the settings.
  const double u = uniform();
  return sample_logits(logits, opt_.temperature, opt_.top_p, opt_.top_k, opt_.min_p, u);
}

void Sampler::accept(int32_t token) {
  for (auto& [id, count] : occurrence_) count *= opt_.penalty_decay;
  float weight = 1.0f;
  if (tokenizer_) {
    const std::string text = tokenizer_->token_bytes(token);
    if (std::string_view(" \t0123456789").find(text) != std::string_view::npos) weight = 0.0f;
  }
  occurrence_[token] += weight;
  if (opt_.repetition_window > 0) {
    recent_.push_back(token);
    if (recent_.size() > static_cast<size_t>(opt_.repetition_window)) recent_.erase(recent_.begin());
  }
}

std::string Sampler::save() const {
  std::ostringstream s;
  s.precision(9);
  s << rng_ << '\n' << occurrence_.size();
  for (const auto& [id, count] : occurrence_) s << ' ' << id << ' ' << count;
  s << '\n' << recent_.size();
  for (int32_t id : recent_) s << ' ' << id;
  return s.str();
}

void Sampler::restore(const std::string& saved) {
  std::istringstream s(saved);
  std::mt19937_64 rng;
  size_t n = 0;
  std::map<int32_t, float> occ;
  std::vector<int32_t> recent;
  s >> rng >> n;
  for (size_t i = 0; s && i < n && i < 10000000; ++i) {
    int32_t id;
    float c;
    s >> id >> c;
    occ[id] = c;
  }
  s >> n;
  for (size_t i = 0; s && i < n && i < 10000000; ++i) {
    int32_t id;
    s >> id;
    recent.push_back(id);
  }
  if (!s) fail("malformed sampler state");
  rng_ = rng;
  occurrence_ = std::move(occ);
  recent_ = std::move(recent);
}

}  // namespace rwkv
