// WebhookSigner: Standard Webhooks signatures (standardwebhooks.com).
//
// A delivery carries `webhook-id`, `webhook-timestamp` (unix seconds) and
// `webhook-signature`: "v1,<base64 of HMAC-SHA256(key, id.timestamp.body)>",
// one per secret, space-separated, so during a rotation a receiver holding
// either the old or the new secret accepts it. A secret is written
// "whsec_<base64 key>" (the key is the decoded bytes); the secret file has
// one per line (blank lines and lines starting with '#' are skipped), the
// first line first. HMAC and base64 are OpenSSL's.
//
// Immutable after construction; thread-safe.
#ifndef JOBWIRE_SERVER_WEBHOOKS_SIGNER_H_
#define JOBWIRE_SERVER_WEBHOOKS_SIGNER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace jobwire {

class WebhookSigner {
 public:
  // Parses secrets, one per line. INVALID_ARGUMENT naming the line for a
  // line without the "whsec_" prefix, with bad base64 or an empty key, and
  // when there is no secret at all.
  static absl::StatusOr<WebhookSigner> FromSecretLines(absl::string_view text);
  // Reads and parses the file at `path`. NOT_FOUND / PERMISSION_DENIED when
  // it cannot be read; INVALID_ARGUMENT as above, the message naming `path`.
  static absl::StatusOr<WebhookSigner> LoadBlocking(const std::string& path);

  // The `webhook-signature` value for one attempt: "v1,SIG" per secret,
  // space-separated, in file order.
  std::string Sign(absl::string_view msg_id, int64_t timestamp,
                   absl::string_view body) const;

  size_t secret_count() const { return keys_.size(); }

 private:
  explicit WebhookSigner(std::vector<std::string> keys)
      : keys_(std::move(keys)) {}

  std::vector<std::string> keys_;  // decoded HMAC keys
};

// Standard base64 (with padding) of `data`, by OpenSSL's EVP_EncodeBlock.
std::string Base64Encode(absl::string_view data);
// Decodes standard base64; false for invalid input. By EVP_DecodeBlock.
bool Base64Decode(absl::string_view text, std::string* out);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_WEBHOOKS_SIGNER_H_
