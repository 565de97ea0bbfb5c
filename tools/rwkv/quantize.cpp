// rwkv quantize IN OUT.gguf TYPE: write any supported model file as GGUF with its large
// matrices in a ggml block type (llama.cpp's policy; docs/FORMATS.md "Quantized files").
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "commands.hpp"
#include "io/quantize.hpp"
#include "model/gguf_model.hpp"
#include "model/model.hpp"
#include "tokenizer_flag.hpp"

namespace rwkv::cli {

void register_quantize(CLI::App& app) {
  static std::string in, out, type, head_type, embd_type, tokenizer;
  static const std::vector<std::string> kTypes = {"q8_0", "q5_0", "q5_1", "q4_0", "q4_1", "q4_k",
                                                  "q5_k", "q6_k", "f16",  "bf16", "f32"};
  auto* cmd = app.add_subcommand("quantize", "Write a model (.pth, rwkv.cpp .bin, .gguf) as a quantized GGUF");
  cmd->add_option("input", in, "Model file to read")->required();
  cmd->add_option("output", out, "GGUF file to write")->required();
  cmd->add_option("type", type, "Type of the large matrices: q8_0 q5_0 q5_1 q4_0 q4_1 q4_k q5_k q6_k f16 bf16 f32")
      ->required()
      ->check(CLI::IsMember(kTypes));
  cmd->add_option("--head-type", head_type, "Type of the head (output.weight); default: TYPE")->check(CLI::IsMember(kTypes));
  cmd->add_option("--embd-type", embd_type, "Type of the embedding (token_embd.weight); default: TYPE")
      ->check(CLI::IsMember(kTypes));
  add_tokenizer_flag(cmd, tokenizer);
  cmd->callback([] {
    QuantizeTypes q;
    q.type = storable_type_from_name(type);
    q.head = head_type.empty() ? q.type : storable_type_from_name(head_type);
    q.embd = embd_type.empty() ? q.type : storable_type_from_name(embd_type);
    std::fprintf(stderr, "reading %s\n", in.c_str());
    Weights w = load_weights(in);
    Model::from_weights(w);  // refuse to write a model that would not load
    attach_tokenizer_or_warn(w, tokenizer, in);
    const bool terminal = ::isatty(STDERR_FILENO);
    std::map<std::string, size_t> counts;  // "q4_k", "q5_0 (fallback)", ...
    save_gguf(w, out, q, [&](size_t i, size_t n, const Tensor& t, DType to) {
      const DType wanted = t.name == "output.weight" ? q.head : t.name == "token_embd.weight" ? q.embd : q.type;
      const bool fallback = is_quantizable(t) && to != wanted;  // the row length does not fit `wanted`
      ++counts[std::string(dtype_name(to)) + (fallback ? " (fallback)" : "")];
      if (terminal)
        std::fprintf(stderr, "\r\033[K[%zu/%zu] %s %s %s -> %s", i + 1, n, t.name.c_str(), t.shape_string().c_str(),
                     dtype_name(t.dtype), dtype_name(to));
    });
    if (terminal) std::fprintf(stderr, "\r\033[K");
    std::string summary;
    for (const auto& [name, n] : counts) summary += (summary.empty() ? "" : ", ") + std::to_string(n) + " " + name;
    std::fprintf(stderr, "wrote %s: RWKV-%s, %d layers, width %d, %.2f MB; tensors: %s\n", out.c_str(),
                 w.hp.version_name().c_str(), w.hp.n_layer, w.hp.n_embd,
                 static_cast<double>(std::filesystem::file_size(out)) / 1e6, summary.c_str());
  });
}

}  // namespace rwkv::cli
