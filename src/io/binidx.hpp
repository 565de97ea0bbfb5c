// The binidx token files of the official RWKV trainers (Megatron's MMapIndexedDataset, spec
// §7.4): PREFIX.bin holds every token as a little-endian integer, PREFIX.idx the document
// sizes and byte offsets. The trainer reads .bin as one flat token stream. No tokenizer here.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace rwkv {

struct Binidx {
  std::vector<int32_t> tokens;          // the flat stream of .bin
  std::vector<uint64_t> document_sizes;  // in tokens, from .idx; they add up to tokens.size()
  uint8_t dtype_code = 8;                // 8 = uint16, 4 = int32, ... (spec §7.4)
};

// "data" for "data", "data.bin" or "data.idx".
std::string binidx_prefix(const std::string& path);
// Whether `path` names a binidx file by its extension (.bin or .idx).
bool is_binidx_path(const std::string& path);

// Writes PREFIX.bin and PREFIX.idx (each atomically) for documents of the given sizes, which
// must add up to tokens.size(). Tokens are stored as uint16 when vocab_size ≤ 65536 (the
// official choice for RWKV vocabularies), else int32. doc_idx is 0, 1, …, documents.
void write_binidx(const std::string& prefix, std::span<const int32_t> tokens,
                  std::span<const uint64_t> document_sizes, size_t vocab_size);

// Reads PREFIX.idx and PREFIX.bin, checking the header, the counts against the file sizes and
// the offsets against the sizes. Integer token types only (u8, i8, i16, u16, i32, i64, values
// must fit int32 and be non-negative). Throws rwkv::Error naming the file and field.
Binidx read_binidx(const std::string& prefix);

}  // namespace rwkv
