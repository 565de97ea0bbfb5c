// The tiny trained RWKV-7 `.pth` of shared/data/rwkv_lm (digit reversal): its reference
// logits, greedy reversal in RNN mode, and the .pth → GGUF → load round trip.
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

#include "model/gguf_model.hpp"
#include "model/model.hpp"
#include "test_util.hpp"

namespace rwkv {
namespace {

const std::string kVocab = "0123456789,#";

nlohmann::json reference() {
  std::ifstream f(test::data_path("rwkv_lm/reverse_L2_only_rwkv7_reference.json"));
  return nlohmann::json::parse(f);
}

std::string pth_path() { return test::data_path("rwkv_lm/260123_reverse_L2_only_rwkv7.pth"); }

int argmax(const std::vector<float>& v) { return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin()); }

TEST(ReverseModel, LogitsMatchTheReferenceAtEveryPosition) {
  auto model = Model::load(pth_path());
  EXPECT_EQ(model->hparams().arch, Arch::RWKV7);
  EXPECT_FALSE(model->hparams().has_ln0);
  EXPECT_TRUE(model->hparams().has_head_bias);
  int checked = 0;
  const nlohmann::json ref = reference();
  for (const auto& c : ref["cases"]) {
    const std::vector<int32_t> ids = c["input_ids"];
    State s = model->new_state();
    std::vector<float> logits(12);
    for (size_t t = 0; t < ids.size(); ++t) {
      model->forward(s, {&ids[t], 1}, Logits::Last, logits.data());
      EXPECT_EQ(argmax(logits), c["argmax_ids_all_positions"][t].get<int>()) << c["input_text"] << " @" << t;
      if (c["logits"].size() > t) {
        for (size_t v = 0; v < 12; ++v, ++checked) {
          ASSERT_NEAR(logits[v], c["logits"][t][v].get<double>(), 1e-4) << c["input_text"] << " @" << t;
        }
      }
    }
  }
  EXPECT_GT(checked, 400);
}

// The task itself: read "digits," and generate greedily until '#'.
TEST(ReverseModel, ReversesEveryReferenceCaseGreedilyInRnnMode) {
  auto model = Model::load(pth_path());
  const nlohmann::json ref = reference();
  for (const auto& c : ref["cases"]) {
    const std::string input = c["input_text"];
    const std::string digits = input.substr(0, input.find(','));
    State s = model->new_state();
    std::vector<float> logits(12);
    for (char ch : digits + ",") {
      const int32_t id = static_cast<int32_t>(kVocab.find(ch));
      model->forward(s, {&id, 1}, Logits::Last, logits.data());
    }
    std::string out;
    while (out.size() < digits.size() + 1) {
      const int32_t id = argmax(logits);
      out += kVocab[id];
      if (kVocab[id] == '#') break;
      model->forward(s, {&id, 1}, Logits::Last, logits.data());
    }
    EXPECT_EQ(out, c["target_after_comma"].get<std::string>()) << digits;
    EXPECT_EQ(out, std::string(digits.rbegin(), digits.rend()) + "#");
  }
}

TEST(ReverseModel, PthToGgufToLoadIsBitIdentical) {
  test::TempDir dir;
  save_gguf(load_weights(pth_path()), dir.file("reverse.gguf"), SaveType::Keep);
  auto a = Model::load(pth_path());
  auto b = Model::load(dir.file("reverse.gguf"));
  const std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6, 10, 6, 2, 9};
  for (bool seq : {false, true}) {
    std::vector<float> la(ids.size() * 12), lb(ids.size() * 12);
    State sa = a->new_state(), sb = b->new_state();
    if (seq) {
      a->forward(sa, ids, Logits::All, la.data());
      b->forward(sb, ids, Logits::All, lb.data());
    } else {
      for (size_t t = 0; t < ids.size(); ++t) {
        a->forward(sa, {&ids[t], 1}, Logits::Last, &la[t * 12]);
        b->forward(sb, {&ids[t], 1}, Logits::Last, &lb[t * 12]);
      }
    }
    EXPECT_EQ(la, lb);
    EXPECT_EQ(sa.data(), sb.data());
  }
}

}  // namespace
}  // namespace rwkv
