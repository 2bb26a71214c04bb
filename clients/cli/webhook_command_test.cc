// `jobwire webhook verify` over the shared vectors (tests/vectors), with
// the request on an injected stdin and an injected clock.
#include <google/protobuf/struct.pb.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "clients/cli/cli.h"
#include "clients/cpp/webhook_vectors.h"

namespace jobwire::cli {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result RunVerify(std::vector<std::string> args, const std::string& stdin_text,
                 absl::Time now) {
  CommandList commands;
  AddWebhookCommands(&commands, [now] { return now; });
  std::istringstream in(stdin_text);
  std::ostringstream out, err;
  const int code = RunCli(
      args, std::move(commands),
      [](const std::string&) -> std::optional<std::string> {
        return std::nullopt;
      },
      out, err, &in);
  return {code, out.str(), err.str()};
}

class WebhookVerifyCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/jobwire-webhook-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::system(absl::StrCat("rm -rf ", dir_).c_str());
  }
  // A secret file with these lines; returns its path.
  std::string SecretFile(const std::string& text) {
    const std::string path = absl::StrCat(dir_, "/secrets", files_++);
    std::ofstream(path) << text;
    return path;
  }

  std::string dir_;
  int files_ = 0;
};

TEST_F(WebhookVerifyCommandTest, PassesEveryVector) {
  const Struct vectors = sdk::LoadWebhookVectors();
  const auto& cases = vectors.fields().at("cases").list_value().values();
  ASSERT_FALSE(cases.empty());
  for (const Value& v : cases) {
    const auto& c = v.struct_value().fields();
    const std::string& name = c.at("name").string_value();
    const std::string& expected = c.at("expected").string_value();
    SCOPED_TRACE(name);
    std::string secrets = "# the receiver's secrets\n\n";
    for (const Value& s : c.at("secrets").list_value().values())
      absl::StrAppend(&secrets, s.string_value(), "\n");
    std::vector<std::string> args = {"webhook", "verify", "--secret-file",
                                     SecretFile(secrets)};
    if (c.count("tolerance_seconds")) {
      args.push_back(absl::StrCat(
          "--tolerance=", c.at("tolerance_seconds").number_value(), "s"));
    }
    // Half the cases as `Name: value` lines, half as a raw HTTP request.
    const bool raw = (&v - &cases[0]) % 2 == 1;
    const char* eol = raw ? "\r\n" : "\n";
    std::string request = raw ? "POST /hooks HTTP/1.1\r\nHost: x\r\n" : "";
    for (const auto& [header, value] : c.at("headers").struct_value().fields())
      absl::StrAppend(&request, header, ": ", value.string_value(), eol);
    absl::StrAppend(&request, eol, c.at("body").string_value());
    const absl::Time now =
        absl::FromUnixSeconds(static_cast<int64_t>(c.at("now").number_value()));

    Result r = RunVerify(args, request, now);

    if (expected == "ok") {
      EXPECT_EQ(r.code, 0) << r.err;
      EXPECT_EQ(r.out, "verified\n");
    } else if (expected == "invalid_secret") {
      // A bad line in the secret file is a usage error naming the flag.
      EXPECT_EQ(r.code, 2) << r.err;
      EXPECT_NE(r.err.find("--secret-file"), std::string::npos) << r.err;
    } else {
      EXPECT_EQ(r.code, 1) << r.err;
      EXPECT_EQ(r.out, "");
      EXPECT_EQ(r.err.rfind("jobwire: webhook verify: UNAUTHENTICATED: ", 0),
                0u)
          << r.err;
      if (c.count("message_contains")) {
        EXPECT_NE(r.err.find(c.at("message_contains").string_value()),
                  std::string::npos)
            << r.err;
      }
    }
  }
}

const char kSpecRequest[] =
    "webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek\n"
    "webhook-timestamp: 1614265330\n"
    "webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\n"
    "\n"
    R"({"test": 2432232314})";
const absl::Time kSpecTime = absl::FromUnixSeconds(1614265330);

TEST_F(WebhookVerifyCommandTest, AcceptsAnyLineOfARotatingSecretFile) {
  const std::string file = SecretFile(
      "# new secret first\n"
      "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
      "  whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw  \r\n");
  Result r = RunVerify({"webhook", "verify", "--secret-file", file},
                       kSpecRequest, kSpecTime);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "verified\n");
}

TEST_F(WebhookVerifyCommandTest, DefaultToleranceIsFiveMinutes) {
  const std::string file = SecretFile("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  const std::vector<std::string> args = {"webhook", "verify", "--secret-file",
                                         file};
  EXPECT_EQ(RunVerify(args, kSpecRequest, kSpecTime + absl::Minutes(5)).code,
            0);
  Result late = RunVerify(args, kSpecRequest,
                          kSpecTime + absl::Minutes(5) + absl::Seconds(1));
  EXPECT_EQ(late.code, 1);
  EXPECT_NE(late.err.find("old"), std::string::npos) << late.err;
}

TEST_F(WebhookVerifyCommandTest, UsageErrorsNameTheFlag) {
  Result none = RunVerify({"webhook", "verify"}, kSpecRequest, kSpecTime);
  EXPECT_EQ(none.code, 2);
  EXPECT_EQ(none.err,
            "jobwire: webhook verify: INVALID_ARGUMENT: --secret-file is "
            "required\n");

  Result missing =
      RunVerify({"webhook", "verify", "--secret-file", dir_ + "/nonexistent"},
                kSpecRequest, kSpecTime);
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("--secret-file: cannot read"), std::string::npos)
      << missing.err;

  Result empty = RunVerify(
      {"webhook", "verify", "--secret-file", SecretFile("# none yet\n\n")},
      kSpecRequest, kSpecTime);
  EXPECT_EQ(empty.code, 2);
  EXPECT_NE(empty.err.find("--secret-file: no secret"), std::string::npos)
      << empty.err;

  // The line is named; the secret itself is never printed.
  Result bad = RunVerify({"webhook", "verify", "--secret-file",
                          SecretFile("\nwhsec_MfKQ9r8GKYqrTwjU!\n")},
                         kSpecRequest, kSpecTime);
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find(":2: not whsec_"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find("MfKQ9r8GKYqrTwjU"), std::string::npos) << bad.err;

  Result tolerance = RunVerify({"webhook", "verify", "--secret-file",
                                SecretFile("x"), "--tolerance", "soon"},
                               kSpecRequest, kSpecTime);
  EXPECT_EQ(tolerance.code, 2);
  EXPECT_NE(tolerance.err.find("--tolerance"), std::string::npos)
      << tolerance.err;

  Result group = RunVerify({"webhook"}, kSpecRequest, kSpecTime);
  EXPECT_EQ(group.code, 2);
  EXPECT_NE(group.err.find("webhook verify"), std::string::npos) << group.err;
}

TEST_F(WebhookVerifyCommandTest, ALineThatIsNotAHeaderIsNotVerified) {
  const std::string file = SecretFile("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  Result r = RunVerify({"webhook", "verify", "--secret-file", file},
                       std::string("not a header\n") + kSpecRequest, kSpecTime);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("stdin line 1"), std::string::npos) << r.err;
}

TEST_F(WebhookVerifyCommandTest, HelpShowsBothWordsAndTheFlags) {
  Result r = RunVerify({"webhook", "verify", "--help"}, "", kSpecTime);
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("Usage: jobwire webhook verify [OPTIONS]"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("--secret-file"), std::string::npos);
  EXPECT_NE(r.out.find("--tolerance"), std::string::npos);
}

}  // namespace
}  // namespace jobwire::cli
