// rwkv chat: a conversation in the RWKV World format ("User: …\n\nAssistant:"), one state
// carried across turns so that no turn re-reads the history (spec §8.3).
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "commands.hpp"
#include "io/error.hpp"
#include "model/state_file.hpp"
#include "sampling_flags.hpp"
#include "text/session.hpp"

namespace rwkv::cli {


void register_chat(CLI::App& app) {
  static TextFlags f;
  static std::string system;
  static GenerateOptions g;
  auto* cmd = app.add_subcommand("chat", "Chat with a model (lines from stdin are user turns)");
  add_text_flags(cmd, f);
  f.sampling.top_p = 0.3f;  // ChatRWKV's chat settings (spec §8.3)
  f.sampling.presence_penalty = 0.5f;
  f.sampling.frequency_penalty = 0.5f;
  g.max_tokens = 500;
  cmd->add_option("--system", system, "A system prompt read before the first turn");
  cmd->add_option("-n,--max-tokens", g.max_tokens, "Longest reply in tokens")->capture_default_str();
  cmd->callback([] {
    finish_text_flags(f);
    auto model = Model::load(f.model);
    auto tokenizer = resolve_tokenizer(f.tokenizer, model->weights());
    // The chat demo forbids the end-of-text token instead of stopping on it.
    f.sampling.banned.push_back(tokenizer->end_of_text());
    Session session(*model, *tokenizer, f.sampling);
    if (!f.state_in.empty()) session.restore(load_state_file(f.state_in, *model));
    if (!system.empty()) session.feed_text("System: " + clean_chat_text(system) + "\n\n");
    g.stop = {"\n\n"};
    g.stop_at_end_of_text = false;
    const bool interactive = ::isatty(STDIN_FILENO);
    std::string line;
    while (true) {
      if (interactive) {
        std::printf("User: ");
        std::fflush(stdout);
      }
      if (!std::getline(std::cin, line) || line == "/exit") break;
      const std::string message = clean_chat_text(line);
      if (message.empty()) continue;
      check_utf8(message, "message");
      session.feed_text("User: " + message + "\n\nAssistant:");
      std::printf("Assistant:");
      const GenerateResult r = session.generate(g, [](const std::string& text) {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
      });
      // Keep the history well-formed when the reply ended without its blank line.
      if (r.stopped_by != "stop string") session.feed_text("\n\n");
      std::printf("\n\n");
      std::fflush(stdout);
    }
    if (!f.state_out.empty()) save_state_file(f.state_out, *model, session.save());
  });
}

}  // namespace rwkv::cli
