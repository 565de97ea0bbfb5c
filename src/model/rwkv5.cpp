// RWKV-5.x "Eagle" (rwkv-spec-v5-v6.md §4.1): matrix-valued WKV state per head with constant
// decay. The three variants are one code path by feature: gate or not (5.0 vs 5.1/5.2), decay
// per head or per channel, bonus stored as log(u) or as u.
#include <cmath>

#include "kernels/cpu/ops.hpp"
#include "kernels/cpu/wkv.hpp"
#include "model/blocks.hpp"
#include "model/model.hpp"

namespace rwkv {
namespace {

class Rwkv5 final : public Model {
 public:
  explicit Rwkv5(Weights w) : Model(std::move(w)) {
    const Hparams& hp = hparams();
    const size_t C = hp.n_embd, F = hp.dim_ffn, H = hp.n_head, N = hp.head_size;
    for (int l = 0; l < hp.n_layer; ++l) {
      auto n = [&](const char* s) { return Weights::layer(l, s); };
      Layer y;
      y.mix_k = vector(n("time_mix_lerp_k.weight"), C);
      y.mix_v = vector(n("time_mix_lerp_v.weight"), C);
      y.mix_r = vector(n("time_mix_lerp_r.weight"), C);
      // Decay w = exp(−exp(d)) and bonus u are constants: expand them per channel once.
      const float* d = hp.v5_decay_per_channel ? tensor(n("time_mix_decay.weight"), {int64_t(H), int64_t(N)})
                                               : vector(n("time_mix_decay.weight"), H);
      const float* u = hp.v5_first_is_log ? vector(n("time_mix_first_log.weight"), H)
                                          : tensor(n("time_mix_first.weight"), {int64_t(H), int64_t(N)});
      y.w.resize(C);
      y.u.resize(C);
      for (size_t c = 0; c < C; ++c) {
        const size_t head = c / N;
        y.w[c] = static_cast<float>(std::exp(-std::exp(static_cast<double>(d[hp.v5_decay_per_channel ? c : head]))));
        y.u[c] = hp.v5_first_is_log ? static_cast<float>(std::exp(static_cast<double>(u[head]))) : u[c];
      }
      y.Wr = matrix(n("time_mix_receptance.weight"), C, C);
      y.Wk = matrix(n("time_mix_key.weight"), C, C);
      y.Wv = matrix(n("time_mix_value.weight"), C, C);
      y.Wo = matrix(n("time_mix_output.weight"), C, C);
      if (hp.v5_gate) {
        y.mix_g = vector(n("time_mix_lerp_g.weight"), C);
        y.Wg = matrix(n("time_mix_gate.weight"), C, C);
      }
      y.ln_x_w = vector(n("time_mix_ln.weight"), C);
      y.ln_x_b = vector(n("time_mix_ln.bias"), C);
      y.ffn = {matrix(n("channel_mix_key.weight"), F, C), matrix(n("channel_mix_value.weight"), C, F),
               matrix(n("channel_mix_receptance.weight"), C, C),
               vector(n("channel_mix_lerp_k.weight"), C), vector(n("channel_mix_lerp_r.weight"), C), false};
      layers_.push_back(std::move(y));
    }
  }

 private:
  struct Layer {
    const float *mix_k, *mix_v, *mix_r, *mix_g = nullptr;
    std::vector<float> w, u;
    cpu::Matrix Wr, Wk, Wv, Wo, Wg;
    const float *ln_x_w, *ln_x_b;
    GatedFfn ffn;
  };

  void time_mix(int l, const float* z, size_t T, Runs runs, Scratch&, float* out) const override {
    const Layer& y = layers_[l];
    const Hparams& hp = hparams();
    const size_t C = hp.n_embd, H = hp.n_head, N = hp.head_size;
    auto prev = token_shift(z, C, runs, l, Shift::Att);
    const bool gated = hp.v5_gate;
    Floats xr(T * C), xk(T * C), xv(T * C), r(T * C), k(T * C), v(T * C), wkv(T * C), xg, g;
    mix4(z, prev.data(), y.mix_r, T, C, xr.data());
    mix4(z, prev.data(), y.mix_k, T, C, xk.data());
    mix4(z, prev.data(), y.mix_v, T, C, xv.data());
    if (gated) {
      xg = Floats(T * C), g = Floats(T * C);
      mix4(z, prev.data(), y.mix_g, T, C, xg.data());
    }
    // no sigmoid on r in v5; no gate (an empty product) before v5.2
    const cpu::Matrix none{};
    cpu::matmuls(T, {{xr.data(), &y.Wr, r.data()},
                     {xk.data(), &y.Wk, k.data()},
                     {xv.data(), &y.Wv, v.data()},
                     {xg.data(), gated ? &y.Wg : &none, g.data()}});
    cpu::wkv5_runs(wkv_scans(runs, l), H, N, r.data(), k.data(), v.data(), y.w.data(), 0, y.u.data(), wkv.data());
    cpu::group_norm(wkv.data(), T, H, N, y.ln_x_w, y.ln_x_b, hp.group_norm_eps, wkv.data());
    if (gated)
      for (size_t i = 0; i < T * C; ++i) wkv[i] *= cpu::silu(g[i]);
    cpu::matmul(wkv.data(), T, y.Wo, out);
  }

  void channel_mix(int l, const float* z, size_t T, Runs runs, float* out) const override {
    const Layer& y = layers_[l];
    const size_t C = hparams().n_embd, F = hparams().dim_ffn;
    const auto prev = token_shift(z, C, runs, l, Shift::Ffn);
    gated_channel_mix(y.ffn, z, prev.data(), T, C, F, out);
  }

  std::vector<Layer> layers_;
};

}  // namespace

std::unique_ptr<Model> make_rwkv5(Weights w) { return std::make_unique<Rwkv5>(std::move(w)); }

}  // namespace rwkv
