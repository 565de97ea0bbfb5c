// Every CPU kernel against a slow, obvious reference computed in double.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include <hwy/targets.h>

#include "io/error.hpp"
#include "kernels/cpu/ops.hpp"
#include "kernels/cpu/simd.hpp"
#include "kernels/cpu/simd_bf16.hpp"
#include "kernels/cpu/thread_pool.hpp"
#include "kernels/cpu/wkv.hpp"
#include "test_util.hpp"

namespace rwkv {
namespace {

std::vector<float> random_vec(size_t n, std::mt19937& rng, float lo = -1, float hi = 1) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// The values as float16 or bfloat16 (`type`) bits.
std::vector<uint16_t> to_16bit(DType type, const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = type == DType::F16 ? fp32_to_fp16(v[i]) : fp32_to_bf16(v[i]);
  return h;
}

// fn() under each instruction set compiled in and run by this CPU (AVX-512, AVX2, SSE4, ...,
// emulated), the set's name in the trace of any failure; the CPU's own choice restored after.
template <class Fn>
void on_every_target(const Fn& fn) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    SCOPED_TRACE(hwy::TargetName(target));
    hwy::SetSupportedTargetsForTest(target);
    fn();
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(Kernels, MatmulF32MatchesReferenceForOneAndManyTokens) {
  std::mt19937 rng(1);
  const size_t in = 67, out = 45;
  auto W = random_vec(in * out, rng);
  for (size_t T : {1, 2, 17}) {
    auto X = random_vec(T * in, rng);
    std::vector<float> Y(T * out);
    cpu::matmul(X.data(), T, {DType::F32, W.data(), out, in}, Y.data());
    for (size_t t = 0; t < T; ++t)
      for (size_t o = 0; o < out; ++o) {
        double ref = 0;
        for (size_t i = 0; i < in; ++i) ref += double(X[t * in + i]) * W[o * in + i];
        ASSERT_NEAR(Y[t * out + o], ref, 1e-4) << T << " " << t << " " << o;
      }
  }
}

// The SIMD float kernels (f32, f16, bf16 weights, here without panels) against the decoded
// double reference, for shapes that exercise every row and token tail, float32's three paths
// (under 16 tokens; tokens packed along the lanes; the packed GEMM from 64 tokens) and the
// 16-bit types' row kernel for any number of tokens, several column chunks (in = 3000) and
// several row blocks (out = 200).
// The float matmul for one weight type and shape against the double reference.
void expect_float_matmul_matches_reference(DType type, size_t in, size_t out, size_t T, std::mt19937& rng) {
  auto w32 = random_vec(in * out, rng);
  const std::vector<uint16_t> w16 = to_16bit(type, w32);
  const void* data = type == DType::F32 ? static_cast<const void*>(w32.data()) : w16.data();
  const cpu::Matrix W{type, data, out, in};
  auto X = random_vec(T * in, rng);
  std::vector<float> Y(T * out), R(T * out);
  cpu::matmul(X.data(), T, W, Y.data());
  cpu::matmul_reference(X.data(), T, W, R.data());
  for (size_t i = 0; i < Y.size(); ++i)
    ASSERT_NEAR(Y[i], R[i], 2e-6 * in) << dtype_name(type) << " in=" << in << " out=" << out << " T=" << T;
}

TEST(Kernels, MatmulFloatTypesMatchReference) {
  std::mt19937 rng(11);
  for (DType type : {DType::F32, DType::F16, DType::BF16})
    for (size_t in : {5, 64, 301, 3000})
      for (size_t out : {1, 7, 33, 200})
        for (size_t T : {1, 2, 7, 13, 16, 40, 101}) expect_float_matmul_matches_reference(type, in, out, T, rng);
}

// A GEMM of few rows and many tokens is cut along the tokens as well (blocks of whole groups
// of 6 tokens, the last one short), with any number of threads.
TEST(Kernels, MatmulFewRowsManyTokensMatchesReference) {
  std::mt19937 rng(12);
  for (int threads : {1, 2, 3}) {
    cpu::set_threads(threads);
    for (auto [out, T] : {std::pair<size_t, size_t>{7, 389}, {33, 300}, {64, 512}, {128, 257}})
      expect_float_matmul_matches_reference(DType::F16, 301, out, T, rng);
  }
  cpu::set_threads(0);
}

// Each instruction set compiled in and run by this CPU (AVX-512, AVX2, SSE4, ..., emulated):
// their vectors differ in width, and so do the GEMM's panels of rows.
TEST(Kernels, MatmulFloatEveryInstructionSetMatchesReference) {
  std::mt19937 rng(15);
  on_every_target([&] {
    for (DType type : {DType::F32, DType::F16, DType::BF16})
      for (size_t out : {5, 70})
        for (size_t T : {1, 7, 40, 70}) expect_float_matmul_matches_reference(type, 301, out, T, rng);
  });
}

// The batched-decode kernel called directly (float32 weights), on every instruction set here:
// any number of tokens (groups of one vector of tokens when all fit one, two otherwise, a short
// last group), rows split in two calls at a point that is not a whole group of rows, column
// tails and several chunks of columns (in = 2100).
TEST(Kernels, PackedRowsEveryInstructionSetMatchesReference) {
  std::mt19937 rng(16);
  on_every_target([&] {
    for (size_t in : {7, 301, 2100})
      for (size_t T : {1, 3, 4, 5, 8, 9, 16, 17, 40}) {
        const size_t out = 31, split = 13;
        auto W = random_vec(in * out, rng);
        auto X = random_vec(T * in, rng);
        const size_t G = cpu::simd::token_group(T);
        std::vector<float> Xp((T + G - 1) / G * G * in), Y(T * out), R(T * out);
        cpu::simd::pack_tokens(X.data(), T, in, G, Xp.data());
        cpu::simd::packed_rows(W.data(), in, 0, split, Xp.data(), T, Y.data(), out);
        cpu::simd::packed_rows(W.data(), in, split, out, Xp.data(), T, Y.data(), out);
        cpu::matmul_reference(X.data(), T, {DType::F32, W.data(), out, in}, R.data());
        for (size_t i = 0; i < Y.size(); ++i) ASSERT_NEAR(Y[i], R[i], 2e-6 * in) << "in=" << in << " T=" << T << " i=" << i;
      }
  });
}

// Float matrices with sixteen-row panels (as models load them): the products read the panels,
// and the rows past the last whole panel as stored, for every path (one token; a few; the
// GEMM's many, in several chunks of columns with in = 3000; on bfloat16 dot products, the pairs
// made in registers up to 95 tokens and unpacked from 96) and every instruction set here (a
// float16 panel column is 2 vectors on AVX2, 1 on AVX-512, 4 on SSE4). The rows copied into
// panels are then overwritten in the original, so that reading them from there instead could
// not pass. Float16 and bfloat16 GEMMs both ways where the CPU has bfloat16 dot products: on
// float32 FMAs, and on the dot products, whose results equal the product of the operands
// rounded to bfloat16 (and differ from the unrounded one by far more than the tolerance).
TEST(Kernels, MatmulFromSixteenRowPanelsMatchesReference) {
  std::mt19937 rng(17);
  const auto setting = cpu::set_bf16_dots(cpu::Bf16Dots::All);
  on_every_target([&] {
    for (bool dots : {false, true})
    for (DType type : {DType::F32, DType::F16, DType::BF16})
      for (size_t in : {7, 301, 3000})
        for (size_t out : {16, 50, 70, 90})  // 1, 3, 4 and 5 panels (AVX-512 takes them in pairs)
          for (size_t T : {1, 2, 3, 5, 7, 13, 16, 23, 40, 70, 100}) {
            if (in == 3000 && T != 1 && T != 70 && T != 100) continue;
            if (dots && (type == DType::F32 || T < 16)) continue;  // (the same path as without)
            cpu::set_bf16_dots(dots ? cpu::Bf16Dots::All : cpu::Bf16Dots::Off);
            const auto w32 = random_vec(in * out, rng);
            const size_t e = dtype_bytes(type, 1), whole = out / 16 * 16 * in * e;
            std::vector<uint8_t> w(in * out * e), panels(whole);
            if (type == DType::F32)
              std::memcpy(w.data(), w32.data(), w.size());
            else
              std::memcpy(w.data(), to_16bit(type, w32).data(), w.size());
            cpu::simd::interleave_panels16(type, w.data(), out / 16 * 16, in, panels.data());
            auto X = random_vec(T * in, rng);
            std::vector<float> Y(T * out), R(T * out);
            cpu::matmul_reference(X.data(), T, {type, w.data(), out, in}, R.data());
            const char* nan = type == DType::F32 ? "\x00\x00\xc0\x7f" : type == DType::F16 ? "\x00\x7e" : "\xc0\x7f";
            for (size_t i = 0; i < whole; i += e) std::memcpy(&w[i], nan, e);
            cpu::Matrix W{type, w.data(), out, in};
            W.panels = panels.data();
            cpu::matmul(X.data(), T, W, Y.data());
            if (T >= 16 && out >= 64 && cpu::bf16_dots(type)) {
              // On bfloat16 dot products (from 16 tokens and 64 rows): the panels' rows equal the
              // product of the activations and weights rounded to bfloat16 (the rows past them:
              // float32).
              auto round = [](std::vector<float> v) {
                for (float& x : v) x = bf16_to_fp32(fp32_to_bf16(x));
                return v;
              };
              std::vector<float> stored(in * out);  // the weights as the file holds them
              const auto bits = to_16bit(type, w32);
              for (size_t i = 0; i < stored.size(); ++i)
                stored[i] = type == DType::F16 ? fp16_to_fp32(bits[i]) : bf16_to_fp32(bits[i]);
              const auto Xr = round(X), Wr = round(stored);
              std::vector<float> Rr(R.size());
              cpu::matmul_reference(Xr.data(), T, {DType::F32, Wr.data(), out / 16 * 16, in}, Rr.data());
              for (size_t t = 0; t < T; ++t)
                for (size_t o = 0; o < out / 16 * 16; ++o) R[t * out + o] = Rr[t * (out / 16 * 16) + o];
            }
            for (size_t i = 0; i < Y.size(); ++i)
              ASSERT_NEAR(Y[i], R[i], 2e-6 * in)
                  << dtype_name(type) << " in=" << in << " out=" << out << " T=" << T << " bf16 dots " << dots;
          }
  });
  cpu::set_bf16_dots(setting);
}

// Which products take bfloat16 dot products: RWKV_BF16_DOTS's words, and by default bfloat16
// weights only (float16 ones would be rounded too: on request, Bf16Dots::All).
TEST(Kernels, Bf16DotsSettingDecidesWhichWeightTypes) {
  EXPECT_EQ(cpu::bf16_dots_setting(nullptr), cpu::Bf16Dots::Bf16Weights);
  EXPECT_EQ(cpu::bf16_dots_setting(""), cpu::Bf16Dots::Bf16Weights);
  EXPECT_EQ(cpu::bf16_dots_setting("bf16"), cpu::Bf16Dots::Bf16Weights);
  EXPECT_EQ(cpu::bf16_dots_setting("off"), cpu::Bf16Dots::Off);
  EXPECT_EQ(cpu::bf16_dots_setting("all"), cpu::Bf16Dots::All);
  EXPECT_THROW(cpu::bf16_dots_setting("1"), Error);
  const bool here = cpu::simd::bf16_dots_supported();
  const auto setting = cpu::set_bf16_dots(cpu::Bf16Dots::Bf16Weights);
  EXPECT_FALSE(cpu::bf16_dots(DType::F16));
  EXPECT_EQ(cpu::bf16_dots(DType::BF16), here);
  EXPECT_FALSE(cpu::bf16_dots(DType::F32));
  cpu::set_bf16_dots(cpu::Bf16Dots::All);
  EXPECT_EQ(cpu::bf16_dots(DType::F16), here);
  EXPECT_FALSE(cpu::bf16_dots(DType::Q8_0));
  cpu::set_bf16_dots(cpu::Bf16Dots::Off);
  EXPECT_FALSE(cpu::bf16_dots(DType::BF16));
  EXPECT_EQ(cpu::set_bf16_dots(setting), cpu::Bf16Dots::Off);
}

// Rounding to bfloat16 for the dot products: to nearest, ties to even (as fp32_to_bf16), NaN
// kept a NaN, infinity an infinity, and a zero after the last value of an odd-length row.
TEST(Kernels, RoundBf16RoundsToNearestEven) {
  std::mt19937 rng(18);
  on_every_target([&] {
    for (size_t cols : {1, 16, 37}) {
      auto X = random_vec(3 * cols, rng, -100, 100);
      X[cols - 1] = 1.0f + 3.0f / 256;  // a tie: up to 1 + 1/64
      X[0] = 1.0f + 1.0f / 256;         // a tie: down to 1
      uint32_t nan = 0x7FFFFFFF;        // a NaN whose payload would carry into the sign
      std::memcpy(&X[cols + cols / 2], &nan, 4);
      X[2 * cols] = -std::numeric_limits<float>::infinity();
      const size_t ld = cpu::simd::bf16_stride(cols);
      std::vector<uint16_t> Xb(3 * ld, 0xFFFF);
      cpu::simd::round_bf16(X.data(), 3, cols, Xb.data());
      for (size_t t = 0; t < 3; ++t) {
        for (size_t i = 0; i < cols; ++i) ASSERT_EQ(Xb[t * ld + i], fp32_to_bf16(X[t * cols + i])) << cols << " " << i;
        if (t == 1) {
          EXPECT_TRUE(std::isnan(bf16_to_fp32(Xb[ld + cols / 2]))) << cols;
        }
        if (ld > cols) {
          EXPECT_EQ(Xb[t * ld + cols], 0);
        }
      }
      EXPECT_EQ(bf16_to_fp32(Xb[0]), 1.0f);
      if (cols > 1) {
        EXPECT_EQ(bf16_to_fp32(Xb[cols - 1]), 1.0f + 1.0f / 64);
      }
    }
  });
}

// Several products in one job (decode) give what each gives alone: float and block types,
// different inputs and shapes, and an empty matrix (RWKV-7's layer 0 has no v1/v2).
TEST(Kernels, MatmulsEqualSeparateMatmuls) {
  std::mt19937 rng(16);
  const size_t cols = 256;
  auto w32 = random_vec(40 * cols, rng);
  std::vector<uint16_t> w16(70 * cols);
  for (auto& h : w16) h = fp32_to_fp16(std::uniform_real_distribution<float>(-1, 1)(rng));
  std::vector<uint8_t> wq(33 * dtype_bytes(DType::Q4_0, cols));
  for (auto& b : wq) b = static_cast<uint8_t>(rng());
  for (size_t b = 0; b < wq.size() / 18; ++b) {
    const uint16_t d = fp32_to_fp16(0.01f);
    std::memcpy(&wq[b * 18], &d, 2);
  }
  cpu::Matrix A{DType::F32, w32.data(), 40, cols}, B{DType::F16, w16.data(), 70, cols},
      Q{DType::Q4_0, wq.data(), 33, cols}, empty{};
  // With panels as models hold them: a low-rank float32 one (48 rows: from 16 tokens it joins
  // the other low-rank products in one job) and a full-size float16 one (a job of its own).
  const size_t wide = 320;
  auto l32 = random_vec(48 * cols, rng);
  std::vector<uint16_t> f16(288 * wide);
  for (auto& h : f16) h = fp32_to_fp16(std::uniform_real_distribution<float>(-1, 1)(rng));
  std::vector<float> l32_panels(l32.size());
  std::vector<uint16_t> f16_panels(f16.size());
  cpu::simd::interleave_panels16(DType::F32, l32.data(), 48, cols, l32_panels.data());
  cpu::simd::interleave_panels16(DType::F16, f16.data(), 288, wide, f16_panels.data());
  cpu::Matrix L{DType::F32, l32.data(), 48, cols}, F{DType::F16, f16.data(), 288, wide};
  L.panels = l32_panels.data();
  F.panels = f16_panels.data();
  for (size_t T : {1, 3, 16, 20}) {
    auto x1 = random_vec(T * cols, rng), x2 = random_vec(T * cols, rng), x3 = random_vec(T * wide, rng);
    std::vector<float> ya(T * 40), yb(T * 70), yq(T * 33), yl(T * 48), yf(T * 288);
    std::vector<float> ra(ya.size()), rb(yb.size()), rq(yq.size()), rl(yl.size()), rf(yf.size());
    cpu::matmuls(T, {{x1.data(), &A, ya.data()}, {x2.data(), &B, yb.data()}, {x1.data(), &empty, nullptr},
                     {x2.data(), &Q, yq.data()}, {x3.data(), &F, yf.data()}, {x1.data(), &L, yl.data()}});
    cpu::matmul(x1.data(), T, A, ra.data());
    cpu::matmul(x2.data(), T, B, rb.data());
    cpu::matmul(x2.data(), T, Q, rq.data());
    cpu::matmul(x1.data(), T, L, rl.data());
    cpu::matmul(x3.data(), T, F, rf.data());
    EXPECT_EQ(ya, ra) << T;
    EXPECT_EQ(yb, rb) << T;
    EXPECT_EQ(yq, rq) << T;
    EXPECT_EQ(yl, rl) << T;
    EXPECT_EQ(yf, rf) << T;
    // And the panels' products equal the rows' (float32: the same sums in the same order).
    std::vector<float> plain(yl.size());
    cpu::matmul(x1.data(), T, cpu::Matrix{DType::F32, l32.data(), 48, cols}, plain.data());
    for (size_t i = 0; i < plain.size(); ++i) ASSERT_NEAR(yl[i], plain[i], 1e-4f * (1 + std::fabs(plain[i]))) << T << " " << i;
  }
}

// The default thread count: one per physical core. CPUs listed as SMT siblings share a core;
// an unreadable list makes the count unknown (0), for physical_cores to fall back on.
TEST(Kernels, ThreadCountDefaultsToOnePerPhysicalCore) {
  const std::vector<std::string> two_way = {"0,4", "1,5", "2,6", "3,7", "0,4", "1,5", "2,6", "3,7"};
  auto lists = [&](int c) { return two_way[static_cast<size_t>(c)] + "\n"; };
  const std::vector<int> all = {0, 1, 2, 3, 4, 5, 6, 7}, one_core = {0, 4}, two_cores = {0, 5}, firsts = {0, 1, 2, 3};
  EXPECT_EQ(cpu::count_cores(all, lists), 4);
  EXPECT_EQ(cpu::count_cores(one_core, lists), 1);  // (taskset to both threads of a core)
  EXPECT_EQ(cpu::count_cores(two_cores, lists), 2);
  EXPECT_EQ(cpu::count_cores(firsts, lists), 4);
  EXPECT_EQ(cpu::count_cores(all, [](int c) { return std::to_string(c); }), 8);  // no SMT
  EXPECT_EQ(cpu::count_cores(all, [](int c) { return c == 3 ? std::string() : std::to_string(c); }), 0);
  const int cores = cpu::physical_cores();
  EXPECT_GE(cores, 1);
  EXPECT_LE(cores, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  cpu::set_threads(0);
  EXPECT_EQ(cpu::thread_count(), cores);
}

TEST(Kernels, ThreadPoolCoversEveryIndexOnceWithAnyThreadCount) {
  for (int threads : {1, 2, 3, 8})
    for (cpu::Split split : {cpu::Split::Contiguous, cpu::Split::InOrder}) {
      cpu::set_threads(threads);
      // 3'000'001 chunks of 1: more than a span word counts, so units of several chunks; below
      // that, InOrder pieces are one grain each.
      for (size_t n : {0, 1, 5, 16, 17, 1000, 3'000'001}) {
        const size_t grain = n > 1000 ? 1 : 4;
        std::vector<std::atomic<int>> hits(n);
        std::atomic<bool> whole_grains{true};
        cpu::parallel_for(
            n, grain,
            [&](size_t b, size_t e) {
              if (b % grain != 0 || (split == cpu::Split::InOrder && threads > 1 && n <= 1000 && e != n && e - b != grain))
                whole_grains = false;
              for (size_t i = b; i < e; ++i) hits[i]++;
            },
            split);
        EXPECT_TRUE(whole_grains) << threads << " " << n;
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << threads << " " << n << " " << i;
      }
    }
  cpu::set_threads(0);
}

// A thread held up in its first piece: another takes the rest of its stretch. The caller's
// stretch is the first half; its first piece (holding index 0) waits, up to 10 s, until the last
// index of that half is done, which only another thread can do meanwhile.
TEST(Kernels, ThreadPoolTakesTheRestOfAHeldUpThreadsStretch) {
  cpu::set_threads(2);
  const size_t n = 4096;
  std::vector<std::atomic<int>> hits(n);
  std::atomic<bool> taken_while_held{false};
  cpu::parallel_for(n, 1, [&](size_t b, size_t e) {
    if (b == 0) {
      for (int i = 0; i < 1000 && !taken_while_held; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        taken_while_held = hits[n / 2 - 1] == 1;
      }
    }
    for (size_t i = b; i < e; ++i) hits[i]++;
  });
  EXPECT_TRUE(taken_while_held);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << i;
  cpu::set_threads(0);
}

// The prefetch hint is only a hint: regions that are not mapped (prefetches never fault),
// empty, or more than the pool takes leave the job's work as it is.
TEST(Kernels, ThreadPoolPrefetchHintsNeverFault) {
  cpu::set_threads(2);
  std::vector<float> real(1 << 16, 1.0f);
  std::vector<cpu::Region> hints{{reinterpret_cast<const void*>(uintptr_t{64}), size_t{1} << 40},
                                 {nullptr, 0},
                                 {real.data(), real.size() * sizeof(float)}};
  for (int i = 0; i < 10; ++i) hints.push_back({reinterpret_cast<const void*>(uintptr_t{4096} * (i + 1)), 1 << 20});
  for (int rep = 0; rep < 100; ++rep) {
    std::vector<std::atomic<int>> hits(1000);
    cpu::parallel_for(
        hits.size(), 1, [&](size_t b, size_t e) { for (size_t i = b; i < e; ++i) hits[i]++; }, cpu::Split::Contiguous,
        hints);
    cpu::parallel_for(64, 1, [](size_t, size_t) {});  // (the workers prefetch between the two jobs)
    for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i], 1) << rep << " " << i;
  }
  cpu::set_threads(0);
}

// Two threads using the pool at once: one gets the pool, the other runs serially; both right.
TEST(Kernels, ThreadPoolServesConcurrentCallers) {
  cpu::set_threads(2);
  std::vector<std::thread> callers;
  std::atomic<long> total{0};
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&] {
      for (int rep = 0; rep < 200; ++rep)
        cpu::parallel_for(64, 1, [&](size_t b, size_t e) { total += static_cast<long>(e - b); });
    });
  for (auto& t : callers) t.join();
  EXPECT_EQ(total.load(), 4L * 200 * 64);
  cpu::set_threads(0);
}

// The quantized product equals Σ dequant(w)·dequant(q8(x)) exactly up to float summation.
TEST(Kernels, MatmulQuantizedMatchesDequantizedReference) {
  std::mt19937 rng(2);
  const size_t in = 96, out = 7, T = 3;
  for (DType type : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0}) {
    std::vector<uint8_t> W(out * dtype_bytes(type, in));
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto& b : W) b = static_cast<uint8_t>(byte(rng));
    // Sane fp16 scales (and minimums) in every block.
    const size_t bb = dtype_block_bytes(type);
    for (size_t b = 0; b < W.size() / bb; ++b) {
      uint16_t d = fp32_to_fp16(0.01f * (1 + b % 5)), m = fp32_to_fp16(-0.05f);
      std::memcpy(&W[b * bb], &d, 2);
      if (type == DType::Q4_1 || type == DType::Q5_1) std::memcpy(&W[b * bb + 2], &m, 2);
    }
    std::vector<float> Wf(out * in);
    dequantize(type, W.data(), Wf.data(), Wf.size());
    auto X = random_vec(T * in, rng);
    std::vector<float> Y(T * out);
    cpu::matmul(X.data(), T, {type, W.data(), out, in}, Y.data());
    for (size_t t = 0; t < T; ++t) {
      std::vector<cpu::Q8Block> q(in / 32);
      cpu::quantize_q8(&X[t * in], in, q.data());
      for (size_t o = 0; o < out; ++o) {
        double ref = 0;
        for (size_t i = 0; i < in; ++i) {
          const auto& blk = q[i / 32];
          ref += double(Wf[o * in + i]) * blk.d * blk.q[i % 32];
        }
        // Q4_1/Q5_1 use ggml's fp16-rounded block sum s = d·Σq for the minimum term.
        double tol = (type == DType::Q4_1 || type == DType::Q5_1) ? 2e-3 : 1e-4;
        ASSERT_NEAR(Y[t * out + o], ref, tol) << dtype_name(type);
        // And the 8-bit activations are close to the float product: each x is off by at most
        // half a level plus the fp16 rounding of the block scale.
        double exact = 0, bound = 1e-4;
        for (size_t i = 0; i < in; ++i) {
          exact += double(Wf[o * in + i]) * X[t * in + i];
          bound += std::fabs(Wf[o * in + i]) * (q[i / 32].d / 2 + std::fabs(X[t * in + i]) * 1e-3);
        }
        ASSERT_NEAR(Y[t * out + o], exact, bound) << dtype_name(type);
      }
    }
  }
}

TEST(Kernels, QuantizeQ8RoundsToNearestLevel) {
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = (i - 16) * 0.1f;
  cpu::Q8Block b;
  cpu::quantize_q8(x.data(), 32, &b);
  EXPECT_NEAR(b.d, 1.6f / 127, 1e-5);
  EXPECT_EQ(b.q[0], -127);
  for (int i = 0; i < 32; ++i) EXPECT_LE(std::fabs(b.q[i] * b.d - x[i]), b.d / 2 + 1e-6f);
}

// Rows of 32 values (whole vectors) and of 37 (with a tail after the last vector).
class NormRows : public ::testing::TestWithParam<size_t> {};
INSTANTIATE_TEST_SUITE_P(Kernels, NormRows, ::testing::Values(8, 37));

TEST_P(NormRows, LayerNormAndGroupNormMatchTheirDefinitions) {
  std::mt19937 rng(3);
  const size_t T = 3, H = 4, N = GetParam(), C = H * N;
  auto x = random_vec(T * C, rng, -3, 5), w = random_vec(C, rng), b = random_vec(C, rng);
  std::vector<float> y(T * C), g(T * C);
  cpu::layer_norm(x.data(), T, C, w.data(), b.data(), 1e-5f, y.data());
  cpu::group_norm(x.data(), T, H, N, w.data(), b.data(), 64e-5f, g.data());
  for (size_t t = 0; t < T; ++t) {
    auto norm = [&](size_t from, size_t n, double eps, const std::vector<float>& got) {
      double mean = 0, var = 0;
      for (size_t i = 0; i < n; ++i) mean += x[t * C + from + i];
      mean /= n;
      for (size_t i = 0; i < n; ++i) var += std::pow(x[t * C + from + i] - mean, 2);
      var /= n;
      for (size_t i = 0; i < n; ++i) {
        const size_t c = from + i;
        ASSERT_NEAR(got[t * C + c], (x[t * C + c] - mean) / std::sqrt(var + eps) * w[c] + b[c], 1e-5);
      }
    };
    norm(0, C, 1e-5, y);
    for (size_t h = 0; h < H; ++h) norm(h * N, N, 64e-5, g);
  }
}

// The residual step between blocks: x ← (x + d [+ bias]) · scale, then the next block's layer
// norm, against the sum written out and layer_norm (checked above) on it; without a norm weight,
// the sum alone. Many rows, so that the thread pool shares them out.
TEST_P(NormRows, AddLayerNormIsTheSumThenTheNorm) {
  cpu::set_threads(2);
  std::mt19937 rng(4);
  const size_t T = 70, C = 4 * GetParam();
  const auto x0 = random_vec(T * C, rng, -3, 5), d = random_vec(T * C, rng), bias = random_vec(C, rng);
  const auto w = random_vec(C, rng), b = random_vec(C, rng);
  for (const float* d_bias : {static_cast<const float*>(nullptr), bias.data()})
    for (float scale : {1.0f, 0.5f}) {
      std::vector<float> want_x(T * C), want_y(T * C);
      for (size_t t = 0; t < T; ++t)
        for (size_t c = 0; c < C; ++c) {
          float v = x0[t * C + c] + d[t * C + c];
          if (d_bias) v += d_bias[c];
          want_x[t * C + c] = v * scale;
        }
      cpu::layer_norm(want_x.data(), T, C, w.data(), b.data(), 1e-5f, want_y.data());
      std::vector<float> x = x0, y(T * C, -1.0f);
      cpu::add_layer_norm(x.data(), d.data(), d_bias, scale, T, C, w.data(), b.data(), 1e-5f, y.data());
      EXPECT_EQ(x, want_x);
      EXPECT_EQ(y, want_y);
      x = x0;
      std::vector<float> untouched(T * C, -1.0f);
      cpu::add_layer_norm(x.data(), d.data(), d_bias, scale, T, C, nullptr, nullptr, 1e-5f, untouched.data());
      EXPECT_EQ(x, want_x);
      EXPECT_EQ(untouched, std::vector<float>(T * C, -1.0f));
    }
  cpu::set_threads(0);
}

// The per-head reductions of RWKV-7 (the κ normalisation, the bonus) against double sums,
// for lengths with and without a vector tail, each instruction set this CPU runs.
TEST(Kernels, ScaledSumSquaresAndDot3MatchDoubleSums) {
  std::mt19937 rng(9);
  on_every_target([&] {
    for (size_t n : {1, 7, 64, 67}) {
      auto a = random_vec(n, rng, -3, 3), b = random_vec(n, rng), c = random_vec(n, rng);
      std::vector<float> y(n, -1.0f);
      double squares = 0, dot = 0, magnitude = 0;
      for (size_t i = 0; i < n; ++i) {
        const float p = a[i] * b[i];
        squares += double(p) * p;
        dot += double(a[i]) * b[i] * c[i];
        magnitude += std::fabs(double(a[i]) * b[i] * c[i]);
      }
      const double got = cpu::simd::scaled_sum_squares(a.data(), b.data(), n, y.data());
      EXPECT_NEAR(got, squares, 1e-12 * squares) << n;
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(y[i], a[i] * b[i]) << n << " " << i;
      EXPECT_NEAR(cpu::simd::dot3(a.data(), b.data(), c.data(), n), dot, 1e-6 * magnitude + 1e-7) << n;
    }
  });
}

// The token-shift mixes of RWKV-6/7, several from one pass, equal the formula (fused or not:
// within a rounding of the product), with and without a vector tail, on every target.
TEST(Kernels, MixRowsEqualTheFormula) {
  std::mt19937 rng(10);
  on_every_target([&] {
    for (size_t C : {1, 7, 64, 67})
      for (size_t count : {1, 6}) {
        const size_t T = 3;
        auto z = random_vec(T * C, rng, -3, 3), prev = random_vec(T * C, rng, -3, 3), mu = random_vec(count * C, rng);
        std::vector<std::vector<float>> out(count, std::vector<float>(T * C, NAN));
        std::vector<float*> x;
        for (auto& o : out) x.push_back(o.data());
        cpu::simd::mix_rows(z.data(), prev.data(), mu.data(), count, T, C, x.data());
        for (size_t j = 0; j < count; ++j)
          for (size_t i = 0; i < T * C; ++i) {
            const float d = prev[i] - z[i], m = mu[j * C + i % C];
            const double tolerance = 0x1p-23 * (std::fabs(z[i]) + std::fabs(d * m));
            ASSERT_NEAR(out[j][i], std::fma(d, m, z[i]), tolerance) << C << " " << count << " " << j << " " << i;
          }
      }
  });
}

// The SIMD activations against their definitions in double: rows longer than a vector (body
// and tail), with and without a bias, and extreme inputs where exp would overflow.
TEST(Kernels, ActivationsMatchTheirDefinitions) {
  std::mt19937 rng(7);
  const size_t T = 5, n = 37;
  auto x = random_vec(T * n, rng, -12, 12), bias = random_vec(n, rng, -2, 2);
  x[0] = -500, x[1] = 500, x[2] = 0, x[3] = -88.5f, x[4] = 95, x[5] = -1e30f, x[6] = 1e30f;
  const double kDecay7 = std::exp(-0.5);
  auto sig = [](double v) { return 1 / (1 + std::exp(-v)); };
  const std::pair<cpu::Act, std::function<double(double)>> acts[] = {
      {cpu::Act::Sigmoid, sig},
      {cpu::Act::Tanh, [](double v) { return std::tanh(v); }},
      {cpu::Act::ReluSq, [](double v) { return v > 0 ? v * v : 0.0; }},
      {cpu::Act::DecayRwkv7, [&](double v) { return std::exp(-kDecay7 * sig(v)); }},
      {cpu::Act::DecayRwkv6, [](double v) { return std::exp(-std::exp(v)); }},
  };
  for (const auto& [act, f] : acts)
    for (const float* b : {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data())}) {
      std::vector<float> y(T * n);
      cpu::activate(act, x.data(), b, T, n, y.data());
      for (size_t i = 0; i < T * n; ++i) {
        const double in = double(float(x[i] + (b ? b[i % n] : 0.0f)));
        const double want = f(in);
        if (act == cpu::Act::ReluSq && std::abs(in) > 1e18) continue;  // overflows float either way
        ASSERT_NEAR(y[i], want, 4e-6 * std::max(1.0, std::abs(want))) << int(act) << " x " << in;
      }
      std::vector<float> inplace = x;  // y may be x
      cpu::activate(act, inplace.data(), b, T, n, inplace.data());
      EXPECT_EQ(inplace, y);
    }
}

// RWKV-4 WKV: the stable kernel against the definition (spec §2.3) in double, on every
// instruction set: vectors of channels and a tail.
void check_wkv4(std::mt19937& rng) {
  const size_t T = 40, A = 21;
  auto k = random_vec(T * A, rng, -3, 3), v = random_vec(T * A, rng, -2, 2);
  auto d = random_vec(A, rng, -2, 1), u = random_vec(A, rng, -1, 1);
  std::vector<float> w(A);
  for (size_t c = 0; c < A; ++c) w[c] = -std::exp(d[c]);
  std::vector<float> aa(A, 0), bb(A, 0), pp(A, -1e30f), y(T * A);
  // Two calls (25 + 15 tokens) carrying the state.
  cpu::wkv4(25, A, k.data(), v.data(), w.data(), u.data(), aa.data(), bb.data(), pp.data(), y.data());
  cpu::wkv4(T - 25, A, &k[25 * A], &v[25 * A], w.data(), u.data(), aa.data(), bb.data(), pp.data(), &y[25 * A]);
  for (size_t c = 0; c < A; ++c)
    for (size_t t = 0; t < T; ++t) {
      double num = std::exp(double(u[c]) + k[t * A + c]) * v[t * A + c], den = std::exp(double(u[c]) + k[t * A + c]);
      for (size_t i = 0; i < t; ++i) {
        const double e = std::exp((double(t) - 1 - i) * w[c] + k[i * A + c]);
        num += e * v[i * A + c];
        den += e;
      }
      ASSERT_NEAR(y[t * A + c], num / den, 2e-5) << t << " " << c;
    }
  for (size_t c = 0; c < A; ++c) EXPECT_GE(bb[c], 1.0f);
}

TEST(Kernels, Wkv4MatchesNaiveDefinitionAcrossCalls) {
  std::mt19937 rng(4);
  on_every_target([&] {
    check_wkv4(rng);
  });
}

TEST(Kernels, Wkv4StaysFiniteForHugeKeys) {
  const size_t T = 4, A = 1;
  std::vector<float> k = {1e4f, -1e4f, 500, 80}, v = {1, 2, 3, 4}, w = {-0.5f}, u = {0.3f}, y(T);
  std::vector<float> aa(1, 0), bb(1, 0), pp(1, -1e30f);
  cpu::wkv4(T, A, k.data(), v.data(), w.data(), u.data(), aa.data(), bb.data(), pp.data(), y.data());
  for (float x : y) EXPECT_TRUE(std::isfinite(x));
}

// RWKV-5/6 WKV against the per-head recurrence written with explicit indices in double, for
// H heads of size N; decay per channel (per_token false, stride 0) or per token and channel.
void check_wkv5(std::mt19937& rng, size_t N, bool per_token) {
  const size_t T = 9, H = 3, C = H * N, stride = per_token ? C : 0;
  auto r = random_vec(T * C, rng), k = random_vec(T * C, rng), v = random_vec(T * C, rng);
  auto u = random_vec(C, rng), wtok = random_vec(T * C, rng, 0.3f, 0.99f);
  std::vector<float> S(H * N * N, 0), y(T * C);
  cpu::wkv5(T, H, N, r.data(), k.data(), v.data(), wtok.data(), stride, u.data(), S.data(), y.data());
  std::vector<double> R(H * N * N, 0);
  for (size_t t = 0; t < T; ++t) {
    for (size_t h = 0; h < H; ++h)
      for (size_t i = 0; i < N; ++i) {
        double out = 0;
        for (size_t j = 0; j < N; ++j) {
          const size_t cj = h * N + j, ci = h * N + i;
          out += r[t * C + cj] * (u[cj] * k[t * C + cj] * v[t * C + ci] + R[(h * N + j) * N + i]);
        }
        ASSERT_NEAR(y[t * C + h * N + i], out, 1e-4);
      }
    // state update after all outputs of the token
    for (size_t h = 0; h < H; ++h)
      for (size_t j = 0; j < N; ++j)
        for (size_t i = 0; i < N; ++i) {
          const size_t cj = h * N + j, ci = h * N + i;
          double& s = R[(h * N + j) * N + i];
          s = double(k[t * C + cj]) * v[t * C + ci] + double(wtok[t * stride + cj]) * s;
        }
  }
  for (size_t i = 0; i < S.size(); ++i) ASSERT_NEAR(S[i], R[i], 1e-4);
}

// Head sizes below and above a vector (SIMD body in chunks of 4 and 1 vectors, plus scalar
// tail); 3 heads on the pool.
TEST(Kernels, Wkv5MatchesReferenceWithConstantAndPerTokenDecay) {
  std::mt19937 rng(5);
  for (size_t N : {size_t(4), size_t(20), size_t(40), size_t(64)})
    for (bool per_token : {false, true}) {
      SCOPED_TRACE("N " + std::to_string(N) + (per_token ? ", decay per token" : ", constant decay"));
      check_wkv5(rng, N, per_token);
    }
}

// RWKV-7 WKV in matrix form (spec §3.3): S ← S(diag(ω) + a bᵀ) + v kᵀ, y = S r, for H heads of
// size N from a random state.
void check_wkv7(std::mt19937& rng, size_t N, size_t T) {
  const size_t H = 3, C = H * N;
  auto r = random_vec(T * C, rng), w = random_vec(T * C, rng, 0.55f, 1.0f), k = random_vec(T * C, rng);
  auto v = random_vec(T * C, rng), a = random_vec(T * C, rng), b = random_vec(T * C, rng);
  for (size_t i = 0; i < T * C; ++i) {  // keep aᵀb small, as in the model (a = −κ, b = κ⊙α)
    a[i] /= std::sqrt(float(N));
    b[i] /= std::sqrt(float(N));
  }
  std::vector<float> S = random_vec(H * N * N, rng), y(T * C);
  std::vector<double> R(S.begin(), S.end());
  cpu::wkv7(T, H, N, r.data(), w.data(), k.data(), v.data(), a.data(), b.data(), S.data(), y.data());
  for (size_t t = 0; t < T; ++t)
    for (size_t h = 0; h < H; ++h) {
      const size_t o = t * C + h * N;
      std::vector<double> G(N * N), next(N * N);
      for (size_t p = 0; p < N; ++p)
        for (size_t q = 0; q < N; ++q) G[p * N + q] = (p == q ? w[o + p] : 0.0) + double(a[o + p]) * b[o + q];
      for (size_t i = 0; i < N; ++i)
        for (size_t j = 0; j < N; ++j) {
          double s = double(v[o + i]) * k[o + j];
          for (size_t p = 0; p < N; ++p) s += R[h * N * N + i * N + p] * G[p * N + j];
          next[i * N + j] = s;
        }
      for (size_t i = 0; i < N; ++i) {
        double yi = 0;
        for (size_t j = 0; j < N; ++j) {
          R[h * N * N + i * N + j] = next[i * N + j];
          yi += next[i * N + j] * r[o + j];
        }
        ASSERT_NEAR(y[o + i], yi, 1e-4 * (1 + std::abs(yi))) << t;
      }
    }
  for (size_t i = 0; i < S.size(); ++i) ASSERT_NEAR(S[i], R[i], 1e-4 * (1 + std::abs(R[i])));
}

// Every instruction set: head sizes in whole vectors (the transposed scan for long runs, in
// chunks of 4, 2 and 1 vectors) and not (the row-wise scan).
TEST(Kernels, Wkv7MatchesMatrixForm) {
  std::mt19937 rng(6);
  on_every_target([&] {
    for (size_t N : {size_t(5), size_t(20), size_t(24), size_t(64)}) {
      SCOPED_TRACE("N " + std::to_string(N));
      for (size_t T : {3, 11}) check_wkv7(rng, N, T);  // few tokens, and a run long enough to transpose
    }
  });
}

}  // namespace
}  // namespace rwkv
