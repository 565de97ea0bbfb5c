// K-quant super-block layouts (see k_quants.hpp for the bit positions).
#include "io/k_quants.hpp"

#include "io/bytes.hpp"
#include "io/tensor.hpp"

namespace rwkv::kquant {

namespace {
float f16_at(const uint8_t* p) { return fp16_to_fp32(load_le16(p)); }
}  // namespace

void unpack_scales(const uint8_t* p, uint8_t scale[8], uint8_t min[8]) {
  for (int j = 0; j < 4; ++j) {
    scale[j] = p[j] & 63;
    min[j] = p[j + 4] & 63;
  }
  for (int j = 4; j < 8; ++j) {
    scale[j] = static_cast<uint8_t>((p[j + 4] & 15) | ((p[j - 4] >> 6) << 4));
    min[j] = static_cast<uint8_t>((p[j + 4] >> 4) | ((p[j] >> 6) << 4));
  }
}

void pack_scales(const uint8_t scale[8], const uint8_t min[8], uint8_t* p) {
  for (int j = 0; j < 4; ++j) {
    p[j] = static_cast<uint8_t>((scale[j] & 63) | ((scale[j + 4] >> 4) << 6));
    p[j + 4] = static_cast<uint8_t>((min[j] & 63) | ((min[j + 4] >> 4) << 6));
    p[j + 8] = static_cast<uint8_t>((scale[j + 4] & 15) | ((min[j + 4] & 15) << 4));
  }
}

void levels_q4_k(const uint8_t* block, int8_t q[kBlock]) {
  const uint8_t* qs = block + 16;
  for (int c = 0; c < 4; ++c, qs += 32)
    for (int l = 0; l < 32; ++l) {
      q[64 * c + l] = static_cast<int8_t>(qs[l] & 15);
      q[64 * c + 32 + l] = static_cast<int8_t>(qs[l] >> 4);
    }
}

void levels_q5_k(const uint8_t* block, int8_t q[kBlock]) {
  const uint8_t* qh = block + 16;
  const uint8_t* qs = block + 48;
  for (int c = 0; c < 4; ++c, qs += 32)
    for (int l = 0; l < 32; ++l) {
      q[64 * c + l] = static_cast<int8_t>((qs[l] & 15) | (((qh[l] >> (2 * c)) & 1) << 4));
      q[64 * c + 32 + l] = static_cast<int8_t>((qs[l] >> 4) | (((qh[l] >> (2 * c + 1)) & 1) << 4));
    }
}

void levels_q6_k(const uint8_t* block, int8_t q[kBlock]) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = block + 64 * h;
    const uint8_t* qh = block + 128 + 32 * h;
    int8_t* y = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      y[l] = static_cast<int8_t>(((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32);
      y[l + 32] = static_cast<int8_t>(((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32);
      y[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      y[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
  }
}

void pack_q4_k(const uint8_t q[kBlock], uint8_t* block) {
  uint8_t* qs = block + 16;
  for (int c = 0; c < 4; ++c, qs += 32)
    for (int l = 0; l < 32; ++l) qs[l] = static_cast<uint8_t>((q[64 * c + l] & 15) | ((q[64 * c + 32 + l] & 15) << 4));
}

void pack_q5_k(const uint8_t q[kBlock], uint8_t* block) {
  uint8_t* qh = block + 16;
  uint8_t* qs = block + 48;
  for (int l = 0; l < 32; ++l) qh[l] = 0;
  for (int c = 0; c < 4; ++c, qs += 32)
    for (int l = 0; l < 32; ++l) {
      const uint8_t lo = q[64 * c + l], hi = q[64 * c + 32 + l];
      qs[l] = static_cast<uint8_t>((lo & 15) | ((hi & 15) << 4));
      qh[l] = static_cast<uint8_t>(qh[l] | (((lo >> 4) & 1) << (2 * c)) | (((hi >> 4) & 1) << (2 * c + 1)));
    }
}

void pack_q6_k(const int8_t q[kBlock], uint8_t* block) {
  for (int h = 0; h < 2; ++h) {
    uint8_t* ql = block + 64 * h;
    uint8_t* qh = block + 128 + 32 * h;
    const int8_t* x = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      const int a = x[l] + 32, b = x[l + 32] + 32, c = x[l + 64] + 32, d = x[l + 96] + 32;  // 0..63
      ql[l] = static_cast<uint8_t>((a & 15) | ((c & 15) << 4));
      ql[l + 32] = static_cast<uint8_t>((b & 15) | ((d & 15) << 4));
      qh[l] = static_cast<uint8_t>((a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((d >> 4) << 6));
    }
  }
}

namespace {
// Q4_K and Q5_K: y = (d·scale)·q − dmin·min per sub-block of 32, as ggml evaluates it.
void scale_and_shift(const uint8_t* block, const int8_t q[kBlock], float* y) {
  const float d = f16_at(block), dmin = f16_at(block + 2);
  uint8_t scale[8], min[8];
  unpack_scales(block + 4, scale, min);
  for (int j = 0; j < 8; ++j) {
    const float dj = d * scale[j], mj = dmin * min[j];
    for (int l = 0; l < 32; ++l) y[32 * j + l] = dj * q[32 * j + l] - mj;
  }
}
}  // namespace

void dequantize_q4_k(const uint8_t* block, float* y) {
  int8_t q[kBlock];
  levels_q4_k(block, q);
  scale_and_shift(block, q, y);
}

void dequantize_q5_k(const uint8_t* block, float* y) {
  int8_t q[kBlock];
  levels_q5_k(block, q);
  scale_and_shift(block, q, y);
}

void dequantize_q6_k(const uint8_t* block, float* y) {
  int8_t q[kBlock];
  levels_q6_k(block, q);
  const float d = f16_at(block + 208);
  const int8_t* scale = reinterpret_cast<const int8_t*>(block + 192);
  for (int i = 0; i < 256; ++i) y[i] = d * scale[i / 16] * q[i];
}

}  // namespace rwkv::kquant
