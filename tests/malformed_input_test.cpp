// Bad model files end in one clear Error, never a crash: truncated files at every length,
// wrong magic, hostile sizes, inconsistent tensors, and the CLI's one-line errors.
#include <algorithm>
#include <cstring>
#include <fstream>

#include "io/error.hpp"
#include "io/gguf.hpp"
#include "model/gguf_model.hpp"
#include "model/model.hpp"
#include "test_util.hpp"

namespace rwkv {
namespace {

using test::tiny;

void append_u32(std::vector<uint8_t>& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// Loading must either succeed or throw Error; anything else (crash, other exception) fails.
void expect_load_error(const std::string& path, const std::string& needle = "") {
  try {
    Model::load(path);
    ADD_FAILURE() << path << " loaded";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    if (!needle.empty()) {
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  }
}

TEST(MalformedInput, TruncatedBinFilesAtManyLengths) {
  test::TempDir dir;
  const auto bytes = test::read_bytes(tiny("7v0-834K-Q5_0"));
  // Every length in the header and first tensor records, then a spread over the whole file.
  std::vector<size_t> cuts;
  for (size_t n = 0; n < 400; ++n) cuts.push_back(n);
  for (size_t n = 400; n < bytes.size(); n += bytes.size() / 97) cuts.push_back(n);
  cuts.push_back(bytes.size() - 1);
  for (size_t n : cuts) {
    test::write_bytes(dir.file("t.bin"), std::vector<uint8_t>(bytes.begin(), bytes.begin() + n));
    expect_load_error(dir.file("t.bin"));
  }
}

TEST(MalformedInput, TruncatedGgufAndPthModels) {
  test::TempDir dir;
  save_gguf(load_weights(tiny("7v0-834K-Q5_1")), dir.file("m.gguf"), SaveType::Keep);
  for (const std::string& src : {test::data_path("rwkv_lm/260123_reverse_L2_only_rwkv7.pth"), dir.file("m.gguf")}) {
    const auto bytes = test::read_bytes(src);
    for (size_t n = 0; n < bytes.size(); n += n < 2000 ? 7 : 4999) {
      test::write_bytes(dir.file("t"), std::vector<uint8_t>(bytes.begin(), bytes.begin() + n));
      expect_load_error(dir.file("t"));
    }
  }
}

TEST(MalformedInput, WrongMagicAndUnknownFormats) {
  test::TempDir dir;
  test::write_bytes(dir.file("text.bin"), {'h', 'e', 'l', 'l', 'o', '\n'});
  expect_load_error(dir.file("text.bin"), "unrecognised model file format");
  test::write_bytes(dir.file("empty.bin"), {});
  expect_load_error(dir.file("empty.bin"));
  expect_load_error(dir.file("missing.bin"), "cannot open");
  expect_load_error(dir.file(""));  // a directory
}

TEST(MalformedInput, HostileBinHeaders) {
  test::TempDir dir;
  auto header = [](uint32_t version) {
    std::vector<uint8_t> b;
    append_u32(b, 0x67676d66);
    append_u32(b, version);
    append_u32(b, 256);
    append_u32(b, 64);
    append_u32(b, 1);
    append_u32(b, 0);
    return b;
  };
  auto b = header(99);
  test::write_bytes(dir.file("v.bin"), b);
  expect_load_error(dir.file("v.bin"), "version 99");
  // A tensor declaring 2^32-1 × 2^32-1 values.
  b = header(101);
  append_u32(b, 2);
  append_u32(b, 10);
  append_u32(b, 0);
  append_u32(b, 0xffffffff);
  append_u32(b, 0xffffffff);
  for (char c : std::string("emb.weight")) b.push_back(static_cast<uint8_t>(c));
  test::write_bytes(dir.file("huge.bin"), b);
  expect_load_error(dir.file("huge.bin"), "emb.weight");
  // Unknown data type and absurd dimension counts.
  b = header(101);
  append_u32(b, 1);
  append_u32(b, 1);
  append_u32(b, 55);
  append_u32(b, 4);
  b.push_back('x');
  test::write_bytes(dir.file("type.bin"), b);
  expect_load_error(dir.file("type.bin"), "data type 55");
  b = header(101);
  append_u32(b, 9);
  append_u32(b, 1);
  append_u32(b, 0);
  test::write_bytes(dir.file("dims.bin"), b);
  expect_load_error(dir.file("dims.bin"), "dimensions");
}

// A well-formed file whose tensors do not make a consistent model: the message names the tensor.
TEST(MalformedInput, WrongShapeIsNamed) {
  test::TempDir dir;
  auto bytes = test::read_bytes(tiny("4v0-660K-FP32"));
  // Locate the record by its name; its two ne values are just before it.
  const std::string key = "blocks.1.att.key.weight";
  auto it = std::search(bytes.begin(), bytes.end(), key.begin(), key.end());
  ASSERT_NE(it, bytes.end());
  const size_t pos = static_cast<size_t>(it - bytes.begin());
  uint32_t ne0, ne1;
  std::memcpy(&ne0, &bytes[pos - 8], 4);
  std::memcpy(&ne1, &bytes[pos - 4], 4);
  ASSERT_EQ(ne0, 128u);
  ASSERT_EQ(ne1, 128u);
  const uint32_t a = 64, b = 256;  // same byte count, wrong shape
  std::memcpy(&bytes[pos - 8], &a, 4);
  std::memcpy(&bytes[pos - 4], &b, 4);
  test::write_bytes(dir.file("shape.bin"), bytes);
  expect_load_error(dir.file("shape.bin"), "blocks.1.att.key.weight (blk.1.time_mix_key.weight) has shape [256, 64], expected [128, 128]");
}

TEST(MalformedInput, CliErrorsAreOneLineWithNonZeroExit) {
  test::TempDir dir;
  const std::string model = tiny("7v0-834K-FP32");
  struct Case {
    std::string args, needle;
  };
  const std::vector<Case> cases = {
      {"info " + dir.file("missing.gguf"), "cannot open"},
      {"logits -m " + model + " -t 1,,2 -o " + dir.file("o"), "invalid token id"},
      {"logits -m " + model + " -t 999 -o " + dir.file("o"), "out of range"},
      {"logits -m " + model + " -t 1 --mode fast -o " + dir.file("o"), "mode"},
      {"logits -m " + model + " -t 1 -o /nonexistent/dir/o", "cannot open"},
      {"logits -t 1 -o " + dir.file("o"), "--model"},
      {"convert " + model + " " + dir.file("x.gguf") + " --dtype q9", "dtype"},
      {"frobnicate", "frobnicate"},
  };
  for (const auto& c : cases) {
    auto r = test::run_cli(c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << c.args << ": " << r.output;
    EXPECT_NE(r.output.find(c.needle), std::string::npos) << c.args << ": " << r.output;
  }
}

TEST(MalformedInput, ControlBytesInMessagesAreEscaped) {
  EXPECT_EQ(one_line("plain text, caf\xc3\xa9 \\ \"q\""), "plain text, caf\xc3\xa9 \\ \"q\"");
  const char raw[] = "a\nb\r\t\x1b[0m\x7f\0z";
  EXPECT_EQ(one_line(std::string(raw, sizeof raw - 1)), "a\\x0ab\\x0d\\x09\\x1b[0m\\x7f\\x00z");
  try {
    fail("tensor ", "w\n", " has ", 5, " dims");
    ADD_FAILURE() << "fail returned";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "tensor w\\x0a has 5 dims");
  }
  // A value from a file that a message quotes (here general.architecture) cannot split its line.
  test::TempDir dir;
  const std::string path = dir.file("arch.gguf");
  write_gguf(path, {{"general.architecture", GgufValue::str("rwkv\n8\x1b[2J")}}, {make_f32_tensor("a", {3}, {1.f, 2.f, 3.f})});
  auto r = test::run_cli("info " + path);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_NE(r.output.find("architecture 'rwkv\\x0a8\\x1b[2J' is not supported"), std::string::npos) << r.output;
  // So can a command line argument (bash's $'...' puts the line feed in it).
  r = test::run_cli("info $'" + dir.file("missing") + "\\n.gguf'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_NE(r.output.find("missing\\x0a.gguf"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace rwkv
