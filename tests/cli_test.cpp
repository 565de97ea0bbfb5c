// The rwkv program end to end: info, logits (both modes, --all), convert, init.
#include <cmath>

#include "test_util.hpp"

namespace rwkv {
namespace {

using test::tiny;

TEST(Cli, InfoPrintsTheModel) {
  auto r = test::run_cli("info " + tiny("5v2-730K-Q5_1"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* s : {"RWKV-5", "5.2", "layers:        12", "width:         64", "heads:         8 x 8",
                        "vocabulary:    256", "parameters:    731,904", "q5_1", "rwkv.cpp .bin"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
}

TEST(Cli, LogitsInBothModesMatchTheReference) {
  test::TempDir dir;
  auto ref = test::read_f32(test::data_path("rwkv_cpp_tiny/expected-logits-4v0-660K.bin"));
  for (const char* mode : {"rnn", "seq"}) {
    auto r = test::run_cli("logits -m " + tiny("4v0-660K-FP32") + " -t 34,105,110 --mode " + mode + " -o " + dir.file("l"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto got = test::read_f32(dir.file("l"));
    ASSERT_EQ(got.size(), 256u);
    for (size_t i = 0; i < 256; ++i) EXPECT_NEAR(got[i], ref[i], 1e-4);
    r = test::run_cli("logits -m " + tiny("4v0-660K-FP32") + " -t 34,105,110 --all --mode " + mode + " -o " + dir.file("a"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto all = test::read_f32(dir.file("a"));
    ASSERT_EQ(all.size(), 3u * 256);
    for (size_t i = 0; i < 256; ++i) EXPECT_NEAR(all[2 * 256 + i], got[i], 1e-5);
  }
}

TEST(Cli, ConvertAndInitWriteLoadableGguf) {
  test::TempDir dir;
  auto r = test::run_cli("convert " + tiny("6v0-1m-FP16") + " " + dir.file("m.gguf") + " --dtype bf16");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_cli("info " + dir.file("m.gguf"));
  EXPECT_NE(r.output.find("bf16"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("RWKV-6"), std::string::npos) << r.output;

  for (const char* arch : {"rwkv4", "rwkv7"}) {
    r = test::run_cli(std::string("init --arch ") + arch + " --layers 2 --embd 64 --vocab 97 --head-size 16 --seed 3 -o " +
                      dir.file("new.gguf"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = test::run_cli("logits -m " + dir.file("new.gguf") + " -t 0,5,96 --all -o " + dir.file("l"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto l = test::read_f32(dir.file("l"));
    ASSERT_EQ(l.size(), 3u * 97);
    for (float x : l) ASSERT_TRUE(std::isfinite(x));
  }
  r = test::run_cli("init --arch rwkv7 --layers 2 --embd 60 --vocab 10 -o " + dir.file("bad.gguf"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("head"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace rwkv
