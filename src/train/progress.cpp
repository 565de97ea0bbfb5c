// Progress display and CSV log of training.
#include "train/progress.hpp"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>
#include <vector>

#include "io/error.hpp"

namespace rwkv::train {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long long s = std::llround(seconds);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s / 60 % 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%llds", s);
  return buf;
}

ProgressPrinter::ProgressPrinter(std::FILE* out, bool tty, int64_t every)
    : out_(out), tty_(tty), every_(every > 0 ? every : 1) {}

std::string ProgressPrinter::line(const StepReport& r) const {
  const double loss = std::accumulate(recent_.begin(), recent_.end(), 0.0) / double(recent_.size());
  char val[32] = "-";
  if (last_val_ >= 0) std::snprintf(val, sizeof val, "%.4f", last_val_);
  char buf[256];
  std::snprintf(buf, sizeof buf, "step %lld/%lld  loss %.4f  val %s  lr %.2e  %.0f tok/s  %.2f GFLOP/s  ETA %s",
                static_cast<long long>(r.step), static_cast<long long>(r.steps), loss, val, r.lr, r.tokens_per_s,
                r.gflops, format_duration(r.eta_s).c_str());
  return buf;
}

void ProgressPrinter::step(const StepReport& r) {
  recent_.push_back(r.loss);
  while (int64_t(recent_.size()) > every_) recent_.pop_front();
  const bool validated = !std::isnan(r.val_loss);
  if (validated) last_val_ = r.val_loss;
  const bool last = r.step == r.steps;
  if (tty_) {
    // A validation result stays on screen as a line of its own; the rest is rewritten.
    std::fprintf(out_, "\r%s\x1b[K%s", line(r).c_str(), validated || last ? "\n" : "");
    line_open_ = !(validated || last);
  } else if (r.step % every_ == 0 || validated || last) {
    std::fprintf(out_, "%s\n", line(r).c_str());
  }
  std::fflush(out_);
}

void ProgressPrinter::message(const std::string& text) {
  if (line_open_) std::fprintf(out_, "\r\x1b[K");
  line_open_ = false;
  std::fprintf(out_, "%s\n", text.c_str());
  std::fflush(out_);
}

namespace {
constexpr const char* kHeader = "step,loss,val_loss,lr,grad_norm,tokens_per_s,gflop_s,elapsed_s";
}

CsvLog::CsvLog(const std::string& path, int64_t resume_step) : path_(path) {
  std::vector<std::string> kept;
  if (resume_step > 0) {
    std::ifstream in(path);
    std::string row;
    bool header = true;
    while (std::getline(in, row)) {
      if (header) {
        header = false;
        continue;
      }
      if (std::atoll(row.c_str()) <= resume_step) kept.push_back(row);
    }
  }
  file_ = std::fopen(path.c_str(), "w");
  if (!file_) fail(path, ": cannot create the log: ", std::strerror(errno));
  std::fprintf(file_, "%s\n", kHeader);
  for (const std::string& row : kept) std::fprintf(file_, "%s\n", row.c_str());
  std::fflush(file_);
}

CsvLog::~CsvLog() {
  if (file_) std::fclose(file_);
}

void CsvLog::write(const StepReport& r) {
  char val[32] = "";
  if (!std::isnan(r.val_loss)) std::snprintf(val, sizeof val, "%.6f", r.val_loss);
  std::fprintf(file_, "%lld,%.6f,%s,%.6e,%.6f,%.1f,%.3f,%.3f\n", static_cast<long long>(r.step), r.loss, val, r.lr,
               r.grad_norm, r.tokens_per_s, r.gflops, r.elapsed_s);
  if (std::fflush(file_) != 0) fail(path_, ": write failed: ", std::strerror(errno));
}

}  // namespace rwkv::train
