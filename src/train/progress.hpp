// How a training run shows itself: a one-line display on a terminal (rewritten in place:
// step/total, loss, validation loss, tokens/s, GFLOP/s, ETA), a plain line every N steps
// otherwise, and the CSV log (one row per step) kept next to the model.
#pragma once
#include <cstdint>
#include <cstdio>
#include <deque>
#include <string>

#include "train/trainer.hpp"

namespace rwkv::train {

class ProgressPrinter {
 public:
  // `tty`: rewrite one line with \r; else print a line every `every` steps, at every
  // validation and at the last step.
  ProgressPrinter(std::FILE* out, bool tty, int64_t every);
  void step(const StepReport& r);
  void message(const std::string& text);  // a line of its own (clears the display first)

 private:
  std::string line(const StepReport& r) const;

  std::FILE* out_;
  bool tty_;
  int64_t every_;
  std::deque<double> recent_;  // losses of the last `every` steps, shown as their mean
  double last_val_ = -1;
  bool line_open_ = false;
};

// The CSV log: step,loss,val_loss,lr,grad_norm,tokens_per_s,gflop_s,elapsed_s (val_loss empty
// on steps without validation). A resumed run keeps the rows up to its first step and
// appends; every row is flushed as it is written.
class CsvLog {
 public:
  CsvLog(const std::string& path, int64_t resume_step);
  ~CsvLog();
  CsvLog(const CsvLog&) = delete;
  CsvLog& operator=(const CsvLog&) = delete;
  void write(const StepReport& r);

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// "1h02m", "3m07s", "12s".
std::string format_duration(double seconds);

}  // namespace rwkv::train
