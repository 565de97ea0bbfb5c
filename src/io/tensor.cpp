// Element types, half-precision conversion and ggml block decoding (GG src/ggml-common.h
// layouts, spec §5.1; the K-quant layouts are in k_quants), and the TensorSet container.
#include "io/tensor.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <sstream>

#include "io/bytes.hpp"
#include "io/error.hpp"
#include "io/k_quants.hpp"

namespace rwkv {

namespace {
struct TypeInfo {
  const char* name;
  size_t block;
  size_t bytes;
};
constexpr TypeInfo kTypes[] = {
    {"f32", 1, 4},    {"f16", 1, 2},    {"bf16", 1, 2},   {"q4_0", 32, 18},
    {"q4_1", 32, 20}, {"q5_0", 32, 22}, {"q5_1", 32, 24}, {"q8_0", 32, 34},
    {"f64", 1, 8},    {"i64", 1, 8},    {"i32", 1, 4},    {"u8", 1, 1},
    {"q4_k", 256, 144}, {"q5_k", 256, 176}, {"q6_k", 256, 210},
};
const TypeInfo& info(DType t) { return kTypes[static_cast<size_t>(t)]; }

}  // namespace

const char* dtype_name(DType t) { return info(t).name; }
size_t dtype_block_size(DType t) { return info(t).block; }
size_t dtype_block_bytes(DType t) { return info(t).bytes; }
bool dtype_is_quantized(DType t) { return info(t).block > 1; }

size_t dtype_bytes(DType t, size_t n) {
  const TypeInfo& i = info(t);
  if (n % i.block != 0) fail(n, " values do not fill whole ", i.name, " blocks of ", i.block);
  return n / i.block * i.bytes;
}

float fp16_to_fp32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: value = mant * 2^-24
      float f = std::ldexp(static_cast<float>(mant), -24);
      return sign ? -f : f;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t fp32_to_fp16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffff;
  if (absx > 0x7f800000) return static_cast<uint16_t>(sign | 0x7e00);  // NaN
  if (absx >= 0x477ff000) return static_cast<uint16_t>(sign | 0x7c00);  // overflow -> inf
  if (absx < 0x38800000) {  // result is subnormal or zero: round |f| * 2^24 to an integer
    float a = std::bit_cast<float>(absx);
    uint32_t m = static_cast<uint32_t>(std::nearbyint(a * 16777216.0f));  // ties to even
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t mant = absx & 0x7fffff;
  uint32_t exp = (absx >> 23) - 112;
  uint32_t h = (exp << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;  // may carry into the exponent: fine
  return static_cast<uint16_t>(sign | h);
}

float bf16_to_fp32(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

uint16_t fp32_to_bf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x40);
  x += 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

void dequantize(DType t, const void* src_v, float* dst, size_t n) {
  const uint8_t* src = static_cast<const uint8_t*>(src_v);
  const size_t nb = n / dtype_block_size(t);
  if (nb * dtype_block_size(t) != n) fail("dequantize: ", n, " is not a multiple of the block");
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(load_le16(src + 2 * i));
      return;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(load_le16(src + 2 * i));
      return;
    case DType::F64:
      for (size_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, src + 8 * i, 8);
        dst[i] = static_cast<float>(d);
      }
      return;
    case DType::Q4_0:
      for (size_t b = 0; b < nb; ++b, src += 18, dst += 32) {
        float d = fp16_to_fp32(load_le16(src));
        const uint8_t* qs = src + 2;
        for (int j = 0; j < 16; ++j) {
          dst[j] = static_cast<float>((qs[j] & 15) - 8) * d;
          dst[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
        }
      }
      return;
    case DType::Q4_1:
      for (size_t b = 0; b < nb; ++b, src += 20, dst += 32) {
        float d = fp16_to_fp32(load_le16(src)), m = fp16_to_fp32(load_le16(src + 2));
        const uint8_t* qs = src + 4;
        for (int j = 0; j < 16; ++j) {
          dst[j] = static_cast<float>(qs[j] & 15) * d + m;
          dst[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
        }
      }
      return;
    case DType::Q5_0:
      for (size_t b = 0; b < nb; ++b, src += 22, dst += 32) {
        float d = fp16_to_fp32(load_le16(src));
        uint32_t qh = load_le32(src + 2);
        const uint8_t* qs = src + 6;
        for (int j = 0; j < 16; ++j) {
          int lo = (qs[j] & 15) | (((qh >> j) & 1) << 4);
          int hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
          dst[j] = static_cast<float>(lo - 16) * d;
          dst[j + 16] = static_cast<float>(hi - 16) * d;
        }
      }
      return;
    case DType::Q5_1:
      for (size_t b = 0; b < nb; ++b, src += 24, dst += 32) {
        float d = fp16_to_fp32(load_le16(src)), m = fp16_to_fp32(load_le16(src + 2));
        uint32_t qh = load_le32(src + 4);
        const uint8_t* qs = src + 8;
        for (int j = 0; j < 16; ++j) {
          int lo = (qs[j] & 15) | (((qh >> j) & 1) << 4);
          int hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
          dst[j] = static_cast<float>(lo) * d + m;
          dst[j + 16] = static_cast<float>(hi) * d + m;
        }
      }
      return;
    case DType::Q8_0:
      for (size_t b = 0; b < nb; ++b, src += 34, dst += 32) {
        float d = fp16_to_fp32(load_le16(src));
        for (int j = 0; j < 32; ++j) dst[j] = static_cast<float>(static_cast<int8_t>(src[2 + j])) * d;
      }
      return;
    case DType::Q4_K:
      for (size_t b = 0; b < nb; ++b) kquant::dequantize_q4_k(src + b * kquant::kQ4KBytes, dst + b * 256);
      return;
    case DType::Q5_K:
      for (size_t b = 0; b < nb; ++b) kquant::dequantize_q5_k(src + b * kquant::kQ5KBytes, dst + b * 256);
      return;
    case DType::Q6_K:
      for (size_t b = 0; b < nb; ++b) kquant::dequantize_q6_k(src + b * kquant::kQ6KBytes, dst + b * 256);
      return;
    case DType::I64:
    case DType::I32:
    case DType::U8: break;
  }
  fail("cannot convert ", dtype_name(t), " values to float");
}

size_t Tensor::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

std::string Tensor::shape_string() const {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

std::vector<float> Tensor::to_f32() const {
  std::vector<float> out(numel());
  dequantize(dtype, data, out.data(), out.size());
  return out;
}

Tensor make_f32_tensor(std::string name, std::vector<int64_t> shape, std::vector<float> values) {
  auto buf = std::make_shared<std::vector<float>>(std::move(values));
  Tensor t;
  t.name = std::move(name);
  t.dtype = DType::F32;
  t.shape = std::move(shape);
  if (t.numel() != buf->size()) fail("tensor ", t.name, ": ", buf->size(), " values for shape ", t.shape_string());
  t.data = reinterpret_cast<const uint8_t*>(buf->data());
  t.owner = buf;
  return t;
}

Tensor make_owned_tensor(std::string name, DType type, std::vector<int64_t> shape,
                         std::vector<uint8_t> bytes) {
  auto buf = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  Tensor t;
  t.name = std::move(name);
  t.dtype = type;
  t.shape = std::move(shape);
  if (t.nbytes() != buf->size()) fail("tensor ", t.name, ": ", buf->size(), " bytes for ", dtype_name(type), " shape ", t.shape_string());
  t.data = buf->data();
  t.owner = buf;
  return t;
}

void TensorSet::add(Tensor t) {
  if (index_.count(t.name)) fail(source, ": duplicate tensor ", t.name);
  index_[t.name] = tensors_.size();
  tensors_.push_back(std::move(t));
}

const Tensor* TensorSet::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const Tensor& TensorSet::get(const std::string& name) const {
  const Tensor* t = find(name);
  if (!t) fail(source, ": missing tensor ", name);
  return *t;
}

std::vector<int64_t> squeezed(const std::vector<int64_t>& shape) {
  std::vector<int64_t> dims;
  for (int64_t d : shape)
    if (d != 1) dims.push_back(d);
  return dims;
}

}  // namespace rwkv
