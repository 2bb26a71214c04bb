// jobwire::sdk::VerifyWebhook: checks, on the receiving side, a webhook
// jobwired sent, signed after the Standard Webhooks specification
// (standardwebhooks.com).
//
// A delivery carries `webhook-id`, `webhook-timestamp` (unix seconds) and
// `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256>` entries
// over "{id}.{timestamp}.{body}", one per secret the server signs with (two
// during a rotation; entries of other versions are ignored). Secrets are
// `whsec_<base64 key>`; the base64 key alone is accepted too, with or
// without its '=' padding. HMAC, base64 and the constant-time comparison
// are OpenSSL's.
//
// Usage (headers as the HTTP server gave them, any case):
//   absl::Status s = jobwire::sdk::VerifyWebhook(
//       body, {{"webhook-id", id}, {"webhook-timestamp", ts},
//              {"webhook-signature", sig}}, {secret});
//   if (!s.ok()) return Respond(400, s.message());
//
// The functions are pure (apart from reading the clock when no `now` is
// given) and thread-safe. The target is jobwire::sdk_webhook (no gRPC);
// jobwire::sdk links it too.
#ifndef JOBWIRE_CLIENTS_CPP_WEBHOOK_H_
#define JOBWIRE_CLIENTS_CPP_WEBHOOK_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace jobwire::sdk {

// How far a webhook-timestamp may lie before or after the receiver's clock.
inline constexpr absl::Duration kDefaultWebhookTolerance = absl::Minutes(5);

// What failed; WebhookErrorKindName gives the word every jobwire SDK uses.
enum class WebhookErrorKind {
  kNone,  // not a webhook verification error (or OK)
  kInvalidSecret,
  kMissingHeader,
  kInvalidTimestamp,
  kTimestampTooOld,
  kTimestampTooNew,
  kNoMatchingSignature,
};

// "invalid_secret", "missing_header", "invalid_timestamp",
// "timestamp_too_old", "timestamp_too_new", "no_matching_signature"; ""
// for kNone.
absl::string_view WebhookErrorKindName(WebhookErrorKind kind);

// The kind carried by a status VerifyWebhook returned (as the payload
// kWebhookErrorKindUrl); kNone for OK or any other status.
WebhookErrorKind GetWebhookErrorKind(const absl::Status& status);
inline constexpr char kWebhookErrorKindUrl[] =
    "type.jobwire.dev/jobwire.sdk.WebhookErrorKind";

// A request's headers: (name, value) pairs; names match case-insensitively.
// From a std::map `m`: WebhookHeaders(m.begin(), m.end()).
using WebhookHeaders = std::vector<std::pair<std::string, std::string>>;

struct WebhookVerifyOptions {
  // Both directions, edges included.
  absl::Duration tolerance = kDefaultWebhookTolerance;
  // The receiver's clock; absl::Now() when unset.
  std::optional<absl::Time> now;
};

// The HMAC key of a secret ("whsec_" + base64, or the base64 alone).
// Fails: INVALID_ARGUMENT when it is not base64 or the key is empty (the
// message never shows the secret).
absl::StatusOr<std::string> DecodeWebhookSecret(absl::string_view secret);

// Checks that `body` (exactly as received) and `headers` are a webhook
// signed with one of `secrets` (several while a rotation is under way: a
// signature by any of them is accepted), comparing in constant time.
// Returns OK when it verifies. Fails, in the order checked, with the
// WebhookErrorKind as payload:
//   INVALID_ARGUMENT  kInvalidSecret: no secret, or one is not base64;
//   UNAUTHENTICATED   kMissingHeader (the message names it; an empty value
//                     counts as missing), kInvalidTimestamp (not decimal
//                     unix seconds), kTimestampTooOld / kTimestampTooNew
//                     (outside options.tolerance of options.now), or
//                     kNoMatchingSignature.
absl::Status VerifyWebhook(absl::string_view body,
                           const WebhookHeaders& headers,
                           absl::Span<const std::string> secrets,
                           const WebhookVerifyOptions& options = {});

}  // namespace jobwire::sdk

#endif  // JOBWIRE_CLIENTS_CPP_WEBHOOK_H_
