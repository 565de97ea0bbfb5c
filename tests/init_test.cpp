// New-model initialisation (model/init.hpp): loads and runs, vectors equal the spec §7.1/§7.2
// formulas recomputed here, matrices are zero or gain-scaled orthogonal, seeds behave.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "io/error.hpp"
#include "model/init.hpp"
#include "model/model.hpp"
#include "test_util.hpp"

namespace rwkv {
namespace {

InitOptions options(Arch arch, int L, int C, int V, int N = 64) {
  InitOptions o;
  o.arch = arch;
  o.n_layer = L;
  o.n_embd = C;
  o.vocab_size = V;
  o.head_size = N;
  o.seed = 42;
  return o;
}

std::string blk(int l, const std::string& s) { return "blk." + std::to_string(l) + "." + s; }

std::vector<float> values(const Weights& w, const std::string& name) { return w.get(name).to_f32(); }

// Expects every value of the tensor to be `v`.
void expect_all(const Weights& w, const std::string& name, float v) {
  for (float x : values(w, name)) ASSERT_EQ(x, v) << name;
}

// Expects QᵀQ = gain²·I for a tall (rows ≥ cols) matrix, QQᵀ = gain²·I for a wide one.
void expect_orthogonal(const Weights& w, const std::string& name, double gain) {
  const Tensor& t = w.get(name);
  ASSERT_EQ(t.shape.size(), 2u) << name;
  const size_t rows = t.shape[0], cols = t.shape[1];
  const auto q = t.to_f32();
  const bool tall = rows >= cols;
  const size_t k = tall ? cols : rows, m = tall ? rows : cols;
  auto at = [&](size_t vec, size_t i) { return double(tall ? q[i * cols + vec] : q[vec * cols + i]); };
  double worst = 0;
  for (size_t a = 0; a < k; ++a)
    for (size_t b = a; b < k; ++b) {
      double dot = 0;
      for (size_t i = 0; i < m; ++i) dot += at(a, i) * at(b, i);
      worst = std::max(worst, std::fabs(dot / (gain * gain) - (a == b ? 1.0 : 0.0)));
    }
  EXPECT_LE(worst, 1e-5) << name << " " << t.shape_string() << " gain " << gain;
}

double tall_gain(double rows, double cols) { return rows > cols ? std::sqrt(rows / cols) : 1.0; }

// Builds, loads and runs a few tokens; every logit finite and the head not dead.
void expect_runs(const InitOptions& o) {
  Weights w = init_weights(o);
  EXPECT_EQ(w.format, "new (rwkv init)");
  EXPECT_EQ(w.path, "");
  auto m = Model::from_weights(std::move(w));
  const Hparams& hp = m->hparams();
  EXPECT_EQ(hp.arch, o.arch);
  EXPECT_EQ(hp.n_layer, o.n_layer);
  EXPECT_EQ(hp.n_embd, o.n_embd);
  EXPECT_EQ(hp.vocab_size, o.vocab_size);
  EXPECT_EQ(hp.dim_ffn, o.dim_ffn ? o.dim_ffn : 4 * o.n_embd);
  if (o.arch == Arch::RWKV7) {
    EXPECT_EQ(hp.head_size, o.head_size);
  }
  const std::vector<int32_t> tokens = {0, 1, o.vocab_size - 1, 7 % o.vocab_size, 3 % o.vocab_size};
  const size_t V = o.vocab_size;
  std::vector<float> seq(tokens.size() * V), rnn(V);
  State s = m->new_state();
  m->forward(s, tokens, Logits::All, seq.data());
  bool nonzero = false;
  for (float x : seq) {
    ASSERT_TRUE(std::isfinite(x));
    nonzero |= x != 0;
  }
  EXPECT_TRUE(nonzero);
  // RNN mode agrees with sequence mode on the last token.
  State s1 = m->new_state();
  for (int32_t t : tokens) m->forward(s1, {&t, 1}, Logits::Last, rnn.data());
  for (size_t v = 0; v < V; ++v) ASSERT_NEAR(rnn[v], seq[(tokens.size() - 1) * V + v], 1e-4) << v;
}

TEST(InitLoraRank, MatchesTheTrainersPythonRound) {
  // C = 1024: 2.5·32/32 = 2.5 rounds to 2 (ties to even), 1.7 to 2, 5 to 5.
  EXPECT_EQ(rwkv7_lora_rank(2.5, 1024), 64);
  EXPECT_EQ(rwkv7_lora_rank(1.7, 1024), 64);
  EXPECT_EQ(rwkv7_lora_rank(5.0, 1024), 160);
  // C = 768: the 0.1B demo's 64 / 32 / 128.
  EXPECT_EQ(rwkv7_lora_rank(2.5, 768), 64);
  EXPECT_EQ(rwkv7_lora_rank(1.7, 768), 32);
  EXPECT_EQ(rwkv7_lora_rank(5.0, 768), 128);
  EXPECT_EQ(rwkv7_lora_rank(2.5, 4096), 160);
  EXPECT_EQ(rwkv7_lora_rank(1.7, 4096), 96);
  EXPECT_EQ(rwkv7_lora_rank(5.0, 4096), 320);
  EXPECT_EQ(rwkv7_lora_rank(2.5, 64), 32);  // the floor of 32
  EXPECT_EQ(rwkv7_lora_rank(5.0, 16), 32);
}

TEST(InitRwkv4, LoadsAndRuns) {
  expect_runs(options(Arch::RWKV4, 3, 64, 300));
  expect_runs(options(Arch::RWKV4, 1, 32, 20));   // L = 1 (r01 = 0), tall head
  expect_runs(options(Arch::RWKV4, 2, 64, 50));   // V < C: wide head
  InitOptions o = options(Arch::RWKV4, 2, 32, 40);
  o.dim_ffn = 48;
  expect_runs(o);
}

TEST(InitRwkv4, VectorsFollowSpec71) {
  const int L = 3, C = 64, A = C, V = 300;
  const Weights w = init_weights(options(Arch::RWKV4, L, C, V));
  for (int l = 0; l < L; ++l) {
    const double r01 = double(l) / (L - 1), r1 = 1.0 - double(l) / L;
    const auto decay = values(w, blk(l, "time_mix_decay.weight"));
    ASSERT_EQ(decay.size(), size_t(A));
    EXPECT_FLOAT_EQ(decay[0], -5.0f);
    EXPECT_FLOAT_EQ(decay[A - 1], 3.0f);
    EXPECT_FLOAT_EQ(decay[20], float(-5 + 8 * std::pow(20.0 / 63.0, 0.7 + 1.3 * r01)));
    const auto first = values(w, blk(l, "time_mix_first_log.weight"));
    const double ln03 = std::log(0.3);
    for (int h : {0, 1, 2, 3, 62, 63}) {
      const double zig = (h % 3 == 0) ? 0.0 : (h % 3 == 1 ? 0.5 : -0.5);
      EXPECT_FLOAT_EQ(first[h], float(ln03 + zig)) << h;
    }
    const auto mk = values(w, blk(l, "time_mix_lerp_k.weight"));
    const auto mv = values(w, blk(l, "time_mix_lerp_v.weight"));
    const auto mr = values(w, blk(l, "time_mix_lerp_r.weight"));
    const auto fk = values(w, blk(l, "channel_mix_lerp_k.weight"));
    const auto fr = values(w, blk(l, "channel_mix_lerp_r.weight"));
    for (int i : {0, 1, 31, 63}) {
      const double d = double(i) / C;
      EXPECT_FLOAT_EQ(mk[i], float(std::pow(d, r1)));
      EXPECT_FLOAT_EQ(mv[i], float(std::pow(d, r1) + 0.3 * r01));
      EXPECT_FLOAT_EQ(mr[i], float(std::pow(d, 0.5 * r1)));
      EXPECT_FLOAT_EQ(fk[i], float(std::pow(d, r1)));
      EXPECT_FLOAT_EQ(fr[i], float(std::pow(d, r1)));
    }
    for (const char* ln : {"attn_norm", "attn_norm_2"}) {
      expect_all(w, blk(l, std::string(ln) + ".weight"), 1.0f);
      expect_all(w, blk(l, std::string(ln) + ".bias"), 0.0f);
    }
  }
  for (const char* ln : {"token_embd_norm", "output_norm"}) {
    expect_all(w, std::string(ln) + ".weight", 1.0f);
    expect_all(w, std::string(ln) + ".bias", 0.0f);
  }
}

TEST(InitRwkv4, MatricesAreZeroOrOrthogonal) {
  for (int V : {300, 50}) {
    const int L = 2, C = 64, F = 4 * C;
    const Weights w = init_weights(options(Arch::RWKV4, L, C, V));
    for (int l = 0; l < L; ++l) {
      for (const char* z : {"time_mix_key.weight", "time_mix_receptance.weight", "time_mix_output.weight",
                            "channel_mix_value.weight", "channel_mix_receptance.weight"})
        expect_all(w, blk(l, z), 0.0f);
      expect_orthogonal(w, blk(l, "time_mix_value.weight"), 1.0);
      expect_orthogonal(w, blk(l, "channel_mix_key.weight"), 2.0);  // sqrt(F/C)
      EXPECT_EQ(w.get(blk(l, "channel_mix_key.weight")).shape, (std::vector<int64_t>{F, C}));
    }
    expect_orthogonal(w, "output.weight", 0.5 * tall_gain(V, C));
    for (float x : values(w, "token_embd.weight")) ASSERT_LE(std::fabs(x), 1e-4f);
  }
}

TEST(InitRwkv7, LoadsAndRuns) {
  expect_runs(options(Arch::RWKV7, 3, 64, 300, 16));
  expect_runs(options(Arch::RWKV7, 2, 128, 300, 64));
  expect_runs(options(Arch::RWKV7, 1, 16, 20, 16));  // L = 1; LoRA ranks 32 > C
  expect_runs(options(Arch::RWKV7, 2, 64, 50, 16));  // V < C: wide head
  InitOptions o = options(Arch::RWKV7, 2, 32, 40, 8);
  o.dim_ffn = 48;
  expect_runs(o);
}

TEST(InitRwkv7, VectorsFollowSpec72) {
  for (int N : {16, 64}) {
    const int L = 3, C = 128, V = 300;
    const Weights w = init_weights(options(Arch::RWKV7, L, C, V, N));
    auto linear = [&](int n) { return double(n) / (C - 1) - 0.5; };
    auto zigzag = [&](int n) {
      const double zz = ((n % N) - (N - 1) / 2.0) / ((N - 1) / 2.0);
      return zz * std::fabs(zz);
    };
    for (int l = 0; l < L; ++l) {
      const double r01 = double(l) / (L - 1), r1 = 1.0 - double(l) / L;
      const auto w0 = values(w, blk(l, "time_mix_w0.weight"));
      EXPECT_FLOAT_EQ(w0[0], -8.0f);     // www −6, zigzag −1
      EXPECT_FLOAT_EQ(w0[C - 1], 3.0f);  // www 0, zigzag +1
      for (int n : {5, 40, 77}) {
        const double www = -6 + 6 * std::pow(double(n) / (C - 1), 1 + std::pow(r01, 0.3));
        EXPECT_FLOAT_EQ(w0[n], float(www + 0.5 + 2.5 * zigzag(n))) << n;
      }
      const auto a0 = values(w, blk(l, "time_mix_a0.weight"));
      const auto kk = values(w, blk(l, "time_mix_k_k.weight"));
      EXPECT_FLOAT_EQ(a0[0], -0.69f);
      EXPECT_FLOAT_EQ(kk[0], 0.76f);
      EXPECT_FLOAT_EQ(kk[C - 1], 0.66f);
      for (int n : {3, 64, 100}) {
        EXPECT_FLOAT_EQ(a0[n], float(-0.19 + 0.3 * zigzag(n) + 0.4 * linear(n))) << n;
        EXPECT_FLOAT_EQ(kk[n], float(0.71 - 0.1 * linear(n))) << n;
      }
      if (l == 0) {
        EXPECT_EQ(w.tensors.find(blk(0, "time_mix_v0.weight")), nullptr);
        EXPECT_EQ(w.tensors.find(blk(0, "time_mix_v1.weight")), nullptr);
        EXPECT_EQ(w.tensors.find(blk(0, "time_mix_v2.weight")), nullptr);
      } else {
        const auto v0 = values(w, blk(l, "time_mix_v0.weight"));
        EXPECT_FLOAT_EQ(v0[0], 0.93f);
        EXPECT_FLOAT_EQ(v0[C - 1], 0.53f);
        EXPECT_FLOAT_EQ(v0[50], float(0.73 - 0.4 * linear(50)));
      }
      expect_all(w, blk(l, "time_mix_k_a.weight"), 1.02f);
      expect_all(w, blk(l, "time_mix_r_k.weight"), -0.04f);
      EXPECT_EQ(w.get(blk(l, "time_mix_r_k.weight")).numel(), size_t(C));
      expect_all(w, blk(l, "time_mix_ln.weight"), float(std::pow((l + 1.0) / L, 0.7)));
      expect_all(w, blk(l, "time_mix_ln.bias"), 0.0f);
      // Fused token shift: rows x_r, x_w, x_k, x_v, x_a, x_g.
      const Tensor& mix = w.get(blk(l, "time_mix_lerp_fused.weight"));
      EXPECT_EQ(mix.shape, (std::vector<int64_t>{6, 1, 1, C}));
      const auto m = mix.to_f32();
      const double e[6] = {0.2, 0.9, 0.7, 0.7, 0.9, 0.2};
      for (int j = 0; j < 6; ++j)
        for (int i : {0, 1, 60, 127})
          EXPECT_FLOAT_EQ(m[j * C + i], float(1 - std::pow(double(i) / C, e[j] * r1))) << j << " " << i;
      const auto fk = values(w, blk(l, "channel_mix_lerp_k.weight"));
      for (int i : {0, 2, 90})
        EXPECT_FLOAT_EQ(fk[i], float(1 - std::pow(double(i) / C, std::pow(r1, 4)))) << i;
    }
  }
}

TEST(InitRwkv7, MatricesAreZeroOrOrthogonal) {
  struct Case {
    int L, C, V, N;
  };
  for (const Case c : {Case{2, 64, 300, 16}, Case{2, 16, 50, 16}, Case{1, 64, 50, 64}}) {
    const Weights w = init_weights(options(Arch::RWKV7, c.L, c.C, c.V, c.N));
    const int Dw = rwkv7_lora_rank(2.5, c.C), Dv = rwkv7_lora_rank(1.7, c.C), Dg = rwkv7_lora_rank(5.0, c.C);
    for (int l = 0; l < c.L; ++l) {
      struct Lora {
        const char *first, *second;
        int D;
      };
      for (const Lora z : {Lora{"time_mix_w1.weight", "time_mix_w2.weight", Dw},
                           Lora{"time_mix_a1.weight", "time_mix_a2.weight", Dw},
                           Lora{"time_mix_v1.weight", "time_mix_v2.weight", Dv},
                           Lora{"time_mix_g1.weight", "time_mix_g2.weight", Dg}}) {
        if (l == 0 && z.first[9] == 'v') continue;
        EXPECT_EQ(w.get(blk(l, z.first)).shape, (std::vector<int64_t>{z.D, c.C}));
        EXPECT_EQ(w.get(blk(l, z.second)).shape, (std::vector<int64_t>{c.C, z.D}));
        expect_all(w, blk(l, z.first), 0.0f);
        // .pth shape (D, C): gain sqrt(D/C) if D > C, times 0.1.
        expect_orthogonal(w, blk(l, z.second), 0.1 * tall_gain(z.D, c.C));
      }
      expect_orthogonal(w, blk(l, "time_mix_receptance.weight"), 1.0);
      expect_orthogonal(w, blk(l, "time_mix_key.weight"), 0.1);
      expect_orthogonal(w, blk(l, "time_mix_value.weight"), 1.0);
      expect_orthogonal(w, blk(l, "channel_mix_key.weight"), 1.0);
      expect_all(w, blk(l, "time_mix_output.weight"), 0.0f);
      expect_all(w, blk(l, "channel_mix_value.weight"), 0.0f);
    }
    expect_orthogonal(w, "output.weight", c.V > c.C ? 0.5 * std::sqrt(double(c.V) / c.C) : 0.5);
    const auto emb = values(w, "token_embd.weight");
    float lo = 1, hi = -1;
    for (float x : emb) {
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
    EXPECT_GE(lo, -1e-4f);
    EXPECT_LE(hi, 1e-4f);
    EXPECT_LT(lo, -0.8e-4f);  // actually spread over the range
    EXPECT_GT(hi, 0.8e-4f);
  }
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.shape == b.shape && a.nbytes() == b.nbytes() && std::memcmp(a.data, b.data, a.nbytes()) == 0;
}

TEST(InitSeed, SameSeedSameBytesOtherSeedDiffers) {
  for (Arch arch : {Arch::RWKV4, Arch::RWKV7}) {
    InitOptions o = options(arch, 2, 64, 100, 16);
    const Weights a = init_weights(o), b = init_weights(o);
    o.seed = 43;
    const Weights c = init_weights(o);
    ASSERT_EQ(a.tensors.size(), b.tensors.size());
    ASSERT_EQ(a.tensors.size(), c.tensors.size());
    for (size_t i = 0; i < a.tensors.size(); ++i) {
      const Tensor& ta = a.tensors.tensors()[i];
      EXPECT_EQ(ta.name, b.tensors.tensors()[i].name);
      EXPECT_TRUE(same_bytes(ta, b.tensors.tensors()[i])) << ta.name;
    }
    for (const char* random : {"token_embd.weight", "output.weight", "blk.1.time_mix_value.weight",
                               "blk.0.channel_mix_key.weight"})
      EXPECT_FALSE(same_bytes(a.get(random), c.get(random))) << random;
    // Different tensors of the same shape draw different values.
    EXPECT_FALSE(same_bytes(a.get("blk.0.time_mix_value.weight"), a.get("blk.1.time_mix_value.weight")));
    for (const char* fixed : {"blk.1.time_mix_decay.weight", "blk.1.time_mix_w0.weight", "blk.1.time_mix_output.weight"})
      if (const Tensor* t = a.tensors.find(fixed)) {
        EXPECT_TRUE(same_bytes(*t, c.get(fixed))) << fixed;
      }
  }
}

TEST(InitOptionsCheck, BadOptionsAreRejected) {
  auto rejected = [](InitOptions o, const char* why) {
    EXPECT_THROW(init_weights(o), Error) << why;
  };
  const InitOptions good = options(Arch::RWKV7, 2, 64, 100, 16);
  InitOptions o = good;
  o.arch = Arch::RWKV5;
  rejected(o, "RWKV-5");
  o = good, o.n_layer = 0;
  rejected(o, "no layers");
  o = good, o.n_embd = 0;
  rejected(o, "no channels");
  o = good, o.vocab_size = 0;
  rejected(o, "no vocabulary");
  o = good, o.head_size = 0;
  rejected(o, "head size 0");
  o = good, o.head_size = 48;
  rejected(o, "C not a multiple of N");
  o = good, o.dim_ffn = -1;
  rejected(o, "negative F");
  o = good, o.emb_scale = std::numeric_limits<float>::quiet_NaN();
  rejected(o, "NaN scale");
  o = good, o.emb_scale = -1;
  rejected(o, "negative scale");
  o = good, o.n_embd = 1 << 20, o.vocab_size = 1 << 20, o.head_size = 64;
  rejected(o, "too many parameters");
  o = good, o.arch = Arch::RWKV4, o.n_layer = 1 << 20;
  rejected(o, "too many layers");
  try {
    o = good, o.head_size = 48;
    init_weights(o);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("head_size 48"), std::string::npos) << e.what();
  }
  // RWKV-4 ignores head_size.
  o = good, o.arch = Arch::RWKV4, o.head_size = 48;
  EXPECT_NO_THROW(init_weights(o));
}

}  // namespace
}  // namespace rwkv
