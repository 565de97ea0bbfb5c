// Checkpoints as GGUF: the model's metadata and tensors, then training.* keys and adam_m./adam_v.
// tensors (float64, so that the moments are restored exactly).
#include "train/checkpoint.hpp"

#include <cstring>

#include "io/error.hpp"
#include "io/gguf.hpp"
#include "model/gguf_model.hpp"

namespace rwkv::train {

namespace {

constexpr uint32_t kFormatVersion = 1;
const std::string kPrefix = "training.";

Tensor f64_tensor(const std::string& name, const std::vector<int64_t>& shape, const std::vector<double>& values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(double));
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return make_owned_tensor(name, DType::F64, shape, std::move(bytes));
}

}  // namespace

void save_checkpoint(const std::string& path, const TrainModel<float>& model, const AdamW<float>& optimizer,
                     const TrainOptions& o, const TrainingState& s) {
  GgufMetadata md;
  auto put = [&](const std::string& key, GgufValue v) { md.emplace_back(kPrefix + key, std::move(v)); };
  put("format_version", GgufValue::u32(kFormatVersion));
  put("step", GgufValue::i64(s.step));
  put("optimizer_steps", GgufValue::i64(optimizer.steps()));
  put("rng_state", GgufValue::u64_array({s.rng.begin(), s.rng.end()}));
  put("elapsed_s", GgufValue::f64(s.elapsed_s));
  put("data_tokens", GgufValue::u64(s.data_tokens));
  put("data_fingerprint", GgufValue::u64(s.data_fingerprint));
  // The settings that decide the result (train_options.hpp).
  put("arch", GgufValue::str(o.arch));
  put("init", GgufValue::str(o.init));
  put("data", GgufValue::str(o.data));
  put("tokenizer", GgufValue::str(o.tokenizer));
  put("val_fraction", GgufValue::f64(o.val_fraction));
  put("ctx", GgufValue::i64(o.ctx));
  put("batch", GgufValue::i64(o.batch));
  put("steps", GgufValue::i64(o.steps));
  put("lr", GgufValue::f64(o.lr));
  put("lr_final", GgufValue::f64(o.lr_final));
  put("warmup", GgufValue::i64(o.warmup));
  put("schedule", GgufValue::str(o.schedule));
  put("weight_decay", GgufValue::f64(o.weight_decay));
  put("grad_clip", GgufValue::f64(o.grad_clip));
  put("seed", GgufValue::u64(o.seed));
  put("val_batches", GgufValue::i64(o.val_batches));

  std::vector<Tensor> moments;
  const auto& params = model.parameters().all();
  for (size_t i = 0; i < params.size(); ++i) {
    moments.push_back(f64_tensor("adam_m." + params[i].name, params[i].shape, optimizer.first_moment(i)));
    moments.push_back(f64_tensor("adam_v." + params[i].name, params[i].shape, optimizer.second_moment(i)));
  }
  Weights w = model.to_weights();
  w.path = path;
  save_gguf(w, path, md, moments);
}

Checkpoint load_checkpoint(const std::string& path) {
  const GgufFile f = read_gguf(path);
  const auto version = f.get_uint(kPrefix + "format_version");
  if (!version) fail(path, ": not a training checkpoint (no ", kPrefix, "format_version key)");
  if (*version != kFormatVersion) fail(path, ": checkpoint format version ", *version, " is not supported");
  auto need = [&](const std::string& key) -> const GgufValue& {
    const GgufValue* v = f.find(kPrefix + key);
    if (!v) fail(path, ": checkpoint key ", kPrefix, key, " is missing");
    return *v;
  };
  auto i64 = [&](const std::string& key) {
    auto v = need(key).as_int();
    if (!v) fail(path, ": checkpoint key ", kPrefix, key, " is not an integer");
    return *v;
  };
  auto u64 = [&](const std::string& key) {
    auto v = need(key).as_uint();
    if (!v) fail(path, ": checkpoint key ", kPrefix, key, " is not a non-negative integer");
    return *v;
  };
  auto f64 = [&](const std::string& key) {
    auto v = need(key).as_float();
    if (!v) fail(path, ": checkpoint key ", kPrefix, key, " is not a number");
    return *v;
  };
  auto str = [&](const std::string& key) {
    const std::string* v = need(key).as_string();
    if (!v) fail(path, ": checkpoint key ", kPrefix, key, " is not a string");
    return *v;
  };

  Checkpoint c;
  c.path = path;
  TrainingState& s = c.state;
  s.step = i64("step");
  const GgufValue& rv = need("rng_state");
  if (!rv.is_array() || rv.array_type() != GgufType::U64 || rv.array_size() != 4)
    fail(path, ": checkpoint key ", kPrefix, "rng_state is not 4 u64 values");
  for (size_t i = 0; i < 4; ++i) s.rng[i] = *rv.array_at(i).as_uint();
  s.elapsed_s = f64("elapsed_s");
  s.data_tokens = u64("data_tokens");
  s.data_fingerprint = u64("data_fingerprint");
  if (s.step < 0 || i64("optimizer_steps") != s.step)
    fail(path, ": checkpoint step ", s.step, " and optimizer step ", i64("optimizer_steps"), " disagree");

  TrainOptions& o = c.options;
  o.arch = str("arch");
  o.init = str("init");
  o.data = str("data");
  o.tokenizer = str("tokenizer");
  o.val_fraction = f64("val_fraction");
  o.ctx = i64("ctx");
  o.batch = i64("batch");
  o.steps = i64("steps");
  o.lr = f64("lr");
  o.lr_final = f64("lr_final");
  o.warmup = i64("warmup");
  o.schedule = str("schedule");
  o.weight_decay = f64("weight_decay");
  o.grad_clip = f64("grad_clip");
  o.seed = u64("seed");
  o.val_batches = i64("val_batches");

  c.weights = weights_from_gguf(path);
  o.n_layer = c.weights.hp.n_layer;
  o.n_embd = c.weights.hp.n_embd;
  o.head_size = c.weights.hp.head_size;
  return c;
}

void restore_optimizer(const std::string& path, const Parameters<float>& params, AdamW<float>& optimizer) {
  const GgufFile f = read_gguf(path);
  auto values = [&](const std::string& name, size_t n) {
    const Tensor* t = f.tensors.find(name);
    if (!t) fail(path, ": checkpoint tensor ", name, " is missing");
    if (t->dtype != DType::F64 || t->numel() != n)
      fail(path, ": checkpoint tensor ", name, " is ", dtype_name(t->dtype), " ", t->shape_string(), ", expected F64 with ",
           n, " values");
    std::vector<double> v(n);
    std::memcpy(v.data(), t->data, n * sizeof(double));
    return v;
  };
  const auto& all = params.all();
  for (size_t i = 0; i < all.size(); ++i)
    optimizer.restore(i, values("adam_m." + all[i].name, all[i].size()), values("adam_v." + all[i].name, all[i].size()));
  const auto step = f.get_int(kPrefix + "optimizer_steps");
  if (!step) fail(path, ": checkpoint key ", kPrefix, "optimizer_steps is missing");
  optimizer.set_steps(*step);
}

}  // namespace rwkv::train
