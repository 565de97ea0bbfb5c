// Each thread's freed buffers, handed out again (buffers.hpp).
#include "model/buffers.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

namespace rwkv {

namespace {
// Set when the thread's cache is destroyed (at thread exit): buffers taken or given later go
// straight to the heap. Trivially destructible, so it can be read to the thread's very end.
thread_local bool t_cache_gone = false;

// A buffer's size is stored in the kHeader bytes before it (which keep its alignment).
constexpr size_t kHeader = alignof(std::max_align_t);
void* new_buffer(size_t bytes) {
  if (bytes > SIZE_MAX - kHeader) throw std::bad_alloc();
  char* raw = static_cast<char*>(::operator new(bytes + kHeader));
  std::memcpy(raw, &bytes, sizeof bytes);
  return raw + kHeader;
}
size_t size_of(const void* p) {
  size_t bytes;
  std::memcpy(&bytes, static_cast<const char*>(p) - kHeader, sizeof bytes);
  return bytes;
}
void delete_buffer(void* p) { ::operator delete(static_cast<char*>(p) - kHeader); }

// The thread's freed buffers, oldest first, at most kBytes in all.
struct BufferCache {
  static constexpr size_t kBytes = size_t{256} << 20;
  std::vector<void*> buffers;
  size_t bytes = 0;
  ~BufferCache() {
    for (void* b : buffers) delete_buffer(b);
    t_cache_gone = true;
  }
};
thread_local BufferCache t_cache;
}  // namespace

void* take_buffer(size_t bytes) {
  bytes = bytes ? bytes : 1;
  if (!t_cache_gone) {
    auto& c = t_cache.buffers;
    size_t best = c.size(), best_size = 0;
    for (size_t i = 0; i < c.size(); ++i) {
      const size_t size = size_of(c[i]);
      if (size >= bytes && size <= 2 * bytes && (best == c.size() || size < best_size)) best = i, best_size = size;
    }
    if (best < c.size()) {
      void* p = c[best];
      t_cache.bytes -= best_size;
      c.erase(c.begin() + static_cast<std::ptrdiff_t>(best));
      return p;
    }
  }
  return new_buffer(bytes);
}

void give_buffer(void* p) noexcept {
  if (!p) return;
  const size_t size = size_of(p);
  if (t_cache_gone || size > BufferCache::kBytes) {
    delete_buffer(p);
    return;
  }
  BufferCache& c = t_cache;
  while (c.bytes + size > BufferCache::kBytes) {  // the oldest go first
    c.bytes -= size_of(c.buffers.front());
    delete_buffer(c.buffers.front());
    c.buffers.erase(c.buffers.begin());
  }
  try {
    c.buffers.push_back(p);
    c.bytes += size;
  } catch (...) {  // no room to keep it: give it back
    delete_buffer(p);
  }
}

}  // namespace rwkv
