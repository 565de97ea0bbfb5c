// Checkpoints and resuming (train/checkpoint, train/trainer): 20 steps, then a resume to 40,
// gives bit-identical weights, log rows and optimizer moments to 40 steps straight (one
// thread); a checkpoint loads as a model; a resume refuses other data.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "io/error.hpp"
#include "io/gguf.hpp"
#include "model/model.hpp"
#include "test_util.hpp"
#include "train/checkpoint.hpp"
#include "train/trainer.hpp"

namespace rwkv::train {
namespace {

using test::TempDir;

using test::small_corpus;

TrainOptions tiny_run(const std::string& arch, const std::string& data, const std::string& out) {
  TrainOptions o;
  o.arch = arch;
  o.n_layer = 2;
  o.n_embd = 32;
  o.head_size = 16;
  o.data = data;
  o.tokenizer = "bytes";
  o.ctx = 16;
  o.batch = 2;
  o.steps = 40;
  o.lr = 3e-3;
  o.lr_final = 3e-4;
  o.warmup = 5;
  o.val_every = 10;
  o.val_batches = 1;
  o.threads = 1;
  o.output = out;
  return o;
}

// Every tensor's bytes, by name.
std::map<std::string, std::string> tensor_bytes(const std::string& path) {
  const GgufFile f = read_gguf(path);
  std::map<std::string, std::string> out;
  for (const Tensor& t : f.tensors.tensors()) out[t.name] = std::string(reinterpret_cast<const char*>(t.data), t.nbytes());
  return out;
}

// The CSV rows without their timing columns (step, loss, val_loss, lr, grad_norm).
std::vector<std::string> log_rows(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> rows;
  std::string row;
  while (std::getline(in, row)) {
    size_t cut = 0;
    for (int commas = 0; commas < 5 && cut != std::string::npos; ++commas) cut = row.find(',', cut + 1);
    rows.push_back(row.substr(0, cut));
  }
  return rows;
}

void expect_resume_is_exact(const std::string& arch) {
  TempDir dir;
  const std::string data = small_corpus(dir);
  const TrainResult straight = train(tiny_run(arch, data, dir.file("straight.gguf")));
  EXPECT_EQ(straight.step, 40);

  TrainOptions first = tiny_run(arch, data, dir.file("part.gguf"));
  first.stop_at = 20;
  EXPECT_EQ(train(first).step, 20);
  TrainOptions second;  // only run-control fields: the rest comes from the checkpoint
  second.resume = dir.file("part.ckpt.gguf");
  second.output = dir.file("part.gguf");
  second.threads = 1;
  second.val_every = 10;
  const TrainResult resumed = train(second);
  EXPECT_EQ(resumed.step, 40);

  // The final models and checkpoints (weights and AdamW moments) are the same bytes.
  const auto a = tensor_bytes(dir.file("straight.gguf")), b = tensor_bytes(dir.file("part.gguf"));
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, bytes] : a) EXPECT_TRUE(b.count(name) && b.at(name) == bytes) << arch << " " << name;
  const auto ca = tensor_bytes(dir.file("straight.ckpt.gguf")), cb = tensor_bytes(dir.file("part.ckpt.gguf"));
  ASSERT_EQ(ca.size(), cb.size());
  size_t moments = 0;
  for (const auto& [name, bytes] : ca) {
    EXPECT_TRUE(cb.count(name) && cb.at(name) == bytes) << arch << " " << name;
    moments += name.starts_with("adam_");
  }
  EXPECT_GT(moments, 20u);
  // The log of the resumed run holds the first part's rows and then the same rows as the straight run.
  EXPECT_EQ(log_rows(dir.file("straight.csv")), log_rows(dir.file("part.csv")));
  EXPECT_EQ(log_rows(dir.file("part.csv")).size(), 41u);
  EXPECT_EQ(straight.val_loss, resumed.val_loss);
}

TEST(TrainResume, Rwkv7TwentyPlusTwentyEqualsForty) { expect_resume_is_exact("rwkv7"); }
TEST(TrainResume, Rwkv4TwentyPlusTwentyEqualsForty) { expect_resume_is_exact("rwkv4"); }

TEST(TrainResume, StopRequestEndsWithACheckpoint) {
  TempDir dir;
  TrainOptions o = tiny_run("rwkv7", small_corpus(dir), dir.file("s.gguf"));
  TrainCallbacks cb;
  int asked = 0;
  double last_val = 0;
  cb.on_step = [&](const StepReport& r) { last_val = r.val_loss; };
  cb.stop_requested = [&] { return ++asked == 2; };  // asked after each step, as Ctrl-C in rwkv train
  EXPECT_EQ(train(o, cb).step, 2);
  EXPECT_FALSE(std::isnan(last_val));  // the last step validates
  EXPECT_EQ(load_checkpoint(dir.file("s.ckpt.gguf")).state.step, 2);
  EXPECT_TRUE(std::filesystem::exists(dir.file("s.gguf")));
}

TEST(TrainResume, CheckpointIsAModelAndKeepsTheSettings) {
  TempDir dir;
  const std::string data = small_corpus(dir);
  TrainOptions o = tiny_run("rwkv7", data, dir.file("m.gguf"));
  o.steps = 3;
  o.seed = 9;
  train(o);
  const Checkpoint c = load_checkpoint(dir.file("m.ckpt.gguf"));
  EXPECT_EQ(c.state.step, 3);
  EXPECT_EQ(c.options.seed, 9u);
  EXPECT_EQ(c.options.ctx, 16);
  EXPECT_EQ(c.options.lr, 3e-3);
  EXPECT_EQ(c.options.tokenizer, "bytes");
  EXPECT_EQ(c.weights.hp.n_layer, 2);
  auto model = Model::load(dir.file("m.ckpt.gguf"));  // the extra tensors do not get in the way
  EXPECT_EQ(model->hparams().head_size, 16);

  // A plain model is not a checkpoint; a resume with other data is refused.
  EXPECT_THROW(load_checkpoint(dir.file("m.gguf")), Error);
  std::ofstream(dir.file("other.txt")) << std::string(5000, 'x');
  TrainOptions r;
  r.resume = dir.file("m.ckpt.gguf");
  r.output = dir.file("r.gguf");
  r.data = dir.file("other.txt");
  try {
    train(r);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("differs from the checkpoint"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rwkv::train
