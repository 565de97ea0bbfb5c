// Text generation end to end through the CLI: greedy equals the arg-max chain of the logits,
// seeded sampling is reproducible, stop strings, state files continue exactly, chat keeps one
// state, and bad input fails cleanly.
#include <algorithm>

#include "model/model.hpp"
#include "model/state_file.hpp"
#include "test_util.hpp"
#include "text/session.hpp"

namespace rwkv {
namespace {

using test::tiny;

// stdout only (stderr has the speed line).
std::string generate(const std::string& args) {
  auto r = test::run_cli("generate " + args, true);
  EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.output;
  return r.output;
}

TEST(Generate, GreedyEqualsTheArgmaxChainOfTheLogits) {
  const std::string prompt = "The quick brown";
  const std::string out = generate("-m " + tiny("7v0-834K-FP32") + " -p '" + prompt + "' -n 30 --temperature 0 "
                                   "--presence-penalty 0 --frequency-penalty 0 --ignore-eot");
  auto model = Model::load(tiny("7v0-834K-FP32"));
  State s = model->new_state();
  std::vector<int32_t> ids(prompt.begin(), prompt.end());
  std::vector<float> logits(256);
  model->forward(s, ids, Logits::Last, logits.data());
  std::string want;
  for (int i = 0; i < 30; ++i) {
    const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    want += static_cast<char>(next);
    model->forward(s, {&next, 1}, Logits::Last, logits.data());
  }
  EXPECT_EQ(out, sanitize_utf8(want) + "\n");
}

TEST(Generate, SeededSamplingIsReproducibleAndSeedsDiffer) {
  const std::string args = "-m " + tiny("5v2-730K-FP32") + " -p 'Once upon a time' -n 40 --temperature 1.2 --top-p 0.9";
  const std::string a = generate(args + " --seed 7"), b = generate(args + " --seed 7"), c = generate(args + " --seed 8");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(Generate, StopsAtStopString) {
  const std::string full = generate("-m " + tiny("5v2-730K-FP32") + " -p 'Hello' -n 60 --temperature 0");
  ASSERT_GT(full.size(), 12u);
  const std::string stop = full.substr(8, 3);  // a string the greedy output contains
  const std::string cut = generate("-m " + tiny("5v2-730K-FP32") + " -p 'Hello' -n 60 --temperature 0 --stop '" + stop + "'");
  EXPECT_EQ(cut, full.substr(0, full.find(stop)) + "\n");
}

// Issue: generate 20 tokens, save, load in a new process, generate 20 more == 40 at once.
TEST(Generate, StateRoundTripContinuesExactly) {
  test::TempDir dir;
  for (const std::string sampling : {"--temperature 0", "--temperature 1 --top-p 0.95 --seed 3"}) {
    const std::string base = "-m " + tiny("6v0-1m-FP32") + " --ignore-eot " + sampling;
    const std::string whole = generate(base + " -p 'In the' -n 40");
    const std::string first = generate(base + " -p 'In the' -n 20 --state-out " + dir.file("s.state"));
    const std::string second = generate(base + " -n 20 --state-in " + dir.file("s.state"));
    EXPECT_EQ(first.substr(0, first.size() - 1) + second, whole) << sampling;
  }
}

TEST(Generate, BadInputFailsWithOneLine) {
  test::TempDir dir;
  generate("-m " + tiny("7v0-834K-FP32") + " -p 'ab' -n 3 --state-out " + dir.file("v7.state"));
  auto bytes = test::read_bytes(dir.file("v7.state"));
  test::write_bytes(dir.file("cut.state"), std::vector<uint8_t>(bytes.begin(), bytes.begin() + bytes.size() / 2));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"-m " + tiny("7v0-834K-FP32") + " -p $'\\xff\\xfe'", "not valid UTF-8"},
      {"-m " + tiny("7v0-834K-FP32") + " -p hi --tokenizer " + dir.file("nope.txt"), "unknown tokenizer"},
      {"-m " + tiny("7v0-834K-FP32") + " -p hi --tokenizer world", "not found"},
      {"-m " + tiny("4v0-660K-FP32") + " -p hi --state-in " + dir.file("v7.state"), "different model"},
      {"-m " + tiny("7v0-834K-FP16") + " -p hi --state-in " + dir.file("v7.state"), "different weights"},
      {"-m " + tiny("7v0-834K-FP32") + " -p hi --state-in " + dir.file("cut.state"), "truncated"},
      {"-m " + tiny("7v0-834K-FP32") + " -p hi --state-in " + dir.file("missing.state"), "cannot open"},
      {"-m " + tiny("7v0-834K-FP32") + " -p ''", "empty prompt"},
      {"-m " + tiny("7v0-834K-FP32") + " -p hi --temperature -1", "invalid sampling"},
      {"-m " + tiny("7v0-834K-FP32") + " -p hi --ban 1,x", "invalid token id"},
  };
  for (const auto& [args, needle] : cases) {
    auto r = test::run_cli("generate " + args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << args << ": " << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << args << ": " << r.output;
  }
}

TEST(Chat, RepliesToEachLineAndSavesItsState) {
  test::TempDir dir;
  auto r = test::run_cli("chat -m " + tiny("5v2-730K-FP32") + " -n 20 --seed 1 --state-out " + dir.file("c.state") +
                    " <<'EOF'\nHello\n\nWhat is your name?\nEOF\n");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  size_t turns = 0;
  for (size_t p = r.output.find("Assistant:"); p != std::string::npos; p = r.output.find("Assistant:", p + 1)) ++turns;
  EXPECT_EQ(turns, 2u) << r.output;
  auto model = Model::load(tiny("5v2-730K-FP32"));
  EXPECT_NO_THROW(load_state_file(dir.file("c.state"), *model));
}

}  // namespace
}  // namespace rwkv
