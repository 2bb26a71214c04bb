// `jobwire webhook verify`: checks a webhook request a receiver got, with
// the C++ SDK's VerifyWebhook. Talks to no server.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "clients/cli/cli.h"
#include "clients/cpp/webhook.h"
#include "google/protobuf/struct.pb.h"

namespace jobwire::cli {
namespace {

// The secrets of --secret-file: one per line; blank lines and lines
// starting with '#' are skipped. INVALID_ARGUMENT naming the flag (and the
// line, never its text) when the file cannot be read, a line is not a
// secret, or none is left.
absl::StatusOr<std::vector<std::string>> ReadSecretFile(
    const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--secret-file: cannot read ", path, ": ", std::strerror(errno)));
  }
  std::vector<std::string> secrets;
  int line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    absl::string_view secret = absl::StripAsciiWhitespace(line);
    if (secret.empty() || absl::StartsWith(secret, "#")) continue;
    if (!sdk::DecodeWebhookSecret(secret).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--secret-file: ", path, ":", line_number,
                       ": not whsec_ followed by a base64 key"));
    }
    secrets.emplace_back(secret);
  }
  if (secrets.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--secret-file: no secret in ", path));
  }
  return secrets;
}

// "POST /hooks HTTP/1.1": the request line of a raw HTTP request.
bool IsRequestLine(absl::string_view line) {
  std::vector<absl::string_view> words = absl::StrSplit(line, ' ');
  return words.size() == 3 && !words[0].empty() &&
         absl::StartsWith(words[2], "HTTP/");
}

struct Request {
  sdk::WebhookHeaders headers;
  std::string body;
};

// `Name: value` lines (CR LF or LF), optionally after an HTTP request line,
// then a blank line, then the body verbatim (none when the input ends
// first). UNAUTHENTICATED for a line that is not a header: such a request
// is not verified.
absl::StatusOr<Request> ParseRequest(absl::string_view input) {
  Request request;
  int line_number = 0;
  while (!input.empty()) {
    const size_t end = input.find('\n');
    absl::string_view line = input.substr(0, end);
    input = end == absl::string_view::npos ? "" : input.substr(end + 1);
    absl::ConsumeSuffix(&line, "\r");
    ++line_number;
    if (line.empty()) {
      request.body = std::string(input);
      break;
    }
    if (line_number == 1 && IsRequestLine(line)) continue;
    const size_t colon = line.find(':');
    absl::string_view name = line.substr(0, colon);
    if (colon == absl::string_view::npos || name.empty() ||
        name.find_first_of(" \t") != absl::string_view::npos) {
      return absl::UnauthenticatedError(absl::StrCat(
          "stdin line ", line_number,
          ": not a header; want `Name: value` lines, a blank line, the body"));
    }
    request.headers.emplace_back(
        std::string(name),
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
  return request;
}

class WebhookVerifyCommand final : public Command {
 public:
  explicit WebhookVerifyCommand(std::function<absl::Time()> now)
      : now_(std::move(now)) {}

  std::string name() const override { return "webhook verify"; }
  std::string summary() const override {
    return "check a webhook's signature: request headers, a blank line and "
           "the body on stdin; prints verified, else exits 1";
  }
  void AddFlags(FlagSet* flags) override {
    flags->String("secret-file", &secret_file_,
                  "the secrets (whsec_...), one per line; blank lines and "
                  "# comments are skipped (required)",
                  "FILE");
    flags->Duration("tolerance", &tolerance_,
                    "how far webhook-timestamp may be from now, either way "
                    "(default 5m)");
    flags->Output(&output_, {"table", "json"});
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (!args.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name(), " takes no arguments, got \"", args[0], "\""));
    }
    if (secret_file_.empty()) {
      return absl::InvalidArgumentError("--secret-file is required");
    }
    absl::StatusOr<std::vector<std::string>> secrets =
        ReadSecretFile(secret_file_);
    if (!secrets.ok()) return secrets.status();
    if (context.in == nullptr) {
      return absl::FailedPreconditionError("no standard input");
    }
    const std::string input(std::istreambuf_iterator<char>(*context.in), {});
    absl::StatusOr<Request> request = ParseRequest(input);
    if (!request.ok()) return request.status();
    sdk::WebhookVerifyOptions options;
    options.tolerance = tolerance_;
    options.now = now_();
    absl::Status verified =
        sdk::VerifyWebhook(request->body, request->headers, *secrets, options);
    if (!verified.ok()) return verified;
    if (IsJson(output_)) {
      google::protobuf::Struct answer;
      (*answer.mutable_fields())["verified"].set_bool_value(true);
      context.PrintJson(answer);
    } else {
      *context.out << "verified\n";
    }
    return absl::OkStatus();
  }

 private:
  const std::function<absl::Time()> now_;
  std::string secret_file_;
  absl::Duration tolerance_ = sdk::kDefaultWebhookTolerance;
  std::string output_ = "table";
};

}  // namespace

void AddWebhookCommands(CommandList* commands,
                        std::function<absl::Time()> now) {
  commands->push_back(std::make_unique<WebhookVerifyCommand>(std::move(now)));
}

}  // namespace jobwire::cli
