// rwkv train: train a new RWKV-4/RWKV-7 model, fine-tune one, or resume a checkpoint
// (train/trainer.hpp does the work; this file maps flags and shows progress).
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>

#include "commands.hpp"
#include "io/error.hpp"
#include "train/progress.hpp"
#include "train/trainer.hpp"

namespace rwkv::cli {

namespace {
// The first Ctrl-C ends the run after the current step, with a checkpoint; a second one kills.
volatile std::sig_atomic_t interrupted = 0;
void on_interrupt(int) {
  interrupted = 1;
  std::signal(SIGINT, SIG_DFL);
}
}  // namespace

void register_train(CLI::App& app) {
  static train::TrainOptions o;
  auto* cmd = app.add_subcommand("train", "Train an RWKV-4/RWKV-7 model on a text, JSONL or binidx corpus (CPU)");
  cmd->add_option("--arch", o.arch, "rwkv7 or rwkv4 (a new model; with --init it must match)");
  cmd->add_option("--layers", o.n_layer, "Layers of a new model");
  cmd->add_option("--embd", o.n_embd, "Width (n_embd) of a new model");
  cmd->add_option("--head-size", o.head_size, "RWKV-7 head size")->capture_default_str();
  cmd->add_option("--init", o.init, "Fine-tune this model (.pth, .bin, .gguf) instead of a new one");
  cmd->add_option("--data", o.data, "Corpus: text file, .jsonl (\"text\" per line) or binidx .bin/.idx");
  cmd->add_option("--tokenizer", o.tokenizer, "world, 20b, bytes or a vocabulary file");
  cmd->add_option("--ctx", o.ctx, "Tokens per training window")->capture_default_str();
  cmd->add_option("--batch", o.batch, "Windows per step")->capture_default_str();
  cmd->add_option("--steps", o.steps, "Optimizer steps (default 2000; with --resume the checkpoint's)");
  cmd->add_option("--lr", o.lr, "Initial learning rate (after warmup)")->capture_default_str();
  cmd->add_option("--lr-final", o.lr_final, "Final learning rate")->capture_default_str();
  cmd->add_option("--warmup", o.warmup, "Warmup steps")->capture_default_str();
  cmd->add_option("--schedule", o.schedule, "cosine (RWKV-7 trainer) or exp (RWKV-4 trainer)")->capture_default_str();
  cmd->add_option("--weight-decay", o.weight_decay, "AdamW weight decay of the matrices")->capture_default_str();
  cmd->add_option("--grad-clip", o.grad_clip, "Gradient-norm clipping (0 = none)")->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed of the initialisation and of the data sampling")->capture_default_str();
  cmd->add_option("--val-fraction", o.val_fraction, "Held-out tail of the data for validation")->capture_default_str();
  cmd->add_option("--val-every", o.val_every, "Steps between validations (0 = 20 per run)")->capture_default_str();
  cmd->add_option("--val-batches", o.val_batches, "Validation batches (of --batch windows)")->capture_default_str();
  cmd->add_option("--checkpoint-every", o.checkpoint_every, "Steps between checkpoints (0 = only at the end)")
      ->capture_default_str();
  cmd->add_option("--checkpoint", o.checkpoint, "Checkpoint file (default OUT.ckpt.gguf)");
  cmd->add_option("--resume", o.resume, "Continue from this checkpoint (its settings; --steps may extend the run)");
  cmd->add_option("--stop-at", o.stop_at, "Stop after this step (with a checkpoint), keeping the schedule of --steps");
  cmd->add_option("--threads", o.threads, "Threads (0 = one per physical core)")->capture_default_str();
  cmd->add_option("--log", o.log, "CSV log (default OUT.csv)");
  cmd->add_option("--log-every", o.log_every, "Steps between log lines when stderr is not a terminal")
      ->capture_default_str();
  cmd->add_flag("--export-pth", o.export_pth, "Also write the official .pth (OUT.pth)");
  cmd->add_option("-o,--output", o.output, "The trained model (GGUF)")->required();
  cmd->callback([cmd] {
    if (!o.resume.empty()) {
      // A resumed run computes what the interrupted one would have: its settings are fixed.
      for (const char* flag : {"--arch", "--layers", "--embd", "--head-size", "--init", "--tokenizer", "--ctx", "--batch",
                               "--lr", "--lr-final", "--warmup", "--schedule", "--weight-decay", "--grad-clip", "--seed",
                               "--val-fraction", "--val-batches"})
        if (cmd->count(flag)) fail(flag, " cannot be changed with --resume (the checkpoint's settings are used)");
    }
    const bool tty = ::isatty(STDERR_FILENO);
    train::ProgressPrinter printer(stderr, tty, o.log_every);
    train::TrainCallbacks cb;
    cb.on_step = [&](const train::StepReport& r) { printer.step(r); };
    cb.on_message = [&](const std::string& s) { printer.message(s); };
    if (tty)
      cb.on_reading = [](uint64_t done, uint64_t total) {
        std::fprintf(stderr, "\rtokenizing: %.1f%%", total ? 100.0 * double(done) / double(total) : 100.0);
        if (done == total) std::fprintf(stderr, "\r\x1b[K");
        std::fflush(stderr);
      };
    cb.stop_requested = [] { return interrupted != 0; };
    std::signal(SIGINT, on_interrupt);
    const train::TrainResult r = train::train(o, cb);
    std::signal(SIGINT, SIG_DFL);
    char val[32] = "-";
    if (!std::isnan(r.val_loss)) std::snprintf(val, sizeof val, "%.4f", r.val_loss);
    std::fprintf(stderr, "done: %lld steps, loss %.4f, validation loss %s, %.0f tokens/s, %.2f GFLOP/s\n",
                 static_cast<long long>(r.step), r.loss, val, r.tokens_per_s, r.gflops);
  });
}

}  // namespace rwkv::cli
