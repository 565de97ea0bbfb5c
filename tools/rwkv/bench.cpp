// rwkv bench: decode and prefill speed of a model on random tokens, set against what the
// machine can do (DRAM read bandwidth for decoding, fp32 FMA peak for prefill).
//
// Decode reads every used weight once per step (RNN mode; with --batch B, B states advance
// together and still read the weights once), so its floor is weight bytes per token divided
// by the bandwidth. Prefill is matrix work: 2 FLOPs per matrix parameter per token (the head
// only once, for the last token's logits); element-wise work (norms, token shift, WKV) is not
// counted, so the GFLOP/s figure understates the work slightly.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "commands.hpp"
#include "io/error.hpp"
#include "kernels/cpu/ops.hpp"
#include "model/model.hpp"
#include "perf/machine.hpp"

namespace rwkv::cli {
namespace {

struct BenchFlags {
  std::string model;
  int threads = 0;
  int64_t decode = 128, prefill = 512, batch = 1, probe_mib = 1024, repeat = 3;  // signed: -1 is refused
  bool json = false;
};

// The flags once checked.
struct BenchOptions {
  std::string model;
  int threads;
  size_t decode, prefill, batch, probe_bytes, repeat;
  bool json;
};

using clock = std::chrono::steady_clock;
double seconds_since(clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); }

// One status line on stderr, rewritten at most ten times a second, only on a terminal.
class Status {
 public:
  Status() : tty_(::isatty(STDERR_FILENO)) {}
  ~Status() { clear(); }
  void show(const char* what, size_t done, size_t total) {
    if (!tty_ || (seconds_since(last_) < 0.1 && done < total)) return;
    last_ = clock::now();
    std::fprintf(stderr, "\r%s %zu/%zu   ", what, done, total);
    std::fflush(stderr);
    shown_ = true;
  }
  void show(const char* what) {
    if (!tty_) return;
    std::fprintf(stderr, "\r%-40s", what);
    std::fflush(stderr);
    shown_ = true;
  }
  void clear() {
    if (shown_) std::fprintf(stderr, "\r%-40s\r", "");
    shown_ = false;
  }

 private:
  bool tty_, shown_ = false;
  clock::time_point last_ = clock::now();
};

struct Measured {
  double decode_s = 0, prefill_s = 0, bandwidth_gb_s = 0, fma_gflop_s = 0;
  double decode_bandwidth_gb_s = 0;  // the higher of the two readings around the fastest decode repeat
  std::vector<double> repeat_s, readings_gb_s;  // each decode repeat; the readings before, between and after them
  size_t peak_rss = 0, decode_peak_rss = 0, huge_page_bytes = 0;
};

Measured measure(const Model& model, const BenchOptions& o, int threads) {
  const size_t V = model.hparams().vocab_size, B = o.batch;
  std::mt19937 rng(20240601);  // fixed: every run reads the same tokens
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(V - 1));
  Measured m;
  Status status;

  if (o.decode > 0) {
    std::vector<State> states;
    for (size_t b = 0; b < B; ++b) states.push_back(model.new_state());
    std::vector<int32_t> ids(B);
    std::vector<float> logits(B * V);
    auto step = [&] {
      for (auto& id : ids) id = pick(rng);
      if (B == 1) return model.forward(states[0], ids, Logits::Last, logits.data());
      std::vector<Sequence> seqs;
      for (size_t b = 0; b < B; ++b) seqs.push_back({&states[b], {&ids[b], 1}, Logits::Last, &logits[b * V]});
      model.forward_batch(seqs);
    };
    status.show("decode: warm-up");
    for (int i = 0; i < 2; ++i) step();  // page in the weights, size the buffers
    // A reading of the bandwidth before the first repeat and after each one, so that every
    // repeat is set against the memory it ran with: on a shared machine the neighbours come
    // and go within seconds (the memory of our sessions' guests switched between two states,
    // 40-48 and 61-71 GB/s), and a ratio against a reading taken a minute away measures that
    // switch, not the decode. The higher of the two readings around a repeat is its bandwidth.
    // In a child process, so that the peak memory reported stays the model's; after each
    // reading one untimed step.
    auto probe = [&] {
      status.show("machine: read bandwidth");
      const double gb_s = perf::read_bandwidth_gb_s_in_child(threads, o.probe_bytes, 1);
      m.bandwidth_gb_s = std::max(m.bandwidth_gb_s, gb_s);
      return gb_s;
    };
    double before = probe();
    m.readings_gb_s.push_back(before);
    for (size_t rep = 0; rep < o.repeat; ++rep) {  // the fastest of the repeats, as the probes do
      step();
      const auto t0 = clock::now();
      for (size_t i = 0; i < o.decode; ++i) {
        step();
        status.show("decode", rep * o.decode + i + 1, o.repeat * o.decode);
      }
      const double s = seconds_since(t0), after = probe();
      m.repeat_s.push_back(s);
      m.readings_gb_s.push_back(after);
      if (rep == 0 || s < m.decode_s) {
        m.decode_s = s;
        m.decode_bandwidth_gb_s = std::max(before, after);
      }
      before = after;
    }
    m.decode_peak_rss = perf::peak_rss_bytes();  // before prefill's buffers
  }

  if (o.prefill > 0) {
    std::vector<int32_t> ids(o.prefill);
    for (auto& id : ids) id = pick(rng);
    std::vector<float> logits(V);
    status.show("prefill: warm-up");
    State warm = model.new_state();
    model.forward(warm, ids, Logits::Last, logits.data());
    for (size_t rep = 0; rep < o.repeat; ++rep) {
      status.show("machine: FMA peak");
      m.fma_gflop_s = std::max(m.fma_gflop_s, perf::fma_peak_gflop_s(threads, 3));  // (as for the decode)
      status.show("prefill", rep, o.repeat);
      State state = model.new_state();
      const auto t0 = clock::now();
      model.forward(state, ids, Logits::Last, logits.data());
      const double s = seconds_since(t0);
      m.prefill_s = rep == 0 ? s : std::min(m.prefill_s, s);
    }
  }

  m.peak_rss = perf::peak_rss_bytes();  // before the bandwidth probe's buffer
  m.huge_page_bytes = perf::huge_page_bytes();
  // Each probe in two more rounds, the best reading of all kept: on a shared machine one round
  // can coincide with another guest holding a core or the memory for all of its runs, and a
  // low reading of the machine would flatter the ratios set against it (the prefill's; and the
  // decode's second one, against the run's best reading).
  for (int round = 0; round < 2; ++round) {
    status.show("machine: read bandwidth");
    m.bandwidth_gb_s = std::max(m.bandwidth_gb_s, perf::read_bandwidth_gb_s(threads, o.probe_bytes, 5));
    status.show("machine: FMA peak");
    m.fma_gflop_s = std::max(m.fma_gflop_s, perf::fma_peak_gflop_s(threads, 10));
  }
  return m;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string integer(size_t v) { return std::to_string(v); }

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

BenchOptions check(const BenchFlags& f) {
  if (f.threads < 0) fail("--threads must not be negative");
  if (f.decode < 0) fail("--decode must not be negative");
  if (f.prefill < 0) fail("--prefill must not be negative");
  if (f.batch < 1) fail("--batch must be at least 1");
  if (f.decode == 0 && f.prefill == 0) fail("nothing to measure (--decode and --prefill are both 0)");
  if (f.probe_mib < 1) fail("--probe-mib must be at least 1");
  if (f.repeat < 1) fail("--repeat must be at least 1");
  const int threads = f.threads > 0 ? f.threads : rwkv::cpu::physical_cores();
  return {f.model,
          threads,
          static_cast<size_t>(f.decode),
          static_cast<size_t>(f.prefill),
          static_cast<size_t>(f.batch),
          static_cast<size_t>(f.probe_mib) << 20,
          static_cast<size_t>(f.repeat),
          f.json};
}

void run_bench(const BenchOptions& o) {
  const int threads = o.threads;
  cpu::set_threads(threads);
  auto model = Model::load(o.model);
  const Hparams& hp = model->hparams();
  const Measured m = measure(*model, o, threads);

  const double bytes = static_cast<double>(model->weight_bytes_per_token());
  const double head = static_cast<double>(hp.vocab_size) * hp.n_embd;
  const double matrix = static_cast<double>(model->matrix_parameter_count());
  const double B = static_cast<double>(o.batch);
  const bool dec = o.decode > 0, pre = o.prefill > 0;
  const double step_s = dec ? m.decode_s / static_cast<double>(o.decode) : 0;
  const double decode_tok_s = dec ? B / step_s : 0;
  const double decode_gb_s = dec ? bytes / step_s / 1e9 : 0;  // weights are read once per step
  // Against the readings around the fastest repeat (the floor of the memory it ran with), and
  // against the run's best reading (stricter where the memory's speed changed during the run).
  const double decode_bw = m.decode_bandwidth_gb_s > 0 ? m.decode_bandwidth_gb_s : m.bandwidth_gb_s;
  const double decode_pct = dec ? 100 * decode_gb_s / decode_bw : 0;
  const double decode_pct_best = dec ? 100 * decode_gb_s / m.bandwidth_gb_s : 0;
  const double P = static_cast<double>(o.prefill);
  const double prefill_tok_s = pre ? P / m.prefill_s : 0;
  const double prefill_gflop_s = pre ? 2 * ((matrix - head) * P + head) / m.prefill_s / 1e9 : 0;
  const double prefill_pct = pre ? 100 * prefill_gflop_s / m.fma_gflop_s : 0;
  // The prefill's float16/bfloat16 products on bfloat16 dot products (twice the fp32 FMA rate per
  // instruction, so over 100 % of the fp32 peak is possible): judged by the output matrix.
  const Tensor* out_matrix = model->weights().tensors.find("output.weight");
  const bool bf16_dots = out_matrix && cpu::bf16_dots(out_matrix->dtype);
  const char* arithmetic = bf16_dots ? "bf16 dot products" : "fp32 FMA";

  if (o.json) {
    auto opt = [](bool have, double v) { return have ? number(v) : std::string("null"); };
    const std::vector<std::pair<const char*, std::string>> fields = {
        {"model", json_string(o.model)},
        {"version", json_string(hp.version_name())},
        {"n_layer", integer(hp.n_layer)},
        {"n_embd", integer(hp.n_embd)},
        {"vocab_size", integer(hp.vocab_size)},
        {"parameters", integer(model->parameter_count())},
        {"matrix_parameters", integer(model->matrix_parameter_count())},
        {"threads", integer(threads)},
        {"batch", integer(o.batch)},
        {"repeat", integer(o.repeat)},
        {"decode_steps", integer(o.decode)},
        {"decode_tok_s", opt(dec, decode_tok_s)},
        {"decode_ms_per_token", opt(dec, step_s * 1e3)},
        {"decode_gb_s", opt(dec, decode_gb_s)},
        {"decode_pct_of_bandwidth_floor", opt(dec, decode_pct)},
        {"decode_bandwidth_gb_s", opt(dec, decode_bw)},
        {"decode_pct_of_best_bandwidth", opt(dec, decode_pct_best)},
        {"prefill_tokens", integer(o.prefill)},
        {"prefill_tok_s", opt(pre, prefill_tok_s)},
        {"prefill_gflop_s", opt(pre, prefill_gflop_s)},
        {"prefill_pct_of_fp32_peak", opt(pre, prefill_pct)},
        {"prefill_arithmetic", json_string(arithmetic)},
        {"weight_bytes_per_token", integer(model->weight_bytes_per_token())},
        {"peak_rss_bytes", integer(m.peak_rss)},
        {"decode_peak_rss_bytes", dec ? integer(m.decode_peak_rss) : std::string("null")},
        {"huge_page_bytes", integer(m.huge_page_bytes)},
        {"bandwidth_gb_s", number(m.bandwidth_gb_s)},
        {"fma_peak_gflop_s", number(m.fma_gflop_s)},
        {"fma_isa", json_string(perf::fma_isa())},
    };
    std::string out = "{";
    for (const auto& [key, value] : fields) out += (out.size() > 1 ? ", \"" : "\"") + std::string(key) + "\": " + value;
    std::printf("%s}\n", out.c_str());
    return;
  }
  std::printf("model      %s: RWKV-%s, %d layers, width %d, vocabulary %zu, %.1fM parameters\n", o.model.c_str(),
              hp.version_name().c_str(), hp.n_layer, hp.n_embd, static_cast<size_t>(hp.vocab_size),
              static_cast<double>(model->parameter_count()) / 1e6);
  std::printf("setup      threads %d, batch %zu, weights read per token %.1f MB, fastest of %zu runs\n", threads,
              o.batch, bytes / 1e6, o.repeat);
  if (dec) {
    std::printf("decode     %8.2f ms/step  %9.1f tokens/s  %7.2f GB/s    %5.1f%% of bandwidth floor  (%zu steps)\n",
                step_s * 1e3, decode_tok_s, decode_gb_s, decode_pct, o.decode);
    std::printf("           DRAM read around the fastest repeat %.2f GB/s; %.1f%% of the run's best reading\n", decode_bw,
                decode_pct_best);
    std::string repeats, readings;
    for (double s : m.repeat_s) repeats += (repeats.empty() ? "" : ", ") + fixed(s / static_cast<double>(o.decode) * 1e3, 2);
    for (double r : m.readings_gb_s) readings += (readings.empty() ? "" : ", ") + fixed(r, 1);
    std::printf("repeats    %s ms/step; DRAM read before, between and after them %s GB/s\n", repeats.c_str(),
                readings.c_str());
  }
  if (pre)
    std::printf("prefill    %8.1f tokens/s  %7.2f GFLOP/s  %5.1f%% of fp32 peak  (%zu tokens, %s)\n", prefill_tok_s,
                prefill_gflop_s, prefill_pct, o.prefill, arithmetic);
  std::printf("machine    DRAM read %.2f GB/s, fp32 FMA peak %.1f GFLOP/s (%s), threads %d\n", m.bandwidth_gb_s,
              m.fma_gflop_s, perf::fma_isa().c_str(), threads);
  std::printf("memory     peak RSS %.1f MB", static_cast<double>(m.peak_rss) / 1e6);
  if (m.decode_peak_rss) std::printf(" (%.1f MB after decode)", static_cast<double>(m.decode_peak_rss) / 1e6);
  std::printf("; on 2 MB pages %.1f MB\n", static_cast<double>(m.huge_page_bytes) / 1e6);
}

}  // namespace

void register_bench(CLI::App& app) {
  static BenchFlags o;
  auto* cmd = app.add_subcommand("bench", "Measure decode and prefill speed against the machine's bandwidth and FMA peak");
  cmd->add_option("-m,--model", o.model, "Model file (.pth, rwkv.cpp .bin, .gguf)")->required();
  cmd->add_option("--threads", o.threads, "Threads for the model and the machine probes (0 = one per physical core)")
      ->capture_default_str();
  cmd->add_option("--decode", o.decode, "Decode steps to time (RNN mode; 0 = skip)")->capture_default_str();
  cmd->add_option("--prefill", o.prefill, "Tokens of the timed prefill (sequence mode; 0 = skip)")->capture_default_str();
  cmd->add_option("--batch", o.batch, "Independent states advanced together in each decode step")->capture_default_str();
  cmd->add_option("--repeat", o.repeat, "Times each measurement is repeated; the fastest is reported (as for the probes)")
      ->capture_default_str();
  cmd->add_option("--probe-mib", o.probe_mib, "Buffer of the bandwidth probe in MiB (must exceed the caches)")
      ->capture_default_str();
  cmd->add_flag("--json", o.json, "Print one JSON object instead of the table");
  cmd->callback([] { run_bench(check(o)); });
}

}  // namespace rwkv::cli
