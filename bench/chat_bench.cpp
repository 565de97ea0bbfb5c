// A 50-turn chat through one Session: the time of each turn must stay flat and memory must
// not grow, because the state carries the history (nothing is re-read). Reports the mean
// time of turns 1-10 and 41-50, their ratio, and the resident-memory growth over the chat.
//   build/rwkv_bench --benchmark_filter=Chat   (model: RWKV_BENCH_MODEL or the tiny v7 model)
#include <benchmark/benchmark.h>
#include <hwy/targets.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include "model/model.hpp"
#include "text/session.hpp"

namespace {

long rss_kb() {
  std::ifstream f("/proc/self/status");
  std::string key;
  long value = 0;
  while (f >> key) {
    if (key == "VmRSS:") {
      f >> value;
      return value;
    }
    f.ignore(1 << 16, '\n');
  }
  return 0;
}

std::string model_path() {
  if (const char* p = std::getenv("RWKV_BENCH_MODEL")) return p;
  return std::string(RWKV_TEST_DATA) + "/rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin";
}

void Chat50Turns(benchmark::State& st) {
  auto model = rwkv::Model::load(model_path());
  auto tokenizer = rwkv::resolve_tokenizer("", model->weights());
  double first = 0, last = 0;
  long growth = 0;
  for (auto _ : st) {
    rwkv::SamplerOptions s;
    s.seed = 1;
    rwkv::Session session(*model, *tokenizer, s);
    rwkv::GenerateOptions g;
    g.max_tokens = 32;  // fixed reply length: every turn does the same work
    g.stop_at_end_of_text = false;
    first = last = 0;
    long rss_after_first = 0;
    for (int turn = 1; turn <= 50; ++turn) {
      const auto t0 = std::chrono::steady_clock::now();
      session.feed_text("User: tell me about turn " + std::to_string(turn) + "\n\nAssistant:");
      session.generate(g, nullptr);
      session.feed_text("\n\n");
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (turn <= 10) first += ms / 10;
      if (turn > 40) last += ms / 10;
      if (turn == 1) rss_after_first = rss_kb();
    }
    growth = rss_kb() - rss_after_first;
  }
  st.counters["turns1_10_ms"] = first;
  st.counters["turns41_50_ms"] = last;
  st.counters["last_over_first"] = last / first;
  st.counters["rss_growth_kB"] = static_cast<double>(growth);
}
BENCHMARK(Chat50Turns)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace

// The main of all of rwkv_bench. RWKV_BENCH_NO_AVX512=1 runs every kernel as on a CPU without
// AVX-512 (Highway's AVX2 code and the eight-row block kernels), to time the AVX2 paths on an
// AVX-512 machine.
int main(int argc, char** argv) {
  if (const char* v = std::getenv("RWKV_BENCH_NO_AVX512"); v && std::string(v) == "1")
    hwy::DisableTargets(HWY_AVX3 | HWY_AVX3_DL);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
