// Load test of `rwkv serve`: N concurrent streaming clients against an in-process server on a
// tiny model. Reports failed requests, aggregate generated tokens/s against one client alone,
// and time-to-first-token percentiles.
//   build/rwkv_serve_load [--model M] [--clients 64] [--seconds 30] [--parallel 64] [--threads 1]
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/ops.hpp"
#include "model/model.hpp"
#include "serve/http_server.hpp"
#include "serve/scheduler.hpp"
#include "text/tokenizer.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Totals {
  std::atomic<long> ok{0}, failed{0};
  std::mutex mu;
  std::vector<double> ttft_ms;
  std::string first_failure;
};

double completion_tokens(int port) {
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/metrics");
  if (!r) return 0;
  const std::string key = "rwkv_completion_tokens_total ";
  const size_t p = r->body.find("\n" + key);
  return p == std::string::npos ? 0 : std::atof(r->body.c_str() + p + 1 + key.size());
}

// One client: streaming completions back to back until the deadline.
void client(int port, int id, Clock::time_point deadline, Totals& t) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120, 0);
  c.set_keep_alive(false);  // a fresh connection per request, as independent clients would
  for (int i = 0; Clock::now() < deadline; ++i) {
    const std::string body = "{\"prompt\": \"Client " + std::to_string(id) + " request " + std::to_string(i) +
                             " says:\", \"max_tokens\": 64, \"stream\": true, \"temperature\": 1, \"seed\": " +
                             std::to_string(id * 1000 + i) + "}";
    const auto start = Clock::now();
    bool first = true, done = false;
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = body;
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      const std::string chunk(data, n);
      if (first && chunk.find("data: {") != std::string::npos) {
        first = false;
        std::lock_guard<std::mutex> lock(t.mu);
        t.ttft_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      }
      if (chunk.find("[DONE]") != std::string::npos) done = true;
      return true;
    };
    auto r = c.send(req);
    if (r && r->status == 200 && done) {
      t.ok++;
    } else {
      t.failed++;
      std::lock_guard<std::mutex> lock(t.mu);
      if (t.first_failure.empty())
        t.first_failure = r ? "HTTP " + std::to_string(r->status) + " " + r->body.substr(0, 200)
                            : "connection error " + httplib::to_string(r.error());
    }
  }
}

struct Phase {
  double tokens_per_s, p50, p99;
  long ok, failed;
  std::string first_failure;
};

Phase run(int port, int clients, double seconds) {
  Totals t;
  const double before = completion_tokens(port);
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::milliseconds(static_cast<long>(seconds * 1000));
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) threads.emplace_back(client, port, i, deadline, std::ref(t));
  for (auto& th : threads) th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double tokens = completion_tokens(port) - before;
  std::sort(t.ttft_ms.begin(), t.ttft_ms.end());
  auto pct = [&](double q) { return t.ttft_ms.empty() ? 0.0 : t.ttft_ms[static_cast<size_t>(q * (t.ttft_ms.size() - 1))]; };
  return {tokens / elapsed, pct(0.5), pct(0.99), t.ok.load(), t.failed.load(), t.first_failure};
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path = std::string(RWKV_TEST_DATA) + "/rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin";
  int clients = 64, parallel = 64, threads = 1;
  double seconds = 30;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--model")) model_path = argv[i + 1];
    else if (!std::strcmp(argv[i], "--clients")) clients = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--seconds")) seconds = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--parallel")) parallel = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
  }
  try {
    rwkv::cpu::set_threads(threads);  // threads of the model work (default 1; see PERFORMANCE.md)
    auto model = rwkv::Model::load(model_path);
    auto tokenizer = rwkv::resolve_tokenizer("", model->weights());
    rwkv::serve::Scheduler scheduler(*model, *tokenizer, {parallel, 4 * clients, 64, 64, ""});
    rwkv::serve::ServerOptions so;
    so.port = 0;
    so.model_name = "load-test";
    so.threads = clients + 8;
    rwkv::serve::HttpServer server(scheduler, so);
    if (!server.bind()) throw std::runtime_error("cannot bind");
    std::thread serving([&] { server.listen(); });
    const int port = server.bound_port();
    const Phase one = run(port, 1, seconds / 3);
    const Phase many = run(port, clients, seconds);
    server.stop();
    serving.join();
    std::printf("| clients | requests ok | failed | generated tokens/s | TTFT p50 ms | TTFT p99 ms |\n|---|---|---|---|---|---|\n");
    std::printf("| 1 | %ld | %ld | %.0f | %.1f | %.1f |\n", one.ok, one.failed, one.tokens_per_s, one.p50, one.p99);
    std::printf("| %d | %ld | %ld | %.0f | %.1f | %.1f |\n", clients, many.ok, many.failed, many.tokens_per_s, many.p50,
                many.p99);
    std::printf("aggregate / single stream: %.1fx\n", many.tokens_per_s / one.tokens_per_s);
    if (!many.first_failure.empty()) std::printf("first failure: %s\n", many.first_failure.c_str());
    return many.failed == 0 && one.failed == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rwkv_serve_load: error: %s\n", e.what());
    return 1;
  }
}
