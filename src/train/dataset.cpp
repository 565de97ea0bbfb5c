// Reading a corpus, the train/validation split and the windows of a batch.
#include "train/dataset.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/binidx.hpp"
#include "io/error.hpp"

namespace rwkv::train {

namespace {

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail(path, ": no such file");
  if (std::filesystem::is_directory(path, ec)) fail(path, ": is a directory, not a data file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<int32_t> encode(const Tokenizer& tokenizer, std::string_view text, const std::string& where) {
  try {
    return tokenizer.encode(text);
  } catch (const Error& e) {
    fail(where, ": ", e.what());
  }
}

Corpus read_jsonl(const std::string& path, const std::string& text, const Tokenizer& tokenizer,
                  const ReadProgress& progress) {
  Corpus c;
  size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + pos, end - pos);
    ++line_no;
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) fail(where, ": not valid JSON");
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      fail(where, ": expected a JSON object with a string field \"text\"");
    std::vector<int32_t> ids = encode(tokenizer, j["text"].get_ref<const std::string&>(), where);
    ids.push_back(tokenizer.end_of_text());
    c.tokens.insert(c.tokens.end(), ids.begin(), ids.end());
    c.document_sizes.push_back(ids.size());
    if (progress) progress(std::min(pos, text.size()), text.size());
  }
  return c;
}

}  // namespace

Corpus read_corpus(const std::string& path, const Tokenizer& tokenizer, const ReadProgress& progress) {
  if (is_binidx_path(path)) {
    Binidx b = read_binidx(binidx_prefix(path));
    if (b.tokens.empty()) fail(path, ": no tokens (empty data file)");
    return Corpus{std::move(b.tokens), std::move(b.document_sizes)};
  }
  const std::string text = read_file(path);
  if (text.empty()) fail(path, ": empty data file");
  Corpus c;
  if (path.ends_with(".jsonl")) {
    c = read_jsonl(path, text, tokenizer, progress);
  } else {
    c.tokens = encode(tokenizer, text, path);
    c.document_sizes.push_back(c.tokens.size());
    if (progress) progress(text.size(), text.size());
  }
  if (c.tokens.empty()) fail(path, ": no tokens (no text in the data file)");
  return c;
}

Dataset::Dataset(std::vector<int32_t> tokens, double val_fraction, size_t ctx, size_t vocab_size,
                 const std::string& what)
    : tokens_(std::move(tokens)), ctx_(ctx) {
  if (!(val_fraction >= 0 && val_fraction < 1)) fail("--val-fraction must be in [0, 1), not ", val_fraction);
  if (ctx == 0) fail("--ctx must be at least 1");
  for (size_t i = 0; i < tokens_.size(); ++i)
    if (tokens_[i] < 0 || size_t(tokens_[i]) >= vocab_size)
      fail(what, ": token ", i, " has id ", tokens_[i], ", outside the model's vocabulary of ", vocab_size);
  const size_t n = tokens_.size();
  const size_t n_val = size_t(double(n) * val_fraction);
  train_ = n - n_val;
  if (train_ < ctx + 1)
    fail(what, ": the training split has ", train_, " tokens, fewer than ctx + 1 = ", ctx + 1,
         " (use a smaller --ctx or more data)");
  if (val_fraction > 0 && n_val < ctx + 1)
    fail(what, ": the validation split (the last ", val_fraction, " of the data) has ", n_val,
         " tokens, fewer than ctx + 1 = ", ctx + 1, " (raise --val-fraction, lower --ctx, or use --val-fraction 0)");
}

uint64_t Dataset::fingerprint() const {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int32_t t : tokens_) {
    uint32_t v = uint32_t(t);
    for (int i = 0; i < 4; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 0x100000001b3ULL;
    }
  }
  return h;
}

void Dataset::window(size_t start, int32_t* inputs, int32_t* targets) const {
  std::copy_n(&tokens_[start], ctx_, inputs);
  std::copy_n(&tokens_[start + 1], ctx_, targets);
}

void Dataset::training_batch(Rng& rng, size_t B, std::vector<int32_t>& inputs, std::vector<int32_t>& targets) const {
  inputs.resize(B * ctx_);
  targets.resize(B * ctx_);
  for (size_t b = 0; b < B; ++b) window(size_t(rng.below(train_ - ctx_)), &inputs[b * ctx_], &targets[b * ctx_]);
}

size_t Dataset::validation_windows(size_t max_windows) const {
  const size_t n_val = validation_size();
  if (n_val < ctx_ + 1) return 0;
  return std::min(max_windows, (n_val - 1) / ctx_);
}

void Dataset::validation_batch(size_t windows, size_t first, size_t count, std::vector<int32_t>& inputs,
                               std::vector<int32_t>& targets) const {
  if (first + count > windows || windows > validation_windows(windows)) fail("validation windows out of range");
  inputs.resize(count * ctx_);
  targets.resize(count * ctx_);
  // Window i starts at an even share of the room left beside the windows, so they never overlap.
  const size_t room = validation_size() - 1 - ctx_;
  for (size_t i = 0; i < count; ++i) {
    const size_t w = first + i;
    const size_t start = train_ + (windows > 1 ? w * (room / (windows - 1)) : 0);
    window(start, &inputs[i * ctx_], &targets[i * ctx_]);
  }
}

}  // namespace rwkv::train
