// AdamW, the official parameter groups and gradient clipping.
#include "train/optimizer.hpp"

#include <cmath>
#include <regex>

#include "io/error.hpp"

namespace rwkv::train {

ParameterGroup official_group(Arch arch, const std::string& name) {
  // The matrices of nn.Linear layers plus embedding and head (names as in model/weights.hpp).
  static const std::regex linear(
      R"(token_embd\.weight|output\.weight|blk\.\d+\.(time_mix_(receptance|key|value|output)|channel_mix_(key|value|receptance))\.weight)");
  static const std::regex v7_w0(R"(blk\.\d+\.time_mix_w0\.weight)");
  static const std::regex v4_decay(R"(blk\.\d+\.time_mix_decay\.weight)");
  static const std::regex v4_first(R"(blk\.\d+\.time_mix_first_log\.weight)");
  ParameterGroup g;
  g.weight_decay = std::regex_match(name, linear);
  if (arch == Arch::RWKV7 && std::regex_match(name, v7_w0)) g.lr_scale = 2.0;
  if (arch == Arch::RWKV4 && std::regex_match(name, v4_decay)) g.lr_scale = 2.0;
  if (arch == Arch::RWKV4 && std::regex_match(name, v4_first)) g.lr_scale = 3.0;
  return g;
}

AdamWOptions official_adamw_options(Arch arch, double weight_decay) {
  AdamWOptions o;
  o.eps = arch == Arch::RWKV7 ? 1e-18 : 1e-8;
  o.weight_decay = weight_decay;
  return o;
}

template <typename F>
AdamW<F>::AdamW(Parameters<F>& params, Arch arch, AdamWOptions options) : params_(params), o_(options) {
  for (const Parameter<F>& p : params_.all()) {
    groups_.push_back(official_group(arch, p.name));
    m_.emplace_back(p.size(), 0.0);
    v_.emplace_back(p.size(), 0.0);
  }
}

template <typename F>
void AdamW<F>::step(double lr) {
  ++t_;
  const double b1 = o_.beta1, b2 = o_.beta2;
  const double c1 = 1.0 - std::pow(b1, double(t_)), c2 = 1.0 - std::pow(b2, double(t_));
  size_t i = 0;
  for (Parameter<F>& p : params_.all()) {
    const ParameterGroup& g = groups_.at(i);
    const double rate = lr * g.lr_scale, wd = g.weight_decay ? o_.weight_decay : 0.0;
    std::vector<double>& m = m_[i];
    std::vector<double>& v = v_[i];
    for (size_t j = 0; j < p.size(); ++j) {
      const double grad = p.grad[j];
      m[j] = b1 * m[j] + (1 - b1) * grad;
      v[j] = b2 * v[j] + (1 - b2) * grad * grad;
      const double update = (m[j] / c1) / (std::sqrt(v[j] / c2) + o_.eps) + wd * double(p.value[j]);
      p.value[j] = F(double(p.value[j]) - rate * update);
    }
    ++i;
  }
}

template <typename F>
void AdamW<F>::restore(size_t i, std::vector<double> m, std::vector<double> v) {
  if (m.size() != m_.at(i).size() || v.size() != v_.at(i).size())
    fail("optimizer state of ", params_.all().at(i).name, ": ", m.size(), " values, expected ", m_[i].size());
  m_[i] = std::move(m);
  v_[i] = std::move(v);
}

template <typename F>
double clip_gradient_norm(Parameters<F>& params, double max_norm) {
  double sum = 0;
  for (const Parameter<F>& p : params.all())
    for (F g : p.grad) sum += double(g) * double(g);
  const double norm = std::sqrt(sum);
  const double scale = max_norm / (norm + 1e-6);
  if (scale < 1.0)
    for (Parameter<F>& p : params.all())
      for (F& g : p.grad) g = F(double(g) * scale);
  return norm;
}

template class AdamW<float>;
template class AdamW<double>;
template double clip_gradient_norm(Parameters<float>&, double);
template double clip_gradient_norm(Parameters<double>&, double);

}  // namespace rwkv::train
