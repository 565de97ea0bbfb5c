// TextStream: UTF-8-safe, stop-string-aware release of generated text.
#include "text/text_stream.hpp"

#include <algorithm>

#include "io/error.hpp"
#include "text/tokenizer.hpp"

namespace rwkv {

TextStream::TextStream(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const std::string& s : stops_)
    if (s.empty()) fail("empty stop string");
}

std::string TextStream::release(size_t upto) {
  if (upto <= printed_) return "";
  std::string t = sanitize_utf8(std::string_view(bytes_).substr(printed_, upto - printed_));
  printed_ = upto;
  text_ += t;
  return t;
}

std::string TextStream::add(const std::string& token_bytes) {
  if (stopped_) return "";
  bytes_ += token_bytes;
  // A stop string can only start in the part not yet released.
  size_t stop_at = std::string::npos;
  for (const std::string& s : stops_) stop_at = std::min(stop_at, bytes_.find(s, printed_));
  if (stop_at != std::string::npos) {
    stopped_ = true;
    return release(stop_at);
  }
  size_t safe = complete_utf8_prefix(bytes_);
  // Hold back the longest tail that is the beginning of a stop string.
  size_t hold = 0;
  for (const std::string& s : stops_)
    for (size_t n = std::min(s.size() - 1, safe); n > hold; --n)
      if (bytes_.compare(safe - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
  return release(safe - hold);
}

std::string TextStream::flush() { return stopped_ ? "" : release(bytes_.size()); }

}  // namespace rwkv
