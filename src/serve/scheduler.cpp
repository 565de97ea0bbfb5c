// Continuous batching over forward_batch, and the state cache.
#include "serve/scheduler.hpp"

#include <chrono>
#include <filesystem>
#include <functional>

#include "io/error.hpp"
#include "model/state_file.hpp"
#include "text/text_stream.hpp"

namespace rwkv::serve {

// ---- Job: the handler's side of a request

bool Job::next(Event& out, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return !events_.empty(); })) return false;
  out = std::move(events_.front());
  events_.pop_front();
  return true;
}

void Job::cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
}

bool Job::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

void Job::push(Event e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

// ---- the worker's side

struct Scheduler::Active {
  std::shared_ptr<Job> job;
  CompletionRequest req;
  State state;
  std::vector<int32_t> pending;  // tokens still to read (prompt, or the turn suffix when caching)
  std::string read_text;         // the text the state has read, for the cache key
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<TextStream> stream;
  std::vector<float> logits;
  int32_t to_feed = -1;          // the token sampled last step, read in this step
  int prompt_tokens = 0, generated = 0;
  bool caching = false;          // reading the turn suffix after the reply, for the cache
  std::string finish_reason;
};

namespace {
template <typename Jobs>
size_t unfinished(const Jobs& running) {
  size_t n = 0;
  for (const auto& a : running) n += a->finish_reason.empty();
  return n;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
std::string cache_file_name(const std::string& text) {
  return std::to_string(std::hash<std::string>{}(text)) + ".state";
}
}  // namespace

Scheduler::Scheduler(const Model& model, const Tokenizer& tokenizer, SchedulerOptions options)
    : model_(model), tokenizer_(tokenizer), opt_(std::move(options)) {
  if (opt_.parallel < 1 || opt_.max_queue < 0 || opt_.prefill_chunk < 1 || opt_.cache_entries < 0)
    fail("scheduler: parallel and prefill chunk must be at least 1, queue and cache sizes not negative");
  if (!opt_.state_dir.empty()) {
    std::filesystem::create_directories(opt_.state_dir);
    for (const auto& entry : std::filesystem::directory_iterator(opt_.state_dir)) {
      if (entry.path().extension() != ".state") continue;
      try {  // states of another model, or damaged files, are skipped
        SavedState s = load_state_file(entry.path().string(), model_);
        if (static_cast<int>(cache_.size()) < opt_.cache_entries) cache_.emplace_back(s.label, std::move(s.state));
      } catch (const Error&) {
      }
    }
  }
  thread_ = std::thread([this] { worker(); });
}

Scheduler::~Scheduler() { shutdown(false); }

std::shared_ptr<Job> Scheduler::submit(CompletionRequest request) {
  check_utf8(request.prompt, "prompt");
  if (request.prompt.empty()) fail("empty prompt");
  if (request.max_tokens < 0) fail("max_tokens must not be negative");
  Sampler probe(request.sampling, nullptr);  // validates the settings now, in the caller's thread
  (void)probe;
  for (const std::string& s : request.stop)
    if (s.empty()) fail("empty stop string");
  auto job = std::make_shared<Job>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) throw QueueFull("the server is shutting down");
    if (static_cast<int>(queue_.size()) >= opt_.max_queue) throw QueueFull("too many requests are waiting");
    queue_.emplace_back(job, std::move(request));
    metrics_.requests_total++;
    metrics_.queued = queue_.size();
  }
  cv_.notify_all();
  return job;
}

void Scheduler::shutdown(bool finish) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    finish_on_stop_ = finish;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Metrics Scheduler::metrics() const {
  std::lock_guard<std::mutex> lock(mu_);
  return metrics_;
}

const State* Scheduler::cache_find(const std::string& text, size_t& matched) {
  // Longest cached text that is a proper prefix of `text` (something must remain to read).
  auto best = cache_.end();
  for (auto it = cache_.begin(); it != cache_.end(); ++it)
    if (it->first.size() < text.size() && text.compare(0, it->first.size(), it->first) == 0 &&
        (best == cache_.end() || it->first.size() > best->first.size()))
      best = it;
  if (best == cache_.end()) return nullptr;
  cache_.splice(cache_.begin(), cache_, best);  // most recently used
  matched = cache_.front().first.size();
  return &cache_.front().second;
}

void Scheduler::cache_put(const std::string& text, const State& state) {
  if (opt_.cache_entries == 0 || text.empty()) return;
  for (auto it = cache_.begin(); it != cache_.end(); ++it)
    if (it->first == text) {
      cache_.erase(it);
      break;
    }
  cache_.emplace_front(text, state);
  while (static_cast<int>(cache_.size()) > opt_.cache_entries) {
    if (!opt_.state_dir.empty())
      std::filesystem::remove(std::filesystem::path(opt_.state_dir) / cache_file_name(cache_.back().first));
    cache_.pop_back();
  }
  if (!opt_.state_dir.empty()) {
    try {
      save_state_file((std::filesystem::path(opt_.state_dir) / cache_file_name(text)).string(), model_,
                      {state, {}, {}, text});
    } catch (const Error&) {  // a full disk must not stop serving
    }
  }
}

void Scheduler::start_job(Active& a) {
  size_t matched = 0;
  const State* cached = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cached = cache_find(a.req.prompt, matched);
    a.state = cached ? *cached : model_.new_state();
    cached ? metrics_.cache_hits++ : metrics_.cache_misses++;
  }
  a.pending = tokenizer_.encode(std::string_view(a.req.prompt).substr(matched));
  a.prompt_tokens = static_cast<int>(tokenizer_.encode(a.req.prompt).size());
  a.read_text = a.req.prompt;
  a.sampler = std::make_unique<Sampler>(a.req.sampling, &tokenizer_);
  a.stream = std::make_unique<TextStream>(a.req.stop);
  std::lock_guard<std::mutex> lock(mu_);
  metrics_.prompt_tokens_total += a.prompt_tokens;
  metrics_.prompt_tokens_read += a.pending.size();
  metrics_.prompt_tokens_cached += a.prompt_tokens - a.pending.size();
}

void Scheduler::finish_job(Active& a, const std::string& reason) {
  a.finish_reason = reason;
  const std::string rest = a.stream->flush();
  if (!rest.empty()) a.job->push({Event::Kind::Text, rest, "", 0, 0, ""});
  {  // counters first, so that a client that reads /metrics after its reply sees them
    std::lock_guard<std::mutex> lock(mu_);
    metrics_.completion_tokens_total += a.generated;
    if (metrics_.running > 0) metrics_.running--;
  }
  a.job->push({Event::Kind::Done, "", reason, a.prompt_tokens, a.generated, ""});
}

// Decides what job `a` does in this step: sample its next token from the last logits (and
// maybe finish), then add what it reads (a prompt chunk or that token) to the batch.
void Scheduler::prepare(Active& a, std::vector<Sequence>& batch, std::vector<Active*>& in_batch,
                        std::vector<std::vector<int32_t>>& chunks) {
  if (a.job->cancelled() && !a.caching) {
    a.finish_reason = "cancelled";
    std::lock_guard<std::mutex> lock(mu_);
    metrics_.requests_cancelled++;
    return;
  }
  if (a.pending.empty() && !a.logits.empty() && !a.caching) {
    std::string reason;
    if (a.generated >= a.req.max_tokens) {
      reason = "length";
    } else {
      // Sample the next token from last step's logits.
      std::vector<float> l = a.logits;
      const int32_t token = a.sampler->sample(l);
      if (a.req.stop_at_end_of_text && token == tokenizer_.end_of_text()) {
        reason = "stop";
      } else {
        a.sampler->accept(token);
        a.generated++;
        const std::string bytes = tokenizer_.token_bytes(token);
        const std::string text = a.stream->add(bytes);
        if (!text.empty()) a.job->push({Event::Kind::Text, text, "", 0, 0, ""});
        if (a.stream->stopped()) {
          reason = "stop";
        } else if (a.generated >= a.req.max_tokens) {
          reason = "length";
        } else {
          a.to_feed = token;
          a.read_text += bytes;
        }
      }
    }
    if (!reason.empty()) {
      finish_job(a, reason);
      if (!a.req.cache_reply) return;
      // Read the rest of the turn so that the cached state matches the conversation text a
      // follow-up request sends back: prompt + reply + suffix.
      const std::string fed = a.read_text.substr(a.req.prompt.size());
      const std::string tail = a.stream->text() + a.req.turn_suffix;
      // No cache when the reply was cut inside a token, or the read part ends inside a
      // character (the rest is then not text a tokenizer can read).
      if (tail.compare(0, fed.size(), fed) != 0 || complete_utf8_prefix(fed) != fed.size() ||
          sanitize_utf8(fed) != fed)
        return;
      a.caching = true;
      a.read_text = a.req.prompt + tail;
      a.pending = tokenizer_.encode(tail.substr(fed.size()));
      if (a.pending.empty()) {
        std::lock_guard<std::mutex> lock(mu_);
        cache_put(a.read_text, a.state);
        a.caching = false;
        return;
      }
    }
  }
  // What this job reads in this step: a prompt (or suffix) chunk, or its last token.
  std::vector<int32_t> toks;
  if (!a.pending.empty()) {
    const size_t n = std::min(a.pending.size(), static_cast<size_t>(opt_.prefill_chunk));
    toks.assign(a.pending.begin(), a.pending.begin() + static_cast<long>(n));
    a.pending.erase(a.pending.begin(), a.pending.begin() + static_cast<long>(n));
  } else if (a.to_feed >= 0) {
    toks.push_back(a.to_feed);
    a.to_feed = -1;
  } else {
    return;
  }
  chunks.push_back(std::move(toks));
  a.logits.resize(model_.hparams().vocab_size);
  const bool want_logits = a.pending.empty() && !a.caching;
  batch.push_back({&a.state, chunks.back(), want_logits ? Logits::Last : Logits::None, a.logits.data()});
  in_batch.push_back(&a);
}

void Scheduler::step(std::vector<std::unique_ptr<Active>>& running) {
  std::vector<Sequence> batch;
  std::vector<Active*> in_batch;
  std::vector<std::vector<int32_t>> chunks;  // keeps the token spans alive
  chunks.reserve(running.size());
  for (auto& ap : running) {
    Active& a = *ap;
    try {
      prepare(a, batch, in_batch, chunks);
    } catch (const std::exception& e) {  // one bad job must not take the server down
      a.job->push({Event::Kind::Error, "", "", 0, 0, e.what()});
      a.finish_reason = "error";
      a.caching = false;
      std::lock_guard<std::mutex> lock(mu_);
      metrics_.requests_failed++;
    }
  }
  if (!batch.empty()) {
    try {
      model_.forward_batch(batch);
    } catch (const std::exception& e) {
      for (Active* a : in_batch) {
        a->job->push({Event::Kind::Error, "", "", 0, 0, e.what()});
        a->finish_reason = "error";
      }
      std::lock_guard<std::mutex> lock(mu_);
      metrics_.requests_failed += in_batch.size();
    }
    std::lock_guard<std::mutex> lock(mu_);
    metrics_.steps++;
    for (Active* a : in_batch) {
      if (a->caching) {
        if (a->pending.empty() || a->finish_reason == "error") {  // the turn suffix is read
          if (a->finish_reason != "error") cache_put(a->read_text, a->state);
          a->caching = false;
        }
      } else if (a->finish_reason.empty() && a->pending.empty() && a->generated == 0) {
        cache_put(a->req.prompt, a->state);  // the prompt's state, for later requests sharing it
      }
    }
  }
  // Leave: finished jobs free their slot.
  size_t out = 0;
  for (auto& ap : running) {
    if (!ap->finish_reason.empty() && !ap->caching) continue;
    running[out++] = std::move(ap);
  }
  running.resize(out);
}

void Scheduler::worker() {
  std::vector<std::unique_ptr<Active>> running;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || !running.empty(); });
      if (stopping_ && !finish_on_stop_) {
        for (auto& [job, req] : queue_) job->push({Event::Kind::Error, "", "", 0, 0, "the server is shutting down"});
        for (auto& a : running) a->job->push({Event::Kind::Error, "", "", 0, 0, "the server is shutting down"});
        queue_.clear();
        break;
      }
      if (stopping_ && queue_.empty() && running.empty()) break;
      // Join: queued jobs take free slots between steps.
      while (!queue_.empty() && static_cast<int>(running.size()) < opt_.parallel) {
        auto a = std::make_unique<Active>();
        a->job = queue_.front().first;
        a->req = std::move(queue_.front().second);
        queue_.pop_front();
        running.push_back(std::move(a));
        lock.unlock();
        try {
          start_job(*running.back());
        } catch (const std::exception& e) {
          running.back()->job->push({Event::Kind::Error, "", "", 0, 0, e.what()});
          running.pop_back();
        }
        lock.lock();
      }
      metrics_.queued = queue_.size();
      metrics_.running = unfinished(running);
    }
    step(running);
    std::lock_guard<std::mutex> lock(mu_);
    // tokens/s over the last 5 seconds (sampled tokens, counted when their job finishes or now)
    const double t = now_s();
    uint64_t generated_now = 0;
    for (const auto& a : running)
      if (a->finish_reason.empty()) generated_now += static_cast<uint64_t>(a->generated);
    rate_window_.emplace_back(t, metrics_.completion_tokens_total + generated_now);
    while (rate_window_.size() > 2 && rate_window_.front().first < t - 5) rate_window_.pop_front();
    const double span = rate_window_.back().first - rate_window_.front().first;
    metrics_.tokens_per_second =
        span > 0 ? static_cast<double>(rate_window_.back().second - rate_window_.front().second) / span : 0;
    metrics_.running = unfinished(running);
  }
}

}  // namespace rwkv::serve
