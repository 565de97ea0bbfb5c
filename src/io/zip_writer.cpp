// ZIP writer (PKWARE APPNOTE 4.3: local header, central directory, end of central directory,
// ZIP64 end record and locator), stored entries only.
#include "io/zip_writer.hpp"

#include <array>
#include <cstring>
#include <limits>
#include <type_traits>

#include "io/error.hpp"
#include "io/zip_format.hpp"

namespace rwkv {

namespace {

using namespace zip;

constexpr uint16_t kPaddingExtraId = 0x4246;  // "FB", as PyTorch pads its entries
constexpr uint16_t kZipVersion = 20, kZipVersion64 = 45;
constexpr uint16_t kDosDate = (1 << 5) | 1;  // 1980-01-01: a valid date with no meaning
constexpr uint16_t k16 = 0xffff;

class Bytes {
 public:
  template <typename T>
  void put(T v) {  // little-endian
    static_assert(std::is_integral_v<T>);
    for (size_t i = 0; i < sizeof(T); ++i) b_.push_back(uint8_t(uint64_t(v) >> (8 * i)));
  }
  void put(const std::string& s) { b_.insert(b_.end(), s.begin(), s.end()); }
  const std::vector<uint8_t>& data() const { return b_; }
  size_t size() const { return b_.size(); }

 private:
  std::vector<uint8_t> b_;
};

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

}  // namespace

uint32_t crc32(std::span<const uint8_t> data, uint32_t crc) {
  const auto& t = crc_table();
  crc = ~crc;
  for (uint8_t b : data) crc = t[(crc ^ b) & 0xff] ^ (crc >> 8);
  return ~crc;
}

ZipWriter::ZipWriter(const std::string& path, bool force_zip64) : file_(path), force_zip64_(force_zip64) {}

void ZipWriter::add(const std::string& name, std::span<const uint8_t> data, size_t alignment) {
  if (name.empty() || name.size() > k16) fail("zip entry name '", name.substr(0, 64), "' has an invalid length");
  if (alignment == 0 || alignment > 4096 || (alignment & (alignment - 1)) != 0)
    fail("zip alignment ", alignment, " is not a power of two up to 4096");
  Entry e;
  e.name = name;
  e.crc = crc32(data);
  e.size = data.size();
  e.offset = file_.position();
  const bool zip64 = force_zip64_ || e.size >= kSentinel32;

  Bytes h;
  h.put(kLocalSignature);
  h.put(zip64 ? kZipVersion64 : kZipVersion);
  h.put<uint16_t>(0);  // flags
  h.put<uint16_t>(0);  // method: stored
  h.put<uint16_t>(0);  // time
  h.put(kDosDate);
  h.put(e.crc);
  h.put(zip64 ? kSentinel32 : uint32_t(e.size));  // compressed size
  h.put(zip64 ? kSentinel32 : uint32_t(e.size));
  h.put(uint16_t(name.size()));
  Bytes extra;
  if (zip64) {
    extra.put(kZip64ExtraId);
    extra.put<uint16_t>(16);
    extra.put(e.size);
    extra.put(e.size);
  }
  // Pad with an "FB" field so that the data starts aligned (spec §4.1).
  const uint64_t unpadded = e.offset + 30 + name.size() + extra.size();
  if (unpadded % alignment != 0) {
    const size_t pad = (alignment - (unpadded + 4) % alignment) % alignment;
    extra.put(kPaddingExtraId);
    extra.put(uint16_t(pad));
    extra.put(std::string(pad, 'Z'));
  }
  h.put(uint16_t(extra.size()));
  h.put(name);
  file_.write(h.data().data(), h.size());
  file_.write(extra.data().data(), extra.size());
  file_.write(data.data(), data.size());
  entries_.push_back(std::move(e));
}

void ZipWriter::finish() {
  const uint64_t directory_offset = file_.position();
  Bytes d;
  for (const Entry& e : entries_) {
    const bool zip64 = force_zip64_ || e.size >= kSentinel32 || e.offset >= kSentinel32;
    d.put(kCentralSignature);
    d.put(zip64 ? kZipVersion64 : kZipVersion);  // made by (MS-DOS attributes)
    d.put(zip64 ? kZipVersion64 : kZipVersion);  // needed
    d.put<uint16_t>(0);
    d.put<uint16_t>(0);
    d.put<uint16_t>(0);
    d.put(kDosDate);
    d.put(e.crc);
    d.put(zip64 ? kSentinel32 : uint32_t(e.size));
    d.put(zip64 ? kSentinel32 : uint32_t(e.size));
    d.put(uint16_t(e.name.size()));
    d.put<uint16_t>(zip64 ? 4 + 24 : 0);  // extra length
    d.put<uint16_t>(0);                   // comment
    d.put<uint16_t>(0);                   // disk
    d.put<uint16_t>(0);                   // internal attributes
    d.put<uint32_t>(0);                   // external attributes
    d.put(zip64 ? kSentinel32 : uint32_t(e.offset));
    d.put(e.name);
    if (zip64) {  // every 32-bit field above is the sentinel: all three follow, in order
      d.put(kZip64ExtraId);
      d.put<uint16_t>(24);
      d.put(e.size);
      d.put(e.size);
      d.put(e.offset);
    }
  }
  file_.write(d.data().data(), d.size());
  const uint64_t directory_size = d.size(), count = entries_.size();
  const bool zip64 = force_zip64_ || count >= k16 || directory_offset >= kSentinel32 || directory_size >= kSentinel32;
  Bytes end;
  if (zip64) {
    const uint64_t record = file_.position();
    end.put(kZip64EndSignature);
    end.put<uint64_t>(44);  // size of the rest of the record
    end.put(kZipVersion64);
    end.put(kZipVersion64);
    end.put<uint32_t>(0);  // this disk
    end.put<uint32_t>(0);  // disk of the directory
    end.put(count);
    end.put(count);
    end.put(directory_size);
    end.put(directory_offset);
    end.put(kZip64LocatorSignature);
    end.put<uint32_t>(0);
    end.put(record);
    end.put<uint32_t>(1);  // disks
  }
  end.put(kEndSignature);
  end.put<uint16_t>(0);
  end.put<uint16_t>(0);
  end.put(zip64 ? k16 : uint16_t(count));
  end.put(zip64 ? k16 : uint16_t(count));
  end.put(zip64 ? kSentinel32 : uint32_t(directory_size));
  end.put(zip64 ? kSentinel32 : uint32_t(directory_offset));
  end.put<uint16_t>(0);  // comment
  file_.write(end.data().data(), end.size());
  file_.commit();
}

}  // namespace rwkv
