#include "server/app/server_options.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "clients/cpp/default_address.h"
#include "server/common/status_macros.h"
#include "server/transport/token_file.h"

namespace jobwire {
namespace {

using Setter =
    std::function<absl::Status(const std::string& value, ServerOptions*)>;

struct Flag {
  const char* name;  // without "--"
  const char* env;
  const char* value_name;
  const char* help;
  Setter set;
};

absl::Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(what);
}

absl::Status ParseNonNegativeDuration(const std::string& v,
                                      absl::Duration* out) {
  absl::Duration d;
  if (!absl::ParseDuration(v, &d) || d < absl::ZeroDuration()) {
    return Bad(absl::StrCat("bad duration \"", v, "\" (e.g. 10s, 500ms)"));
  }
  *out = d;
  return absl::OkStatus();
}

// Flags that may be given more than once (their variables hold a
// comma-separated list).
bool IsRepeatable(absl::string_view name) {
  return name == "listen" || name == "http" || name == "http-cors-origin" ||
         name == "webhook-allow-cidr" || name == "socket-allow-uid" ||
         name == "socket-allow-gid";
}

absl::Status ParsePositiveDuration(const std::string& v, absl::Duration* out) {
  absl::Status s = ParseNonNegativeDuration(v, out);
  if (s.ok() && *out <= absl::ZeroDuration()) {
    return Bad(absl::StrCat("bad duration \"", v, "\" (more than 0)"));
  }
  return s;
}

// A group by name or number.
absl::Status ParseGroup(const std::string& v, gid_t* out) {
  if (absl::SimpleAtoi(v, out)) return absl::OkStatus();
  const group* gr = ::getgrnam(v.c_str());
  if (gr == nullptr) return Bad(absl::StrCat("unknown group \"", v, "\""));
  *out = gr->gr_gid;
  return absl::OkStatus();
}

// An integer in [lo, hi].
absl::Status ParseCount(const std::string& v, int lo, int hi, int* out) {
  int n = 0;
  if (!absl::SimpleAtoi(v, &n) || n < lo || n > hi) {
    return Bad(absl::StrCat("bad count \"", v, "\" (", lo, " to ", hi, ")"));
  }
  *out = n;
  return absl::OkStatus();
}

const std::vector<Flag>& Flags() {
  static const auto* flags = new std::vector<Flag>{
      {"listen", "JOBWIRE_LISTEN", "ADDR",
       "address to serve; repeatable: unix:PATH, unix:///ABS, "
       "unix-abstract:NAME, "
       "HOST:PORT (default unix:$XDG_RUNTIME_DIR/jobwire.sock, else as "
       "root unix:/run/jobwire/jobwire.sock, else "
       "unix:/tmp/jobwire-$UID/jobwire.sock; and 127.0.0.1:50051)",
       [](const std::string& v, ServerOptions* o) {
         if (v.empty()) return Bad("empty address");
         o->listen.push_back(v);
         return absl::OkStatus();
       }},
      {"http", "JOBWIRE_HTTP", "ADDR",
       "HTTP address (JSON API, Server-Sent Events, /metrics); repeatable: "
       "HOST:PORT or unix:PATH (default none; tools/run serves "
       "127.0.0.1:8080)",
       [](const std::string& v, ServerOptions* o) {
         if (v.empty()) return Bad("empty address");
         o->http_listen.push_back(v);
         return absl::OkStatus();
       }},
      {"http-cors-origin", "JOBWIRE_HTTP_CORS_ORIGIN", "ORIGIN",
       "origin whose pages may call the HTTP API, e.g. "
       "https://app.example.com, or * for any; repeatable",
       [](const std::string& v, ServerOptions* o) {
         if (v.empty()) return Bad("empty origin");
         o->http_cors_origins.push_back(v);
         return absl::OkStatus();
       }},
      {"http-max-connections", "JOBWIRE_HTTP_MAX_CONNECTIONS", "N",
       "HTTP connections served at once; more are closed (default 10000)",
       [](const std::string& v, ServerOptions* o) {
         int n = 0;
         if (!absl::SimpleAtoi(v, &n) || n < 1 || n > 1000000) {
           return Bad(absl::StrCat("bad count \"", v, "\" (1 to 1000000)"));
         }
         o->http_max_connections = n;
         return absl::OkStatus();
       }},
      {"http-request-timeout", "JOBWIRE_HTTP_REQUEST_TIMEOUT", "DURATION",
       "an HTTP request (headers and body) must arrive within this, else "
       "the connection is closed (default 10s)",
       [](const std::string& v, ServerOptions* o) {
         absl::Status s = ParseNonNegativeDuration(v, &o->http_request_timeout);
         if (s.ok() && o->http_request_timeout == absl::ZeroDuration()) {
           return Bad("must be more than 0");
         }
         return s;
       }},
      {"http-write-timeout", "JOBWIRE_HTTP_WRITE_TIMEOUT", "DURATION",
       "an HTTP response or event the peer does not read within this closes "
       "its connection (default 60s)",
       [](const std::string& v, ServerOptions* o) {
         absl::Status s = ParseNonNegativeDuration(v, &o->http_write_timeout);
         if (s.ok() && o->http_write_timeout == absl::ZeroDuration()) {
           return Bad("must be more than 0");
         }
         return s;
       }},
      {"http-call-timeout", "JOBWIRE_HTTP_CALL_TIMEOUT", "DURATION",
       "a JSON API request not answered within this gets 504, as a gRPC "
       "call past its deadline (default 60s)",
       [](const std::string& v, ServerOptions* o) {
         absl::Status s = ParseNonNegativeDuration(v, &o->http_call_timeout);
         if (s.ok() && o->http_call_timeout == absl::ZeroDuration()) {
           return Bad("must be more than 0");
         }
         return s;
       }},
      {"max-connections", "JOBWIRE_MAX_CONNECTIONS", "N",
       "gRPC connections served at once over TCP; more are closed at once "
       "(default 10000, at most the open-file limit less 256)",
       [](const std::string& v, ServerOptions* o) {
         return ParseCount(v, 1, 1000000, &o->max_connections);
       }},
      {"idle-timeout", "JOBWIRE_IDLE_TIMEOUT", "DURATION",
       "a gRPC connection with no call open this long is closed; one that "
       "sends no HTTP/2 preface within min(this, 10s) too (default 5m)",
       [](const std::string& v, ServerOptions* o) {
         absl::Status s = ParsePositiveDuration(v, &o->idle_timeout);
         if (s.ok() && o->idle_timeout > absl::Hours(24 * 20)) {
           return Bad(absl::StrCat("bad duration \"", v, "\" (at most 480h)"));
         }
         return s;
       }},
      {"max-receive-message-bytes", "JOBWIRE_MAX_RECEIVE_MESSAGE_BYTES", "N",
       "largest request accepted, in bytes: a gRPC message (as protobuf) or an "
       "HTTP body; a larger one gets RESOURCE_EXHAUSTED (HTTP 413) with reason "
       "REQUEST_TOO_LARGE (default 4194304)",
       [](const std::string& v, ServerOptions* o) {
         return ParseCount(v, 1024, 64 << 20, &o->max_receive_message_bytes);
       }},
      {"max-concurrent-streams", "JOBWIRE_MAX_CONCURRENT_STREAMS", "N",
       "gRPC calls open at once on one connection (default 1000)",
       [](const std::string& v, ServerOptions* o) {
         return ParseCount(v, 1, 100000, &o->max_concurrent_streams);
       }},
      {"max-stream-resets", "JOBWIRE_MAX_STREAM_RESETS", "N",
       "streams a plaintext TCP client may reset at once and per 10s after; "
       "past it the connection gets GOAWAY and is closed (HTTP/2 rapid "
       "reset); 0 relays nothing and has no limit (default 1000)",
       [](const std::string& v, ServerOptions* o) {
         return ParseCount(v, 0, 1000000, &o->max_stream_resets);
       }},
      {"min-ping-interval", "JOBWIRE_MIN_PING_INTERVAL", "DURATION",
       "keepalive pings without data closer than this earn the client a "
       "strike (default 5m)",
       [](const std::string& v, ServerOptions* o) {
         absl::Status s = ParseNonNegativeDuration(v, &o->min_ping_interval);
         if (s.ok() && o->min_ping_interval > absl::Hours(24)) {
           return Bad(absl::StrCat("bad duration \"", v, "\" (at most 24h)"));
         }
         return s;
       }},
      {"max-ping-strikes", "JOBWIRE_MAX_PING_STRIKES", "N",
       "strikes before a connection that pings too often is closed; 0 for "
       "no limit (default 2)",
       [](const std::string& v, ServerOptions* o) {
         return ParseCount(v, 0, 1000, &o->max_ping_strikes);
       }},
      {"db", "JOBWIRE_DB", "PATH",
       "SQLite database file; missing folders are created owner-only "
       "(default $XDG_DATA_HOME/jobwire/jobwire.db, else as root "
       "/var/lib/jobwire/jobwire.db, else "
       "~/.local/share/jobwire/jobwire.db); or a PostgreSQL database: "
       "postgres://... or postgresql://... (libpq URI), or "
       "postgres:KEYWORDS (libpq keywords; \"postgres:\" alone takes the "
       "PG* environment variables); several jobwired may serve one "
       "PostgreSQL database",
       [](const std::string& v, ServerOptions* o) {
         if (v.empty()) return Bad("empty path");
         o->db_path = v;
         return absl::OkStatus();
       }},
      {"node-name", "JOBWIRE_NODE_NAME", "NAME",
       "this node's name among several on one PostgreSQL database, shown by "
       "GetServerInfo (default host:pid)",
       [](const std::string& v, ServerOptions* o) {
         if (v.empty() || v.size() > 128) return Bad("1 to 128 characters");
         o->node_name = v;
         return absl::OkStatus();
       }},
      {"log-level", "JOBWIRE_LOG_LEVEL", "LEVEL",
       "debug, info, warning or error (default info)",
       [](const std::string& v, ServerOptions* o) {
         if (!ParseLogLevel(v, &o->log_level)) {
           return Bad(absl::StrCat("unknown level \"", v,
                                   "\" (want debug, info, warning, error)"));
         }
         return absl::OkStatus();
       }},
      {"log-format", "JOBWIRE_LOG_FORMAT", "FORMAT",
       "text or json (default text)",
       [](const std::string& v, ServerOptions* o) {
         if (!ParseLogFormat(v, &o->log_format)) {
           return Bad(
               absl::StrCat("unknown format \"", v, "\" (want text, json)"));
         }
         return absl::OkStatus();
       }},
      {"shutdown-grace", "JOBWIRE_SHUTDOWN_GRACE", "DURATION",
       "time open streams get to finish after a stop signal, e.g. 10s, 500ms "
       "(default 10s)",
       [](const std::string& v, ServerOptions* o) {
         absl::Duration d;
         if (!absl::ParseDuration(v, &d) || d < absl::ZeroDuration()) {
           return Bad(
               absl::StrCat("bad duration \"", v, "\" (e.g. 10s, 500ms)"));
         }
         o->shutdown_grace = d;
         return absl::OkStatus();
       }},
      {"socket-mode", "JOBWIRE_SOCKET_MODE", "MODE",
       "octal permissions of Unix socket files (default 0600)",
       [](const std::string& v, ServerOptions* o) {
         char* end = nullptr;
         long mode = v.empty() ? -1 : std::strtol(v.c_str(), &end, 8);
         if (mode < 0 || mode > 0777 || end == nullptr || *end != '\0') {
           return Bad(
               absl::StrCat("bad mode \"", v, "\" (octal, e.g. 0600, 0660)"));
         }
         o->socket_mode = static_cast<mode_t>(mode);
         return absl::OkStatus();
       }},
      {"socket-allow-uid", "JOBWIRE_SOCKET_ALLOW_UID", "USER",
       "serve a Unix socket peer only if its uid is jobwired's own or one "
       "of these (a name or number); repeatable",
       [](const std::string& v, ServerOptions* o) {
         uid_t uid = 0;
         if (!absl::SimpleAtoi(v, &uid)) {
           const passwd* pw = ::getpwnam(v.c_str());
           if (pw == nullptr) {
             return Bad(absl::StrCat("unknown user \"", v, "\""));
           }
           uid = pw->pw_uid;
         }
         o->socket_allow_uids.push_back(uid);
         return absl::OkStatus();
       }},
      {"socket-group", "JOBWIRE_SOCKET_GROUP", "GROUP",
       "give Unix socket files to this group (a name or number); with "
       "--socket-mode 0660 its members may connect",
       [](const std::string& v, ServerOptions* o) {
         gid_t gid = 0;
         JW_RETURN_IF_ERROR(ParseGroup(v, &gid));
         o->socket_group = gid;
         return absl::OkStatus();
       }},
      {"socket-allow-gid", "JOBWIRE_SOCKET_ALLOW_GID", "GROUP",
       "serve a Unix socket peer whose primary gid is one of these (a name "
       "or number); repeatable",
       [](const std::string& v, ServerOptions* o) {
         gid_t gid = 0;
         JW_RETURN_IF_ERROR(ParseGroup(v, &gid));
         o->socket_allow_gids.push_back(gid);
         return absl::OkStatus();
       }},
      {"auth-token", "JOBWIRE_AUTH_TOKEN", "TOKEN",
       "require 'authorization: Bearer TOKEN' on every method but health and "
       "reflection; needed for a non-loopback TCP listener; at least 6 "
       "visible ASCII characters, no spaces",
       [](const std::string& v, ServerOptions* o) {
         // Empty: no auth. Otherwise a token a client can send as it is
         // and not guess at once.
         if (!v.empty()) JW_RETURN_IF_ERROR(CheckTokenText(v));
         o->auth_token = v;
         return absl::OkStatus();
       }},
      {"tls-cert", "JOBWIRE_TLS_CERT", "PATH",
       "serve TLS on the TCP listeners, gRPC and HTTP (HTTPS), with this "
       "PEM certificate chain (needs --tls-key; re-read when it changes)",
       [](const std::string& v, ServerOptions* o) {
         if (v.empty()) return Bad("empty path");
         o->tls_cert = v;
         return absl::OkStatus();
       }},
      {"tls-key", "JOBWIRE_TLS_KEY", "PATH",
       "the PEM private key of --tls-cert",
       [](const std::string& v, ServerOptions* o) {
         if (v.empty()) return Bad("empty path");
         o->tls_key = v;
         return absl::OkStatus();
       }},
      {"tls-client-ca", "JOBWIRE_TLS_CLIENT_CA", "PATH",
       "require a client certificate on TCP, verified against these PEM CA "
       "certificates (mTLS)",
       [](const std::string& v, ServerOptions* o) {
         if (v.empty()) return Bad("empty path");
         o->tls_client_ca = v;
         return absl::OkStatus();
       }},
      {"insecure-allow-plaintext", "JOBWIRE_INSECURE_ALLOW_PLAINTEXT", "",
       "serve a non-loopback TCP address (gRPC or HTTP) without TLS "
       "(no --tls-cert); logged as a warning (default false)",
       [](const std::string& v, ServerOptions* o) {
         if (v != "true" && v != "false" && v != "1" && v != "0") {
           return Bad(absl::StrCat("want true or false, not \"", v, "\""));
         }
         o->insecure_allow_plaintext = v == "true" || v == "1";
         return absl::OkStatus();
       }},
      {"auth-token-file", "JOBWIRE_AUTH_TOKEN_FILE", "PATH",
       "named tokens with scopes, one 'NAME TOKEN SCOPE[,SCOPE...]' per "
       "line (scopes: submit, read, work, admin); re-read when it changes",
       [](const std::string& v, ServerOptions* o) {
         if (v.empty()) return Bad("empty path");
         o->auth_token_file = v;
         return absl::OkStatus();
       }},
      {"executor-threads", "JOBWIRE_EXECUTOR_THREADS", "N",
       "threads for blocking work (default 4)",
       [](const std::string& v, ServerOptions* o) {
         int n = 0;
         if (!absl::SimpleAtoi(v, &n) || n < 1 || n > 256) {
           return Bad(absl::StrCat("bad thread count \"", v, "\" (1 to 256)"));
         }
         o->executor_threads = n;
         return absl::OkStatus();
       }},
      {"synchronous", "JOBWIRE_SYNCHRONOUS", "MODE",
       "full (default: an acknowledged job survives power loss), normal "
       "(survives a jobwired crash; the last commits may be lost on power "
       "loss) or off (tests only: may corrupt the database on power loss)",
       [](const std::string& v, ServerOptions* o) {
         if (v == "full") {
           o->synchronous = SqliteJobStore::Synchronous::kFull;
         } else if (v == "normal") {
           o->synchronous = SqliteJobStore::Synchronous::kNormal;
         } else if (v == "off") {
           o->synchronous = SqliteJobStore::Synchronous::kOff;
         } else {
           return Bad(absl::StrCat("unknown mode \"", v,
                                   "\" (want full, normal, off)"));
         }
         return absl::OkStatus();
       }},
      {"retention-max-age", "JOBWIRE_RETENTION_MAX_AGE", "DURATION",
       "delete finished jobs this long after they finished, e.g. 168h "
       "(default 0: keep)",
       [](const std::string& v, ServerOptions* o) {
         return ParseNonNegativeDuration(v, &o->retention.terminal_max_age);
       }},
      {"retention-max-jobs", "JOBWIRE_RETENTION_MAX_JOBS", "N",
       "keep at most N finished jobs, the oldest go first (default 0: no "
       "limit)",
       [](const std::string& v, ServerOptions* o) {
         int64_t n = 0;
         if (!absl::SimpleAtoi(v, &n) || n < 0) {
           return Bad(absl::StrCat("bad count \"", v, "\" (0 or more)"));
         }
         o->retention.max_terminal_jobs = n;
         return absl::OkStatus();
       }},
      {"retention-interval", "JOBWIRE_RETENTION_INTERVAL", "DURATION",
       "how often retention runs (default 1m)",
       [](const std::string& v, ServerOptions* o) {
         absl::Status s = ParseNonNegativeDuration(v, &o->retention_interval);
         if (s.ok() && o->retention_interval <= absl::ZeroDuration()) {
           return Bad(absl::StrCat("bad duration \"", v, "\" (more than 0)"));
         }
         return s;
       }},
      {"heartbeat-interval", "JOBWIRE_HEARTBEAT_INTERVAL", "DURATION",
       "idle watch streams get a heartbeat this often (default 15s)",
       [](const std::string& v, ServerOptions* o) {
         return ParsePositiveDuration(v, &o->heartbeat_interval);
       }},
      {"lease-ttl", "JOBWIRE_LEASE_TTL", "DURATION",
       "a running job goes back to its queue when its worker is silent this "
       "long (default 30s; workers heartbeat every third of it)",
       [](const std::string& v, ServerOptions* o) {
         absl::Status s = ParseNonNegativeDuration(v, &o->lease_ttl);
         if (s.ok() && o->lease_ttl < absl::Milliseconds(300)) {
           return Bad(
               absl::StrCat("bad duration \"", v, "\" (at least 300ms)"));
         }
         return s;
       }},
      {"watch-buffer", "JOBWIRE_WATCH_BUFFER", "N",
       "events buffered per watch stream before it catches up from the log "
       "(default 256)",
       [](const std::string& v, ServerOptions* o) {
         int n = 0;
         if (!absl::SimpleAtoi(v, &n) || n < 2 || n > 65536) {
           return Bad(absl::StrCat("bad size \"", v, "\" (2 to 65536)"));
         }
         o->watch_buffer = n;
         return absl::OkStatus();
       }},
      {"bulk-chunk-jobs", "JOBWIRE_BULK_CHUNK_JOBS", "N",
       "jobs of one BulkUpdateJobs request per commit; fewer let other "
       "writes in sooner, more go faster (default 500)",
       [](const std::string& v, ServerOptions* o) {
         int n = 0;
         if (!absl::SimpleAtoi(v, &n) || n < 1 || n > 1000) {
           return Bad(absl::StrCat("bad size \"", v, "\" (1 to 1000)"));
         }
         o->bulk_chunk_jobs = n;
         return absl::OkStatus();
       }},
      {"webhook-secret-file", "JOBWIRE_WEBHOOK_SECRET_FILE", "PATH",
       "Standard Webhooks secrets, one whsec_<base64> per line: each "
       "delivery is signed with every one (the first line first). Without "
       "it no webhooks are sent and jobs with a webhook are refused",
       [](const std::string& v, ServerOptions* o) {
         if (v.empty()) return Bad("empty path");
         o->webhook_secret_file = v;
         return absl::OkStatus();
       }},
      {"webhook-url", "JOBWIRE_WEBHOOK_URL", "URL",
       "server-wide webhook: the terminal events of every job that has no "
       "webhook of its own are sent here (needs --webhook-secret-file)",
       [](const std::string& v, ServerOptions* o) {
         if (v.empty()) return Bad("empty URL");
         o->webhook_url = v;
         return absl::OkStatus();
       }},
      {"webhook-allow-cidr", "JOBWIRE_WEBHOOK_ALLOW_CIDR", "CIDR",
       "repeatable (the variable comma-separated): a range webhooks may be "
       "sent to although it is loopback, private, link-local... (e.g. "
       "127.0.0.1/32)",
       [](const std::string& v, ServerOptions* o) {
         if (v.empty()) return Bad("empty range");
         o->webhook_allow_cidrs.push_back(v);
         return absl::OkStatus();
       }},
      {"webhook-max-attempts", "JOBWIRE_WEBHOOK_MAX_ATTEMPTS", "N",
       "attempts per webhook delivery before it is dead (default 8)",
       [](const std::string& v, ServerOptions* o) {
         return ParseCount(v, 1, 100, &o->webhook_max_attempts);
       }},
      {"webhook-connect-timeout", "JOBWIRE_WEBHOOK_CONNECT_TIMEOUT", "DURATION",
       "connect timeout of a webhook attempt (default 5s)",
       [](const std::string& v, ServerOptions* o) {
         return ParsePositiveDuration(v, &o->webhook_connect_timeout);
       }},
      {"webhook-timeout", "JOBWIRE_WEBHOOK_TIMEOUT", "DURATION",
       "whole webhook attempt: connect, send, response (default 15s)",
       [](const std::string& v, ServerOptions* o) {
         return ParsePositiveDuration(v, &o->webhook_timeout);
       }},
      {"webhook-initial-backoff", "JOBWIRE_WEBHOOK_INITIAL_BACKOFF", "DURATION",
       "wait after a failed webhook attempt, x3 after each further one, "
       "+-20% jitter (default 5s); a 429 or 503 Retry-After wins",
       [](const std::string& v, ServerOptions* o) {
         return ParsePositiveDuration(v, &o->webhook_initial_backoff);
       }},
      {"webhook-max-in-flight", "JOBWIRE_WEBHOOK_MAX_IN_FLIGHT", "N",
       "webhook deliveries in flight at once, on one thread (default 64)",
       [](const std::string& v, ServerOptions* o) {
         return ParseCount(v, 1, 1024, &o->webhook_max_in_flight);
       }},
      {"webhook-max-backoff", "JOBWIRE_WEBHOOK_MAX_BACKOFF", "DURATION",
       "longest wait between webhook attempts (default 1h)",
       [](const std::string& v, ServerOptions* o) {
         return ParsePositiveDuration(v, &o->webhook_max_backoff);
       }},
  };
  return *flags;
}

// jobwired's command line as a CLI11 App: one option per Flags() entry,
// each collecting its values into (*values)[i] (one per occurrence), and
// --version into *version. `values` and `version` must outlive the App.
std::unique_ptr<CLI::App> NewApp(std::vector<std::vector<std::string>>* values,
                                 bool* version) {
  auto app = std::make_unique<CLI::App>(
      "jobwired serves the jobwire gRPC API (JobService, WorkerService,\n"
      "AdminService, grpc.health.v1.Health, server reflection) on every\n"
      "--listen address at once. SIGINT, SIGTERM, SIGHUP or SIGQUIT stop it\n"
      "gracefully; a second signal skips the grace period. Each flag has the\n"
      "environment variable in brackets; the flag wins over it.\n"
      "`jobwired --db DB migrate` applies the database's pending schema\n"
      "migrations, prints them and exits (jobwired also migrates at start).",
      "jobwired");
  app->add_flag("--version", *version, "print the version");
  // Flags after the subcommand belong to jobwired: `jobwired migrate --db X`.
  app->add_subcommand(
         "migrate",
         "apply the pending schema migrations of --db (SQLite or "
         "PostgreSQL), print what was applied, and exit 0; safe beside "
         "running servers and other migrate runs (they take turns, each "
         "migration is applied once)")
      ->fallthrough();
  values->resize(Flags().size());
  for (size_t i = 0; i < Flags().size(); ++i) {
    const Flag& f = Flags()[i];
    const std::string help = absl::StrCat(f.help, " [", f.env, "]");
    if (f.value_name[0] == '\0') {  // a switch: --flag alone, or --flag=false
      app->add_flag(absl::StrCat("--", f.name), (*values)[i], help)
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
      continue;
    }
    CLI::Option* option =
        app->add_option(absl::StrCat("--", f.name), (*values)[i], help)
            ->type_name(f.value_name)
            ->allow_extra_args(false);
    if (IsRepeatable(f.name)) {
      option->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    } else {  // given twice, the last wins
      option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
          ->expected(1);
    }
  }
  return app;
}

}  // namespace

std::optional<std::string> ProcessEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

std::string DefaultDatabasePath(const GetEnvFn& getenv, uid_t uid) {
  auto absolute = [&](const char* name) -> std::optional<std::string> {
    std::optional<std::string> dir = getenv(name);
    if (!dir.has_value() || dir->empty() || dir->front() != '/')
      return std::nullopt;
    while (dir->size() > 1 && dir->back() == '/') dir->pop_back();
    return dir;
  };
  if (std::optional<std::string> data = absolute("XDG_DATA_HOME"))
    return absl::StrCat(*data == "/" ? "" : *data, "/jobwire/jobwire.db");
  if (uid == 0) return "/var/lib/jobwire/jobwire.db";
  std::optional<std::string> home = absolute("HOME");
  if (!home.has_value()) {
    passwd entry{};
    passwd* found = nullptr;
    std::vector<char> buf(16384);
    if (::getpwuid_r(uid, &entry, buf.data(), buf.size(), &found) == 0 &&
        found != nullptr && found->pw_dir != nullptr &&
        found->pw_dir[0] == '/') {
      home = std::string(found->pw_dir);
    }
  }
  if (!home.has_value()) return "";
  return absl::StrCat(*home == "/" ? "" : *home,
                      "/.local/share/jobwire/jobwire.db");
}

absl::StatusOr<ServerCommandLine> ParseServerCommandLine(
    const std::vector<std::string>& args, const GetEnvFn& getenv) {
  ServerCommandLine cl;
  ServerOptions& o = cl.options;
  o.listen = {sdk::DefaultAddress(getenv, ::geteuid()), "127.0.0.1:50051"};

  // Environment first, so that flags win.
  for (const Flag& f : Flags()) {
    std::optional<std::string> v = getenv(f.env);
    if (!v.has_value()) continue;
    absl::Status s;
    if (IsRepeatable(f.name)) {
      if (absl::string_view(f.name) == "listen") o.listen.clear();
      for (absl::string_view part :
           absl::StrSplit(*v, ',', absl::SkipWhitespace())) {
        s.Update(f.set(std::string(absl::StripAsciiWhitespace(part)), &o));
      }
      if (absl::string_view(f.name) == "listen" && o.listen.empty())
        s.Update(Bad("no address"));
    } else {
      s = f.set(*v, &o);
    }
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(f.env, ": ", s.message()));
    }
  }

  // A flag given on the command line replaces its environment variable's
  // (and the default) values; a repeatable one takes every occurrence.
  std::vector<std::vector<std::string>> values;
  std::unique_ptr<CLI::App> app = NewApp(&values, &cl.version);
  try {
    app->parse(std::vector<std::string>(args.rbegin(), args.rend()));
  } catch (const CLI::CallForHelp&) {
    cl.help = true;
    return cl;
  } catch (const CLI::ParseError& e) {
    std::string message = e.what();
    if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
      // Name the first unknown flag, else the first extra argument.
      std::vector<std::string> extras = app->remaining();
      auto flag = std::find_if(extras.begin(), extras.end(), [](auto& a) {
        return absl::StartsWith(a, "-");
      });
      message = flag != extras.end()
                    ? absl::StrCat("unknown flag ", *flag, "; see --help")
                    : absl::StrCat("unexpected argument \"",
                                   extras.empty() ? "" : extras.front(),
                                   "\"; see --help");
    }
    return absl::InvalidArgumentError(message);
  }
  cl.migrate = app->got_subcommand("migrate");
  for (size_t i = 0; i < Flags().size(); ++i) {
    const Flag& f = Flags()[i];
    if (values[i].empty()) continue;
    const std::string name = f.name;
    if (name == "listen") o.listen.clear();
    if (name == "http") o.http_listen.clear();
    if (name == "http-cors-origin") o.http_cors_origins.clear();
    if (name == "webhook-allow-cidr") o.webhook_allow_cidrs.clear();
    if (name == "socket-allow-uid") o.socket_allow_uids.clear();
    if (name == "socket-allow-gid") o.socket_allow_gids.clear();
    std::vector<std::string> given = values[i];
    if (!IsRepeatable(name)) given = {values[i].back()};  // the last wins
    for (const std::string& value : given) {
      if (absl::Status s = f.set(value, &o); !s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, ": ", s.message()));
      }
    }
  }
  if (o.db_path.empty()) {
    o.db_path = DefaultDatabasePath(getenv, ::geteuid());
    if (o.db_path.empty()) {
      return absl::InvalidArgumentError(
          "--db: no default database path (no XDG_DATA_HOME and no home "
          "folder); give --db PATH or JOBWIRE_DB");
    }
  }
  return cl;
}

std::string ServerUsage() {
  std::vector<std::vector<std::string>> values;
  bool version = false;
  return NewApp(&values, &version)->help();
}

}  // namespace jobwire
