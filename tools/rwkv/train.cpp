// placeholder
#include "commands.hpp"
namespace rwkv::cli {
void register_train(CLI::App&) {}
}  // namespace rwkv::cli
