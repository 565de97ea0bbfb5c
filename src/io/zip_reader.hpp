// Lists the entries of a ZIP archive held in memory, ZIP64 included (spec §4.1), so that the .pth
// reader can point into stored entries. Not an unzipper: no decompression, encryption, multi-disk
// archives or CRC checks.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/mapped_file.hpp"

namespace rwkv {

struct ZipEntry {
  std::string name;
  uint64_t offset = 0;           // archive offset of the entry's bytes (past the local header)
  uint64_t size = 0;             // uncompressed size
  uint64_t compressed_size = 0;  // bytes the entry occupies at `offset`
  uint16_t method = 0;           // 0 = stored; only stored entries can be read
};

// All entries in central-directory order. Every offset and size is checked to lie inside the
// archive; `what` (usually the file path) starts every error message.
std::vector<ZipEntry> list_zip(std::span<const uint8_t> archive, const std::string& what);
std::vector<ZipEntry> list_zip(const MappedFile& file);

// The bytes of a stored entry of `archive`; throws an Error naming the entry if it is compressed.
std::span<const uint8_t> zip_entry_data(std::span<const uint8_t> archive, const ZipEntry& entry,
                                        const std::string& what);

}  // namespace rwkv
