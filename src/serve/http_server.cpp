// OpenAI-compatible endpoints over cpp-httplib: request validation, chat prompt rendering,
// server-sent-event streaming, error objects, auth, shutdown. Generation itself is the Scheduler's.
#include "serve/http_server.hpp"

#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string_view>
#include <thread>

#include "io/error.hpp"
#include "text/session.hpp"

namespace rwkv::serve {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// ---- chat prompt (spec §8.3)

std::string render_chat_prompt(const std::vector<ChatMessage>& messages) {
  std::string prompt;
  for (const ChatMessage& m : messages) {
    std::string name;
    if (m.role == "system") name = "System";
    else if (m.role == "user") name = "User";
    else if (m.role == "assistant") name = "Assistant";
    else fail("unknown role '", m.role, "'");
    prompt += name + ": " + clean_chat_text(m.content) + "\n\n";
  }
  return prompt + "Assistant:";  // no trailing space: the model writes it
}

namespace {

// ---- errors as OpenAI's error objects: {"error": {message, type, param, code}}

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // "" is sent as null
  std::string code;   // "" is sent as null
};

ApiError bad_request(std::string message, std::string param = "") {
  return {400, std::move(message), "invalid_request_error", std::move(param), ""};
}

const ApiError kShuttingDown{503, "the server is shutting down", "server_error", "", "server_shutting_down"};

// Messages may quote request bytes (a parse error's "last read"), so invalid UTF-8 is replaced
// rather than allowed to throw while we answer.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json error_object(const ApiError& e) {
  auto or_null = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  return {{"error", {{"message", e.message}, {"type", e.type}, {"param", or_null(e.param)}, {"code", or_null(e.code)}}}};
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(error_object(e)), "application/json");
}

// ---- request fields

// nlohmann's parser keeps its own stack, but a deeply nested body is never a valid request,
// so it is refused before any parsing work.
bool nested_too_deep(std::string_view s, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : s) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

json parse_body(const std::string& body) {
  if (body.empty()) throw bad_request("the request body is empty; expected a JSON object");
  if (nested_too_deep(body, 32)) throw bad_request("the request body is nested too deeply");
  json j;
  try {
    j = json::parse(body);  // also rejects invalid UTF-8 inside strings
  } catch (const json::exception& e) {
    throw bad_request(std::string("the request body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw bad_request("the request body must be a JSON object");
  return j;
}

// The field, or nullptr when absent or null (OpenAI clients send null for "not set").
const json* field(const json& body, const std::string& name) {
  auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

std::optional<double> number_field(const json& body, const std::string& name, double lo, double hi, bool lo_open,
                                   const std::string& what) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw bad_request(name + " must be " + what, name);
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi || (lo_open && x == lo)) throw bad_request(name + " must be " + what, name);
  return x;
}

// Integers may arrive as 16 or 16.0; 1e30 or 2.5 are refused.
std::optional<int64_t> integer_field(const json& body, const std::string& name, int64_t lo, int64_t hi,
                                     const std::string& what) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  const ApiError err = bad_request(name + " must be " + what, name);
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();  // nlohmann keeps every non-negative integer unsigned
    if (u > static_cast<uint64_t>(hi) || static_cast<int64_t>(u) < lo) throw err;
    return static_cast<int64_t>(u);
  }
  if (v->is_number_integer()) {
    const int64_t i = v->get<int64_t>();
    if (i < lo || i > hi) throw err;
    return i;
  }
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || d < static_cast<double>(lo) || d > static_cast<double>(hi)) throw err;
    return static_cast<int64_t>(d);
  }
  throw err;
}

std::optional<bool> bool_field(const json& body, const std::string& name) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) throw bad_request(name + " must be true or false", name);
  return v->get<bool>();
}

// Any 64-bit integer, negative ones included (OpenAI's seed is a signed integer).
std::optional<uint64_t> seed_field(const json& body) {
  const json* v = field(body, "seed");
  if (!v) return std::nullopt;
  const ApiError err = bad_request("seed must be an integer", "seed");
  if (v->is_number_unsigned()) return v->get<uint64_t>();
  if (v->is_number_integer()) return static_cast<uint64_t>(v->get<int64_t>());
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) >= 9.2e18) throw err;
    return static_cast<uint64_t>(static_cast<int64_t>(d));
  }
  throw err;
}

std::vector<std::string> stop_field(const json& body) {
  const json* v = field(body, "stop");
  if (!v) return {};
  const ApiError err = bad_request("stop must be a non-empty string or an array of at most 4 non-empty strings", "stop");
  std::vector<std::string> stops;
  if (v->is_string()) {
    stops.push_back(v->get<std::string>());
  } else if (v->is_array() && v->size() <= 4) {
    for (const json& s : *v) {
      if (!s.is_string()) throw err;
      stops.push_back(s.get<std::string>());
    }
  } else {
    throw err;
  }
  for (const std::string& s : stops)
    if (s.empty()) throw err;
  return stops;
}

// Text parts of a message: a string, or OpenAI's [{"type": "text", "text": "…"}] form.
std::string message_content(const json& m, size_t index) {
  const std::string param = "messages[" + std::to_string(index) + "].content";
  auto it = m.find("content");
  if (it == m.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    std::string text;
    for (const json& part : *it) {
      if (!part.is_object() || part.value("type", json()) != "text" || !part.contains("text") || !part["text"].is_string())
        throw bad_request(param + ": only text parts are supported", param);
      text += part["text"].get<std::string>();
    }
    return text;
  }
  throw bad_request(param + " must be a string", param);
}

std::string chat_prompt(const json& body) {
  const json* v = field(body, "messages");
  if (!v) throw bad_request("missing required field: messages", "messages");
  if (!v->is_array()) throw bad_request("messages must be an array", "messages");
  if (v->empty()) throw bad_request("messages must not be empty", "messages");
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw bad_request(where + " must be an object", where);
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) throw bad_request(where + ".role must be a string", where + ".role");
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";  // OpenAI's newer name for the system role
    if (r != "system" && r != "user" && r != "assistant")
      throw bad_request(where + ".role must be system, user or assistant", where + ".role");
    messages.push_back({r, message_content(m, i)});
  }
  return render_chat_prompt(messages);
}

std::string completion_prompt(const json& body) {
  const json* v = field(body, "prompt");
  if (!v) throw bad_request("missing required field: prompt", "prompt");
  std::string prompt;
  if (v->is_string()) prompt = v->get<std::string>();
  else if (v->is_array() && v->size() == 1 && (*v)[0].is_string()) prompt = (*v)[0].get<std::string>();
  else throw bad_request("prompt must be a string or an array of one string", "prompt");
  if (prompt.empty()) throw bad_request("prompt must not be empty", "prompt");
  return prompt;
}

struct ParsedRequest {
  CompletionRequest completion;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with the usage
};

ParsedRequest parse_request(const json& body, bool chat, const ServerOptions& opt, uint64_t random_seed) {
  ParsedRequest p;
  CompletionRequest& r = p.completion;
  if (const json* model = field(body, "model"); model && !model->is_string())
    throw bad_request("model must be a string", "model");
  r.prompt = chat ? chat_prompt(body) : completion_prompt(body);

  const std::string tokens_range = "an integer between 1 and " + std::to_string(opt.max_tokens_limit);
  std::optional<int64_t> max_tokens = integer_field(body, "max_tokens", 1, opt.max_tokens_limit, tokens_range);
  if (chat) {
    if (auto m = integer_field(body, "max_completion_tokens", 1, opt.max_tokens_limit, tokens_range)) max_tokens = m;
  }
  r.max_tokens = static_cast<int>(max_tokens.value_or(std::min(chat ? 256 : 16, opt.max_tokens_limit)));

  integer_field(body, "n", 1, 1, "1 (only one choice is supported)");  // checked, nothing to set
  SamplerOptions& s = r.sampling;
  // OpenAI's defaults, not the ChatRWKV ones of `rwkv generate`: clients expect them.
  s.temperature = static_cast<float>(number_field(body, "temperature", 0, 2, false, "a number between 0 and 2").value_or(1));
  s.top_p = static_cast<float>(number_field(body, "top_p", 0, 1, true, "a number greater than 0 and at most 1").value_or(1));
  s.top_k = static_cast<int>(integer_field(body, "top_k", 0, 1'000'000'000, "a non-negative integer").value_or(0));
  const std::string penalty_range = "a number between -2 and 2";
  s.presence_penalty = static_cast<float>(number_field(body, "presence_penalty", -2, 2, false, penalty_range).value_or(0));
  s.frequency_penalty = static_cast<float>(number_field(body, "frequency_penalty", -2, 2, false, penalty_range).value_or(0));
  s.seed = seed_field(body).value_or(random_seed);

  const std::vector<std::string> stops = stop_field(body);
  if (chat) {
    r.stop = {"\n\n"};  // the turn separator ends the reply (spec §8.3)
    r.cache_reply = true;
    r.turn_suffix = "\n\n";
  }
  r.stop.insert(r.stop.end(), stops.begin(), stops.end());

  p.stream = bool_field(body, "stream").value_or(false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) throw bad_request("stream_options must be an object", "stream_options");
    p.include_usage = bool_field(*so, "include_usage").value_or(false);
  }
  return p;
}

// ---- responses

std::string new_id(const char* prefix, std::mt19937_64& rng) {
  static const char* digits = "0123456789abcdef";
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += digits[rng() % 16];
  return id;
}

json usage_object(int prompt_tokens, int completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

// What a finished request reports: the text, why it ended, and the token counts.
struct Outcome {
  std::string text;
  std::string finish_reason;
  int prompt_tokens = 0, completion_tokens = 0;
};

// The chat reply without the space the model writes after "Assistant:".
void strip_reply_space(std::string& text) {
  if (!text.empty() && text[0] == ' ') text.erase(0, 1);
}

bool constant_time_equal(std::string_view given, std::string_view secret) {
  // Time depends on the secret's length only, never on where the first difference is.
  unsigned diff = given.size() != secret.size() ? 1u : 0u;
  for (size_t i = 0; i < secret.size(); ++i)
    diff |= static_cast<unsigned char>(i < given.size() ? given[i] : 0) ^ static_cast<unsigned char>(secret[i]);
  return diff == 0;
}

bool is_known_path(const std::string& path, std::string& allow) {
  if (path == "/v1/completions" || path == "/v1/chat/completions") allow = "POST";
  else if (path == "/v1/models" || path.rfind("/v1/models/", 0) == 0 || path == "/health" || path == "/metrics")
    allow = "GET, HEAD";
  else return false;
  return true;
}

}  // namespace

// ---- the server

// httplib closes the socket bind() opened only in stop() of a running server; this closes it
// when listen() never ran.
struct Listener : httplib::Server {
  void close_unused_socket() {
    const auto sock = svr_sock_.exchange(INVALID_SOCKET);
    if (sock != INVALID_SOCKET) ::close(sock);
  }
  // Debian's compiled httplib listens with a backlog of 5: a burst of new connections (64
  // clients) overflows it, and the dropped handshakes surface as 1 s stalls and reset
  // connections. Listening again on the bound socket only widens the queue.
  void widen_backlog(int backlog) {
    const auto sock = svr_sock_.load();
    if (sock != INVALID_SOCKET) ::listen(sock, backlog);
  }
};

struct HttpServer::Impl {
  Scheduler& scheduler;
  ServerOptions opt;
  Listener svr;
  std::time_t started = std::time(nullptr);
  std::atomic<int> port{0};
  std::atomic<bool> cancel_all{false};  // the shutdown grace is over: end what still runs

  std::mutex mu;  // guards the fields below
  std::condition_variable cv;
  int active = 0;  // generation requests in flight (a stream counts until its last byte)
  bool stop_requested = false, listening = false, listened = false, bound = false;
  std::mt19937_64 rng{std::random_device{}()};

  std::mutex stop_mu;  // one stop() at a time
  bool stopped = false;

  Impl(Scheduler& s, ServerOptions o) : scheduler(s), opt(std::move(o)) {}

  class ActiveSlot;
  struct EventStream;

  void setup();
  bool authorized(const httplib::Request& req) const;
  // Throws a 401 unless the request carries the API key (when one is set).
  void require_key(const httplib::Request& req, httplib::Response& res) const;
  // Runs a handler, turning what it throws into an error response.
  void guarded(httplib::Response& res, const std::function<void()>& handler) const;
  void generate(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader, bool chat);
  void respond_whole(httplib::Response& res, const std::shared_ptr<Job>& job, const CompletionRequest& request,
                     bool chat, Clock::time_point deadline);
  void respond_stream(httplib::Response& res, std::shared_ptr<Job> job, const CompletionRequest& request, bool chat,
                      bool include_usage, Clock::time_point deadline, std::shared_ptr<ActiveSlot> slot);
  std::string metrics_text() const;
  uint64_t random() {
    std::lock_guard<std::mutex> lock(mu);
    return rng();
  }
  std::string id(const char* prefix) {
    std::lock_guard<std::mutex> lock(mu);
    return new_id(prefix, rng);
  }
  // Token counts when the scheduler could not report them (a timed-out request it never
  // finished): the prompt re-encoded, and the text re-encoded as an estimate.
  Outcome estimate(const CompletionRequest& request, std::string text) const {
    Outcome o;
    o.prompt_tokens = static_cast<int>(scheduler.tokenizer().encode(request.prompt).size());
    o.completion_tokens = static_cast<int>(scheduler.tokenizer().encode(text).size());
    o.text = std::move(text);
    o.finish_reason = "length";
    return o;
  }
};

// Holds a place in `active` for as long as a generation request runs.
class HttpServer::Impl::ActiveSlot {
 public:
  explicit ActiveSlot(Impl* s) : s_(s) {}
  ActiveSlot(const ActiveSlot&) = delete;
  ActiveSlot& operator=(const ActiveSlot&) = delete;
  ~ActiveSlot() {
    {
      std::lock_guard<std::mutex> lock(s_->mu);
      --s_->active;
    }
    s_->cv.notify_all();
  }

 private:
  Impl* s_;
};

bool HttpServer::Impl::authorized(const httplib::Request& req) const {
  if (opt.api_key.empty()) return true;
  const std::string header = req.get_header_value("Authorization");
  const std::string_view prefix = "Bearer ";
  if (header.size() < prefix.size() || header.compare(0, prefix.size(), prefix) != 0) return false;
  return constant_time_equal(std::string_view(header).substr(prefix.size()), opt.api_key);
}

void HttpServer::Impl::require_key(const httplib::Request& req, httplib::Response& res) const {
  if (authorized(req)) return;
  res.set_header("WWW-Authenticate", "Bearer");
  throw ApiError{401, "invalid or missing API key (send Authorization: Bearer <key>)", "invalid_request_error", "",
                 "invalid_api_key"};
}

void HttpServer::Impl::guarded(httplib::Response& res, const std::function<void()>& handler) const {
  try {
    handler();
  } catch (const ApiError& e) {
    send_error(res, e);
  } catch (const std::exception& e) {
    send_error(res, {500, std::string("internal error: ") + e.what(), "server_error", "", ""});
  }
}

void HttpServer::Impl::setup() {
  // SO_REUSEADDR only: httplib's default SO_REUSEPORT would let a second server share the port.
  svr.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  const size_t threads = static_cast<size_t>(std::max(opt.threads, 2));
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  svr.set_payload_max_length(opt.max_body_bytes);

  using Request = httplib::Request;
  using Response = httplib::Response;
  using Reader = httplib::ContentReader;
  svr.Post("/v1/completions", [this](const Request& req, Response& res, const Reader& reader) {
    guarded(res, [&] { generate(req, res, reader, false); });
  });
  svr.Post("/v1/chat/completions", [this](const Request& req, Response& res, const Reader& reader) {
    guarded(res, [&] { generate(req, res, reader, true); });
  });
  auto model_object = [this] {
    return json{{"id", opt.model_name}, {"object", "model"}, {"created", started}, {"owned_by", "rwkv"}};
  };
  svr.Get("/v1/models", [this, model_object](const Request& req, Response& res) {
    guarded(res, [&] {
      require_key(req, res);
      res.set_content(dump({{"object", "list"}, {"data", json::array({model_object()})}}), "application/json");
    });
  });
  svr.Get("/v1/models/(.+)", [this, model_object](const Request& req, Response& res) {
    guarded(res, [&] {
      require_key(req, res);
      if (req.matches[1] != opt.model_name)
        throw ApiError{404, "the model '" + req.matches[1].str() + "' does not exist", "invalid_request_error", "model",
                       "model_not_found"};
      res.set_content(dump(model_object()), "application/json");
    });
  });
  svr.Get("/health", [this](const Request&, Response& res) {  // open to all: probes carry no key
    guarded(res, [&] {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stop_requested) throw kShuttingDown;
      }
      res.set_content(R"({"status":"ok"})", "application/json");
    });
  });
  svr.Get("/metrics", [this](const Request& req, Response& res) {
    guarded(res, [&] {
      require_key(req, res);
      res.set_content(metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
    });
  });

  // A chunked body is read whole by httplib wherever no streaming reader handles it, with no
  // size limit: refuse it outside the two endpoints that read bodies with a limit.
  svr.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    const bool generation = req.method == "POST" && (req.path == "/v1/completions" || req.path == "/v1/chat/completions");
    if (!generation && req.has_header("Transfer-Encoding")) {
      send_error(res, {411, "this endpoint takes no chunked request body", "invalid_request_error", "", ""});
      res.set_header("Connection", "close");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  // Every status of 400 and above that httplib produced itself (no route, body over the
  // limit, a malformed request line) becomes an OpenAI-style error too.
  svr.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours already
    ApiError e{res.status, "", "invalid_request_error", "", ""};
    std::string allow;
    if (res.status == 404 && is_known_path(req.path, allow)) {
      e = {405, "method " + req.method + " is not allowed for " + req.path + " (allowed: " + allow + ")",
           "invalid_request_error", "", "method_not_allowed"};
      res.set_header("Allow", allow);
    } else if (res.status == 404) {
      e.message = "unknown URL: " + req.method + " " + req.path;
      e.code = "unknown_url";
    } else if (res.status == 413) {
      e.message = "the request body is larger than " + std::to_string(opt.max_body_bytes) + " bytes";
      e.code = "request_too_large";
    } else if (res.status >= 500) {
      e.message = "internal server error";
      e.type = "server_error";
    } else {
      e.message = "malformed HTTP request (status " + std::to_string(res.status) + ")";
    }
    send_error(res, e);
    return httplib::Server::HandlerResponse::Handled;
  }));

  // The last line of defence: nothing thrown while routing may take the process down.
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const ApiError& e) {
      send_error(res, e);
      return;
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, {500, "internal error: " + what, "server_error", "", ""});
  });
}

void HttpServer::Impl::generate(const httplib::Request& req, httplib::Response& res,
                                const httplib::ContentReader& reader, bool chat) {
  // Read the body ourselves so that the limit also holds for chunked and compressed bodies
  // (httplib checks only Content-Length).
  std::string body;
  size_t received = 0;
  bool too_large = false;
  auto receive = [&](const char* data, size_t n) {
    received += n;
    if (received > opt.max_body_bytes) {
      too_large = true;
      body = std::string();
      // Go on reading (and dropping) for a while: a client still sending would otherwise see
      // a reset instead of the 413. A body that goes on and on is cut off.
      return received / 16 <= opt.max_body_bytes;
    }
    body.append(data, n);
    return true;
  };
  bool read_ok;
  if (req.is_multipart_form_data())
    read_ok = reader([](const httplib::MultipartFormData&) { return true; }, receive);
  else
    read_ok = reader(receive);
  if (too_large || res.status == 413) {
    res.set_header("Connection", "close");  // some of the body may be left unread
    throw ApiError{413, "the request body is larger than " + std::to_string(opt.max_body_bytes) + " bytes",
                   "invalid_request_error", "", "request_too_large"};
  }
  if (!read_ok) throw bad_request("could not read the request body");
  // Only now: answering before the body is read would leave it on a kept-alive connection,
  // where it would be taken for the next request.
  require_key(req, res);
  if (req.is_multipart_form_data()) throw bad_request("the request body must be JSON (Content-Type: application/json)");

  {
    std::lock_guard<std::mutex> lock(mu);
    if (stop_requested) throw kShuttingDown;
    ++active;
  }
  auto slot = std::make_shared<ActiveSlot>(this);  // shared: a stream keeps it after we return

  const ParsedRequest parsed = parse_request(parse_body(body), chat, opt, random());
  std::shared_ptr<Job> job;
  try {
    job = scheduler.submit(parsed.completion);
  } catch (const QueueFull& e) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stop_requested) throw kShuttingDown;
    }
    throw ApiError{429, std::string("the server is busy: ") + e.what() + "; retry later", "rate_limit_error", "",
                   "rate_limit_exceeded"};
  } catch (const Error& e) {
    throw bad_request(e.what());
  }
  const auto deadline = Clock::now() + std::chrono::seconds(opt.request_timeout_s);
  if (parsed.stream) {
    respond_stream(res, std::move(job), parsed.completion, chat, parsed.include_usage, deadline, std::move(slot));
  } else {
    respond_whole(res, job, parsed.completion, chat, deadline);
  }
}

void HttpServer::Impl::respond_whole(httplib::Response& res, const std::shared_ptr<Job>& job,
                                     const CompletionRequest& request, bool chat, Clock::time_point deadline) {
  std::string text;
  Outcome out;
  bool done = false;
  try {
    Event ev;
    while (!done) {
      if (cancel_all) {
        job->cancel();
        throw kShuttingDown;
      }
      if (Clock::now() >= deadline) {
        // A request past its time limit ends like one cut by max_tokens: what was generated,
        // finish_reason "length" (OpenAI has no timeout reason that clients know).
        job->cancel();
        while (job->next(ev, 0))
          if (ev.kind == Event::Kind::Text) text += ev.text;
        out = estimate(request, std::move(text));
        break;
      }
      if (!job->next(ev, 100)) continue;
      if (ev.kind == Event::Kind::Text) {
        text += ev.text;
      } else if (ev.kind == Event::Kind::Done) {
        out = {std::move(text), ev.finish_reason, ev.prompt_tokens, ev.completion_tokens};
        done = true;
      } else {
        throw ApiError{500, "generation failed: " + ev.error, "server_error", "", ""};
      }
    }
  } catch (...) {
    job->cancel();
    throw;
  }
  if (chat) strip_reply_space(out.text);
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", out.finish_reason}};
  if (chat) choice["message"] = {{"role", "assistant"}, {"content", out.text}};
  else choice["text"] = out.text;
  const json reply = {{"id", id(chat ? "chatcmpl-" : "cmpl-")},
                      {"object", chat ? "chat.completion" : "text_completion"},
                      {"created", std::time(nullptr)},
                      {"model", opt.model_name},
                      {"choices", json::array({choice})},
                      {"usage", usage_object(out.prompt_tokens, out.completion_tokens)}};
  res.set_content(dump(reply), "application/json");
}

// One server-sent-event response: pulls the job's events and writes them as OpenAI chunks.
// Destroyed with the response, whichever way it ended; an unfinished job is then cancelled
// (the client went away, or the server closed the connection).
struct HttpServer::Impl::EventStream {
  Impl* server;
  std::shared_ptr<ActiveSlot> slot;
  std::shared_ptr<Job> job;
  CompletionRequest request;
  bool chat = false, include_usage = false;
  std::string id, model;
  std::time_t created = 0;
  Clock::time_point deadline, last_write = Clock::now();
  std::string text;  // generated so far, for the usage estimate of a timed-out request
  bool started = false, finished = false, at_reply_start = true;

  ~EventStream() {
    if (!finished) job->cancel();
  }

  json chunk(const json& delta_or_text, const json& finish_reason) const {
    json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_reason}};
    if (chat) choice["delta"] = delta_or_text;
    else choice["text"] = delta_or_text;
    return {{"id", id},
            {"object", chat ? "chat.completion.chunk" : "text_completion"},
            {"created", created},
            {"model", model},
            {"choices", json::array({choice})}};
  }

  // httplib ends a chunked stream at the first empty write, so nothing empty goes out.
  bool write(httplib::DataSink& sink, const std::string& s) {
    last_write = Clock::now();
    return s.empty() || sink.write(s.data(), s.size());
  }
  bool event(httplib::DataSink& sink, const json& j) { return write(sink, "data: " + dump(j) + "\n\n"); }

  bool finish(httplib::DataSink& sink, const Outcome& out) {
    const json empty = chat ? json::object() : json("");
    if (!event(sink, chunk(empty, out.finish_reason))) return false;
    if (include_usage) {
      json last = chunk(empty, nullptr);
      last["choices"] = json::array();
      last["usage"] = usage_object(out.prompt_tokens, out.completion_tokens);
      if (!event(sink, last)) return false;
    }
    return end(sink);
  }
  bool fail(httplib::DataSink& sink, const ApiError& e) { return event(sink, error_object(e)) && end(sink); }
  bool end(httplib::DataSink& sink) {
    finished = true;
    if (!write(sink, "data: [DONE]\n\n")) return false;
    sink.done();
    return true;
  }

  // Called by httplib until done() or a false return; waits a little for the next event each
  // time so that httplib gets to notice a server shutdown in between.
  bool pump(httplib::DataSink& sink) {
    if (!started) {
      started = true;
      if (chat && !event(sink, chunk({{"role", "assistant"}, {"content", ""}}, nullptr))) return false;
    }
    // Checked before waiting: a job that produces without pause never lets next() time out.
    if (server->cancel_all) {
      job->cancel();
      return fail(sink, kShuttingDown);
    }
    if (Clock::now() >= deadline) {  // as in respond_whole: ends like a max_tokens cut
      job->cancel();
      return finish(sink, server->estimate(request, text));
    }
    Event ev;
    if (job->next(ev, 200)) {
      if (ev.kind == Event::Kind::Text) {
        std::string piece = std::move(ev.text);
        text += piece;
        if (chat && at_reply_start && !piece.empty()) {
          strip_reply_space(piece);
          at_reply_start = false;
        }
        if (piece.empty()) return true;
        return event(sink, chat ? chunk({{"content", piece}}, nullptr) : chunk(piece, nullptr));
      }
      if (ev.kind == Event::Kind::Done)
        return finish(sink, {"", ev.finish_reason, ev.prompt_tokens, ev.completion_tokens});
      return fail(sink, {500, "generation failed: " + ev.error, "server_error", "", ""});
    }
    // An SSE comment now and then: clients ignore it, and writing is how a client that went
    // away is noticed while the prompt is still being read.
    if (Clock::now() - last_write > std::chrono::seconds(2)) return write(sink, ": keep-alive\n\n");
    return true;
  }
};

void HttpServer::Impl::respond_stream(httplib::Response& res, std::shared_ptr<Job> job,
                                      const CompletionRequest& request, bool chat, bool include_usage,
                                      Clock::time_point deadline, std::shared_ptr<ActiveSlot> slot) {
  auto stream = std::make_shared<EventStream>();
  stream->server = this;
  stream->slot = std::move(slot);
  stream->job = std::move(job);
  stream->request = request;
  stream->chat = chat;
  stream->include_usage = include_usage;
  stream->id = id(chat ? "chatcmpl-" : "cmpl-");
  stream->model = opt.model_name;
  stream->created = std::time(nullptr);
  stream->deadline = deadline;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // proxies must not hold the events back
  res.set_chunked_content_provider(
      "text/event-stream",
      [stream](size_t, httplib::DataSink& sink) {
        // httplib writes the body outside its exception guard: nothing may escape from here.
        try {
          return stream->pump(sink);
        } catch (...) {
          return false;
        }
      },
      [stream](bool) {});
}

std::string HttpServer::Impl::metrics_text() const {
  const Metrics m = scheduler.metrics();
  std::ostringstream out;
  auto put = [&out](const char* name, const char* type, const char* help, auto value) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n' << name << ' ' << value << '\n';
  };
  put("rwkv_requests_total", "counter", "Generation requests accepted by the scheduler.", m.requests_total);
  put("rwkv_requests_failed_total", "counter", "Requests that ended with an error.", m.requests_failed);
  put("rwkv_requests_cancelled_total", "counter", "Requests cancelled (client gone, timeout, shutdown).",
      m.requests_cancelled);
  put("rwkv_prompt_tokens_total", "counter", "Tokens of all prompts, cached or not.", m.prompt_tokens_total);
  put("rwkv_prompt_tokens_read_total", "counter", "Prompt tokens run through the model.", m.prompt_tokens_read);
  put("rwkv_prompt_tokens_cached_total", "counter", "Prompt tokens skipped thanks to the state cache.",
      m.prompt_tokens_cached);
  put("rwkv_completion_tokens_total", "counter", "Tokens generated.", m.completion_tokens_total);
  put("rwkv_cache_hits_total", "counter", "Requests that started from a cached state.", m.cache_hits);
  put("rwkv_cache_misses_total", "counter", "Requests that started from the initial state.", m.cache_misses);
  put("rwkv_batch_steps_total", "counter", "Batched forward steps.", m.steps);
  put("rwkv_requests_running", "gauge", "Requests being generated now.", m.running);
  put("rwkv_requests_queued", "gauge", "Requests waiting for a slot.", m.queued);
  put("rwkv_tokens_per_second", "gauge", "Generated tokens per second over the last few seconds.", m.tokens_per_second);
  return out.str();
}

// ---- HttpServer

HttpServer::HttpServer(Scheduler& scheduler, ServerOptions options)
    : impl_(std::make_unique<Impl>(scheduler, std::move(options))) {
  impl_->setup();
}

HttpServer::~HttpServer() {
  stop();
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->cv.wait(lock, [this] { return !impl_->listening; });
  if (!impl_->listened) impl_->svr.close_unused_socket();
}

bool HttpServer::bind() {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.bound) return true;
  if (s.opt.port == 0) {
    const int p = s.svr.bind_to_any_port(s.opt.host);
    if (p <= 0) return false;
    s.port = p;
  } else {
    if (!s.svr.bind_to_port(s.opt.host, s.opt.port)) return false;
    s.port = s.opt.port;
  }
  s.svr.widen_backlog(SOMAXCONN);
  s.bound = true;
  return true;
}

bool HttpServer::listen() {
  Impl& s = *impl_;
  if (!bind()) return false;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.stop_requested || s.listened) return false;
    s.listening = s.listened = true;
  }
  const bool ok = s.svr.listen_after_bind();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.listening = false;
  }
  s.cv.notify_all();
  return ok;
}

void HttpServer::stop() {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> once(s.stop_mu);
  if (s.stopped) return;
  std::unique_lock<std::mutex> lock(s.mu);
  s.stop_requested = true;  // from now on requests are answered 503
  if (!s.cv.wait_for(lock, std::chrono::seconds(std::max(s.opt.shutdown_grace_s, 0)), [&] { return s.active == 0; })) {
    s.cancel_all = true;  // handlers notice within a fraction of a second
    s.cv.wait_for(lock, std::chrono::seconds(5), [&] { return s.active == 0; });
  }
  // listen() may be between its check and httplib's start: closing only works once running.
  while (s.listening && !s.svr.is_running()) {
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    lock.lock();
  }
  if (s.svr.is_running()) s.svr.stop();
  s.stopped = true;
}

int HttpServer::bound_port() const { return impl_->port; }

}  // namespace rwkv::serve
