// Initial weights of new RWKV-4 / RWKV-7 models (spec §7.1, §7.2): the deterministic "fancy
// init" vectors, zero matrices and scaled orthogonal matrices, built in the canonical form.
#include "model/init.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "io/error.hpp"

namespace rwkv {

int rwkv7_lora_rank(double factor, int n_embd) {
  // std::nearbyint rounds ties to even in the default rounding mode, like Python's round
  // (C = 1024 gives 2.5 ⇒ 2 ⇒ D_w = 64).
  const double r = std::nearbyint(factor * std::sqrt(static_cast<double>(n_embd)) / 32.0);
  return std::max(32, static_cast<int>(r) * 32);
}

namespace {

// ---- random numbers

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// One stream per tensor, so a tensor's values depend only on the seed, its name and shape,
// not on which other tensors were made before it.
class Random {
 public:
  Random(uint64_t seed, const std::string& name) : rng_(splitmix64(splitmix64(seed) ^ fnv1a(name))) {}

  // [0, 1) from the top 53 bits.
  double uniform() { return static_cast<double>(rng_() >> 11) * 0x1p-53; }

  // Box–Muller, both values of each pair used. mt19937_64's output is fixed by the standard;
  // std::normal_distribution's algorithm is not, hence our own.
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - uniform();  // (0, 1]: the logarithm stays finite
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1)), t = 2.0 * std::numbers::pi * u2;
    spare_ = r * std::sin(t);
    has_spare_ = true;
    return r * std::cos(t);
  }

 private:
  std::mt19937_64 rng_;
  double spare_ = 0;
  bool has_spare_ = false;
};

// ---- orthogonal matrices (spec §7, orth)

// Orthonormalises the k rows (length m ≥ k) of b in order: Gram–Schmidt on the columns of
// the tall matrix bᵀ. Its result is the Q of bᵀ = Q·R with diag(R) > 0, which is what QR
// followed by multiplying Q by sign(diag(R)) gives. Blocks of rows are projected against the
// finished rows with two matrix products (OpenBLAS, double), then against each other; the
// whole step runs twice ("twice is enough") so orthogonality holds to rounding error even for
// the square, worst-conditioned case.
void orthonormalise_rows(std::vector<double>& b, size_t k, size_t m) {
  constexpr size_t kBlock = 64;
  const int im = static_cast<int>(m);
  std::vector<double> p;
  for (size_t j0 = 0; j0 < k; j0 += kBlock) {
    const size_t nb = std::min(kBlock, k - j0);
    const int inb = static_cast<int>(nb), ij0 = static_cast<int>(j0);
    double* blk = b.data() + j0 * m;
    for (int pass = 0; pass < 2; ++pass) {
      if (j0 > 0) {
        p.assign(nb * j0, 0.0);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, inb, ij0, im, 1.0, blk, im, b.data(), im, 0.0,
                    p.data(), ij0);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, inb, im, ij0, -1.0, p.data(), ij0, b.data(), im,
                    1.0, blk, im);
      }
      for (size_t r = 0; r < nb; ++r) {
        double* v = blk + r * m;
        for (size_t s = 0; s < r; ++s) {
          const double* q = blk + s * m;
          cblas_daxpy(im, -cblas_ddot(im, q, 1, v, 1), q, 1, v, 1);
        }
        const double norm = cblas_dnrm2(im, v, 1);
        if (!(norm > 0)) fail("orthogonal init: degenerate random matrix");  // probability 0
        cblas_dscal(im, 1.0 / norm, v, 1);
      }
    }
  }
}

// A (rows, cols) row-major matrix with orthonormal rows or columns, whichever are fewer,
// times gain: PyTorch's nn.init.orthogonal_ on a Gaussian draw.
std::vector<float> orthogonal(size_t rows, size_t cols, double gain, Random& rng) {
  const size_t k = std::min(rows, cols), m = std::max(rows, cols);
  const bool tall = rows > cols;
  // b holds the k vectors to orthonormalise as rows: the rows of a wide draw, the columns
  // of a tall one (PyTorch transposes a wide matrix to QR it; same thing from the other side).
  std::vector<double> b(k * m);
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j) b[tall ? j * m + i : i * cols + j] = rng.normal();
  orthonormalise_rows(b, k, m);
  std::vector<float> out(rows * cols);
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j) out[i * cols + j] = static_cast<float>(gain * b[tall ? j * m + i : i * cols + j]);
  return out;
}

// The trainers' matrix gain rule (spec §7.1): sqrt(rows/cols) for a tall matrix, else 1.
double tall_gain(double rows, double cols) { return rows > cols ? std::sqrt(rows / cols) : 1.0; }

// ---- building tensors

class Builder {
 public:
  Builder(const InitOptions& o, TensorSet& ts) : o_(o), ts_(ts) {}

  void values(const std::string& name, std::vector<int64_t> shape, std::vector<float> v) {
    ts_.add(make_f32_tensor(name, std::move(shape), std::move(v)));
  }
  // A vector of n values f(i), computed in double.
  template <typename F>
  void vector(const std::string& name, int n, F f) {
    std::vector<float> v(n);
    for (int i = 0; i < n; ++i) v[i] = static_cast<float>(f(i));
    values(name, {n}, std::move(v));
  }
  void constant(const std::string& name, std::vector<int64_t> shape, float value) {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    values(name, std::move(shape), std::vector<float>(n, value));
  }
  void zeros(const std::string& name, int rows, int cols) { constant(name, {rows, cols}, 0.0f); }
  void orth(const std::string& name, int rows, int cols, double gain) {
    Random rng(o_.seed, name);
    values(name, {rows, cols}, orthogonal(rows, cols, gain, rng));
  }
  void uniform(const std::string& name, int rows, int cols, double scale) {
    Random rng(o_.seed, name);
    std::vector<float> v(static_cast<size_t>(rows) * cols);
    for (float& x : v) x = static_cast<float>(-scale + 2.0 * scale * rng.uniform());
    values(name, {rows, cols}, std::move(v));
  }
  // LayerNorm weight 1, bias 0 (both trainers).
  void layer_norm(const std::string& prefix, int C) {
    constant(prefix + ".weight", {C}, 1.0f);
    constant(prefix + ".bias", {C}, 0.0f);
  }

 private:
  const InitOptions& o_;
  TensorSet& ts_;
};

// spec §7 intro: r01 = l/(L−1) (0 for L = 1), r1 = 1 − l/L, ddd_i = i/C.
struct LayerRatios {
  double r01, r1;
  LayerRatios(int l, int L) : r01(L > 1 ? double(l) / (L - 1) : 0.0), r1(1.0 - double(l) / L) {}
};

// Embedding, ln0, ln_out and head: the same for both versions (spec §7.1, §7.2).
void build_globals(Builder& b, const InitOptions& o) {
  const int C = o.n_embd, V = o.vocab_size;
  b.uniform("token_embd.weight", V, C, o.emb_scale);
  b.layer_norm("token_embd_norm", C);  // ln0 (block 0 in .pth)
  b.layer_norm("output_norm", C);
  b.orth("output.weight", V, C, 0.5 * tall_gain(V, C));
}

// spec §7.1
void build_rwkv4(Builder& b, const InitOptions& o, int F) {
  const int L = o.n_layer, C = o.n_embd, A = C;
  for (int l = 0; l < L; ++l) {
    auto n = [&](const char* s) { return Weights::layer(l, s); };
    const LayerRatios q(l, L);
    auto ddd = [&](int i) { return double(i) / C; };
    b.layer_norm(n("attn_norm"), C);
    b.layer_norm(n("attn_norm_2"), C);
    b.vector(n("time_mix_lerp_k.weight"), C, [&](int i) { return std::pow(ddd(i), q.r1); });
    b.vector(n("time_mix_lerp_v.weight"), C, [&](int i) { return std::pow(ddd(i), q.r1) + 0.3 * q.r01; });
    b.vector(n("time_mix_lerp_r.weight"), C, [&](int i) { return std::pow(ddd(i), 0.5 * q.r1); });
    // h/(A−1) is undefined for A = 1 in the trainer; 0 there.
    b.vector(n("time_mix_decay.weight"), A, [&](int h) {
      const double x = A > 1 ? double(h) / (A - 1) : 0.0;
      return -5.0 + 8.0 * std::pow(x, 0.7 + 1.3 * q.r01);
    });
    b.vector(n("time_mix_first_log.weight"), A,
             [&](int h) { return std::log(0.3) + 0.5 * (((h + 1) % 3) - 1); });
    b.zeros(n("time_mix_key.weight"), A, C);
    b.orth(n("time_mix_value.weight"), A, C, tall_gain(A, C));
    b.zeros(n("time_mix_receptance.weight"), A, C);
    b.zeros(n("time_mix_output.weight"), C, A);
    b.vector(n("channel_mix_lerp_k.weight"), C, [&](int i) { return std::pow(ddd(i), q.r1); });
    b.vector(n("channel_mix_lerp_r.weight"), C, [&](int i) { return std::pow(ddd(i), q.r1); });
    b.orth(n("channel_mix_key.weight"), F, C, tall_gain(F, C));
    b.zeros(n("channel_mix_value.weight"), C, F);
    b.zeros(n("channel_mix_receptance.weight"), C, C);
  }
}

// spec §7.2
void build_rwkv7(Builder& b, const InitOptions& o, int F) {
  const int L = o.n_layer, C = o.n_embd, N = o.head_size;
  const int Dw = rwkv7_lora_rank(2.5, C), Da = Dw, Dv = rwkv7_lora_rank(1.7, C), Dg = rwkv7_lora_rank(5.0, C);
  // Curves over the channels; (N−1)/2 and C−1 are 0 for N = 1 or C = 1, where we use 0.
  auto linear = [&](int i) { return C > 1 ? double(i) / (C - 1) - 0.5 : 0.0; };
  auto zigzag = [&](int i) {
    const double half = (N - 1) / 2.0;
    const double z = half > 0 ? ((i % N) - half) / half : 0.0;
    return z * std::abs(z);
  };
  for (int l = 0; l < L; ++l) {
    auto n = [&](const char* s) { return Weights::layer(l, s); };
    const LayerRatios q(l, L);
    auto ddd = [&](int i) { return double(i) / C; };
    b.layer_norm(n("attn_norm"), C);
    b.layer_norm(n("attn_norm_2"), C);
    // Token-shift weights, fused in the order x_r, x_w, x_k, x_v, x_a, x_g (weights.cpp).
    const double exponents[6] = {0.2, 0.9, 0.7, 0.7, 0.9, 0.2};
    std::vector<float> mix(6 * static_cast<size_t>(C));
    for (int j = 0; j < 6; ++j)
      for (int i = 0; i < C; ++i)
        mix[static_cast<size_t>(j) * C + i] = static_cast<float>(1.0 - std::pow(ddd(i), exponents[j] * q.r1));
    b.values(n("time_mix_lerp_fused.weight"), {6, 1, 1, C}, std::move(mix));
    const double www_exp = 1.0 + std::pow(q.r01, 0.3);
    b.vector(n("time_mix_w0.weight"), C, [&](int i) {
      const double www = -6.0 + 6.0 * std::pow(C > 1 ? double(i) / (C - 1) : 0.0, www_exp);
      return www + 0.5 + 2.5 * zigzag(i);
    });
    b.vector(n("time_mix_a0.weight"), C, [&](int i) { return -0.19 + 0.3 * zigzag(i) + 0.4 * linear(i); });
    b.vector(n("time_mix_k_k.weight"), C, [&](int i) { return 0.71 - 0.1 * linear(i); });
    b.constant(n("time_mix_k_a.weight"), {C}, 1.02f);
    b.constant(n("time_mix_r_k.weight"), {C}, -0.04f);  // (H, N) flattened head-major
    // LoRA pairs: the first matrix is 0; the second, (D, C) in .pth, is orth with the gain
    // rule times 0.1. Canonically it is (C, D) = its transpose; orth of a (C, D) draw has
    // the same distribution, so it is drawn in that shape directly.
    auto lora = [&](const char* first, const char* second, int D) {
      b.zeros(n(first), D, C);
      b.orth(n(second), C, D, 0.1 * tall_gain(D, C));
    };
    lora("time_mix_w1.weight", "time_mix_w2.weight", Dw);
    lora("time_mix_a1.weight", "time_mix_a2.weight", Da);
    if (l > 0) {  // layer 0 has no value residual (spec §3.1)
      b.vector(n("time_mix_v0.weight"), C, [&](int i) { return 0.73 - 0.4 * linear(i); });
      lora("time_mix_v1.weight", "time_mix_v2.weight", Dv);
    }
    lora("time_mix_g1.weight", "time_mix_g2.weight", Dg);
    b.orth(n("time_mix_receptance.weight"), C, C, 1.0);
    b.orth(n("time_mix_key.weight"), C, C, 0.1);
    b.orth(n("time_mix_value.weight"), C, C, 1.0);
    b.zeros(n("time_mix_output.weight"), C, C);
    b.constant(n("time_mix_ln.weight"), {C}, static_cast<float>(std::pow(double(l + 1) / L, 0.7)));
    b.constant(n("time_mix_ln.bias"), {C}, 0.0f);
    b.vector(n("channel_mix_lerp_k.weight"), C, [&](int i) { return 1.0 - std::pow(ddd(i), std::pow(q.r1, 4)); });
    b.orth(n("channel_mix_key.weight"), F, C, 1.0);  // no sqrt(F/C) factor in v7
    b.zeros(n("channel_mix_value.weight"), C, F);
  }
}

// Parameters the model will have, in double so that absurd sizes cannot overflow.
double parameter_count(const InitOptions& o, double F) {
  const double L = o.n_layer, C = o.n_embd, V = o.vocab_size;
  const double globals = 2 * V * C + 4 * C;
  if (o.arch == Arch::RWKV4) return globals + L * (9 * C + 2 * C + 4 * C * C + 2 * F * C + C * C);
  const double Dw = rwkv7_lora_rank(2.5, o.n_embd), Dv = rwkv7_lora_rank(1.7, o.n_embd),
               Dg = rwkv7_lora_rank(5.0, o.n_embd);
  const double per_layer = 4 * C + 6 * C + 5 * C + 2 * C * (2 * Dw + Dg) + 4 * C * C + 2 * C + C + 2 * F * C;
  return globals + L * per_layer + (L - 1) * (C + 2 * Dv * C);
}

}  // namespace

Weights init_weights(const InitOptions& o) {
  const char* what = "rwkv init: ";
  if (o.arch != Arch::RWKV4 && o.arch != Arch::RWKV7)
    fail(what, "only RWKV-4 and RWKV-7 models can be initialised, not RWKV-", static_cast<int>(o.arch));
  if (o.n_layer < 1) fail(what, "n_layer must be at least 1, got ", o.n_layer);
  if (o.n_layer > 100000) fail(what, "n_layer ", o.n_layer, " is absurdly large");
  if (o.n_embd < 1) fail(what, "n_embd must be at least 1, got ", o.n_embd);
  if (o.vocab_size < 1) fail(what, "vocab_size must be at least 1, got ", o.vocab_size);
  if (o.dim_ffn < 0) fail(what, "dim_ffn must be positive (or 0 for 4·n_embd), got ", o.dim_ffn);
  if (!(o.emb_scale >= 0) || !std::isfinite(o.emb_scale))
    fail(what, "the embedding scale must be finite and not negative, got ", o.emb_scale);
  if (o.arch == Arch::RWKV7) {
    if (o.head_size < 1) fail(what, "head_size must be at least 1, got ", o.head_size);
    if (o.n_embd % o.head_size != 0)
      fail(what, "n_embd ", o.n_embd, " is not a multiple of head_size ", o.head_size);
  }
  const int64_t F = o.dim_ffn > 0 ? o.dim_ffn : 4 * static_cast<int64_t>(o.n_embd);
  const double params = parameter_count(o, static_cast<double>(F));
  if (params > 0x1p34)
    fail(what, "a model of ", params, " parameters (n_layer ", o.n_layer, ", n_embd ", o.n_embd, ", vocab_size ",
         o.vocab_size, ") is absurdly large (limit 2^34)");
  // Every single matrix then has fewer than 2^34 values, but F must also fit an int.
  if (F > 0x7fffffff) fail(what, "dim_ffn ", F, " is absurdly large");

  Weights w;
  w.path = "";
  w.format = "new (rwkv init)";
  w.tensors.source = "rwkv init";
  Builder b(o, w.tensors);
  build_globals(b, o);
  if (o.arch == Arch::RWKV4) build_rwkv4(b, o, static_cast<int>(F));
  else build_rwkv7(b, o, static_cast<int>(F));
  w.hp.arch = o.arch;
  if (o.arch == Arch::RWKV7) w.hp.head_size = o.head_size;
  infer_hparams(w.tensors, w.hp);
  return w;
}

}  // namespace rwkv
