#include "clients/cpp/webhook.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace jobwire::sdk {
namespace {

constexpr absl::string_view kSecretPrefix = "whsec_";
// More digits than any unix time in seconds needs, fewer than overflow.
constexpr size_t kMaxTimestampDigits = 18;

constexpr std::pair<WebhookErrorKind, absl::string_view> kKindNames[] = {
    {WebhookErrorKind::kInvalidSecret, "invalid_secret"},
    {WebhookErrorKind::kMissingHeader, "missing_header"},
    {WebhookErrorKind::kInvalidTimestamp, "invalid_timestamp"},
    {WebhookErrorKind::kTimestampTooOld, "timestamp_too_old"},
    {WebhookErrorKind::kTimestampTooNew, "timestamp_too_new"},
    {WebhookErrorKind::kNoMatchingSignature, "no_matching_signature"},
};

absl::Status Fail(absl::StatusCode code, WebhookErrorKind kind,
                  absl::string_view message) {
  absl::Status status(code, message);
  status.SetPayload(kWebhookErrorKindUrl,
                    absl::Cord(WebhookErrorKindName(kind)));
  return status;
}

absl::Status Unverified(WebhookErrorKind kind, absl::string_view message) {
  return Fail(absl::StatusCode::kUnauthenticated, kind, message);
}

bool IsBase64Char(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' ||
         c == '/';
}

// The first value of header `name` (any case); nullopt when absent or
// empty.
std::optional<absl::string_view> FindHeader(const WebhookHeaders& headers,
                                            absl::string_view name) {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) {
      if (value.empty()) return std::nullopt;
      return absl::string_view(value);
    }
  }
  return std::nullopt;
}

std::string Base64(const unsigned char* data, size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');  // + EVP's NUL
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                data, static_cast<int>(size));
  out.resize(n);
  return out;
}

// base64(HMAC-SHA256(key, content)).
std::string Sign(const std::string& key, const std::string& content) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(content.data()),
           content.size(), mac, &mac_size) == nullptr) {
    return "";  // matches no signature: an entry is never empty here
  }
  return Base64(mac, mac_size);
}

}  // namespace

absl::string_view WebhookErrorKindName(WebhookErrorKind kind) {
  for (const auto& [k, name] : kKindNames) {
    if (k == kind) return name;
  }
  return "";
}

WebhookErrorKind GetWebhookErrorKind(const absl::Status& status) {
  const auto payload = status.GetPayload(kWebhookErrorKindUrl);
  if (!payload.has_value()) return WebhookErrorKind::kNone;
  for (const auto& [kind, name] : kKindNames) {
    if (*payload == name) return kind;
  }
  return WebhookErrorKind::kNone;
}

absl::StatusOr<std::string> DecodeWebhookSecret(absl::string_view secret) {
  absl::ConsumePrefix(&secret, kSecretPrefix);
  std::string text(secret);
  text.append((4 - text.size() % 4) % 4, '=');  // unpadded is accepted too
  // EVP_DecodeBlock skips surrounding whitespace and counts the padding as
  // zero bytes: check the text first, then drop what padding added.
  size_t padding = 0;
  bool valid = true;
  for (char c : text) {
    if (c == '=') {
      ++padding;
    } else if (padding > 0 || !IsBase64Char(c)) {
      valid = false;
    }
  }
  if (valid && padding <= 2 && text.size() > padding) {
    std::string key(text.size() / 4 * 3, '\0');
    const int n =
        EVP_DecodeBlock(reinterpret_cast<unsigned char*>(key.data()),
                        reinterpret_cast<const unsigned char*>(text.data()),
                        static_cast<int>(text.size()));
    if (n >= 0 && static_cast<size_t>(n) > padding) {
      key.resize(static_cast<size_t>(n) - padding);
      return key;
    }
  }
  return absl::InvalidArgumentError(
      "not whsec_ followed by a base64 key");  // never the secret itself
}

absl::Status VerifyWebhook(absl::string_view body,
                           const WebhookHeaders& headers,
                           absl::Span<const std::string> secrets,
                           const WebhookVerifyOptions& options) {
  if (secrets.empty()) {
    return Fail(absl::StatusCode::kInvalidArgument,
                WebhookErrorKind::kInvalidSecret, "no secret given");
  }
  std::vector<std::string> keys;
  for (size_t i = 0; i < secrets.size(); ++i) {
    absl::StatusOr<std::string> key = DecodeWebhookSecret(secrets[i]);
    if (!key.ok()) {
      return Fail(
          absl::StatusCode::kInvalidArgument, WebhookErrorKind::kInvalidSecret,
          absl::StrCat("secret ", i + 1, " is ", key.status().message()));
    }
    keys.push_back(*std::move(key));
  }
  std::optional<absl::string_view> id = FindHeader(headers, "webhook-id");
  if (!id) {
    return Unverified(WebhookErrorKind::kMissingHeader,
                      "missing header webhook-id");
  }
  std::optional<absl::string_view> timestamp =
      FindHeader(headers, "webhook-timestamp");
  if (!timestamp) {
    return Unverified(WebhookErrorKind::kMissingHeader,
                      "missing header webhook-timestamp");
  }
  std::optional<absl::string_view> signatures =
      FindHeader(headers, "webhook-signature");
  if (!signatures) {
    return Unverified(WebhookErrorKind::kMissingHeader,
                      "missing header webhook-signature");
  }

  int64_t sent = 0;
  if (timestamp->size() > kMaxTimestampDigits ||
      !std::all_of(timestamp->begin(), timestamp->end(),
                   [](char c) { return absl::ascii_isdigit(c); }) ||
      !absl::SimpleAtoi(*timestamp, &sent)) {
    return Unverified(
        WebhookErrorKind::kInvalidTimestamp,
        absl::StrFormat("header webhook-timestamp is not unix seconds: \"%s\"",
                        absl::CHexEscape(timestamp->substr(0, 40))));
  }
  const absl::Time now = options.now.value_or(absl::Now());
  const absl::Time sent_time = absl::FromUnixSeconds(sent);
  const double tolerance_s = absl::ToDoubleSeconds(options.tolerance);
  if (sent_time < now - options.tolerance) {
    return Unverified(
        WebhookErrorKind::kTimestampTooOld,
        absl::StrFormat(
            "webhook-timestamp %d is %.0f s old, more than the %g s tolerance",
            sent, absl::ToDoubleSeconds(now - sent_time), tolerance_s));
  }
  if (sent_time > now + options.tolerance) {
    return Unverified(
        WebhookErrorKind::kTimestampTooNew,
        absl::StrFormat("webhook-timestamp %d is %.0f s in the future, more "
                        "than the %g s tolerance",
                        sent, absl::ToDoubleSeconds(sent_time - now),
                        tolerance_s));
  }

  const std::string content = absl::StrCat(*id, ".", *timestamp, ".", body);
  std::vector<std::string> expected;
  for (const std::string& key : keys) expected.push_back(Sign(key, content));
  bool matched = false;
  for (absl::string_view entry : absl::StrSplit(*signatures, ' ')) {
    std::pair<absl::string_view, absl::string_view> parts =
        absl::StrSplit(entry, absl::MaxSplits(',', 1));
    if (parts.first != "v1" || entry.size() == parts.first.size()) continue;
    for (const std::string& e : expected) {  // every comparison runs
      if (!e.empty() && e.size() == parts.second.size() &&
          CRYPTO_memcmp(e.data(), parts.second.data(), e.size()) == 0) {
        matched = true;
      }
    }
  }
  if (!matched) {
    return Unverified(WebhookErrorKind::kNoMatchingSignature,
                      "no v1 signature in webhook-signature matches a secret");
  }
  return absl::OkStatus();
}

}  // namespace jobwire::sdk
