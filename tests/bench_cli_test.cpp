// rwkv bench end to end (JSON keys, table, bad flags), the model's weight accounting it
// relies on, and the machine probes (valid numbers only: tests make no timing assertions).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "io/mapped_file.hpp"
#include "kernels/cpu/simd_bf16.hpp"
#include "model/model.hpp"
#include "perf/machine.hpp"
#include "test_util.hpp"

namespace rwkv {
namespace {

using test::tiny;

const char* const kSmall = " --threads 1 --decode 4 --prefill 16 --probe-mib 8 --repeat 2";
const char* const kProbe = " --threads 1 --probe-mib 8";

TEST(BenchCli, JsonHasTheRequiredKeys) {
  for (const char* batch : {"1", "3"}) {
    auto r = test::run_cli("bench -m " + tiny("7v0-834K-FP32") + kSmall + " --batch " + batch + " --json", true);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto j = nlohmann::json::parse(r.output);
    for (const char* key : {"decode_tok_s", "decode_ms_per_token", "prefill_tok_s", "weight_bytes_per_token",
                            "peak_rss_bytes", "bandwidth_gb_s", "fma_peak_gflop_s", "prefill_gflop_s", "decode_gb_s",
                            "decode_pct_of_bandwidth_floor", "prefill_pct_of_fp32_peak", "decode_peak_rss_bytes",
                            "decode_bandwidth_gb_s", "decode_pct_of_best_bandwidth"}) {
      ASSERT_TRUE(j.contains(key)) << key << "\n" << r.output;
      ASSERT_TRUE(j[key].is_number()) << key << "\n" << r.output;
      const double v = j[key];
      EXPECT_TRUE(std::isfinite(v) && v > 0) << key << " = " << v;
    }
    EXPECT_LE(double(j["decode_peak_rss_bytes"]), double(j["peak_rss_bytes"]));
    EXPECT_EQ(j["prefill_arithmetic"], "fp32 FMA") << "a float32 model";
    // The decode is set against the readings around its fastest repeat, and against the run's
    // best reading, which can only be as high or higher.
    const double gb_s = j["decode_gb_s"], around = j["decode_bandwidth_gb_s"], best = j["bandwidth_gb_s"];
    EXPECT_LE(around, best);
    EXPECT_NEAR(double(j["decode_pct_of_bandwidth_floor"]), 100 * gb_s / around, 1e-3 * 100 * gb_s / around);
    EXPECT_NEAR(double(j["decode_pct_of_best_bandwidth"]), 100 * gb_s / best, 1e-3 * 100 * gb_s / best);
    ASSERT_TRUE(j["huge_page_bytes"].is_number_unsigned()) << r.output;  // 0 where the system has none
    EXPECT_LE(double(j["huge_page_bytes"]), double(j["peak_rss_bytes"]));
    EXPECT_EQ(j["threads"], 1);
    EXPECT_EQ(j["batch"], std::stoi(batch));
    EXPECT_EQ(j["repeat"], 2);
    EXPECT_EQ(j["version"], "7");
  }
}

TEST(BenchCli, TableAndSkippedParts) {
  auto r = test::run_cli("bench -m " + tiny("5v2-730K-Q5_1") + kSmall, true);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* s : {"decode", "prefill", "of bandwidth floor", "of fp32 peak", "DRAM read", "peak RSS",
                        "around the fastest repeat", "of the run's best reading"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  // Each repeat's time, and the readings before, between and after the two repeats: three.
  const auto repeats = r.output.find("repeats ");
  ASSERT_NE(repeats, std::string::npos) << r.output;
  const std::string line = r.output.substr(repeats, r.output.find('\n', repeats) - repeats);
  const auto times = line.substr(0, line.find("ms/step")), readings = line.substr(line.find("them"));
  EXPECT_EQ(std::count(times.begin(), times.end(), ','), 1) << line;
  EXPECT_EQ(std::count(readings.begin(), readings.end(), ','), 2) << line;
  r = test::run_cli("bench -m " + tiny("5v2-730K-Q5_1") + kProbe + " --decode 3 --prefill 0 --repeat 1 --json", true);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_TRUE(j["prefill_tok_s"].is_null());
  EXPECT_TRUE(j["decode_tok_s"].is_number());
  EXPECT_EQ(j["repeat"], 1);
}

// The bandwidth readings taken between the decode repeats run in a child process: the peak
// memory reported for decoding is the model's, not the probe's buffer (256 MiB here, against a
// model of under 1 MB).
TEST(BenchCli, ProbesBetweenRepeatsLeaveThePeakMemoryAlone) {
  auto r = test::run_cli("bench -m " + tiny("7v0-834K-FP32") +
                             " --threads 1 --decode 2 --prefill 0 --repeat 2 --probe-mib 256 --json", true);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_LT(double(j["decode_peak_rss_bytes"]), 200.0 * (1 << 20)) << r.output;
  EXPECT_GT(double(j["bandwidth_gb_s"]), 0.0);
  const double bw = perf::read_bandwidth_gb_s_in_child(1, size_t(8) << 20, 1);
  EXPECT_TRUE(std::isfinite(bw) && bw > 0) << bw;
}

using test::expect_one_line_error;

// RWKV_BF16_DOTS from the command line: the arithmetic the prefill ran on (an FP16 file takes the
// bfloat16 dot products only when asked with `all`, and only where the CPU has them), and a word
// it does not know fails any command, one that never reaches a product too.
TEST(BenchCli, Bf16DotsSettingFromTheEnvironment) {
  const std::string bench = std::string(RWKV_CLI_PATH) + " bench -m " + tiny("5v2-730K-FP16") +
                            " --threads 1 --decode 0 --prefill 32 --probe-mib 8 --repeat 1 --json";
  const std::string here = cpu::simd::bf16_dots_supported() ? "bf16 dot products" : "fp32 FMA";
  for (const auto& [setting, want] : std::vector<std::pair<std::string, std::string>>{
           {"", "fp32 FMA"}, {"RWKV_BF16_DOTS=off ", "fp32 FMA"}, {"RWKV_BF16_DOTS=all ", here}}) {
    auto r = test::run_command(setting + bench, true);
    ASSERT_EQ(r.exit_code, 0) << setting << r.output;
    EXPECT_EQ(nlohmann::json::parse(r.output)["prefill_arithmetic"], want) << setting;
  }
  expect_one_line_error(test::run_command("RWKV_BF16_DOTS=fast " + bench), "RWKV_BF16_DOTS");
  expect_one_line_error(test::run_command("RWKV_BF16_DOTS=1 " + std::string(RWKV_CLI_PATH) + " info " +
                                          tiny("5v2-730K-FP16")),
                        "RWKV_BF16_DOTS");
}

TEST(BenchCli, BadFlagsAreOneLineAndNonZeroExit) {
  const std::string m = "bench -m " + tiny("7v0-834K-FP32") + " --probe-mib 8";
  expect_one_line_error(test::run_cli(m + " --batch 0"), "--batch");
  expect_one_line_error(test::run_cli(m + " --decode 0 --prefill 0"), "nothing to measure");
  expect_one_line_error(test::run_cli(m + " --decode -1"), "--decode");
  expect_one_line_error(test::run_cli(m + " --prefill -5"), "--prefill");
  expect_one_line_error(test::run_cli(m + " --threads -2"), "--threads");
  expect_one_line_error(test::run_cli(m + " --repeat 0"), "--repeat");
  expect_one_line_error(test::run_cli(m + " --decode x"), "decode");
  expect_one_line_error(test::run_cli(m + " --frobnicate"), "frobnicate");
  expect_one_line_error(test::run_cli("bench -m /nonexistent/model.gguf --decode 1 --prefill 0"), "model.gguf");
  EXPECT_EQ(test::run_cli("bench").exit_code, 2);
}

TEST(ModelAccounting, WeightBytesAndMatrixParameters) {
  auto fp32 = Model::load(tiny("4v0-660K-FP32"));
  const size_t V = 256, C = 128;
  // Everything used once as float32, except the embedding table: one row per token.
  EXPECT_EQ(fp32->weight_bytes_per_token(), (fp32->parameter_count() - V * C) * 4 + C * 4);
  // RWKV-4, 4 layers: key, value, receptance, output (C×C each), FFN key F×C, value C×F,
  // receptance C×C with F = 256; plus the head V×C.
  EXPECT_EQ(fp32->matrix_parameter_count(), 4 * (4 * C * C + 2 * 256 * C + C * C) + V * C);
  // Block-quantized matrices are read as stored: fewer bytes than float32.
  auto q = Model::load(tiny("4v0-660K-Q5_1"));
  EXPECT_EQ(q->matrix_parameter_count(), fp32->matrix_parameter_count());
  EXPECT_LT(q->weight_bytes_per_token(), fp32->weight_bytes_per_token() / 2);
}

TEST(PerfMachine, ProbesReturnValidNumbers) {
  const double bw = perf::read_bandwidth_gb_s(1, size_t(8) << 20, 1);
  EXPECT_TRUE(std::isfinite(bw) && bw > 0) << bw;
  const double bw2 = perf::read_bandwidth_gb_s(2, size_t(8) << 20, 1);
  EXPECT_TRUE(std::isfinite(bw2) && bw2 > 0) << bw2;
  const double peak = perf::fma_peak_gflop_s(1, 1);
  EXPECT_TRUE(std::isfinite(peak) && peak > 0) << peak;
  EXPECT_FALSE(perf::fma_isa().empty());
  EXPECT_GT(perf::peak_rss_bytes(), size_t(1) << 20);
  EXPECT_LE(perf::huge_page_bytes(), perf::peak_rss_bytes());
}

// bench/ab.sh, the A/B script of docs/PERFORMANCE.md: a row per pair and the median line for
// a time and for a rate (the same build on both sides: every ratio is positive and finite);
// bad arguments and a figure left out of the JSON stop it with one "ab:" line and a failure.
TEST(BenchAbScript, PairsAndMedianAndBadArguments) {
  const std::string ab = std::string(RWKV_SOURCE_DIR) + "/bench/ab.sh " + RWKV_CLI_PATH + " " + RWKV_CLI_PATH + " ";
  const std::string model = tiny("7v0-834K-FP32"), opts = " --threads 1 --decode 3 --prefill 0 --probe-mib 8 --repeat 1";
  for (const char* field : {"decode_ms_per_token", "decode_tok_s"}) {
    const auto r = test::run_command("FIELD=" + std::string(field) + " " + ab + model + " 2" + opts);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    for (const char* row : {"\n| 1 | ", "\n| 2 | "}) EXPECT_NE(r.output.find(row), std::string::npos) << row;
    const size_t at = r.output.find(std::string(field) + " over 2 pairs: median speed-up ");
    ASSERT_NE(at, std::string::npos) << r.output;
    const double speedup = std::stod(r.output.substr(r.output.find("speed-up ", at) + 9));
    EXPECT_TRUE(std::isfinite(speedup) && speedup > 0) << r.output;
  }
  for (const std::string& bad : {ab + "/no/such/model.bin 2", ab + model + " 0", ab + model + " two",
                                 "FIELD=prefill_tok_s " + ab + model + " 1" + opts,
                                 "FIELD='x;y' " + ab + model + " 1" + opts,
                                 std::string(RWKV_SOURCE_DIR) + "/bench/ab.sh /no/rwkv " + RWKV_CLI_PATH + " " + model}) {
    const auto r = test::run_command(bad);
    EXPECT_NE(r.exit_code, 0) << bad << "\n" << r.output;
    EXPECT_NE(r.output.find("ab: "), std::string::npos) << bad << "\n" << r.output;
  }
}

// Files of 2 MB and more are mapped at a 2 MB boundary (so that the file's cache can map as
// 2 MB pages), and read back exactly, to the last byte; smaller files too.
TEST(MappedFile, LargeFilesStartAtA2MBBoundaryAndReadBackExactly) {
  test::TempDir dir;
  for (size_t n : {size_t{1000}, (size_t{2} << 20) + 12345, size_t{5} << 20}) {
    std::vector<uint8_t> bytes(n);
    for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(i * 131 + (i >> 12));
    const std::string path = dir.file(std::to_string(n) + ".bin");
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(n));
    const auto f = MappedFile::open(path);
    ASSERT_EQ(f->size(), n);
    if (n >= (size_t{2} << 20)) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(f->data()) % (size_t{2} << 20), 0u) << n;
    }
    EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), f->data())) << n;
  }
}

}  // namespace
}  // namespace rwkv
