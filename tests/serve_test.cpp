// rwkv serve's HTTP API end to end: a real Scheduler and HttpServer in-process on a free
// port, spoken to with httplib's client (responses, streams, errors, the state cache, shutdown).
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "model/model.hpp"
#include "serve/http_server.hpp"
#include "serve/scheduler.hpp"
#include "test_util.hpp"
#include "text/session.hpp"
#include "text/tokenizer.hpp"

namespace rwkv::serve {
namespace {

using json = nlohmann::json;

const Model& tiny_model() {
  static const std::unique_ptr<Model> model = Model::load(test::data_path("rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin"));
  return *model;
}

const Tokenizer& bytes() {
  static const std::unique_ptr<Tokenizer> tokenizer = make_byte_tokenizer();
  return *tokenizer;
}

// A Scheduler and an HttpServer listening on 127.0.0.1 at a free port, served by a thread.
class TestServer {
 public:
  explicit TestServer(ServerOptions options = {}, SchedulerOptions scheduling = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    if (options.model_name.empty()) options.model_name = "tiny";
    scheduler_ = std::make_unique<Scheduler>(tiny_model(), bytes(), scheduling);
    server_ = std::make_unique<HttpServer>(*scheduler_, options);
    EXPECT_TRUE(server_->bind());
    thread_ = std::thread([this] { server_->listen(); });
  }
  ~TestServer() {
    server_->stop();
    thread_.join();
    server_.reset();
    scheduler_->shutdown(false);
  }
  HttpServer& server() { return *server_; }
  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", server_->bound_port());
    c->set_read_timeout(60, 0);
    return c;
  }

 private:
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

struct Reply {
  int status = -1;
  std::string raw;
  json body;  // null when the body is not JSON
};

Reply to_reply(const httplib::Result& r) {
  Reply out;
  if (!r) {
    ADD_FAILURE() << "no response: " << httplib::to_string(r.error());
    return out;
  }
  out.status = r->status;
  out.raw = r->body;
  out.body = json::parse(r->body, nullptr, false);
  if (out.body.is_discarded()) out.body = nullptr;
  return out;
}

Reply post(const TestServer& s, const std::string& path, const std::string& body, const httplib::Headers& headers = {}) {
  return to_reply(s.client()->Post(path, headers, body, "application/json"));
}

Reply get(const TestServer& s, const std::string& path, const httplib::Headers& headers = {}) {
  return to_reply(s.client()->Get(path, headers));
}

// The events of a server-sent-event body; `done` tells whether "data: [DONE]" ended it.
std::vector<json> sse_events(const std::string& body, bool& done) {
  std::vector<json> events;
  done = false;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("data: ", 0) != 0) continue;  // blank separators and ": comments"
    const std::string data = line.substr(6);
    EXPECT_FALSE(done) << "event after [DONE]: " << data;
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    events.push_back(json::parse(data));
  }
  return events;
}

void expect_http_error(const Reply& r, int status, const std::string& param = "") {
  EXPECT_EQ(r.status, status) << r.raw;
  ASSERT_TRUE(r.body.is_object() && r.body.contains("error")) << r.raw;
  const json& e = r.body["error"];
  EXPECT_TRUE(e["message"].is_string()) << r.raw;
  EXPECT_TRUE(e["type"].is_string()) << r.raw;
  EXPECT_TRUE(e.contains("param") && e.contains("code")) << r.raw;
  if (!param.empty()) {
    EXPECT_EQ(e["param"], param) << r.raw;
  }
}

std::map<std::string, double> metrics(const TestServer& s) {
  const Reply r = get(s, "/metrics");
  EXPECT_EQ(r.status, 200);
  std::map<std::string, double> values;
  std::istringstream in(r.raw);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.find(' ');
    values[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return values;
}

// What `rwkv generate --temperature 0 --presence-penalty 0 --frequency-penalty 0` writes.
GenerateResult greedy(const std::string& prompt, int max_tokens, std::vector<std::string> stop = {}) {
  SamplerOptions sampling;
  sampling.temperature = 0;
  sampling.presence_penalty = 0;
  sampling.frequency_penalty = 0;
  Session session(tiny_model(), bytes(), sampling);
  session.feed_text(prompt);
  GenerateOptions g;
  g.max_tokens = max_tokens;
  g.stop = std::move(stop);
  return session.generate(g, [](const std::string&) {});
}

TEST(Serve, GreedyCompletionEqualsGenerate) {
  TestServer s;
  const std::string prompt = "The quick brown";
  const json request = {{"model", "tiny"}, {"prompt", prompt}, {"max_tokens", 30}, {"temperature", 0}};
  const Reply r = post(s, "/v1/completions", request.dump());
  ASSERT_EQ(r.status, 200) << r.raw;
  const GenerateResult want = greedy(prompt, 30);
  EXPECT_EQ(r.body["object"], "text_completion");
  EXPECT_EQ(r.body["model"], "tiny");
  EXPECT_EQ(r.body["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  ASSERT_EQ(r.body["choices"].size(), 1u);
  EXPECT_EQ(r.body["choices"][0]["text"], want.text);
  EXPECT_EQ(r.body["choices"][0]["finish_reason"], want.stopped_by == "length" ? "length" : "stop");
  EXPECT_EQ(r.body["usage"]["prompt_tokens"], prompt.size());
  EXPECT_EQ(r.body["usage"]["completion_tokens"], want.tokens.size());
  EXPECT_EQ(r.body["usage"]["total_tokens"], prompt.size() + want.tokens.size());
  // A prompt given as an array of one string is the same request.
  const Reply a = post(s, "/v1/completions", json{{"prompt", {prompt}}, {"max_tokens", 30}, {"temperature", 0}}.dump());
  EXPECT_EQ(a.body["choices"][0]["text"], want.text);
}

TEST(Serve, StreamedCompletionEqualsWholeOne) {
  TestServer s;
  const json request = {{"prompt", "Once upon a time"}, {"max_tokens", 40}, {"temperature", 0}};
  const Reply whole = post(s, "/v1/completions", request.dump());
  ASSERT_EQ(whole.status, 200) << whole.raw;
  json streamed = request;
  streamed["stream"] = true;
  streamed["stream_options"] = {{"include_usage", true}};
  auto res = s.client()->Post("/v1/completions", streamed.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  bool done = false;
  const std::vector<json> events = sse_events(res->body, done);
  EXPECT_TRUE(done);
  ASSERT_GE(events.size(), 3u);
  std::string text, finish;
  for (const json& e : events) {
    EXPECT_EQ(e["object"], "text_completion");
    EXPECT_EQ(e["id"], events[0]["id"]);
    if (e["choices"].empty()) continue;  // the usage chunk
    text += e["choices"][0]["text"].get<std::string>();
    if (!e["choices"][0]["finish_reason"].is_null()) finish = e["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text, whole.body["choices"][0]["text"]);
  EXPECT_EQ(finish, whole.body["choices"][0]["finish_reason"]);
  EXPECT_EQ(events.back()["usage"], whole.body["usage"]);
}

TEST(Serve, ChatPromptFollowsTheWorldFormat) {
  const std::vector<ChatMessage> messages = {
      {"system", " Be brief.\r\n\r\n"}, {"user", "Hi\n\n\nthere \t"}, {"assistant", "Hello"}, {"user", "x"}};
  EXPECT_EQ(render_chat_prompt(messages), "System: Be brief.\n\nUser: Hi\nthere\n\nAssistant: Hello\n\nUser: x\n\nAssistant:");
  EXPECT_EQ(clean_chat_text("\r\n a\r\n\r\nb \n"), "a\nb");
}

TEST(Serve, ChatCompletionWholeAndStreamed) {
  TestServer s;
  const json messages = json::array({{{"role", "system"}, {"content", "You are a tiny model."}},
                                     {{"role", "user"}, {"content", "Say something."}}});
  const json request = {{"messages", messages}, {"max_tokens", 24}, {"temperature", 0}};
  const Reply whole = post(s, "/v1/chat/completions", request.dump());
  ASSERT_EQ(whole.status, 200) << whole.raw;
  EXPECT_EQ(whole.body["object"], "chat.completion");
  EXPECT_EQ(whole.body["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  const json& message = whole.body["choices"][0]["message"];
  EXPECT_EQ(message["role"], "assistant");
  // The reply is what the model writes after "Assistant:", up to the blank line, less its
  // leading space.
  std::string want = greedy("System: You are a tiny model.\n\nUser: Say something.\n\nAssistant:", 24, {"\n\n"}).text;
  if (!want.empty() && want[0] == ' ') want.erase(0, 1);
  EXPECT_EQ(message["content"], want);

  json streamed = request;
  streamed["stream"] = true;
  auto res = s.client()->Post("/v1/chat/completions", streamed.dump(), "application/json");
  ASSERT_TRUE(res);
  bool done = false;
  const std::vector<json> events = sse_events(res->body, done);
  EXPECT_TRUE(done);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  for (const json& e : events) {
    EXPECT_EQ(e["object"], "chat.completion.chunk");
    const json& delta = e["choices"][0]["delta"];
    if (delta.contains("content")) text += delta["content"].get<std::string>();
  }
  EXPECT_EQ(text, want);
  EXPECT_EQ(events.back()["choices"][0]["finish_reason"], whole.body["choices"][0]["finish_reason"]);
}

TEST(Serve, ModelsHealthAndMetrics) {
  TestServer s;
  const Reply models = get(s, "/v1/models");
  ASSERT_EQ(models.status, 200) << models.raw;
  EXPECT_EQ(models.body["object"], "list");
  ASSERT_EQ(models.body["data"].size(), 1u);
  EXPECT_EQ(models.body["data"][0]["id"], "tiny");
  EXPECT_EQ(get(s, "/v1/models/tiny").body["id"], "tiny");
  expect_http_error(get(s, "/v1/models/other"), 404, "model");
  const Reply health = get(s, "/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, json({{"status", "ok"}}));

  // Greedy, so that the reply cannot be an end-of-text token with nothing generated.
  const Reply done = post(s, "/v1/completions", R"({"prompt": "Hello", "max_tokens": 5, "temperature": 0})");
  ASSERT_EQ(done.status, 200) << done.raw;
  const int generated = done.body["usage"]["completion_tokens"].get<int>();
  ASSERT_GE(generated, 1);
  const Reply text = get(s, "/metrics");
  for (const char* name :
       {"rwkv_requests_total", "rwkv_requests_failed_total", "rwkv_requests_cancelled_total", "rwkv_prompt_tokens_total",
        "rwkv_prompt_tokens_read_total", "rwkv_prompt_tokens_cached_total", "rwkv_completion_tokens_total",
        "rwkv_cache_hits_total", "rwkv_cache_misses_total", "rwkv_batch_steps_total", "rwkv_requests_running",
        "rwkv_requests_queued", "rwkv_tokens_per_second"}) {
    EXPECT_NE(text.raw.find(std::string("# HELP ") + name + " "), std::string::npos) << name;
    EXPECT_NE(text.raw.find(std::string("# TYPE ") + name + " "), std::string::npos) << name;
  }
  const auto m = metrics(s);
  EXPECT_EQ(m.size(), 13u);
  EXPECT_EQ(m.at("rwkv_requests_total"), 1);
  EXPECT_EQ(m.at("rwkv_prompt_tokens_total"), 5);
  EXPECT_EQ(m.at("rwkv_completion_tokens_total"), generated);
  EXPECT_EQ(m.at("rwkv_requests_running"), 0);
}

TEST(Serve, MalformedRequestsGetOpenAIErrors) {
  ServerOptions options;
  options.max_body_bytes = 64 * 1024;
  TestServer s(options);
  struct Case {
    std::string path, body, param;
  };
  const std::string c = "/v1/completions", chat = "/v1/chat/completions";
  std::string deep(5000, '[');
  deep += std::string(5000, ']');
  const std::vector<Case> bad = {
      {c, "{", ""},
      {c, "", ""},
      {c, "[]", ""},
      {c, "null", ""},
      {c, deep, ""},
      {c, "{\"prompt\": \"a\xff\xfe b\"}", ""},      // invalid UTF-8 bytes
      {c, R"({"prompt": "\ud800"})", ""},             // a lone surrogate
      {c, R"({"max_tokens": 5})", "prompt"},
      {c, R"({"prompt": 5})", "prompt"},
      {c, R"({"prompt": [1, 2, 3]})", "prompt"},
      {c, R"({"prompt": ["a", "b"]})", "prompt"},
      {c, R"({"prompt": ""})", "prompt"},
      {c, R"({"prompt": "a", "max_tokens": 1e30})", "max_tokens"},
      {c, R"({"prompt": "a", "max_tokens": 1e400})", ""},
      {c, R"({"prompt": "a", "max_tokens": 18446744073709551616})", "max_tokens"},
      {c, R"({"prompt": "a", "max_tokens": -1})", "max_tokens"},
      {c, R"({"prompt": "a", "max_tokens": 0})", "max_tokens"},
      {c, R"({"prompt": "a", "max_tokens": 4097})", "max_tokens"},
      {c, R"({"prompt": "a", "max_tokens": 2.5})", "max_tokens"},
      {c, R"({"prompt": "a", "max_tokens": "16"})", "max_tokens"},
      {c, R"({"prompt": "a", "temperature": 2.5})", "temperature"},
      {c, R"({"prompt": "a", "temperature": "hot"})", "temperature"},
      {c, R"({"prompt": "a", "top_p": 0})", "top_p"},
      {c, R"({"prompt": "a", "top_p": 1.5})", "top_p"},
      {c, R"({"prompt": "a", "top_k": -1})", "top_k"},
      {c, R"({"prompt": "a", "presence_penalty": 3})", "presence_penalty"},
      {c, R"({"prompt": "a", "frequency_penalty": -2.5})", "frequency_penalty"},
      {c, R"({"prompt": "a", "stop": ["a", "b", "c", "d", "e"]})", "stop"},
      {c, R"({"prompt": "a", "stop": ""})", "stop"},
      {c, R"({"prompt": "a", "stop": 7})", "stop"},
      {c, R"({"prompt": "a", "stop": [7]})", "stop"},
      {c, R"({"prompt": "a", "seed": "x"})", "seed"},
      {c, R"({"prompt": "a", "seed": 1.5})", "seed"},
      {c, R"({"prompt": "a", "stream": "yes"})", "stream"},
      {c, R"({"prompt": "a", "n": 2})", "n"},
      {c, R"({"prompt": "a", "model": 5})", "model"},
      {chat, R"({"max_tokens": 5})", "messages"},
      {chat, R"({"messages": []})", "messages"},
      {chat, R"({"messages": "hi"})", "messages"},
      {chat, R"({"messages": [5]})", "messages[0]"},
      {chat, R"({"messages": [{"content": "x"}]})", "messages[0].role"},
      {chat, R"({"messages": [{"role": "wizard", "content": "x"}]})", "messages[0].role"},
      {chat, R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {chat, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages[0].content"},
      {chat, "{\"messages\": [{\"role\": \"user\", \"content\": \"\xc3\x28\"}]}", ""},
      {chat, R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 1e9})", "max_completion_tokens"},
  };
  for (const Case& k : bad) {
    SCOPED_TRACE(k.path + " " + k.body.substr(0, 80));
    expect_http_error(post(s, k.path, k.body), 400, k.param);
  }

  // Oversized bodies: with a Content-Length, and chunked (which httplib itself does not limit).
  const std::string huge = R"({"prompt": ")" + std::string(100 * 1024, 'a') + "\"}";
  expect_http_error(post(s, c, huge), 413);
  auto chunked = s.client()->Post(
      c,
      [&huge](size_t offset, httplib::DataSink& sink) {
        if (offset < huge.size()) sink.write(huge.data() + offset, std::min<size_t>(4096, huge.size() - offset));
        else sink.done();
        return true;
      },
      "application/json");
  expect_http_error(to_reply(chunked), 413);

  // Routes and methods.
  expect_http_error(post(s, "/v1/nope", "{}"), 404);
  expect_http_error(get(s, "/nope"), 404);
  expect_http_error(get(s, c), 405);
  expect_http_error(to_reply(s.client()->Delete("/health")), 405);
  expect_http_error(to_reply(s.client()->Put(chat, "{}", "application/json")), 405);

  // The server is still fine, and nothing above reached the scheduler.
  EXPECT_EQ(get(s, "/health").status, 200);
  EXPECT_EQ(metrics(s).at("rwkv_requests_total"), 0);
  const Reply ok = post(s, c, R"({"prompt": "a", "max_tokens": 2, "n": 1, "stop": null, "seed": -5, "top_p": null})");
  EXPECT_EQ(ok.status, 200) << ok.raw;
}

TEST(Serve, ApiKeyIsRequiredExceptForHealth) {
  ServerOptions options;
  options.api_key = "sekrit-key";
  TestServer s(options);
  const std::string body = R"({"prompt": "a", "max_tokens": 2})";
  expect_http_error(post(s, "/v1/completions", body), 401);
  expect_http_error(post(s, "/v1/completions", body, {{"Authorization", "Bearer sekrit-kez"}}), 401);
  expect_http_error(post(s, "/v1/completions", body, {{"Authorization", "Bearer sekrit-key2"}}), 401);
  expect_http_error(post(s, "/v1/completions", body, {{"Authorization", "sekrit-key"}}), 401);
  expect_http_error(get(s, "/v1/models"), 401);
  expect_http_error(get(s, "/metrics"), 401);
  EXPECT_EQ(post(s, "/v1/completions", body, {{"Authorization", "Bearer sekrit-key"}}).status, 200);
  EXPECT_EQ(get(s, "/v1/models", {{"Authorization", "Bearer sekrit-key"}}).status, 200);
  EXPECT_EQ(get(s, "/health").status, 200);

  // Refused requests leave a kept-alive connection ready for the next one.
  auto c = s.client();
  c->set_keep_alive(true);
  const httplib::Headers key = {{"Authorization", "Bearer sekrit-key"}};
  expect_http_error(to_reply(c->Post("/v1/completions", body, "application/json")), 401);
  EXPECT_EQ(to_reply(c->Post("/v1/completions", key, body, "application/json")).status, 200);
  expect_http_error(to_reply(c->Post("/v1/completions", key, "{\"prompt\": 1}", "application/json")), 400);
  expect_http_error(to_reply(c->Post("/v1/completions", key, std::string(2 << 20, ' '), "application/json")), 413);
  EXPECT_EQ(to_reply(c->Post("/v1/completions", key, body, "application/json")).status, 200);
  expect_http_error(to_reply(c->Post("/v1/nope", key, body, "application/json")), 404);
  EXPECT_EQ(to_reply(c->Get("/v1/models", key)).status, 200);
}

TEST(Serve, FullQueueGives429) {
  SchedulerOptions scheduling;
  scheduling.max_queue = 0;  // nothing may wait, so every request is turned away
  TestServer s({}, scheduling);
  const Reply r = post(s, "/v1/completions", R"({"prompt": "a"})");
  expect_http_error(r, 429);
  EXPECT_EQ(r.body["error"]["type"], "rate_limit_error");
  EXPECT_EQ(get(s, "/health").status, 200);
}

// Waits up to 10 s for a metric to reach `value`.
bool wait_for_metric(const TestServer& s, const std::string& name, double value) {
  for (int i = 0; i < 200; ++i) {
    if (metrics(s)[name] >= value) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST(Serve, ClientDisconnectCancelsTheStream) {
  ServerOptions options;
  options.max_tokens_limit = 1'000'000;
  TestServer s(options);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = R"({"prompt": "Once", "max_tokens": 1000000, "temperature": 0, "stream": true})";
  req.set_header("Content-Type", "application/json");
  size_t received = 0;
  req.content_receiver = [&received](const char*, size_t n, uint64_t, uint64_t) {
    received += n;
    return received < 200;  // then hang up
  };
  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  EXPECT_FALSE(s.client()->send(req, res, error));
  EXPECT_TRUE(wait_for_metric(s, "rwkv_requests_cancelled_total", 1));
  EXPECT_LT(metrics(s).at("rwkv_completion_tokens_total"), 1'000'000);
  EXPECT_EQ(get(s, "/health").status, 200);
}

TEST(Serve, TimedOutRequestEndsAsLength) {
  ServerOptions options;
  options.max_tokens_limit = 10'000'000;
  options.request_timeout_s = 1;
  TestServer s(options);
  const std::string request = R"({"prompt": "Once", "max_tokens": 10000000, "temperature": 0)";
  const Reply whole = post(s, "/v1/completions", request + "}");
  ASSERT_EQ(whole.status, 200) << whole.raw;
  EXPECT_EQ(whole.body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(whole.body["usage"]["prompt_tokens"], 4);
  // Cut short by the deadline. How many tokens came before it depends on the machine's speed:
  // under the sanitizers on a loaded machine, none may have.
  EXPECT_LT(whole.body["usage"]["completion_tokens"].get<int>(), 10'000'000);
  auto res = s.client()->Post("/v1/completions", request + R"(, "stream": true})", "application/json");
  ASSERT_TRUE(res);
  bool done = false;
  const std::vector<json> events = sse_events(res->body, done);
  EXPECT_TRUE(done);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(wait_for_metric(s, "rwkv_requests_cancelled_total", 2));
}

// Each turn re-sends the whole conversation; the state cache must make the server read only
// what is new (the last reply, the new user message and the template around them).
TEST(Serve, LongChatReadsOnlyTheNewTurns) {
  TestServer s;
  json messages = json::array({{{"role", "system"}, {"content", "A chat with a tiny model."}}});
  size_t prompt_length = 0;
  for (int turn = 0; turn < 20; ++turn) {
    messages.push_back({{"role", "user"}, {"content", "Message number " + std::to_string(turn) + ", please answer."}});
    const Reply r = post(s, "/v1/chat/completions",
                         json{{"messages", messages}, {"max_tokens", 8}, {"temperature", 0}}.dump());
    ASSERT_EQ(r.status, 200) << r.raw;
    prompt_length = r.body["usage"]["prompt_tokens"];
    messages.push_back(r.body["choices"][0]["message"]);
  }
  // The byte tokenizer makes tokens bytes: without the cache the server would read every
  // prompt in full, about ten times the last prompt.
  const auto m = metrics(s);
  EXPECT_GT(m.at("rwkv_prompt_tokens_cached_total"), 0);
  EXPECT_LT(m.at("rwkv_prompt_tokens_read_total"), 2.0 * prompt_length + 20 * 16)
      << "read " << m.at("rwkv_prompt_tokens_read_total") << ", last prompt " << prompt_length;
  EXPECT_GT(m.at("rwkv_prompt_tokens_total"), 5.0 * prompt_length);
}

TEST(Serve, StopFinishesOrCancelsInFlightAndRefusesNewRequests) {
  ServerOptions options;
  options.max_tokens_limit = 100'000'000;
  // Long enough for the two refused requests below on a loaded 2-core machine (with 1 s, the
  // listener had sometimes closed before the second one).
  options.shutdown_grace_s = 3;
  TestServer s(options);
  std::string streamed;
  std::thread reader([&] {
    const std::string body = R"({"prompt": "Once", "max_tokens": 100000000, "temperature": 0, "stream": true})";
    auto res = s.client()->Post("/v1/completions", body, "application/json");
    if (res) streamed = res->body;
  });
  ASSERT_TRUE(wait_for_metric(s, "rwkv_requests_running", 1));
  const auto t0 = std::chrono::steady_clock::now();
  std::thread stopper([&] { s.server().stop(); });
  // During the grace period the listener still answers, with 503.
  Reply refused;
  for (int i = 0; i < 100 && refused.status != 503; ++i) {
    refused = get(s, "/health");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  expect_http_error(refused, 503);
  expect_http_error(post(s, "/v1/completions", R"({"prompt": "a"})"), 503);
  stopper.join();
  reader.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(8));
  // The stream outlived the grace period: it ends with an error event and [DONE].
  bool done = false;
  const std::vector<json> events = sse_events(streamed, done);
  EXPECT_TRUE(done);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["error"]["code"], "server_shutting_down");
}

// The command itself: `rwkv serve --port 0` says where it listens, serves, and exits with 0
// on SIGTERM and on SIGINT.
TEST(Serve, CommandServesAndExitsCleanlyOnSignals) {
  for (const int sig : {SIGTERM, SIGINT}) {
    int err[2];
    ASSERT_EQ(::pipe(err), 0);
    const std::string model = test::data_path("rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin");
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::dup2(err[1], STDERR_FILENO);
      ::close(err[0]);
      ::execl(RWKV_CLI_PATH, RWKV_CLI_PATH, "serve", "-m", model.c_str(), "--port", "0", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(err[1]);
    std::string line;
    char ch;
    while (line.find("listening on http://127.0.0.1:") == std::string::npos || line.back() != '\n') {
      if (::read(err[0], &ch, 1) != 1) break;
      line += ch;
    }
    const size_t colon = line.rfind(':');
    const int port = colon == std::string::npos ? 0 : std::atoi(line.c_str() + colon + 1);
    EXPECT_GT(port, 0) << line;
    httplib::Client client("127.0.0.1", port);
    auto health = client.Get("/health");
    EXPECT_TRUE(health && health->status == 200);
    auto reply = client.Post("/v1/completions", R"({"prompt": "Hi", "max_tokens": 3})", "application/json");
    EXPECT_TRUE(reply && reply->status == 200);
    ::kill(pid, sig);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "signal " << sig << ", status " << status;
    ::close(err[0]);
  }
}

}  // namespace
}  // namespace rwkv::serve
