// Helpers shared by the tests: where the shared data lives, reading raw float32 files,
// temporary files, running the CLI.
#pragma once
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace rwkv::test {

// ../shared/data (overridable with the RWKV_TEST_DATA environment variable).
inline std::string data_path(const std::string& rel) {
  const char* env = std::getenv("RWKV_TEST_DATA");
  return std::string(env ? env : RWKV_TEST_DATA) + "/" + rel;
}

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

// Runs the rwkv CLI with the given argument string (bash syntax); output is stdout and, unless
// `stdout_only`, stderr.
inline CommandResult run_cli(const std::string& args, bool stdout_only = false) {
  std::string cmd = "bash -c '" + std::string(RWKV_CLI_PATH) + " ";
  for (char c : args) cmd += c == '\'' ? std::string("'\\''") : std::string(1, c);
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

}  // namespace rwkv::test
