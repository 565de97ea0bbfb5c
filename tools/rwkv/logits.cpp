// rwkv logits: run token ids through a model and write the logits as raw float32.
#include <cstdio>
#include <string>
#include <vector>

#include "commands.hpp"
#include "io/error.hpp"
#include "model/model.hpp"

namespace rwkv::cli {
namespace {

struct LogitsOptions {
  std::string model, tokens, mode = "seq", out;
  bool all = false;
};

// "34,105,110" -> {34, 105, 110}; anything else is an error.
std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    const std::string item = s.substr(i, j - i);
    if (item.empty() || item.size() > 10 || item.find_first_not_of("0123456789") != std::string::npos)
      fail("invalid token id '", item, "' in '", s, "' (expected comma-separated non-negative integers)");
    const long long v = std::stoll(item);
    if (v > INT32_MAX) fail("token id ", item, " is too large");
    ids.push_back(static_cast<int32_t>(v));
    i = j + 1;
  }
  return ids;
}

void run_logits(const LogitsOptions& o) {
  const auto ids = parse_ids(o.tokens);
  auto model = Model::load(o.model);
  const size_t V = model->hparams().vocab_size, T = ids.size();
  std::vector<float> logits((o.all ? T : 1) * V);
  State state = model->new_state();
  if (o.mode == "seq") {
    model->forward(state, ids, o.all ? Logits::All : Logits::Last, logits.data());
  } else {
    for (size_t t = 0; t < T; ++t) {
      const bool keep = o.all || t + 1 == T;
      model->forward(state, {&ids[t], 1}, keep ? Logits::Last : Logits::None,
                     keep ? &logits[(o.all ? t : 0) * V] : nullptr);
    }
  }
  FILE* f = std::fopen(o.out.c_str(), "wb");
  if (!f) fail(o.out, ": cannot open for writing");
  const size_t n = std::fwrite(logits.data(), sizeof(float), logits.size(), f);
  if (std::fclose(f) != 0 || n != logits.size()) fail(o.out, ": write failed");
}

}  // namespace

void register_logits(CLI::App& app) {
  static LogitsOptions o;
  auto* cmd = app.add_subcommand("logits", "Write the logits of a token sequence as raw little-endian float32");
  cmd->add_option("-m,--model", o.model, "Model file")->required();
  cmd->add_option("-t,--tokens", o.tokens, "Comma-separated token ids, e.g. 34,105,110")->required();
  cmd->add_option("--mode", o.mode, "rnn: one token at a time; seq: the whole sequence at once")
      ->check(CLI::IsMember({"rnn", "seq"}));
  cmd->add_flag("--all", o.all, "Write T x V logits (a row per position) instead of the last V");
  cmd->add_option("-o,--output", o.out, "Output file")->required();
  cmd->callback([] { run_logits(o); });
}

}  // namespace rwkv::cli
