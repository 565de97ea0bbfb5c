// --tokenizer of the commands that write GGUF files (convert, quantize, init): which tokenizer
// the file carries in its tokenizer.* metadata (text/tokenizer_gguf.hpp).
#pragma once
#include <CLI/CLI.hpp>

#include <string>

#include "model/weights.hpp"

namespace rwkv::cli {

// Adds --tokenizer world|20b|bytes|PATH|auto to `cmd`.
void add_tokenizer_flag(CLI::App* cmd, std::string& spec);
// Gives `w` the tokenizer metadata `spec` asks for (attach_tokenizer); when none can be had,
// prints a one-line warning and the file is written without it.
void attach_tokenizer_or_warn(Weights& w, const std::string& spec, const std::string& model_path);

}  // namespace rwkv::cli
