// rwkv init: create a new model with the official initialisation (spec §7) and save it as GGUF.
#include <cstdio>

#include "commands.hpp"
#include "model/gguf_model.hpp"
#include "model/init.hpp"
#include "model/model.hpp"
#include "tokenizer_flag.hpp"

namespace rwkv::cli {

void register_init(CLI::App& app) {
  static std::string arch, out, dtype = "f32", tokenizer;
  static InitOptions o;
  auto* cmd = app.add_subcommand("init", "Create a new model with the official initialisation, saved as GGUF");
  cmd->add_option("--arch", arch, "rwkv4 or rwkv7")->required()->check(CLI::IsMember({"rwkv4", "rwkv7"}));
  cmd->add_option("--layers", o.n_layer, "Number of layers")->required();
  cmd->add_option("--embd", o.n_embd, "Width (n_embd)")->required();
  cmd->add_option("--vocab", o.vocab_size, "Vocabulary size")->required();
  cmd->add_option("--head-size", o.head_size, "RWKV-7 head size (default 64)");
  cmd->add_option("--ffn", o.dim_ffn, "Channel-mix width (default 4 x embd)");
  cmd->add_option("--seed", o.seed, "Random seed (default 0)");
  cmd->add_option("--dtype", dtype, "Type of the large matrices: f32 (default), f16 or bf16")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}));
  cmd->add_option("-o,--output", out, "GGUF file to write")->required();
  add_tokenizer_flag(cmd, tokenizer);
  cmd->callback([] {
    o.arch = arch == "rwkv4" ? Arch::RWKV4 : Arch::RWKV7;
    Weights w = init_weights(o);
    const size_t params = Model::from_weights(w)->parameter_count();
    w.path = out;
    attach_tokenizer_or_warn(w, tokenizer, out);
    save_gguf(w, out, save_type_from_string(dtype));
    std::fprintf(stderr, "wrote %s: %s, %d layers, width %d, vocabulary %d, %zu parameters\n", out.c_str(),
                 arch.c_str(), o.n_layer, o.n_embd, o.vocab_size, params);
  });
}

}  // namespace rwkv::cli
