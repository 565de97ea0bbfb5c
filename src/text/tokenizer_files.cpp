// Choosing a tokenizer and finding its vocabulary file.
#include <cstdlib>
#include <filesystem>

#include "io/error.hpp"
#include "model/weights.hpp"
#include "text/tokenizer.hpp"
#include "text/tokenizer_gguf.hpp"

namespace rwkv {

namespace {
constexpr const char* kWorldFile = "rwkv_vocab_v20230424.txt";
constexpr const char* k20bFile = "20B_tokenizer.json";

// The path of `name` in the first directory that has it, or "" with `looked` listing them.
std::string find_file(const char* name, const std::string& model_path, std::string& looked) {
  namespace fs = std::filesystem;
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("RWKV_TOKENIZER_DIR")) dirs.emplace_back(env);
  if (!model_path.empty()) dirs.push_back(fs::path(model_path).parent_path());
  dirs.emplace_back("tokenizers");
  dirs.emplace_back(".");
  for (const fs::path& d : dirs) {
    const fs::path p = (d.empty() ? fs::path(".") : d) / name;
    if (fs::is_regular_file(p)) return p.string();
    looked += (looked.empty() ? "" : ", ") + (d.empty() ? std::string(".") : d.string());
  }
  return {};
}
}  // namespace

TokenizerSource find_tokenizer(const std::string& spec, size_t vocab, const std::string& model_path) {
  std::string kind = spec;
  if (kind.empty() || kind == "auto") {
    if (vocab == 65536) kind = "world";
    else if (vocab == 50277) kind = "20b";
    else if (vocab == 256) kind = "bytes";
    else
      return {"", "", "cannot choose a tokenizer for vocabulary size " + std::to_string(vocab) +
                          "; pass --tokenizer world|20b|bytes|PATH"};
  }
  if (kind == "bytes") return {kind, "", ""};
  if (kind == "world" || kind == "20b") {
    const char* name = kind == "world" ? kWorldFile : k20bFile;
    std::string looked;
    std::string file = find_file(name, model_path, looked);
    if (file.empty())
      return {kind, "", std::string("tokenizer file ") + name + " not found (looked in " + looked +
                            "); pass its path with --tokenizer PATH or set RWKV_TOKENIZER_DIR"};
    return {kind, file, ""};
  }
  if (!std::filesystem::exists(kind)) fail("unknown tokenizer '", kind, "' (expected world, 20b, bytes or a file path)");
  const bool json = kind.size() >= 5 && kind.compare(kind.size() - 5, 5, ".json") == 0;
  return {json ? "20b" : "world", kind, ""};
}

std::unique_ptr<Tokenizer> resolve_tokenizer(const std::string& spec, size_t vocab, const std::string& model_path) {
  const TokenizerSource s = find_tokenizer(spec, vocab, model_path);
  if (!s.missing.empty()) fail(s.missing);
  if (s.kind == "bytes") return make_byte_tokenizer();
  if (s.kind == "20b") return load_bpe_tokenizer(s.file);
  return load_world_tokenizer(s.file);
}

std::unique_ptr<Tokenizer> resolve_tokenizer(const std::string& spec, const Weights& weights) {
  const size_t vocab = static_cast<size_t>(weights.hp.vocab_size);
  if ((spec.empty() || spec == "auto") && weights.tokenizer)
    return tokenizer_from_gguf(*weights.tokenizer, vocab, weights.path);
  return resolve_tokenizer(spec, vocab, weights.path);
}

}  // namespace rwkv
