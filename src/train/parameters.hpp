// Trainable parameters: named value and gradient buffers in the number type of training
// (float; double for the gradient checks), taken from canonical weights (model/weights.hpp:
// GGUF names, matrices (out, in)) and turned back into float32 tensors of the same names.
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "model/weights.hpp"

namespace rwkv::train {

template <typename F>
struct Parameter {
  std::string name;            // canonical tensor name
  std::vector<int64_t> shape;  // as in the weights it came from
  std::vector<F> value, grad;  // same size

  size_t size() const { return value.size(); }
};

template <typename F>
class Parameters {
 public:
  // Takes tensor `name` of w (any element type, decoded) after checking its shape against
  // `shape` with size-1 dimensions ignored, as Model does. The returned reference stays valid.
  Parameter<F>& take(const Weights& w, const std::string& name, const std::vector<int64_t>& shape);

  Parameter<F>* find(const std::string& name);
  const Parameter<F>* find(const std::string& name) const;
  std::deque<Parameter<F>>& all() { return params_; }
  const std::deque<Parameter<F>>& all() const { return params_; }

  void zero_grad();
  size_t value_count() const;  // parameters in all tensors
  // The values as float32 tensors, in the order they were taken.
  TensorSet to_tensors() const;

 private:
  std::deque<Parameter<F>> params_;  // a deque: references survive later additions
  std::map<std::string, size_t> index_;
};

}  // namespace rwkv::train
