// rwkv tokenize-dataset: a text or JSONL corpus to the official binidx pair (PREFIX.bin,
// PREFIX.idx; spec §7.4), which `rwkv train --data PREFIX.bin` reads without tokenizing again.
#include <unistd.h>

#include <cstdio>

#include "commands.hpp"
#include "io/binidx.hpp"
#include "io/error.hpp"
#include "text/tokenizer.hpp"
#include "train/dataset.hpp"

namespace rwkv::cli {

void register_tokenize_dataset(CLI::App& app) {
  static std::string in, out, tok;
  auto* cmd = app.add_subcommand("tokenize-dataset", "Tokenize a text or JSONL corpus into binidx files (PREFIX.bin, PREFIX.idx)");
  cmd->add_option("input", in, "Plain text file, or .jsonl with a \"text\" field per line")->required();
  cmd->add_option("output", out, "Output prefix (writes PREFIX.bin and PREFIX.idx)")->required();
  cmd->add_option("--tokenizer", tok, "world, 20b, bytes or a vocabulary file")->required();
  cmd->callback([] {
    if (is_binidx_path(in)) fail(in, ": already a binidx file");
    auto tokenizer = resolve_tokenizer(tok, 0, "");
    const bool tty = ::isatty(STDERR_FILENO);
    const train::Corpus c = train::read_corpus(in, *tokenizer, [tty](uint64_t done, uint64_t total) {
      if (!tty) return;
      std::fprintf(stderr, "\rtokenizing: %.1f%%", total ? 100.0 * double(done) / double(total) : 100.0);
      std::fflush(stderr);
    });
    if (tty) std::fprintf(stderr, "\n");
    const std::string prefix = binidx_prefix(out);
    write_binidx(prefix, c.tokens, c.document_sizes, tokenizer->vocab_size());
    std::fprintf(stderr, "wrote %s.bin and %s.idx: %zu documents, %zu tokens (%s tokenizer, %s)\n", prefix.c_str(),
                 prefix.c_str(), c.document_sizes.size(), c.tokens.size(), tokenizer->name().c_str(),
                 tokenizer->vocab_size() <= 65536 ? "uint16" : "int32");
  });
}

}  // namespace rwkv::cli
