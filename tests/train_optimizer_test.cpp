// The optimizer of training (train/optimizer): the official parameter groups, AdamW steps
// against a hand computation, gradient clipping, and a few steps on tiny models lowering the loss.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "model/init.hpp"
#include "train/optimizer.hpp"
#include "train/train_model.hpp"

namespace rwkv::train {
namespace {

TEST(TrainOptimizer, OfficialParameterGroups) {
  auto expect = [](Arch arch, const std::string& name, double lr_scale, bool decay) {
    const ParameterGroup g = official_group(arch, name);
    EXPECT_EQ(g.lr_scale, lr_scale) << name;
    EXPECT_EQ(g.weight_decay, decay) << name;
  };
  // RWKV-7: w0 at twice the rate; only emb, head and nn.Linear matrices decay.
  expect(Arch::RWKV7, "blk.3.time_mix_w0.weight", 2.0, false);
  expect(Arch::RWKV7, "token_embd.weight", 1.0, true);
  expect(Arch::RWKV7, "output.weight", 1.0, true);
  for (const char* s : {"receptance", "key", "value", "output"})
    expect(Arch::RWKV7, std::string("blk.0.time_mix_") + s + ".weight", 1.0, true);
  expect(Arch::RWKV7, "blk.1.channel_mix_key.weight", 1.0, true);
  expect(Arch::RWKV7, "blk.1.channel_mix_value.weight", 1.0, true);
  for (const char* s : {"w1", "w2", "a1", "a2", "v1", "v2", "g1", "g2", "r_k", "k_k", "k_a", "a0", "v0", "lerp_fused",
                        "ln"})
    expect(Arch::RWKV7, std::string("blk.12.time_mix_") + s + ".weight", 1.0, false);
  expect(Arch::RWKV7, "blk.0.attn_norm.weight", 1.0, false);
  expect(Arch::RWKV7, "output_norm.bias", 1.0, false);
  expect(Arch::RWKV7, "blk.0.time_mix_decay.weight", 1.0, false);  // no such v7 tensor; no RWKV-4 rule
  // RWKV-4: time_decay ×2, time_first ×3, token shift ×1; every matrix decays.
  expect(Arch::RWKV4, "blk.0.time_mix_decay.weight", 2.0, false);
  expect(Arch::RWKV4, "blk.0.time_mix_first_log.weight", 3.0, false);
  expect(Arch::RWKV4, "blk.0.time_mix_lerp_k.weight", 1.0, false);
  expect(Arch::RWKV4, "blk.0.channel_mix_lerp_r.weight", 1.0, false);
  expect(Arch::RWKV4, "blk.0.channel_mix_receptance.weight", 1.0, true);
  expect(Arch::RWKV4, "token_embd.weight", 1.0, true);
  expect(Arch::RWKV4, "blk.0.time_mix_w0.weight", 1.0, false);
  EXPECT_EQ(official_adamw_options(Arch::RWKV7).eps, 1e-18);
  EXPECT_EQ(official_adamw_options(Arch::RWKV4).eps, 1e-8);
}

// Parameters from hand-made tensors.
Weights tensors(std::vector<std::pair<std::string, std::vector<float>>> list) {
  Weights w;
  for (auto& [name, values] : list) {
    const int64_t n = static_cast<int64_t>(values.size());
    w.tensors.add(make_f32_tensor(name, {n}, values));
  }
  return w;
}

TEST(TrainOptimizer, AdamWStepsAsComputedByHand) {
  const Weights w = tensors({{"blk.0.time_mix_key.weight", {1.0f, -2.0f}}, {"blk.0.time_mix_w0.weight", {0.5f}}});
  Parameters<double> params;
  params.take(w, "blk.0.time_mix_key.weight", {2});
  params.take(w, "blk.0.time_mix_w0.weight", {1});
  AdamWOptions o;
  o.eps = 1e-8;
  o.weight_decay = 0.1;
  AdamW<double> adam(params, Arch::RWKV7, o);
  const double lr = 0.01;
  // Two steps with gradients g1 then g2; the reference is the formula written out.
  const std::vector<std::vector<double>> grads = {{0.3, -0.2, 4.0}, {-0.1, 0.5, 1.0}};
  std::vector<double> p = {1.0, -2.0, 0.5}, m(3, 0), v(3, 0);
  const double scale[3] = {1, 1, 2}, decay[3] = {0.1, 0.1, 0};
  for (int t = 1; t <= 2; ++t) {
    params.all()[0].grad = {grads[t - 1][0], grads[t - 1][1]};
    params.all()[1].grad = {grads[t - 1][2]};
    adam.step(lr);
    for (int i = 0; i < 3; ++i) {
      const double g = grads[t - 1][i];
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.99 * v[i] + 0.01 * g * g;
      const double mh = m[i] / (1 - std::pow(0.9, t)), vh = v[i] / (1 - std::pow(0.99, t));
      p[i] -= lr * scale[i] * (mh / (std::sqrt(vh) + 1e-8) + decay[i] * p[i]);
    }
    EXPECT_NEAR(params.all()[0].value[0], p[0], 1e-15);
    EXPECT_NEAR(params.all()[0].value[1], p[1], 1e-15);
    EXPECT_NEAR(params.all()[1].value[0], p[2], 1e-15);
  }
  EXPECT_EQ(adam.steps(), 2);
  // The first step of Adam moves each value by lr·scale against the sign of its gradient.
  AdamW<double> fresh(params, Arch::RWKV7, official_adamw_options(Arch::RWKV7));
  const double before = params.all()[1].value[0];
  params.all()[1].grad = {-3.0};
  fresh.step(lr);
  EXPECT_NEAR(params.all()[1].value[0] - before, 2 * lr, 1e-15);
}

TEST(TrainOptimizer, ClipsTheGlobalGradientNorm) {
  const Weights w = tensors({{"a", {0, 0}}, {"b", {0}}});
  Parameters<float> params;
  params.take(w, "a", {2});
  params.take(w, "b", {1});
  params.all()[0].grad = {3.0f, 0.0f};
  params.all()[1].grad = {4.0f};
  EXPECT_NEAR(clip_gradient_norm(params, 10.0), 5.0, 1e-6);  // below the limit: unchanged
  EXPECT_EQ(params.all()[1].grad[0], 4.0f);
  EXPECT_NEAR(clip_gradient_norm(params, 1.0), 5.0, 1e-6);
  EXPECT_NEAR(params.all()[0].grad[0], 0.6, 1e-6);
  EXPECT_NEAR(params.all()[1].grad[0], 0.8, 1e-6);
}

// A few AdamW steps on one repeated batch of a tiny model: the loss falls well below the
// 5.4 of a fresh model (ln 256 ≈ 5.55), so forward, backward and the update fit together.
void expect_loss_falls(Arch arch) {
  InitOptions o;
  o.arch = arch;
  o.n_layer = 2;
  o.n_embd = 32;
  o.vocab_size = 256;
  o.head_size = 16;
  o.seed = 5;
  auto model = TrainModel<float>::from_weights(init_weights(o));
  // Two sequences of a short repeating pattern; targets are the next tokens.
  const size_t B = 2, T = 24;
  std::vector<int32_t> inputs, targets;
  for (size_t b = 0; b < B; ++b)
    for (size_t t = 0; t < T; ++t) {
      inputs.push_back(static_cast<int32_t>('a' + (t + b) % 5));
      targets.push_back(static_cast<int32_t>('a' + (t + b + 1) % 5));
    }
  const Batch batch{B, T, inputs, targets};
  AdamW<float> adam(model->parameters(), arch, official_adamw_options(arch, 0.001));
  const double first = model->loss(batch).cross_entropy;
  double last = first;
  for (int step = 0; step < 40; ++step) {
    model->parameters().zero_grad();
    last = model->forward_backward(batch).cross_entropy;
    clip_gradient_norm(model->parameters(), 1.0);
    adam.step(1e-2);
  }
  EXPECT_GT(first, 5.0);  // near ln 256: the fresh blocks add nothing (zero output matrices)
  EXPECT_LT(last, 0.5) << "from " << first;
  std::printf("  loss %.3f -> %.3f after 40 steps\n", first, last);
}

TEST(TrainOptimizer, LossFallsOnTinyRwkv7) { expect_loss_falls(Arch::RWKV7); }
TEST(TrainOptimizer, LossFallsOnTinyRwkv4) { expect_loss_falls(Arch::RWKV4); }

}  // namespace
}  // namespace rwkv::train
