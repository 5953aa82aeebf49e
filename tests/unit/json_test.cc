// Tests peerctl/json.h: --json's objects are valid JSON whatever they hold.
#include "peerctl/json.h"

#include "gtest/gtest.h"

namespace pcfs {
namespace {

TEST(JsonObjectTest, WritesMembersInOrder) {
  EXPECT_EQ(JsonObject().Add("command", "get").Add("exit_code", 4).ToString(),
            R"({"command":"get","exit_code":4})");
  EXPECT_EQ(JsonObject().ToString(), "{}");
}

TEST(JsonQuoteTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(JsonQuote("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(JsonQuote("line\nnext\ttab\x01"), R"("line\nnext\ttab\u0001")");
}

TEST(JsonQuoteTest, KeepsUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(JsonQuote("caf\xc3\xa9 \xf0\x9f\x8e\xb5"),
            "\"caf\xc3\xa9 \xf0\x9f\x8e\xb5\"");
  EXPECT_EQ(JsonQuote("a\xff"
                      "b"),
            R"("a\ufffdb")");
  EXPECT_EQ(JsonQuote("\xc0\xaf"), R"("\ufffd\ufffd")");  // overlong '/'
  EXPECT_EQ(JsonQuote("\xed\xa0\x80"),                    // a surrogate
            R"("\ufffd\ufffd\ufffd")");
}

}  // namespace
}  // namespace pcfs
