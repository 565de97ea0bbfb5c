// Record signatures and marker values of the ZIP format (PKWARE APPNOTE 4.3), shared by
// zip_reader and zip_writer.
#pragma once
#include <cstdint>

namespace rwkv::zip {

constexpr uint32_t kLocalSignature = 0x04034b50;
constexpr uint32_t kCentralSignature = 0x02014b50;
constexpr uint32_t kEndSignature = 0x06054b50;
constexpr uint32_t kZip64EndSignature = 0x06064b50;
constexpr uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint32_t kSentinel32 = 0xffffffff;  // "the real value is in the ZIP64 extra field"

}  // namespace rwkv::zip
