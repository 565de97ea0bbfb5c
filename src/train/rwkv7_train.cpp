// RWKV-7 "Goose" in training (spec §3.2–3.4): the time mix and channel mix of one layer over
// a batch, keeping their activations, and their backward (spec §3.8, §3.9). Same function
// as model/rwkv7.cpp, which the loss test holds it to.
#include <cmath>

#include "train/train_model.hpp"
#include "train/wkv_train.hpp"

namespace rwkv::train {

namespace {

// ω = exp(−e^{−1/2}·σ(zw)) (spec §3.2).
constexpr double kDecayScale = 0.60653065971263342;

enum class Activation { None, Tanh, Sigmoid };

// The low-rank paths: h = act(x·W1ᵀ) (R×D, kept), y = h·W2ᵀ (R×C).
template <typename F>
void lora_forward(const F* x, size_t R, size_t C, size_t D, const Parameter<F>& W1, const Parameter<F>& W2,
                  Activation act, RecycledVector<F>& h, F* y) {
  h.resize(R * D);
  linear(x, R, W1.value.data(), D, C, h.data());
  if (act == Activation::Tanh)
    for (F& v : h) v = std::tanh(v);
  if (act == Activation::Sigmoid)
    for (F& v : h) v = sigmoid(v);
  linear(h.data(), R, W2.value.data(), C, D, y);
}

// Backward of lora_forward given dy: adds into W1.grad, W2.grad and dx.
template <typename F>
void lora_backward(const F* x, size_t R, size_t C, size_t D, Parameter<F>& W1, Parameter<F>& W2, Activation act,
                   const RecycledVector<F>& h, const F* dy, F* dx) {
  RecycledVector<F> dh(R * D, F(0));
  linear_backward(h.data(), W2.value.data(), dy, R, C, D, dh.data(), W2.grad.data());
  for (size_t i = 0; i < R * D; ++i) {
    if (act == Activation::Tanh) dh[i] *= F(1) - h[i] * h[i];
    if (act == Activation::Sigmoid) dh[i] *= h[i] * (F(1) - h[i]);
  }
  linear_backward(x, W1.value.data(), dh.data(), R, D, C, dx, W1.grad.data());
}

template <typename F>
class Rwkv7Train final : public TrainModel<F> {
  using Base = TrainModel<F>;
  using Base::B_;
  using Base::hp_;
  using Base::T_;

 public:
  explicit Rwkv7Train(const Weights& w) : Base(w) {
    const int64_t C = hp_.n_embd, F_ = hp_.dim_ffn;
    const int64_t Dw = hp_.lora_w, Da = hp_.lora_a, Dv = hp_.lora_v, Dg = hp_.lora_g;
    for (int l = 0; l < hp_.n_layer; ++l) {
      auto n = [&](const char* s) { return Weights::layer(l, s); };
      auto get = [&](const char* s, const std::vector<int64_t>& shape) { return &this->take(w, n(s), shape); };
      Layer y;
      y.mix = get("time_mix_lerp_fused.weight", {6, C});  // rows r, w, k, v, a, g
      y.w0 = get("time_mix_w0.weight", {C});
      y.w1 = get("time_mix_w1.weight", {Dw, C});
      y.w2 = get("time_mix_w2.weight", {C, Dw});
      y.a0 = get("time_mix_a0.weight", {C});
      y.a1 = get("time_mix_a1.weight", {Da, C});
      y.a2 = get("time_mix_a2.weight", {C, Da});
      if (l > 0) {  // layer 0 has no value residual; its v0/v1/v2 (if any) are not parameters
        y.v0 = get("time_mix_v0.weight", {C});
        y.v1 = get("time_mix_v1.weight", {Dv, C});
        y.v2 = get("time_mix_v2.weight", {C, Dv});
      }
      y.g1 = get("time_mix_g1.weight", {Dg, C});
      y.g2 = get("time_mix_g2.weight", {C, Dg});
      y.k_k = get("time_mix_k_k.weight", {C});
      y.k_a = get("time_mix_k_a.weight", {C});
      y.r_k = get("time_mix_r_k.weight", {C});
      y.Wr = get("time_mix_receptance.weight", {C, C});
      y.Wk = get("time_mix_key.weight", {C, C});
      y.Wv = get("time_mix_value.weight", {C, C});
      y.Wo = get("time_mix_output.weight", {C, C});
      y.ln_x_w = get("time_mix_ln.weight", {C});
      y.ln_x_b = get("time_mix_ln.bias", {C});
      y.ffn_x_k = get("channel_mix_lerp_k.weight", {C});
      y.ffn_Wk = get("channel_mix_key.weight", {F_, C});
      y.ffn_Wv = get("channel_mix_value.weight", {C, F_});
      layers_.push_back(y);
    }
    saved_.resize(hp_.n_layer);
  }

 private:
  struct Layer {
    Parameter<F> *mix, *w0, *w1, *w2, *a0, *a1, *a2, *v0 = nullptr, *v1 = nullptr, *v2 = nullptr, *g1, *g2, *k_k,
        *k_a, *r_k, *Wr, *Wk, *Wv, *Wo, *ln_x_w, *ln_x_b, *ffn_x_k, *ffn_Wk, *ffn_Wv;
  };
  // Activations of one layer (R×C unless noted).
  struct Saved {
    RecycledVector<F> z;               // time-mix input (ln1 output)
    RecycledVector<F> hw, ha, hv, hg;  // low-rank hidden values (R×D), after their activation
    RecycledVector<F> r, sw, w;        // receptance; σ(zw) and the decay ω
    RecycledVector<F> k0, v_raw;       // key and value projections
    RecycledVector<F> alpha, g, gate;  // in-context learning rate α, output gate, value-residual gate
    RecycledVector<F> k_norm;          // ‖k0⊙k_k‖ per head (R×H)
    RecycledVector<F> k, v, a, b;      // the WKV inputs: modified key, mixed value, a = −κ, b = κ⊙α
    Wkv7Saved<F> wkv;
    NormSaved<F> ln_x;
    RecycledVector<F> bonus, u;        // per-head Σ r⊙k⊙r_k (R×H); GroupNorm output plus bonus
    RecycledVector<F> z_ffn, ffn_h;    // channel-mix input; its key projection before relu² (R×F)
  };

  size_t rows() const { return B_ * T_; }

  // The six token-shift mixes of z (spec §3.2), xs[j·R·C …] for j = r, w, k, v, a, g.
  void mixes(const Layer& y, const F* z, const F* prev, RecycledVector<F>& xs) const {
    const size_t C = hp_.n_embd, RC = rows() * C;
    xs.resize(6 * RC);
    for (size_t j = 0; j < 6; ++j) mix7_forward(z, prev, &y.mix->value[j * C], rows(), C, &xs[j * RC]);
  }

  void time_mix_forward(int l, const F* z, F* out) override {
    const Layer& y = layers_[l];
    Saved& s = saved_[l];
    const size_t C = hp_.n_embd, H = hp_.n_head, N = hp_.head_size, R = rows(), RC = R * C;
    const size_t Dw = hp_.lora_w, Da = hp_.lora_a, Dv = hp_.lora_v, Dg = hp_.lora_g;
    s.z.assign(z, z + RC);
    RecycledVector<F> prev(RC), xs;
    shift_forward(z, B_, T_, C, prev.data());
    mixes(y, z, prev.data(), xs);
    const F *xr = &xs[0], *xw = &xs[RC], *xk = &xs[2 * RC], *xv = &xs[3 * RC], *xa = &xs[4 * RC], *xg = &xs[5 * RC];

    s.r.resize(RC);
    linear(xr, R, y.Wr->value.data(), C, C, s.r.data());
    s.sw.resize(RC);
    s.w.resize(RC);
    lora_forward(xw, R, C, Dw, *y.w1, *y.w2, Activation::Tanh, s.hw, s.sw.data());
    for (size_t i = 0; i < RC; ++i) {
      s.sw[i] = sigmoid(y.w0->value[i % C] + s.sw[i]);
      s.w[i] = std::exp(-F(kDecayScale) * s.sw[i]);
    }
    s.k0.resize(RC);
    s.v_raw.resize(RC);
    linear(xk, R, y.Wk->value.data(), C, C, s.k0.data());
    linear(xv, R, y.Wv->value.data(), C, C, s.v_raw.data());
    s.alpha.resize(RC);
    lora_forward(xa, R, C, Da, *y.a1, *y.a2, Activation::None, s.ha, s.alpha.data());
    for (size_t i = 0; i < RC; ++i) s.alpha[i] = sigmoid(y.a0->value[i % C] + s.alpha[i]);
    s.g.resize(RC);
    lora_forward(xg, R, C, Dg, *y.g1, *y.g2, Activation::Sigmoid, s.hg, s.g.data());

    // κ = l2n(k0⊙k_k) per head; the WKV takes a = −κ and b = κ⊙α.
    s.a.resize(RC);
    s.b.resize(RC);
    s.k_norm.resize(R * H);
    for (size_t i = 0; i < RC; ++i) s.a[i] = s.k0[i] * y.k_k->value[i % C];
    for (size_t row = 0; row < R; ++row)
      for (size_t h = 0; h < H; ++h) {
        F* p = &s.a[row * C + h * N];
        double ss = 0;
        for (size_t j = 0; j < N; ++j) ss += double(p[j]) * p[j];
        const F norm = std::max(F(std::sqrt(ss)), F(1e-12));
        s.k_norm[row * H + h] = norm;
        const F inv = F(1) / norm;
        for (size_t j = 0; j < N; ++j) p[j] *= inv;
      }
    s.k.resize(RC);
    for (size_t i = 0; i < RC; ++i) {
      s.k[i] = s.k0[i] * (F(1) + (s.alpha[i] - F(1)) * y.k_a->value[i % C]);
      s.b[i] = s.a[i] * s.alpha[i];
      s.a[i] = -s.a[i];
    }

    // Value residual: layer 0 remembers its values; later layers mix towards them.
    if (l == 0) {
      s.v = s.v_raw;
      v_first_ = s.v;
    } else {
      s.gate.resize(RC);
      lora_forward(xv, R, C, Dv, *y.v1, *y.v2, Activation::None, s.hv, s.gate.data());
      s.v.resize(RC);
      for (size_t i = 0; i < RC; ++i) {
        s.gate[i] = sigmoid(y.v0->value[i % C] + s.gate[i]);
        s.v[i] = s.v_raw[i] + (v_first_[i] - s.v_raw[i]) * s.gate[i];
      }
    }

    s.u.resize(RC);
    wkv7_forward(B_, T_, H, N, s.r.data(), s.w.data(), s.k.data(), s.v.data(), s.a.data(), s.b.data(), s.u.data(),
                 s.wkv);
    norm_forward(s.u.data(), R, H, N, y.ln_x_w->value.data(), y.ln_x_b->value.data(), F(hp_.group_norm_eps),
                 s.u.data(), s.ln_x);
    // Bonus: per head (Σ_j r_j k_j r_k[j])·v; then the output gate and projection.
    s.bonus.resize(R * H);
    RecycledVector<F> o(RC);
    for (size_t row = 0; row < R; ++row)
      for (size_t h = 0; h < H; ++h) {
        const size_t c0 = row * C + h * N;
        F dot = 0;
        for (size_t j = 0; j < N; ++j) dot += s.r[c0 + j] * s.k[c0 + j] * y.r_k->value[h * N + j];
        s.bonus[row * H + h] = dot;
        for (size_t j = 0; j < N; ++j) {
          s.u[c0 + j] += dot * s.v[c0 + j];
          o[c0 + j] = s.u[c0 + j] * s.g[c0 + j];
        }
      }
    linear(o.data(), R, y.Wo->value.data(), C, C, out);
  }

  void time_mix_backward(int l, const F* dout, F* dz) override {
    const Layer& y = layers_[l];
    const Saved& s = saved_[l];
    const size_t C = hp_.n_embd, H = hp_.n_head, N = hp_.head_size, R = rows(), RC = R * C;
    const size_t Dw = hp_.lora_w, Da = hp_.lora_a, Dv = hp_.lora_v, Dg = hp_.lora_g;
    if (l == hp_.n_layer - 1) dv_first_.assign(RC, F(0));  // the first layer of the backward

    // out = (u⊙g)·Woᵀ
    RecycledVector<F> o(RC), du(RC, F(0)), dg(RC);
    for (size_t i = 0; i < RC; ++i) o[i] = s.u[i] * s.g[i];
    linear_backward(o.data(), y.Wo->value.data(), dout, R, C, C, du.data(), y.Wo->grad.data());
    for (size_t i = 0; i < RC; ++i) {
      dg[i] = du[i] * s.u[i];
      du[i] *= s.g[i];
    }
    // u = GN(y) + bonus·v
    RecycledVector<F> dr(RC, F(0)), dk(RC, F(0)), dv(RC, F(0));
    for (size_t row = 0; row < R; ++row)
      for (size_t h = 0; h < H; ++h) {
        const size_t c0 = row * C + h * N;
        const F dot = s.bonus[row * H + h];
        F ddot = 0;
        for (size_t j = 0; j < N; ++j) {
          ddot += du[c0 + j] * s.v[c0 + j];
          dv[c0 + j] += du[c0 + j] * dot;
        }
        for (size_t j = 0; j < N; ++j) {
          const F rk = y.r_k->value[h * N + j];
          dr[c0 + j] += ddot * s.k[c0 + j] * rk;
          dk[c0 + j] += ddot * s.r[c0 + j] * rk;
          y.r_k->grad[h * N + j] += ddot * s.r[c0 + j] * s.k[c0 + j];
        }
      }
    RecycledVector<F> dy(RC, F(0));
    norm_backward(du.data(), R, H, N, y.ln_x_w->value.data(), s.ln_x, dy.data(), y.ln_x_w->grad.data(),
                  y.ln_x_b->grad.data());

    // The WKV.
    RecycledVector<F> dw(RC, F(0)), da(RC, F(0)), db(RC, F(0));
    wkv7_backward(B_, T_, H, N, s.r.data(), s.w.data(), s.k.data(), s.v.data(), s.a.data(), s.b.data(), s.wkv,
                  dy.data(), dr.data(), dw.data(), dk.data(), dv.data(), da.data(), db.data());

    // a = −κ, b = κ⊙α, k = k0⊙(1 + (α−1)⊙k_a); da becomes dκ, db becomes dα.
    RecycledVector<F> dk0(RC);
    for (size_t i = 0; i < RC; ++i) {
      const F kappa = -s.a[i], alpha = s.alpha[i], ka = y.k_a->value[i % C];
      const F dkappa = -da[i] + db[i] * alpha;
      F dalpha = db[i] * kappa + dk[i] * s.k0[i] * ka;
      y.k_a->grad[i % C] += dk[i] * s.k0[i] * (alpha - F(1));
      dk0[i] = dk[i] * (F(1) + (alpha - F(1)) * ka);
      da[i] = dkappa;
      db[i] = dalpha * alpha * (F(1) - alpha);  // through α = σ(a0 + …): now ∂L/∂za
    }
    // κ = l2n(k0⊙k_k) (spec §3.9)
    for (size_t row = 0; row < R; ++row)
      for (size_t h = 0; h < H; ++h) {
        const size_t c0 = row * C + h * N;
        const F norm = s.k_norm[row * H + h];
        F dot = 0;  // κ·dκ
        for (size_t j = 0; j < N; ++j) dot += -s.a[c0 + j] * da[c0 + j];
        for (size_t j = 0; j < N; ++j) {
          const size_t i = c0 + j;
          const F dkk = norm > F(1e-12) ? (da[i] + s.a[i] * dot) / norm : da[i] / F(1e-12);  // (dκ − κ(κ·dκ))/‖·‖
          dk0[i] += dkk * y.k_k->value[j + h * N];
          y.k_k->grad[j + h * N] += dkk * s.k0[i];
        }
      }

    // Recompute the mixes; gather the gradients of the six mixed inputs.
    RecycledVector<F> prev(RC), xs, dxs(6 * RC, F(0));
    shift_forward(s.z.data(), B_, T_, C, prev.data());
    mixes(y, s.z.data(), prev.data(), xs);
    const F *xr = &xs[0], *xw = &xs[RC], *xk = &xs[2 * RC], *xv = &xs[3 * RC], *xa = &xs[4 * RC], *xg = &xs[5 * RC];
    F *dxr = &dxs[0], *dxw = &dxs[RC], *dxk = &dxs[2 * RC], *dxv = &dxs[3 * RC], *dxa = &dxs[4 * RC],
      *dxg = &dxs[5 * RC];

    // Value residual: v = v_raw + (v_first − v_raw)⊙γ, γ = σ(v0 + (xv·v1ᵀ)·v2ᵀ).
    RecycledVector<F> dv_raw(RC);
    if (l == 0) {
      for (size_t i = 0; i < RC; ++i) dv_raw[i] = dv[i] + dv_first_[i];
    } else {
      RecycledVector<F> dgate(RC);
      for (size_t i = 0; i < RC; ++i) {
        const F gate = s.gate[i];
        dv_raw[i] = dv[i] * (F(1) - gate);
        dv_first_[i] += dv[i] * gate;
        dgate[i] = dv[i] * (v_first_[i] - s.v_raw[i]) * gate * (F(1) - gate);
        y.v0->grad[i % C] += dgate[i];
      }
      lora_backward(xv, R, C, Dv, *y.v1, *y.v2, Activation::None, s.hv, dgate.data(), dxv);
    }
    // α = σ(a0 + (xa·a1ᵀ)·a2ᵀ)
    for (size_t i = 0; i < RC; ++i) y.a0->grad[i % C] += db[i];
    lora_backward(xa, R, C, Da, *y.a1, *y.a2, Activation::None, s.ha, db.data(), dxa);
    // g = σ(xg·g1ᵀ)·g2ᵀ
    lora_backward(xg, R, C, Dg, *y.g1, *y.g2, Activation::Sigmoid, s.hg, dg.data(), dxg);
    // ω = exp(−c·σ(zw)), zw = w0 + tanh(xw·w1ᵀ)·w2ᵀ: dzw = dω·ω·(−c)·σ(1−σ) (spec §3.8 step 7)
    for (size_t i = 0; i < RC; ++i) {
      dw[i] *= s.w[i] * -F(kDecayScale) * s.sw[i] * (F(1) - s.sw[i]);
      y.w0->grad[i % C] += dw[i];
    }
    lora_backward(xw, R, C, Dw, *y.w1, *y.w2, Activation::Tanh, s.hw, dw.data(), dxw);
    linear_backward(xr, y.Wr->value.data(), dr.data(), R, C, C, dxr, y.Wr->grad.data());
    linear_backward(xk, y.Wk->value.data(), dk0.data(), R, C, C, dxk, y.Wk->grad.data());
    linear_backward(xv, y.Wv->value.data(), dv_raw.data(), R, C, C, dxv, y.Wv->grad.data());

    RecycledVector<F> dprev(RC, F(0));
    for (size_t j = 0; j < 6; ++j)
      mix7_backward(s.z.data(), prev.data(), &y.mix->value[j * C], &dxs[j * RC], R, C, dz, dprev.data(),
                    &y.mix->grad[j * C]);
    shift_backward(dprev.data(), B_, T_, C, dz);
  }

  // spec §3.4: out = relu²(xk·Wkᵀ)·Wvᵀ, no receptance gate.
  void channel_mix_forward(int l, const F* z, F* out) override {
    const Layer& y = layers_[l];
    Saved& s = saved_[l];
    const size_t C = hp_.n_embd, Fd = hp_.dim_ffn, R = rows();
    s.z_ffn.assign(z, z + R * C);
    RecycledVector<F> prev(R * C), xk(R * C), hr(R * Fd);
    shift_forward(z, B_, T_, C, prev.data());
    mix7_forward(z, prev.data(), y.ffn_x_k->value.data(), R, C, xk.data());
    s.ffn_h.resize(R * Fd);
    linear(xk.data(), R, y.ffn_Wk->value.data(), Fd, C, s.ffn_h.data());
    for (size_t i = 0; i < R * Fd; ++i) hr[i] = s.ffn_h[i] > 0 ? s.ffn_h[i] * s.ffn_h[i] : F(0);
    linear(hr.data(), R, y.ffn_Wv->value.data(), C, Fd, out);
  }

  void channel_mix_backward(int l, const F* dout, F* dz) override {
    const Layer& y = layers_[l];
    const Saved& s = saved_[l];
    const size_t C = hp_.n_embd, Fd = hp_.dim_ffn, R = rows();
    RecycledVector<F> prev(R * C), xk(R * C), hr(R * Fd), dh(R * Fd, F(0)), dxk(R * C, F(0)), dprev(R * C, F(0));
    shift_forward(s.z_ffn.data(), B_, T_, C, prev.data());
    mix7_forward(s.z_ffn.data(), prev.data(), y.ffn_x_k->value.data(), R, C, xk.data());
    for (size_t i = 0; i < R * Fd; ++i) hr[i] = s.ffn_h[i] > 0 ? s.ffn_h[i] * s.ffn_h[i] : F(0);
    linear_backward(hr.data(), y.ffn_Wv->value.data(), dout, R, C, Fd, dh.data(), y.ffn_Wv->grad.data());
    for (size_t i = 0; i < R * Fd; ++i) dh[i] *= s.ffn_h[i] > 0 ? F(2) * s.ffn_h[i] : F(0);
    linear_backward(xk.data(), y.ffn_Wk->value.data(), dh.data(), R, Fd, C, dxk.data(), y.ffn_Wk->grad.data());
    mix7_backward(s.z_ffn.data(), prev.data(), y.ffn_x_k->value.data(), dxk.data(), R, C, dz, dprev.data(),
                  y.ffn_x_k->grad.data());
    shift_backward(dprev.data(), B_, T_, C, dz);
  }

  std::vector<Layer> layers_;
  std::vector<Saved> saved_;
  RecycledVector<F> v_first_, dv_first_;  // layer 0's values and their gradient from later layers
};

}  // namespace

template <typename F>
std::unique_ptr<TrainModel<F>> make_rwkv7_train(const Weights& w) {
  return std::make_unique<Rwkv7Train<F>>(w);
}

template std::unique_ptr<TrainModel<float>> make_rwkv7_train(const Weights&);
template std::unique_ptr<TrainModel<double>> make_rwkv7_train(const Weights&);

}  // namespace rwkv::train
