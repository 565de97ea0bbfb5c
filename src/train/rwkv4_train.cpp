// RWKV-4 in training (spec §2.2–2.4): the time mix and the receptance-gated channel mix of one
// layer over a batch, keeping their activations, and their backward (spec §2.7, §3.9). Same
// function as model/rwkv4.cpp, which the loss test holds it to.
#include <cmath>

#include "train/train_model.hpp"
#include "train/wkv_train.hpp"

namespace rwkv::train {

namespace {

template <typename F>
class Rwkv4Train final : public TrainModel<F> {
  using Base = TrainModel<F>;
  using Base::B_;
  using Base::hp_;
  using Base::T_;

 public:
  explicit Rwkv4Train(const Weights& w) : Base(w) {
    const int64_t C = hp_.n_embd, A = hp_.dim_att, F_ = hp_.dim_ffn;
    for (int l = 0; l < hp_.n_layer; ++l) {
      auto n = [&](const char* s) { return Weights::layer(l, s); };
      auto get = [&](const char* s, const std::vector<int64_t>& shape) { return &this->take(w, n(s), shape); };
      Layer y;
      y.mix_k = get("time_mix_lerp_k.weight", {C});
      y.mix_v = get("time_mix_lerp_v.weight", {C});
      y.mix_r = get("time_mix_lerp_r.weight", {C});
      y.decay = get("time_mix_decay.weight", {A});      // d; the per-step exponent is w = −exp(d)
      y.first = get("time_mix_first_log.weight", {A});  // u, raw (weights.hpp: no transforms)
      y.Wk = get("time_mix_key.weight", {A, C});
      y.Wv = get("time_mix_value.weight", {A, C});
      y.Wr = get("time_mix_receptance.weight", {A, C});
      y.Wo = get("time_mix_output.weight", {C, A});
      y.ffn_mix_k = get("channel_mix_lerp_k.weight", {C});
      y.ffn_mix_r = get("channel_mix_lerp_r.weight", {C});
      y.ffn_Wk = get("channel_mix_key.weight", {F_, C});
      y.ffn_Wv = get("channel_mix_value.weight", {C, F_});
      y.ffn_Wr = get("channel_mix_receptance.weight", {C, C});
      layers_.push_back(y);
    }
    saved_.resize(hp_.n_layer);
  }

 private:
  struct Layer {
    Parameter<F> *mix_k, *mix_v, *mix_r, *decay, *first, *Wk, *Wv, *Wr, *Wo;
    Parameter<F> *ffn_mix_k, *ffn_mix_r, *ffn_Wk, *ffn_Wv, *ffn_Wr;
  };
  struct Saved {
    RecycledVector<F> z, w, k, v, r, y;     // time mix: input, −exp(d) (A), k, v, σ(receptance), WKV output
    RecycledVector<F> z_ffn, h, kv, r_ffn;  // channel mix: input, key projection (R×F), value, σ(receptance)
  };

  size_t rows() const { return B_ * T_; }

  // spec §2.2
  void time_mix_forward(int l, const F* z, F* out) override {
    const Layer& y = layers_[l];
    Saved& s = saved_[l];
    const size_t C = hp_.n_embd, A = hp_.dim_att, R = rows();
    s.z.assign(z, z + R * C);
    RecycledVector<F> prev(R * C), xk(R * C), xv(R * C), xr(R * C), o(R * A);
    shift_forward(z, B_, T_, C, prev.data());
    mix4_forward(z, prev.data(), y.mix_k->value.data(), R, C, xk.data());
    mix4_forward(z, prev.data(), y.mix_v->value.data(), R, C, xv.data());
    mix4_forward(z, prev.data(), y.mix_r->value.data(), R, C, xr.data());
    s.k.resize(R * A);
    s.v.resize(R * A);
    s.r.resize(R * A);
    s.y.resize(R * A);
    linear(xk.data(), R, y.Wk->value.data(), A, C, s.k.data());
    linear(xv.data(), R, y.Wv->value.data(), A, C, s.v.data());
    linear(xr.data(), R, y.Wr->value.data(), A, C, s.r.data());
    for (F& x : s.r) x = sigmoid(x);
    s.w.resize(A);
    for (size_t c = 0; c < A; ++c) s.w[c] = -std::exp(y.decay->value[c]);
    wkv4_forward(B_, T_, A, s.k.data(), s.v.data(), s.w.data(), y.first->value.data(), s.y.data());
    for (size_t i = 0; i < R * A; ++i) o[i] = s.y[i] * s.r[i];
    linear(o.data(), R, y.Wo->value.data(), C, A, out);
  }

  void time_mix_backward(int l, const F* dout, F* dz) override {
    const Layer& y = layers_[l];
    const Saved& s = saved_[l];
    const size_t C = hp_.n_embd, A = hp_.dim_att, R = rows();
    // out = (σ(r)⊙wkv)·Woᵀ
    RecycledVector<F> o(R * A), d_o(R * A, F(0)), dy(R * A), dr(R * A);
    for (size_t i = 0; i < R * A; ++i) o[i] = s.y[i] * s.r[i];
    linear_backward(o.data(), y.Wo->value.data(), dout, R, C, A, d_o.data(), y.Wo->grad.data());
    for (size_t i = 0; i < R * A; ++i) {
      dy[i] = d_o[i] * s.r[i];
      dr[i] = d_o[i] * s.y[i] * s.r[i] * (F(1) - s.r[i]);
    }
    RecycledVector<F> dk(R * A, F(0)), dv(R * A, F(0)), dw(A, F(0));
    wkv4_backward(B_, T_, A, s.k.data(), s.v.data(), s.w.data(), y.first->value.data(), s.y.data(), dy.data(),
                  dk.data(), dv.data(), dw.data(), y.first->grad.data());
    for (size_t c = 0; c < A; ++c) y.decay->grad[c] += dw[c] * s.w[c];  // dw/dd = −exp(d) = w

    RecycledVector<F> prev(R * C), xk(R * C), xv(R * C), xr(R * C);
    shift_forward(s.z.data(), B_, T_, C, prev.data());
    mix4_forward(s.z.data(), prev.data(), y.mix_k->value.data(), R, C, xk.data());
    mix4_forward(s.z.data(), prev.data(), y.mix_v->value.data(), R, C, xv.data());
    mix4_forward(s.z.data(), prev.data(), y.mix_r->value.data(), R, C, xr.data());
    RecycledVector<F> dxk(R * C, F(0)), dxv(R * C, F(0)), dxr(R * C, F(0)), dprev(R * C, F(0));
    linear_backward(xk.data(), y.Wk->value.data(), dk.data(), R, A, C, dxk.data(), y.Wk->grad.data());
    linear_backward(xv.data(), y.Wv->value.data(), dv.data(), R, A, C, dxv.data(), y.Wv->grad.data());
    linear_backward(xr.data(), y.Wr->value.data(), dr.data(), R, A, C, dxr.data(), y.Wr->grad.data());
    mix4_backward(s.z.data(), prev.data(), y.mix_k->value.data(), dxk.data(), R, C, dz, dprev.data(),
                  y.mix_k->grad.data());
    mix4_backward(s.z.data(), prev.data(), y.mix_v->value.data(), dxv.data(), R, C, dz, dprev.data(),
                  y.mix_v->grad.data());
    mix4_backward(s.z.data(), prev.data(), y.mix_r->value.data(), dxr.data(), R, C, dz, dprev.data(),
                  y.mix_r->grad.data());
    shift_backward(dprev.data(), B_, T_, C, dz);
  }

  // spec §2.4: out = σ(xr·W'_rᵀ) ⊙ (relu²(xk·W'_kᵀ)·W'_vᵀ)
  void channel_mix_forward(int l, const F* z, F* out) override {
    const Layer& y = layers_[l];
    Saved& s = saved_[l];
    const size_t C = hp_.n_embd, Fd = hp_.dim_ffn, R = rows();
    s.z_ffn.assign(z, z + R * C);
    RecycledVector<F> prev(R * C), xk(R * C), xr(R * C), hr(R * Fd);
    shift_forward(z, B_, T_, C, prev.data());
    mix4_forward(z, prev.data(), y.ffn_mix_k->value.data(), R, C, xk.data());
    mix4_forward(z, prev.data(), y.ffn_mix_r->value.data(), R, C, xr.data());
    s.h.resize(R * Fd);
    linear(xk.data(), R, y.ffn_Wk->value.data(), Fd, C, s.h.data());
    for (size_t i = 0; i < R * Fd; ++i) hr[i] = s.h[i] > 0 ? s.h[i] * s.h[i] : F(0);
    s.r_ffn.resize(R * C);
    s.kv.resize(R * C);
    linear(xr.data(), R, y.ffn_Wr->value.data(), C, C, s.r_ffn.data());
    for (F& x : s.r_ffn) x = sigmoid(x);
    linear(hr.data(), R, y.ffn_Wv->value.data(), C, Fd, s.kv.data());
    for (size_t i = 0; i < R * C; ++i) out[i] = s.kv[i] * s.r_ffn[i];
  }

  void channel_mix_backward(int l, const F* dout, F* dz) override {
    const Layer& y = layers_[l];
    const Saved& s = saved_[l];
    const size_t C = hp_.n_embd, Fd = hp_.dim_ffn, R = rows();
    RecycledVector<F> prev(R * C), xk(R * C), xr(R * C), hr(R * Fd);
    shift_forward(s.z_ffn.data(), B_, T_, C, prev.data());
    mix4_forward(s.z_ffn.data(), prev.data(), y.ffn_mix_k->value.data(), R, C, xk.data());
    mix4_forward(s.z_ffn.data(), prev.data(), y.ffn_mix_r->value.data(), R, C, xr.data());
    for (size_t i = 0; i < R * Fd; ++i) hr[i] = s.h[i] > 0 ? s.h[i] * s.h[i] : F(0);
    RecycledVector<F> dkv(R * C), dr(R * C);
    for (size_t i = 0; i < R * C; ++i) {
      dkv[i] = dout[i] * s.r_ffn[i];
      dr[i] = dout[i] * s.kv[i] * s.r_ffn[i] * (F(1) - s.r_ffn[i]);
    }
    RecycledVector<F> dh(R * Fd, F(0)), dxk(R * C, F(0)), dxr(R * C, F(0)), dprev(R * C, F(0));
    linear_backward(hr.data(), y.ffn_Wv->value.data(), dkv.data(), R, C, Fd, dh.data(), y.ffn_Wv->grad.data());
    for (size_t i = 0; i < R * Fd; ++i) dh[i] *= s.h[i] > 0 ? F(2) * s.h[i] : F(0);
    linear_backward(xk.data(), y.ffn_Wk->value.data(), dh.data(), R, Fd, C, dxk.data(), y.ffn_Wk->grad.data());
    linear_backward(xr.data(), y.ffn_Wr->value.data(), dr.data(), R, C, C, dxr.data(), y.ffn_Wr->grad.data());
    mix4_backward(s.z_ffn.data(), prev.data(), y.ffn_mix_k->value.data(), dxk.data(), R, C, dz, dprev.data(),
                  y.ffn_mix_k->grad.data());
    mix4_backward(s.z_ffn.data(), prev.data(), y.ffn_mix_r->value.data(), dxr.data(), R, C, dz, dprev.data(),
                  y.ffn_mix_r->grad.data());
    shift_backward(dprev.data(), B_, T_, C, dz);
  }

  std::vector<Layer> layers_;
  std::vector<Saved> saved_;
};

}  // namespace

template <typename F>
std::unique_ptr<TrainModel<F>> make_rwkv4_train(const Weights& w) {
  return std::make_unique<Rwkv4Train<F>>(w);
}

template std::unique_ptr<TrainModel<float>> make_rwkv4_train(const Weights&);
template std::unique_ptr<TrainModel<double>> make_rwkv4_train(const Weights&);

}  // namespace rwkv::train
