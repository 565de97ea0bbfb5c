// Each thread's freed buffers, handed out again (buffers.hpp).
#include "model/buffers.hpp"

#include <new>
#include <utility>

namespace rwkv {

namespace {
// Set when the thread's cache is destroyed (at thread exit): buffers taken or given later go
// straight to the heap. Trivially destructible, so it can be read to the thread's very end.
thread_local bool t_cache_gone = false;

// The thread's freed buffers (bytes, memory), oldest first, at most kBytes in all.
struct BufferCache {
  static constexpr size_t kBytes = size_t{256} << 20;
  std::vector<std::pair<size_t, void*>> buffers;
  size_t bytes = 0;
  ~BufferCache() {
    for (auto& b : buffers) ::operator delete(b.second);
    t_cache_gone = true;
  }
};
thread_local BufferCache t_cache;
}  // namespace

void* take_buffer(size_t bytes, size_t* capacity) {
  bytes = bytes ? bytes : 1;
  if (!t_cache_gone) {
    auto& c = t_cache.buffers;
    size_t best = c.size();
    for (size_t i = 0; i < c.size(); ++i)
      if (c[i].first >= bytes && c[i].first <= 2 * bytes && (best == c.size() || c[i].first < c[best].first)) best = i;
    if (best < c.size()) {
      *capacity = c[best].first;
      void* p = c[best].second;
      t_cache.bytes -= *capacity;
      c.erase(c.begin() + static_cast<std::ptrdiff_t>(best));
      return p;
    }
  }
  *capacity = bytes;
  return ::operator new(bytes);
}

void give_buffer(void* p, size_t capacity) noexcept {
  if (!p) return;
  if (t_cache_gone || capacity > BufferCache::kBytes) {
    ::operator delete(p);
    return;
  }
  BufferCache& c = t_cache;
  while (c.bytes + capacity > BufferCache::kBytes) {  // the oldest go first
    ::operator delete(c.buffers.front().second);
    c.bytes -= c.buffers.front().first;
    c.buffers.erase(c.buffers.begin());
  }
  try {
    c.buffers.emplace_back(capacity, p);
    c.bytes += capacity;
  } catch (...) {  // no room to keep it: give it back
    ::operator delete(p);
  }
}

}  // namespace rwkv
