// A training run (`rwkv train`): the model (new, fine-tuned or resumed), the data, the loop
// of AdamW steps on random windows with the learning-rate schedule, validation, the CSV log,
// checkpoints and the exported model. The CLI only parses flags; tests call train() directly.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "train/train_options.hpp"

namespace rwkv::train {

// What one optimizer step did (reported after every step).
struct StepReport {
  int64_t step = 0, steps = 0;  // steps completed, and the run's total
  double loss = 0;              // mean cross-entropy of this step's batch (nats per token)
  double val_loss = 0;          // NaN unless the validation loss was measured after this step
  double lr = 0, grad_norm = 0;
  double tokens_per_s = 0;  // training tokens of this step over its time (validation excluded)
  double gflops = 0;        // matrix FLOPs of this step over the same time (6 per matrix parameter per token)
  double elapsed_s = 0;     // since the start of training, over every resumed part
  double eta_s = 0;         // to the last step of this run, at the pace so far
};

struct TrainCallbacks {
  std::function<void(const StepReport&)> on_step;         // after every step
  std::function<void(const std::string&)> on_message;     // one-line notes: data, model, files written
  std::function<void(uint64_t done, uint64_t total)> on_reading;  // tokenizing a text corpus
  // Asked after every step; true ends the run there as --stop-at would (checkpoint, model).
  std::function<bool()> stop_requested;
};

struct TrainResult {
  int64_t step = 0;      // steps completed
  double loss = 0;       // of the last step (NaN when no step ran)
  double val_loss = 0;   // the last validation loss (NaN when there is none)
  double tokens_per_s = 0;  // training tokens over training time, this run
  double gflops = 0;
  std::vector<std::string> written;  // files, in the order written
};

// The paths a run writes by default, from the output path OUT: OUT without ".gguf" + suffix.
std::string default_path(const std::string& output, const std::string& suffix);

// Runs training as the options say; throws rwkv::Error (one line) for bad options, data or
// files. With `resume`, the options that decide the result (model, data, tokenizer,
// optimisation, seed) come from the checkpoint; `steps` and `data` from `o` when set (non-zero,
// non-empty; a longer run changes the schedule from then on), and the run-control fields
// always from `o`.
TrainResult train(const TrainOptions& o, const TrainCallbacks& callbacks = {});

}  // namespace rwkv::train
