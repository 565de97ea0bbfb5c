// How the float kernels (simd.cpp, simd_bf16.cpp) cut a few dozen tokens into groups that fit the
// registers. A per-target header (Highway's -inl.h convention): each target's pass of a file that
// foreach_target.h re-includes compiles it again, for that target.
#if defined(RWKV_KERNELS_CPU_TOKEN_GROUPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RWKV_KERNELS_CPU_TOKEN_GROUPS_INL_H_
#undef RWKV_KERNELS_CPU_TOKEN_GROUPS_INL_H_
#else
#define RWKV_KERNELS_CPU_TOKEN_GROUPS_INL_H_
#endif

#include <hwy/highway.h>

#include <cstddef>

HWY_BEFORE_NAMESPACE();
namespace rwkv::cpu::simd::HWY_NAMESPACE {

// T tokens in the fewest groups of at most NT, as even as can be (16 tokens on AVX2: 5, 5 and
// 6, not 6, 6 and 4, whose 8 accumulators barely cover the FMA latency): group(t0, nt) for
// each. (The packed activations of a batched step are laid out by these groups too.)
template <size_t NT, class Group>
HWY_INLINE void even_groups(size_t T, const Group& group) {
  const size_t groups = (T + NT - 1) / NT;
  for (size_t g = 0, t0 = 0; g < groups; ++g) {
    const size_t nt = (T - t0) / (groups - g);
    group(t0, nt);
    t0 += nt;
  }
}

}  // namespace rwkv::cpu::simd::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
