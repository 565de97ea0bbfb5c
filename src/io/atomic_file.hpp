// Writing a file so that it appears whole or not at all: the bytes go to PATH.tmp, which is
// renamed onto PATH when complete and removed if anything fails before that.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

namespace rwkv {

class AtomicFile {
 public:
  explicit AtomicFile(std::string target);  // creates target + ".tmp"; throws Error if it cannot
  ~AtomicFile();                            // removes the temporary file unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* p, size_t n);
  void write_zeros(uint64_t n);
  uint64_t position() const { return written_; }
  // Closes the temporary file and renames it onto the target.
  void commit();

 private:
  static constexpr size_t kBuffer = size_t{8} << 20;
  std::string target_, path_;
  std::unique_ptr<char[]> buffer_;  // file_'s buffer (closed in the destructor's body, before this goes)
  std::FILE* file_ = nullptr;
  uint64_t written_ = 0;
  bool done_ = false;
};

}  // namespace rwkv
