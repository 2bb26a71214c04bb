// TokenTable: named bearer tokens with scopes, from --auth-token-file, so no
// secret sits in `ps` output and each client gets only what it needs.
//
// The file has one token per line, `NAME TOKEN SCOPE[,SCOPE...]`; blank
// lines and lines starting with '#' are skipped. Scopes:
//   submit  SubmitJob, SubmitJobs
//   read    GetJob, ListJobs, WatchJob, WatchJobs, ExplainJob,
//           GetServerInfo, ListQueues, ListWebhookDeliveries
//   work    WorkerService (Connect)
//   admin   every other method (job control, queues, dispatch, backups,
//           redelivery)
// Health and reflection need no token (token_auth.h). Tokens follow the
// --auth-token rules (at least 6 visible ASCII characters); names and
// tokens are unique.
//
// The file is re-read when its modification time changes (checked at most
// once a second, on the calling thread); a version that does not parse is
// logged and the last good one stays in force.
//
// Thread-safe.
#ifndef JOBWIRE_SERVER_TRANSPORT_TOKEN_FILE_H_
#define JOBWIRE_SERVER_TRANSPORT_TOKEN_FILE_H_

#include <sys/stat.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace jobwire {

// True when a == b, in time that depends only on their lengths.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// OK for a token jobwired accepts (--auth-token, --auth-token-file): at
// least 6 characters, all visible ASCII. Else INVALID_ARGUMENT saying why.
absl::Status CheckTokenText(absl::string_view token);

// The scope a method path needs: "submit", "read", "work" or "admin".
absl::string_view ScopeOf(absl::string_view method_path);

class TokenTable {
 public:
  struct Entry {
    std::string name;
    std::string token;
    std::vector<std::string> scopes;
  };

  // Reads `path`. Fails INVALID_ARGUMENT "--auth-token-file: PATH line N:
  // ..." naming what is wrong.
  static absl::StatusOr<std::shared_ptr<TokenTable>> Load(std::string path);

  // Parses the file's text (no I/O); the same errors, without the path.
  static absl::StatusOr<std::vector<Entry>> Parse(absl::string_view text);

  // The entry whose token is `token` (compared in constant time per entry),
  // after re-reading a changed file.
  std::optional<Entry> Find(absl::string_view token);
  // The entry named `name`, after re-reading a changed file.
  std::optional<Entry> FindByName(absl::string_view name);

 private:
  explicit TokenTable(std::string path) : path_(std::move(path)) {}
  void MaybeReloadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
  struct timespec stamp_ ABSL_GUARDED_BY(mu_) = {};
  struct timespec failed_stamp_ ABSL_GUARDED_BY(mu_) = {};
  absl::Time last_check_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_TRANSPORT_TOKEN_FILE_H_
