// rwkv convert IN OUT.gguf: write any supported model file as GGUF, optionally changing the
// type of the large matrices; the file carries its tokenizer (tokenizer_flag.hpp).
#include <cstdio>
#include <filesystem>

#include "commands.hpp"
#include "tokenizer_flag.hpp"
#include "model/gguf_model.hpp"
#include "model/model.hpp"

namespace rwkv::cli {

void register_convert(CLI::App& app) {
  static std::string in, out, dtype = "keep", tokenizer;
  auto* cmd = app.add_subcommand("convert", "Convert a model (.pth, rwkv.cpp .bin, .gguf) to GGUF");
  cmd->add_option("input", in, "Model file to read")->required();
  cmd->add_option("output", out, "GGUF file to write")->required();
  cmd->add_option("--dtype", dtype, "Type of the large matrices: keep (as stored), f32, f16 or bf16")
      ->check(CLI::IsMember({"keep", "f32", "f16", "bf16"}));
  add_tokenizer_flag(cmd, tokenizer);
  cmd->callback([] {
    const SaveType type = save_type_from_string(dtype);
    std::fprintf(stderr, "reading %s\n", in.c_str());
    Weights w = load_weights(in);
    Model::from_weights(w);  // refuse to write a model that would not load
    attach_tokenizer_or_warn(w, tokenizer, in);
    std::fprintf(stderr, "writing %s\n", out.c_str());
    save_gguf(w, out, type);
    std::fprintf(stderr, "wrote %s: RWKV-%s, %d layers, width %d, %.1f MB\n", out.c_str(),
                 w.hp.version_name().c_str(), w.hp.n_layer, w.hp.n_embd,
                 static_cast<double>(std::filesystem::file_size(out)) / 1e6);
  });
}

}  // namespace rwkv::cli
