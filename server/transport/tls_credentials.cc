#include "server/transport/tls_credentials.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace jobwire {
namespace {

bool SameStamp(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// The file's mtime; zero when it cannot be read.
struct timespec Stamp(const std::string& path) {
  struct stat st;
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return {};
  return st.st_mtim;
}

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": cannot read ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<X509, X509Deleter> FirstCertificate(const std::string& pem) {
  std::unique_ptr<BIO, BioDeleter> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return std::unique_ptr<X509, X509Deleter>(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

}  // namespace

absl::StatusOr<TlsCertificates::Pem> TlsCertificates::Read(
    const TlsFiles& files) {
  Pem pem;
  // Stamps first: a file replaced while it is read is read again later.
  pem.stamps[0] = Stamp(files.cert_path);
  pem.stamps[1] = Stamp(files.key_path);
  pem.stamps[2] = Stamp(files.client_ca_path);
  absl::StatusOr<std::string> cert = ReadFile(files.cert_path, "--tls-cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFile(files.key_path, "--tls-key");
  if (!key.ok()) return key.status();
  std::unique_ptr<X509, X509Deleter> leaf = FirstCertificate(*cert);
  if (leaf == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-cert: no PEM certificate in ", files.cert_path));
  }
  std::unique_ptr<BIO, BioDeleter> key_bio(
      BIO_new_mem_buf(key->data(), static_cast<int>(key->size())));
  std::unique_ptr<EVP_PKEY, PkeyDeleter> pkey(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (pkey == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-key: no PEM private key in ", files.key_path));
  }
  if (X509_check_private_key(leaf.get(), pkey.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls-key: ", files.key_path, " is not the key of the certificate in ",
        files.cert_path));
  }
  pem.cert = *std::move(cert);
  pem.key = *std::move(key);
  if (!files.client_ca_path.empty()) {
    absl::StatusOr<std::string> ca =
        ReadFile(files.client_ca_path, "--tls-client-ca");
    if (!ca.ok()) return ca.status();
    if (FirstCertificate(*ca) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--tls-client-ca: no PEM certificate in ", files.client_ca_path));
    }
    pem.client_ca = *std::move(ca);
  }
  return pem;
}

absl::StatusOr<std::shared_ptr<TlsCertificates>> TlsCertificates::Load(
    TlsFiles files) {
  if (files.cert_path.empty() != files.key_path.empty()) {
    return absl::InvalidArgumentError(files.cert_path.empty()
                                          ? "--tls-key: needs --tls-cert"
                                          : "--tls-cert: needs --tls-key");
  }
  if (files.cert_path.empty() && !files.client_ca_path.empty()) {
    return absl::InvalidArgumentError(
        "--tls-client-ca: needs --tls-cert and --tls-key");
  }
  absl::StatusOr<Pem> pem = Read(files);
  if (!pem.ok()) return pem.status();
  std::shared_ptr<TlsCertificates> tls(new TlsCertificates(std::move(files)));
  absl::MutexLock lock(&tls->mu_);
  tls->pem_ = *std::move(pem);
  tls->texts_ = std::make_shared<const PemTexts>(
      PemTexts{tls->pem_.cert, tls->pem_.key, tls->pem_.client_ca});
  return tls;
}

void TlsCertificates::RefreshLocked() {
  const struct timespec now[3] = {Stamp(files_.cert_path),
                                  Stamp(files_.key_path),
                                  Stamp(files_.client_ca_path)};
  bool changed = false;
  bool known_bad = true;
  for (int i = 0; i < 3; ++i) {
    changed |= !SameStamp(now[i], pem_.stamps[i]);
    known_bad &= SameStamp(now[i], failed_stamps_[i]);
  }
  if (!changed || known_bad) return;
  absl::StatusOr<Pem> pem = Read(files_);
  if (!pem.ok()) {
    for (int i = 0; i < 3; ++i) failed_stamps_[i] = now[i];
    JW_LOG(WARNING) << "TLS files changed but do not load ("
                    << pem.status().message()
                    << "); still serving the previous certificate";
    return;
  }
  pem_ = *std::move(pem);
  texts_ = std::make_shared<const PemTexts>(
      PemTexts{pem_.cert, pem_.key, pem_.client_ca});
  JW_LOG(INFO) << "TLS: loaded the changed certificate " << files_.cert_path;
}

grpc_ssl_certificate_config_reload_status TlsCertificates::Fetch(
    void* consumer_ptr, grpc_ssl_server_certificate_config** config) {
  auto* consumer = static_cast<Consumer*>(consumer_ptr);
  return consumer->owner->FetchFor(consumer, config);
}

grpc_ssl_certificate_config_reload_status TlsCertificates::FetchFor(
    Consumer* consumer, grpc_ssl_server_certificate_config** config) {
  absl::MutexLock lock(&mu_);
  RefreshLocked();
  const Pem& pem = pem_;
  if (consumer->handed && SameStamp(consumer->stamps[0], pem.stamps[0]) &&
      SameStamp(consumer->stamps[1], pem.stamps[1]) &&
      SameStamp(consumer->stamps[2], pem.stamps[2])) {
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
  }
  grpc_ssl_pem_key_cert_pair pair = {pem.key.c_str(), pem.cert.c_str()};
  // gRPC 1.51 asserts root certificates in a fetched configuration even
  // when it asks for no client certificate; without --tls-client-ca the
  // server's own chain stands in (never used: no client certificate is
  // requested).
  *config = grpc_ssl_server_certificate_config_create(
      pem.client_ca.empty() ? pem.cert.c_str() : pem.client_ca.c_str(), &pair,
      1);
  consumer->handed = true;
  for (int i = 0; i < 3; ++i) consumer->stamps[i] = pem.stamps[i];
  return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
}

std::shared_ptr<const TlsCertificates::PemTexts> TlsCertificates::Current() {
  absl::MutexLock lock(&mu_);
  RefreshLocked();
  return texts_;
}

grpc_server_credentials* TlsCertificates::CreateCoreCredentials() {
  Consumer* consumer = nullptr;
  {
    absl::MutexLock lock(&mu_);
    consumers_.push_back(std::make_unique<Consumer>());
    consumer = consumers_.back().get();
    consumer->owner = this;
  }
  grpc_ssl_server_credentials_options* options =
      grpc_ssl_server_credentials_create_options_using_config_fetcher(
          requires_client_certificate()
              ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
              : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
          &TlsCertificates::Fetch, consumer);
  // Takes ownership of `options`.
  return grpc_ssl_server_credentials_create_with_options(options);
}

}  // namespace jobwire
