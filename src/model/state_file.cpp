// State file format (little-endian): "RWKVSTAT", u32 version 1, u32 arch, n_layer, n_embd,
// head_size, vocab_size, u64 weights hash, then three sections each u64 count + data: state
// floats, logits floats, sampler bytes, label bytes.
#include "model/state_file.hpp"

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "io/error.hpp"
#include "io/mapped_file.hpp"

namespace rwkv {

namespace {
constexpr char kMagic[8] = {'R', 'W', 'K', 'V', 'S', 'T', 'A', 'T'};

struct Hasher {
  uint64_t h = 0xcbf29ce484222325ull;
  void word(uint64_t w) {
    h ^= w;
    h *= 0x100000001b3ull;
    h ^= h >> 29;
  }
  void bytes(const uint8_t* p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      word(w);
    }
    uint64_t tail = 0;
    std::memcpy(&tail, p + i, n - i);
    word(tail ^ (static_cast<uint64_t>(n) << 56));
  }
  void text(const std::string& s) { bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }
};

std::vector<uint32_t> identity_of(const Model& m) {
  const Hparams& hp = m.hparams();
  return {static_cast<uint32_t>(hp.arch), static_cast<uint32_t>(hp.n_layer), static_cast<uint32_t>(hp.n_embd),
          static_cast<uint32_t>(hp.head_size), static_cast<uint32_t>(hp.vocab_size)};
}
}  // namespace

uint64_t weights_hash(const Model& model) {
  Hasher h;
  for (const std::string& name : model.used_tensor_names()) {  // sorted: file order does not matter
    const Tensor& t = model.weights().get(name);
    h.text(name);
    h.word(static_cast<uint64_t>(t.dtype));
    for (int64_t d : t.shape) h.word(static_cast<uint64_t>(d));
    h.bytes(t.data, t.nbytes());
  }
  return h.h;
}

void save_state_file(const std::string& path, const Model& model, const SavedState& s) {
  if (s.state.data().size() != model.new_state().data().size()) fail("save state: the state belongs to another model");
  std::vector<uint8_t> out(kMagic, kMagic + 8);
  auto put = [&](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  };
  const uint32_t version = 1;
  put(&version, 4);
  for (uint32_t v : identity_of(model)) put(&v, 4);
  const uint64_t hash = weights_hash(model);
  put(&hash, 8);
  auto section = [&](const void* p, uint64_t count, size_t elem) {
    put(&count, 8);
    put(p, count * elem);
  };
  section(s.state.data().data(), s.state.data().size(), 4);
  section(s.logits.data(), s.logits.size(), 4);
  section(s.sampler.data(), s.sampler.size(), 1);
  section(s.label.data(), s.label.size(), 1);
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(path, ": cannot open for writing");
  const bool ok = std::fwrite(out.data(), 1, out.size(), f) == out.size();
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    fail(path, ": write failed");
  }
  std::filesystem::rename(tmp, path);
}

SavedState load_state_file(const std::string& path, const Model& model) {
  auto file = MappedFile::open(path);
  ByteReader r(file->data(), file->size(), path);
  if (std::memcmp(r.take(8, "magic"), kMagic, 8) != 0) fail(path, ": not an rwkv state file (bad magic)");
  if (const uint32_t v = r.read<uint32_t>("version"); v != 1) fail(path, ": unsupported state file version ", v);
  const auto want = identity_of(model);
  std::vector<uint32_t> have(want.size());
  for (auto& v : have) v = r.read<uint32_t>("model identity");
  const uint64_t hash = r.read<uint64_t>("weights hash");
  if (have != want)
    fail(path, ": state of a different model (RWKV-", have[0], ", ", have[1], " layers, width ", have[2],
         ", vocabulary ", have[4], "; this model: RWKV-", want[0], ", ", want[1], " layers, width ", want[2],
         ", vocabulary ", want[4], ")");
  if (hash != weights_hash(model))
    fail(path, ": state of a model with the same shapes but different weights");
  SavedState s{model.new_state(), {}, {}, {}};
  auto count = [&](size_t elem, const char* what) {
    const uint64_t n = r.read<uint64_t>(what);
    if (n > r.remaining() / elem) fail(path, ": truncated ", what, " (", n, " values declared)");
    return static_cast<size_t>(n);
  };
  const size_t n_state = count(4, "state");
  if (n_state != s.state.data().size()) fail(path, ": state has ", n_state, " values, the model needs ", s.state.data().size());
  std::memcpy(s.state.data().data(), r.take(n_state * 4, "state"), n_state * 4);
  const size_t n_logits = count(4, "logits");
  if (n_logits != 0 && n_logits != static_cast<size_t>(model.hparams().vocab_size)) fail(path, ": wrong number of logits");
  s.logits.resize(n_logits);
  std::memcpy(s.logits.data(), r.take(n_logits * 4, "logits"), n_logits * 4);
  const size_t n_sampler = count(1, "sampler state");
  s.sampler = r.read_string(n_sampler, "sampler state");
  const size_t n_label = count(1, "label");
  s.label = r.read_string(n_label, "label");
  if (!r.at_end()) fail(path, ": unexpected bytes after the end of the state");
  return s;
}

}  // namespace rwkv
