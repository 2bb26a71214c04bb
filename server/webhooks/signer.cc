#include "server/webhooks/signer.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace jobwire {

std::string Base64Encode(absl::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(data.data()),
                      static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

bool Base64Decode(absl::string_view text, std::string* out) {
  if (text.empty() || text.size() % 4 != 0) return false;
  std::string buf(3 * (text.size() / 4) + 1, '\0');
  const int n =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(buf.data()),
                      reinterpret_cast<const unsigned char*>(text.data()),
                      static_cast<int>(text.size()));
  if (n < 0) return false;
  // EVP_DecodeBlock counts the padding as zero bytes: drop them.
  size_t size = static_cast<size_t>(n);
  if (absl::EndsWith(text, "==")) {
    size -= 2;
  } else if (absl::EndsWith(text, "=")) {
    size -= 1;
  }
  buf.resize(size);
  *out = std::move(buf);
  return true;
}

absl::StatusOr<WebhookSigner> WebhookSigner::FromSecretLines(
    absl::string_view text) {
  std::vector<std::string> keys;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    if (!absl::ConsumePrefix(&line, "whsec_")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number, ": a secret is whsec_<base64 key>"));
    }
    std::string key;
    if (!Base64Decode(line, &key) || key.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number, ": the key after whsec_ is not base64"));
    }
    keys.push_back(std::move(key));
  }
  if (keys.empty()) return absl::InvalidArgumentError("no secret in it");
  return WebhookSigner(std::move(keys));
}

absl::StatusOr<WebhookSigner> WebhookSigner::LoadBlocking(
    const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read webhook secret file ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<WebhookSigner> signer = FromSecretLines(text.str());
  if (!signer.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", signer.status().message()));
  }
  return signer;
}

std::string WebhookSigner::Sign(absl::string_view msg_id, int64_t timestamp,
                                absl::string_view body) const {
  const std::string content = absl::StrCat(msg_id, ".", timestamp, ".", body);
  std::string out;
  for (const std::string& key : keys_) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_size = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(content.data()), content.size(),
         mac, &mac_size);
    if (!out.empty()) out += ' ';
    absl::StrAppend(&out, "v1,",
                    Base64Encode(absl::string_view(
                        reinterpret_cast<const char*>(mac), mac_size)));
  }
  return out;
}

}  // namespace jobwire
