// State files: a recurrent state saved with the identity of the model it belongs to (version,
// shapes and a hash of the weights), the logits for the next token and the sampler's state, so
// that a run can stop and continue later exactly as if it had not stopped.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.hpp"

namespace rwkv {

struct SavedState {
  State state;
  std::vector<float> logits;  // V values, or empty
  std::string sampler;        // Sampler::save(), or empty
  std::string label;          // free text, e.g. the text a cached state has read
};

// 64-bit hash of the tensors the model uses (names, types, shapes, bytes), so that the same
// weights give the same hash whatever file they came from.
uint64_t weights_hash(const Model& model);

void save_state_file(const std::string& path, const Model& model, const SavedState& saved);
// Throws rwkv::Error if the file is malformed, truncated or from a different model.
SavedState load_state_file(const std::string& path, const Model& model);

}  // namespace rwkv
