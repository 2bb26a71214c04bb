#include "server/webhooks/signer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace jobwire::test {
namespace {

// The example published in the Standard Webhooks specification.
constexpr absl::string_view kSpecSecret =
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr absl::string_view kSpecId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr int64_t kSpecTimestamp = 1614265330;
constexpr absl::string_view kSpecBody = R"({"test": 2432232314})";
constexpr absl::string_view kSpecSignature =
    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

TEST(WebhookSignerTest, SignsTheSpecificationsExample) {
  absl::StatusOr<WebhookSigner> signer =
      WebhookSigner::FromSecretLines(kSpecSecret);
  ASSERT_TRUE(signer.ok()) << signer.status();
  EXPECT_EQ(signer->Sign(kSpecId, kSpecTimestamp, kSpecBody), kSpecSignature);
}

TEST(WebhookSignerTest, OneSignaturePerSecretLineInFileOrder) {
  absl::StatusOr<WebhookSigner> signer = WebhookSigner::FromSecretLines(
      "# rotation\nwhsec_c2Vjb25k\n\n  whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw  "
      "\n");
  ASSERT_TRUE(signer.ok()) << signer.status();
  EXPECT_EQ(signer->secret_count(), 2u);
  const std::string sig = signer->Sign(kSpecId, kSpecTimestamp, kSpecBody);
  EXPECT_THAT(sig, ::testing::EndsWith(absl::StrCat(" ", kSpecSignature)));
  EXPECT_THAT(sig, ::testing::StartsWith("v1,"));
}

TEST(WebhookSignerTest, RefusesLinesThatAreNotSecrets) {
  EXPECT_TRUE(absl::IsInvalidArgument(
      WebhookSigner::FromSecretLines("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
          .status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      WebhookSigner::FromSecretLines("whsec_!!!notbase64").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      WebhookSigner::FromSecretLines("\n# only a comment\n").status()));
  EXPECT_TRUE(absl::IsNotFound(
      WebhookSigner::LoadBlocking("/nonexistent/secrets").status()));
}

TEST(WebhookSignerTest, Base64RoundTrips) {
  for (absl::string_view s :
       {absl::string_view("a"), absl::string_view("ab"),
        absl::string_view("abcd"), absl::string_view("\xff\x00\x01", 3)}) {
    std::string decoded;
    ASSERT_TRUE(Base64Decode(Base64Encode(s), &decoded));
    EXPECT_EQ(decoded, s);
  }
}

}  // namespace
}  // namespace jobwire::test
