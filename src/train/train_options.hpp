// Everything a training run is configured by (the flags of `rwkv train`). Checkpoints store
// the fields that decide the result, so that a resumed run continues the same computation.
#pragma once
#include <cstdint>
#include <string>

namespace rwkv::train {

struct TrainOptions {
  // ---- the model: new (arch, n_layer, n_embd, head_size) or fine-tuned from `init`
  std::string arch;  // "rwkv4" or "rwkv7"; may be empty with `init` (then the model's)
  int64_t n_layer = 0, n_embd = 0, head_size = 64;
  std::string init;  // a model file (.pth, .bin, .gguf) to start from

  // ---- data
  std::string data;       // text, .jsonl, or binidx (.bin/.idx)
  std::string tokenizer;  // world, 20b, bytes or a vocabulary file
  double val_fraction = 0.1;
  int64_t ctx = 256, batch = 16;

  // ---- optimisation
  int64_t steps = 0;  // 0: 2000 for a new run, the checkpoint's when resuming
  double lr = 6e-4, lr_final = 6e-5;
  int64_t warmup = 10;
  std::string schedule = "cosine";  // or "exp"
  double weight_decay = 0.1, grad_clip = 1.0;  // grad_clip 0 = no clipping
  uint64_t seed = 1;

  // ---- evaluation (does not change the weights)
  int64_t val_every = 0;    // 0 = about 20 times per run
  int64_t val_batches = 4;  // batches of `batch` windows

  // ---- output and run control (not part of the computation)
  std::string output;            // final model, GGUF
  bool export_pth = false;       // also write the official .pth next to it (OUT without .gguf + .pth)
  std::string checkpoint;        // default: OUT without .gguf + .ckpt.gguf
  int64_t checkpoint_every = 0;  // 0 = only at the end
  std::string resume;            // a checkpoint to continue from
  std::string log;               // CSV log; default OUT without .gguf + .csv
  int64_t log_every = 10;        // steps between log lines when stderr is not a terminal
  int64_t stop_at = 0;           // stop (with a checkpoint) after this step, keeping the schedule of `steps`
  int threads = 0;               // 0 = one per core
};

}  // namespace rwkv::train
