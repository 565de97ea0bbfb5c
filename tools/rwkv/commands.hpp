// Subcommands of the rwkv program. Each registers its flags and a callback on the CLI11 app.
#pragma once
#include <CLI/CLI.hpp>

namespace rwkv::cli {

void register_commands(CLI::App& app);

void register_info(CLI::App& app);
void register_logits(CLI::App& app);
void register_convert(CLI::App& app);
void register_quantize(CLI::App& app);
void register_init(CLI::App& app);
void register_tokenize(CLI::App& app);  // tokenize and detokenize
void register_generate(CLI::App& app);
void register_chat(CLI::App& app);
void register_serve(CLI::App& app);
void register_bench(CLI::App& app);
void register_perplexity(CLI::App& app);
void register_tokenize_dataset(CLI::App& app);
void register_train(CLI::App& app);

}  // namespace rwkv::cli
