// Parameters from and to canonical tensors.
#include "train/parameters.hpp"

#include <algorithm>

#include "io/error.hpp"

namespace rwkv::train {

template <typename F>
Parameter<F>& Parameters<F>::take(const Weights& w, const std::string& name, const std::vector<int64_t>& shape) {
  if (index_.count(name)) fail("training: parameter ", name, " taken twice");
  const Tensor* t = w.tensors.find(name);
  if (!t) fail(w.path, ": missing tensor ", w.describe(name));
  if (squeezed(t->shape) != squeezed(shape)) {
    Tensor e;
    e.shape = shape;
    fail(w.path, ": tensor ", w.describe(name), " has shape ", t->shape_string(), ", expected ", e.shape_string());
  }
  const std::vector<float> values = t->to_f32();
  Parameter<F> p;
  p.name = name;
  p.shape = t->shape;
  p.value.assign(values.begin(), values.end());
  p.grad.assign(values.size(), F(0));
  index_[name] = params_.size();
  params_.push_back(std::move(p));
  return params_.back();
}

template <typename F>
Parameter<F>* Parameters<F>::find(const std::string& name) {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &params_[it->second];
}

template <typename F>
const Parameter<F>* Parameters<F>::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &params_[it->second];
}

template <typename F>
void Parameters<F>::zero_grad() {
  for (Parameter<F>& p : params_) std::fill(p.grad.begin(), p.grad.end(), F(0));
}

template <typename F>
size_t Parameters<F>::value_count() const {
  size_t n = 0;
  for (const Parameter<F>& p : params_) n += p.size();
  return n;
}

template <typename F>
TensorSet Parameters<F>::to_tensors() const {
  TensorSet ts;
  for (const Parameter<F>& p : params_)
    ts.add(make_f32_tensor(p.name, p.shape, std::vector<float>(p.value.begin(), p.value.end())));
  return ts;
}

template class Parameters<float>;
template class Parameters<double>;

}  // namespace rwkv::train
