// Shared flags of the text commands.
#include "sampling_flags.hpp"

#include "io/error.hpp"

namespace rwkv::cli {

void add_text_flags(CLI::App* cmd, TextFlags& f) {
  cmd->add_option("-m,--model", f.model, "Model file (.pth, rwkv.cpp .bin, .gguf)")->required();
  cmd->add_option("--tokenizer", f.tokenizer, "world, 20b, bytes or a vocabulary file (default: from the vocabulary size)");
  SamplerOptions& s = f.sampling;
  cmd->add_option("--temperature", s.temperature, "Sampling temperature; 0 = greedy")->capture_default_str();
  cmd->add_option("--top-p", s.top_p, "Nucleus sampling threshold; 1 = off")->capture_default_str();
  cmd->add_option("--top-k", s.top_k, "Keep the k most likely tokens; 0 = off")->capture_default_str();
  cmd->add_option("--min-p", s.min_p, "Drop tokens below min-p x the top probability; 0 = off")->capture_default_str();
  cmd->add_option("--presence-penalty", s.presence_penalty, "Subtracted once from the logit of every seen token")->capture_default_str();
  cmd->add_option("--frequency-penalty", s.frequency_penalty, "Subtracted per (decayed) occurrence")->capture_default_str();
  cmd->add_option("--penalty-decay", s.penalty_decay, "Occurrence counts are multiplied by this after each token")->capture_default_str();
  cmd->add_option("--repeat-penalty", s.repetition_penalty, "llama.cpp-style repetition penalty; 1 = off")->capture_default_str();
  cmd->add_option("--repeat-last-n", s.repetition_window, "Tokens the repetition penalty looks back on")->capture_default_str();
  cmd->add_option("--ban", f.ban, "Comma-separated token ids never to sample");
  cmd->add_option("--seed", s.seed, "Random seed (same seed, same output)")->capture_default_str();
  cmd->add_option("--state-in", f.state_in, "Continue from a saved state file");
  cmd->add_option("--state-out", f.state_out, "Save the final state to this file");
}

void finish_text_flags(TextFlags& f) {
  f.sampling.banned.clear();
  std::string item;
  for (size_t i = 0; i <= f.ban.size(); ++i) {
    if (i == f.ban.size() || f.ban[i] == ',') {
      if (!item.empty()) {
        if (item.size() > 9 || item.find_first_not_of("0123456789") != std::string::npos)
          fail("invalid token id '", item, "' in --ban");
        f.sampling.banned.push_back(std::stoi(item));
      }
      item.clear();
    } else {
      item += f.ban[i];
    }
  }
}

}  // namespace rwkv::cli
