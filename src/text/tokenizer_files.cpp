// Choosing a tokenizer and finding its vocabulary file.
#include <cstdlib>
#include <filesystem>

#include "io/error.hpp"
#include "text/tokenizer.hpp"

namespace rwkv {

namespace {
constexpr const char* kWorldFile = "rwkv_vocab_v20230424.txt";
constexpr const char* k20bFile = "20B_tokenizer.json";

std::string find_file(const char* name, const std::string& model_path) {
  namespace fs = std::filesystem;
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("RWKV_TOKENIZER_DIR")) dirs.emplace_back(env);
  if (!model_path.empty()) dirs.push_back(fs::path(model_path).parent_path());
  dirs.emplace_back("tokenizers");
  dirs.emplace_back(".");
  std::string looked;
  for (const fs::path& d : dirs) {
    const fs::path p = (d.empty() ? fs::path(".") : d) / name;
    if (fs::is_regular_file(p)) return p.string();
    looked += (looked.empty() ? "" : ", ") + (d.empty() ? std::string(".") : d.string());
  }
  fail("tokenizer file ", name, " not found (looked in ", looked,
       "); pass its path with --tokenizer PATH or set RWKV_TOKENIZER_DIR");
}
}  // namespace

std::unique_ptr<Tokenizer> resolve_tokenizer(const std::string& spec, size_t vocab, const std::string& model_path) {
  std::string kind = spec;
  if (kind.empty() || kind == "auto") {
    if (vocab == 65536) kind = "world";
    else if (vocab == 50277) kind = "20b";
    else if (vocab == 256) kind = "bytes";
    else fail("cannot choose a tokenizer for vocabulary size ", vocab, "; pass --tokenizer world|20b|bytes|PATH");
  }
  if (kind == "bytes") return make_byte_tokenizer();
  if (kind == "world") return load_world_tokenizer(find_file(kWorldFile, model_path));
  if (kind == "20b") return load_bpe_tokenizer(find_file(k20bFile, model_path));
  if (!std::filesystem::exists(kind)) fail("unknown tokenizer '", kind, "' (expected world, 20b, bytes or a file path)");
  if (kind.size() >= 5 && kind.compare(kind.size() - 5, 5, ".json") == 0) return load_bpe_tokenizer(kind);
  return load_world_tokenizer(kind);
}

}  // namespace rwkv
