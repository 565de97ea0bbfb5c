// Matrix products, element-wise activations and the normalisations, on the thread pool.
#include "kernels/cpu/ops.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/error.hpp"
#include "kernels/cpu/simd.hpp"
#include "kernels/cpu/simd_bf16.hpp"
#include "kernels/cpu/thread_pool.hpp"

namespace rwkv::cpu {

namespace {
// Matrices with sixteen-row panels (as models load float matrices) take panel_rows for every
// number of tokens. Float32 matrices without (a caller's, or a model's low-rank ones): below
// kPackedMinTokens tokens, float_rows; below kGemmMinTokens, tokens packed along the lanes
// (batched decode: weights are used a few dozen times, too few to repay repacking them); from
// there, the packed GEMM (prefill). Float16 and bfloat16 ones without: float_rows.
constexpr size_t kPackedMinTokens = 16, kGemmMinTokens = 64;
// Float16 and bfloat16 panels' products from kBf16MinTokens tokens and kBf16MinRows rows run on
// bfloat16 dot products where the CPU has them (bf16_dots; RoundedActivations).
constexpr size_t kBf16MinTokens = 16, kBf16MinRows = 64;

// The pool's `then` hint for a product job (follower_hint): the weights of the job that
// followed it last time, for a thread with nothing to do at the end of the job, or while the
// caller alone does the element-wise work before the next, to prefetch its share of.
std::span<const Region> next_weights(std::span<const Matrix* const> ws) {
  Region mine[kMaxRegions];
  const size_t n = std::min(ws.size(), kMaxRegions);
  for (size_t i = 0; i < n; ++i)
    mine[i] = {ws[i]->rows8 ? ws[i]->rows8 : ws[i]->panels ? ws[i]->panels : ws[i]->data,
               ws[i]->rows * dtype_bytes(ws[i]->type, ws[i]->cols)};
  return follower_hint({mine, n});
}

// Rows [r0, r1) of a float matrix's product: from its sixteen-row panels where it has them (the
// rows outside whole panels of the range from the rows as stored), else from the rows.
// Xp: X packed for the panels (PanelActivations), or nullptr. Xb: X rounded to bfloat16 for
// bfloat16 dot products on the panels (simd::round_bf16), or nullptr.
void float_matrix_rows(const Matrix& W, size_t r0, size_t r1, const float* X, size_t T, float* Y,
                       const float* Xp, const uint16_t* Xb = nullptr) {
  constexpr size_t P = simd::kPanelRows;
  const size_t p0 = (r0 + P - 1) / P * P, p1 = std::min(r1, W.rows) / P * P;
  if (!W.panels || p0 >= p1) return simd::float_rows(W.type, W.data, W.cols, r0, r1, X, T, Y, W.rows);
  if (r0 < p0) simd::float_rows(W.type, W.data, W.cols, r0, p0, X, T, Y, W.rows);
  if (Xb)
    simd::panel_rows_bf16(W.type, W.panels, W.cols, p0, p1, Xb, T, Y, W.rows);
  else
    simd::panel_rows(W.type, W.panels, W.cols, p0, p1, X, T, Y, W.rows, Xp);
  if (p1 < r1) simd::float_rows(W.type, W.data, W.cols, p1, r1, X, T, Y, W.rows);
}

// A batched step's activations packed once for a matrix's panels (simd::panel_packs), before
// the pool's threads share out its rows: packed by each piece of rows, the copy cost as much
// as a 32-row piece's arithmetic.
class PanelActivations {
 public:
  PanelActivations(const float* X, size_t T, const Matrix& W, bool wanted = true) {
    if (!wanted || !W.panels || !simd::panel_packs(T)) return;
    packed_.reset(new float[T * W.cols]);  // (uninitialised: every value is written)
    simd::pack_panel_tokens(X, T, W.cols, packed_.get());
  }
  const float* data() const { return packed_.get(); }

 private:
  std::unique_ptr<float[]> packed_;
};
}  // namespace

bool is_float_type(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

Bf16Dots bf16_dots_setting(const char* value) {
  const std::string v = value ? value : "";
  if (v.empty() || v == "bf16") return Bf16Dots::Bf16Weights;
  if (v == "off") return Bf16Dots::Off;
  if (v == "all") return Bf16Dots::All;
  throw Error("RWKV_BF16_DOTS: expected off, bf16 or all, not '" + v + "'");
}

namespace {
// (Read when first asked, so that a bad value is an Error there, not a throw at start-up.)
std::atomic<int> g_bf16_dots{-1};
}  // namespace

Bf16Dots bf16_dots_mode() {
  int mode = g_bf16_dots.load(std::memory_order_relaxed);
  if (mode < 0) {  // (another thread may have set it meanwhile: its setting stands)
    const int read = static_cast<int>(bf16_dots_setting(std::getenv("RWKV_BF16_DOTS")));
    mode = g_bf16_dots.compare_exchange_strong(mode, read) ? read : mode;
  }
  return static_cast<Bf16Dots>(mode);
}

bool bf16_dots(DType type) {
  const Bf16Dots mode = bf16_dots_mode();
  const bool wanted = type == DType::BF16 ? mode != Bf16Dots::Off : type == DType::F16 && mode == Bf16Dots::All;
  return wanted && simd::bf16_dots_supported();
}
Bf16Dots set_bf16_dots(Bf16Dots mode) {
  const Bf16Dots old = bf16_dots_mode();
  g_bf16_dots.store(static_cast<int>(mode), std::memory_order_relaxed);
  return old;
}

namespace {
// A product's activations rounded to bfloat16 once (simd::round_bf16), before the pool's threads
// share out its rows, where its matrix runs on bfloat16 dot products: float16 and bfloat16
// panels, from kBf16MinTokens tokens and kBf16MinRows rows. Not for fewer rows, where rounding
// them costs more than the dot products save (`MatmulBf16Dots/f16` against `Matmul/f16`, 512
// tokens, 2 threads, medians of 5: 32 × 768 301 against 445 GFLOP/s; 64 × 768 610 against 419,
// 64 × 64 252 against 244, 768 × 768 938 against 434). rows(t0): token t0's row, or nullptr (float32).
class RoundedActivations {
 public:
  RoundedActivations(const float* X, size_t T, const Matrix& W) {
    if (T < kBf16MinTokens || !W.panels || W.rows < kBf16MinRows || !bf16_dots(W.type)) return;
    ld_ = simd::bf16_stride(W.cols);
    thread_local std::vector<uint16_t> buffer;  // (the caller's: the workers get the pointer)
    buffer.resize(T * ld_);
    uint16_t* const out = rounded_ = buffer.data();
    if (simd::bf16_packs(T))  // (a few tokens: packed for the kernel, on the calling thread)
      simd::round_bf16_packed(X, T, W.cols, out);
    else
      parallel_for(T, 16, [&](size_t t0, size_t t1) { simd::round_bf16(X + t0 * W.cols, t1 - t0, W.cols, out + t0 * ld_); });
  }
  const uint16_t* rows(size_t t0) const { return rounded_ ? rounded_ + t0 * ld_ : nullptr; }

 private:
  uint16_t* rounded_ = nullptr;
  size_t ld_ = 0;
};
}  // namespace

void matmul(const float* X, size_t T, const Matrix& W, float* Y) {
  if (T == 0 || W.rows == 0) return;
  const Matrix* const job[] = {&W};
  const auto then = T < kTrailTokens ? next_weights(job) : std::span<const Region>{};
  if (!is_float_type(W.type)) return matmul_quantized(X, T, W, Y, then);
  // Few tokens: each thread reads its rows once per block of tokens (float_rows), or its
  // panels once.
  if (T < kPackedMinTokens) {
    const PanelActivations packed(X, T, W);
    parallel_for(
        W.rows, 16, [&](size_t r0, size_t r1) { float_matrix_rows(W, r0, r1, X, T, Y, packed.data()); },
        Split::Contiguous, then);
    return;
  }
  if (W.panels ? T < kGemmMinTokens : W.type != DType::F32) {  // each thread's panels, all the tokens
    const RoundedActivations rounded(X, T, W);
    const PanelActivations packed(X, T, W, !rounded.rows(0));
    parallel_for(W.rows, 32, [&](size_t r0, size_t r1) {
      float_matrix_rows(W, r0, r1, X, T, Y, packed.data(), rounded.rows(0));
    });
    return;
  }
  if (T < kGemmMinTokens) {  // tokens packed along the lanes; the weights read in place
    const size_t G = simd::token_group(T), groups = (T + G - 1) / G;
    thread_local std::vector<float> packed;
    packed.resize(groups * G * W.cols);
    // (The workers see their own thread_local buffer: hand them this thread's by pointer.)
    float* const Xp = packed.data();
    parallel_for(groups, 4, [&](size_t g0, size_t g1) {
      simd::pack_tokens(X + g0 * G * W.cols, std::min(T, g1 * G) - g0 * G, W.cols, G, Xp + g0 * G * W.cols);
    });
    parallel_for(W.rows, 24,
                 [&](size_t r0, size_t r1) { simd::packed_rows(W.f32(), W.cols, r0, r1, Xp, T, Y, W.rows); });
    return;
  }
  // The packed GEMM: threads take rows in multiples of 32 (whole panels of rows on every
  // target). Each piece reads all the tokens' activations once per chunk of columns, against
  // all its rows, so pieces are as large as an even share allows, up to 128 rows (a 768 × 768
  // product on two threads: 131–149 GFLOP/s in pieces of 32 rows, 140–162 in pieces of 128).
  // A product of few rows (RWKV-7's low-rank first halves: 32 to 128) is cut along the tokens
  // as well, in blocks of at least 128, so that every thread has pieces: each piece packs its
  // rows again (float32), which costs little against 128 tokens of arithmetic.
  const size_t threads = static_cast<size_t>(thread_count());
  // A piece of `rows` left: half a thread's even share, in whole 32-row panels, 32 to 128.
  auto piece_of = [threads](size_t rows) { return std::clamp<size_t>((rows / (2 * threads) + 31) / 32 * 32, 32, 128); };
  const size_t row_grain = piece_of(W.rows), row_pieces = (W.rows + row_grain - 1) / row_grain;
  size_t token_blocks = 1;
  if (row_pieces < 2 * threads)
    token_blocks = std::clamp<size_t>((2 * threads + row_pieces - 1) / row_pieces, 1, std::max<size_t>(1, T / 128));
  // Block b starts at token b·T/token_blocks, down to whole groups of 6: every block has at least
  // 122 tokens (the panels' GEMM path, which reads X as it is).
  auto token_start = [&](size_t b) { return b == token_blocks ? T : b * T / token_blocks / 6 * 6; };
  // Row pieces shrink towards the end (each the piece_of the rows left; on one thread they stay
  // whole): the pool hands them out in order, so the thread that finishes first waits for a
  // small piece rather than a 128-row one. 0.1B f16 prefill, 2 threads: the calling thread's
  // wait at the end of its jobs went from 2.0–5.3 % to 0.5–1.9 % of the jobs' time (an
  // instrumented pool, 4 alternating pairs).
  std::vector<size_t> starts{0};
  while (starts.back() < W.rows) {
    const size_t piece = token_blocks > 1 || threads == 1 ? row_grain : piece_of(W.rows - starts.back());
    starts.push_back(std::min(W.rows, starts.back() + piece));
  }
  const size_t pieces = starts.size() - 1;
  const RoundedActivations rounded(X, T, W);
  // The rounded activations are laid out for T tokens (packed or not: simd::bf16_packs), and
  // each block of tokens reads them as laid out for its own count: the same layout, since blocks
  // of several are at least 122 tokens, beyond the packed ones.
  for (size_t b = 0; rounded.rows(0) && b < token_blocks; ++b)
    if (simd::bf16_packs(token_start(b + 1) - token_start(b)) != simd::bf16_packs(T))
      throw Error("matmul: a block of tokens would read the rounded activations in another layout");
  parallel_for(pieces * token_blocks, 1, [&](size_t b, size_t e) {
    for (size_t u = b; u < e; ++u) {
      const size_t r0 = starts[u / token_blocks], r1 = starts[u / token_blocks + 1];
      const size_t t0 = token_start(u % token_blocks), tn = token_start(u % token_blocks + 1) - t0;
      if (W.panels)
        float_matrix_rows(W, r0, r1, X + t0 * W.cols, tn, Y + t0 * W.rows, nullptr, rounded.rows(t0));
      else
        simd::gemm_rows(W.f32(), W.cols, r0, r1, X + t0 * W.cols, tn, Y + t0 * W.rows, W.rows);
    }
  }, Split::InOrder);
}

namespace {
// Products in one pool job. They are cut into units of about kUnitBytes of weights (whole
// groups of 16 rows: the eight-row layouts' groups, the sixteen-row panels), numbered one
// product after another: the pool's pieces are ranges of units, so they cost alike whatever the
// products' types. (In pieces of equal rows, one of RWKV-7's float32 low-rank rows weighs 7 Q4_0
// rows: the thread left with such a piece kept the other waiting 11 µs of each 117 µs job.)
// Block types quantize their activations first.
void products_grouped(size_t T, std::span<const Product> products) {
  constexpr size_t kUnitBytes = 16 * 1024;
  const size_t n = products.size();
  const Product* ps = products.data();
  std::vector<size_t> first{0}, unit_rows(n);
  std::vector<std::unique_ptr<QuantizedActivations>> quantized(n);
  std::vector<PanelActivations> packed;  // (empty where the matrix has no panels)
  packed.reserve(n);
  const Matrix* weights[kMaxRegions];  // (the pool's hint takes the first kMaxRegions)
  for (size_t j = 0; j < n; ++j) {
    const Matrix& W = *ps[j].W;
    if (j < kMaxRegions) weights[j] = &W;
    packed.emplace_back(ps[j].X, T, W);
    if (!is_float_type(W.type)) quantized[j] = std::make_unique<QuantizedActivations>(ps[j].X, T, W);
    const size_t row_bytes = std::max<size_t>(1, dtype_bytes(W.type, W.cols));
    unit_rows[j] = (std::max<size_t>(1, kUnitBytes / row_bytes) + 15) / 16 * 16;  // (whole panels too)
    first.push_back(first.back() + (W.rows + unit_rows[j] - 1) / unit_rows[j]);
  }
  const auto then = next_weights({weights, std::min(n, kMaxRegions)});
  parallel_for(first.back(), 1, [&](size_t b, size_t e) {
    for (size_t j = 0; j < n; ++j) {
      const size_t u0 = std::max(b, first[j]), u1 = std::min(e, first[j + 1]);
      if (u0 >= u1) continue;
      const Product& p = ps[j];
      const size_t r0 = (u0 - first[j]) * unit_rows[j], r1 = std::min(p.W->rows, (u1 - first[j]) * unit_rows[j]);
      if (quantized[j])
        quantized[j]->rows(*p.W, r0, r1, p.Y);
      else
        float_matrix_rows(*p.W, r0, r1, p.X, T, p.Y, packed[j].data());
    }
  }, Split::Contiguous, then);
}
}  // namespace

void matmuls(size_t T, std::initializer_list<Product> products) {
  if (T == 0) return;
  if (T < kPackedMinTokens) return products_grouped(T, {products.begin(), products.size()});
  // From kPackedMinTokens tokens each full-size product is a large job of its own; the low-rank
  // ones (a dimension of at most kLowRankMax, read from panels: RWKV-7's, 32 to 128 rows or
  // columns of 768) still go together in one job until the prefill's GEMM takes over. Each of
  // its own, at 16 tokens they cost 0.1B f16 1.46 ms of a 12.8 ms step (62–222 GFLOP/s,
  // instrumented); together 0.60 ms (B = 16 f16 1.022×, f32 1.068×, Q4_0 1.117×).
  std::vector<Product> low_rank;
  for (const Product& p : products)
    if (T < kGemmMinTokens && p.W->panels && std::min(p.W->rows, p.W->cols) <= kLowRankMax)
      low_rank.push_back(p);
    else
      matmul(p.X, T, *p.W, p.Y);
  if (!low_rank.empty()) products_grouped(T, low_rank);
}

void activate(Act act, const float* x, const float* bias, size_t T, size_t n, float* y) {
  if (T == 0 || n == 0) return;
  parallel_for(T, std::max<size_t>(1, 16384 / n), [&](size_t t0, size_t t1) {
    simd::activate(act, x + t0 * n, bias, t1 - t0, n, y + t0 * n);
  });
}

void matmul_reference(const float* X, size_t T, const Matrix& W, float* Y) {
  const size_t row_bytes = dtype_bytes(W.type, W.cols);
  std::vector<float> w(W.cols);
  for (size_t o = 0; o < W.rows; ++o) {
    dequantize(W.type, static_cast<const uint8_t*>(W.data) + o * row_bytes, w.data(), W.cols);
    for (size_t t = 0; t < T; ++t) {
      double s = 0;
      for (size_t i = 0; i < W.cols; ++i) s += static_cast<double>(w[i]) * X[t * W.cols + i];
      Y[t * W.rows + o] = static_cast<float>(s);
    }
  }
}

namespace {
using simd::normalize;

// Rows per piece of work for the norms: about 8k values.
size_t norm_grain(size_t row) { return std::max<size_t>(1, 8192 / std::max<size_t>(row, 1)); }
}  // namespace

// Rows are independent: both norms share them out over the thread pool.
void layer_norm(const float* x, size_t T, size_t n, const float* weight, const float* bias,
                float eps, float* y) {
  parallel_for(T, norm_grain(n), [&](size_t t0, size_t t1) {
    for (size_t t = t0; t < t1; ++t) normalize(x + t * n, n, weight, bias, eps, y + t * n);
  });
}

void add_layer_norm(float* x, const float* d, const float* d_bias, float scale, size_t T, size_t n,
                    const float* weight, const float* bias, float eps, float* y) {
  parallel_for(T, norm_grain(n), [&](size_t t0, size_t t1) {
    for (size_t t = t0; t < t1; ++t) {
      float* xt = x + t * n;
      const float* dt = d + t * n;
      for (size_t c = 0; c < n; ++c) xt[c] += dt[c];
      if (d_bias)
        for (size_t c = 0; c < n; ++c) xt[c] += d_bias[c];
      if (scale != 1.0f)
        for (size_t c = 0; c < n; ++c) xt[c] *= scale;
      if (weight) normalize(xt, n, weight, bias, eps, y + t * n);
    }
  });
}

void group_norm(const float* x, size_t T, size_t H, size_t N, const float* weight,
                const float* bias, float eps, float* y) {
  parallel_for(T, norm_grain(H * N), [&](size_t t0, size_t t1) {
    for (size_t t = t0; t < t1; ++t)
      for (size_t h = 0; h < H; ++h) {
        const size_t o = (t * H + h) * N;
        normalize(x + o, N, weight + h * N, bias + h * N, eps, y + o);
      }
  });
}

}  // namespace rwkv::cpu
