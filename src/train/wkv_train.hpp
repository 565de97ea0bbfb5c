// The WKV scans for training: forward over B sequences of T tokens, each from a zero state,
// saving what the backward needs, and the exact backward (spec §2.7, §3.8). Layout as the
// rest of training: row b·T + t, channels within a row. Every backward ADDS into its outputs.
#pragma once
#include <cstddef>
#include <vector>

namespace rwkv::train {

// ---- RWKV-4 (spec §2.3): per channel, w = −exp(time_decay) < 0, u = time_first. y: R×A.
// Spread over the threads by channel.
template <typename F>
void wkv4_forward(size_t B, size_t T, size_t A, const F* k, const F* v, const F* w, const F* u, F* y);

// Gradients of Σ dy⊙y through the stable two-sweep form of the official kernel (spec §2.7):
// dk, dv (R×A) and dw, du (A, summed over the batch). dw is ∂/∂w, not ∂/∂time_decay.
template <typename F>
void wkv4_backward(size_t B, size_t T, size_t A, const F* k, const F* v, const F* w, const F* u, const F* y,
                   const F* dy, F* dk, F* dv, F* dw, F* du);

// ---- RWKV-7 (spec §3.3): per head S ← S·(diag(ω) + a bᵀ) + v kᵀ, y = S·r (new state).

// The state at the start of every chunk of kWkv7Chunk tokens, per (sequence, head): the
// backward recomputes the states inside one chunk from it instead of keeping all T of them.
constexpr size_t kWkv7Chunk = 16;
template <typename F>
struct Wkv7Saved {
  std::vector<F> states;  // [B][H][chunks][N][N], key-major: element [j][i] holds S[i=value][j=key]
};

// float runs the SIMD kernels (wkv7_train_simd) when they take N, spread over the threads by
// (sequence, head); double, and float with other N, the scalar reference below.
template <typename F>
void wkv7_forward(size_t B, size_t T, size_t H, size_t N, const F* r, const F* w, const F* k, const F* v,
                  const F* a, const F* b, F* y, Wkv7Saved<F>& saved);

// Gradients of Σ dy⊙y with respect to r, ω, k, v, a, b (all R×C), spec §3.8.
template <typename F>
void wkv7_backward(size_t B, size_t T, size_t H, size_t N, const F* r, const F* w, const F* k, const F* v,
                   const F* a, const F* b, const Wkv7Saved<F>& saved, const F* dy, F* dr, F* dw, F* dk, F* dv, F* da,
                   F* db);

// The scalar loops, one thread (what the SIMD kernels are tested against).
template <typename F>
void wkv7_forward_reference(size_t B, size_t T, size_t H, size_t N, const F* r, const F* w, const F* k, const F* v,
                            const F* a, const F* b, F* y, Wkv7Saved<F>& saved);
template <typename F>
void wkv7_backward_reference(size_t B, size_t T, size_t H, size_t N, const F* r, const F* w, const F* k,
                             const F* v, const F* a, const F* b, const Wkv7Saved<F>& saved, const F* dy, F* dr,
                             F* dw, F* dk, F* dv, F* da, F* db);

}  // namespace rwkv::train
