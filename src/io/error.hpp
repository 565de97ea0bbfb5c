// Error type of the library: an exception carrying a one-line message that names the file,
// tensor or field at fault. The CLI and the C API turn it into one line on stderr / a status.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace rwkv {

// `text` with every control byte (below 0x20, and 0x7f) written as \xNN, so that a message
// quoting a name or value from a file, a request or the command line stays one line.
std::string one_line(std::string_view text);

struct Error : std::runtime_error {
  explicit Error(const std::string& message) : std::runtime_error(one_line(message)) {}
};

// fail("x", 3, "y") throws Error("x3y").
template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream s;
  (s << ... << args);
  throw Error(s.str());
}

}  // namespace rwkv
