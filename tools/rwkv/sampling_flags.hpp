// Flags shared by generate and chat: sampling settings, tokenizer, state files.
#pragma once
#include <CLI/CLI.hpp>

#include <string>

#include "text/sampler.hpp"

namespace rwkv::cli {

struct TextFlags {
  std::string model, tokenizer, state_in, state_out;
  std::string ban;  // comma-separated ids
  SamplerOptions sampling;
};

// Adds -m, --tokenizer, the sampling flags and --state-in/--state-out to `cmd`.
void add_text_flags(CLI::App* cmd, TextFlags& f);
// Parses --ban into f.sampling.banned.
void finish_text_flags(TextFlags& f);

}  // namespace rwkv::cli
