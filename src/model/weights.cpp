// Conversion of official state dicts (`.pth`, rwkv.cpp `.bin`) to the canonical tensor form,
// version detection (spec §4.3, rwkv-spec-v5-v6.md §2) and size inference.
#include "model/weights.hpp"

#include <cmath>
#include <cstring>
#include <functional>
#include <regex>
#include <set>

#include "io/error.hpp"

namespace rwkv {

std::string Hparams::version_name() const {
  switch (arch) {
    case Arch::RWKV4: return "4";
    case Arch::RWKV5: return !v5_gate ? "5.0" : (v5_decay_per_channel ? "5.2" : "5.1");
    case Arch::RWKV6: return "6.0";
    case Arch::RWKV7: return "7";
  }
  return "?";
}

std::string Weights::describe(const std::string& canonical) const {
  auto it = source_names.find(canonical);
  return it == source_names.end() ? canonical : it->second + " (" + canonical + ")";
}

std::string Weights::layer(int l, const std::string& suffix) {
  return "blk." + std::to_string(l) + "." + suffix;
}

namespace {

Tensor renamed(const Tensor& t, std::string name, std::vector<int64_t> shape) {
  Tensor r = t;
  r.name = std::move(name);
  size_t before = r.numel();
  r.shape = std::move(shape);
  if (r.numel() != before) fail("tensor ", t.name, " has shape ", t.shape_string(), ", cannot view it as ", r.shape_string());
  return r;
}

// Transposes a 2-D tensor of a plain (non-block) type.
Tensor transposed(const Tensor& t, std::string name) {
  if (t.shape.size() != 2) fail("tensor ", t.name, " has shape ", t.shape_string(), ", expected a matrix");
  if (dtype_is_quantized(t.dtype)) fail("tensor ", t.name, " is ", dtype_name(t.dtype), " and cannot be transposed");
  const size_t rows = t.shape[0], cols = t.shape[1], es = dtype_bytes(t.dtype, 1);
  std::vector<uint8_t> out(t.nbytes());
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) std::memcpy(&out[(c * rows + r) * es], t.data + (r * cols + c) * es, es);
  return make_owned_tensor(std::move(name), t.dtype, {t.shape[1], t.shape[0]}, std::move(out));
}

// Swaps the last two dimensions of a 3-D tensor (RWKV-6 time_maa_w2).
Tensor transposed_last2(const Tensor& t, std::string name) {
  if (t.shape.size() != 3) fail("tensor ", t.name, " has shape ", t.shape_string(), ", expected 3 dimensions");
  std::vector<uint8_t> out;
  std::vector<int64_t> shape = {t.shape[0], t.shape[2], t.shape[1]};
  const size_t slice = t.nbytes() / t.shape[0];
  for (int64_t i = 0; i < t.shape[0]; ++i) {
    Tensor s = t;
    s.shape = {t.shape[1], t.shape[2]};
    s.data = t.data + i * slice;
    Tensor st = transposed(s, name);
    out.insert(out.end(), st.data, st.data + st.nbytes());
  }
  return make_owned_tensor(std::move(name), t.dtype, shape, std::move(out));
}

// Stacks vectors of length C into (n, 1, 1, C), keeping their type when they all share one.
Tensor stacked(const std::vector<const Tensor*>& parts, std::string name) {
  const size_t c = parts[0]->numel();
  DType type = parts[0]->dtype;
  for (const Tensor* p : parts) {
    if (p->numel() != c) fail("tensor ", p->name, " has shape ", p->shape_string(), ", expected ", c, " values");
    if (p->dtype != type) type = DType::F32;
  }
  std::vector<int64_t> shape = {static_cast<int64_t>(parts.size()), 1, 1, static_cast<int64_t>(c)};
  if (type == DType::F32) {
    std::vector<float> v;
    for (const Tensor* p : parts) {
      auto f = p->to_f32();
      v.insert(v.end(), f.begin(), f.end());
    }
    return make_f32_tensor(std::move(name), shape, std::move(v));
  }
  std::vector<uint8_t> b;
  for (const Tensor* p : parts) b.insert(b.end(), p->data, p->data + p->nbytes());
  return make_owned_tensor(std::move(name), type, shape, std::move(b));
}

// Applies f to every value (in double) and returns a float32 tensor.
Tensor mapped_values(const Tensor& t, std::string name, std::vector<int64_t> shape,
                     const std::function<double(double)>& f) {
  auto v = t.to_f32();
  for (float& x : v) x = static_cast<float>(f(x));
  return make_f32_tensor(std::move(name), std::move(shape), std::move(v));
}

std::vector<int64_t> vec(int64_t n) { return {n}; }

// RWKV-v8 toy checkpoints (the digit-reversal model in shared/data/rwkv_lm) use short names:
// e, ln{L}a/b/c, rwkv{L}, ffn{L}, rosa{L}, lno, o (layers numbered from 1). Rename them to
// RWKV-LM names. Their ROSA branch is supported only when it is inert (its embedding all
// zero, so it outputs the constant o.bias), which is folded into att.output.bias.
TensorSet rename_v8_toy_layout(const TensorSet& raw) {
  TensorSet out;
  out.source = raw.source;
  static const std::regex re(R"(^(ln(\d+)([abc])|rwkv(\d+)|ffn(\d+)|rosa(\d+))\.(.+)$)");
  for (const Tensor& t : raw.tensors()) {
    std::smatch m;
    std::string n;
    if (t.name == "e.weight") n = "emb.weight";
    else if (t.name.rfind("lno.", 0) == 0) n = "ln_out." + t.name.substr(4);
    else if (t.name.rfind("o.", 0) == 0) n = "head." + t.name.substr(2);
    else if (std::regex_match(t.name, m, re)) {
      const std::string rest = m[7];
      if (m[2].matched) {
        int l = std::stoi(m[2]) - 1;
        if (m[3] == "c") continue;  // ln{L}c only feeds the ROSA branch
        n = "blocks." + std::to_string(l) + (m[3] == "a" ? ".ln1." : ".ln2.") + rest;
      } else if (m[4].matched) {
        n = "blocks." + std::to_string(std::stoi(m[4]) - 1) + ".att." + rest;
      } else if (m[5].matched) {
        n = "blocks." + std::to_string(std::stoi(m[5]) - 1) + ".ffn." + rest;
      } else {
        int l = std::stoi(m[6]) - 1;
        if (rest == "rosa_qkv.emb") {
          for (float x : t.to_f32())
            if (x != 0) fail(raw.source, ": tensor ", t.name, " is not zero: RWKV-8 ROSA branches are not supported");
          continue;
        }
        if (rest != "o.bias") continue;  // inert branch: only its output bias matters
        n = "blocks." + std::to_string(l) + ".att.output.bias";
      }
    } else {
      fail(raw.source, ": unexpected tensor ", t.name, " in an RWKV-v8 style checkpoint");
    }
    out.add(renamed(t, n, t.shape));
  }
  return out;
}

Arch detect_arch(const TensorSet& raw) {
  for (const Tensor& t : raw.tensors()) {
    const std::string& n = t.name;
    if (n.find("ffn.s_emb") != std::string::npos || n.find(".qkv.") != std::string::npos)
      fail(raw.source, ": tensor ", n, " belongs to an RWKV-7a/7b variant, which is not supported");
    if (n.rfind("head_q.", 0) == 0 || n.rfind("pos_emb", 0) == 0 || n.find("ffnPre") != std::string::npos ||
        n.find(".tiny_") != std::string::npos || n.find("ffn.aa.") != std::string::npos)
      fail(raw.source, ": tensor ", n, " belongs to an experimental RWKV-4 option, which is not supported");
    if (n == "_strategy" || n == "_version" || n == "_rescale_layer")
      fail(raw.source, ": this is a ChatRWKV-converted file (key ", n, "); use the original .pth");
  }
  if (raw.find("blocks.0.att.r_k") || raw.find("blocks.0.att.k_k")) return Arch::RWKV7;
  if (raw.find("blocks.0.att.time_maa_x")) return Arch::RWKV6;
  if (raw.find("blocks.0.att.ln_x.weight")) return Arch::RWKV5;
  if (raw.find("blocks.0.att.time_first") && raw.find("blocks.0.att.time_mix_k")) return Arch::RWKV4;
  fail(raw.source, ": cannot recognise the RWKV version from the tensor names (no blocks.0.att.r_k, time_maa_x, ln_x or time_first)");
}

}  // namespace

Weights canonical_from_state_dict(TensorSet raw_in, bool cpp) {
  TensorSet v8;
  const bool toy = raw_in.find("e.weight") && raw_in.find("rwkv1.r_k");
  if (toy) v8 = rename_v8_toy_layout(raw_in);
  const TensorSet& raw = toy ? v8 : raw_in;

  Weights w;
  w.path = raw.source;
  w.format = cpp ? "rwkv.cpp .bin" : "PyTorch .pth";
  w.tensors.source = raw.source;
  Hparams& hp = w.hp;
  hp.arch = detect_arch(raw);
  const Arch arch = hp.arch;
  if (arch == Arch::RWKV5) hp.group_norm_eps = cpp ? 1e-5f : 64e-5f;  // rwkv-spec-v5-v6.md §6
  if (arch == Arch::RWKV7) {
    const Tensor& rk = raw.get("blocks.0.att.r_k");
    if (rk.shape.size() != 2) fail(raw.source, ": tensor blocks.0.att.r_k has shape ", rk.shape_string(), ", expected (heads, head_size)");
    hp.head_size = static_cast<int>(rk.shape[1]);
  }

  TensorSet& out = w.tensors;
  const Tensor* current = nullptr;  // the file tensor being mapped, for messages
  auto add = [&](Tensor t) {
    if (current && current->name != t.name) w.source_names[t.name] = current->name;
    out.add(std::move(t));
  };
  static const std::regex block_re(R"(^blocks\.(\d+)\.(att|ffn|ln0|ln1|ln2)\.(.+)$)");
  std::set<int> v7_lerp_done;

  for (const Tensor& t : raw.tensors()) {
    current = &t;
    const std::string& n = t.name;
    const auto sq = squeezed(t.shape);
    if (n == "emb.weight") { add(renamed(t, "token_embd.weight", t.shape)); continue; }
    if (n == "head.weight") { add(renamed(t, "output.weight", t.shape)); continue; }
    if (n == "head.bias") { add(renamed(t, "output.bias", sq)); hp.has_head_bias = true; continue; }
    if (n == "ln_out.weight" || n == "ln_out.bias") { add(renamed(t, "output_norm." + n.substr(7), sq)); continue; }
    std::smatch m;
    if (!std::regex_match(n, m, block_re)) fail(raw.source, ": unexpected tensor ", n);
    const int l = std::stoi(m[1]);
    const std::string part = m[2], p = m[3];
    auto L = [&](const std::string& s) { return Weights::layer(l, s); };
    if (part == "ln0") {
      if (l != 0) fail(raw.source, ": unexpected tensor ", n, " (ln0 belongs to block 0 only)");
      add(renamed(t, "token_embd_norm." + p, sq));
      continue;
    }
    if (part == "ln1") { add(renamed(t, L("attn_norm." + p), sq)); continue; }
    if (part == "ln2") { add(renamed(t, L("attn_norm_2." + p), sq)); continue; }
    auto unexpected = [&]() { fail(raw.source, ": unexpected tensor ", n, " for RWKV-", static_cast<int>(arch)); };
    // Linear layers keep their (out, in) orientation.
    auto linear = [&](const char* prefix) -> bool {
      static const char* names[] = {"key", "value", "receptance", "output", "gate"};
      for (const char* ln : names)
        if (p == std::string(ln) + ".weight") { add(renamed(t, L(std::string(prefix) + ln + ".weight"), t.shape)); return true; }
      return false;
    };
    if (part == "ffn") {
      if (linear("channel_mix_")) continue;
      if (p == "time_mix_k" || p == "time_maa_k" || p == "x_k") { add(renamed(t, L("channel_mix_lerp_k.weight"), sq)); continue; }
      if (p == "time_mix_r" || p == "time_maa_r") { add(renamed(t, L("channel_mix_lerp_r.weight"), sq)); continue; }
      unexpected();
    }
    // part == "att"
    if (p == "ln_x.weight" || p == "ln_x.bias") { add(renamed(t, L("time_mix_ln." + p.substr(5)), sq)); continue; }
    if (p == "output.bias") { add(renamed(t, L("time_mix_output.bias"), sq)); hp.has_att_output_bias = true; continue; }
    if (linear("time_mix_")) continue;
    switch (arch) {
      case Arch::RWKV4:
        if (p == "time_mix_k" || p == "time_mix_v" || p == "time_mix_r") { add(renamed(t, L("time_mix_lerp_" + p.substr(9) + ".weight"), sq)); continue; }
        if (p == "time_decay") {  // rwkv.cpp stores w = -exp(d) (spec §5.2)
          add(cpp ? mapped_values(t, L("time_mix_decay.weight"), sq, [](double x) { return std::log(-x); })
                  : renamed(t, L("time_mix_decay.weight"), sq));
          continue;
        }
        if (p == "time_first") { add(renamed(t, L("time_mix_first_log.weight"), sq)); continue; }
        unexpected();
        break;
      case Arch::RWKV5:
        if (p == "time_mix_k" || p == "time_mix_v" || p == "time_mix_r" || p == "time_mix_g") { add(renamed(t, L("time_mix_lerp_" + p.substr(9) + ".weight"), sq)); continue; }
        if (p == "time_decay") {  // rwkv.cpp stores exp(-exp(d)) (rwkv-spec-v5-v6.md §7)
          // Per head: .pth (H), rwkv.cpp (H,1,1). Per channel: .pth (H,N), rwkv.cpp (H,N,1).
          std::vector<int64_t> canon = t.shape.size() >= 2 && t.shape[1] > 1 ? std::vector<int64_t>{t.shape[0], t.shape[1]} : vec(t.shape[0]);
          add(cpp ? mapped_values(t, L("time_mix_decay.weight"), canon, [](double x) { return std::log(-std::log(x)); })
                  : renamed(t, L("time_mix_decay.weight"), canon));
          continue;
        }
        if (p == "time_first") {  // log(u); rwkv.cpp stores u = exp(time_first)
          add(cpp ? mapped_values(t, L("time_mix_first_log.weight"), vec(t.shape[0]), [](double x) { return std::log(x); })
                  : renamed(t, L("time_mix_first_log.weight"), vec(t.shape[0])));
          continue;
        }
        if (p == "time_faaaa") { add(renamed(t, L("time_mix_first.weight"), {t.shape[0], static_cast<int64_t>(t.numel() / t.shape[0])})); continue; }
        unexpected();
        break;
      case Arch::RWKV6:
        if (p == "time_maa_x") { add(renamed(t, L("time_mix_lerp_x.weight"), sq)); continue; }
        if (p == "time_maa_w") {  // fused in the LoRA's chunk order w, k, v, r, g (formats.md T5)
          std::vector<const Tensor*> parts;
          for (const char* s : {"w", "k", "v", "r", "g"}) parts.push_back(&raw.get("blocks." + std::to_string(l) + ".att.time_maa_" + s));
          add(stacked(parts, L("time_mix_lerp_fused.weight")));
          continue;
        }
        if (p == "time_maa_k" || p == "time_maa_v" || p == "time_maa_r" || p == "time_maa_g") continue;  // fused above
        if (p == "time_maa_w1") { add(cpp ? renamed(t, L("time_mix_w1.weight"), t.shape) : transposed(t, L("time_mix_w1.weight"))); continue; }
        if (p == "time_maa_w2") { add(cpp ? renamed(t, L("time_mix_w2.weight"), t.shape) : transposed_last2(t, L("time_mix_w2.weight"))); continue; }
        if (p == "time_decay") { add(renamed(t, L("time_mix_decay.weight"), vec(t.numel()))); continue; }
        if (p == "time_decay_w1" || p == "time_decay_w2") {
          std::string cn = L("time_mix_decay_w" + p.substr(12) + ".weight");
          add(cpp ? renamed(t, cn, t.shape) : transposed(t, cn));
          continue;
        }
        if (p == "time_faaaa") { add(renamed(t, L("time_mix_first.weight"), {t.shape[0], static_cast<int64_t>(t.numel() / t.shape[0])})); continue; }
        unexpected();
        break;
      case Arch::RWKV7: {
        if (p == "x_rwkvag") { add(renamed(t, L("time_mix_lerp_fused.weight"), {6, 1, 1, static_cast<int64_t>(t.numel() / 6)})); continue; }
        if (p.size() == 3 && p[0] == 'x' && p[1] == '_' && std::strchr("rwkvag", p[2])) {
          if (v7_lerp_done.insert(l).second) {  // fused in the order r, w, k, v, a, g (formats.md §2.4)
            std::vector<const Tensor*> parts;
            for (const char* s : {"r", "w", "k", "v", "a", "g"}) parts.push_back(&raw.get("blocks." + std::to_string(l) + ".att.x_" + s));
            add(stacked(parts, L("time_mix_lerp_fused.weight")));
          }
          continue;
        }
        if (p == "w0" || p == "a0" || p == "v0" || p == "k_k" || p == "k_a" || p == "r_k") {
          if (l == 0 && p == "v0") continue;  // layer 0 has no value residual (spec §3.1)
          add(renamed(t, L("time_mix_" + p + ".weight"), vec(t.numel())));
          continue;
        }
        if (p.size() == 2 && std::strchr("wavg", p[0]) && (p[1] == '1' || p[1] == '2')) {
          if (l == 0 && p[0] == 'v') continue;
          // .pth stores LoRA matrices (in, out) for x·W; rwkv.cpp already transposed them.
          std::string cn = L("time_mix_" + p + ".weight");
          add(cpp ? renamed(t, cn, t.shape) : transposed(t, cn));
          continue;
        }
        unexpected();
        break;
      }
    }
  }
  hp.has_ln0 = out.find("token_embd_norm.weight") != nullptr;
  infer_hparams(out, hp);
  return w;
}

void infer_hparams(const TensorSet& ts, Hparams& hp) {
  const std::string& src = ts.source;
  const Tensor& emb = ts.get("token_embd.weight");
  if (emb.shape.size() != 2) fail(src, ": tensor token_embd.weight has shape ", emb.shape_string(), ", expected (vocab, n_embd)");
  hp.vocab_size = static_cast<int>(emb.shape[0]);
  hp.n_embd = static_cast<int>(emb.shape[1]);
  const int C = hp.n_embd;
  int n_layer = 0;
  static const std::regex re(R"(^blk\.(\d+)\..*)");
  for (const Tensor& t : ts.tensors()) {
    std::smatch m;
    if (std::regex_match(t.name, m, re)) {
      if (m[1].length() > 6) fail(src, ": tensor ", t.name, " has an absurd layer number");
      n_layer = std::max(n_layer, std::stoi(m[1]) + 1);
    }
  }
  if (n_layer == 0) fail(src, ": no layers (no blk.N.* tensors)");
  hp.n_layer = n_layer;
  auto rows = [&](const std::string& name) { return static_cast<int>(ts.get(name).shape.at(0)); };
  hp.dim_att = C;
  if (hp.arch == Arch::RWKV4) hp.dim_att = rows("blk.0.time_mix_key.weight");
  hp.dim_ffn = rows("blk.0.channel_mix_key.weight");
  hp.has_ln0 = ts.find("token_embd_norm.weight") != nullptr;
  hp.has_head_bias = ts.find("output.bias") != nullptr;
  hp.has_att_output_bias = ts.find("blk.0.time_mix_output.bias") != nullptr;
  switch (hp.arch) {
    case Arch::RWKV4: break;
    case Arch::RWKV5: {
      hp.v5_gate = ts.find("blk.0.time_mix_gate.weight") != nullptr;
      hp.v5_first_is_log = ts.find("blk.0.time_mix_first_log.weight") != nullptr;
      const Tensor& d = ts.get("blk.0.time_mix_decay.weight");
      hp.v5_decay_per_channel = d.numel() == static_cast<size_t>(C) && d.shape.size() == 2;
      hp.n_head = hp.v5_first_is_log ? static_cast<int>(ts.get("blk.0.time_mix_first_log.weight").numel())
                                     : rows("blk.0.time_mix_first.weight");
      break;
    }
    case Arch::RWKV6:
      hp.n_head = rows("blk.0.time_mix_first.weight");
      hp.lora_mix = rows("blk.0.time_mix_w1.weight") / 5;
      hp.lora_decay = rows("blk.0.time_mix_decay_w1.weight");
      break;
    case Arch::RWKV7:
      if (hp.head_size <= 0) fail(src, ": head size unknown (rwkv7.wkv.head_size missing)");
      hp.n_head = C / hp.head_size;
      hp.lora_w = rows("blk.0.time_mix_w1.weight");
      hp.lora_a = rows("blk.0.time_mix_a1.weight");
      hp.lora_g = rows("blk.0.time_mix_g1.weight");
      hp.lora_v = n_layer > 1 ? rows("blk.1.time_mix_v1.weight") : 0;
      break;
  }
  if (hp.arch != Arch::RWKV4) {
    if (hp.n_head <= 0 || C % hp.n_head != 0) fail(src, ": ", hp.n_head, " heads do not divide n_embd ", C);
    hp.head_size = C / hp.n_head;
  }
}

}  // namespace rwkv
