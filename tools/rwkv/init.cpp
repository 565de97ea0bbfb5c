// rwkv init: placeholder until the initialiser lands.
#include "commands.hpp"
namespace rwkv::cli {
void register_init(CLI::App&) {}
}  // namespace rwkv::cli
