// ZIP central-directory reader (spec §4.1; layouts from PKWARE APPNOTE 4.3): end record, ZIP64
// end record and locator, central and local headers. Reads names and offsets only, never data.
#include "io/zip_reader.hpp"

#include <algorithm>

#include "io/bytes.hpp"
#include "io/error.hpp"
#include "io/zip_format.hpp"

namespace rwkv {

namespace {

using namespace zip;

constexpr size_t kEndSize = 22;  // end-of-central-directory record without its comment
constexpr size_t kZip64LocatorSize = 20;
constexpr size_t kZip64EndSize = 56;  // ZIP64 end record without its extensible data
constexpr size_t kCentralSize = 46;
constexpr size_t kLocalSize = 30;
constexpr size_t kMaxComment = 0xffff;

// Where the central directory lies and where it must end (at the record that follows it).
struct Directory {
  uint64_t offset = 0;
  uint64_t size = 0;
  uint64_t count = 0;
  uint64_t limit = 0;
};

// Scans backwards for the end record: it is the last 22 bytes plus a comment of at most 64 KiB.
size_t find_end_record(std::span<const uint8_t> a, const std::string& what) {
  if (a.size() < kEndSize) fail(what, ": not a zip archive (", a.size(), " bytes, too short)");
  const size_t lowest = a.size() - kEndSize > kMaxComment ? a.size() - kEndSize - kMaxComment : 0;
  for (size_t pos = a.size() - kEndSize;; --pos) {
    if (load_le32(a.data() + pos) == kEndSignature) {
      const uint16_t comment = load_le16(a.data() + pos + 20);
      if (pos + kEndSize + comment <= a.size()) return pos;
    }
    if (pos == lowest) break;
  }
  fail(what, ": no zip end-of-central-directory record (truncated or not a zip archive)");
}

Directory read_directory(std::span<const uint8_t> a, const std::string& what) {
  const size_t end = find_end_record(a, what);
  ByteReader r(a.data(), a.size(), what);
  r.seek(end + 4);
  const uint16_t disk = r.read<uint16_t>("end record");
  const uint16_t directory_disk = r.read<uint16_t>("end record");
  r.read<uint16_t>("end record");  // entries on this disk
  Directory d;
  d.count = r.read<uint16_t>("end record");
  d.size = r.read<uint32_t>("end record");
  d.offset = r.read<uint32_t>("end record");
  d.limit = end;

  // A ZIP64 locator right before the end record points to the ZIP64 end record, whose 64-bit
  // fields replace the 16/32-bit ones (spec §4.1: all files above 4 GiB).
  if (end >= kZip64LocatorSize && load_le32(a.data() + end - kZip64LocatorSize) == kZip64LocatorSignature) {
    const size_t locator = end - kZip64LocatorSize;
    r.seek(locator + 4);
    r.read<uint32_t>("zip64 locator");  // disk holding the ZIP64 end record
    const uint64_t record = r.read<uint64_t>("zip64 locator");
    if (record > locator || locator - record < kZip64EndSize)
      fail(what, ": zip64 end record offset ", record, " is outside the archive");
    r.seek(static_cast<size_t>(record));
    if (r.read<uint32_t>("zip64 end record") != kZip64EndSignature)
      fail(what, ": bad zip64 end record signature at offset ", record);
    r.read<uint64_t>("zip64 end record");  // record size
    r.read<uint16_t>("zip64 end record");  // version made by
    r.read<uint16_t>("zip64 end record");  // version needed
    const uint32_t disk64 = r.read<uint32_t>("zip64 end record");
    const uint32_t directory_disk64 = r.read<uint32_t>("zip64 end record");
    if (disk64 != 0 || directory_disk64 != 0) fail(what, ": multi-disk zip archives are not supported");
    r.read<uint64_t>("zip64 end record");  // entries on this disk
    d.count = r.read<uint64_t>("zip64 end record");
    d.size = r.read<uint64_t>("zip64 end record");
    d.offset = r.read<uint64_t>("zip64 end record");
    d.limit = record;
  } else if (disk != 0 || directory_disk != 0) {
    fail(what, ": multi-disk zip archives are not supported");
  }
  if (d.offset > d.limit || d.size > d.limit - d.offset)
    fail(what, ": zip central directory (offset ", d.offset, ", ", d.size,
         " bytes) lies outside the archive");
  return d;
}

// Replaces 0xffffffff fields by their 64-bit values from the ZIP64 extra field, which holds only
// the fields that overflowed, in this fixed order.
void apply_zip64_extra(const uint8_t* extra, size_t length, const std::string& what, const std::string& name,
                       uint64_t& size, uint64_t& compressed_size, uint64_t& local_offset) {
  ByteReader e(extra, length, what + ": extra field of zip entry '" + name + "'");
  while (e.remaining() >= 4) {
    const uint16_t id = e.read<uint16_t>("extra id");
    const uint16_t field_length = e.read<uint16_t>("extra length");
    const uint8_t* field = e.take(field_length, "extra field");
    if (id != kZip64ExtraId) continue;
    ByteReader z(field, field_length, what + ": zip64 extra field of zip entry '" + name + "'");
    if (size == kSentinel32) size = z.read<uint64_t>("uncompressed size");
    if (compressed_size == kSentinel32) compressed_size = z.read<uint64_t>("compressed size");
    if (local_offset == kSentinel32) local_offset = z.read<uint64_t>("local header offset");
    return;
  }
}

}  // namespace

std::vector<ZipEntry> list_zip(std::span<const uint8_t> archive, const std::string& what) {
  const Directory d = read_directory(archive, what);
  ByteReader c(archive.data() + d.offset, static_cast<size_t>(d.size), what + ": zip central directory");
  // Local headers and data precede the central directory.
  ByteReader local(archive.data(), static_cast<size_t>(d.offset), what + ": zip local header");

  std::vector<ZipEntry> entries;
  entries.reserve(static_cast<size_t>(std::min<uint64_t>(d.count, d.size / kCentralSize)));
  for (uint64_t i = 0; i < d.count; ++i) {
    if (c.remaining() < kCentralSize)
      fail(what, ": zip central directory holds fewer than the ", d.count, " entries it announces");
    if (c.read<uint32_t>("signature") != kCentralSignature)
      fail(what, ": bad zip central directory entry signature at offset ", d.offset + c.pos() - 4);
    c.read<uint16_t>();  // version made by
    c.read<uint16_t>();  // version needed
    const uint16_t flags = c.read<uint16_t>();
    ZipEntry e;
    e.method = c.read<uint16_t>();
    c.read<uint32_t>();  // time, date
    c.read<uint32_t>();  // crc-32: not checked, it would mean reading every byte of the model
    e.compressed_size = c.read<uint32_t>();
    e.size = c.read<uint32_t>();
    const uint16_t name_length = c.read<uint16_t>();
    const uint16_t extra_length = c.read<uint16_t>();
    const uint16_t comment_length = c.read<uint16_t>();
    c.read<uint16_t>();  // disk number start
    c.read<uint16_t>();  // internal attributes
    c.read<uint32_t>();  // external attributes
    uint64_t local_offset = c.read<uint32_t>();
    e.name = c.read_string(name_length, "entry name");
    const uint8_t* extra = c.take(extra_length, "extra field");
    c.take(comment_length, "entry comment");
    apply_zip64_extra(extra, extra_length, what, e.name, e.size, e.compressed_size, local_offset);

    if (flags & 1) fail(what, ": zip entry '", e.name, "' is encrypted");
    if (e.method == 0 && e.compressed_size != e.size)
      fail(what, ": stored zip entry '", e.name, "' has compressed size ", e.compressed_size, " != size ",
           e.size);

    // Spec §4.1: the data starts after the LOCAL header, whose extra field (alignment padding)
    // differs from the central one.
    if (local_offset >= d.offset)
      fail(what, ": zip entry '", e.name, "' has local header offset ", local_offset, " outside the archive");
    local.seek(static_cast<size_t>(local_offset));
    if (local.read<uint32_t>("signature") != kLocalSignature)
      fail(what, ": bad zip local header signature for entry '", e.name, "' at offset ", local_offset);
    // Skip versions, flags, method, time, date, crc and sizes: all but signature and lengths.
    local.take(kLocalSize - 8, "local header");
    const uint16_t local_name_length = local.read<uint16_t>("local name length");
    const uint16_t local_extra_length = local.read<uint16_t>("local extra length");
    if (local.read_string(local_name_length, "local name") != e.name)
      fail(what, ": zip entry '", e.name, "' has a different name in its local header");
    local.take(local_extra_length, "local extra field");
    e.offset = local.pos();
    if (e.compressed_size > d.offset - e.offset)
      fail(what, ": zip entry '", e.name, "' (", e.compressed_size, " bytes at offset ", e.offset,
           ") reaches past the end of its data area");
    entries.push_back(std::move(e));
  }
  return entries;
}

std::vector<ZipEntry> list_zip(const MappedFile& file) {
  return list_zip(std::span<const uint8_t>(file.data(), file.size()), file.path());
}

std::span<const uint8_t> zip_entry_data(std::span<const uint8_t> archive, const ZipEntry& entry,
                                        const std::string& what) {
  if (entry.method != 0)
    fail(what, ": zip entry '", entry.name, "' is compressed (method ", entry.method,
         "); only stored entries can be read");
  if (entry.offset > archive.size() || entry.size > archive.size() - entry.offset)
    fail(what, ": zip entry '", entry.name, "' lies outside the archive");
  return archive.subspan(static_cast<size_t>(entry.offset), static_cast<size_t>(entry.size));
}

}  // namespace rwkv
