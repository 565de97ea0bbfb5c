// A loaded model: weights bound to float32 parameters, and the forward pass that reads T
// tokens from a state (T = 1 is RNN mode; T > 1 is time-parallel sequence mode, with every
// projection done as one matrix product over the T tokens). The per-version math lives in
// rwkv4.cpp … rwkv7.cpp; this file holds the shared skeleton (spec §1.1).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "io/mapped_file.hpp"
#include "kernels/cpu/ops.hpp"
#include "kernels/cpu/wkv.hpp"
#include "model/state.hpp"
#include "model/weights.hpp"

namespace rwkv {

enum class Logits { None, Last, All };

// One sequence of a forward call: tokens that continue `state`, and which logits to write.
struct Sequence {
  State* state;
  std::span<const int32_t> tokens;
  Logits which = Logits::Last;
  float* logits = nullptr;  // V values (Last) or tokens.size() × V (All)
};

// The rows of a forward call are runs of consecutive tokens, each continuing its own state.
struct Run {
  State* state;
  size_t begin, count;
};
using Runs = std::span<const Run>;

class Model {
 public:
  virtual ~Model() = default;
  static std::unique_ptr<Model> load(const std::string& path);
  static std::unique_ptr<Model> from_weights(Weights w);

  const Hparams& hparams() const { return weights_.hp; }
  const Weights& weights() const { return weights_; }
  State new_state() const { return State(weights_.hp); }
  // Number of parameters the forward pass uses (unused tensors in the file not counted).
  size_t parameter_count() const { return parameter_count_; }
  // Names of the tensors the forward pass uses, sorted.
  std::vector<std::string> used_tensor_names() const;
  // Weight bytes one token reads in RNN mode: every used tensor as the forward pass holds it
  // (float32 copies of f16/bf16 tensors, block types as stored), the embedding as one row.
  size_t weight_bytes_per_token() const;
  // Parameters in the weight matrices (projections, low-rank matrices, head): the
  // multiply-adds of one token's matrix work. Element-wise parameters are not counted.
  size_t matrix_parameter_count() const { return matrix_parameter_count_; }

  // Reads `tokens` starting from `state` and leaves in it the state after the last token.
  // Writes into `logits` nothing, the V logits of the last token, or T×V (row per token).
  void forward(State& state, std::span<const int32_t> tokens, Logits which, float* logits) const;
  // Several sequences (with their own states) in one call: every projection is one matrix
  // product over all their tokens. B sequences of one token each is batched decoding; a
  // prompt chunk can ride along with them.
  void forward_batch(std::span<const Sequence> sequences) const;

 protected:
  explicit Model(Weights w);

  // Values one forward call passes between layers (RWKV-7's layer-0 values).
  struct Scratch {
    std::vector<float> v_first;
  };
  // Per-layer work of one version. z is the LayerNorm output [T][C]; out receives [T][C].
  virtual void time_mix(int l, const float* z, size_t T, Runs runs, Scratch& sc, float* out) const = 0;
  virtual void channel_mix(int l, const float* z, size_t T, Runs runs, float* out) const = 0;

  // Parameters, checked against the expected shape (size-1 dimensions ignored). Vectors and
  // tensors come as float32; matrices stay in their block type if they have one.
  const float* vector(const std::string& name, size_t n);
  const float* tensor(const std::string& name, std::vector<int64_t> shape);
  cpu::Matrix matrix(const std::string& name, size_t rows, size_t cols);

  Weights weights_;

 private:
  std::map<std::string, std::vector<float>> decoded_;  // parameters not usable in place (large ones)
  std::set<std::string> float32_copies_;                // parameters held as float32 copies (arena or decoded_)
  std::map<std::string, size_t> used_;                  // name -> values, for parameter_count
  // The matrices' interleaved copies (Matrix::rows8, Matrix::panels) and the small parameters'
  // float32 copies (tensor), carved from one piece of huge-page memory sized by the constructor.
  std::vector<WeightBytes> arena_;
  size_t arena_used_ = 0, arena_size_ = 0;
  uint8_t* arena_bytes(size_t n);
  const void* interleaved(const Tensor& t, size_t rows, size_t cols);
  size_t parameter_count_ = 0, matrix_parameter_count_ = 0;
  const Tensor& checked(const std::string& name, const std::vector<int64_t>& shape);
  cpu::Matrix emb_;
  const float *ln0_w_ = nullptr, *ln0_b_ = nullptr, *ln_out_w_, *ln_out_b_, *head_b_ = nullptr;
  cpu::Matrix head_;
  std::vector<const float*> ln1_w_, ln1_b_, ln2_w_, ln2_b_, att_out_b_;
};

// A float buffer left uninitialised, for results written in full before they are read: a
// std::vector would zero it first, which costs several percent of a long prompt's time. Its
// memory comes from the thread's kept buffers (buffers.hpp).
class Floats {
 public:
  Floats() = default;
  explicit Floats(size_t n);
  Floats(Floats&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  Floats& operator=(Floats&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  ~Floats() { release(); }
  float* data() { return p_; }
  const float* data() const { return p_; }
  float& operator[](size_t i) { return p_[i]; }
  const float& operator[](size_t i) const { return p_[i]; }

 private:
  void release() noexcept;
  float* p_ = nullptr;
};

// z_prev for token shift (spec §1.2): in each run, its first row takes the state's shift
// vector (att_x or ffn_x of layer l) and row t takes z[t−1]; the state then keeps the run's
// last row.
enum class Shift { Att, Ffn };
Floats token_shift(const float* z, size_t C, Runs runs, int l, Shift which);

// The runs' WKV scans at layer l (RWKV-5/6/7), each continuing its own state's matrices.
std::vector<cpu::WkvRun> wkv_scans(Runs runs, int l);

std::unique_ptr<Model> make_rwkv4(Weights w);
std::unique_ptr<Model> make_rwkv5(Weights w);
std::unique_ptr<Model> make_rwkv6(Weights w);
std::unique_ptr<Model> make_rwkv7(Weights w);

}  // namespace rwkv
