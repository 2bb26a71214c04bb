#include "server/storage/pg_connection.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/errors.h"

namespace jobwire {
namespace {

// Type oids of pg_type (catalog/pg_type_d.h is not in libpq's headers).
constexpr Oid kBoolOid = 16;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;
constexpr Oid kFloat4Oid = 700;
constexpr Oid kFloat8Oid = 701;

uint64_t BigEndian(const char* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// A binary-format field as a ColumnValue.
class PgColumnValue final : public ColumnValue {
 public:
  PgColumnValue(const PGresult* r, int row, int col)
      : null_(PQgetisnull(r, row, col) != 0),
        type_(PQftype(r, col)),
        data_(PQgetvalue(r, row, col)),
        size_(PQgetlength(r, row, col)) {}

  bool isNull() const override { return null_; }
  int getInt() const override { return static_cast<int>(getInt64()); }
  int64_t getInt64() const override {
    if (null_) return 0;
    switch (type_) {
      case kInt8Oid:
        return static_cast<int64_t>(BigEndian(data_, 8));
      case kInt4Oid:
        return static_cast<int32_t>(BigEndian(data_, 4));
      case kInt2Oid:
        return static_cast<int16_t>(BigEndian(data_, 2));
      case kBoolOid:
        return data_[0] != 0 ? 1 : 0;
      case kFloat4Oid:
      case kFloat8Oid:
        return static_cast<int64_t>(getDouble());
      default:
        return std::strtoll(std::string(data_, size_).c_str(), nullptr, 10);
    }
  }
  double getDouble() const override {
    if (null_) return 0;
    if (type_ == kFloat8Oid) {
      const uint64_t bits = BigEndian(data_, 8);
      double d = 0;
      std::memcpy(&d, &bits, sizeof d);
      return d;
    }
    if (type_ == kFloat4Oid) {
      const auto bits = static_cast<uint32_t>(BigEndian(data_, 4));
      float f = 0;
      std::memcpy(&f, &bits, sizeof f);
      return f;
    }
    return static_cast<double>(getInt64());
  }
  std::string getString() const override {
    if (null_) return {};
    switch (type_) {
      case kInt8Oid:
      case kInt4Oid:
      case kInt2Oid:
      case kBoolOid:
        return absl::StrCat(getInt64());
      default:
        return std::string(data_, static_cast<size_t>(size_));
    }
  }
  const void* getBlob() const override { return data_; }
  int getBytes() const override { return null_ ? 0 : size_; }

 private:
  bool null_;
  Oid type_;
  const char* data_;
  int size_;
};

// The parameters of one statement in libpq's arrays; borrowed text and blob
// values are not copied.
struct Params {
  explicit Params(const std::vector<SqlValue>& values) {
    const size_t n = values.size();
    text.resize(n);
    ptrs.resize(n);
    lengths.resize(n);
    formats.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const SqlValue& v = values[i];
      switch (v.type) {
        case SqlValue::Type::kNull:
          ptrs[i] = nullptr;
          break;
        case SqlValue::Type::kInt:
          text[i] = absl::StrCat(v.i);
          ptrs[i] = text[i].c_str();
          break;
        case SqlValue::Type::kReal: {
          char buf[40];
          std::snprintf(buf, sizeof buf, "%.17g", v.d);
          text[i] = buf;
          ptrs[i] = text[i].c_str();
          break;
        }
        case SqlValue::Type::kText:
        case SqlValue::Type::kBlob:
          ptrs[i] = v.str().data();
          lengths[i] = static_cast<int>(v.str().size());
          formats[i] = 1;
          break;
      }
    }
  }
  std::vector<std::string> text;
  std::vector<const char*> ptrs;
  std::vector<int> lengths;
  std::vector<int> formats;
};

}  // namespace

absl::Status StatusFromPg(const PgError& e) {
  const std::string& s = e.sqlstate();
  const std::string message = absl::StrCat("postgresql: ", e.what());
  if (s.empty() || absl::StartsWith(s, "08") || absl::StartsWith(s, "57P") ||
      s == "53300" || s == "40001" || s == "40P01") {
    return UnavailableError(message, absl::Seconds(1));
  }
  if (absl::StartsWith(s, "23")) return absl::AlreadyExistsError(message);
  if (s == "53100") return ResourceExhaustedError(message, "DISK_FULL");
  if (s == "53200") return ResourceExhaustedError(message, "OUT_OF_MEMORY");
  return absl::InternalError(message);
}

std::string NumberPlaceholders(absl::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  char quote = 0;
  for (char c : sql) {
    if (quote != 0) {
      if (c == quote) quote = 0;
      out.push_back(c);
    } else if (c == '\'' || c == '"') {
      quote = c;
      out.push_back(c);
    } else if (c == '?') {
      absl::StrAppend(&out, "$", ++n);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool IsPostgresDb(absl::string_view db) {
  return absl::StartsWith(db, "postgres://") ||
         absl::StartsWith(db, "postgresql://") ||
         absl::StartsWith(db, "postgres:");
}

std::string PgConnInfo(absl::string_view db) {
  if (absl::StartsWith(db, "postgres://") ||
      absl::StartsWith(db, "postgresql://")) {
    return std::string(db);
  }
  return std::string(db.substr(std::strlen("postgres:")));
}

PgResult::~PgResult() {
  if (r_ != nullptr) PQclear(r_);
}

int PgResult::rows() const { return PQntuples(r_); }

int64_t PgResult::affected() const {
  const char* n = PQcmdTuples(r_);
  return n == nullptr || *n == '\0' ? 0 : std::strtoll(n, nullptr, 10);
}

bool PgResult::IsNull(int row, int col) const {
  return PQgetisnull(r_, row, col) != 0;
}

int64_t PgResult::Int64(int row, int col) const {
  return PgColumnValue(r_, row, col).getInt64();
}

std::string PgResult::String(int row, int col) const {
  return PgColumnValue(r_, row, col).getString();
}

void PgResult::Read(int row, int col,
                    const std::function<void(const ColumnValue&)>& read) const {
  read(PgColumnValue(r_, row, col));
}

Job PgResult::ReadJob(int row, bool light_only) const {
  Job job;
  int col = 0;
  for (const JobColumn& c : JobColumns()) {
    if (light_only && c.heavy) continue;
    c.set(PgColumnValue(r_, row, col++), &job);
  }
  return job;
}

JobEvent PgResult::ReadEvent(int row) const {
  JobEvent event;
  event.event_id = Int64(row, 0);
  int col = 1;
  for (const EventColumn& c : EventColumns())
    c.set(PgColumnValue(r_, row, col++), &event);
  return event;
}

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Open(
    const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &error);
  if (parsed == nullptr) {
    std::string why = error != nullptr ? error : "cannot parse";
    PQfreemem(error);
    // libpq's message quotes no value, so no password reaches the log.
    return InvalidArgumentError("db",
                                absl::StrCat("not a PostgreSQL connection "
                                             "string or URI: ",
                                             why));
  }
  PQconninfoFree(parsed);
  // application_name shows the server who holds a session (pg_stat_activity,
  // the single-node lock's error); a value in the string wins.
  const char* keys[] = {"dbname", "fallback_application_name", nullptr};
  const char* values[] = {conninfo.c_str(), "jobwired", nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn == nullptr)
    return absl::ResourceExhaustedError("postgresql: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string why = PQerrorMessage(conn);
    while (!why.empty() && why.back() == '\n') why.pop_back();
    PQfinish(conn);
    if (absl::StrContains(why, "password authentication failed") ||
        absl::StrContains(why, "no password supplied") ||
        absl::StrContains(why, "permission denied")) {
      return absl::PermissionDeniedError(absl::StrCat("postgresql: ", why));
    }
    return UnavailableError(absl::StrCat("postgresql: ", why),
                            absl::Seconds(1));
  }
  std::unique_ptr<PgConnection> c(new PgConnection(conn));
  try {
    // Quiet NOTICEs (CREATE ... IF NOT EXISTS) and bounded lock waits, so a
    // stuck lock is an error, not a hang.
    c->ExecScript(
        "SET client_min_messages = warning; SET lock_timeout = '30s'");
  } catch (const PgError& e) {
    return StatusFromPg(e);
  }
  return c;
}

PgConnection::~PgConnection() { PQfinish(conn_); }

void PgConnection::Throw(PGresult* r) const {
  std::string state;
  std::string message;
  if (r != nullptr) {
    const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (s != nullptr) state = s;
    message = PQresultErrorMessage(r);
    PQclear(r);
  }
  if (message.empty()) message = PQerrorMessage(conn_);
  while (!message.empty() && message.back() == '\n') message.pop_back();
  if (PQstatus(conn_) != CONNECTION_OK && state.empty()) state = "08006";
  throw PgError(state, message);
}

PgResult PgConnection::Check(PGresult* r) const {
  const ExecStatusType status =
      r == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(r);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) Throw(r);
  return PgResult(r);
}

std::pair<std::string, bool> PgConnection::PreparedName(
    const std::string& sql) {
  auto it = prepared_.find(sql);
  if (it != prepared_.end()) return {it->second, false};
  return {absl::StrCat("jw", ++prepared_names_), true};
}

PgResult PgConnection::Exec(const std::string& sql,
                            const std::vector<SqlValue>& params) {
  // Not a structured binding: the lambdas below capture these.
  std::pair<std::string, bool> found = PreparedName(sql);
  const std::string name = std::move(found.first);
  bool prepare = found.second;
  if (prepare && !queued_.empty()) {
    // Prepared with the queue (a statement prepared and then failed would
    // leave its name taken but unrecorded), executed on its own: the
    // first use only.
    Pipelined([&] {
      return PQsendPrepare(conn_, name.c_str(), sql.c_str(), 0, nullptr) == 1
                 ? 1
                 : 0;
    });
    prepared_.emplace(sql, name);
    prepare = false;
  }
  Params p(params);
  if (!queued_.empty()) {
    return Pipelined([&] {
      return PQsendQueryPrepared(conn_, name.c_str(),
                                 static_cast<int>(params.size()), p.ptrs.data(),
                                 p.lengths.data(), p.formats.data(),
                                 /*resultFormat=*/1) == 1
                 ? 1
                 : 0;
    });
  }
  if (prepare) {
    Check(PQprepare(conn_, name.c_str(), sql.c_str(), 0, nullptr));
    prepared_.emplace(sql, name);
  }
  return Check(PQexecPrepared(conn_, name.c_str(),
                              static_cast<int>(params.size()), p.ptrs.data(),
                              p.lengths.data(), p.formats.data(),
                              /*resultFormat=*/1));
}

PgResult PgConnection::ExecOnce(const std::string& sql,
                                const std::vector<SqlValue>& params) {
  Params p(params);
  auto send = [&] {
    return PQsendQueryParams(conn_, sql.c_str(),
                             static_cast<int>(params.size()), nullptr,
                             p.ptrs.data(), p.lengths.data(), p.formats.data(),
                             /*resultFormat=*/1) == 1
               ? 1
               : 0;
  };
  if (!queued_.empty()) return Pipelined(send);
  return Check(PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()),
                            nullptr, p.ptrs.data(), p.lengths.data(),
                            p.formats.data(),
                            /*resultFormat=*/1));
}

void PgConnection::ExecScript(const std::string& sql) {
  if (!queued_.empty()) {
    // The extended protocol of a pipeline takes one statement per query: a
    // script of several goes after the queue, in a round trip of its own.
    if (sql.find(';') == std::string::npos) {
      ExecOnce(sql, {});
      return;
    }
    ExecOnce("SELECT 1", {});
  }
  PgResult r = Check(PQexec(conn_, sql.c_str()));
}

void PgConnection::Queue(const std::string& sql,
                         const std::vector<SqlValue>& params) {
  Queued& q = queued_.emplace_back(Queued{sql, params});
  // Borrowed text and blobs are copied: the caller's may be gone by the
  // time the queue is sent.
  for (SqlValue& v : q.params) {
    if (v.ref != nullptr) {
      v.owned = *v.ref;
      v.ref = nullptr;
    }
  }
}

PgResult PgConnection::Pipelined(const std::function<int()>& send_own) {
  std::vector<Queued> queued;
  queued.swap(queued_);
  if (PQenterPipelineMode(conn_) != 1) Throw(nullptr);
  // Statements sent; a failed send (the connection broke) stops sending.
  // A queued statement runs prepared, prepared here on its first use;
  // prepares[i]: the statement result i prepares, recorded once it did.
  int sent = 0;
  bool send_failed = false;
  std::vector<std::pair<std::string, std::string>> prepares;  // sql, name
  std::vector<int> prepare_at;  // result index of prepares[j]
  for (const Queued& q : queued) {
    auto it = prepared_.find(q.sql);
    auto earlier =
        std::find_if(prepares.begin(), prepares.end(),
                     [&](const auto& p) { return p.first == q.sql; });
    std::string name;
    if (it != prepared_.end()) {
      name = it->second;
    } else if (earlier != prepares.end()) {
      name = earlier->second;  // prepared earlier in this pipeline
    } else {
      name = absl::StrCat("jw", ++prepared_names_);
      if (PQsendPrepare(conn_, name.c_str(), q.sql.c_str(), 0, nullptr) != 1) {
        send_failed = true;
        break;
      }
      prepares.emplace_back(q.sql, name);
      prepare_at.push_back(sent++);
    }
    Params p(q.params);
    if (PQsendQueryPrepared(conn_, name.c_str(),
                            static_cast<int>(q.params.size()), p.ptrs.data(),
                            p.lengths.data(), p.formats.data(),
                            /*resultFormat=*/1) != 1) {
      send_failed = true;
      break;
    }
    ++sent;
  }
  if (!send_failed) {
    const int own = send_own();
    if (own == 0) send_failed = true;
    sent += own;
  }
  const bool synced = PQpipelineSync(conn_) == 1;
  // Every statement's result (each followed by a NULL), then the sync's.
  PGresult* first_error = nullptr;
  PGresult* last = nullptr;
  size_t next_prepare = 0;
  for (int i = 0; i < sent; ++i) {
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) break;  // the connection is gone
    while (PGresult* extra = PQgetResult(conn_)) PQclear(extra);
    const ExecStatusType status = PQresultStatus(r);
    if (next_prepare < prepares.size() && prepare_at[next_prepare] == i) {
      if (status == PGRES_COMMAND_OK)
        prepared_.insert(std::move(prepares[next_prepare]));
      ++next_prepare;
    }
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK &&
        first_error == nullptr && status != PGRES_PIPELINE_ABORTED) {
      first_error = r;
      continue;
    }
    if (last != nullptr) PQclear(last);
    last = r;
  }
  if (synced) {
    if (PGresult* sync = PQgetResult(conn_)) PQclear(sync);
  }
  PQexitPipelineMode(conn_);
  if (first_error != nullptr) {
    if (last != nullptr) PQclear(last);
    Throw(first_error);
  }
  if (send_failed || !synced || last == nullptr ||
      PQresultStatus(last) == PGRES_PIPELINE_ABORTED) {
    if (last != nullptr) PQclear(last);
    Throw(nullptr);
  }
  return PgResult(last);
}

bool PgConnection::Reconnect() {
  if (PQstatus(conn_) == CONNECTION_OK) return true;
  prepared_.clear();
  queued_.clear();
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) return false;
  try {
    ExecScript("SET client_min_messages = warning; SET lock_timeout = '30s'");
  } catch (const PgError&) {
    return false;
  }
  return true;
}

std::vector<std::string> PgConnection::WaitForNotifications(
    absl::Duration timeout) {
  std::vector<std::string> payloads;
  auto drain = [&] {
    while (PGnotify* n = PQnotifies(conn_)) {
      payloads.emplace_back(n->extra != nullptr ? n->extra : "");
      PQfreemem(n);
    }
  };
  drain();
  if (!payloads.empty()) return payloads;
  const int fd = PQsocket(conn_);
  if (fd < 0 || PQstatus(conn_) != CONNECTION_OK) Throw(nullptr);
  pollfd p{fd, POLLIN, 0};
  const int ready = poll(&p, 1,
                         static_cast<int>(absl::ToInt64Milliseconds(
                             std::max(timeout, absl::ZeroDuration()))));
  if (ready > 0) {
    if (PQconsumeInput(conn_) == 0 || PQstatus(conn_) != CONNECTION_OK)
      Throw(nullptr);
    drain();
  }
  return payloads;
}

bool PgConnection::InFailedTransaction() const {
  return PQtransactionStatus(conn_) == PQTRANS_INERROR;
}

bool PgConnection::InTransaction() const {
  const PGTransactionStatusType s = PQtransactionStatus(conn_);
  return s == PQTRANS_INTRANS || s == PQTRANS_INERROR;
}

std::string PgConnection::Describe() const {
  const char* host = PQhost(conn_);
  const char* port = PQport(conn_);
  const char* db = PQdb(conn_);
  const char* user = PQuser(conn_);
  return absl::StrCat(
      user != nullptr ? user : "", "@", host != nullptr ? host : "", ":",
      port != nullptr ? port : "", "/", db != nullptr ? db : "");
}

int PgConnection::BackendPid() const { return PQbackendPID(conn_); }

}  // namespace jobwire
