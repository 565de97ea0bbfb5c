// The `rwkv` command-line program: a thin layer over librwkv. Each subcommand parses its
// flags, calls the library, and turns any error into one line on stderr and exit code 1.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <iostream>

#include "commands.hpp"
#include "io/error.hpp"
#include "kernels/cpu/ops.hpp"

int main(int argc, char** argv) {
  CLI::App app{"rwkv: run, convert and create RWKV language models (RWKV-4, 5, 6, 7)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "rwkv 0.1.0");
  rwkv::cli::register_commands(app);
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands({})) known |= sub->get_name() == argv[1];
    if (!known) {
      std::fprintf(stderr, "rwkv: error: unknown command '%s' (see rwkv --help)\n", rwkv::one_line(argv[1]).c_str());
      return 2;
    }
  }
  try {
    rwkv::cpu::bf16_dots_mode();  // (a bad RWKV_BF16_DOTS fails every command, not only those that reach a product)
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "rwkv: error: %s (see rwkv --help)\n", rwkv::one_line(e.what()).c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rwkv: error: %s\n", rwkv::one_line(e.what()).c_str());
    return 1;
  }
  return 0;
}
