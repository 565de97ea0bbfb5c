// --tokenizer of convert, quantize and init.
#include "tokenizer_flag.hpp"

#include <cstdio>

#include "text/tokenizer_gguf.hpp"

namespace rwkv::cli {

void add_tokenizer_flag(CLI::App* cmd, std::string& spec) {
  cmd->add_option("--tokenizer", spec,
                  "Tokenizer the GGUF file carries: world, 20b, bytes or a vocabulary file (default: the input's own, "
                  "else chosen from the vocabulary size)");
}

void attach_tokenizer_or_warn(Weights& w, const std::string& spec, const std::string& model_path) {
  const std::string warning = attach_tokenizer(w, spec, model_path);
  if (!warning.empty()) std::fprintf(stderr, "rwkv: warning: %s\n", warning.c_str());
}

}  // namespace rwkv::cli
