// rwkv generate: read a prompt (sequence mode), then stream sampled text to stdout.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "commands.hpp"
#include "io/error.hpp"
#include "model/state_file.hpp"
#include "sampling_flags.hpp"
#include "text/tokenizer.hpp"
#include "text/session.hpp"

namespace rwkv::cli {

void register_generate(CLI::App& app) {
  static TextFlags f;
  static std::string prompt, prompt_file;
  static GenerateOptions g;
  static bool no_eot_stop = false;
  auto* cmd = app.add_subcommand("generate", "Continue a prompt with generated text");
  add_text_flags(cmd, f);
  auto* p = cmd->add_option("-p,--prompt", prompt, "The prompt");
  auto* pf = cmd->add_option("-f,--file", prompt_file, "Read the prompt from a file");
  p->excludes(pf);
  cmd->add_option("-n,--max-tokens", g.max_tokens, "Stop after this many tokens")->capture_default_str();
  cmd->add_option("--stop", g.stop, "Stop when the text contains this string (repeatable)");
  cmd->add_flag("--ignore-eot", no_eot_stop, "Do not stop at the end-of-text token");
  cmd->callback([] {
    finish_text_flags(f);
    g.stop_at_end_of_text = !no_eot_stop;
    if (g.max_tokens < 0) fail("--max-tokens must not be negative");
    if (!prompt_file.empty()) {
      std::ifstream in(prompt_file, std::ios::binary);
      if (!in) fail(prompt_file, ": cannot open");
      std::ostringstream ss;
      ss << in.rdbuf();
      prompt = ss.str();
    }
    auto model = Model::load(f.model);
    auto tokenizer = resolve_tokenizer(f.tokenizer, model->weights());
    Session session(*model, *tokenizer, f.sampling);
    check_utf8(prompt, "prompt");
    const auto prompt_ids = tokenizer->encode(prompt);
    if (!f.state_in.empty()) session.restore(load_state_file(f.state_in, *model));
    if (prompt_ids.empty() && !session.has_logits()) fail("empty prompt (give -p, -f or --state-in)");
    using steady = std::chrono::steady_clock;
    const auto t0 = steady::now();
    session.feed(prompt_ids);
    const auto t1 = steady::now();
    const GenerateResult r = session.generate(g, [](const std::string& text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    });
    const auto t2 = steady::now();
    std::printf("\n");
    std::fflush(stdout);  // the text before the speed line on a terminal
    if (!f.state_out.empty()) save_state_file(f.state_out, *model, session.save());
    const double tp = std::chrono::duration<double>(t1 - t0).count(), tg = std::chrono::duration<double>(t2 - t1).count();
    std::fprintf(stderr, "prompt: %zu tokens, %.1f tokens/s; generated: %zu tokens, %.1f tokens/s; stopped by %s\n",
                 prompt_ids.size(), prompt_ids.empty() ? 0.0 : prompt_ids.size() / tp, r.tokens.size(),
                 r.tokens.empty() ? 0.0 : r.tokens.size() / tg, r.stopped_by.c_str());
  });
}

}  // namespace rwkv::cli
