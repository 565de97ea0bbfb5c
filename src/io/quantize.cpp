// Quantizers. The 32-value block types follow ggml's reference rounding (GG src/ggml-quants.c,
// quantize_row_*_ref, described in formats.md §1): the same bytes for the same floats. The
// K-quants use our own scale search (below); only their layout is ggml's (k_quants.hpp).
#include "io/quantize.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "io/error.hpp"
#include "io/k_quants.hpp"

namespace rwkv {

namespace {

void store_f16(uint8_t* p, float v) {
  const uint16_t h = fp32_to_fp16(v);
  p[0] = static_cast<uint8_t>(h);
  p[1] = static_cast<uint8_t>(h >> 8);
}
float rounded_f16(float v) { return fp16_to_fp32(fp32_to_fp16(v)); }

// ---- 32-value blocks, as ggml's reference quantizers

// The value of largest magnitude (the first one on ties), with its sign.
float signed_absmax(const float* x, int n) {
  float amax = 0, max = 0;
  for (int j = 0; j < n; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  return max;
}

void quantize_q8_0(const float* x, uint8_t* b) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127, id = d != 0 ? 1 / d : 0;
  store_f16(b, d);
  for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
}

// Q4_0 / Q5_0: d = max / −2^(bits−1), so the largest-magnitude value gets level 0; levels are
// x/d + 2^(bits−1) rounded half up, capped at 2^bits − 1.
void quantize_symmetric(const float* x, int bits, uint8_t* b) {
  const int half = 1 << (bits - 1), top = (1 << bits) - 1;
  const float d = signed_absmax(x, 32) / static_cast<float>(-half), id = d != 0 ? 1 / d : 0;
  const float offset = static_cast<float>(half) + 0.5f;
  store_f16(b, d);
  uint8_t* qs = b + (bits == 4 ? 2 : 6);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const int lo = std::min(top, static_cast<int>(x[j] * id + offset));
    const int hi = std::min(top, static_cast<int>(x[j + 16] * id + offset));
    qs[j] = static_cast<uint8_t>((lo & 15) | ((hi & 15) << 4));
    qh |= static_cast<uint32_t>((lo >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((hi >> 4) & 1) << (j + 16);
  }
  if (bits == 5) std::memcpy(b + 2, &qh, 4);  // little-endian host, as ggml
}

// Q4_1 / Q5_1: d = (max − min)/(2^bits − 1), m = min; levels (x − min)/d rounded half up.
void quantize_with_min(const float* x, int bits, uint8_t* b) {
  const int top = (1 << bits) - 1;
  float min = std::numeric_limits<float>::max(), max = -min;
  for (int j = 0; j < 32; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
  const float d = (max - min) / static_cast<float>(top), id = d != 0 ? 1 / d : 0;
  store_f16(b, d);
  store_f16(b + 2, min);
  uint8_t* qs = b + (bits == 4 ? 4 : 8);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const int lo = std::min(top, static_cast<int>((x[j] - min) * id + 0.5f));
    const int hi = std::min(top, static_cast<int>((x[j + 16] - min) * id + 0.5f));
    qs[j] = static_cast<uint8_t>((lo & 15) | ((hi & 15) << 4));
    qh |= static_cast<uint32_t>((lo >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((hi >> 4) & 1) << (j + 16);
  }
  if (bits == 5) std::memcpy(b + 4, &qh, 4);
}

// ---- K-quants: scale search

// Nearest level in lo..hi (clamped before the conversion, so huge ratios stay defined).
int clamp_round(float v, int lo, int hi) {
  if (!(v > static_cast<float>(lo))) return lo;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(std::nearbyint(v));
}

// x ≈ scale·q + offset with q in 0..nmax and offset ≤ 0 (Q4_K/Q5_K store −offset as an
// unsigned "min"). Tries level grids a little finer and coarser than the plain min..max one,
// refits scale and offset by least squares for each, and keeps the smallest squared error.
struct AsymmetricFit {
  float scale, offset;
};
AsymmetricFit fit_asymmetric(const float* x, int n, int nmax) {
  float lo = 0, hi = x[0];
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  if (hi <= lo) return {0, lo};
  AsymmetricFit best{(hi - lo) / static_cast<float>(nmax), lo};
  auto error = [&](const AsymmetricFit& f) {
    double e = 0;
    for (int i = 0; i < n; ++i) {
      const int q = f.scale > 0 ? clamp_round((x[i] - f.offset) / f.scale, 0, nmax) : 0;
      const double r = f.scale * q + f.offset - x[i];
      e += r * r;
    }
    return e;
  };
  double best_error = error(best);
  for (int step = -10; step <= 10; ++step) {
    const float iscale = (static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / (hi - lo);
    double sq = 0, sqq = 0, sx = 0, sqx = 0;
    for (int i = 0; i < n; ++i) {
      const int q = clamp_round((x[i] - lo) * iscale, 0, nmax);
      sq += q;
      sqq += double(q) * q;
      sx += x[i];
      sqx += double(q) * x[i];
    }
    const double det = n * sqq - sq * sq;
    if (det <= 0) continue;
    double scale = (n * sqx - sq * sx) / det, offset = (sqq * sx - sq * sqx) / det;
    if (offset > 0) {  // the offset cannot be positive: refit the scale alone
      offset = 0;
      scale = sqx / sqq;
    }
    if (!(scale > 0)) continue;
    const AsymmetricFit f{static_cast<float>(scale), static_cast<float>(offset)};
    if (const double e = error(f); e < best_error) {
      best_error = e;
      best = f;
    }
  }
  return best;
}

// x ≈ scale·q with q in −32..31 (Q6_K). The value of largest magnitude maps near level −32 or
// +31 (either sign of the scale); each candidate is refit by least squares.
float fit_symmetric(const float* x, int n) {
  const float vmax = signed_absmax(x, n);
  if (vmax == 0) return 0;
  float best = vmax / -32;
  double best_error = std::numeric_limits<double>::max();
  for (float target : {-32.0f, 31.0f})
    for (int step = -8; step <= 8; ++step) {
      const float iscale = (target + 0.125f * static_cast<float>(step)) / vmax;
      double sxq = 0, sqq = 0;
      for (int i = 0; i < n; ++i) {
        const int q = clamp_round(x[i] * iscale, -32, 31);
        sxq += double(x[i]) * q;
        sqq += double(q) * q;
      }
      if (sqq == 0) continue;
      const float scale = static_cast<float>(sxq / sqq);
      double e = 0;
      for (int i = 0; i < n; ++i) {
        const double r = scale * clamp_round(x[i] / scale, -32, 31) - x[i];
        e += r * r;
      }
      if (e < best_error) {
        best_error = e;
        best = scale;
      }
    }
  return best;
}

// Q4_K (nmax 15) and Q5_K (nmax 31): fit the 8 sub-blocks, quantize their scales and mins to
// 6 bits against d = max scale/63 and dmin = max min/63, then the levels against the scales
// the block really stores.
void quantize_q45_k(const float* x, int nmax, uint8_t* b) {
  AsymmetricFit fit[8];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    fit[j] = fit_asymmetric(x + 32 * j, 32, nmax);
    max_scale = std::max(max_scale, fit[j].scale);
    max_min = std::max(max_min, -fit[j].offset);
  }
  const float d = rounded_f16(max_scale / 63), dmin = rounded_f16(max_min / 63);
  store_f16(b, d);
  store_f16(b + 2, dmin);
  uint8_t scale[8], min[8], q[kquant::kBlock];
  for (int j = 0; j < 8; ++j) {
    scale[j] = static_cast<uint8_t>(d > 0 ? clamp_round(fit[j].scale / d, 0, 63) : 0);
    min[j] = static_cast<uint8_t>(dmin > 0 ? clamp_round(-fit[j].offset / dmin, 0, 63) : 0);
    const float s = d * scale[j], m = dmin * min[j];
    for (int i = 0; i < 32; ++i)
      q[32 * j + i] = static_cast<uint8_t>(s > 0 ? clamp_round((x[32 * j + i] + m) / s, 0, nmax) : 0);
  }
  kquant::pack_scales(scale, min, b + 4);
  if (nmax == 15) {
    kquant::pack_q4_k(q, b);
  } else {
    kquant::pack_q5_k(q, b);
  }
}

// Q6_K: 16 sub-blocks of 16 with int8 scales against one fp16 d = max |scale|/127.
void quantize_q6_k(const float* x, uint8_t* b) {
  float fit[16], max_scale = 0;
  for (int j = 0; j < 16; ++j) {
    fit[j] = fit_symmetric(x + 16 * j, 16);
    max_scale = std::max(max_scale, std::fabs(fit[j]));
  }
  const float d = rounded_f16(max_scale / 127);
  store_f16(b + 208, d);
  int8_t q[kquant::kBlock];
  for (int j = 0; j < 16; ++j) {
    const int sc = d > 0 ? clamp_round(fit[j] / d, -127, 127) : 0;
    b[192 + j] = static_cast<uint8_t>(static_cast<int8_t>(sc));
    const float s = d * static_cast<float>(sc);
    for (int i = 0; i < 16; ++i)
      q[16 * j + i] = static_cast<int8_t>(s != 0 ? clamp_round(x[16 * j + i] / s, -32, 31) : 0);
  }
  kquant::pack_q6_k(q, b);
}

}  // namespace

std::vector<uint8_t> quantize(DType t, const float* x, size_t n) {
  const size_t block = dtype_block_size(t);
  if (n % block != 0)
    fail("cannot quantize ", n, " values to ", dtype_name(t), ": not a multiple of its block size ", block);
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) fail("cannot quantize to ", dtype_name(t), ": value ", i, " is ", x[i]);
  std::vector<uint8_t> out(dtype_bytes(t, n));
  uint8_t* b = out.data();
  const size_t nb = n / block, bytes = dtype_block_bytes(t);
  for (size_t i = 0; i < nb; ++i, x += block, b += bytes) {
    switch (t) {
      case DType::F32: std::memcpy(b, x, 4); break;
      case DType::F16: store_f16(b, *x); break;
      case DType::BF16: {
        const uint16_t h = fp32_to_bf16(*x);
        b[0] = static_cast<uint8_t>(h);
        b[1] = static_cast<uint8_t>(h >> 8);
        break;
      }
      case DType::Q8_0: quantize_q8_0(x, b); break;
      case DType::Q4_0: quantize_symmetric(x, 4, b); break;
      case DType::Q5_0: quantize_symmetric(x, 5, b); break;
      case DType::Q4_1: quantize_with_min(x, 4, b); break;
      case DType::Q5_1: quantize_with_min(x, 5, b); break;
      case DType::Q4_K: quantize_q45_k(x, 15, b); break;
      case DType::Q5_K: quantize_q45_k(x, 31, b); break;
      case DType::Q6_K: quantize_q6_k(x, b); break;
      default: fail("cannot quantize to ", dtype_name(t));
    }
  }
  return out;
}

DType storable_type_from_name(const std::string& name) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q5_0, DType::Q5_1, DType::Q4_0,
                  DType::Q4_1, DType::Q4_K, DType::Q5_K, DType::Q6_K})
    if (name == dtype_name(t)) return t;
  fail("unknown type '", name, "' (expected q8_0, q5_0, q5_1, q4_0, q4_1, q4_k, q5_k, q6_k, f16, bf16 or f32)");
}

}  // namespace rwkv
