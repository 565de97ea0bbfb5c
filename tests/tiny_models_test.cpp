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
  for (bool rnn : {true, false}) {
    auto all = run_all(*model, tokens, rnn);
    std::vector<float> last(all.end() - 256, all.end());
    double sum = 0;
    for (size_t i = 0; i < 256; ++i) sum += last[i] - expected[i];
    if (c.own_rule) {
      EXPECT_LE(max_abs_diff(last, expected), 0.25f);
      EXPECT_EQ(std::max_element(last.begin(), last.end()) - last.begin(),
                std::max_element(expected.begin(), expected.end()) - expected.begin());
    } else {
      EXPECT_LE(std::fabs(sum), 1.05 * std::fabs(c.tolerance)) << c.model << " " << c.format << (rnn ? " rnn" : " seq");
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
