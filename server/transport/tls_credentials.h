// TLS for jobwired's TCP listeners: the server certificate and key, and
// optionally the CA that client certificates must chain to (mTLS).
//
// TlsCertificates loads and checks the PEM files at start (a missing file, a
// key that does not match the certificate, or a CA file without a
// certificate fails the start, naming the flag), and hands gRPC a fresh
// configuration when any of the files changed: gRPC asks before every TLS
// handshake, so a renewed certificate is served to the next connection
// without a restart. A change that does not load (a half-written file, a
// mismatched pair) is logged and the last good files keep serving.
//
// The HTTP face (server/http/http_server.h) serves the same files over
// HTTPS: it asks Current() before each TLS handshake and builds a new
// OpenSSL context when the answer is a new one.
//
// Thread-safe: gRPC calls the fetcher from its threads.
#ifndef JOBWIRE_SERVER_TRANSPORT_TLS_CREDENTIALS_H_
#define JOBWIRE_SERVER_TRANSPORT_TLS_CREDENTIALS_H_

#include <grpc/grpc_security.h>
#include <sys/stat.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace jobwire {

struct TlsFiles {
  std::string cert_path;       // --tls-cert: PEM chain, leaf first
  std::string key_path;        // --tls-key: PEM private key
  std::string client_ca_path;  // --tls-client-ca: empty for no mTLS
};

class TlsCertificates {
 public:
  // Reads and checks the files. Fails INVALID_ARGUMENT naming the flag.
  static absl::StatusOr<std::shared_ptr<TlsCertificates>> Load(TlsFiles files);

  // gRPC core server credentials serving these certificates (reloaded on
  // change) and, with a client CA, requiring and verifying a client
  // certificate. The caller owns the result; `this` must outlive it.
  grpc_server_credentials* CreateCoreCredentials();

  // The PEM texts now served, re-read first when a file changed (a change
  // that does not load keeps the last good ones). The same pointer until
  // the contents change. Cheap when nothing changed: three stat calls.
  struct PemTexts {
    std::string cert;
    std::string key;
    std::string client_ca;  // empty: no client certificate is asked for
  };
  std::shared_ptr<const PemTexts> Current();

  bool requires_client_certificate() const {
    return !files_.client_ca_path.empty();
  }

 private:
  struct Pem {
    std::string cert;
    std::string key;
    std::string client_ca;
    struct timespec stamps[3] = {};  // mtimes of the three files
  };

  // One per core credentials: what that one was last given.
  struct Consumer {
    TlsCertificates* owner = nullptr;
    bool handed = false;
    struct timespec stamps[3] = {};
  };

  explicit TlsCertificates(TlsFiles files) : files_(std::move(files)) {}
  static absl::StatusOr<Pem> Read(const TlsFiles& files);
  // gRPC's config fetcher (`consumer` is a Consumer*): FetchFor on its owner.
  static grpc_ssl_certificate_config_reload_status Fetch(
      void* consumer, grpc_ssl_server_certificate_config** config);
  // The configuration for `consumer`, NEW when it was not handed the
  // current certificate yet, else UNCHANGED. Takes mu_.
  grpc_ssl_certificate_config_reload_status FetchFor(
      Consumer* consumer, grpc_ssl_server_certificate_config** config)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Re-reads the files when their mtimes changed.
  void RefreshLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const TlsFiles files_;
  absl::Mutex mu_;
  Pem pem_ ABSL_GUARDED_BY(mu_);
  // pem_'s texts, for Current(); replaced with pem_.
  std::shared_ptr<const PemTexts> texts_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Consumer>> consumers_ ABSL_GUARDED_BY(mu_);
  // The stamps of a change that failed to load (logged once).
  struct timespec failed_stamps_[3] ABSL_GUARDED_BY(mu_) = {};
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_TRANSPORT_TLS_CREDENTIALS_H_
