// rwkv convert IN OUT.gguf: write any supported model file as GGUF (placeholder until the GGUF writer lands).
#include "commands.hpp"
#include "io/error.hpp"

namespace rwkv::cli {
void register_convert(CLI::App&) {}
void register_init(CLI::App&) {}
}  // namespace rwkv::cli
