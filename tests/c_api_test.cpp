// The C API: load, states, evaluation and error reporting.
#include "rwkv/rwkv.h"

#include <cstring>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace {

TEST(CApi, LoadsEvaluatesAndMatchesExpectedLogits) {
  const std::string path = rwkv::test::data_path("rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin");
  rwkv_model* m = rwkv_model_load(path.c_str());
  ASSERT_NE(m, nullptr) << rwkv_last_error();
  EXPECT_EQ(rwkv_model_version(m), 7);
  EXPECT_EQ(rwkv_model_n_layer(m), 12);
  EXPECT_EQ(rwkv_model_n_embd(m), 64);
  ASSERT_EQ(rwkv_model_vocab_size(m), 256);
  rwkv_state* s = rwkv_state_new(m);
  const int32_t tokens[] = {34, 105, 110};
  std::vector<float> logits(256);
  ASSERT_EQ(rwkv_eval(m, s, tokens, 3, logits.data(), 0), 0) << rwkv_last_error();
  auto expected = rwkv::test::read_f32(rwkv::test::data_path("rwkv_cpp_tiny/expected-logits-7v0-834K.bin"));
  for (size_t i = 0; i < 256; ++i) EXPECT_NEAR(logits[i], expected[i], 1e-4);

  // A clone continues identically; a reset state equals a new one.
  rwkv_state* c = rwkv_state_clone(s);
  std::vector<float> a(256), b(256);
  const int32_t next = 32;
  ASSERT_EQ(rwkv_eval(m, s, &next, 1, a.data(), 0), 0);
  ASSERT_EQ(rwkv_eval(m, c, &next, 1, b.data(), 0), 0);
  EXPECT_EQ(a, b);
  rwkv_state* fresh = rwkv_state_new(m);
  rwkv_state_reset(c);
  ASSERT_EQ(rwkv_state_size(c), rwkv_state_size(fresh));
  EXPECT_EQ(std::memcmp(rwkv_state_data(c), rwkv_state_data(fresh), rwkv_state_size(c) * sizeof(float)), 0);

  // Errors are reported, not thrown.
  const int32_t bad = 1000;
  EXPECT_NE(rwkv_eval(m, s, &bad, 1, a.data(), 0), 0);
  EXPECT_NE(std::string(rwkv_last_error()).find("out of range"), std::string::npos);
  rwkv_state_free(fresh);
  rwkv_state_free(c);
  rwkv_state_free(s);
  rwkv_model_free(m);
}

TEST(CApi, LoadFailureReturnsNullWithMessage) {
  EXPECT_EQ(rwkv_model_load("/nonexistent/model.gguf"), nullptr);
  EXPECT_NE(std::string(rwkv_last_error()).find("cannot open"), std::string::npos);
  EXPECT_EQ(rwkv_model_load(nullptr), nullptr);
  EXPECT_EQ(rwkv_state_new(nullptr), nullptr);
}

}  // namespace
