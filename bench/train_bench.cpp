// One training step's forward + backward of a fresh 4-layer, 256-wide model with a byte
// vocabulary, B = 16 sequences of T = 256 tokens, on 1 and 2 threads (train/DataParallel: one
// model replica per thread). Reports tokens per second of wall time; "CPU" is the process CPU
// time (all threads), steadier than wall time on a shared machine.
//   build/rwkv_bench --benchmark_filter=Train
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "kernels/cpu/thread_pool.hpp"
#include "model/init.hpp"
#include "train/data_parallel.hpp"

namespace {

void TrainForwardBackward(benchmark::State& st, rwkv::Arch arch, int threads) {
  rwkv::cpu::set_threads(threads);
  rwkv::InitOptions o;
  o.arch = arch;
  o.n_layer = 4;
  o.n_embd = 256;
  o.vocab_size = 256;
  o.head_size = 64;
  o.seed = 1;
  rwkv::train::DataParallel model(rwkv::init_weights(o), size_t(threads));
  const size_t B = 16, T = 256;
  std::vector<int32_t> inputs(B * T), targets(B * T);
  std::mt19937 rng(1);
  for (size_t i = 0; i < B * T; ++i) {
    inputs[i] = static_cast<int32_t>(rng() % 256);
    targets[i] = static_cast<int32_t>(rng() % 256);
  }
  const rwkv::train::Batch batch{B, T, inputs, targets};
  for (auto _ : st) {
    model.parameters().zero_grad();
    benchmark::DoNotOptimize(model.forward_backward(batch));
  }
  st.counters["tokens/s"] = benchmark::Counter(double(B * T) * st.iterations(), benchmark::Counter::kIsRate);
  rwkv::cpu::set_threads(0);
}

BENCHMARK_CAPTURE(TrainForwardBackward, rwkv7_L4_C256_B16_T256_1thread, rwkv::Arch::RWKV7, 1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->Iterations(3);
BENCHMARK_CAPTURE(TrainForwardBackward, rwkv7_L4_C256_B16_T256_2threads, rwkv::Arch::RWKV7, 2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->Iterations(3);
BENCHMARK_CAPTURE(TrainForwardBackward, rwkv4_L4_C256_B16_T256_1thread, rwkv::Arch::RWKV4, 1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->Iterations(3);
BENCHMARK_CAPTURE(TrainForwardBackward, rwkv4_L4_C256_B16_T256_2threads, rwkv::Arch::RWKV4, 2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->Iterations(3);

}  // namespace
