// Training data and schedules: learning rates at chosen steps, the binidx round trip and its
// errors, reading text and JSONL corpora, the train/validation split, and the windows of a batch.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <numbers>
#include <set>

#include "io/binidx.hpp"
#include "io/error.hpp"
#include "test_util.hpp"
#include "text/tokenizer.hpp"
#include "train/dataset.hpp"
#include "train/schedule.hpp"

namespace rwkv::train {
namespace {

using test::TempDir;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

// ---- schedules (spec §7.1, §7.2)

TEST(TrainSchedule, CosineWithWarmup) {
  LrSchedule s{ScheduleKind::Cosine, 6e-4, 6e-5, 10, 110};
  EXPECT_DOUBLE_EQ(learning_rate(s, 0), 6e-4 * 0.01);           // warmup starts at 1 %
  EXPECT_DOUBLE_EQ(learning_rate(s, 5), 6e-4 * (0.01 + 0.99 * 0.5));
  EXPECT_DOUBLE_EQ(learning_rate(s, 10), 6e-4);                 // progress 0: lr_init
  EXPECT_NEAR(learning_rate(s, 60), (6e-4 + 6e-5) / 2, 1e-15);  // halfway: the mean of the two ends
  EXPECT_NEAR(learning_rate(s, 110), 6e-5, 1e-15);              // the end: lr_final
  EXPECT_NEAR(learning_rate(s, 500), 6e-5, 1e-15);              // and it stays there
  // A quarter of the way: lr_init·((0.5 + f/2) + (0.5 − f/2)·cos(π/4)).
  const double f = 0.1;
  EXPECT_NEAR(learning_rate(s, 35), 6e-4 * ((0.5 + f / 2) + (0.5 - f / 2) * std::cos(std::numbers::pi / 4)), 1e-15);
}

TEST(TrainSchedule, ExponentialWithWarmup) {
  LrSchedule s{ScheduleKind::Exponential, 1e-3, 1e-5, 4, 104};
  // Warmup factor 0.2 + 0.8·step/warmup on top of the decayed rate (progress clamps at 0).
  EXPECT_DOUBLE_EQ(learning_rate(s, 0), 1e-3 * 0.2);
  EXPECT_DOUBLE_EQ(learning_rate(s, 2), 1e-3 * 0.6);
  // progress = (step − warmup + 1)/(total − warmup): step 53 is halfway, a factor of 10 down.
  EXPECT_NEAR(learning_rate(s, 53), 1e-4, 1e-16);
  EXPECT_NEAR(learning_rate(s, 103), 1e-5, 1e-17);
  // Equal ends: constant; a zero end: linear.
  EXPECT_DOUBLE_EQ(learning_rate({ScheduleKind::Exponential, 2e-4, 2e-4, 0, 50}, 30), 2e-4);
  EXPECT_NEAR(learning_rate({ScheduleKind::Exponential, 2e-4, 0, 0, 100}, 49), 1e-4, 1e-18);
}

TEST(TrainSchedule, NamesAndErrors) {
  EXPECT_EQ(schedule_kind_from_string("cosine"), ScheduleKind::Cosine);
  EXPECT_EQ(schedule_kind_from_string("exp"), ScheduleKind::Exponential);
  EXPECT_THROW(schedule_kind_from_string("linear"), Error);
  // A run no longer than its warmup: cosine has finished decaying after it.
  EXPECT_NEAR(learning_rate({ScheduleKind::Cosine, 1e-3, 1e-4, 10, 5}, 20), 1e-4, 1e-18);
}

// ---- binidx (spec §7.4)

TEST(TrainBinidx, RoundTripAndLayout) {
  TempDir dir;
  const std::vector<int32_t> tokens = {5, 0, 65535, 7, 7, 0, 300};
  const std::vector<uint64_t> sizes = {2, 4, 1};
  write_binidx(dir.file("d"), tokens, sizes, 65536);
  const Binidx b = read_binidx(dir.file("d"));
  EXPECT_EQ(b.tokens, tokens);
  EXPECT_EQ(b.document_sizes, sizes);
  EXPECT_EQ(b.dtype_code, 8);
  // The .bin is the tokens as uint16; the .idx header as the official reader expects.
  const auto bin = test::read_bytes(dir.file("d.bin"));
  ASSERT_EQ(bin.size(), 14u);
  EXPECT_EQ(bin[4], 0xff);
  EXPECT_EQ(bin[5], 0xff);
  const auto idx = test::read_bytes(dir.file("d.idx"));
  ASSERT_EQ(idx.size(), 9u + 8 + 1 + 8 + 8 + 3 * 4 + 3 * 8 + 4 * 8);
  EXPECT_EQ(std::string(idx.begin(), idx.begin() + 9), std::string("MMIDIDX\0\0", 9));
  EXPECT_EQ(idx[17], 8);  // dtype code
  int64_t second_offset;
  std::memcpy(&second_offset, &idx[9 + 8 + 1 + 8 + 8 + 12 + 8], 8);
  EXPECT_EQ(second_offset, 4);  // bytes of the first document

  // A vocabulary above 65536 stores int32.
  write_binidx(dir.file("big"), std::vector<int32_t>{70000, 1}, std::vector<uint64_t>{2}, 100000);
  EXPECT_EQ(read_binidx(dir.file("big")).tokens, (std::vector<int32_t>{70000, 1}));
  EXPECT_EQ(test::read_bytes(dir.file("big.bin")).size(), 8u);

  EXPECT_EQ(binidx_prefix("x/data.bin"), "x/data");
  EXPECT_EQ(binidx_prefix("x/data.idx"), "x/data");
  EXPECT_TRUE(is_binidx_path("a.bin"));
  EXPECT_FALSE(is_binidx_path("a.txt"));
}

TEST(TrainBinidx, Errors) {
  TempDir dir;
  EXPECT_THROW(write_binidx(dir.file("x"), std::vector<int32_t>{300}, std::vector<uint64_t>{1}, 256), Error);
  EXPECT_THROW(write_binidx(dir.file("x"), std::vector<int32_t>{1, 2}, std::vector<uint64_t>{1}, 256), Error);
  write_binidx(dir.file("d"), std::vector<int32_t>{1, 2, 3}, std::vector<uint64_t>{3}, 256);
  auto bin = test::read_bytes(dir.file("d.bin"));
  bin.pop_back();  // half a token
  test::write_bytes(dir.file("d.bin"), bin);
  EXPECT_THROW(read_binidx(dir.file("d")), Error);
  bin.pop_back();  // a whole token fewer than the sizes say
  test::write_bytes(dir.file("d.bin"), bin);
  try {
    read_binidx(dir.file("d"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("add up to 3 tokens"), std::string::npos) << e.what();
  }
  test::write_bytes(dir.file("bad.idx"), std::vector<uint8_t>{'M', 'M', 'I', 'D'});
  test::write_bytes(dir.file("bad.bin"), {});
  EXPECT_THROW(read_binidx(dir.file("bad")), Error);
  EXPECT_THROW(read_binidx(dir.file("missing")), Error);
}

// ---- corpora

TEST(TrainCorpus, TextJsonlAndBinidx) {
  TempDir dir;
  auto bytes = make_byte_tokenizer();
  write_text(dir.file("a.txt"), "hello\n");
  Corpus t = read_corpus(dir.file("a.txt"), *bytes);
  EXPECT_EQ(t.tokens, (std::vector<int32_t>{'h', 'e', 'l', 'l', 'o', '\n'}));
  EXPECT_EQ(t.document_sizes, (std::vector<uint64_t>{6}));

  // JSONL: each "text" is a document followed by the end-of-text token; blank lines skipped.
  write_text(dir.file("a.jsonl"), "{\"text\": \"ab\", \"id\": 1}\n\n{\"text\": \"c\"}\n");
  Corpus j = read_corpus(dir.file("a.jsonl"), *bytes);
  EXPECT_EQ(j.tokens, (std::vector<int32_t>{'a', 'b', 0, 'c', 0}));
  EXPECT_EQ(j.document_sizes, (std::vector<uint64_t>{3, 2}));

  write_binidx(dir.file("a"), j.tokens, j.document_sizes, 256);
  Corpus b = read_corpus(dir.file("a.bin"), *bytes);
  EXPECT_EQ(b.tokens, j.tokens);
  EXPECT_EQ(read_corpus(dir.file("a.idx"), *bytes).tokens, j.tokens);
}

void expect_data_error(const std::function<void()>& f, const std::string& part) {
  try {
    f();
    FAIL() << "no error (expected one with '" << part << "')";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(TrainCorpus, Errors) {
  TempDir dir;
  auto bytes = make_byte_tokenizer();
  expect_data_error([&] { read_corpus(dir.file("none.txt"), *bytes); }, "no such file");
  write_text(dir.file("empty.txt"), "");
  expect_data_error([&] { read_corpus(dir.file("empty.txt"), *bytes); }, "empty data file");
  write_text(dir.file("bad.jsonl"), "{\"text\": \"ok\"}\n{\"txt\": \"no\"}\n");
  expect_data_error([&] { read_corpus(dir.file("bad.jsonl"), *bytes); }, "bad.jsonl:2: expected a JSON object");
  write_text(dir.file("broken.jsonl"), "{\"text\": \n");
  expect_data_error([&] { read_corpus(dir.file("broken.jsonl"), *bytes); }, "broken.jsonl:1: not valid JSON");
  write_text(dir.file("blank.jsonl"), "\n\n");
  expect_data_error([&] { read_corpus(dir.file("blank.jsonl"), *bytes); }, "no tokens");
}

// ---- split and windows

std::vector<int32_t> iota_tokens(size_t n, int32_t modulo) {
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = int32_t(i % size_t(modulo));
  return t;
}

TEST(TrainDataset, SplitAndWindows) {
  // Tokens equal their position (mod 1000): a window's content tells where it came from.
  Dataset d(iota_tokens(1000, 1000), 0.1, 16, 1000, "data");
  EXPECT_EQ(d.train_size(), 900u);
  EXPECT_EQ(d.validation_size(), 100u);
  Rng rng(7);
  std::vector<int32_t> in, tg;
  std::set<int32_t> starts;
  for (int rep = 0; rep < 50; ++rep) {
    d.training_batch(rng, 4, in, tg);
    ASSERT_EQ(in.size(), 64u);
    for (size_t b = 0; b < 4; ++b) {
      const int32_t s = in[b * 16];
      starts.insert(s);
      for (size_t t = 0; t < 16; ++t) {
        EXPECT_EQ(in[b * 16 + t], s + int32_t(t));
        EXPECT_EQ(tg[b * 16 + t], s + int32_t(t) + 1);
      }
      EXPECT_LE(s + 16, 899);  // the targets stay in the training part
    }
  }
  EXPECT_GT(starts.size(), 100u);
  // The same seed gives the same windows; a saved state continues the stream.
  Rng a(7), b(7);
  a.next();
  Rng c = Rng::from_state(a.state());
  b.next();
  EXPECT_EQ(b.next(), c.next());

  // Validation: at most (100 − 1)/16 = 6 non-overlapping windows, inside the held-out tail.
  EXPECT_EQ(d.validation_windows(100), 6u);
  EXPECT_EQ(d.validation_windows(4), 4u);
  d.validation_batch(6, 0, 6, in, tg);
  int32_t last_end = -1;
  for (size_t w = 0; w < 6; ++w) {
    const int32_t s = in[w * 16];
    EXPECT_GE(s, 900);
    EXPECT_GE(s, last_end);  // a window's last target may be the next one's first input
    last_end = s + 16;
    EXPECT_LE(last_end, 999);
  }
  std::vector<int32_t> in2, tg2;
  d.validation_batch(6, 2, 3, in2, tg2);
  EXPECT_TRUE(std::equal(in2.begin(), in2.end(), in.begin() + 32));
}

TEST(TrainDataset, Errors) {
  expect_data_error([] { Dataset(iota_tokens(100, 50), 0.1, 90, 50, "d.txt"); }, "training split has 90 tokens, fewer than ctx + 1 = 91");
  expect_data_error([] { Dataset(iota_tokens(100, 50), 0.1, 10, 50, "d.txt"); }, "validation split");
  Dataset ok(iota_tokens(100, 50), 0.0, 10, 50, "d.txt");
  EXPECT_EQ(ok.validation_windows(10), 0u);
  expect_data_error([] { Dataset(iota_tokens(100, 50), 0.0, 10, 40, "d.txt"); }, "outside the model's vocabulary of 40");
  expect_data_error([] { Dataset(iota_tokens(100, 50), 1.5, 10, 50, "d.txt"); }, "--val-fraction");
}

}  // namespace
}  // namespace rwkv::train
