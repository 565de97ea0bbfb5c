// The sampler against hand-made distributions (spec §8.1, §8.2, §10 item 15).
#include <cmath>
#include <map>

#include "io/error.hpp"
#include "test_util.hpp"
#include "text/sampler.hpp"
#include "text/tokenizer.hpp"

namespace rwkv {
namespace {

// Logits whose softmax is exactly the given probabilities.
std::vector<float> logits_of(const std::vector<double>& p) {
  std::vector<float> l;
  for (double x : p) l.push_back(static_cast<float>(std::log(x)));
  return l;
}

std::map<int32_t, int> histogram(const std::vector<float>& logits, float t, float top_p, int top_k, float min_p) {
  std::map<int32_t, int> h;
  for (int i = 0; i < 1000; ++i) h[sample_logits(logits, t, top_p, top_k, min_p, (i + 0.5) / 1000)]++;
  return h;
}

TEST(Sampler, GreedyWhenTemperatureIsZero) {
  EXPECT_EQ(sample_logits(std::vector<float>{0.1f, 3.0f, 3.0f, -1.0f}, 0.0f, 0.9f, 0, 0, 0.99), 1);
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingP) {
  const auto l = logits_of({0.5, 0.3, 0.15, 0.05});
  auto h = histogram(l, 1.0f, 0.7f, 0, 0);  // 0.5 + 0.3 ≥ 0.7: keep two, renormalised 5:3
  EXPECT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0], 625);
  EXPECT_EQ(h[1], 375);
  EXPECT_EQ(histogram(l, 1.0f, 1.0f, 0, 0).size(), 4u);  // top_p = 1: no truncation
  EXPECT_EQ(histogram(l, 1.0f, 0.0f, 0, 0).size(), 1u);  // top_p = 0: the maximum only
}

TEST(Sampler, TopKMinPAndTemperature) {
  const auto l = logits_of({0.4, 0.3, 0.2, 0.1});
  EXPECT_EQ(histogram(l, 1.0f, 1.0f, 3, 0).size(), 3u);
  EXPECT_EQ(histogram(l, 1.0f, 1.0f, 0, 0.6f).size(), 2u);  // keep p ≥ 0.24
  // Temperature 0.5 squares the probabilities: 16:9:4:1 out of 30.
  auto h = histogram(l, 0.5f, 1.0f, 0, 0);
  EXPECT_NEAR(h[0], 533, 2);
  EXPECT_NEAR(h[3], 33, 2);
}

TEST(Sampler, PenaltiesFollowThePipeline) {
  auto bytes = make_byte_tokenizer();
  SamplerOptions o;
  o.temperature = 0;
  o.presence_penalty = 1.0f;
  o.frequency_penalty = 0.5f;
  o.penalty_decay = 0.5f;
  Sampler s(o, bytes.get());
  s.accept('a');
  s.accept('a');  // count: 1·0.5 + 1 = 1.5
  s.accept('7');  // digits count with weight 0 but get the presence penalty
  std::vector<float> l(256, 0.0f);
  l['a'] = 3.0f;
  l['7'] = 2.9f;
  l['b'] = 1.0f;
  // a: 3 − (1 + 1.5·0.5·0.5) … after the decay at '7': count(a) = 0.75 → 3 − 1.375 = 1.625
  // 7: 2.9 − 1 = 1.9 → greedy picks '7'.
  std::vector<float> copy = l;
  EXPECT_EQ(s.sample(copy), '7');
  EXPECT_NEAR(copy['a'], 1.625f, 1e-6);
  EXPECT_NEAR(copy['7'], 1.9f, 1e-6);
}

TEST(Sampler, BansRepetitionPenaltyAndSeeds) {
  SamplerOptions o;
  o.temperature = 0;
  o.banned = {2};
  o.presence_penalty = o.frequency_penalty = 0;
  Sampler s(o, nullptr);
  std::vector<float> l = {0.0f, 1.0f, 5.0f};
  EXPECT_EQ(s.sample(l), 1);

  SamplerOptions r;
  r.temperature = 0;
  r.presence_penalty = r.frequency_penalty = 0;
  r.repetition_penalty = 4.0f;
  Sampler rs(r, nullptr);
  rs.accept(0);
  std::vector<float> l2 = {2.0f, 1.0f};
  EXPECT_EQ(rs.sample(l2), 1);  // 2 / 4 < 1

  SamplerOptions a;
  a.seed = 42;
  Sampler s1(a, nullptr), s2(a, nullptr);
  std::vector<int32_t> t1, t2;
  for (int i = 0; i < 50; ++i) {
    std::vector<float> x(50, 0.0f), y(50, 0.0f);
    t1.push_back(s1.sample(x));
    t2.push_back(s2.sample(y));
    s1.accept(t1.back());
    s2.accept(t2.back());
  }
  EXPECT_EQ(t1, t2);
  // save/restore continues the same stream
  Sampler s3(a, nullptr);
  s3.restore(s1.save());
  std::vector<float> x(50, 0.0f), y(50, 0.0f);
  EXPECT_EQ(s1.sample(x), s3.sample(y));
  EXPECT_THROW(s3.restore("garbage"), Error);
}

TEST(Sampler, RejectsInvalidSettings) {
  SamplerOptions o;
  o.temperature = -1;
  EXPECT_THROW(Sampler(o, nullptr), Error);
  o = {};
  o.top_k = -3;
  EXPECT_THROW(Sampler(o, nullptr), Error);
  EXPECT_THROW(sample_logits(std::vector<float>{-INFINITY, -INFINITY}, 1.0f, 1.0f, 0, 0, 0.5), Error);
}

}  // namespace
}  // namespace rwkv
