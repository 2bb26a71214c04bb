#include "server/common/utf8.h"

#include <string>

#include "gtest/gtest.h"

namespace jobwire::test {
namespace {

TEST(Utf8Test, ValidTextIsValidAndUnchanged) {
  for (const std::string& text :
       {std::string(""), std::string("plain"), std::string("\0nul", 4),
        std::string("\xC3\xA9t\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
        std::string("\xF4\x8F\xBF\xBF \xEF\xBF\xBF \xED\x9F\xBF")}) {
    EXPECT_TRUE(IsValidUtf8(text)) << text;
    EXPECT_EQ(ValidUtf8(text), text);
  }
}

TEST(Utf8Test, EveryIllFormedByteIsEscaped) {
  // Stray continuation, overlong forms, a surrogate, past U+10FFFF, a cut
  // sequence at the end.
  const std::string bad[] = {"\x80",         "\xC0\xAF",         "\xE0\x8E\x8A",
                             "\xED\xA0\x80", "\xF4\x90\x80\x80", "a\xE2\x82"};
  const std::string want[] = {
      "\\x80",           "\\xc0\\xaf",           "\\xe0\\x8e\\x8a",
      "\\xed\\xa0\\x80", "\\xf4\\x90\\x80\\x80", "a\\xe2\\x82"};
  for (size_t i = 0; i < std::size(bad); ++i) {
    EXPECT_FALSE(IsValidUtf8(bad[i])) << i;
    EXPECT_EQ(ValidUtf8(bad[i]), want[i]);
    EXPECT_TRUE(IsValidUtf8(ValidUtf8(bad[i])));
  }
}

}  // namespace
}  // namespace jobwire::test
