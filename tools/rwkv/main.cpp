// The `rwkv` command-line program: a thin layer over librwkv. Each subcommand parses its
// flags, calls the library, and turns any error into one line on stderr and exit code 1.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <iostream>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "commands.hpp"
#include "io/error.hpp"

int main(int argc, char** argv) {
#ifdef __GLIBC__
  // A long prompt's per-layer buffers are megabytes each. By default glibc hands such blocks
  // back to the system when they are freed, and the next layer faults in fresh zeroed pages:
  // that cost RWKV-4 prefill over a quarter of its time. Blocks up to 32 MB come from the heap,
  // and up to 256 MB of freed heap is kept for reuse.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
  CLI::App app{"rwkv: run, convert and create RWKV language models (RWKV-4, 5, 6, 7)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "rwkv 0.1.0");
  rwkv::cli::register_commands(app);
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands({})) known |= sub->get_name() == argv[1];
    if (!known) {
      std::fprintf(stderr, "rwkv: error: unknown command '%s' (see rwkv --help)\n", argv[1]);
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "rwkv: error: %s (see rwkv --help)\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rwkv: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
