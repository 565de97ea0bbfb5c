// The training loop: model, data, AdamW, schedule, validation, log, checkpoints, export.
#include "train/trainer.hpp"

#include <malloc.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>

#include "io/error.hpp"
#include "kernels/cpu/thread_pool.hpp"
#include "model/gguf_model.hpp"
#include "model/init.hpp"
#include "model/state_dict.hpp"
#include "text/tokenizer.hpp"
#include "train/checkpoint.hpp"
#include "train/data_parallel.hpp"
#include "train/dataset.hpp"
#include "train/optimizer.hpp"
#include "train/progress.hpp"
#include "train/schedule.hpp"
#include "train/train_model.hpp"

namespace rwkv::train {

std::string default_path(const std::string& output, const std::string& suffix) {
  const std::string base = output.ends_with(".gguf") ? output.substr(0, output.size() - 5) : output;
  return base + suffix;
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kDefaultSteps = 2000;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

void check_options(const TrainOptions& o) {
  auto at_least = [](const char* flag, int64_t v, int64_t min) {
    if (v < min) fail(flag, " must be at least ", min, ", not ", v);
  };
  if (o.output.empty()) fail("-o/--output is required");
  if (o.data.empty()) fail("--data is required");
  at_least("--ctx", o.ctx, 1);
  at_least("--batch", o.batch, 1);
  at_least("--steps", o.steps, 1);
  at_least("--warmup", o.warmup, 0);
  at_least("--val-every", o.val_every, 0);
  at_least("--val-batches", o.val_batches, 0);
  at_least("--checkpoint-every", o.checkpoint_every, 0);
  at_least("--log-every", o.log_every, 1);
  at_least("--stop-at", o.stop_at, 0);
  at_least("--threads", o.threads, 0);
  if (!(o.lr >= 0) || !(o.lr_final >= 0)) fail("--lr and --lr-final must not be negative");
  if (!(o.weight_decay >= 0)) fail("--weight-decay must not be negative");
  if (!(o.grad_clip >= 0)) fail("--grad-clip must not be negative (0 = no clipping)");
  if (!(o.val_fraction >= 0 && o.val_fraction < 1)) fail("--val-fraction must be in [0, 1), not ", o.val_fraction);
  schedule_kind_from_string(o.schedule);
  if (!o.arch.empty() && o.arch != "rwkv4" && o.arch != "rwkv7")
    fail("unknown --arch '", o.arch, "' (expected rwkv4 or rwkv7)");
}

Arch arch_of(const std::string& s) { return s == "rwkv4" ? Arch::RWKV4 : Arch::RWKV7; }
std::string arch_name(Arch a) { return a == Arch::RWKV4 ? "rwkv4" : "rwkv7"; }

// The starting weights: a checkpoint's, a model file's (fine-tuning) or new ones.
Weights starting_weights(TrainOptions& o, const Checkpoint* ckpt, size_t vocab_size) {
  if (ckpt) return ckpt->weights;
  if (!o.init.empty()) {
    Weights w = load_weights(o.init);
    if (w.hp.arch != Arch::RWKV4 && w.hp.arch != Arch::RWKV7)
      fail(o.init, ": an RWKV-", w.hp.version_name(), " model cannot be trained (RWKV-4 and RWKV-7 can)");
    if (!o.arch.empty() && arch_of(o.arch) != w.hp.arch)
      fail(o.init, ": the model is RWKV-", w.hp.version_name(), ", not --arch ", o.arch);
    if (o.n_layer > 0 && o.n_layer != w.hp.n_layer)
      fail(o.init, ": the model has ", w.hp.n_layer, " layers, not --layers ", o.n_layer);
    if (o.n_embd > 0 && o.n_embd != w.hp.n_embd)
      fail(o.init, ": the model has width ", w.hp.n_embd, ", not --embd ", o.n_embd);
    o.arch = arch_name(w.hp.arch);
    return w;
  }
  if (o.arch.empty()) fail("--arch is required for a new model (rwkv4 or rwkv7), or give --init MODEL");
  if (o.n_layer < 1 || o.n_embd < 1) fail("--layers and --embd are required for a new model (or give --init MODEL)");
  InitOptions io;
  io.arch = arch_of(o.arch);
  io.n_layer = int(o.n_layer);
  io.n_embd = int(o.n_embd);
  io.head_size = int(o.head_size);
  io.vocab_size = int(vocab_size);
  io.seed = o.seed;
  if (io.arch == Arch::RWKV4) io.emb_scale = float(o.lr);  // spec §7.1: uniform ±lr_init
  Weights w = init_weights(io);
  w.path = o.output;
  return w;
}

// Parameters of the matrix products (projections, low-rank paths, head), for FLOP counts.
size_t matrix_parameter_count(const Parameters<float>& params) {
  static const std::regex matrix(
      R"(output\.weight|blk\.\d+\.(time_mix_(receptance|key|value|output|[wavg][12])|channel_mix_(key|value|receptance))\.weight)");
  size_t n = 0;
  for (const Parameter<float>& p : params.all())
    if (std::regex_match(p.name, matrix)) n += p.size();
  return n;
}

std::string count_string(double n) {
  char buf[32];
  if (n >= 1e9) std::snprintf(buf, sizeof buf, "%.2fB", n / 1e9);
  else if (n >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else if (n >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

// The options of a resumed run: the checkpoint's, with the run-control fields of `given`.
TrainOptions resumed_options(const Checkpoint& c, const TrainOptions& given) {
  TrainOptions o = c.options;
  if (given.steps > 0) o.steps = given.steps;
  if (!given.data.empty()) o.data = given.data;
  o.output = given.output;
  o.export_pth = given.export_pth;
  o.checkpoint = given.checkpoint;
  o.checkpoint_every = given.checkpoint_every;
  o.resume = given.resume;
  o.log = given.log;
  o.log_every = given.log_every;
  o.stop_at = given.stop_at;
  o.threads = given.threads;
  o.val_every = given.val_every;
  return o;
}

}  // namespace

TrainResult train(const TrainOptions& given, const TrainCallbacks& cb) {
  auto note = [&](const std::string& s) {
    if (cb.on_message) cb.on_message(s);
  };
  std::optional<Checkpoint> ckpt;
  if (!given.resume.empty()) ckpt = load_checkpoint(given.resume);
  TrainOptions o = ckpt ? resumed_options(*ckpt, given) : given;
  if (o.steps == 0) o.steps = kDefaultSteps;
  check_options(o);
  const std::string ckpt_path = o.checkpoint.empty() ? default_path(o.output, ".ckpt.gguf") : o.checkpoint;
  const std::string log_path = o.log.empty() ? default_path(o.output, ".csv") : o.log;
  cpu::set_threads(o.threads);
  // Every step allocates and frees the same large activation buffers. By default glibc maps
  // and unmaps each one, and the kernel's page faults and zeroing of fresh pages cost ~10 %
  // of a step; kept in the heap, they are reused.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);

  // ---- tokenizer and model
  std::unique_ptr<Tokenizer> tokenizer;
  if (!o.tokenizer.empty()) {
    tokenizer = resolve_tokenizer(o.tokenizer, 0, "");
  } else if (!ckpt && o.init.empty()) {
    fail("--tokenizer is required for a new model (world, 20b, bytes or a vocabulary file)");
  }
  Weights start = starting_weights(o, ckpt ? &*ckpt : nullptr, tokenizer ? tokenizer->vocab_size() : 0);
  const std::string model_path = ckpt ? ckpt->path : o.init;
  if (!tokenizer) tokenizer = resolve_tokenizer("", size_t(start.hp.vocab_size), model_path);
  if (tokenizer->vocab_size() > size_t(start.hp.vocab_size))
    fail("the ", tokenizer->name(), " tokenizer has ", tokenizer->vocab_size(), " tokens but the model's vocabulary is ",
         start.hp.vocab_size);
  // One model replica per thread, each on its share of the batch's sequences (data_parallel).
  const size_t replicas = std::min<size_t>(size_t(cpu::thread_count()), size_t(o.batch));
  DataParallel parallel(start, replicas);
  TrainModel<float>& model = parallel.model();
  const Hparams hp = model.hparams();
  Parameters<float>& params = model.parameters();

  // ---- data
  Corpus corpus = read_corpus(o.data, *tokenizer, cb.on_reading);
  const size_t B = size_t(o.batch), T = size_t(o.ctx);
  Dataset data(std::move(corpus.tokens), o.val_fraction, T, size_t(hp.vocab_size), o.data);
  const size_t val_windows = data.validation_windows(size_t(o.val_batches) * B);
  {
    std::ostringstream s;
    s << "data: " << o.data << ": " << data.size() << " tokens (" << tokenizer->name() << " tokenizer, "
      << corpus.document_sizes.size() << " documents); training " << data.train_size() << ", validation "
      << data.validation_size() << " (" << val_windows << " windows of " << T << ")";
    note(s.str());
  }
  TrainingState state;
  if (ckpt) {
    state = ckpt->state;
    if (state.data_tokens != data.size() || state.data_fingerprint != data.fingerprint())
      fail(o.data, ": the data differs from the checkpoint's (", data.size(), " tokens now, ", state.data_tokens,
           " then)");
  } else {
    state.rng = Rng(o.seed ^ 0x5eed'da7a'0000'0001ULL).state();
    state.data_tokens = data.size();
    state.data_fingerprint = data.fingerprint();
  }
  Rng rng = Rng::from_state(state.rng);

  // ---- optimizer
  AdamW<float> optimizer(params, hp.arch, official_adamw_options(hp.arch, o.weight_decay));
  if (ckpt) restore_optimizer(ckpt->path, params, optimizer);
  const LrSchedule schedule{schedule_kind_from_string(o.schedule), o.lr, o.lr_final, o.warmup, o.steps};
  const double matrix_flops = 6.0 * double(matrix_parameter_count(params)) * double(B * T);
  {
    std::ostringstream s;
    s << "model: RWKV-" << hp.version_name() << ", " << hp.n_layer << " layers, width " << hp.n_embd;
    if (hp.arch == Arch::RWKV7) s << ", head size " << hp.head_size;
    s << ", vocabulary " << hp.vocab_size << ": " << count_string(double(params.value_count())) << " parameters";
    if (ckpt) s << " (resumed from " << ckpt->path << " at step " << state.step << ")";
    else if (!o.init.empty()) s << " (from " << o.init << ")";
    else s << " (new, seed " << o.seed << ")";
    note(s.str());
    std::ostringstream t;
    t << "training: " << o.steps << " steps of " << B << " x " << T << " tokens, lr " << o.lr << " -> " << o.lr_final
      << " (" << o.schedule << ", warmup " << o.warmup << "), weight decay " << o.weight_decay << ", grad clip "
      << o.grad_clip << ", " << cpu::thread_count() << " threads (" << replicas << " model replicas)";
    note(t.str());
  }

  TrainResult result;
  result.step = state.step;
  result.loss = kNaN;
  result.val_loss = kNaN;
  auto save = [&](bool final_one) {
    state.rng = rng.state();
    save_checkpoint(ckpt_path, model, optimizer, o, state);
    result.written.push_back(ckpt_path);
    if (!final_one) note("checkpoint: " + ckpt_path + " (step " + std::to_string(state.step) + ")");
  };
  auto validate = [&]() {
    if (val_windows == 0) return kNaN;
    std::vector<int32_t> in, tg;
    double sum = 0;
    for (size_t first = 0; first < val_windows; first += B) {
      const size_t count = std::min(B, val_windows - first);
      data.validation_batch(val_windows, first, count, in, tg);
      sum += parallel.loss(Batch{count, T, in, tg}, false).cross_entropy * double(count);
    }
    return sum / double(val_windows);
  };

  // ---- the loop
  CsvLog csv(log_path, state.step);
  const int64_t end = o.stop_at > 0 ? std::min(o.stop_at, o.steps) : o.steps;
  const int64_t val_every = o.val_every > 0 ? o.val_every : std::max<int64_t>(1, o.steps / 20);
  const int64_t first_step = state.step;
  const auto run_start = Clock::now();
  const double elapsed_before = state.elapsed_s;
  double train_seconds = 0;
  std::vector<int32_t> inputs, targets;
  while (state.step < end) {
    const auto t0 = Clock::now();
    data.training_batch(rng, B, inputs, targets);
    params.zero_grad();
    const LossValue loss = parallel.forward_backward(Batch{B, T, inputs, targets});
    if (!std::isfinite(loss.cross_entropy)) fail("training diverged at step ", state.step + 1, " (loss ", loss.cross_entropy, "); lower --lr");
    const double norm =
        clip_gradient_norm(params, o.grad_clip > 0 ? o.grad_clip : std::numeric_limits<double>::infinity());
    const double lr = learning_rate(schedule, state.step);
    optimizer.step(lr);
    ++state.step;
    const auto t1 = Clock::now();
    const double dt = seconds(t0, t1);
    train_seconds += dt;

    const bool stopping = cb.stop_requested && cb.stop_requested() && state.step < end;
    StepReport r;
    r.step = state.step;
    r.steps = o.steps;
    r.loss = loss.cross_entropy;
    r.val_loss = state.step % val_every == 0 || state.step == end || stopping ? validate() : kNaN;
    r.lr = lr;
    r.grad_norm = norm;
    r.tokens_per_s = double(B * T) / dt;
    r.gflops = matrix_flops / dt / 1e9;
    const double run_seconds = seconds(run_start, Clock::now());
    r.elapsed_s = elapsed_before + run_seconds;
    r.eta_s = run_seconds / double(state.step - first_step) * double(end - state.step);
    state.elapsed_s = r.elapsed_s;
    csv.write(r);
    if (cb.on_step) cb.on_step(r);
    result.step = state.step;
    result.loss = r.loss;
    if (!std::isnan(r.val_loss)) result.val_loss = r.val_loss;
    if (o.checkpoint_every > 0 && state.step % o.checkpoint_every == 0 && state.step < end) save(false);
    if (stopping) {
      note("stopped at step " + std::to_string(state.step) + "; continue with --resume " + ckpt_path);
      break;
    }
  }
  if (train_seconds > 0) {
    result.tokens_per_s = double(state.step - first_step) * double(B * T) / train_seconds;
    result.gflops = double(state.step - first_step) * matrix_flops / train_seconds / 1e9;
  }

  // ---- the end: a checkpoint, the model
  save(true);
  Weights w = model.to_weights();
  w.path = o.output;
  save_gguf(w, o.output, SaveType::F32);
  result.written.push_back(o.output);
  std::ostringstream s;
  s << "wrote " << o.output << " (step " << state.step << ")";
  if (o.export_pth) {
    const std::string pth = default_path(o.output, ".pth");
    save_pth(w, pth);
    result.written.push_back(pth);
    s << ", " << pth;
  }
  result.written.push_back(log_path);
  s << ", checkpoint " << ckpt_path << ", log " << log_path;
  note(s.str());
  return result;
}

}  // namespace rwkv::train
