// The fast paths of training: the SIMD WKV-7 kernels against the scalar reference (float),
// and data parallelism (batch sequences split over model replicas) against one model: one
// replica is the model exactly, several agree to rounding and are deterministic run to run.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/thread_pool.hpp"
#include "model/init.hpp"
#include "train/data_parallel.hpp"
#include "train/wkv_train.hpp"

namespace rwkv::train {
namespace {

std::vector<float> normal(size_t n, float scale, std::mt19937_64& rng) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// max |a − b| / max |b|.
using test::relative_error;

TEST(TrainWkv7, SimdKernelsMatchTheReference) {
  for (size_t N : {16, 64}) {
    const size_t B = 2, T = 37, H = 2, C = H * N, R = B * T;  // T not a multiple of the chunk
    std::mt19937_64 rng(N);
    auto r = normal(R * C, 1, rng), k = normal(R * C, 1, rng), v = normal(R * C, 1, rng), dy = normal(R * C, 1, rng);
    auto w = normal(R * C, 2, rng), a = normal(R * C, 1, rng), b = normal(R * C, 2, rng);
    for (float& x : w) x = std::exp(-0.6065306597f / (1 + std::exp(-x)));
    for (size_t h = 0; h < R * H; ++h) {  // a = −κ, b = κ⊙α as in the model
      float n = 0;
      for (size_t j = 0; j < N; ++j) n += a[h * N + j] * a[h * N + j];
      for (size_t j = 0; j < N; ++j) {
        a[h * N + j] /= -std::sqrt(n);
        b[h * N + j] = -a[h * N + j] / (1 + std::exp(-b[h * N + j]));
      }
    }
    struct Out {
      std::vector<float> y, dr, dw, dk, dv, da, db;
      Wkv7Saved<float> saved;
    };
    auto run = [&](bool fast) {
      const size_t n = R * C;
      Out o{std::vector<float>(n), std::vector<float>(n, 0.5f), std::vector<float>(n, 0.5f),
            std::vector<float>(n, 0.5f), std::vector<float>(n, 0.5f), std::vector<float>(n, 0.5f),
            std::vector<float>(n, 0.5f), {}};
      auto fwd = fast ? &wkv7_forward<float> : &wkv7_forward_reference<float>;
      auto bwd = fast ? &wkv7_backward<float> : &wkv7_backward_reference<float>;
      fwd(B, T, H, N, r.data(), w.data(), k.data(), v.data(), a.data(), b.data(), o.y.data(), o.saved);
      bwd(B, T, H, N, r.data(), w.data(), k.data(), v.data(), a.data(), b.data(), o.saved, dy.data(), o.dr.data(),
          o.dw.data(), o.dk.data(), o.dv.data(), o.da.data(), o.db.data());
      return o;
    };
    const Out fast = run(true), ref = run(false);
    EXPECT_LE(relative_error(fast.y, ref.y), 1e-5) << N;
    EXPECT_LE(relative_error(fast.saved.states, ref.saved.states), 1e-5) << N;
    // The gradients were added to 0.5 everywhere.
    for (auto [name, f, g] : {std::tuple{"dr", &fast.dr, &ref.dr}, {"dw", &fast.dw, &ref.dw}, {"dk", &fast.dk, &ref.dk},
                              {"dv", &fast.dv, &ref.dv}, {"da", &fast.da, &ref.da}, {"db", &fast.db, &ref.db}})
      EXPECT_LE(relative_error(*f, *g), 1e-4) << name << " N=" << N;
  }
}

Weights tiny_weights(Arch arch) {
  InitOptions o;
  o.arch = arch;
  o.n_layer = 2;
  o.n_embd = 32;
  o.head_size = 16;
  o.vocab_size = 40;
  o.seed = 5;
  Weights w = init_weights(o);
  // Fresh models have zero matrices; vary every tensor so that every gradient is non-trivial.
  TensorSet varied;
  std::mt19937_64 rng(3);
  for (const Tensor& t : w.tensors.tensors()) {
    std::vector<float> v = t.to_f32();
    for (float& x : v) x += std::normal_distribution<float>(0.0f, 0.05f)(rng);
    varied.add(make_f32_tensor(t.name, t.shape, v));
  }
  w.tensors = varied;
  return w;
}

struct Grads {
  double loss;
  std::vector<std::vector<float>> grads;
};

Grads gradients(DataParallel& dp, size_t B, size_t T) {
  std::mt19937_64 rng(9);
  std::vector<int32_t> in(B * T), tg(B * T);
  for (size_t i = 0; i < B * T; ++i) {
    in[i] = int32_t(rng() % 40);
    tg[i] = int32_t(rng() % 40);
  }
  dp.parameters().zero_grad();
  Grads g{dp.forward_backward(Batch{B, T, in, tg}).cross_entropy, {}};
  for (const auto& p : dp.parameters().all()) g.grads.push_back(p.grad);
  return g;
}

void check_data_parallel(Arch arch) {
  const Weights w = tiny_weights(arch);
  cpu::set_threads(2);
  DataParallel one(w, 1), two(w, 2), three(w, 3);
  auto single = TrainModel<float>::from_weights(w);
  const size_t B = 5, T = 9;  // 5 sequences over 2 or 3 replicas: unequal shares
  const Grads g1 = gradients(one, B, T), g2 = gradients(two, B, T), g3 = gradients(three, B, T);
  // One replica is the model itself.
  std::mt19937_64 rng(9);
  std::vector<int32_t> in(B * T), tg(B * T);
  for (size_t i = 0; i < B * T; ++i) {
    in[i] = int32_t(rng() % 40);
    tg[i] = int32_t(rng() % 40);
  }
  EXPECT_EQ(single->forward_backward(Batch{B, T, in, tg}).cross_entropy, g1.loss);
  for (size_t i = 0; i < g1.grads.size(); ++i) EXPECT_EQ(single->parameters().all()[i].grad, g1.grads[i]);
  // Several replicas: the same sums in another order.
  EXPECT_NEAR(g2.loss, g1.loss, 1e-6);
  EXPECT_NEAR(g3.loss, g1.loss, 1e-6);
  for (size_t i = 0; i < g1.grads.size(); ++i) {
    EXPECT_LE(relative_error(g2.grads[i], g1.grads[i]), 1e-4) << one.parameters().all()[i].name;
    EXPECT_LE(relative_error(g3.grads[i], g1.grads[i]), 1e-4) << one.parameters().all()[i].name;
  }
  // And the same again on a second run.
  const Grads again = gradients(two, B, T);
  EXPECT_EQ(again.loss, g2.loss);
  EXPECT_EQ(again.grads, g2.grads);
  cpu::set_threads(0);
}

TEST(TrainDataParallel, Rwkv7ReplicasAddUpToOneModel) { check_data_parallel(Arch::RWKV7); }
TEST(TrainDataParallel, Rwkv4ReplicasAddUpToOneModel) { check_data_parallel(Arch::RWKV4); }

}  // namespace
}  // namespace rwkv::train
