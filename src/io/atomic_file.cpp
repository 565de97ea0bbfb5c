// Atomic file writes: temporary file, then rename.
#include "io/atomic_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "io/error.hpp"

namespace rwkv {

AtomicFile::AtomicFile(std::string target) : target_(std::move(target)), path_(target_ + ".tmp") {
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_) fail(path_, ": cannot create: ", std::strerror(errno));
  // Written in whole 8 MB pieces: Linux then caches the file in 2 MB pieces, which a reader
  // that maps it right after (rwkv convert, then rwkv bench) gets as 2 MB pages.
  buffer_.reset(new char[kBuffer]);  // not zeroed: pages are touched only as far as written
  std::setvbuf(file_, buffer_.get(), _IOFBF, kBuffer);
}

AtomicFile::~AtomicFile() {
  if (file_) std::fclose(file_);
  if (!done_) std::remove(path_.c_str());
}

void AtomicFile::write(const void* p, size_t n) {
  if (n && std::fwrite(p, 1, n, file_) != n) fail(path_, ": write failed: ", std::strerror(errno));
  written_ += n;
}

void AtomicFile::write_zeros(uint64_t n) {
  static constexpr uint8_t kZeros[4096] = {};
  while (n) {
    const size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof kZeros));
    write(kZeros, k);
    n -= k;
  }
}

void AtomicFile::commit() {
  std::FILE* f = file_;
  file_ = nullptr;
  if (std::fclose(f) != 0) fail(path_, ": write failed: ", std::strerror(errno));
  if (std::rename(path_.c_str(), target_.c_str()) != 0)
    fail(target_, ": cannot rename ", path_, " onto it: ", std::strerror(errno));
  done_ = true;
}

}  // namespace rwkv
