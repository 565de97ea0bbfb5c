// The model skeleton shared by every version: embedding, ln0, blocks, ln_out, head.
#include "model/model.hpp"

#include <algorithm>
#include <cstring>

#include "io/error.hpp"
#include "io/mapped_file.hpp"
#include "kernels/cpu/ops.hpp"
#include "kernels/cpu/simd.hpp"
#include "kernels/cpu/simd_quant.hpp"
#include "kernels/cpu/thread_pool.hpp"
#include "model/buffers.hpp"

namespace rwkv {

std::unique_ptr<Model> Model::load(const std::string& path) { return from_weights(load_weights(path)); }

std::unique_ptr<Model> Model::from_weights(Weights w) {
  switch (w.hp.arch) {
    case Arch::RWKV4: return make_rwkv4(std::move(w));
    case Arch::RWKV5: return make_rwkv5(std::move(w));
    case Arch::RWKV6: return make_rwkv6(std::move(w));
    case Arch::RWKV7: return make_rwkv7(std::move(w));
  }
  fail("unknown architecture");
}

Floats::Floats(size_t n) : p_(static_cast<float*>(take_buffer(std::max<size_t>(n, 1) * sizeof(float)))) {}

void Floats::release() noexcept {
  give_buffer(p_);
  p_ = nullptr;
}

namespace {
// A low-rank matrix has a dimension of at most kLowRankMax. Its values are copied as float32
// (copied_bytes) and read from there, unless its rows fill whole sixteen-row panels: then it is
// read from those, as the full-size matrices are (batched decode: RWKV-7's low-rank products in
// one pool job, cpu::matmuls, on the panels' kernels; prefill: 768 × 32 and 768 × 64 products
// 2.2× and 1.3× in `Matmul/f32`).
using cpu::kLowRankMax;
bool whole_panels(DType type, size_t rows) {
  return cpu::simd::has_panel_layout(type) && rows >= cpu::simd::kPanelRows && rows % cpu::simd::kPanelRows == 0;
}
// A float32 low-rank matrix read only from its panels (Model::matrix): its rows get no copy.
bool f32_from_panels(const Tensor& t, size_t rows, size_t cols) {
  return t.dtype == DType::F32 && std::min(rows, cols) <= kLowRankMax && whole_panels(t.dtype, rows) &&
         reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0;
}

// The bytes of a matrix's interleaved copy (Model::interleaved), 0 if it gets none: the
// embedding is a table look-up, read in place. Block types get eight-row groups where the CPU
// has their kernel, float types sixteen-row panels (float32 low-rank ones only in whole panels:
// the others are read from their float32 copy, Model::tensor). Each copy on its own cache line.
size_t interleaved_bytes(const std::string& name, DType type, size_t rows, size_t cols) {
  if (name == "token_embd.weight") return 0;
  if (type == DType::F32 && std::min(rows, cols) <= kLowRankMax && !whole_panels(type, rows)) return 0;
  if (cpu::simd::has_panel_layout(type) && rows >= cpu::simd::kPanelRows)
    return (rows / cpu::simd::kPanelRows * cpu::simd::kPanelRows * dtype_bytes(type, cols) + 63) / 64 * 64;
  if (rows < 8 || !cpu::simd::has_rows8_layout(type) || !cpu::simd::rows8_kernel()) return 0;
  return (cpu::simd::rows8_bytes(type, rows / 8 * 8, cols) + 63) / 64 * 64;
}

// The bytes of a parameter's float32 copy in the arena (Model::tensor), 0 if it is read where it
// lies: vectors and low-rank matrices (a dimension of at most 256), not the embedding table
// nor the full-size matrices of a float32 model. In the file they lie between the large
// matrices, a few kB each on pages of their own (4 kB mapped pages): a decoded token read each
// from a page whose translation was long gone, and the low-rank matrices (a sixth of a 0.1B
// Q4_0 token's bytes) streamed through 4 kB pages, where the hardware prefetchers stop at every
// page boundary.
size_t copied_bytes(const Tensor& t) {
  if (t.name == "token_embd.weight") return 0;
  const auto dims = squeezed(t.shape);
  if (dims.size() > 1 && static_cast<size_t>(*std::min_element(dims.begin(), dims.end())) > kLowRankMax) return 0;
  return (static_cast<size_t>(t.numel()) * sizeof(float) + 63) / 64 * 64;
}
}  // namespace

Model::Model(Weights w) : weights_(std::move(w)) {
  const Hparams& hp = weights_.hp;
  // One piece of memory for all the eight-row copies and the parameters' copies, so that they
  // fill whole huge pages.
  for (const Tensor& t : weights_.tensors.tensors()) {
    const auto dims = squeezed(t.shape);
    if (dims.size() == 2) {
      const auto rows = static_cast<size_t>(dims[0]), cols = static_cast<size_t>(dims[1]);
      arena_size_ += interleaved_bytes(t.name, t.dtype, rows, cols);
      if (f32_from_panels(t, rows, cols)) continue;
    }
    arena_size_ += copied_bytes(t);
  }
  if (arena_size_ > 0) arena_.push_back(allocate_weight_bytes(arena_size_));
  const size_t C = hp.n_embd, V = hp.vocab_size;
  if (hp.n_layer <= 0 || C == 0 || V == 0) fail(weights_.path, ": empty model");
  emb_ = matrix("token_embd.weight", V, C);  // a block type stays as stored: rows decoded per token
  if (hp.has_ln0) {
    ln0_w_ = vector("token_embd_norm.weight", C);
    ln0_b_ = vector("token_embd_norm.bias", C);
  }
  ln_out_w_ = vector("output_norm.weight", C);
  ln_out_b_ = vector("output_norm.bias", C);
  head_ = matrix("output.weight", V, C);
  if (hp.has_head_bias) head_b_ = vector("output.bias", V);
  for (int l = 0; l < hp.n_layer; ++l) {
    ln1_w_.push_back(vector(Weights::layer(l, "attn_norm.weight"), C));
    ln1_b_.push_back(vector(Weights::layer(l, "attn_norm.bias"), C));
    ln2_w_.push_back(vector(Weights::layer(l, "attn_norm_2.weight"), C));
    ln2_b_.push_back(vector(Weights::layer(l, "attn_norm_2.bias"), C));
    att_out_b_.push_back(hp.has_att_output_bias ? vector(Weights::layer(l, "time_mix_output.bias"), C) : nullptr);
  }
}

const Tensor& Model::checked(const std::string& name, const std::vector<int64_t>& shape) {
  const Tensor& t = weights_.get(name);
  if (squeezed(t.shape) != squeezed(shape)) {
    Tensor e;
    e.shape = shape;
    fail(weights_.path, ": tensor ", weights_.describe(name), " has shape ", t.shape_string(), ", expected ",
         e.shape_string());
  }
  if (used_.emplace(name, t.numel()).second) parameter_count_ += t.numel();
  return t;
}

const float* Model::tensor(const std::string& name, std::vector<int64_t> shape) {
  const Tensor& t = checked(name, shape);
  if (const size_t bytes = copied_bytes(t); bytes > 0) {  // a float32 copy in the arena
    auto* p = reinterpret_cast<float*>(arena_bytes(bytes));
    if (t.dtype == DType::F32) {
      std::memcpy(p, t.data, t.nbytes());
    } else {
      const std::vector<float> f = t.to_f32();
      std::copy(f.begin(), f.end(), p);
    }
    if (t.mapped) drop_mapped_pages(t.data, t.nbytes());
    float32_copies_.insert(name);
    return p;
  }
  if (t.dtype == DType::F32 && reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0)
    return reinterpret_cast<const float*>(t.data);  // used in place (memory-mapped)
  auto& buf = decoded_[name];
  buf = t.to_f32();
  float32_copies_.insert(name);
  return buf.data();
}

std::vector<std::string> Model::used_tensor_names() const {
  std::vector<std::string> names;
  for (const auto& [name, n] : used_) names.push_back(name);
  return names;
}

size_t Model::weight_bytes_per_token() const {
  size_t bytes = 0;
  for (const auto& [name, n] : used_) {
    const size_t held = float32_copies_.count(name) ? n * sizeof(float) : weights_.get(name).nbytes();
    bytes += name == "token_embd.weight" ? held / weights_.hp.vocab_size : held;  // one row per token
  }
  return bytes;
}

const float* Model::vector(const std::string& name, size_t n) { return tensor(name, {static_cast<int64_t>(n)}); }

cpu::Matrix Model::matrix(const std::string& name, size_t rows, size_t cols) {
  const std::vector<int64_t> shape = {static_cast<int64_t>(rows), static_cast<int64_t>(cols)};
  // The embedding is a table look-up, not a product.
  if (!used_.count(name) && name != "token_embd.weight") matrix_parameter_count_ += rows * cols;
  const Tensor& t = checked(name, shape);
  // Block types and aligned 16-bit floats are used as stored (memory-mapped), except that
  // their interleaved copies are read where they have one: block types' eight-row groups where
  // the CPU reads those, 16-bit floats' sixteen-row panels. 16-bit floats at odd addresses (an
  // rwkv.cpp file) are read only from their panels, so they need whole ones; else float32.
  if (t.dtype == DType::F32) {  // the rows past the last whole panel (if any) as float32
    // A low-rank matrix in whole panels is read only from them: its rows need no float32 copy.
    const float* data = f32_from_panels(t, rows, cols) ? reinterpret_cast<const float*>(t.data) : tensor(name, shape);
    cpu::Matrix m{DType::F32, data, rows, cols};
    m.panels = interleaved(t, rows, cols);
    return m;
  }
  const bool aligned16 = reinterpret_cast<uintptr_t>(t.data) % 2 == 0;
  const bool panels = cpu::simd::has_panel_layout(t.dtype);  // (float16, bfloat16)
  const bool whole_panels = interleaved_bytes(name, t.dtype, rows, cols) > 0 && rows % cpu::simd::kPanelRows == 0;
  if (dtype_is_quantized(t.dtype) || (panels && (aligned16 || whole_panels))) {
    cpu::Matrix m{t.dtype, t.data, rows, cols};
    (panels ? m.panels : m.rows8) = interleaved(t, rows, cols);
    return m;
  }
  return {DType::F32, tensor(name, shape), rows, cols};
}

uint8_t* Model::arena_bytes(size_t n) {
  if (arena_.empty() || arena_used_ + n > arena_size_) {  // (a matrix the constructor did not foresee)
    arena_size_ = n;
    arena_.push_back(allocate_weight_bytes(arena_size_));
    arena_used_ = 0;
  }
  uint8_t* p = arena_.back().get() + arena_used_;
  arena_used_ += n;
  return p;
}

// The interleaved copy of a matrix that gets one (interleaved_bytes): the rows copied into it, a
// few MB at a time, each piece's mapped pages then let go, so that the weights are resident once.
const void* Model::interleaved(const Tensor& t, size_t rows, size_t cols) {
  const size_t bytes = interleaved_bytes(t.name, t.dtype, rows, cols);
  if (bytes == 0) return nullptr;
  const bool panels = cpu::simd::has_panel_layout(t.dtype);
  const size_t group = panels ? cpu::simd::kPanelRows : 8, whole = rows / group * group;
  // The pieces start at whole pairs of eight-row groups where those lie in pairs.
  const size_t unit = !panels && cpu::simd::rows8_pairs(t.dtype) ? 16 : group;
  const size_t row_bytes = dtype_bytes(t.dtype, cols);
  uint8_t* out = arena_bytes(bytes);
  const size_t step = std::max<size_t>(1, (size_t{4} << 20) / (unit * row_bytes)) * unit;
  for (size_t r = 0; r < whole; r += step) {
    const size_t n = std::min(step, whole - r);
    cpu::parallel_for((n + unit - 1) / unit, 16, [&](size_t g0, size_t g1) {  // (the copy's first touch is slow on some VMs)
      const size_t a = r + g0 * unit, m = std::min(n, g1 * unit) - g0 * unit;
      if (panels)
        cpu::simd::interleave_panels16(t.dtype, t.data + a * row_bytes, m, cols, out + a * row_bytes);
      else
        cpu::simd::interleave_rows8(t.dtype, t.data + a * row_bytes, m, cols,
                                    out + cpu::simd::rows8_bytes(t.dtype, a, cols));
    });
    if (t.mapped) drop_mapped_pages(t.data + r * row_bytes, n * row_bytes);
  }
  return out;
}

std::vector<cpu::WkvRun> wkv_scans(Runs runs, int l) {
  std::vector<cpu::WkvRun> scans;
  for (const Run& run : runs) scans.push_back({run.begin, run.count, run.state->wkv(l)});
  return scans;
}

Floats token_shift(const float* z, size_t C, Runs runs, int l, Shift which) {
  const size_t T = runs.empty() ? 0 : runs.back().begin + runs.back().count;
  Floats prev(T * C);  // the runs cover every row
  for (const Run& r : runs) {
    float* shift = which == Shift::Att ? r.state->att_x(l) : r.state->ffn_x(l);
    const float* zr = z + r.begin * C;
    float* pr = prev.data() + r.begin * C;
    std::memcpy(pr, shift, C * sizeof(float));
    if (r.count > 1) std::memcpy(pr + C, zr, (r.count - 1) * C * sizeof(float));
    std::memcpy(shift, zr + (r.count - 1) * C, C * sizeof(float));
  }
  return prev;
}

void Model::forward(State& state, std::span<const int32_t> tokens, Logits which, float* logits) const {
  const Sequence seq{&state, tokens, which, logits};
  forward_batch({&seq, 1});
}

void Model::forward_batch(std::span<const Sequence> seqs) const {
  const Hparams& hp = weights_.hp;
  const size_t C = hp.n_embd, V = hp.vocab_size;
  const size_t state_size = State::size(hp);
  std::vector<Run> runs;
  size_t T = 0;
  for (const Sequence& q : seqs) {
    if (q.tokens.empty()) fail("forward: no tokens");
    if (!q.state || q.state->arch() != hp.arch || q.state->data().size() != state_size)
      fail("forward: the state belongs to a different model");
    for (const Run& r : runs)
      if (r.state == q.state) fail("forward: the same state appears twice in one batch");
    if (q.which != Logits::None && !q.logits) fail("forward: no buffer for the logits");
    runs.push_back({q.state, T, q.tokens.size()});
    T += q.tokens.size();
  }
  if (T == 0) fail("forward: no tokens");
  Floats x(T * C), z(T * C), out(T * C);
  for (const Run& r : runs) {
    const Sequence& q = seqs[&r - runs.data()];
    for (size_t t = 0; t < r.count; ++t) {
      const int32_t id = q.tokens[t];
      if (id < 0 || static_cast<size_t>(id) >= V) fail("token id ", id, " is out of range (vocabulary size ", V, ")");
      if (emb_.type == DType::F32) {
        std::memcpy(&x[(r.begin + t) * C], emb_.f32() + static_cast<size_t>(id) * C, C * sizeof(float));
      } else {
        const size_t row_bytes = dtype_bytes(emb_.type, C);
        dequantize(emb_.type, static_cast<const uint8_t*>(emb_.data) + static_cast<size_t>(id) * row_bytes, &x[(r.begin + t) * C], C);
      }
    }
  }
  if (ln0_w_) cpu::layer_norm(x.data(), T, C, ln0_w_, ln0_b_, hp.layer_norm_eps, x.data());
  Scratch scratch;
  // Each block's output is added to x and the next block's norm taken in one pass per token.
  // (Every model has a layer 0: the constructor refuses one without.)
  const float eps = hp.layer_norm_eps;
  cpu::layer_norm(x.data(), T, C, ln1_w_[0], ln1_b_[0], eps, z.data());
  for (int l = 0; l < hp.n_layer; ++l) {
    time_mix(l, z.data(), T, runs, scratch, out.data());
    cpu::add_layer_norm(x.data(), out.data(), att_out_b_[l], 1.0f, T, C, ln2_w_[l], ln2_b_[l], eps, z.data());
    channel_mix(l, z.data(), T, runs, out.data());
    // llama.cpp RWKV-6 files have pre-divided weights and halve x every R layers (trap T3).
    const float scale = hp.rescale_every > 0 && (l + 1) % hp.rescale_every == 0 ? 0.5f : 1.0f;
    const bool last = l + 1 == hp.n_layer;
    cpu::add_layer_norm(x.data(), out.data(), nullptr, scale, T, C, last ? nullptr : ln1_w_[l + 1],
                        last ? nullptr : ln1_b_[l + 1], eps, z.data());
  }
  // Gather the rows whose logits are wanted, run the head once, scatter.
  std::vector<size_t> rows, first;  // first[i]: sequence i's first row among them (and the end)
  for (const Run& r : runs) {
    first.push_back(rows.size());
    const Logits which = seqs[&r - runs.data()].which;
    if (which == Logits::All)
      for (size_t t = 0; t < r.count; ++t) rows.push_back(r.begin + t);
    else if (which == Logits::Last)
      rows.push_back(r.begin + r.count - 1);
  }
  first.push_back(rows.size());
  if (rows.empty()) return;
  Floats xs(rows.size() * C);
  for (size_t i = 0; i < rows.size(); ++i) std::memcpy(&xs[i * C], &x[rows[i] * C], C * sizeof(float));
  cpu::layer_norm(xs.data(), rows.size(), C, ln_out_w_, ln_out_b_, hp.layer_norm_eps, xs.data());
  // One sequence: its rows are all the rows, written straight into its buffer.
  Floats buffer;
  float* logits = seqs.size() == 1 ? seqs[0].logits : (buffer = Floats(rows.size() * V)).data();
  cpu::matmul(xs.data(), rows.size(), head_, logits);
  if (head_b_)
    for (size_t i = 0; i < rows.size(); ++i)
      for (size_t v = 0; v < V; ++v) logits[i * V + v] += head_b_[v];
  if (seqs.size() == 1) return;
  // Spread to the sequences' buffers over the pool (16 sequences of a 65536-token vocabulary:
  // 4 MB, 0.19 ms of a 12.7 ms step on one thread).
  cpu::parallel_for(seqs.size(), 1, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      if (first[i + 1] > first[i])  // (no buffer where no logits are wanted)
        std::memcpy(seqs[i].logits, &logits[first[i] * V], (first[i + 1] - first[i]) * V * sizeof(float));
  });
}

}  // namespace rwkv
