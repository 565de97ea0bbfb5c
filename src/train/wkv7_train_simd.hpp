// The WKV-7 scan of training for one (sequence, head) in float32 SIMD, compiled by Google
// Highway for every x86 vector extension and chosen at run time (as kernels/cpu/simd). Same
// layout and arithmetic order over tokens as the scalar reference in wkv_train.cpp (the state
// key-major, ST[j][i] = S[i][j]), with fused multiply-adds. Callers spread (sequence, head)
// units over threads; each call runs on one thread.
#pragma once
#include <cstddef>

namespace rwkv::train::simd {

// Whether the kernels take head size N (a multiple of the vector width); else use the reference.
bool wkv7_supports(size_t N);

// T tokens of one head from a zero state. r, w, k, v, a, b and y point at the head's first
// channel of token 0 and advance by `stride` per token; `snapshots` receives the state before
// every chunk of `chunk` tokens (N·N floats each).
void wkv7_forward_head(size_t T, size_t stride, size_t N, size_t chunk, const float* r, const float* w,
                       const float* k, const float* v, const float* a, const float* b, float* y, float* snapshots);

// The backward of the same head: ADDS the gradients of Σ dy⊙y into dr, dw, dk, dv, da, db
// (laid out as r), recomputing each chunk's states from its snapshot.
void wkv7_backward_head(size_t T, size_t stride, size_t N, size_t chunk, const float* r, const float* w,
                        const float* k, const float* v, const float* a, const float* b, const float* snapshots,
                        const float* dy, float* dr, float* dw, float* dk, float* dv, float* da, float* db);

}  // namespace rwkv::train::simd
