// Memory for large, short-lived buffers: each thread keeps the buffers it frees (up to 256 MB
// in all) and hands them out again. Every layer, and every training step, asks for the same
// sizes again, and memory fresh from the system costs a page fault per 4 kB: glibc gives large
// blocks back to the system when they are freed (RWKV-4 169M prefill ran at three quarters of
// its speed, and an RWKV-7 training step at 0.85, without this).
#pragma once
#include <cstddef>
#include <vector>

namespace rwkv {

// At least `bytes` (the smallest buffer the thread has kept that holds them and is at most
// twice as large, else new memory). Never null. Each buffer knows its own size (kept just
// before it), so giving it back needs only the pointer.
void* take_buffer(size_t bytes);
// Keeps a buffer from take_buffer for this thread (null: nothing).
void give_buffer(void* p) noexcept;

// A standard allocator on those buffers, for std::vector.
template <class T>
struct Recycled {
  using value_type = T;
  Recycled() = default;
  template <class U>
  Recycled(const Recycled<U>&) noexcept {}
  T* allocate(size_t n) { return static_cast<T*>(take_buffer(n * sizeof(T))); }
  void deallocate(T* p, size_t) noexcept { give_buffer(p); }
  friend bool operator==(const Recycled&, const Recycled&) { return true; }
};

// A std::vector whose memory comes from the thread's kept buffers.
template <class T>
using RecycledVector = std::vector<T, Recycled<T>>;

}  // namespace rwkv
