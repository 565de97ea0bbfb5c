// load_weights: picks the reader from the file's first bytes.
#include <cstring>

#include "io/error.hpp"
#include "io/mapped_file.hpp"
#include "io/pth_reader.hpp"
#include "io/rwkvcpp_reader.hpp"
#include "model/gguf_model.hpp"
#include "model/weights.hpp"

namespace rwkv {

Weights load_weights(const std::string& path) {
  auto f = MappedFile::open(path);
  if (is_rwkvcpp_file(f->data(), f->size())) {
    RwkvCppFile bin = read_rwkvcpp(path);
    Weights w = canonical_from_state_dict(std::move(bin.tensors), true);
    w.path = path;
    const Hparams& hp = w.hp;
    if (hp.n_layer != int(bin.n_layer) || hp.n_embd != int(bin.n_embed) || hp.vocab_size != int(bin.n_vocab))
      fail(path, ": header says ", bin.n_layer, " layers, width ", bin.n_embed, ", vocabulary ", bin.n_vocab,
           " but the tensors say ", hp.n_layer, ", ", hp.n_embd, ", ", hp.vocab_size);
    return w;
  }
  if (f->size() >= 4 && std::memcmp(f->data(), "GGUF", 4) == 0) return weights_from_gguf(path);
  if (f->size() >= 4 && std::memcmp(f->data(), "PK\x03\x04", 4) == 0) {
    Weights w = canonical_from_state_dict(read_pth(path), false);
    w.path = path;
    return w;
  }
  fail(path, ": unrecognised model file format (expected a PyTorch .pth, an rwkv.cpp .bin or a GGUF file)");
}

}  // namespace rwkv
