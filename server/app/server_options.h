// ServerOptions: everything jobwired can be told at start, and the parser for
// its command line (CLI11: generated --help, --name value or --name=value)
// and JOBWIRE_* environment variables.
//
// Each flag has an environment equivalent (--db and JOBWIRE_DB); a flag wins
// over its variable, which wins over the default. --listen may be repeated
// (JOBWIRE_LISTEN takes a comma-separated list); any --listen replaces the
// default listeners.
#ifndef JOBWIRE_SERVER_APP_SERVER_OPTIONS_H_
#define JOBWIRE_SERVER_APP_SERVER_OPTIONS_H_

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/common/logging.h"
#include "server/storage/sqlite_job_store.h"

namespace jobwire {

struct ServerOptions {
  // Addresses to serve, in ParseListenAddress forms. All serve at once.
  // ParseServerCommandLine's default: sdk::DefaultAddress() (a Unix socket
  // that depends on the user, not on the folder; see
  // clients/cpp/default_address.h) and 127.0.0.1:50051.
  std::vector<std::string> listen;
  // SQLite database file; its missing folders are created owner-only
  // (0700). ParseServerCommandLine's default: DefaultDatabasePath() (it
  // depends on the user, not on the folder jobwired starts in). App refuses
  // an empty path.
  std::string db_path;
  LogLevel log_level = LogLevel::kInfo;
  LogFormat log_format = LogFormat::kText;
  // How long open streams and workers get to finish after a stop signal.
  absl::Duration shutdown_grace = absl::Seconds(10);
  // Permissions of every Unix socket file.
  mode_t socket_mode = 0600;
  // Group of every Unix socket file; -1: jobwired's own.
  gid_t socket_group = static_cast<gid_t>(-1);
  // Named tokens with scopes (server/transport/token_file.h); empty: none.
  std::string auth_token_file;
  // Unix socket peers allowed besides jobwired's own user (SO_PEERCRED);
  // both empty: any peer the socket's file mode lets in.
  std::vector<uid_t> socket_allow_uids;
  std::vector<gid_t> socket_allow_gids;
  // Bearer token; empty means no auth (then only loopback listeners).
  std::string auth_token;
  // TLS on the TCP gRPC listeners: certificate chain and key (PEM), and the
  // CA client certificates must chain to (mTLS; empty: none asked for).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Serve non-loopback TCP (gRPC or HTTP) without TLS in plaintext anyway;
  // logged as a warning at start.
  bool insecure_allow_plaintext = false;
  // Threads for blocking work (storage reads, file I/O).
  int executor_threads = 4;
  // How hard each commit waits for the disk (see SqliteJobStore).
  SqliteJobStore::Synchronous synchronous = SqliteJobStore::Synchronous::kFull;
  // Which finished jobs are deleted, and how often retention runs.
  SqliteJobStore::Retention retention;
  absl::Duration retention_interval = absl::Minutes(1);
  // Idle watch streams get a heartbeat this often.
  absl::Duration heartbeat_interval = absl::Seconds(15);
  // Events buffered per watch stream before it catches up from the log.
  int watch_buffer = 256;
  // Jobs of one BulkUpdateJobs request queued to the store at a time
  // (BulkDeps::chunk_jobs).
  int bulk_chunk_jobs = 500;
  // Recent events kept in memory for watchers that fall a little behind.
  int event_ring = 4096;
  // How long a worker's lease on a job lasts without a message from it
  // (DispatcherOptions::lease_ttl). Workers heartbeat every third of it.
  absl::Duration lease_ttl = absl::Seconds(30);
  // Limits on the gRPC listeners (README "Security").
  // Connections served at once over the TCP listeners; more are closed at
  // once. Never more than the open-file limit less kReservedDescriptors.
  int max_connections = 10000;
  // A connection with no call open this long is closed (GOAWAY); one that
  // has not sent its HTTP/2 preface within min(this, 10s) is closed too.
  absl::Duration idle_timeout = absl::Minutes(5);
  // Largest request message accepted.
  int max_receive_message_bytes = 4 << 20;
  // Calls open at once on one connection (HTTP/2 SETTINGS).
  int max_concurrent_streams = 1000;
  // HTTP/2 rapid reset (CVE-2023-44487): streams a plaintext TCP client may
  // reset at once and per 10 s after; past it, GOAWAY and close
  // (http2_relay.h). 0: TCP connections go to gRPC unrelayed, unbounded.
  int max_stream_resets = 1000;
  // Keepalive enforcement: a client pinging more often than this without
  // data gets a strike; after max_ping_strikes its connection is closed.
  absl::Duration min_ping_interval = absl::Minutes(5);
  int max_ping_strikes = 2;
  // HTTP addresses (ParseListenAddress forms); empty: no HTTP face.
  std::vector<std::string> http_listen;
  // Origins whose pages may call the HTTP face (CORS); "*" for any.
  std::vector<std::string> http_cors_origins;
  // HTTP connections beyond this are closed at once.
  int http_max_connections = 10000;
  // An HTTP request must arrive whole within this.
  absl::Duration http_request_timeout = absl::Seconds(10);
  // An HTTP response write (an SSE event) the peer does not take within
  // this closes the connection.
  absl::Duration http_write_timeout = absl::Seconds(60);
  // A JSON API (unary) request not answered within this gets 504.
  absl::Duration http_call_timeout = absl::Seconds(60);

  // Webhooks (server/webhooks). Without a secret file none are sent and
  // SubmitJob refuses jobs with a webhook.
  // File of Standard Webhooks secrets, one "whsec_<base64>" per line.
  std::string webhook_secret_file;
  // The webhook of every job submitted without one (terminal events);
  // empty: none.
  std::string webhook_url;
  // Ranges the SSRF guard lets through ("127.0.0.1/32").
  std::vector<std::string> webhook_allow_cidrs;
  // Attempts per delivery, then it is dead.
  int webhook_max_attempts = 8;
  absl::Duration webhook_connect_timeout = absl::Seconds(5);
  // Whole attempt: connect, send, response.
  absl::Duration webhook_timeout = absl::Seconds(15);
  // Backoff after the first failed attempt (then x3 each time, +-20%
  // jitter), and its cap.
  absl::Duration webhook_initial_backoff = absl::Seconds(5);
  absl::Duration webhook_max_backoff = absl::Hours(1);
  // Deliveries in flight at once (HttpWebhookSender::Options).
  int webhook_max_in_flight = 64;
};

struct ServerCommandLine {
  ServerOptions options;
  bool help = false;
  bool version = false;
};

// Reads an environment variable; nullopt when unset.
using GetEnvFn = std::function<std::optional<std::string>(const std::string&)>;

// The process environment.
std::optional<std::string> ProcessEnv(const std::string& name);

// Where jobwired keeps its database without --db or JOBWIRE_DB. Like
// sdk::DefaultAddress (clients/cpp/default_address.h), the rule depends on
// the user, never on the current folder:
//
//   $XDG_DATA_HOME/jobwire/jobwire.db       when XDG_DATA_HOME is an
//                                           absolute path
//   /var/lib/jobwire/jobwire.db             else when running as root
//   $HOME/.local/share/jobwire/jobwire.db   else (HOME when absolute, else
//                                           the home of `uid` in passwd)
//
// Empty when none applies (no home folder): jobwired then asks for --db.
std::string DefaultDatabasePath(const GetEnvFn& getenv, uid_t uid);

// Parses `args` (without argv[0]). Fails with INVALID_ARGUMENT whose message
// names the flag or variable ("--shutdown-grace: bad duration \"x\"").
absl::StatusOr<ServerCommandLine> ParseServerCommandLine(
    const std::vector<std::string>& args, const GetEnvFn& getenv);

// The --help text (CLI11's): every flag with its variable.
std::string ServerUsage();

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_APP_SERVER_OPTIONS_H_
