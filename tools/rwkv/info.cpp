// rwkv info MODEL: what a model file holds (version, sizes, parameter count, tensor types).
#include <cstdio>
#include <map>
#include <regex>
#include <string>

#include "commands.hpp"
#include "model/model.hpp"

namespace rwkv::cli {
namespace {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::RWKV4: return "RWKV-4";
    case Arch::RWKV5: return "RWKV-5 (Eagle)";
    case Arch::RWKV6: return "RWKV-6 (Finch)";
    case Arch::RWKV7: return "RWKV-7 (Goose, x070)";
  }
  return "?";
}

// The group a canonical tensor belongs to, for the per-group type summary.
std::string group_of(const std::string& name) {
  if (name == "token_embd.weight") return "embedding";
  if (name == "output.weight") return "head";
  static const std::regex att(R"(blk\.\d+\.time_mix_(key|value|receptance|output|gate)\.weight)");
  static const std::regex ffn(R"(blk\.\d+\.channel_mix_(key|value|receptance)\.weight)");
  static const std::regex lora(R"(blk\.\d+\.time_mix_(w1|w2|a1|a2|v1|v2|g1|g2|decay_w1|decay_w2)\.weight)");
  if (std::regex_match(name, att)) return "attention matrices";
  if (std::regex_match(name, ffn)) return "ffn matrices";
  if (std::regex_match(name, lora)) return "low-rank matrices";
  return "vectors and norms";
}

std::string thousands(size_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

// What tokenizer metadata the file carries (GGUF tokenizer.* keys), without building it.
std::string tokenizer_summary(const Weights& w) {
  if (!w.tokenizer) return "none in the file (chosen from the vocabulary size)";
  std::string model = "?";
  size_t tokens = 0;
  for (const auto& [key, value] : *w.tokenizer) {
    if (key == "tokenizer.ggml.model" && value.as_string()) model = *value.as_string();
    if (key == "tokenizer.ggml.tokens" && value.is_array()) tokens = value.array_size();
  }
  return "in the file: " + model + ", " + std::to_string(tokens) + " tokens";
}

void run_info(const std::string& path) {
  auto model = Model::load(path);
  const Weights& w = model->weights();
  const Hparams& hp = w.hp;
  std::printf("file:          %s\n", path.c_str());
  std::printf("format:        %s\n", w.format.c_str());
  std::printf("architecture:  %s, version %s\n", arch_name(hp.arch), hp.version_name().c_str());
  std::printf("layers:        %d\n", hp.n_layer);
  std::printf("width:         %d\n", hp.n_embd);
  if (hp.arch == Arch::RWKV4) std::printf("attention:     %d channels\n", hp.dim_att);
  else std::printf("heads:         %d x %d (head size)\n", hp.n_head, hp.head_size);
  std::printf("ffn width:     %d\n", hp.dim_ffn);
  std::printf("vocabulary:    %d\n", hp.vocab_size);
  std::printf("tokenizer:     %s\n", tokenizer_summary(w).c_str());
  if (hp.arch == Arch::RWKV6) std::printf("low-rank:      mix %d, decay %d\n", hp.lora_mix, hp.lora_decay);
  if (hp.arch == Arch::RWKV7)
    std::printf("low-rank:      decay %d, learning rate %d, value %d, gate %d\n", hp.lora_w, hp.lora_a, hp.lora_v, hp.lora_g);
  if (hp.arch != Arch::RWKV4) std::printf("group norm eps: %g\n", static_cast<double>(hp.group_norm_eps));
  std::printf("parameters:    %s\n", thousands(model->parameter_count()).c_str());
  std::map<std::string, std::map<std::string, int>> groups;
  for (const Tensor& t : w.tensors.tensors()) groups[group_of(t.name)][dtype_name(t.dtype)]++;
  std::printf("tensor types:\n");
  for (const auto& [group, types] : groups) {
    std::string line;
    for (const auto& [type, count] : types) line += (line.empty() ? "" : ", ") + type + " (" + std::to_string(count) + ")";
    std::printf("  %-20s %s\n", (group + ":").c_str(), line.c_str());
  }
}

}  // namespace

void register_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Print what a model file holds");
  static std::string path;
  cmd->add_option("model", path, "Model file (.pth, rwkv.cpp .bin or .gguf)")->required();
  cmd->callback([] { run_info(path); });
}

}  // namespace rwkv::cli
