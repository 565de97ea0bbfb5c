// rwkv tokenize / detokenize: text to ids (one line, separated by spaces) and back.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "io/error.hpp"
#include "text/tokenizer.hpp"

namespace rwkv::cli {

namespace {
std::unique_ptr<Tokenizer> tokenizer_for(const std::string& spec) {
  if (spec.empty() || spec == "auto") fail("--tokenizer is required (world, 20b, bytes or a file path)");
  return resolve_tokenizer(spec, 0, "");
}
}  // namespace

void register_tokenize(CLI::App& app) {
  static std::string tok, text, file;
  auto* cmd = app.add_subcommand("tokenize", "Print the token ids of a text");
  cmd->add_option("--tokenizer", tok, "world, 20b, bytes or a vocabulary file")->required();
  auto* t = cmd->add_option("--text", text, "The text");
  auto* f = cmd->add_option("--text-file", file, "Read the text from a file");
  t->excludes(f);
  cmd->callback([] {
    auto tokenizer = tokenizer_for(tok);
    std::string input = text;
    if (!file.empty()) {
      std::ifstream in(file, std::ios::binary);
      if (!in) fail(file, ": cannot open");
      std::ostringstream ss;
      ss << in.rdbuf();
      input = ss.str();
    }
    const auto ids = tokenizer->encode(input);
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
    std::printf("%s\n", line.c_str());
  });

  static std::string dtok, ids_text;
  auto* d = app.add_subcommand("detokenize", "Print the text of token ids");
  d->add_option("--tokenizer", dtok, "world, 20b, bytes or a vocabulary file")->required();
  d->add_option("--ids", ids_text, "Token ids separated by spaces or commas")->required();
  d->callback([] {
    auto tokenizer = tokenizer_for(dtok);
    std::vector<int32_t> ids;
    std::string item;
    for (size_t i = 0; i <= ids_text.size(); ++i) {
      const char c = i < ids_text.size() ? ids_text[i] : ' ';
      if (c == ' ' || c == ',' || c == '\t' || c == '\n') {
        if (!item.empty()) {
          if (item.size() > 9 || item.find_first_not_of("0123456789") != std::string::npos)
            fail("invalid token id '", item, "'");
          ids.push_back(std::stoi(item));
        }
        item.clear();
      } else {
        item += c;
      }
    }
    const std::string out = tokenizer->decode(ids);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::printf("\n");
  });
}

}  // namespace rwkv::cli
