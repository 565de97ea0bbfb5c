// Training checkpoints: a GGUF file that is the model (it loads wherever a model does) plus
// the AdamW moments as float64 tensors and the run's state and settings as `training.*`
// metadata (docs/FORMATS.md). Written atomically; enough to continue bit-identically.
#pragma once
#include <cstdint>
#include <string>

#include "model/weights.hpp"
#include "train/optimizer.hpp"
#include "train/rng.hpp"
#include "train/train_model.hpp"
#include "train/train_options.hpp"

namespace rwkv::train {

// Where a run stands, besides its weights and moments.
struct TrainingState {
  int64_t step = 0;          // optimizer steps completed
  Rng::State rng{};          // the data sampler's generator, after the last batch drawn
  double elapsed_s = 0;      // training time so far, over every resumed part
  uint64_t data_tokens = 0;  // size and fingerprint of the token stream (Dataset::fingerprint)
  uint64_t data_fingerprint = 0;
};

void save_checkpoint(const std::string& path, const TrainModel<float>& model, const AdamW<float>& optimizer,
                     const TrainOptions& options, const TrainingState& state);

struct Checkpoint {
  Weights weights;  // the model, as weights_from_gguf reads it
  TrainOptions options;  // the fields that decide the result; run-control fields are left default
  TrainingState state;
  std::string path;
};

// Reads a checkpoint; throws rwkv::Error naming the file when it is not one (a plain model
// file has no training.* keys) or is damaged.
Checkpoint load_checkpoint(const std::string& path);

// Sets the optimizer's moments and step count from the checkpoint's tensors, by parameter
// name; throws rwkv::Error when one is missing or has another size.
void restore_optimizer(const std::string& path, const Parameters<float>& params, AdamW<float>& optimizer);

}  // namespace rwkv::train
