// Sequence (time-parallel) mode equals RNN mode: for every version, the logits at every
// position and the final state agree whether tokens are fed one at a time, all at once, or
// in uneven chunks (issue: max |error| ≤ 1e-5 relative).
#include <sys/resource.h>

#include <cmath>
#include <fstream>

#include "io/error.hpp"
#include "io/gguf.hpp"
#include "kernels/cpu/ops.hpp"
#include "model/buffers.hpp"
#include "model/gguf_model.hpp"
#include "model/model.hpp"
#include "test_util.hpp"

namespace rwkv {
namespace {

std::vector<int32_t> corpus_tokens(size_t n) {
  std::ifstream f(test::data_path("corpus/tinyshakespeare_input.txt"), std::ios::binary);
  std::vector<int32_t> ids;
  char c;
  while (ids.size() < n && f.get(c)) ids.push_back(static_cast<unsigned char>(c));
  return ids;
}

// Feeds `tokens` in chunks of the given sizes (cycled) and returns all logits and the state.
std::pair<std::vector<float>, std::vector<float>> run_chunks(const Model& m, const std::vector<int32_t>& tokens,
                                                             const std::vector<size_t>& sizes) {
  const size_t V = m.hparams().vocab_size;
  std::vector<float> logits(tokens.size() * V);
  State s = m.new_state();
  size_t pos = 0;
  for (size_t i = 0; pos < tokens.size(); ++i) {
    const size_t n = std::min(sizes[i % sizes.size()], tokens.size() - pos);
    m.forward(s, {&tokens[pos], n}, Logits::All, &logits[pos * V]);
    pos += n;
  }
  return {logits, s.data()};
}

using test::relative_error;

class SequenceMode : public ::testing::TestWithParam<std::string> {};

TEST_P(SequenceMode, EqualsRnnModeForAnyLengthAndChunking) {
  auto model = Model::load(test::data_path("rwkv_cpp_tiny/tiny-rwkv-" + GetParam() + ".bin"));
  for (size_t T : {1, 2, 17, 128}) {
    const auto tokens = corpus_tokens(T);
    const auto [rnn_logits, rnn_state] = run_chunks(*model, tokens, {1});
    for (const std::vector<size_t>& sizes : std::vector<std::vector<size_t>>{{T}, {5, 1, 11, 2}, {16}}) {
      const auto [logits, state] = run_chunks(*model, tokens, sizes);
      EXPECT_LE(relative_error(logits, rnn_logits), 1e-5) << "T=" << T << " first chunk " << sizes[0];
      EXPECT_LE(relative_error(state, rnn_state), 1e-5) << "T=" << T << " first chunk " << sizes[0];
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Tiny, SequenceMode,
                         ::testing::Values("4v0-660K-FP32", "5v1-730K-FP32", "5v2-730K-FP32", "6v0-1m-FP32",
                                           "7v0-834K-FP32", "7v0-834K-Q5_1"),
                         [](const auto& p) {
                           std::string n = p.param;
                           for (char& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

// Models of the 32-value block types (every matrix quantized, llama.cpp's policy), whose products go eight
// rows at a time where the CPU has that kernel and one row at a time elsewhere (the rows left
// over, pieces of work that start inside a group of eight): the same equality, to within one
// step of an 8-bit activation level. The float products ahead of the quantized ones (RWKV-7's
// low-rank matrices) add in another order for one token than for several, and where that last
// bit moves an activation across a rounding boundary, its 8-bit level moves by one: 6e-4 of the
// logits on AVX-512 (16 lanes); in this test no level moved on AVX2. A wrong kernel or
// chunking errs by far more.
TEST(SequenceMode, EqualsRnnModeForEightRowQuantizedModels) {
  test::TempDir dir;
  const Weights w = load_weights(test::data_path("rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin"));
  for (DType type : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0}) {
    save_gguf(w, dir.file("q.gguf"), QuantizeTypes{type, type, type});
    const auto model = Model::load(dir.file("q.gguf"));
    const auto tokens = corpus_tokens(40);
    const auto [rnn_logits, rnn_state] = run_chunks(*model, tokens, {1});
    for (const std::vector<size_t>& sizes : std::vector<std::vector<size_t>>{{40}, {5, 1, 11, 2}, {16}}) {
      const auto [logits, state] = run_chunks(*model, tokens, sizes);
      EXPECT_LE(relative_error(logits, rnn_logits), 3e-3) << dtype_name(type) << " first chunk " << sizes[0];
      EXPECT_LE(relative_error(state, rnn_state), 3e-3) << dtype_name(type) << " first chunk " << sizes[0];
    }
  }
}

// Float16 models in sequence mode, their products of 16 tokens or more on bfloat16 dot products
// where the CPU has them (cpu::Bf16Dots::All, on request), which round the activations and
// weights to bfloat16:
// within 2e-2 of RNN mode (float32 arithmetic; on Zen 5 the logits 0.9e-3 to 6.3e-3, the states
// 0.3e-3 to 7.7e-3), and within 1e-5 with the dot products turned off (2.7e-7 to 5.5e-7).
TEST(SequenceMode, Float16ModelsOnBf16DotProductsStayCloseToRnnMode) {
  const auto setting = cpu::set_bf16_dots(cpu::Bf16Dots::All);
  for (const char* name : {"4v0-660K", "5v2-730K", "6v0-1m", "7v0-834K"}) {
    auto model = Model::load(test::data_path(std::string("rwkv_cpp_tiny/tiny-rwkv-") + name + "-FP16.bin"));
    const auto tokens = corpus_tokens(128);
    const auto [rnn_logits, rnn_state] = run_chunks(*model, tokens, {1});
    for (bool dots : {true, false}) {
      cpu::set_bf16_dots(dots ? cpu::Bf16Dots::All : cpu::Bf16Dots::Off);
      const auto [logits, state] = run_chunks(*model, tokens, {128});
      const double bound = dots && cpu::bf16_dots(DType::F16) ? 2e-2 : 1e-5;
      EXPECT_LE(relative_error(logits, rnn_logits), bound) << name << " bf16 dots " << dots;
      EXPECT_LE(relative_error(state, rnn_state), bound) << name << " bf16 dots " << dots;
      if (bound > 1e-5) {
        EXPECT_GT(relative_error(logits, rnn_logits), 1e-5) << name << ": no rounding seen";
      }
    }
  }
  cpu::set_bf16_dots(setting);
}

TEST(SequenceMode, RepeatedRunsAreBitIdenticalAndStatesAreIndependent) {
  auto model = Model::load(test::data_path("rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin"));
  const auto tokens = corpus_tokens(40);
  EXPECT_EQ(run_chunks(*model, tokens, {7}), run_chunks(*model, tokens, {7}));
  // A copied state continues exactly like the original.
  State a = model->new_state();
  model->forward(a, {tokens.data(), 20}, Logits::None, nullptr);
  State b = a;
  std::vector<float> la(256), lb(256);
  model->forward(a, {&tokens[20], 20}, Logits::Last, la.data());
  model->forward(b, {&tokens[20], 20}, Logits::Last, lb.data());
  EXPECT_EQ(la, lb);
  b.reset();
  EXPECT_EQ(b.data(), model->new_state().data());
}

TEST(SequenceMode, RejectsBadTokensAndForeignStates) {
  auto v7 = Model::load(test::data_path("rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin"));
  auto v4 = Model::load(test::data_path("rwkv_cpp_tiny/tiny-rwkv-4v0-660K-FP32.bin"));
  State s = v7->new_state();
  const std::vector<int32_t> bad = {1, 256}, neg = {-1};
  EXPECT_THROW(v7->forward(s, bad, Logits::Last, nullptr), Error);
  EXPECT_THROW(v7->forward(s, neg, Logits::Last, nullptr), Error);
  State other = v4->new_state();
  const std::vector<int32_t> ok = {1};
  std::vector<float> l(256);
  EXPECT_THROW(v7->forward(other, ok, Logits::Last, l.data()), Error);
  EXPECT_THROW(v7->forward(s, {}, Logits::Last, l.data()), Error);
}

}  // namespace
}  // namespace rwkv

namespace rwkv {
namespace {

// spec §10 item 9: a batch of independent sequences gives what each gives alone.
class Batch : public ::testing::TestWithParam<std::string> {};

TEST_P(Batch, SequencesInOneCallEqualSeparateCalls) {
  auto model = Model::load(test::data_path("rwkv_cpp_tiny/tiny-rwkv-" + GetParam() + ".bin"));
  const size_t V = model->hparams().vocab_size;
  const auto text = corpus_tokens(200);
  // Four sequences with different histories: decode steps (1 token) and a prompt chunk (9).
  std::vector<State> alone, together;
  for (size_t i = 0; i < 4; ++i) {
    State s = model->new_state();
    model->forward(s, {&text[i * 30], 5 + i}, Logits::None, nullptr);
    alone.push_back(s);
    together.push_back(s);
  }
  const std::vector<size_t> lengths = {1, 1, 9, 1};
  std::vector<std::vector<float>> want(4), got(4);
  std::vector<Sequence> batch;
  for (size_t i = 0; i < 4; ++i) {
    const std::span<const int32_t> toks(&text[150 + i * 10], lengths[i]);
    // Sequence 1 wants no logits (a prompt read for its state): the others' logits still land
    // in their own buffers.
    const Logits which = i == 2 ? Logits::All : i == 1 ? Logits::None : Logits::Last;
    want[i].resize((which == Logits::All ? lengths[i] : which == Logits::Last ? 1 : 0) * V);
    got[i].resize(want[i].size());
    float* const mine = which == Logits::None ? nullptr : got[i].data();
    model->forward(alone[i], toks, which, which == Logits::None ? nullptr : want[i].data());
    batch.push_back({&together[i], toks, which, mine});
  }
  model->forward_batch(batch);
  for (size_t i = 0; i < 4; ++i) {
    if (i != 1) {
      EXPECT_LE(relative_error(got[i], want[i]), 1e-5) << i;
    }
    EXPECT_LE(relative_error(together[i].data(), alone[i].data()), 1e-5) << i;
  }
  // The same state twice in one batch is refused.
  std::vector<Sequence> twice = {batch[0], batch[0]};
  EXPECT_THROW(model->forward_batch(twice), Error);
}

INSTANTIATE_TEST_SUITE_P(Tiny, Batch,
                         ::testing::Values("4v0-660K-FP32", "5v2-730K-FP32", "6v0-1m-FP32", "7v0-834K-FP32"),
                         [](const auto& p) { return p.param.substr(0, 3); });

// The per-layer buffers: a freed one serves the next request it fits (within twice its
// size), moves hand the memory over, and a buffer is never handed out twice.
TEST(Floats, FreedBuffersServeTheRequestsTheyFit) {
  const float* p;
  {
    Floats a(123457);
    p = a.data();
    a[123456] = 1;
  }
  Floats b(100001);  // fits: the same memory
  EXPECT_EQ(b.data(), p);
  Floats c(123457);  // the cached one is taken: new memory
  EXPECT_NE(c.data(), p);
  const float* q = c.data();
  c = Floats();  // released into the cache
  EXPECT_EQ(c.data(), nullptr);
  Floats small(1000);  // far smaller: not served from a buffer 123 times its size
  EXPECT_NE(small.data(), q);
  Floats moved(std::move(small));
  EXPECT_EQ(small.data(), nullptr);
  Floats again(123000);
  EXPECT_EQ(again.data(), q);
  EXPECT_NE(again.data(), b.data());
}

// What the reuse is for: a buffer larger than glibc ever keeps in its heap (32 MB), asked for
// again after it is freed, costs no page faults the second time.
TEST(Floats, ALargeBufferAskedForAgainIsNotFaultedInAgain) {
  auto minor_faults = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
  };
  const size_t n = size_t{40} << 18;  // 40 MB of floats
  auto touch = [n](Floats& f) {
    for (size_t i = 0; i < n; i += 1024) f[i] = 1.0f;
  };
  long first, second;
  {
    const long before = minor_faults();
    Floats a(n);
    touch(a);
    first = minor_faults() - before;
  }
  {
    const long before = minor_faults();
    Floats b(n);
    touch(b);
    second = minor_faults() - before;
  }
  EXPECT_GT(first, 0);
  EXPECT_LT(second, first / 4 + 1) << "first " << first;
}

// The trainer's vectors use the same kept buffers, whatever their element type: a freed
// vector's memory serves the next one it fits, a larger one gets other memory, and each
// vector's contents are its own.
TEST(Floats, RecycledVectorsShareTheThreadsBuffers) {
  const void* p;
  {
    RecycledVector<double> a(77777, 1.0);
    p = a.data();
  }
  RecycledVector<float> b(150000);  // 600 kB fits the 622 kB freed
  EXPECT_EQ(static_cast<const void*>(b.data()), p);
  RecycledVector<double> c(77777, 2.0);
  EXPECT_NE(static_cast<const void*>(c.data()), p);
  for (float& v : b) v = 3.0f;
  EXPECT_EQ(c[77776], 2.0);
  RecycledVector<double> d = c;  // copies get their own memory
  EXPECT_NE(d.data(), c.data());
  EXPECT_EQ(d[0], 2.0);
}

}  // namespace
}  // namespace rwkv
