// Where the shared test data lives: ../shared/data (the build's RWKV_TEST_DATA), overridable
// with the RWKV_TEST_DATA environment variable. Free of GoogleTest, so that the fuzz targets
// (fuzz/fuzz_util.hpp) share it with the tests.
#pragma once
#include <cstdlib>
#include <string>

namespace rwkv::test {

inline std::string data_path(const std::string& rel) {
  const char* env = std::getenv("RWKV_TEST_DATA");
  return std::string(env ? env : RWKV_TEST_DATA) + "/" + rel;
}

}  // namespace rwkv::test
