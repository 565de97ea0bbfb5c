// RWKV-4 (arXiv 2305.13048; spec §2): time mix with the channel-wise WKV, channel mix with
// a receptance gate. Token-shift weights weigh the *current* token (spec §1.2).
#include <cmath>

#include "kernels/cpu/ops.hpp"
#include "kernels/cpu/wkv.hpp"
#include "model/blocks.hpp"
#include "model/model.hpp"

namespace rwkv {
namespace {

class Rwkv4 final : public Model {
 public:
  explicit Rwkv4(Weights w) : Model(std::move(w)) {
    const Hparams& hp = hparams();
    const size_t C = hp.n_embd, A = hp.dim_att, F = hp.dim_ffn;
    for (int l = 0; l < hp.n_layer; ++l) {
      auto n = [&](const char* s) { return Weights::layer(l, s); };
      Layer y;
      y.mix_k = vector(n("time_mix_lerp_k.weight"), C);
      y.mix_v = vector(n("time_mix_lerp_v.weight"), C);
      y.mix_r = vector(n("time_mix_lerp_r.weight"), C);
      const float* d = vector(n("time_mix_decay.weight"), A);
      y.w.resize(A);
      for (size_t i = 0; i < A; ++i) y.w[i] = -std::exp(d[i]);  // spec §2.8: w = −exp(d) once
      y.u = vector(n("time_mix_first_log.weight"), A);
      y.Wk = matrix(n("time_mix_key.weight"), A, C);
      y.Wv = matrix(n("time_mix_value.weight"), A, C);
      y.Wr = matrix(n("time_mix_receptance.weight"), A, C);
      y.Wo = matrix(n("time_mix_output.weight"), C, A);
      y.ffn = {matrix(n("channel_mix_key.weight"), F, C), matrix(n("channel_mix_value.weight"), C, F),
               matrix(n("channel_mix_receptance.weight"), C, C),
               vector(n("channel_mix_lerp_k.weight"), C), vector(n("channel_mix_lerp_r.weight"), C), false};
      layers_.push_back(std::move(y));
    }
  }

 private:
  struct Layer {
    const float *mix_k, *mix_v, *mix_r, *u;
    cpu::Matrix Wk, Wv, Wr, Wo;
    std::vector<float> w;
    GatedFfn ffn;
  };

  // spec §2.2
  void time_mix(int l, const float* z, size_t T, Runs runs, Scratch&, float* out) const override {
    const Layer& y = layers_[l];
    const size_t C = hparams().n_embd, A = hparams().dim_att;
    auto prev = token_shift(z, C, runs, l, Shift::Att);
    Floats xk(T * C), xv(T * C), xr(T * C), k(T * A), v(T * A), r(T * A), wkv(T * A);
    mix4(z, prev.data(), y.mix_k, T, C, xk.data());
    mix4(z, prev.data(), y.mix_v, T, C, xv.data());
    mix4(z, prev.data(), y.mix_r, T, C, xr.data());
    cpu::matmuls(T, {{xk.data(), &y.Wk, k.data()}, {xv.data(), &y.Wv, v.data()}, {xr.data(), &y.Wr, r.data()}});
    for (const Run& run : runs) {  // the scan continues each run's own state
      float* st = run.state->wkv(l);
      const size_t o = run.begin * A;
      cpu::wkv4(run.count, A, &k[o], &v[o], y.w.data(), y.u, st, st + A, st + 2 * A, &wkv[o]);
    }
    cpu::activate(cpu::Act::Sigmoid, r.data(), nullptr, T, A, r.data());
    for (size_t i = 0; i < T * A; ++i) wkv[i] *= r[i];
    cpu::matmul(wkv.data(), T, y.Wo, out);
  }

  // spec §2.4
  void channel_mix(int l, const float* z, size_t T, Runs runs, float* out) const override {
    const Layer& y = layers_[l];
    const size_t C = hparams().n_embd, F = hparams().dim_ffn;
    const auto prev = token_shift(z, C, runs, l, Shift::Ffn);
    gated_channel_mix(y.ffn, z, prev.data(), T, C, F, out);
  }

  std::vector<Layer> layers_;
};

}  // namespace

std::unique_ptr<Model> make_rwkv4(Weights w) { return std::make_unique<Rwkv4>(std::move(w)); }

}  // namespace rwkv
