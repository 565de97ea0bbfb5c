// The engine room of `rwkv serve`: requests become jobs that one worker thread advances
// together (continuous batching: every step is one forward_batch over all running jobs, new
// jobs join between steps, prompt reading is done in chunks that ride along with the decode
// steps), plus an LRU cache of states keyed by the text already read. No HTTP here.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model/model.hpp"
#include "text/sampler.hpp"
#include "text/tokenizer.hpp"

namespace rwkv::serve {

struct CompletionRequest {
  std::string prompt;  // the text to continue (chat requests arrive already rendered)
  int max_tokens = 16;
  SamplerOptions sampling;
  std::vector<std::string> stop;
  bool stop_at_end_of_text = true;
  // After the reply, the state for prompt + reply + `turn_suffix` is put in the cache so that
  // a follow-up chat turn (which re-sends the whole conversation) reads only its new text.
  bool cache_reply = false;
  std::string turn_suffix = "\n\n";
};

struct Event {
  enum class Kind { Text, Done, Error };
  Kind kind = Kind::Text;
  std::string text;           // Text: a piece of the reply (valid UTF-8)
  std::string finish_reason;  // Done: "stop" or "length"
  int prompt_tokens = 0;      // Done: tokens of the prompt (all of them, cached or not)
  int completion_tokens = 0;  // Done
  std::string error;          // Error: message
};

// A running request as its HTTP handler sees it: a queue of events, and cancellation.
class Job {
 public:
  // Waits up to `timeout_ms` for the next event; false on timeout.
  bool next(Event& out, int timeout_ms);
  void cancel();  // the client went away: stop generating and free the slot
  bool cancelled() const;

 private:
  friend class Scheduler;
  void push(Event e);
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  bool cancelled_ = false;
};

struct SchedulerOptions {
  int parallel = 8;          // jobs advanced together at most
  int max_queue = 64;        // jobs waiting for a slot at most; more are refused
  int prefill_chunk = 64;    // prompt tokens a job reads per step
  int cache_entries = 64;    // states kept in the LRU cache
  std::string state_dir;     // if set, cached states are also written here and read back at start
};

struct Metrics {
  uint64_t requests_total = 0, requests_failed = 0, requests_cancelled = 0;
  uint64_t prompt_tokens_total = 0;     // tokens of all prompts
  uint64_t prompt_tokens_read = 0;      // tokens actually run through the model (cache misses)
  uint64_t prompt_tokens_cached = 0;    // tokens skipped thanks to the state cache
  uint64_t completion_tokens_total = 0;
  uint64_t cache_hits = 0, cache_misses = 0;
  uint64_t steps = 0;                   // forward_batch calls
  size_t running = 0, queued = 0;
  double tokens_per_second = 0;         // generated tokens/s over the last few seconds
};

class QueueFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Scheduler {
 public:
  Scheduler(const Model& model, const Tokenizer& tokenizer, SchedulerOptions options);
  ~Scheduler();  // stops the worker (cancelling what is left)

  // Queues a request. Throws QueueFull when `max_queue` jobs already wait, rwkv::Error for a
  // bad request (e.g. invalid UTF-8, empty prompt), and after shutdown().
  std::shared_ptr<Job> submit(CompletionRequest request);

  // Stops accepting; lets running and queued jobs finish if `finish`, else cancels them;
  // returns when the worker has stopped.
  void shutdown(bool finish);

  Metrics metrics() const;
  const Model& model() const { return model_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }

 private:
  struct Active;
  void worker();
  void step(std::vector<std::unique_ptr<Active>>& running);
  void prepare(Active& a, std::vector<Sequence>& batch, std::vector<Active*>& in_batch,
               std::vector<std::vector<int32_t>>& chunks);
  void start_job(Active& a);
  void finish_job(Active& a, const std::string& reason);
  void cache_put(const std::string& text, const State& state);
  const State* cache_find(const std::string& text, size_t& matched);

  const Model& model_;
  const Tokenizer& tokenizer_;
  SchedulerOptions opt_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::shared_ptr<Job>, CompletionRequest>> queue_;
  bool stopping_ = false, finish_on_stop_ = true;
  Metrics metrics_;
  std::list<std::pair<std::string, State>> cache_;  // most recently used first
  std::deque<std::pair<double, uint64_t>> rate_window_;
  std::thread thread_;
};

}  // namespace rwkv::serve
