#include "clients/cpp/webhook.h"

#include <google/protobuf/struct.pb.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "clients/cpp/webhook_vectors.h"

namespace jobwire::sdk {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

TEST(WebhookTest, PassesEveryVector) {
  const Struct vectors = LoadWebhookVectors();
  const auto& cases = vectors.fields().at("cases").list_value().values();
  ASSERT_FALSE(cases.empty());
  const double default_tolerance =
      vectors.fields().at("default_tolerance_seconds").number_value();
  for (const Value& v : cases) {
    const auto& c = v.struct_value().fields();
    SCOPED_TRACE(c.at("name").string_value());
    std::vector<std::string> secrets;
    for (const Value& s : c.at("secrets").list_value().values())
      secrets.push_back(s.string_value());
    WebhookHeaders headers;
    for (const auto& [name, value] : c.at("headers").struct_value().fields())
      headers.emplace_back(name, value.string_value());
    WebhookVerifyOptions options;
    options.now =
        absl::FromUnixSeconds(static_cast<int64_t>(c.at("now").number_value()));
    options.tolerance = absl::Seconds(
        c.count("tolerance_seconds") ? c.at("tolerance_seconds").number_value()
                                     : default_tolerance);

    absl::Status s =
        VerifyWebhook(c.at("body").string_value(), headers, secrets, options);

    const std::string& expected = c.at("expected").string_value();
    if (expected == "ok") {
      EXPECT_TRUE(s.ok()) << s;
      continue;
    }
    EXPECT_EQ(WebhookErrorKindName(GetWebhookErrorKind(s)), expected) << s;
    EXPECT_EQ(s.code(), expected == "invalid_secret"
                            ? absl::StatusCode::kInvalidArgument
                            : absl::StatusCode::kUnauthenticated)
        << s;
    if (c.count("message_contains")) {
      EXPECT_NE(s.message().find(c.at("message_contains").string_value()),
                std::string::npos)
          << s;
    }
  }
}

TEST(WebhookTest, VectorsCoverEveryErrorKind) {
  const Struct vectors = LoadWebhookVectors();
  std::vector<std::string> kinds;
  for (const Value& k :
       vectors.fields().at("error_kinds").list_value().values()) {
    kinds.push_back(k.string_value());
  }
  for (WebhookErrorKind kind :
       {WebhookErrorKind::kInvalidSecret, WebhookErrorKind::kMissingHeader,
        WebhookErrorKind::kInvalidTimestamp, WebhookErrorKind::kTimestampTooOld,
        WebhookErrorKind::kTimestampTooNew,
        WebhookErrorKind::kNoMatchingSignature}) {
    EXPECT_NE(std::find(kinds.begin(), kinds.end(),
                        std::string(WebhookErrorKindName(kind))),
              kinds.end())
        << WebhookErrorKindName(kind);
  }
}

TEST(WebhookTest, DefaultsToTheSystemClockAndFiveMinutes) {
  const WebhookHeaders headers = {
      {"webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"},
      {"webhook-timestamp", "1614265330"},
      {"webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}};
  const std::vector<std::string> secrets = {
      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
  const std::string body = R"({"test": 2432232314})";
  // The specification's example is from 2021: too old for the system clock.
  EXPECT_EQ(GetWebhookErrorKind(VerifyWebhook(body, headers, secrets)),
            WebhookErrorKind::kTimestampTooOld);
  WebhookVerifyOptions options;
  options.now = absl::FromUnixSeconds(1614265330) + absl::Minutes(5);
  EXPECT_TRUE(VerifyWebhook(body, headers, secrets, options).ok());
  options.now = *options.now + absl::Seconds(1);
  EXPECT_FALSE(VerifyWebhook(body, headers, secrets, options).ok());
  EXPECT_EQ(GetWebhookErrorKind(VerifyWebhook(body, headers, {}, options)),
            WebhookErrorKind::kInvalidSecret);
  EXPECT_EQ(GetWebhookErrorKind(absl::UnauthenticatedError("other")),
            WebhookErrorKind::kNone);
}

TEST(WebhookTest, DecodesSecretsWithAndWithoutPrefixAndPadding) {
  EXPECT_EQ(DecodeWebhookSecret("whsec_aGVsbG8=").value_or("?"), "hello");
  EXPECT_EQ(DecodeWebhookSecret("aGVsbG8").value_or("?"), "hello");
  EXPECT_EQ(DecodeWebhookSecret("whsec_aGVsbG8h").value_or("?"), "hello!");
  EXPECT_FALSE(DecodeWebhookSecret("whsec_").ok());
  EXPECT_FALSE(DecodeWebhookSecret("whsec_aGVs bG8=").ok());
  EXPECT_FALSE(DecodeWebhookSecret("whsec_a").ok());
  EXPECT_FALSE(DecodeWebhookSecret("whsec_aG=sbG8=").ok());
}

}  // namespace
}  // namespace jobwire::sdk
