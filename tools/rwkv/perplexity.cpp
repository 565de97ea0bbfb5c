// rwkv perplexity: mean loss and perplexity of a model on a text file, over fresh-state
// windows of --ctx tokens (the convention is in model/perplexity.hpp).
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "commands.hpp"
#include "io/error.hpp"
#include "kernels/cpu/ops.hpp"
#include "model/perplexity.hpp"
#include "text/tokenizer.hpp"

namespace rwkv::cli {
namespace {

struct PerplexityOptions {
  std::string model, text_file, tokenizer;
  int64_t ctx = 512, windows = 0;  // signed, so that -1 is refused
  int threads = 0;
  bool json = false;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (ss.str().empty()) fail(path, ": empty text");
  return ss.str();
}

void run_perplexity(const PerplexityOptions& o) {
  if (o.ctx < 2) fail("--ctx must be at least 2");
  if (o.windows < 0) fail("--windows must not be negative");
  const size_t ctx = static_cast<size_t>(o.ctx), max_windows = static_cast<size_t>(o.windows);
  if (o.threads < 0) fail("--threads must not be negative");
  const std::string text = read_text(o.text_file);
  cpu::set_threads(o.threads);
  auto model = Model::load(o.model);
  auto tokenizer = resolve_tokenizer(o.tokenizer, model->weights());
  const std::vector<int32_t> tokens = tokenizer->encode(text);

  const bool tty = ::isatty(STDERR_FILENO);
  const auto t0 = std::chrono::steady_clock::now();
  const PerplexityResult r =
      evaluate_perplexity(*model, tokens, ctx, max_windows, [tty](size_t done, size_t total, const PerplexityResult& p) {
        if (!tty) return;
        std::fprintf(stderr, "\rwindow %zu/%zu, perplexity %.4f ", done, total, p.perplexity());
        if (done == total) std::fprintf(stderr, "\n");
        std::fflush(stderr);
      });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Bytes of the scored tokens (every window's tokens but its first), for bits per byte.
  size_t bytes = 0;
  for (size_t w = 0; w < r.windows; ++w)
    for (size_t i = w * ctx + 1; i < std::min(tokens.size(), (w + 1) * ctx); ++i)
      bytes += tokenizer->token_bytes(tokens[i]).size();
  const double bits_per_byte = bytes ? r.total_nll / std::log(2.0) / static_cast<double>(bytes) : 0;
  const double tokens_per_s = seconds > 0 ? static_cast<double>(r.tokens_scored) / seconds : 0;

  if (o.json) {
    std::printf("{\"tokens\": %zu, \"ctx\": %zu, \"windows\": %zu, \"tokens_scored\": %zu, \"mean_nll\": %.9g, "
                "\"perplexity\": %.9g, \"bits_per_byte\": %.9g, \"tokens_per_s\": %.6g}\n",
                tokens.size(), ctx, r.windows, r.tokens_scored, r.mean_nll(), r.perplexity(), bits_per_byte,
                tokens_per_s);
    return;
  }
  std::printf("tokens:          %zu (%s tokenizer)\n", tokens.size(), tokenizer->name().c_str());
  std::printf("windows:         %zu of up to %zu tokens, each from a fresh state\n", r.windows, ctx);
  std::printf("tokens scored:   %zu\n", r.tokens_scored);
  std::printf("mean loss:       %.6f nats/token\n", r.mean_nll());
  std::printf("perplexity:      %.6f\n", r.perplexity());
  std::printf("bits per byte:   %.6f\n", bits_per_byte);
  std::printf("speed:           %.1f tokens/s\n", tokens_per_s);
}

}  // namespace

void register_perplexity(CLI::App& app) {
  static PerplexityOptions o;
  auto* cmd = app.add_subcommand("perplexity", "Mean loss and perplexity of a model on a text file");
  cmd->add_option("-m,--model", o.model, "Model file (.pth, rwkv.cpp .bin, .gguf)")->required();
  cmd->add_option("-f,--file", o.text_file, "Text file to score")->required();
  cmd->add_option("--ctx", o.ctx, "Tokens per window; each window starts from a fresh state")->capture_default_str();
  cmd->add_option("--tokenizer", o.tokenizer, "world, 20b, bytes or a vocabulary file (default: from the vocabulary size)");
  cmd->add_option("--windows", o.windows, "Score only the first N windows (0 = all)")->capture_default_str();
  cmd->add_option("--threads", o.threads, "Threads for the matrix products (0 = one per physical core)")->capture_default_str();
  cmd->add_flag("--json", o.json, "Print one JSON object instead of the table");
  cmd->callback([] { run_perplexity(o); });
}

}  // namespace rwkv::cli
