// Helpers the fuzz targets share: the shared test data, the file an input is written to (the
// loaders read files), and the check that an Error's message is one line.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../tests/test_data.hpp"
#include "io/error.hpp"

namespace rwkv::fuzz {

using test::data_path;  // ../shared/data, or $RWKV_TEST_DATA

// Writes the input to this process's file ($TMPDIR or /tmp) and returns its path.
inline const std::string& input_file(const uint8_t* data, size_t size) {
  static const std::string path = [] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir && *dir ? dir : "/tmp") + "/rwkv-fuzz-input-" + std::to_string(::getpid());
  }();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (size > 0 && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::abort();
  }
  return path;
}

// Errors reach users as one line (`rwkv: error: ...`): a message with a line break is a finding.
inline void check_one_line(const Error& e) {
  if (std::strchr(e.what(), '\n') != nullptr) {
    std::fprintf(stderr, "error message of more than one line: %s\n", e.what());
    std::abort();
  }
}

}  // namespace rwkv::fuzz
