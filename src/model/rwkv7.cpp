// RWKV-7 "Goose" (x070; spec §3): the generalised delta-rule WKV with data-dependent decay,
// in-context learning rate, value residual from layer 0, and a squared-ReLU channel mix.
#include <cmath>

#include "kernels/cpu/ops.hpp"
#include "kernels/cpu/simd.hpp"
#include "kernels/cpu/wkv.hpp"
#include "model/blocks.hpp"
#include "model/model.hpp"

namespace rwkv {
namespace {

// Tokens per piece of the element-wise passes (fewer than two pieces: one thread does it all).
constexpr size_t kTokenGrain = 8;

class Rwkv7 final : public Model {
 public:
  explicit Rwkv7(Weights w) : Model(std::move(w)) {
    const Hparams& hp = hparams();
    const int64_t C = hp.n_embd, F = hp.dim_ffn;
    for (int l = 0; l < hp.n_layer; ++l) {
      auto n = [&](const char* s) { return Weights::layer(l, s); };
      Layer y;
      y.mix = tensor(n("time_mix_lerp_fused.weight"), {6, C});  // rows r, w, k, v, a, g
      y.w0 = vector(n("time_mix_w0.weight"), C);
      y.w1 = matrix(n("time_mix_w1.weight"), hp.lora_w, C);
      y.w2 = matrix(n("time_mix_w2.weight"), C, hp.lora_w);
      y.a0 = vector(n("time_mix_a0.weight"), C);
      y.a1 = matrix(n("time_mix_a1.weight"), hp.lora_a, C);
      y.a2 = matrix(n("time_mix_a2.weight"), C, hp.lora_a);
      if (l > 0) {  // layer 0 has no value residual; its v0/v1/v2 (if any) are ignored
        y.v0 = vector(n("time_mix_v0.weight"), C);
        y.v1 = matrix(n("time_mix_v1.weight"), hp.lora_v, C);
        y.v2 = matrix(n("time_mix_v2.weight"), C, hp.lora_v);
      }
      y.g1 = matrix(n("time_mix_g1.weight"), hp.lora_g, C);
      y.g2 = matrix(n("time_mix_g2.weight"), C, hp.lora_g);
      y.k_k = vector(n("time_mix_k_k.weight"), C);
      y.k_a = vector(n("time_mix_k_a.weight"), C);
      y.r_k = vector(n("time_mix_r_k.weight"), C);
      y.Wr = matrix(n("time_mix_receptance.weight"), C, C);
      y.Wk = matrix(n("time_mix_key.weight"), C, C);
      y.Wv = matrix(n("time_mix_value.weight"), C, C);
      y.Wo = matrix(n("time_mix_output.weight"), C, C);
      y.ln_x_w = vector(n("time_mix_ln.weight"), C);
      y.ln_x_b = vector(n("time_mix_ln.bias"), C);
      y.ffn_x_k = vector(n("channel_mix_lerp_k.weight"), C);
      y.ffn_Wk = matrix(n("channel_mix_key.weight"), F, C);
      y.ffn_Wv = matrix(n("channel_mix_value.weight"), C, F);
      layers_.push_back(y);
    }
  }

 private:
  struct Layer {
    const float *mix, *w0, *a0, *v0 = nullptr, *k_k, *k_a, *r_k, *ln_x_w, *ln_x_b, *ffn_x_k;
    cpu::Matrix w1, w2, a1, a2, v1, v2, g1, g2, Wr, Wk, Wv, Wo, ffn_Wk, ffn_Wv;
  };

  void time_mix(int l, const float* z, size_t T, Runs runs, Scratch& sc, float* out) const override {
    const Layer& y = layers_[l];
    const Hparams& hp = hparams();
    const size_t C = hp.n_embd, H = hp.n_head, N = hp.head_size, TC = T * C;
    auto prev = token_shift(z, C, runs, l, Shift::Att);
    Floats xs[6];  // xr, xw, xk, xv, xa, xg
    for (auto& x : xs) x = Floats(TC);
    // The element-wise passes are per token: each is shared out over the thread pool by tokens.
    auto per_tokens = [T](auto&& fn) { cpu::parallel_for(T, kTokenGrain, fn); };
    per_tokens([&](size_t t0, size_t t1) {
      float* x[6];
      for (size_t j = 0; j < 6; ++j) x[j] = xs[j].data() + t0 * C;
      cpu::simd::mix_rows(z + t0 * C, prev.data() + t0 * C, y.mix, 6, t1 - t0, C, x);
    });
    Floats r(TC), w(TC), k(TC), v(TC), a(TC), g(TC), kk(TC), b(TC), wkv(TC);
    // The low-rank paths y = W2·f(W1·x) (spec §3.2) and r, k, v, in two rounds of independent
    // products (one pool job each when decoding). Layer 0 has no value-residual path (v1 and
    // v2 are empty: no rows).
    Floats hw(T * hp.lora_w), ha(T * hp.lora_a), hg(T * hp.lora_g), hv(T * y.v1.rows), gate(T * y.v2.rows);
    cpu::matmuls(T, {{xs[0].data(), &y.Wr, r.data()},
                     {xs[2].data(), &y.Wk, k.data()},
                     {xs[3].data(), &y.Wv, v.data()},
                     {xs[1].data(), &y.w1, hw.data()},
                     {xs[4].data(), &y.a1, ha.data()},
                     {xs[5].data(), &y.g1, hg.data()},
                     {xs[3].data(), &y.v1, hv.data()}});
    per_tokens([&](size_t t0, size_t t1) {
      cpu::simd::activate(cpu::Act::Tanh, &hw[t0 * hp.lora_w], nullptr, t1 - t0, hp.lora_w, &hw[t0 * hp.lora_w]);
      cpu::simd::activate(cpu::Act::Sigmoid, &hg[t0 * hp.lora_g], nullptr, t1 - t0, hp.lora_g, &hg[t0 * hp.lora_g]);
    });
    cpu::matmuls(T, {{hw.data(), &y.w2, w.data()},
                     {ha.data(), &y.a2, a.data()},
                     {hg.data(), &y.g2, g.data()},
                     {hv.data(), &y.v2, gate.data()}});
    // Value residual: layer 0 remembers its values; later layers mix towards them.
    if (l == 0) sc.v_first.assign(v.data(), v.data() + TC);
    // Tokens [t0, t0 + n), heads [h0, h1), before the WKV: ω, α and the value gate from the
    // low-rank outputs, κ = l2n(k⊙k_k) per head, k ← k⊙(1 + (α−1)⊙k_a), the value residual,
    // and the WKV's a = −κ, b = κ⊙α.
    auto prepare = [&](size_t t0, size_t n, size_t h0, size_t h1) {
      const size_t c0 = h0 * N, width = (h1 - h0) * N;
      auto rows = [&](cpu::Act act, float* x, const float* bias) {  // in place, with bias[c]
        if (width == C) return cpu::simd::activate(act, x + t0 * C, bias, n, C, x + t0 * C);
        for (size_t t = t0; t < t0 + n; ++t) cpu::simd::activate(act, x + t * C + c0, bias + c0, 1, width, x + t * C + c0);
      };
      rows(cpu::Act::DecayRwkv7, w.data(), y.w0);  // ω = exp(−e^{−1/2}·σ(w0 + ·)), §3.2
      rows(cpu::Act::Sigmoid, a.data(), y.a0);
      if (l > 0) rows(cpu::Act::Sigmoid, gate.data(), y.v0);
      for (size_t t = t0; t < t0 + n; ++t) {
        for (size_t h = h0; h < h1; ++h) {
          const size_t o = t * C + h * N;
          const double ss = cpu::simd::scaled_sum_squares(&k[o], &y.k_k[h * N], N, &kk[o]);
          const float inv = 1.0f / std::max(static_cast<float>(std::sqrt(ss)), 1e-12f);
          for (size_t j = 0; j < N; ++j) kk[o + j] *= inv;
        }
        for (size_t c = c0, i = t * C + c0; c < c0 + width; ++c, ++i) {
          k[i] *= 1.0f + (a[i] - 1.0f) * y.k_a[c];
          if (l > 0) v[i] += (sc.v_first[i] - v[i]) * gate[i];
          b[i] = kk[i] * a[i];
          kk[i] = -kk[i];
        }
      }
    };
    // After it, per head: the group norm, the bonus (Σ_j r_j k_j r_k[j])·v, then the output gate.
    auto finish = [&](size_t t0, size_t n, size_t h0, size_t h1) {
      for (size_t t = t0; t < t0 + n; ++t)
        for (size_t h = h0; h < h1; ++h) {
          const size_t o = t * C + h * N;
          cpu::simd::normalize(&wkv[o], N, y.ln_x_w + h * N, y.ln_x_b + h * N, hp.group_norm_eps, &wkv[o]);
          const float dot = cpu::simd::dot3(&r[o], &k[o], &y.r_k[h * N], N);
          for (size_t j = 0; j < N; ++j) wkv[o + j] = (wkv[o + j] + dot * v[o + j]) * g[o + j];
        }
    };
    const auto scans = wkv_scans(runs, l);
    // Fewer tokens than two pieces: in the scans' job, head by head, on every thread instead of
    // the calling one alone (0.1B Q4_0 decode 1.026× with the mixes' kernel and the states'
    // prefetch). A batched step of 16 sequences measured 0.992 that way: it keeps the passes.
    if (T < 2 * kTokenGrain) {
      cpu::wkv7_runs(scans, H, N, r.data(), w.data(), k.data(), v.data(), kk.data(), b.data(), wkv.data(),
                     [&](size_t t0, size_t n, size_t h) { prepare(t0, n, h, h + 1); },
                     [&](size_t t0, size_t n, size_t h) { finish(t0, n, h, h + 1); });
    } else {  // whole tokens, pass by pass
      per_tokens([&](size_t t0, size_t t1) { prepare(t0, t1 - t0, 0, H); });
      cpu::wkv7_runs(scans, H, N, r.data(), w.data(), k.data(), v.data(), kk.data(), b.data(), wkv.data());
      per_tokens([&](size_t t0, size_t t1) { finish(t0, t1 - t0, 0, H); });
    }
    cpu::matmul(wkv.data(), T, y.Wo, out);
  }

  // spec §3.4: no receptance gate.
  void channel_mix(int l, const float* z, size_t T, Runs runs, float* out) const override {
    const Layer& y = layers_[l];
    const size_t C = hparams().n_embd, F = hparams().dim_ffn;
    auto prev = token_shift(z, C, runs, l, Shift::Ffn);
    Floats xk(T * C), k(T * F);
    cpu::parallel_for(T, kTokenGrain, [&](size_t t0, size_t t1) {
      mix7(z + t0 * C, prev.data() + t0 * C, y.ffn_x_k, t1 - t0, C, xk.data() + t0 * C);
    });
    cpu::matmul(xk.data(), T, y.ffn_Wk, k.data());
    cpu::activate(cpu::Act::ReluSq, k.data(), nullptr, T, F, k.data());
    cpu::matmul(k.data(), T, y.ffn_Wv, out);
  }

  std::vector<Layer> layers_;
};

}  // namespace

std::unique_ptr<Model> make_rwkv7(Weights w) { return std::make_unique<Rwkv7>(std::move(w)); }

}  // namespace rwkv
