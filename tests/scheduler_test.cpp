// The serving scheduler without HTTP: batched jobs give what a lone Session gives, the state
// cache makes follow-up turns read only their new text, and limits/cancellation work.
#include "serve/scheduler.hpp"

#include "io/error.hpp"
#include "test_util.hpp"
#include "text/session.hpp"

namespace rwkv::serve {
namespace {

std::string model_path() { return test::data_path("rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin"); }

SamplerOptions greedy() {
  SamplerOptions s;
  s.temperature = 0;
  s.presence_penalty = s.frequency_penalty = 0;
  return s;
}

// Collects a job's text until Done (or fails the test on Error / timeout).
std::pair<std::string, Event> collect(Job& job) {
  std::string text;
  Event e;
  while (job.next(e, 20000)) {
    if (e.kind == Event::Kind::Text) text += e.text;
    if (e.kind != Event::Kind::Text) return {text, e};
  }
  ADD_FAILURE() << "timeout";
  return {text, e};
}

std::string session_text(const Model& m, const Tokenizer& t, const std::string& prompt, int n) {
  Session s(m, t, greedy());
  s.feed_text(prompt);
  GenerateOptions g;
  g.max_tokens = n;
  return s.generate(g, nullptr).text;
}

TEST(Scheduler, ConcurrentJobsEqualLoneSessions) {
  auto model = Model::load(model_path());
  auto tok = make_byte_tokenizer();
  Scheduler sched(*model, *tok, {4, 64, 7, 16, ""});
  std::vector<std::string> prompts;
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 10; ++i) {
    prompts.push_back("Prompt number " + std::to_string(i) + " says that");
    CompletionRequest r;
    r.prompt = prompts.back();
    r.max_tokens = 12 + i;
    r.sampling = greedy();
    jobs.push_back(sched.submit(r));
  }
  for (int i = 0; i < 10; ++i) {
    auto [text, done] = collect(*jobs[i]);
    ASSERT_EQ(done.kind, Event::Kind::Done) << done.error;
    EXPECT_EQ(text, session_text(*model, *tok, prompts[i], 12 + i)) << i;
    EXPECT_EQ(done.completion_tokens, 12 + i);
    EXPECT_EQ(done.prompt_tokens, static_cast<int>(prompts[i].size()));
    EXPECT_EQ(done.finish_reason, "length");
  }
  const Metrics m = sched.metrics();
  EXPECT_EQ(m.requests_total, 10u);
  EXPECT_LT(m.steps, 10u * 20);  // batched: far fewer steps than tokens
}

TEST(Scheduler, ChatTurnsReadOnlyTheirNewText) {
  auto model = Model::load(model_path());
  auto tok = make_byte_tokenizer();
  Scheduler sched(*model, *tok, {2, 8, 64, 8, ""});
  std::string conversation;
  size_t new_text = 0;
  for (int turn = 0; turn < 6; ++turn) {
    const std::string user = "User: question " + std::to_string(turn) + "\n\nAssistant:";
    conversation += user;
    new_text += user.size();
    CompletionRequest r;
    r.prompt = conversation;
    r.max_tokens = 10;
    r.sampling = greedy();
    r.stop = {"\n\n"};
    r.cache_reply = true;
    auto [reply, done] = collect(*sched.submit(r));
    ASSERT_EQ(done.kind, Event::Kind::Done);
    conversation += reply + "\n\n";
  }
  const Metrics m = sched.metrics();
  EXPECT_GT(m.cache_hits, 4u);
  // Only each turn's own text (plus the reply tail re-read for the cache) is run through the model.
  EXPECT_LE(m.prompt_tokens_read, new_text + 6 * 4);
  EXPECT_GT(m.prompt_tokens_cached, 0u);
}

TEST(Scheduler, QueueLimitCancellationAndBadRequests) {
  auto model = Model::load(model_path());
  auto tok = make_byte_tokenizer();
  Scheduler sched(*model, *tok, {1, 1, 64, 0, ""});
  CompletionRequest r;
  r.prompt = "Hello";
  r.max_tokens = 100000;
  r.sampling = greedy();
  auto a = sched.submit(r);
  // One slot and a queue of one: the third request is refused (the first may still be queued).
  std::shared_ptr<Job> b;
  bool refused = false;
  for (int i = 0; i < 3 && !refused; ++i) {
    try {
      b = sched.submit(r);
    } catch (const QueueFull&) {
      refused = true;
    }
  }
  EXPECT_TRUE(refused);
  a->cancel();
  if (b) b->cancel();
  r.prompt = std::string(1, static_cast<char>(0xff));  // invalid UTF-8
  EXPECT_THROW(sched.submit(r), Error);
  r.prompt = "";
  EXPECT_THROW(sched.submit(r), Error);
  sched.shutdown(false);
}

}  // namespace
}  // namespace rwkv::serve

namespace rwkv::serve {
namespace {

// Replies that end inside a UTF-8 character (random bytes from a byte-level model) must not
// break the chat cache: every job finishes, none takes the worker down.
TEST(Scheduler, CachedRepliesWithBrokenCharactersFinishCleanly) {
  auto model = Model::load(model_path());
  auto tok = make_byte_tokenizer();
  Scheduler sched(*model, *tok, {4, 64, 16, 8, ""});
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 24; ++i) {
    CompletionRequest r;
    r.prompt = "User: tell me something " + std::to_string(i) + "\n\nAssistant:";
    r.max_tokens = 1 + i % 7;
    r.sampling.temperature = 3.0f;  // nearly uniform over all 256 bytes
    r.sampling.top_p = 1.0f;
    r.sampling.seed = static_cast<uint64_t>(i);
    r.stop = {"\n\n"};
    r.cache_reply = true;
    jobs.push_back(sched.submit(r));
  }
  for (auto& j : jobs) {
    auto [text, done] = collect(*j);
    EXPECT_EQ(done.kind, Event::Kind::Done) << done.error;
  }
  EXPECT_EQ(sched.metrics().requests_failed, 0u);
}

}  // namespace
}  // namespace rwkv::serve
