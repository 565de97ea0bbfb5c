// Writes a ZIP archive of stored (uncompressed) entries, as torch.save lays out a .pth (spec
// §4.1): each entry's data aligned in the file (padding in a local extra field "FB"), CRC-32s,
// and ZIP64 records when sizes or offsets need them. The inverse of zip_reader; no compression.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/atomic_file.hpp"

namespace rwkv {

class ZipWriter {
 public:
  // Starts `path` (written to path.tmp until finish()). force_zip64 writes ZIP64 records for
  // every entry and the end of the archive even when 32-bit fields would do (for tests).
  explicit ZipWriter(const std::string& path, bool force_zip64 = false);

  // Appends a stored entry whose data starts at a multiple of `alignment` (a power of two ≤ 4096).
  void add(const std::string& name, std::span<const uint8_t> data, size_t alignment = 64);
  // Writes the central directory and the end records, then renames the file into place.
  void finish();

 private:
  struct Entry {
    std::string name;
    uint32_t crc = 0;
    uint64_t size = 0, offset = 0;  // offset of the local header
  };
  AtomicFile file_;
  std::vector<Entry> entries_;
  bool force_zip64_;
};

// CRC-32 (ISO-HDLC, as ZIP uses) of `data`, continuing from `crc` (0 to start).
uint32_t crc32(std::span<const uint8_t> data, uint32_t crc = 0);

}  // namespace rwkv
