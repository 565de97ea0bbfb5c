// RWKV-6.0 "Finch" (rwkv-spec-v5-v6.md §4.2): v5's WKV with data-dependent token shift and
// decay, both through low-rank (LoRA) paths.
#include <cmath>
#include <cstring>

#include "kernels/cpu/ops.hpp"
#include "kernels/cpu/wkv.hpp"
#include "model/blocks.hpp"
#include "model/model.hpp"

namespace rwkv {
namespace {

class Rwkv6 final : public Model {
 public:
  explicit Rwkv6(Weights w) : Model(std::move(w)) {
    const Hparams& hp = hparams();
    const size_t C = hp.n_embd, F = hp.dim_ffn, H = hp.n_head, N = hp.head_size;
    const int64_t D = hp.lora_mix, Dd = hp.lora_decay;
    for (int l = 0; l < hp.n_layer; ++l) {
      auto n = [&](const char* s) { return Weights::layer(l, s); };
      Layer y;
      y.maa_x = vector(n("time_mix_lerp_x.weight"), C);
      y.maa = tensor(n("time_mix_lerp_fused.weight"), {5, int64_t(C)});  // rows w, k, v, r, g
      y.maa_w1 = matrix(n("time_mix_w1.weight"), 5 * D, C);
      y.maa_w2 = tensor(n("time_mix_w2.weight"), {5, int64_t(C), D});
      y.decay = vector(n("time_mix_decay.weight"), C);
      y.decay_w1 = matrix(n("time_mix_decay_w1.weight"), Dd, C);
      y.decay_w2 = matrix(n("time_mix_decay_w2.weight"), C, Dd);
      y.u = tensor(n("time_mix_first.weight"), {int64_t(H), int64_t(N)});
      y.Wr = matrix(n("time_mix_receptance.weight"), C, C);
      y.Wk = matrix(n("time_mix_key.weight"), C, C);
      y.Wv = matrix(n("time_mix_value.weight"), C, C);
      y.Wg = matrix(n("time_mix_gate.weight"), C, C);
      y.Wo = matrix(n("time_mix_output.weight"), C, C);
      y.ln_x_w = vector(n("time_mix_ln.weight"), C);
      y.ln_x_b = vector(n("time_mix_ln.bias"), C);
      y.ffn = {matrix(n("channel_mix_key.weight"), F, C), matrix(n("channel_mix_value.weight"), C, F),
               matrix(n("channel_mix_receptance.weight"), C, C),
               vector(n("channel_mix_lerp_k.weight"), C), vector(n("channel_mix_lerp_r.weight"), C), true};
      layers_.push_back(y);
    }
  }

 private:
  struct Layer {
    const float *maa_x, *maa, *maa_w2, *decay, *u, *ln_x_w, *ln_x_b;
    cpu::Matrix maa_w1, decay_w1, decay_w2, Wr, Wk, Wv, Wg, Wo;
    GatedFfn ffn;
  };

  void time_mix(int l, const float* z, size_t T, Runs runs, Scratch&, float* out) const override {
    const Layer& y = layers_[l];
    const Hparams& hp = hparams();
    const size_t C = hp.n_embd, H = hp.n_head, N = hp.head_size, D = hp.lora_mix, Dd = hp.lora_decay;
    auto prev = token_shift(z, C, runs, l, Shift::Att);
    Floats xx(T * C), m(T * 5 * D);
    mix7(z, prev.data(), y.maa_x, T, C, xx.data());
    cpu::matmul(xx.data(), T, y.maa_w1, m.data());
    cpu::activate(cpu::Act::Tanh, m.data(), nullptr, T, 5 * D, m.data());
    // Five branches in the LoRA's chunk order w, k, v, r, g: x_j = z + dx⊙(maa_j + m_j).
    Floats parts[5], ms[5], xs[5];
    cpu::Matrix w2[5];
    for (size_t j = 0; j < 5; ++j) {
      parts[j] = Floats(T * D), ms[j] = Floats(T * C), xs[j] = Floats(T * C);
      for (size_t t = 0; t < T; ++t) std::memcpy(&parts[j][t * D], &m[t * 5 * D + j * D], D * sizeof(float));
      w2[j] = {DType::F32, y.maa_w2 + j * C * D, C, D};
    }
    cpu::matmuls(T, {{parts[0].data(), &w2[0], ms[0].data()},
                     {parts[1].data(), &w2[1], ms[1].data()},
                     {parts[2].data(), &w2[2], ms[2].data()},
                     {parts[3].data(), &w2[3], ms[3].data()},
                     {parts[4].data(), &w2[4], ms[4].data()}});
    for (size_t j = 0; j < 5; ++j)
      for (size_t t = 0; t < T; ++t)
        for (size_t c = 0; c < C; ++c) {
          const size_t i = t * C + c;
          xs[j][i] = z[i] + (prev[i] - z[i]) * (y.maa[j * C + c] + ms[j][i]);
        }
    const auto &xw = xs[0], &xk = xs[1], &xv = xs[2], &xr = xs[3], &xg = xs[4];
    // The decay's first low-rank product and r, k, v, g in one round; then the decay per
    // channel and token: w = exp(−exp(d + tanh(xw·W1)·W2)), in float32.
    Floats dl(T * Dd), w(T * C), r(T * C), k(T * C), v(T * C), g(T * C), wkv(T * C);
    cpu::matmuls(T, {{xw.data(), &y.decay_w1, dl.data()},
                     {xr.data(), &y.Wr, r.data()},
                     {xk.data(), &y.Wk, k.data()},
                     {xv.data(), &y.Wv, v.data()},
                     {xg.data(), &y.Wg, g.data()}});
    cpu::activate(cpu::Act::Tanh, dl.data(), nullptr, T, Dd, dl.data());
    cpu::matmul(dl.data(), T, y.decay_w2, w.data());
    cpu::activate(cpu::Act::DecayRwkv6, w.data(), y.decay, T, C, w.data());
    cpu::wkv5_runs(wkv_scans(runs, l), H, N, r.data(), k.data(), v.data(), w.data(), C, y.u, wkv.data());
    cpu::group_norm(wkv.data(), T, H, N, y.ln_x_w, y.ln_x_b, hp.group_norm_eps, wkv.data());
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

std::unique_ptr<Model> make_rwkv6(Weights w) { return std::make_unique<Rwkv6>(std::move(w)); }

}  // namespace rwkv
