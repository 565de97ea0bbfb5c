// Fresh weights for a new RWKV-4 or RWKV-7 model, initialised as the official trainers do
// (spec §7.1, §7.2), in the canonical tensor form of weights.hpp. Used by `rwkv init`; no I/O.
#pragma once
#include <cstdint>

#include "model/weights.hpp"

namespace rwkv {

struct InitOptions {
  Arch arch = Arch::RWKV7;  // RWKV4 or RWKV7
  int n_layer = 0, n_embd = 0, vocab_size = 0;
  int head_size = 64;  // N (RWKV-7 only); n_embd must be a multiple of it
  int dim_ffn = 0;     // F; 0 = 4·n_embd, as both trainers
  uint64_t seed = 0;
  // Half-width of the uniform embedding init. RWKV-7 uses ±1e-4 (spec §7.2); the RWKV-4
  // trainer uses ±lr_init (e.g. 6e-4, spec §7.1), which a caller may pass here instead.
  float emb_scale = 1e-4f;
};

// float32 tensors with canonical names; hp filled by infer_hparams. Deterministic for a given
// seed: every random tensor draws from its own std::mt19937_64 stream, seeded from `seed` and
// the tensor name, through our own Box–Muller (so not tied to one standard library's
// distributions). path = "", format = "new (rwkv init)". Throws rwkv::Error on bad options.
Weights init_weights(const InitOptions& o);

// spec §3.1: the trainer's suggested LoRA rank max(32, 32·round(factor·√C/32)) with Python's
// round (ties to even). Factors: 2.5 for D_w and D_a, 1.7 for D_v, 5 for D_g.
int rwkv7_lora_rank(double factor, int n_embd);

}  // namespace rwkv
