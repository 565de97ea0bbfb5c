// UTF-8 validation, U+FFFD replacement, streaming boundaries and the byte tokenizer.
#include <string>
#include <utility>

#include "io/error.hpp"
#include "test_util.hpp"
#include "text/tokenizer.hpp"

namespace rwkv {
namespace {

const std::string kFffd = "\xef\xbf\xbd";

TEST(Utf8, ValidationFollowsRfc3629) {
  for (const char* ok : {"", "abc", "\xc2\x80", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf"})
    EXPECT_NO_THROW(check_utf8(ok, "s")) << ok;
  for (const char* bad : {"\x80", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                          "\xf5\x80\x80\x80", "\xff", "\xe2\x82", "a\xc3"})
    EXPECT_THROW(check_utf8(bad, "s"), Error) << bad;
  try {
    check_utf8("ab\xff", "prompt");
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "prompt is not valid UTF-8 (byte 0xff at offset 2)");
  }
}

// The encoder at each length's first and last code point.
TEST(Utf8, AppendEncodesEachLength) {
  const std::pair<char32_t, std::string> cases[] = {
      {0x0, std::string(1, '\0')}, {0x7f, "\x7f"},           {0x80, "\xc2\x80"},
      {0x7ff, "\xdf\xbf"},         {0x800, "\xe0\xa0\x80"},  {0x20ac, "\xe2\x82\xac"},
      {0xffff, "\xef\xbf\xbf"},    {0x10000, "\xf0\x90\x80\x80"}, {0x10ffff, "\xf4\x8f\xbf\xbf"}};
  for (const auto& [cp, bytes] : cases) {
    std::string out = "a";
    append_utf8(out, cp);
    EXPECT_EQ(out, "a" + bytes) << static_cast<uint32_t>(cp);
  }
}

TEST(Utf8, InvalidBytesBecomeReplacementCharactersNotDropped) {
  EXPECT_EQ(sanitize_utf8("a\x80z"), "a" + kFffd + "z");
  EXPECT_EQ(sanitize_utf8("\xe2\x82z"), kFffd + "z");                 // one per maximal subpart
  EXPECT_EQ(sanitize_utf8("\xf0\x9f\x98"), kFffd);                     // truncated 4-byte sequence
  EXPECT_EQ(sanitize_utf8("\xed\xa0\x80"), kFffd + kFffd + kFffd);     // surrogate: each byte
  EXPECT_EQ(sanitize_utf8("\xe2\x82\xac\xc3\xa9"), "\xe2\x82\xac\xc3\xa9");
}

TEST(Utf8, CompletePrefixHoldsBackOnlyUnfinishedCharacters) {
  EXPECT_EQ(complete_utf8_prefix("abc"), 3u);
  EXPECT_EQ(complete_utf8_prefix("abc\xe2\x82"), 3u);
  EXPECT_EQ(complete_utf8_prefix("abc\xe2\x82\xac"), 6u);
  EXPECT_EQ(complete_utf8_prefix("\xf0\x9f\x98"), 0u);
  EXPECT_EQ(complete_utf8_prefix("ab\x80"), 3u);  // invalid, not unfinished: shown as U+FFFD
  EXPECT_EQ(complete_utf8_prefix("a\xe2"), 1u);
  EXPECT_EQ(complete_utf8_prefix(""), 0u);
}

TEST(ByteTokenizer, IdIsTheByteValue) {
  auto t = make_byte_tokenizer();
  EXPECT_EQ(t->vocab_size(), 256u);
  EXPECT_EQ(t->encode("A\xc3\xa9"), (std::vector<int32_t>{65, 0xc3, 0xa9}));
  const std::vector<int32_t> ids = {72, 0xc3};
  EXPECT_EQ(t->decode_bytes(ids), "H\xc3");
  EXPECT_EQ(t->decode(ids), "H" + kFffd);
  EXPECT_THROW(t->token_bytes(256), Error);
  EXPECT_THROW(t->encode("\xff"), Error);
}

}  // namespace
}  // namespace rwkv
