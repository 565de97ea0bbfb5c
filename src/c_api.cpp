// The C API of include/rwkv/rwkv.h over the C++ Model and State; catches every exception.
#include "rwkv/rwkv.h"

#include <memory>
#include <string>

#include "io/error.hpp"
#include "model/model.hpp"

struct rwkv_model {
  std::unique_ptr<rwkv::Model> model;
};
struct rwkv_state {
  rwkv::State state;
};

namespace {
thread_local std::string last_error;

template <typename F>
auto guarded(F&& f, decltype(f()) on_error) -> decltype(f()) {
  try {
    last_error.clear();
    return f();
  } catch (const std::exception& e) {
    last_error = rwkv::one_line(e.what());
  } catch (...) {
    last_error = "unknown error";
  }
  return on_error;
}
}  // namespace

extern "C" {

const char* rwkv_last_error(void) { return last_error.c_str(); }

rwkv_model* rwkv_model_load(const char* path) {
  return guarded([&]() -> rwkv_model* {
    if (!path) rwkv::fail("rwkv_model_load: path is NULL");
    return new rwkv_model{rwkv::Model::load(path)};
  }, nullptr);
}

void rwkv_model_free(rwkv_model* model) { delete model; }

int rwkv_model_version(const rwkv_model* m) { return m ? static_cast<int>(m->model->hparams().arch) : 0; }
int rwkv_model_n_layer(const rwkv_model* m) { return m ? m->model->hparams().n_layer : 0; }
int rwkv_model_n_embd(const rwkv_model* m) { return m ? m->model->hparams().n_embd : 0; }
int rwkv_model_vocab_size(const rwkv_model* m) { return m ? m->model->hparams().vocab_size : 0; }

rwkv_state* rwkv_state_new(const rwkv_model* m) {
  return guarded([&]() -> rwkv_state* {
    if (!m) rwkv::fail("rwkv_state_new: model is NULL");
    return new rwkv_state{m->model->new_state()};
  }, nullptr);
}

rwkv_state* rwkv_state_clone(const rwkv_state* s) {
  return guarded([&]() -> rwkv_state* {
    if (!s) rwkv::fail("rwkv_state_clone: state is NULL");
    return new rwkv_state{s->state};
  }, nullptr);
}

void rwkv_state_reset(rwkv_state* s) {
  if (s) s->state.reset();
}
void rwkv_state_free(rwkv_state* s) { delete s; }
size_t rwkv_state_size(const rwkv_state* s) { return s ? s->state.data().size() : 0; }
float* rwkv_state_data(rwkv_state* s) { return s ? s->state.data().data() : nullptr; }

int rwkv_eval(const rwkv_model* m, rwkv_state* s, const int32_t* tokens, size_t n, float* logits, int all) {
  return guarded([&]() -> int {
    if (!m || !s || (!tokens && n > 0)) rwkv::fail("rwkv_eval: NULL argument");
    const rwkv::Logits which = !logits ? rwkv::Logits::None : all ? rwkv::Logits::All : rwkv::Logits::Last;
    m->model->forward(s->state, {tokens, n}, which, logits);
    return 0;
  }, 1);
}

}  // extern "C"
