/* librwkv C API: load an RWKV model (.pth, rwkv.cpp .bin, GGUF), own recurrent states, and run
 * tokens through the model in RNN or sequence mode. Every function that can fail returns NULL
 * or a non-zero status and leaves a one-line message for rwkv_last_error(). */
#ifndef RWKV_RWKV_H
#define RWKV_RWKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rwkv_model rwkv_model;
typedef struct rwkv_state rwkv_state;

/* The message of the last failed call on this thread ("" if none). */
const char* rwkv_last_error(void);

rwkv_model* rwkv_model_load(const char* path);
void rwkv_model_free(rwkv_model* model);

/* Architecture version (4, 5, 6 or 7) and sizes. */
int rwkv_model_version(const rwkv_model* model);
int rwkv_model_n_layer(const rwkv_model* model);
int rwkv_model_n_embd(const rwkv_model* model);
int rwkv_model_vocab_size(const rwkv_model* model);

/* A fresh state for `model` (zeros; RWKV-4's max-exponent slots at -1e30). */
rwkv_state* rwkv_state_new(const rwkv_model* model);
rwkv_state* rwkv_state_clone(const rwkv_state* state);
void rwkv_state_reset(rwkv_state* state);
void rwkv_state_free(rwkv_state* state);
/* The state as float32 values (layer-major: att_x, ffn_x, WKV state), for saving. */
size_t rwkv_state_size(const rwkv_state* state);
float* rwkv_state_data(rwkv_state* state);

/* Reads n_tokens tokens starting from `state` (updated in place). `logits` receives nothing
 * if NULL, else the vocab_size logits of the last token, or n_tokens x vocab_size if `all`.
 * n_tokens == 1 is RNN mode; more tokens are computed time-parallel. Returns 0 on success. */
int rwkv_eval(const rwkv_model* model, rwkv_state* state, const int32_t* tokens, size_t n_tokens,
              float* logits, int all);

#ifdef __cplusplus
}
#endif

#endif /* RWKV_RWKV_H */
