// Turning generated token bytes into printable text: only whole UTF-8 characters are
// released (invalid bytes become U+FFFD), text that could still turn into a stop string is
// held back, and a completed stop string ends the stream (it is not part of the text).
#pragma once
#include <string>
#include <vector>

namespace rwkv {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stops);  // throws rwkv::Error on an empty stop

  // Adds a token's bytes; returns the text that became safe to print.
  std::string add(const std::string& token_bytes);
  // Releases everything still held back (the stream ended for another reason).
  std::string flush();

  bool stopped() const { return stopped_; }
  const std::string& text() const { return text_; }  // all released text so far
  size_t bytes_seen() const { return bytes_.size(); }

 private:
  std::string release(size_t upto);
  std::vector<std::string> stops_;
  std::string bytes_, text_;
  size_t printed_ = 0;
  bool stopped_ = false;
};

}  // namespace rwkv
