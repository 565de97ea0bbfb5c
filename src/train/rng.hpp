// The random numbers of training's data sampling: xoshiro256** seeded through splitmix64, with
// our own bounded draw, so that a seed gives the same windows on every platform and the whole
// state (four words) can be saved in a checkpoint and restored.
#pragma once
#include <array>
#include <cstdint>
#include <limits>

namespace rwkv::train {

class Rng {
 public:
  using State = std::array<uint64_t, 4>;

  explicit Rng(uint64_t seed = 0) {
    for (uint64_t& w : s_) w = splitmix64(seed);
  }
  static Rng from_state(const State& s) {
    Rng r;
    r.s_ = s;
    return r;
  }
  const State& state() const { return s_; }

  // xoshiro256** (Blackman and Vigna).
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, n), n > 0: rejection of the top partial range, then a remainder.
  uint64_t below(uint64_t n) {
    const uint64_t max = std::numeric_limits<uint64_t>::max();
    const uint64_t limit = max - (max % n + 1) % n;  // draws above `limit` would favour low values
    uint64_t x;
    do x = next();
    while (x > limit);
    return x % n;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  State s_{};
};

}  // namespace rwkv::train
