// The HTTP side of `rwkv serve`: an OpenAI-compatible API (completions, chat completions,
// models, health, Prometheus metrics) over the Scheduler. No model code here.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "serve/scheduler.hpp"

namespace rwkv::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;              // 0: any free port (bound_port() tells which)
  std::string api_key;          // if set, every endpoint but /health wants "Authorization: Bearer <key>"
  std::string model_name;       // the id /v1/models reports and responses carry
  size_t max_body_bytes = 1 << 20;
  int max_tokens_limit = 4096;  // the largest max_tokens a request may ask for
  int request_timeout_s = 600;  // a longer request is cancelled and ends as if cut by max_tokens
  int threads = 16;             // connections served at once; a stream holds one for its whole life
  int shutdown_grace_s = 5;     // stop() lets in-flight requests run this long, then cancels them
};

class HttpServer {
 public:
  HttpServer(Scheduler& scheduler, ServerOptions options);
  ~HttpServer();  // stops, and waits for listen() to return
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Opens the listening socket (so that a caller can learn the port before serving); false if
  // the address cannot be bound. listen() calls it when it has not been called.
  bool bind();
  // Serves until stop(); false if binding failed.
  bool listen();
  // Refuses new requests with 503, lets in-flight ones finish for shutdown_grace_s, cancels the
  // rest, then closes the listener. Safe to call from any thread, more than once.
  void stop();
  int bound_port() const;  // 0 before bind()

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One message of a chat request.
struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// The RWKV World chat prompt (spec §8.3): "System: …\n\n", "User: …\n\n", "Assistant: …\n\n"
// turns in order, each message cleaned, then "Assistant:" for the reply. Throws rwkv::Error
// for an unknown role.
std::string render_chat_prompt(const std::vector<ChatMessage>& messages);

}  // namespace rwkv::serve
