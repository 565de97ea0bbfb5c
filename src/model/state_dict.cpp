// Canonical → official state dict (RWKV-4 spec §2.1, RWKV-7 spec §3.1).
#include "model/state_dict.hpp"

#include <cstring>

#include "io/error.hpp"
#include "io/pth_writer.hpp"

namespace rwkv {

namespace {

class OfficialBuilder {
 public:
  OfficialBuilder(const Weights& w, DType type) : w_(w), type_(type) {}

  // Canonical `from` as `to` with `shape` (same number of values).
  void add(const std::string& to, const std::string& from, std::vector<int64_t> shape) {
    add_values(to, std::move(shape), w_.get(from).to_f32(), from);
  }
  // The same, with the two dimensions of a matrix swapped.
  void add_transposed(const std::string& to, const std::string& from) {
    const Tensor& t = w_.get(from);
    if (t.shape.size() != 2) fail(w_.path, ": tensor ", from, " has shape ", t.shape_string(), ", expected a matrix");
    const size_t rows = size_t(t.shape[0]), cols = size_t(t.shape[1]);
    const std::vector<float> v = t.to_f32();
    std::vector<float> out(v.size());
    for (size_t r = 0; r < rows; ++r)
      for (size_t c = 0; c < cols; ++c) out[c * rows + r] = v[r * cols + c];
    add_values(to, {t.shape[1], t.shape[0]}, std::move(out), from);
  }
  void add_zeros(const std::string& to, std::vector<int64_t> shape) {
    size_t n = 1;
    for (int64_t d : shape) n *= size_t(d);
    add_values(to, std::move(shape), std::vector<float>(n, 0.0f), to);
  }
  std::vector<Tensor> take() { return std::move(out_); }

  void add_values(const std::string& to, std::vector<int64_t> shape, std::vector<float> v, const std::string& from) {
    size_t n = 1;
    for (int64_t d : shape) n *= size_t(d);
    if (n != v.size()) fail(w_.path, ": tensor ", from, " has ", v.size(), " values, expected ", n, " for ", to);
    if (type_ == DType::F32) {
      out_.push_back(make_f32_tensor(to, std::move(shape), std::move(v)));
      return;
    }
    std::vector<uint8_t> bytes(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
      const uint16_t h = type_ == DType::F16 ? fp32_to_fp16(v[i]) : fp32_to_bf16(v[i]);
      std::memcpy(&bytes[2 * i], &h, 2);
    }
    out_.push_back(make_owned_tensor(to, type_, std::move(shape), std::move(bytes)));
  }

 private:

  const Weights& w_;
  DType type_;
  std::vector<Tensor> out_;
};

}  // namespace

std::vector<Tensor> official_state_dict(const Weights& w, DType type) {
  if (type != DType::F32 && type != DType::F16 && type != DType::BF16)
    fail("a .pth export is F32, F16 or BF16, not ", dtype_name(type));
  if (w.hp.arch != Arch::RWKV4 && w.hp.arch != Arch::RWKV7)
    fail(w.path, ": .pth export supports RWKV-4 and RWKV-7, not RWKV-", w.hp.version_name());
  if (w.hp.has_head_bias || w.hp.has_att_output_bias)
    fail(w.path, ": head or attention-output biases have no place in the official state dict");
  const Hparams& hp = w.hp;
  const int64_t C = hp.n_embd, H = hp.n_head, N = hp.head_size;
  const std::vector<int64_t> vec = {C}, mix = {1, 1, C};
  OfficialBuilder b(w, type);
  b.add("emb.weight", "token_embd.weight", w.get("token_embd.weight").shape);
  for (int l = 0; l < hp.n_layer; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    auto L = [&](const std::string& s) { return Weights::layer(l, s); };
    if (l == 0 && hp.has_ln0) {
      b.add(p + "ln0.weight", "token_embd_norm.weight", vec);
      b.add(p + "ln0.bias", "token_embd_norm.bias", vec);
    }
    b.add(p + "ln1.weight", L("attn_norm.weight"), vec);
    b.add(p + "ln1.bias", L("attn_norm.bias"), vec);
    b.add(p + "ln2.weight", L("attn_norm_2.weight"), vec);
    b.add(p + "ln2.bias", L("attn_norm_2.bias"), vec);
    auto linear = [&](const std::string& to, const std::string& from) {
      b.add(p + to, L(from), w.get(L(from)).shape);
    };
    if (hp.arch == Arch::RWKV4) {
      const int64_t A = hp.dim_att;
      b.add(p + "att.time_decay", L("time_mix_decay.weight"), {A});
      b.add(p + "att.time_first", L("time_mix_first_log.weight"), {A});
      for (const char* m : {"k", "v", "r"}) b.add(p + "att.time_mix_" + m, L(std::string("time_mix_lerp_") + m + ".weight"), mix);
      for (const char* m : {"key", "value", "receptance", "output"})
        linear(std::string("att.") + m + ".weight", std::string("time_mix_") + m + ".weight");
      for (const char* m : {"k", "r"}) b.add(p + "ffn.time_mix_" + m, L(std::string("channel_mix_lerp_") + m + ".weight"), mix);
      for (const char* m : {"key", "receptance", "value"})
        linear(std::string("ffn.") + m + ".weight", std::string("channel_mix_") + m + ".weight");
      continue;
    }
    // RWKV-7: the fused token-shift rows r, w, k, v, a, g (formats.md §2.4).
    const std::vector<float> lerp = w.get(L("time_mix_lerp_fused.weight")).to_f32();
    if (lerp.size() != size_t(6 * C)) fail(w.path, ": tensor ", L("time_mix_lerp_fused.weight"), " does not hold 6 x ", C, " values");
    const char* rows = "rwkvag";
    for (int j = 0; j < 6; ++j)
      b.add_values(p + "att.x_" + rows[j], mix, std::vector<float>(lerp.begin() + j * C, lerp.begin() + (j + 1) * C),
                   L("time_mix_lerp_fused.weight"));
    b.add(p + "att.w0", L("time_mix_w0.weight"), mix);
    b.add_transposed(p + "att.w1", L("time_mix_w1.weight"));
    b.add_transposed(p + "att.w2", L("time_mix_w2.weight"));
    b.add(p + "att.a0", L("time_mix_a0.weight"), mix);
    b.add_transposed(p + "att.a1", L("time_mix_a1.weight"));
    b.add_transposed(p + "att.a2", L("time_mix_a2.weight"));
    if (l > 0) {
      b.add(p + "att.v0", L("time_mix_v0.weight"), mix);
      b.add_transposed(p + "att.v1", L("time_mix_v1.weight"));
      b.add_transposed(p + "att.v2", L("time_mix_v2.weight"));
    } else {
      const int64_t Dv = hp.lora_v > 0 ? hp.lora_v : hp.lora_a;
      b.add_zeros(p + "att.v0", mix);
      b.add_zeros(p + "att.v1", {C, Dv});
      b.add_zeros(p + "att.v2", {Dv, C});
    }
    b.add_transposed(p + "att.g1", L("time_mix_g1.weight"));
    b.add_transposed(p + "att.g2", L("time_mix_g2.weight"));
    b.add(p + "att.k_k", L("time_mix_k_k.weight"), mix);
    b.add(p + "att.k_a", L("time_mix_k_a.weight"), mix);
    b.add(p + "att.r_k", L("time_mix_r_k.weight"), {H, N});
    for (const char* m : {"receptance", "key", "value", "output"})
      linear(std::string("att.") + m + ".weight", std::string("time_mix_") + m + ".weight");
    b.add(p + "att.ln_x.weight", L("time_mix_ln.weight"), vec);
    b.add(p + "att.ln_x.bias", L("time_mix_ln.bias"), vec);
    b.add(p + "ffn.x_k", L("channel_mix_lerp_k.weight"), mix);
    linear("ffn.key.weight", "channel_mix_key.weight");
    linear("ffn.value.weight", "channel_mix_value.weight");
  }
  b.add("ln_out.weight", "output_norm.weight", vec);
  b.add("ln_out.bias", "output_norm.bias", vec);
  b.add("head.weight", "output.weight", w.get("output.weight").shape);
  return b.take();
}

void save_pth(const Weights& w, const std::string& path, DType type) { write_pth(path, official_state_dict(w, type)); }

}  // namespace rwkv
