// Registration of all subcommands.
#include "commands.hpp"

namespace rwkv::cli {

void register_commands(CLI::App& app) {
  register_info(app);
  register_logits(app);
  register_convert(app);
  register_quantize(app);
  register_init(app);
  register_tokenize(app);
  register_generate(app);
  register_chat(app);
  register_serve(app);
  register_perplexity(app);
  register_bench(app);
  register_tokenize_dataset(app);
  register_train(app);
}

}  // namespace rwkv::cli
