// SIMD kernels, compiled by Google Highway for every x86 vector extension (SSE4, AVX2,
// AVX-512) and chosen at run time for the CPU at hand. Callers split the work over threads;
// each function here runs on one thread. Reference versions live in ops.cpp / wkv.cpp and
// the tests compare the two.
#pragma once
#include <cstddef>

#include "io/tensor.hpp"

namespace rwkv::cpu::simd {

// Y[t·ldy + o] = Σ_i X[t·cols + i] · W[o][i] for rows o in [r0, r1) and t in [0, T), where W
// is a row-major rows×cols matrix of float32, float16 or bfloat16 (`type`), converted to
// float32 in registers. Tokens are blocked so that each weight is read from memory once per
// block of tokens (matrix-vector for T = 1, matrix-matrix otherwise).
void float_rows(DType type, const void* W, size_t cols, size_t r0, size_t r1, const float* X,
                size_t T, float* Y, size_t ldy);

// Matrix-matrix for a few dozen tokens (batched decode), float32 weights: X is first packed with
// pack_tokens into ceil(T / G) groups of cols × G floats, G = token_group(T) (tokens along the
// vector lanes, zero padded; pack_tokens may be called on a subrange of the tokens with the whole
// call's G); packed_rows then computes the same Y rows as float_rows, reading each weight once
// per block of tokens and never summing across lanes.
size_t token_group(size_t T);
void pack_tokens(const float* X, size_t T, size_t cols, size_t G, float* Xp);
void packed_rows(const float* W, size_t cols, size_t r0, size_t r1, const float* Xp, size_t T, float* Y,
                 size_t ldy);

// The same Y rows by a packed GEMM, for many tokens (prefill), float32 weights: the rows are
// packed once per call in panels of two vectors of rows, and 6 tokens at a time run against them.
// (Matrices with sixteen-row panels, below, are read from those for any number of tokens.)
void gemm_rows(const float* W, size_t cols, size_t r0, size_t r1, const float* X, size_t T, float* Y,
               size_t ldy);

// Sixteen-row panels, the layout models hold float matrices in (has_panel_layout: float16,
// bfloat16, and float32's full-size matrices):
// rows in groups of 16, each group column by column, P[g][i][j] = W[16g + j][i] (a column of a
// group is 16 consecutive values). interleave_panels16 makes it (rows a multiple of 16; out holds
// rows × cols values). panel_rows computes the Y rows [r0, r1) (multiples of 16) of any number of
// tokens from the panels P of the whole matrix, widening the weights in registers: one token
// reads each group as one sequential stream; more tokens run in groups against each panel.
constexpr size_t kPanelRows = 16;
bool has_panel_layout(DType type);
void interleave_panels16(DType type, const void* W, size_t rows, size_t cols, void* out);
// A few tokens (batched decode: panel_packs(T)) are read from Xp, a copy of X packed token by
// token (T·cols floats, made by pack_panel_tokens once per product, before its rows are shared
// out over threads); for other T, Xp is not read.
void panel_rows(DType type, const void* P, size_t cols, size_t r0, size_t r1, const float* X, size_t T,
                float* Y, size_t ldy, const float* Xp);
bool panel_packs(size_t T);
void pack_panel_tokens(const float* X, size_t T, size_t cols, float* Xp);

// The RWKV-7 scan for one head over T tokens (see wkv7 in wkv.hpp): r, w, k, v, a, b point at
// this head's first channel of token 0 and advance by `stride` per token; S is the head's
// N×N state [value i][key j]; y as r. S_next: the state the caller scans next, whose rows a
// few tokens' scan asks for meanwhile (null: the memory after S).
void wkv7_head(size_t T, size_t stride, size_t N, const float* r, const float* w, const float* k,
               const float* v, const float* a, const float* b, float* S, float* y, const float* S_next = nullptr);

// The RWKV-5/6 scan for one head (see wkv5 in wkv.hpp): r, k, v, y advance by `stride` per
// token, w by `w_stride` (0: one decay for all tokens); S is the head's N×N state [key j][value i].
void wkv5_head(size_t T, size_t stride, size_t w_stride, size_t N, const float* r, const float* k,
               const float* v, const float* w, const float* u, float* S, float* y);
// RWKV-4 WKV (spec §2.3) for channels [c0, c1) of A over T tokens (k, v, y: [t][A]), the state
// aa, bb, pp continued in place.
void wkv4_channels(size_t T, size_t A, size_t c0, size_t c1, const float* k, const float* v, const float* w,
                   const float* u, float* aa, float* bb, float* pp, float* y);
// Element-wise activations: y[t·n + i] = act(x[t·n + i] + bias[i]) for T rows of n (bias may
// be null; y may be x). The decays: RWKV-7 exp(−e^{−1/2}·σ(x)) (spec §3.2), RWKV-6 exp(−exp(x)).
enum class Act { Sigmoid, Tanh, ReluSq, DecayRwkv7, DecayRwkv6 };
void activate(Act act, const float* x, const float* bias, size_t T, size_t n, float* y);
// RWKV-6/7's token-shift mixes (spec §1.2), `count` of them from one reading of z and z_prev:
// x[j][t·C + c] = z + (prev − z)·mu[j·C + c] for T rows of C (a fused multiply-add where the
// CPU has one).
void mix_rows(const float* z, const float* prev, const float* mu, size_t count, size_t T, size_t C, float* const* x);
// y = (x − mean)/sqrt(var + eps)·weight + bias over n values (mean and variance in double).
void normalize(const float* x, size_t n, const float* weight, const float* bias, float eps, float* y);
// y = x ⊙ s, returning Σ y² summed in double.
double scaled_sum_squares(const float* x, const float* s, size_t n, float* y);
// Σ a·b·c.
float dot3(const float* a, const float* b, const float* c, size_t n);
// The instruction set the kernels run with here (e.g. "AVX2", "AVX3").
const char* target_name();

}  // namespace rwkv::cpu::simd
