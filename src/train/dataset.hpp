// Training data: a corpus read as tokens (plain text, JSONL with a "text" field per line, or
// binidx), split into a training part and a held-out validation tail, and the windows of
// ctx + 1 tokens that batches are made of (random for training, fixed for validation).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "text/tokenizer.hpp"
#include "train/rng.hpp"
#include "train/train_model.hpp"

namespace rwkv::train {

struct Corpus {
  std::vector<int32_t> tokens;           // one flat stream
  std::vector<uint64_t> document_sizes;  // in tokens; they add up to tokens.size()
};

// Called while a text corpus is tokenized: bytes read so far of the total.
using ReadProgress = std::function<void(uint64_t done, uint64_t total)>;

// Reads `path` by its extension:
//   .bin / .idx     binidx (spec §7.4), already tokens; `tokenizer` is not used;
//   .jsonl          one JSON object per line with a string field "text": each is a document,
//                   tokenized and followed by the end-of-text token (0), as the official
//                   json2binidx tool does; blank lines are skipped;
//   anything else   plain text, tokenized as one document.
// Throws rwkv::Error for a missing or empty file, a JSONL line that is not an object with a
// "text" string (naming the line) or text the tokenizer refuses.
Corpus read_corpus(const std::string& path, const Tokenizer& tokenizer, const ReadProgress& progress = {});

// The token stream split into training tokens [0, n − n_val) and validation tokens
// [n − n_val, n), n_val = ⌊n·val_fraction⌋: the held-out part is the end of the stream.
class Dataset {
 public:
  // `what` names the data in errors. Throws rwkv::Error when a token is outside
  // [0, vocab_size), when the training part is shorter than ctx + 1 tokens, or when
  // val_fraction > 0 and the validation part is.
  Dataset(std::vector<int32_t> tokens, double val_fraction, size_t ctx, size_t vocab_size, const std::string& what);

  size_t ctx() const { return ctx_; }
  size_t size() const { return tokens_.size(); }
  size_t train_size() const { return train_; }
  size_t validation_size() const { return tokens_.size() - train_; }
  // A hash of the tokens (FNV-1a over their values), to check that a resumed run reads the same data.
  uint64_t fingerprint() const;

  // B windows of the training part, each starting at a uniform random position (RWKV-4's
  // default sampling, spec §7.4) drawn from rng: inputs/targets get B·ctx tokens.
  void training_batch(Rng& rng, size_t B, std::vector<int32_t>& inputs, std::vector<int32_t>& targets) const;

  // The validation windows: up to max_windows non-overlapping windows spread evenly over the
  // validation part (as many as fit); always the same ones.
  size_t validation_windows(size_t max_windows) const;
  // Windows [first, first + count) of the `windows` that validation_windows(windows) chose.
  void validation_batch(size_t windows, size_t first, size_t count, std::vector<int32_t>& inputs,
                        std::vector<int32_t>& targets) const;

 private:
  void window(size_t start, int32_t* inputs, int32_t* targets) const;

  std::vector<int32_t> tokens_;
  size_t train_ = 0, ctx_ = 0;
};

}  // namespace rwkv::train
