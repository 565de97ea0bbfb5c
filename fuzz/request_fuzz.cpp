// Any bytes as the body of a request to `rwkv serve`: the first byte picks the endpoint (even:
// /v1/completions, odd: /v1/chat/completions), the rest is the body. A real Scheduler and
// HttpServer run in-process with the tiny RWKV-7 model and the byte tokenizer, spoken to over
// HTTP. Every request must be answered, never by a crash or a hang: 200 with a JSON object (or
// an event stream of them, ended by [DONE]), or a 4xx OpenAI error object whose message is one
// line. A 5xx answer is a finding.
#include <httplib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "fuzz_util.hpp"
#include "model/model.hpp"
#include "serve/http_server.hpp"
#include "serve/scheduler.hpp"
#include "text/tokenizer.hpp"

namespace {

using json = nlohmann::json;

struct Server {
  std::unique_ptr<rwkv::Model> model = rwkv::Model::load(rwkv::fuzz::data_path("rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin"));
  std::unique_ptr<rwkv::Tokenizer> tokenizer = rwkv::make_byte_tokenizer();
  std::unique_ptr<rwkv::serve::Scheduler> scheduler;
  std::unique_ptr<rwkv::serve::HttpServer> http;
  std::thread thread;

  Server() {
    rwkv::serve::ServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.model_name = "tiny";
    options.max_tokens_limit = 16;  // bounds each run's generation
    options.max_body_bytes = 1 << 16;
    options.request_timeout_s = 20;
    scheduler = std::make_unique<rwkv::serve::Scheduler>(*model, *tokenizer, rwkv::serve::SchedulerOptions{});
    http = std::make_unique<rwkv::serve::HttpServer>(*scheduler, options);
    if (!http->bind()) finding("cannot bind a port on 127.0.0.1");
    thread = std::thread([this] { http->listen(); });
  }

  [[noreturn]] static void finding(const std::string& what) {
    std::fprintf(stderr, "%s\n", what.c_str());
    std::abort();
  }
};

// Never destroyed: libFuzzer ends the process from wherever it likes.
Server& server() {
  static Server* s = new Server;
  return *s;
}

void check_json_object(const std::string& text, const std::string& what) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) Server::finding(what + " is not a JSON object: " + text);
}

void check_reply(const httplib::Response& r) {
  if (r.status == 200) {
    if (r.get_header_value("Content-Type").find("text/event-stream") == std::string::npos) {
      check_json_object(r.body, "a 200 answer");
      return;
    }
    std::istringstream in(r.body);
    std::string line;
    bool done = false;
    while (std::getline(in, line)) {
      if (line.rfind("data: ", 0) != 0) continue;
      if (done) Server::finding("an event after [DONE]: " + line);
      if (line == "data: [DONE]") done = true;
      else check_json_object(line.substr(6), "an event");
    }
    if (!done) Server::finding("a stream without [DONE]: " + r.body);
    return;
  }
  if (r.status < 400 || r.status >= 500) Server::finding("status " + std::to_string(r.status) + ": " + r.body);
  const json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.contains("error") || !j["error"].contains("message") || !j["error"]["message"].is_string())
    Server::finding("a " + std::to_string(r.status) + " answer without an OpenAI error object: " + r.body);
  if (j["error"]["message"].get<std::string>().find('\n') != std::string::npos)
    Server::finding("an error message of more than one line: " + r.body);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Server& s = server();
  const bool chat = size > 0 && (data[0] & 1) != 0;
  const std::string body = size > 0 ? std::string(reinterpret_cast<const char*>(data) + 1, size - 1) : std::string();
  httplib::Client client("127.0.0.1", s.http->bound_port());
  client.set_read_timeout(60, 0);
  const auto r = client.Post(chat ? "/v1/chat/completions" : "/v1/completions", body, "application/json");
  if (!r) Server::finding("no answer: " + httplib::to_string(r.error()));
  check_reply(*r);
  return 0;
}
