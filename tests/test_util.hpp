// Helpers shared by the tests: where the shared data lives, reading raw float32 files,
// temporary files, running the CLI, a model's logits. The suite may be built as one unity
// translation unit per 16 files (scripts/build.sh), so a helper two test files need lives here
// and a file's own helpers have names no other test file uses.
#pragma once
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "model/model.hpp"
#include "test_data.hpp"  // data_path

namespace rwkv::test {

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline std::vector<float> read_f32(const std::string& path) {
  auto b = read_bytes(path);
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

// A fresh temporary directory per test, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("rwkv_test_" + std::string(info ? info->name() : "x") + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};

// Runs a bash command line; output is stdout and, unless `stdout_only`, stderr.
inline CommandResult run_command(const std::string& line, bool stdout_only = false) {
  std::string cmd = "bash -c '";
  for (char c : line) cmd += c == '\'' ? std::string("'\\''") : std::string(1, c);
  cmd += stdout_only ? " 2>/dev/null'" : " 2>&1'";
  FILE* p = ::popen(cmd.c_str(), "r");
  CommandResult r{-1, {}};
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Runs the rwkv CLI with the given argument string (bash syntax).
inline CommandResult run_cli(const std::string& args, bool stdout_only = false) {
  return run_command(std::string(RWKV_CLI_PATH) + " " + args, stdout_only);
}

// A tiny rwkv.cpp model of the shared data by its short name: tiny("5v2-730K-Q5_1").
inline std::string tiny(const std::string& n) { return data_path("rwkv_cpp_tiny/tiny-rwkv-" + n + ".bin"); }

// The first 70 bytes of rwkv.cpp's test prompt (its expected logits are for these tokens).
inline const char* const kPrompt70 = "This is a port of [BlinkDL/RWKV-LM](https://github.com/BlinkDL/RWKV-LM";

// 20000 (or `bytes`) bytes of Tiny Shakespeare written to corpus.txt in `dir`.
inline std::string small_corpus(const TempDir& dir, size_t bytes = 20000) {
  const auto text = read_bytes(data_path("corpus/tinyshakespeare_input.txt"));
  const std::string path = dir.file("corpus.txt");
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(text.data()), std::streamsize(bytes));
  return path;
}

// A failed CLI run as the project wants it: non-zero exit, one line "rwkv: error: ..." naming `part`.
inline void expect_one_line_error(const CommandResult& r, const std::string& part) {
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("rwkv: error: ", 0), 0u) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_NE(r.output.find(part), std::string::npos) << part << "\n" << r.output;
}

// The largest absolute difference relative to the largest magnitude of `want`.
inline double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::fabs(double(got[i]) - double(want[i])));
    scale = std::max(scale, std::fabs(double(want[i])));
  }
  return diff / scale;
}

// The logits of every position of `tokens`, read in sequence mode from a fresh state.
inline std::vector<float> logits_all(const Model& m, const std::vector<int32_t>& tokens) {
  std::vector<float> out(tokens.size() * m.hparams().vocab_size);
  State s = m.new_state();
  m.forward(s, tokens, Logits::All, out.data());
  return out;
}

}  // namespace rwkv::test
