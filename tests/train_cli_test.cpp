// rwkv train and rwkv tokenize-dataset end to end on a tiny corpus: a few steps of a tiny model
// give a GGUF that rwkv generate loads, a CSV log and a checkpoint; binidx data trains the same
// as the text it came from; bad data, flags and --init models give one-line errors.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "test_util.hpp"

namespace rwkv {
namespace {

using test::run_cli;
using test::TempDir;

using test::small_corpus;

std::string tiny_flags(const std::string& ctx = "16") {
  return " --layers 1 --embd 32 --head-size 16 --tokenizer bytes --ctx " + ctx + " --batch 2 --steps 4 --threads 1";
}

size_t lines_of(const std::string& path) {
  std::ifstream in(path);
  size_t n = 0;
  for (std::string l; std::getline(in, l);) ++n;
  return n;
}

TEST(TrainCli, TrainsAModelThatGenerateLoads) {
  TempDir dir;
  const std::string data = small_corpus(dir);
  const auto r = run_cli("train --arch rwkv7 --data " + data + tiny_flags() + " --export-pth -o " + dir.file("m.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("step 4/4"), std::string::npos) << r.output;  // plain log lines off a terminal
  EXPECT_NE(r.output.find("tok/s"), std::string::npos);
  EXPECT_EQ(lines_of(dir.file("m.csv")), 5u);  // header + 4 steps
  EXPECT_TRUE(std::filesystem::exists(dir.file("m.ckpt.gguf")));
  const auto g = run_cli("generate -m " + dir.file("m.gguf") + " -p 'ROMEO:' -n 8 --seed 1");
  EXPECT_EQ(g.exit_code, 0) << g.output;
  const auto info = run_cli("info " + dir.file("m.ckpt.gguf"));
  EXPECT_EQ(info.exit_code, 0) << info.output;
  // The official .pth export loads as the same model.
  const auto pth = run_cli("generate -m " + dir.file("m.pth") + " -p 'ROMEO:' -n 8 --seed 1", true);
  EXPECT_EQ(pth.exit_code, 0) << pth.output;
  EXPECT_EQ(pth.output, run_cli("generate -m " + dir.file("m.gguf") + " -p 'ROMEO:' -n 8 --seed 1", true).output);

  // RWKV-4 with the exponential schedule, and a JSONL corpus.
  std::ofstream(dir.file("c.jsonl")) << "{\"text\": \"" << std::string(300, 'a') << "\"}\n{\"text\": \"b b b b\"}\n";
  const auto v4 = run_cli("train --arch rwkv4 --data " + dir.file("c.jsonl") + tiny_flags() +
                          " --schedule exp --val-fraction 0.2 -o " + dir.file("v4.gguf"));
  ASSERT_EQ(v4.exit_code, 0) << v4.output;
  EXPECT_EQ(run_cli("generate -m " + dir.file("v4.gguf") + " -p 'a' -n 4").exit_code, 0);
}

TEST(TrainCli, BinidxTrainsLikeItsText) {
  TempDir dir;
  const std::string data = small_corpus(dir);
  const auto t = run_cli("tokenize-dataset " + data + " " + dir.file("tok") + " --tokenizer bytes");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_NE(t.output.find("20000 tokens"), std::string::npos) << t.output;
  ASSERT_EQ(run_cli("train --arch rwkv7 --data " + data + tiny_flags() + " -o " + dir.file("a.gguf")).exit_code, 0);
  ASSERT_EQ(run_cli("train --arch rwkv7 --data " + dir.file("tok.bin") + tiny_flags() + " -o " + dir.file("b.gguf")).exit_code, 0);
  // Same tokens, same seed: the same losses.
  auto losses = [](const std::string& csv) {
    std::ifstream in(csv);
    std::string all, l;
    while (std::getline(in, l)) all += l.substr(0, l.find(',', l.find(',') + 1)) + "\n";
    return all;
  };
  EXPECT_EQ(losses(dir.file("a.csv")), losses(dir.file("b.csv")));
}

void expect_train_error(const std::string& args, const std::string& part) {
  const auto r = run_cli(args);
  EXPECT_NE(r.exit_code, 0) << args;
  EXPECT_NE(r.output.find(part), std::string::npos) << args << "\n" << r.output;
  EXPECT_NE(r.output.find("rwkv: error: "), std::string::npos) << r.output;
}

TEST(TrainCli, Errors) {
  TempDir dir;
  const std::string data = small_corpus(dir, 2000);
  const std::string out = " -o " + dir.file("x.gguf");
  std::ofstream(dir.file("empty.txt")).flush();
  expect_train_error("train --arch rwkv7 --data " + dir.file("empty.txt") + tiny_flags() + out, "empty data file");
  expect_train_error("train --arch rwkv7 --data " + dir.file("none.txt") + tiny_flags() + out, "no such file");
  expect_train_error("train --arch rwkv7 --data " + data + tiny_flags("5000") + out,
               "training split has 1800 tokens, fewer than ctx + 1");
  expect_train_error("train --arch rwkv7 --data " + data + " --layers 1 --embd 32 --tokenizer nope" + out,
               "unknown tokenizer 'nope'");
  expect_train_error("train --arch rwkv5 --data " + data + tiny_flags() + out, "unknown --arch 'rwkv5'");
  expect_train_error("train --arch rwkv7 --data " + data + " --tokenizer bytes" + out, "--layers and --embd are required");
  expect_train_error("train --arch rwkv7 --data " + data + tiny_flags() + " --schedule linear" + out, "unknown learning-rate schedule");
  // --init: another architecture than --arch, or one that cannot be trained.
  const std::string v4 = test::data_path("rwkv_cpp_tiny/tiny-rwkv-4v0-660K-FP32.bin");
  const std::string v6 = test::data_path("rwkv_cpp_tiny/tiny-rwkv-6v0-1m-FP32.bin");
  expect_train_error("train --arch rwkv7 --init " + v4 + " --data " + data + " --ctx 16 --batch 2 --steps 1" + out,
               "the model is RWKV-4, not --arch rwkv7");
  expect_train_error("train --init " + v6 + " --data " + data + " --ctx 16 --batch 2 --steps 1" + out,
               "an RWKV-6.0 model cannot be trained");
  expect_train_error("train --resume " + dir.file("none.ckpt.gguf") + out, "none.ckpt.gguf");
}

TEST(TrainCli, FineTunesALoadedModel) {
  TempDir dir;
  const std::string data = small_corpus(dir);
  const std::string v7 = test::data_path("rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin");
  const auto r = run_cli("train --init " + v7 + " --arch rwkv7 --data " + data +
                         " --ctx 16 --batch 2 --steps 2 --threads 1 -o " + dir.file("ft.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("(from "), std::string::npos) << r.output;
  EXPECT_EQ(run_cli("generate -m " + dir.file("ft.gguf") + " -p 'a' -n 4").exit_code, 0);
}

}  // namespace
}  // namespace rwkv
