// Read-only mmap of a file (POSIX).
#include "io/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace rwkv {

namespace {
constexpr size_t kHuge = size_t{2} << 20;

// Maps n bytes of fd read-only. Files of 2 MB and more start at a 2 MB boundary and are
// advised for huge pages: where the kernel keeps a file's cache in 2 MB pieces (Linux reads
// it so under this advice, unless it holds it in smaller pieces already), those map as 2 MB
// pages, and weights streamed from them once per token take fewer TLB misses (f16 decode of
// RWKV-7 0.1B ~5 % faster on the development machine).
void* map_file(int fd, size_t n) {
  if (n < kHuge) return ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE, fd, 0);
  void* reserved = ::mmap(nullptr, n + kHuge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reserved == MAP_FAILED) return ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE, fd, 0);
  const auto r = reinterpret_cast<uintptr_t>(reserved);
  const uintptr_t a = (r + kHuge - 1) / kHuge * kHuge;
  void* p = ::mmap(reinterpret_cast<void*>(a), n, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
  if (p == MAP_FAILED) {
    const int e = errno;
    ::munmap(reserved, n + kHuge);
    errno = e;
    return MAP_FAILED;
  }
  // The reservation's slack before and after the file goes back.
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t tail = (a + n + page - 1) / page * page, end = r + n + kHuge;
  if (a > r) ::munmap(reserved, a - r);
  if (end > tail) ::munmap(reinterpret_cast<void*>(tail), end - tail);
  ::madvise(p, n, MADV_HUGEPAGE);  // advice: without it, ordinary pages
  return p;
}
}  // namespace

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, ": not a regular file");
  }
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ > 0) {
    void* p = map_file(fd, f->size_);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail(path, ": cannot map: ", std::strerror(e));
    }
    f->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return f;
}

void drop_mapped_pages(const void* p, size_t n) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (end <= begin) return;
  // (Advice: failure is harmless.) Marked random first: the range becomes its own mapping
  // area, so that the kernel's fault-around for the neighbouring tensors read in place does
  // not map these pages again.
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_RANDOM);
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void FreeBytes::operator()(uint8_t* p) const { std::free(p); }

WeightBytes allocate_weight_bytes(size_t n) {
  const size_t rounded = (std::max<size_t>(n, 1) + kHuge - 1) / kHuge * kHuge;
  WeightBytes p(static_cast<uint8_t*>(std::aligned_alloc(kHuge, rounded)));
  if (!p) throw std::bad_alloc();
  ::madvise(p.get(), rounded, MADV_HUGEPAGE);  // advice: without it, ordinary pages
  return p;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace rwkv
