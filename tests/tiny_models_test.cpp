// The rwkv.cpp tiny models (shared/data/rwkv_cpp_tiny, TINY_MODELS.md): per-position logits of
// every FP32 model against the float64 references in both modes, and the last-token logits of
// `"in` for FP32/FP16/Q5_0/Q5_1 files under rwkv.cpp's signed-sum tolerance rule.
#include <algorithm>
#include <cmath>
#include <string>

#include "model/model.hpp"
#include "test_util.hpp"

namespace rwkv {
namespace {

using test::kPrompt70;

std::string tiny_file(const std::string& name) { return test::data_path("rwkv_cpp_tiny/" + name); }

std::vector<int32_t> tokens_of(const std::string& s) { return std::vector<int32_t>(s.begin(), s.end()); }

// Logits after every token, by RNN mode (one token per call) or by one sequence call.
std::vector<float> run_all(const Model& m, const std::vector<int32_t>& tokens, bool rnn) {
  const size_t V = m.hparams().vocab_size;
  std::vector<float> out(tokens.size() * V);
  State s = m.new_state();
  if (rnn) {
    for (size_t t = 0; t < tokens.size(); ++t) m.forward(s, {&tokens[t], 1}, Logits::Last, &out[t * V]);
  } else {
    m.forward(s, tokens, Logits::All, out.data());
  }
  return out;
}

// The logits of sequence 0 of `n` sequences that read `tokens` together, one token each a step
// (forward_batch), after each step.
std::vector<float> run_batched(const Model& m, const std::vector<int32_t>& tokens, size_t n) {
  const size_t V = m.hparams().vocab_size;
  std::vector<float> out(tokens.size() * V), rest((n - 1) * V);
  std::vector<State> states;
  for (size_t b = 0; b < n; ++b) states.push_back(m.new_state());
  for (size_t t = 0; t < tokens.size(); ++t) {
    std::vector<Sequence> batch;
    for (size_t b = 0; b < n; ++b)
      batch.push_back({&states[b], {&tokens[t], 1}, Logits::Last, b == 0 ? &out[t * V] : &rest[(b - 1) * V]});
    m.forward_batch(batch);
  }
  return out;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

class Fp32Reference : public ::testing::TestWithParam<std::string> {};

TEST_P(Fp32Reference, EveryPositionMatchesFloat64ReferenceInBothModes) {
  const std::string name = GetParam();
  auto model = Model::load(tiny_file("tiny-rwkv-" + name + "-FP32.bin"));
  auto ref = test::read_f32(tiny_file("generated/reference-logits-" + name + "-FP32-prompt70.bin"));
  auto tokens = tokens_of(kPrompt70);
  ASSERT_EQ(ref.size(), tokens.size() * 256);
  for (bool rnn : {true, false}) {
    auto got = run_all(*model, tokens, rnn);
    EXPECT_LE(max_abs_diff(got, ref), 1e-4f) << name << (rnn ? " rnn" : " seq");
  }
}

INSTANTIATE_TEST_SUITE_P(Tiny, Fp32Reference,
                         ::testing::Values("4v0-660K", "5v1-730K", "5v2-730K", "6v0-1m", "7v0-834K"),
                         [](const auto& p) { return p.param.substr(0, 3); });

// The FP16 files over the same 70 bytes against the FP32 model's float64 reference, in both
// modes (float32 arithmetic on the float16 weights): within 0.01 of every logit (Zen 5: up to
// 7.0e-3) and the same top byte at every position. (On bfloat16 dot products, Bf16Dots::All,
// sequence mode moved them by up to 0.114 and changed the top byte at up to 2 of the 70.)
TEST_P(Fp32Reference, Fp16FilesStayCloseToTheReferenceInBothModes) {
  const std::string name = GetParam();
  auto model = Model::load(tiny_file("tiny-rwkv-" + name + "-FP16.bin"));
  auto ref = test::read_f32(tiny_file("generated/reference-logits-" + name + "-FP32-prompt70.bin"));
  auto tokens = tokens_of(kPrompt70);
  for (bool rnn : {true, false}) {
    auto got = run_all(*model, tokens, rnn);
    size_t same_top = 0;
    for (size_t t = 0; t < tokens.size(); ++t) {
      const auto g = got.begin() + t * 256, r = ref.begin() + t * 256;
      same_top += std::max_element(g, g + 256) - g == std::max_element(r, r + 256) - r;
    }
    EXPECT_LE(max_abs_diff(got, ref), 0.01f) << name << (rnn ? " rnn" : " seq");
    EXPECT_EQ(same_top, tokens.size()) << name << (rnn ? " rnn" : " seq");
  }
}

struct ExpectedCase {
  std::string model, format;
  double tolerance;  // T of |Σ(actual − expected)| ≤ 1.05·|T| (TINY_MODELS.md §5)
  // rwkv.cpp has no entry for the shipped 6v0-1m Q5 files (its constants are for its own
  // on-the-fly quantization, which the shipped files do not reproduce: our Q5 path matches the
  // 6v0-3m and 7v0 constants to 1e-3, yet gives −7.41 against −5.84 here). For them we require
  // the same top byte and every logit within 0.25 of the FP32 expectation instead.
  // 6v0-3m's Q5_0 file takes the same rule: its constant (−21.15) is rwkv.cpp's rounding of
  // Σu·x·d − 16·d·Σx; summing each block's integer Σ(u − 16)·x exactly first, as our scalar
  // reference and ggml's current kernels do, gives −22.62 (max logit error 0.15), 2 % past
  // 1.05·|T| (TINY_MODELS.md §5: Q5_0 may land a little outside).
  bool own_rule = false;
};

class RwkvCppTolerance : public ::testing::TestWithParam<ExpectedCase> {};

TEST_P(RwkvCppTolerance, LastTokenOfQuotedInWithinTolerance) {
  const ExpectedCase& c = GetParam();
  auto model = Model::load(tiny_file("tiny-rwkv-" + c.model + "-" + c.format + ".bin"));
  auto expected = test::read_f32(tiny_file("expected-logits-" + c.model + ".bin"));
  const std::vector<int32_t> tokens = {34, 105, 110};
  // RNN mode, sequence mode, and 16 sequences reading the prompt together a token a step (a
  // batched decode step of 16 tokens). (With bfloat16 dot products for float16 weights,
  // cpu::Bf16Dots::All, the FP16 files' batched sums come out at 0.038, 0.54, 0.040, 1.05 and
  // −0.039 on Zen 5: past the rule but for 5v2, hence not by default.)
  for (int mode : {0, 1, 2}) {
    const bool rnn = mode == 0;
    auto all = mode < 2 ? run_all(*model, tokens, rnn) : run_batched(*model, tokens, 16);
    std::vector<float> last(all.end() - 256, all.end());
    double sum = 0;
    for (size_t i = 0; i < 256; ++i) sum += last[i] - expected[i];
    if (c.own_rule) {
      EXPECT_LE(max_abs_diff(last, expected), 0.25f);
      EXPECT_EQ(std::max_element(last.begin(), last.end()) - last.begin(),
                std::max_element(expected.begin(), expected.end()) - expected.begin());
    } else {
      EXPECT_LE(std::fabs(sum), 1.05 * std::fabs(c.tolerance))
          << c.model << " " << c.format << (rnn ? " rnn" : mode == 1 ? " seq" : " batch of 16");
    }
    if (c.format == "FP32") {
      EXPECT_LE(max_abs_diff(last, expected), 1e-4f);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Tiny, RwkvCppTolerance,
    ::testing::Values(ExpectedCase{"4v0-660K", "FP32", 0.001}, ExpectedCase{"4v0-660K", "FP16", -0.013652},
                      ExpectedCase{"4v0-660K", "Q5_0", -0.170404}, ExpectedCase{"4v0-660K", "Q5_1", 0.278034},
                      ExpectedCase{"5v1-730K", "FP32", 0.001}, ExpectedCase{"5v1-730K", "FP16", -0.289921},
                      ExpectedCase{"5v1-730K", "Q5_0", -163.439407}, ExpectedCase{"5v1-730K", "Q5_1", -18.017435},
                      ExpectedCase{"5v2-730K", "FP32", 0.001}, ExpectedCase{"5v2-730K", "FP16", 0.455912},
                      ExpectedCase{"5v2-730K", "Q5_0", 25.273308}, ExpectedCase{"5v2-730K", "Q5_1", 48.068733},
                      ExpectedCase{"6v0-1m", "FP32", 0.001}, ExpectedCase{"6v0-1m", "FP16", -0.184410},
                      ExpectedCase{"6v0-1m", "Q5_0", 0, true}, ExpectedCase{"6v0-1m", "Q5_1", 0, true},
                      ExpectedCase{"6v0-3m", "Q5_0", -21.151785, true}, ExpectedCase{"6v0-3m", "Q5_1", 3.576909},
                      ExpectedCase{"7v0-834K", "FP32", 0.001}, ExpectedCase{"7v0-834K", "FP16", 0.005766},
                      ExpectedCase{"7v0-834K", "Q5_0", -0.063645}, ExpectedCase{"7v0-834K", "Q5_1", -0.064663}),
    [](const auto& p) {
      std::string n = p.param.model + "_" + p.param.format;
      for (char& ch : n)
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return n;
    });

}  // namespace
}  // namespace rwkv
