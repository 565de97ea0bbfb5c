// Training gradients (src/train): the WKV-4 and WKV-7 backward against finite differences for
// T = 1, 7, 64; every parameter tensor of tiny RWKV-4 and RWKV-7 models against finite
// differences in double; the cross-entropy/L2Wrap gradient by hand; and the training loss
// against the loss computed from the engine's logits on the same weights and tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "io/error.hpp"
#include "kernels/cpu/ops.hpp"
#include "model/gguf_model.hpp"
#include "model/init.hpp"
#include "model/model.hpp"
#include "test_util.hpp"
#include "train/loss.hpp"
#include "train/train_model.hpp"
#include "train/wkv_train.hpp"

namespace rwkv::train {
namespace {

// ---- finite differences

// Fourth-order central difference of f() with respect to x (which f reads), restoring x:
// (8(f(x+h) − f(x−h)) − (f(x+2h) − f(x−2h)))/(12h). Its truncation error is O(h⁴), so h can
// be large enough for rounding in f not to matter.
double derivative(const std::function<double()>& f, double& x, double h) {
  const double x0 = x;
  auto at = [&](double d) {
    x = x0 + d;
    return f();
  };
  const double d = (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h);
  x = x0;
  return d;
}

// Worst relative error of a against b over entries: |a − b| / max(|a|, |b|, floor).
double max_relative_error(const std::vector<double>& a, const std::vector<double>& b, double floor) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(a[i] - b[i]) / std::max({std::fabs(a[i]), std::fabs(b[i]), floor}));
  return worst;
}

// Relative error of a tensor's sampled gradient: max |a − b| over max(|a|, |b|), both over the
// sample. Per entry, central differences in double carry an absolute error near 1e-11 here
// (rounding in a loss of ≈ 5 divided by h), which swamps entries far below the tensor's scale.
double tensor_relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  double diff = 0, scale = 1e-300;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(a[i] - b[i]));
    scale = std::max({scale, std::fabs(a[i]), std::fabs(b[i])});
  }
  return diff / scale;
}

std::vector<double> normal_values(size_t n, double scale, std::mt19937_64& rng) {
  std::normal_distribution<double> d(0.0, scale);
  std::vector<double> v(n);
  for (double& x : v) x = d(rng);
  return v;
}

// ---- WKV operators alone: loss = Σ c⊙y with fixed random c.

TEST(TrainWkv4, BackwardMatchesFiniteDifferences) {
  for (size_t T : {1, 7, 64}) {
    const size_t B = 2, A = 3, R = B * T;
    std::mt19937_64 rng(T);
    auto k = normal_values(R * A, 2.0, rng), v = normal_values(R * A, 1.0, rng), u = normal_values(A, 1.0, rng);
    auto c = normal_values(R * A, 1.0, rng), w = normal_values(A, 1.0, rng);
    for (double& x : w) x = -std::exp(x);  // w = −exp(d) < 0
    std::vector<double> y(R * A);
    auto loss = [&] {
      wkv4_forward(B, T, A, k.data(), v.data(), w.data(), u.data(), y.data());
      double s = 0;
      for (size_t i = 0; i < R * A; ++i) s += c[i] * y[i];
      return s;
    };
    loss();
    std::vector<double> dk(R * A, 0), dv(R * A, 0), dw(A, 0), du(A, 0);
    wkv4_backward(B, T, A, k.data(), v.data(), w.data(), u.data(), y.data(), c.data(), dk.data(), dv.data(), dw.data(),
                  du.data());
    struct Input {
      const char* name;
      std::vector<double>* x;
      std::vector<double>* grad;
    };
    for (const Input& in : {Input{"k", &k, &dk}, Input{"v", &v, &dv}, Input{"w", &w, &dw}, Input{"u", &u, &du}}) {
      std::vector<double> numeric(in.x->size());
      for (size_t i = 0; i < in.x->size(); ++i) numeric[i] = derivative(loss, (*in.x)[i], 1e-4);
      const double err = max_relative_error(*in.grad, numeric, 1e-8);
      EXPECT_LE(err, 1e-6) << "d" << in.name << " T=" << T;
      std::printf("  WKV-4 T=%-2zu d%s: max relative error %.2e\n", T, in.name, err);
    }
  }
}

TEST(TrainWkv7, BackwardMatchesFiniteDifferences) {
  for (size_t T : {1, 7, 64}) {
    const size_t B = 2, H = 2, N = 4, C = H * N, R = B * T;
    std::mt19937_64 rng(100 + T);
    auto r = normal_values(R * C, 1.0, rng), k = normal_values(R * C, 1.0, rng), v = normal_values(R * C, 1.0, rng);
    auto c = normal_values(R * C, 1.0, rng);
    // As in the model: ω ∈ (0.545, 1), a = −κ with κ a unit vector per head, b = κ⊙α, α ∈ (0, 1).
    auto w = normal_values(R * C, 2.0, rng), a = normal_values(R * C, 1.0, rng), b = normal_values(R * C, 2.0, rng);
    for (double& x : w) x = std::exp(-0.6065306597 / (1 + std::exp(-x)));
    for (size_t h = 0; h < R * H; ++h) {
      double n = 0;
      for (size_t j = 0; j < N; ++j) n += a[h * N + j] * a[h * N + j];
      for (size_t j = 0; j < N; ++j) {
        a[h * N + j] /= -std::sqrt(n);
        b[h * N + j] = -a[h * N + j] / (1 + std::exp(-b[h * N + j]));
      }
    }
    std::vector<double> y(R * C);
    Wkv7Saved<double> saved;
    auto loss = [&] {
      wkv7_forward(B, T, H, N, r.data(), w.data(), k.data(), v.data(), a.data(), b.data(), y.data(), saved);
      double s = 0;
      for (size_t i = 0; i < R * C; ++i) s += c[i] * y[i];
      return s;
    };
    loss();
    std::vector<double> dr(R * C, 0), dw(R * C, 0), dk(R * C, 0), dv(R * C, 0), da(R * C, 0), db(R * C, 0);
    wkv7_backward(B, T, H, N, r.data(), w.data(), k.data(), v.data(), a.data(), b.data(), saved, c.data(), dr.data(),
                  dw.data(), dk.data(), dv.data(), da.data(), db.data());
    struct Input {
      const char* name;
      std::vector<double>* x;
      std::vector<double>* grad;
    };
    for (const Input& in : {Input{"r", &r, &dr}, Input{"w", &w, &dw}, Input{"k", &k, &dk}, Input{"v", &v, &dv},
                            Input{"a", &a, &da}, Input{"b", &b, &db}}) {
      std::vector<double> numeric(in.x->size());
      for (size_t i = 0; i < in.x->size(); ++i) numeric[i] = derivative(loss, (*in.x)[i], 1e-4);
      const double err = max_relative_error(*in.grad, numeric, 1e-8);
      EXPECT_LE(err, 1e-6) << "d" << in.name << " T=" << T;
      std::printf("  WKV-7 T=%-2zu d%s: max relative error %.2e\n", T, in.name, err);
    }
  }
}

// ---- the loss

TEST(TrainLoss, CrossEntropyAndL2WrapGradient) {
  // Two positions, V = 4; the second row has a tie for the maximum (index 1 and 3).
  const std::vector<double> logits = {1.0, 2.0, 0.5, -1.0, 0.0, 3.0, -2.0, 3.0};
  const std::vector<int32_t> targets = {2, 0};
  std::vector<double> grad(8);
  const LossValue lv = cross_entropy(logits.data(), targets.data(), 2, 4, grad.data(), true);
  double ce = 0, penalty = 0;
  std::vector<double> want(8);
  for (size_t row = 0; row < 2; ++row) {
    const double* y = &logits[row * 4];
    double sum = 0;
    for (size_t i = 0; i < 4; ++i) sum += std::exp(y[i]);
    ce += std::log(sum) - y[targets[row]];
    for (size_t i = 0; i < 4; ++i) want[row * 4 + i] = (std::exp(y[i]) / sum - (int(i) == targets[row])) / 2;
  }
  want[1] += 1e-4 / 2 * 2.0;  // argmax of row 0
  want[5] += 1e-4 / 2 * 3.0;  // row 1: the tie goes to the smaller index
  penalty = 1e-4 / (2 * 2) * (2.0 * 2.0 + 3.0 * 3.0);
  EXPECT_NEAR(lv.cross_entropy, ce / 2, 1e-14);
  EXPECT_NEAR(lv.l2wrap_penalty, penalty, 1e-16);
  for (size_t i = 0; i < 8; ++i) EXPECT_NEAR(grad[i], want[i], 1e-15) << i;
  // Without L2Wrap: the plain cross-entropy gradient, and the penalty is 0.
  const LossValue plain = cross_entropy(logits.data(), targets.data(), 2, 4, grad.data(), false);
  EXPECT_EQ(plain.l2wrap_penalty, 0.0);
  EXPECT_NEAR(grad[5], want[5] - 1e-4 / 2 * 3.0, 1e-15);
  const std::vector<int32_t> bad = {4, 0};
  EXPECT_THROW(cross_entropy(logits.data(), bad.data(), 2, 4, grad.data(), true), Error);
}

// ---- tiny models

// An official-initialised model with noise on every parameter: the official init zeroes
// several matrices (and so the gradients behind them), which would hide wrong gradients.
Weights tiny_model(Arch arch, uint64_t seed) {
  InitOptions o;
  o.arch = arch;
  o.n_layer = 2;
  o.n_embd = 32;
  o.vocab_size = 256;
  o.head_size = 16;
  o.seed = seed;
  Weights w = init_weights(o);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  TensorSet noisy;
  for (const Tensor& t : w.tensors.tensors()) {
    std::vector<int64_t> dims;
    for (int64_t d : t.shape)
      if (d > 1) dims.push_back(d);
    const double scale = dims.size() >= 2 ? 0.5 / std::sqrt(double(dims.back())) : 0.1;
    std::vector<float> v = t.to_f32();
    for (float& x : v) x += static_cast<float>(scale * normal(rng));
    noisy.add(make_f32_tensor(t.name, t.shape, std::move(v)));
  }
  w.tensors = std::move(noisy);
  return w;
}

struct Tokens {
  size_t B, T;
  std::vector<int32_t> inputs, targets;
  Batch batch() const { return {B, T, inputs, targets}; }
};

Tokens random_tokens(size_t B, size_t T, size_t V, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Tokens t{B, T, {}, {}};
  for (size_t i = 0; i < B * T; ++i) {
    t.inputs.push_back(static_cast<int32_t>(rng() % V));
    t.targets.push_back(static_cast<int32_t>(rng() % V));
  }
  return t;
}

// Every parameter tensor: up to 8 entries (for the embedding, in rows of tokens the batch
// uses) against finite differences of cross-entropy + L2Wrap penalty, in double.
void check_every_gradient(Arch arch) {
  // Thousands of forward passes of tiny matrices: BLAS threads only cost here.
  struct OneThread {
    OneThread() { cpu::set_threads(1); }
    ~OneThread() { cpu::set_threads(0); }
  } one_thread;
  const Weights w = tiny_model(arch, 7);
  auto model = TrainModel<double>::from_weights(w);
  // T = 20 crosses a WKV-7 chunk boundary (16).
  const Tokens tokens = random_tokens(2, 20, w.hp.vocab_size, 11);
  const Batch batch = tokens.batch();
  model->parameters().zero_grad();
  model->forward_backward(batch, true);
  auto objective = [&] {
    const LossValue v = model->loss(batch, true);
    return v.cross_entropy + v.l2wrap_penalty;
  };
  const std::set<int32_t> used(tokens.inputs.begin(), tokens.inputs.end());
  const std::vector<int32_t> used_rows(used.begin(), used.end());
  std::mt19937_64 rng(3);
  double worst = 0, worst_entry = 0;
  std::string worst_name;
  size_t tensors = 0;
  for (Parameter<double>& p : model->parameters().all()) {
    std::set<size_t> chosen;
    const size_t n = p.size(), C = w.hp.n_embd;
    while (chosen.size() < std::min<size_t>(8, n))
      chosen.insert(p.name == "token_embd.weight" ? used_rows[rng() % used_rows.size()] * C + rng() % C : rng() % n);
    const std::vector<size_t> entries(chosen.begin(), chosen.end());
    std::vector<double> analytic, numeric;
    for (size_t i : entries) {
      analytic.push_back(p.grad[i]);
      numeric.push_back(derivative(objective, p.value[i], 1e-4));
    }
    const double err = tensor_relative_error(analytic, numeric);
    EXPECT_LE(err, 1e-6) << p.name;
    double largest = 0;
    for (double g : numeric) largest = std::max(largest, std::fabs(g));
    EXPECT_GT(largest, 1e-7) << p.name << ": the sampled gradient entries are all (nearly) zero";
    if (err > worst) worst = err, worst_name = p.name;
    worst_entry = std::max(worst_entry, max_relative_error(analytic, numeric, 1e-8));
    ++tensors;
  }
  std::printf("  %zu parameter tensors: max relative error per tensor %.2e (%s); per entry %.2e\n", tensors, worst,
              worst_name.c_str(), worst_entry);
}

TEST(TrainRwkv7, EveryParameterGradientMatchesFiniteDifferences) { check_every_gradient(Arch::RWKV7); }
TEST(TrainRwkv4, EveryParameterGradientMatchesFiniteDifferences) { check_every_gradient(Arch::RWKV4); }

// Training runs in float: its gradients agree with the double ones checked above to 1e-3
// (relative, per tensor), the bound for an fp32 check.
void check_float_gradients(Arch arch) {
  const Weights w = tiny_model(arch, 7);
  const Tokens tokens = random_tokens(2, 20, w.hp.vocab_size, 11);
  auto m32 = TrainModel<float>::from_weights(w);
  auto m64 = TrainModel<double>::from_weights(w);
  m32->forward_backward(tokens.batch());
  m64->forward_backward(tokens.batch());
  double worst = 0;
  for (const Parameter<double>& p : m64->parameters().all()) {
    const Parameter<float>* q = m32->parameters().find(p.name);
    ASSERT_NE(q, nullptr) << p.name;
    const double err = tensor_relative_error(std::vector<double>(q->grad.begin(), q->grad.end()), p.grad);
    EXPECT_LE(err, 1e-3) << p.name;
    worst = std::max(worst, err);
  }
  std::printf("  float against double gradients: max relative error per tensor %.2e\n", worst);
}

TEST(TrainRwkv7, FloatGradientsMatchDouble) { check_float_gradients(Arch::RWKV7); }
TEST(TrainRwkv4, FloatGradientsMatchDouble) { check_float_gradients(Arch::RWKV4); }

// The mean cross-entropy from the engine's logits (sequence mode, all positions, a fresh
// state per sequence) on the same weights and tokens.
double engine_loss(const Weights& w, const Tokens& t) {
  auto model = Model::from_weights(w);
  const size_t V = w.hp.vocab_size;
  std::vector<float> logits(t.T * V);
  double sum = 0;
  for (size_t b = 0; b < t.B; ++b) {
    State s = model->new_state();
    model->forward(s, {&t.inputs[b * t.T], t.T}, Logits::All, logits.data());
    for (size_t i = 0; i < t.T; ++i) {
      const float* y = &logits[i * V];
      const double max = *std::max_element(y, y + V);
      double e = 0;
      for (size_t j = 0; j < V; ++j) e += std::exp(double(y[j]) - max);
      sum += max + std::log(e) - y[t.targets[b * t.T + i]];
    }
  }
  return sum / double(t.B * t.T);
}

void check_loss_equals_engine(Arch arch) {
  const Weights w = tiny_model(arch, 21);
  const Tokens tokens = random_tokens(3, 37, w.hp.vocab_size, 5);
  const double want = engine_loss(w, tokens);
  const double got32 = TrainModel<float>::from_weights(w)->loss(tokens.batch()).cross_entropy;
  const double got64 = TrainModel<double>::from_weights(w)->loss(tokens.batch()).cross_entropy;
  EXPECT_NEAR(got32, want, 1e-5);
  EXPECT_NEAR(got64, want, 1e-5);
  std::printf("  engine %.7f, training float %.7f (%.1e), double %.7f (%.1e)\n", want, got32, got32 - want, got64,
              got64 - want);
}

TEST(TrainRwkv7, LossEqualsTheEngines) { check_loss_equals_engine(Arch::RWKV7); }
TEST(TrainRwkv4, LossEqualsTheEngines) { check_loss_equals_engine(Arch::RWKV4); }

// Weights out of training run in the engine and survive a GGUF file unchanged.
void check_weights_round_trip(Arch arch) {
  const Weights w = tiny_model(arch, 3);
  auto model = TrainModel<float>::from_weights(w);
  for (Parameter<float>& p : model->parameters().all())  // training moved the values
    for (float& x : p.value) x *= 1.01f;
  const Tokens tokens = random_tokens(1, 9, w.hp.vocab_size, 2);
  const std::vector<float> want = model->logits(1, 9, tokens.inputs);
  test::TempDir dir;
  const std::string path = dir.file("trained.gguf");
  save_gguf(model->to_weights(), path, SaveType::F32);
  auto engine = Model::load(path);
  std::vector<float> got(want.size());
  State s = engine->new_state();
  engine->forward(s, tokens.inputs, Logits::All, got.data());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4) << i;
  auto reloaded = TrainModel<float>::from_weights(load_weights(path));
  for (const Parameter<float>& p : model->parameters().all()) {
    const Parameter<float>* q = reloaded->parameters().find(p.name);
    ASSERT_NE(q, nullptr) << p.name;
    EXPECT_EQ(q->value, p.value) << p.name;
  }
}

TEST(TrainRwkv7, WeightsRoundTripThroughGguf) { check_weights_round_trip(Arch::RWKV7); }
TEST(TrainRwkv4, WeightsRoundTripThroughGguf) { check_weights_round_trip(Arch::RWKV4); }

TEST(TrainModel, RejectsBadBatchesAndVersions) {
  const Weights w = tiny_model(Arch::RWKV7, 1);
  auto model = TrainModel<float>::from_weights(w);
  const std::vector<int32_t> ok = {1, 2, 3, 4}, out_of_range = {1, 2, 256, 4}, short_targets = {1, 2, 3};
  EXPECT_THROW(model->loss({2, 2, out_of_range, ok}), Error);
  EXPECT_THROW(model->loss({2, 2, ok, out_of_range}), Error);
  EXPECT_THROW(model->loss({2, 2, ok, short_targets}), Error);
  EXPECT_THROW(model->loss({0, 2, {}, {}}), Error);
  EXPECT_NO_THROW(model->loss({2, 2, ok, ok}));
  Weights v6 = w;
  v6.hp.arch = Arch::RWKV6;
  EXPECT_THROW(TrainModel<float>::from_weights(v6), Error);
}

}  // namespace
}  // namespace rwkv::train
