// Matrix-vector products (cpu::matmul, one token) for each weight type at the shapes of
// RWKV-7 0.1B (768×768 projections, 3072×768 FFN key, 65536×768 head), with 1 and 2 threads.
// Reports the weights' bytes per second, to set against the machine's read bandwidth (rwkv bench
// prints it). Enough copies of the matrix are cycled through that the weights come from DRAM,
// as in decoding a whole model, rather than from the last-level cache.
//   build/rwkv_bench --benchmark_filter=Matvec
// MatmulQuant: the block types against 4 and 16 tokens (batched decode).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>

#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/ops.hpp"
#include "kernels/cpu/simd.hpp"
#include "kernels/cpu/simd_bf16.hpp"
#include "kernels/cpu/simd_quant.hpp"

namespace {

using rwkv::DType;

// Random weights with sane scales: fp16 values for F16, random levels for the block types.
std::vector<uint8_t> random_matrix(DType type, size_t rows, size_t cols, std::mt19937& rng) {
  std::vector<uint8_t> W(rows * rwkv::dtype_bytes(type, cols));
  std::uniform_int_distribution<int> byte(0, 255);
  if (type == DType::F16) {
    std::normal_distribution<float> gauss(0.0f, 0.05f);
    for (size_t i = 0; i < W.size() / 2; ++i) {
      const uint16_t h = rwkv::fp32_to_fp16(gauss(rng));
      std::memcpy(&W[2 * i], &h, 2);
    }
    return W;
  }
  for (auto& b : W) b = static_cast<uint8_t>(byte(rng));
  const size_t bb = rwkv::dtype_block_bytes(type);
  const uint16_t d = rwkv::fp32_to_fp16(0.01f);
  for (size_t b = 0; b < W.size() / bb; ++b)  // fp16 d (Q6_K: at the end), then any minimum
    std::memcpy(&W[b * bb + (type == DType::Q6_K ? 208 : 0)], &d, 2);
  return W;
}

// n values from a standard normal distribution.
std::vector<float> gaussian(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> gauss;
  std::vector<float> x(n);
  for (float& v : x) v = gauss(rng);
  return x;
}

// T tokens' products (T = 1: matrix-vector). `in_cache`: one copy of the weights, small enough
// for the core's L2 cache, measures the kernel's arithmetic alone.
void products(benchmark::State& st, DType type, bool in_cache, size_t T) {
  const size_t rows = static_cast<size_t>(st.range(0)), cols = 768;
  rwkv::cpu::set_threads(static_cast<int>(st.range(1)));
  std::mt19937 rng(1);
  const size_t bytes = rows * rwkv::dtype_bytes(type, cols);
  const size_t copies = in_cache ? 1 : std::max<size_t>(1, (size_t(256) << 20) / bytes);
  const std::vector<std::vector<uint8_t>> W(copies, random_matrix(type, rows, cols, rng));
  // The types with an eight-row layout also interleaved by eights, float types in sixteen-row
  // panels, as models hold them (Model::matrix).
  const bool eights = rwkv::cpu::simd::has_rows8_layout(type) && rwkv::cpu::simd::rows8_kernel();
  const bool panels = rwkv::cpu::simd::has_panel_layout(type);
  const size_t copy_bytes = panels ? bytes : eights ? rwkv::cpu::simd::rows8_bytes(type, rows, cols) : 0;
  std::vector<std::vector<uint8_t>> W8(eights || panels ? copies : 0, std::vector<uint8_t>(copy_bytes));
  for (size_t i = 0; i < W8.size(); ++i)
    if (panels)
      rwkv::cpu::simd::interleave_panels16(type, W[i].data(), rows, cols, W8[i].data());
    else
      rwkv::cpu::simd::interleave_rows8(type, W[i].data(), rows, cols, W8[i].data());
  const std::vector<float> x = gaussian(T * cols, rng);
  std::vector<float> y(T * rows);
  size_t c = 0;
  for (auto _ : st) {
    rwkv::cpu::Matrix M{type, W[c].data(), rows, cols};
    if (eights) M.rows8 = W8[c].data();
    if (panels) M.panels = W8[c].data();
    rwkv::cpu::matmul(x.data(), T, M, y.data());
    benchmark::DoNotOptimize(y.data());
    c = (c + 1) % copies;
  }
  st.SetBytesProcessed(static_cast<int64_t>(bytes) * st.iterations());
  st.SetItemsProcessed(static_cast<int64_t>(T) * st.iterations());  // tokens
  rwkv::cpu::set_threads(0);
}

void Matvec(benchmark::State& st, DType type) { products(st, type, false, 1); }
void MatvecInCache(benchmark::State& st, DType type) { products(st, type, true, 1); }
// Block-type products of a few tokens (batched decode; the eight-row kernels take 2–4 tokens
// per pass), the FFN key's shape, 2 threads: items/s is tokens per second.
void MatmulQuant(benchmark::State& st, DType type) { products(st, type, false, static_cast<size_t>(st.range(2))); }

void Shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "threads"})->ArgsProduct({{768, 3072, 65536}, {1, 2}})->UseRealTime();
}
void SmallShape(benchmark::internal::Benchmark* b) { b->ArgNames({"rows", "threads"})->Args({256, 1}); }

BENCHMARK_CAPTURE(Matvec, f16, DType::F16)->Apply(Shapes);
BENCHMARK_CAPTURE(Matvec, q8_0, DType::Q8_0)->Apply(Shapes);
BENCHMARK_CAPTURE(Matvec, q5_1, DType::Q5_1)->Apply(Shapes);
BENCHMARK_CAPTURE(Matvec, q5_0, DType::Q5_0)->Apply(Shapes);
BENCHMARK_CAPTURE(Matvec, q4_1, DType::Q4_1)->Apply(Shapes);
BENCHMARK_CAPTURE(Matvec, q4_0, DType::Q4_0)->Apply(Shapes);
BENCHMARK_CAPTURE(Matvec, q6_k, DType::Q6_K)->Apply(Shapes);
BENCHMARK_CAPTURE(Matvec, q5_k, DType::Q5_K)->Apply(Shapes);
BENCHMARK_CAPTURE(Matvec, q4_k, DType::Q4_K)->Apply(Shapes);

void FewTokens(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "threads", "tokens"})->ArgsProduct({{3072}, {2}, {4, 16}})->UseRealTime();
}
// The same kernels' arithmetic alone: 256 rows in L2, 1 thread, 1, 4 and 16 tokens (on AVX-512
// VNNI a pass takes up to 8 tokens, so 16 cost two passes; vpdpbusd's own peak on Zen 5 is 4 ×
// float32 FMA's multiply-adds, about 538 G/s a core).
void MatmulQuantInCache(benchmark::State& st, DType type) { products(st, type, true, static_cast<size_t>(st.range(2))); }
void FewTokensInCache(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "threads", "tokens"})->ArgsProduct({{256}, {1}, {1, 4, 16}});
}
BENCHMARK_CAPTURE(MatmulQuantInCache, q8_0, DType::Q8_0)->Apply(FewTokensInCache);
BENCHMARK_CAPTURE(MatmulQuantInCache, q4_0, DType::Q4_0)->Apply(FewTokensInCache);
BENCHMARK_CAPTURE(MatmulQuant, q8_0, DType::Q8_0)->Apply(FewTokens);
BENCHMARK_CAPTURE(MatmulQuant, q4_0, DType::Q4_0)->Apply(FewTokens);
BENCHMARK_CAPTURE(MatmulQuant, q4_k, DType::Q4_K)->Apply(FewTokens);
BENCHMARK_CAPTURE(MatmulQuant, q6_k, DType::Q6_K)->Apply(FewTokens);

}  // namespace

namespace {
BENCHMARK_CAPTURE(MatvecInCache, f16, DType::F16)->Apply(SmallShape);
BENCHMARK_CAPTURE(MatvecInCache, q8_0, DType::Q8_0)->Apply(SmallShape);
BENCHMARK_CAPTURE(MatvecInCache, q5_1, DType::Q5_1)->Apply(SmallShape);
BENCHMARK_CAPTURE(MatvecInCache, q5_0, DType::Q5_0)->Apply(SmallShape);
BENCHMARK_CAPTURE(MatvecInCache, q4_1, DType::Q4_1)->Apply(SmallShape);
BENCHMARK_CAPTURE(MatvecInCache, q4_0, DType::Q4_0)->Apply(SmallShape);
BENCHMARK_CAPTURE(MatvecInCache, q6_k, DType::Q6_K)->Apply(SmallShape);
BENCHMARK_CAPTURE(MatvecInCache, q5_k, DType::Q5_K)->Apply(SmallShape);
BENCHMARK_CAPTURE(MatvecInCache, q4_k, DType::Q4_K)->Apply(SmallShape);
}  // namespace

// Matrix-matrix (prefill): T = 512 tokens against the 0.1B shapes, f16 and f32 weights,
// 1 and 2 threads; reports GFLOP/s (2 per weight per token), to set against the FMA peak
// that `rwkv bench` measures. MatmulBf16Dots/f16 runs on bfloat16 dot products where the CPU has
// them (cpu::Bf16Dots::All), Matmul/f16 on float32 FMAs.
//   build/rwkv_bench --benchmark_filter=Matmul
namespace {
// T tokens against rows × cols float weights (st's arguments: rows, cols, threads); `dots`: the
// products' arithmetic for the run (rwkv::cpu::set_bf16_dots), restored after.
void matmul_tokens(benchmark::State& st, DType type, size_t T,
                   rwkv::cpu::Bf16Dots dots = rwkv::cpu::Bf16Dots::Bf16Weights) {
  const auto setting = rwkv::cpu::set_bf16_dots(dots);
  const size_t rows = static_cast<size_t>(st.range(0)), cols = static_cast<size_t>(st.range(1));
  rwkv::cpu::set_threads(static_cast<int>(st.range(2)));
  std::mt19937 rng(1);
  std::vector<uint8_t> W(rows * rwkv::dtype_bytes(type, cols));
  std::normal_distribution<float> gauss(0.0f, 0.05f);
  for (size_t i = 0; i < rows * cols; ++i) {
    const float v = gauss(rng);
    if (type == DType::F16) {
      const uint16_t h = rwkv::fp32_to_fp16(v);
      std::memcpy(&W[2 * i], &h, 2);
    } else {
      std::memcpy(&W[4 * i], &v, 4);
    }
  }
  std::vector<float> x(T * cols), y(T * rows);
  for (float& v : x) v = gauss(rng);
  rwkv::cpu::Matrix M{type, W.data(), rows, cols};
  // Sixteen-row panels as models hold them (float32: the full-size matrices, and the low-rank ones
  // whose rows fill whole panels).
  const bool has_panels =
      rwkv::cpu::simd::has_panel_layout(type) && (type != DType::F32 || std::min(rows, cols) > rwkv::cpu::kLowRankMax || rows % 16 == 0);
  // (64-byte aligned, as a model's copies are: a float32 panel column is one cache line.)
  std::vector<uint8_t> panels(has_panels ? W.size() + 64 : 0);
  if (!panels.empty()) {
    uint8_t* at = panels.data() + (64 - reinterpret_cast<uintptr_t>(panels.data()) % 64) % 64;
    rwkv::cpu::simd::interleave_panels16(type, W.data(), rows / 16 * 16, cols, at);
    M.panels = at;
  }
  for (auto _ : st) {
    rwkv::cpu::matmul(x.data(), T, M, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(rows * cols * T) * double(st.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
  rwkv::cpu::set_threads(0);
  rwkv::cpu::set_bf16_dots(setting);
}
void Matmul(benchmark::State& st, DType type) { matmul_tokens(st, type, 512); }
// f16 on bfloat16 dot products where the CPU has them (cpu::Bf16Dots::All; Matmul/f16 runs on
// float32 FMAs by default).
void MatmulBf16Dots(benchmark::State& st, DType type) { matmul_tokens(st, type, 512, rwkv::cpu::Bf16Dots::All); }
void GemmShapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "cols", "threads"})
      ->ArgsProduct({{768, 3072}, {768}, {1, 2}})
      ->Args({768, 3072, 1})
      ->Args({768, 3072, 2})
      ->Args({32, 768, 2})  // RWKV-7's low-rank products: few rows, then few columns
      ->Args({768, 64, 2})
      ->Args({768, 32, 2})
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}
BENCHMARK_CAPTURE(Matmul, f16, DType::F16)->Apply(GemmShapes);
BENCHMARK_CAPTURE(MatmulBf16Dots, f16, DType::F16)->Apply(GemmShapes);
BENCHMARK_CAPTURE(Matmul, f32, DType::F32)->Apply(GemmShapes);

// Batched decode: 16 tokens (f32: tokens packed along the lanes; f16: groups of tokens against
// sixteen-row panels) against the 0.1B shapes and its 65536-row head, whose 100 MB of f16 weights come
// from memory; GFLOP/s as above.
//   build/rwkv_bench --benchmark_filter=MatmulBatch
void MatmulBatch(benchmark::State& st, DType type) { matmul_tokens(st, type, 16); }
void MatmulBatchBf16Dots(benchmark::State& st, DType type) {  // (cpu::Bf16Dots::All)
  matmul_tokens(st, type, 16, rwkv::cpu::Bf16Dots::All);
}
void BatchShapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "cols", "threads"})
      ->ArgsProduct({{768, 3072, 65536}, {768}, {1, 2}})
      ->Args({768, 3072, 2})
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}
BENCHMARK_CAPTURE(MatmulBatch, f16, DType::F16)->Apply(BatchShapes);
BENCHMARK_CAPTURE(MatmulBatchBf16Dots, f16, DType::F16)->Apply(BatchShapes);
BENCHMARK_CAPTURE(MatmulBatch, f32, DType::F32)->Apply(BatchShapes);
// The same with 4 tokens (B = 4): 768 × 768 in L2 (the kernel's arithmetic) and the head from memory.
//   build/rwkv_bench --benchmark_filter=MatmulFour
void MatmulFour(benchmark::State& st, DType type) { matmul_tokens(st, type, 4); }
BENCHMARK_CAPTURE(MatmulFour, f16, DType::F16)
    ->ArgNames({"rows", "cols", "threads"})
    ->Args({768, 768, 1})
    ->Args({65536, 768, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The same f32 products by OpenBLAS's sgemm (Y = X·Wᵀ), for the choice of our own GEMM for
// prefill (docs/DEPENDENCIES.md): compare with Matmul/f32 at the same shape and threads.
void OpenBlasSgemm(benchmark::State& st) {
  const size_t rows = static_cast<size_t>(st.range(0)), cols = static_cast<size_t>(st.range(1)), T = 512;
  openblas_set_num_threads(static_cast<int>(st.range(2)));
  std::mt19937 rng(1);
  std::normal_distribution<float> gauss(0.0f, 0.05f);
  std::vector<float> W(rows * cols), x(T * cols), y(T * rows);
  for (float& v : W) v = gauss(rng);
  for (float& v : x) v = gauss(rng);
  for (auto _ : st) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(T), static_cast<int>(rows),
                static_cast<int>(cols), 1.0f, x.data(), static_cast<int>(cols), W.data(), static_cast<int>(cols), 0.0f,
                y.data(), static_cast<int>(rows));
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(rows * cols * T) * double(st.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
  openblas_set_num_threads(1);
}
BENCHMARK(OpenBlasSgemm)->Apply(GemmShapes);
}  // namespace
// The GEMM's ceiling: 64 rows × 256 columns against T tokens, all in L1/L2, 1 thread: f32 weights
// packed on every call (the GEMM of float32 matrices without panels: a caller's, RWKV-7's
// low-rank ones) or read from their sixteen-row panels (a model's full-size float32 matrices),
// f16 from their panels, on float32 FMAs and on bfloat16 dot products (the activations rounded
// once, outside the loop, as matmul does).
//   build/rwkv_bench --benchmark_filter=GemmInCache
namespace {
// (dots: f16 on bfloat16 dot products; f32_panels: float32 from panels.)
void GemmInCache(benchmark::State& st, DType type, bool dots = false, bool f32_panels = false) {
  const size_t rows = 64, cols = 256, T = static_cast<size_t>(st.range(0));
  std::vector<float> w32(rows * cols), panels32(rows * cols);
  std::vector<uint16_t> w16(rows * cols), panels(rows * cols);
  for (size_t i = 0; i < w32.size(); ++i) w32[i] = 0.01f * float(i % 37), w16[i] = rwkv::fp32_to_fp16(w32[i]);
  rwkv::cpu::simd::interleave_panels16(DType::F16, w16.data(), rows, cols, panels.data());
  rwkv::cpu::simd::interleave_panels16(DType::F32, w32.data(), rows, cols, panels32.data());
  std::vector<float> x(T * cols, 0.5f), y(T * rows);
  if (dots && !rwkv::cpu::simd::bf16_dots_supported()) return st.SkipWithError("no AVX512_BF16 here");
  std::vector<uint16_t> xb(T * cols);
  if (rwkv::cpu::simd::bf16_packs(T))  // (a few tokens: packed, as matmul hands them over)
    rwkv::cpu::simd::round_bf16_packed(x.data(), T, cols, xb.data());
  else
    rwkv::cpu::simd::round_bf16(x.data(), T, cols, xb.data());
  for (auto _ : st) {
    if (f32_panels)
      rwkv::cpu::simd::panel_rows(DType::F32, panels32.data(), cols, 0, rows, x.data(), T, y.data(), rows, nullptr);
    else if (type == DType::F32)
      rwkv::cpu::simd::gemm_rows(w32.data(), cols, 0, rows, x.data(), T, y.data(), rows);
    else if (dots)
      rwkv::cpu::simd::panel_rows_bf16(DType::F16, panels.data(), cols, 0, rows, xb.data(), T, y.data(), rows);
    else
      rwkv::cpu::simd::panel_rows(DType::F16, panels.data(), cols, 0, rows, x.data(), T, y.data(), rows, nullptr);
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(rows * cols * T) * double(st.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(GemmInCache, f32, DType::F32)->Arg(60)->Arg(240);
BENCHMARK_CAPTURE(GemmInCache, f32_panels, DType::F32, false, true)->Arg(60)->Arg(240);
BENCHMARK_CAPTURE(GemmInCache, f16, DType::F16)->Arg(60)->Arg(240);
BENCHMARK_CAPTURE(GemmInCache, f16_bf16_dots, DType::F16, true)->Arg(60)->Arg(240);

// The WKV scans, one head of 64 over T tokens, 1 thread: tokens/s (× heads × layers per model
// token). T = 1 is decode, T = 512 prefill. `width` 64: the head's values alone (in L2);
// 768: each input a [T][768] array as in a 0.1B prefill (1.5 MB each, in L3), the calls taking
// the 12 heads in turn.
//   build/rwkv_bench --benchmark_filter=Wkv
struct ScanInputs {
  size_t T, width, N = 64;
  std::vector<float> r, w, k, v, a, b, y, S;
  ScanInputs(size_t T_, size_t width_, unsigned seed) : T(T_), width(width_) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-0.1f, 0.1f), decay(0.9f, 1.0f);
    for (auto* vec : {&r, &k, &v, &a, &b, &y}) vec->resize(T * width);
    S.resize(width / N * N * N);
    for (auto* vec : {&r, &k, &v, &a, &b, &S}) for (float& x : *vec) x = u(rng);
    w.resize(T * width);
    for (float& x : w) x = decay(rng);
  }
  size_t heads() const { return width / N; }
};
void WkvArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"T", "width"})->Args({1, 64})->Args({512, 64})->Args({512, 768});
}

void Wkv7(benchmark::State& st) {
  ScanInputs in(static_cast<size_t>(st.range(0)), static_cast<size_t>(st.range(1)), 3);
  const size_t N = in.N;
  size_t h = 0;
  for (auto _ : st) {
    const size_t o = h * N;
    rwkv::cpu::simd::wkv7_head(in.T, in.width, N, &in.r[o], &in.w[o], &in.k[o], &in.v[o], &in.a[o], &in.b[o],
                               &in.S[h * N * N], &in.y[o]);
    benchmark::DoNotOptimize(in.y.data());
    h = (h + 1) % in.heads();
  }
  st.counters["tokens/s"] = benchmark::Counter(double(in.T) * double(st.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(Wkv7)->Apply(WkvArgs);

// The RWKV-5/6 scan (decay per token and channel, as RWKV-6).
void Wkv5(benchmark::State& st) {
  ScanInputs in(static_cast<size_t>(st.range(0)), static_cast<size_t>(st.range(1)), 4);
  const size_t N = in.N;
  size_t h = 0;
  for (auto _ : st) {
    const size_t o = h * N;
    rwkv::cpu::simd::wkv5_head(in.T, in.width, in.width, N, &in.r[o], &in.k[o], &in.v[o], &in.w[o], &in.a[o],
                               &in.S[h * N * N], &in.y[o]);
    benchmark::DoNotOptimize(in.y.data());
    h = (h + 1) % in.heads();
  }
  st.counters["tokens/s"] = benchmark::Counter(double(in.T) * double(st.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(Wkv5)->Apply(WkvArgs);

// The benchmarks below, one token's element-wise work: values processed per second.
void count_values(benchmark::State& st, size_t n) {
  st.counters["values/s"] = benchmark::Counter(double(n) * double(st.iterations()), benchmark::Counter::kIsRate);
}

// Quantizing one token's activations for the block types (per 32 values, Q8_0-style) and the
// K-quants (per 256), at the widths a decode step quantizes (768: the projections' inputs, 3072:
// the FFN value's), 1 thread, the values in L1: ns per call.
//   build/rwkv_bench --benchmark_filter=QuantizeActivations
void QuantizeActivations(benchmark::State& st, bool k_quants) {
  const size_t n = static_cast<size_t>(st.range(0));
  std::mt19937 rng(5);
  const std::vector<float> x = gaussian(n, rng);
  std::vector<rwkv::cpu::Q8Block> q(n / 32);
  std::vector<rwkv::cpu::Q8KBlock> qk(n / 256);
  for (auto _ : st) {
    if (k_quants)
      rwkv::cpu::simd::quantize_q8_k(x.data(), n, qk.data());
    else
      rwkv::cpu::simd::quantize_q8(x.data(), n, q.data());
    benchmark::DoNotOptimize(q.data());
    benchmark::DoNotOptimize(qk.data());
  }
  count_values(st, n);
}
BENCHMARK_CAPTURE(QuantizeActivations, q8, false)->Arg(768)->Arg(3072);
BENCHMARK_CAPTURE(QuantizeActivations, q8_k, true)->Arg(768)->Arg(3072);

// The element-wise kernels one decoded token runs per layer, over 768 values (3072 for the FFN's
// squared ReLU), 1 thread, in L1: values/s.
//   build/rwkv_bench --benchmark_filter='Activate|Normalize'
void Activate(benchmark::State& st, rwkv::cpu::simd::Act act) {
  const size_t n = static_cast<size_t>(st.range(0));
  std::mt19937 rng(6);
  const std::vector<float> x = gaussian(n, rng), bias = gaussian(n, rng);
  std::vector<float> y(n);
  for (auto _ : st) {
    rwkv::cpu::simd::activate(act, x.data(), bias.data(), 1, n, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  count_values(st, n);
}
BENCHMARK_CAPTURE(Activate, sigmoid, rwkv::cpu::simd::Act::Sigmoid)->Arg(768);
BENCHMARK_CAPTURE(Activate, tanh, rwkv::cpu::simd::Act::Tanh)->Arg(768);
BENCHMARK_CAPTURE(Activate, decay_rwkv7, rwkv::cpu::simd::Act::DecayRwkv7)->Arg(768);
BENCHMARK_CAPTURE(Activate, relu_sq, rwkv::cpu::simd::Act::ReluSq)->Arg(3072);

void Normalize(benchmark::State& st) {
  const size_t n = static_cast<size_t>(st.range(0));
  std::mt19937 rng(7);
  const std::vector<float> x = gaussian(n, rng), w = gaussian(n, rng), b = gaussian(n, rng);
  std::vector<float> y(n);
  for (auto _ : st) {
    rwkv::cpu::simd::normalize(x.data(), n, w.data(), b.data(), 1e-5f, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  count_values(st, n);
}
BENCHMARK(Normalize)->Arg(64)->Arg(768);
}  // namespace
