// Error type of the library: an exception carrying a one-line message that names the file,
// tensor or field at fault. The CLI and the C API turn it into one line on stderr / a status.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace rwkv {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// fail("x", 3, "y") throws Error("x3y").
template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream s;
  (s << ... << args);
  throw Error(s.str());
}

}  // namespace rwkv
