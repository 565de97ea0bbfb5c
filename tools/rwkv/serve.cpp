// rwkv serve: an OpenAI-compatible HTTP server (src/serve) for one model, until SIGINT or
// SIGTERM, which stop it gracefully (in-flight requests finish or are cancelled; exit 0).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <thread>

#include "commands.hpp"
#include "kernels/cpu/ops.hpp"
#include "io/error.hpp"
#include "serve/http_server.hpp"
#include "serve/scheduler.hpp"
#include "text/tokenizer.hpp"

namespace rwkv::cli {

namespace {
// The self-pipe: a signal handler may run on any thread (OpenBLAS starts threads before main
// can block signals for them) and may only do async-signal-safe work, so it writes one byte
// that a watcher thread waits for.
int signal_pipe[2] = {-1, -1};

void on_signal(int sig) {
  const int saved = errno;
  const unsigned char byte = static_cast<unsigned char>(sig);
  [[maybe_unused]] const ssize_t n = ::write(signal_pipe[1], &byte, 1);
  errno = saved;
}

// Routes SIGINT and SIGTERM to the pipe while it lives.
class SignalsToPipe {
 public:
  SignalsToPipe() {
    if (signal_pipe[0] < 0 && ::pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) fail("cannot create a pipe");
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, &old_int_);
    ::sigaction(SIGTERM, &action, &old_term_);
  }
  ~SignalsToPipe() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }
  SignalsToPipe(const SignalsToPipe&) = delete;
  SignalsToPipe& operator=(const SignalsToPipe&) = delete;
  int fd() const { return signal_pipe[0]; }

 private:
  struct sigaction old_int_ {}, old_term_ {};
};
}  // namespace

void register_serve(CLI::App& app) {
  static std::string model_path, tokenizer_spec;
  static serve::ServerOptions server;
  static serve::SchedulerOptions scheduler;
  auto* cmd = app.add_subcommand("serve", "Serve the model over an OpenAI-compatible HTTP API");
  cmd->add_option("-m,--model", model_path, "Model file (.pth, rwkv.cpp .bin, .gguf)")->required();
  cmd->add_option("--tokenizer", tokenizer_spec,
                  "world, 20b, bytes or a vocabulary file (default: from the vocabulary size)");
  cmd->add_option("--host", server.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", server.port, "Port to listen on; 0 picks a free one")->capture_default_str();
  cmd->add_option("--api-key", server.api_key, "Require \"Authorization: Bearer KEY\" on every endpoint but /health");
  cmd->add_option("--model-name", server.model_name, "Model id reported by /v1/models (default: the file name)");
  static int threads = 1;
  cmd->add_option("--threads", threads, "Threads for the matrix products (0 = one per physical core; 1 suits small models)")
      ->capture_default_str();
  cmd->add_option("--parallel", scheduler.parallel, "Requests generated together at most")->capture_default_str();
  cmd->add_option("--max-queue", scheduler.max_queue, "Requests waiting for a slot at most (more get 429)")
      ->capture_default_str();
  cmd->add_option("--cache-entries", scheduler.cache_entries, "States kept in the prompt cache")->capture_default_str();
  cmd->add_option("--state-dir", scheduler.state_dir, "Also keep cached states in this directory (kept across runs)");
  cmd->add_option("--max-tokens-limit", server.max_tokens_limit, "Largest max_tokens a request may ask for")
      ->capture_default_str();
  cmd->add_option("--timeout", server.request_timeout_s, "Seconds a request may run; then it ends as if cut by max_tokens")
      ->capture_default_str();
  cmd->callback([] {
    if (server.port < 0 || server.port > 65535) fail("--port must be between 0 and 65535");
    if (server.max_tokens_limit < 1) fail("--max-tokens-limit must be at least 1");
    if (server.request_timeout_s < 1) fail("--timeout must be at least 1 second");
    if (scheduler.parallel < 1) fail("--parallel must be at least 1");
    if (scheduler.max_queue < 0) fail("--max-queue must not be negative");
    if (scheduler.cache_entries < 0) fail("--cache-entries must not be negative");
    if (server.model_name.empty()) server.model_name = std::filesystem::path(model_path).stem().string();
    // Every connection in a slot or in the queue holds a server thread, and a few more keep
    // /health and /metrics answering while all of them are busy.
    server.threads = scheduler.parallel + scheduler.max_queue + 4;

    cpu::set_threads(threads);
    auto model = Model::load(model_path);
    auto tokenizer = resolve_tokenizer(tokenizer_spec, model->weights());

    SignalsToPipe signals;

    serve::Scheduler engine(*model, *tokenizer, scheduler);
    serve::HttpServer http(engine, server);
    if (!http.bind()) fail("cannot listen on ", server.host, ":", server.port, " (address in use or not local?)");
    std::fprintf(stderr, "listening on http://%s:%d\n", server.host.c_str(), http.bound_port());
    std::fflush(stderr);

    std::atomic<bool> serving{true};
    std::thread watcher([&] {
      pollfd fd{signals.fd(), POLLIN, 0};
      while (serving) {
        unsigned char sig = 0;
        if (::poll(&fd, 1, 200) <= 0 || ::read(signals.fd(), &sig, 1) != 1) continue;
        std::fprintf(stderr, "%s: shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
        http.stop();  // refuses new requests, lets in-flight ones finish, closes the listener
        return;
      }
    });
    const bool ok = http.listen();
    serving = false;
    watcher.join();
    engine.shutdown(false);  // whatever is left after the grace period is cancelled
    if (!ok) fail("the server stopped unexpectedly");
  });
}

}  // namespace rwkv::cli
