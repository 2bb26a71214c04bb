#include "server/storage/sqlite_rows.h"

#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace jobwire {
namespace {

using C = const ColumnValue&;

// A SQLite column as a ColumnValue.
class SqliteColumnValue final : public ColumnValue {
 public:
  explicit SqliteColumnValue(SQLite::Column c) : c_(std::move(c)) {}
  bool isNull() const override { return c_.isNull(); }
  int getInt() const override { return c_.getInt(); }
  int64_t getInt64() const override { return c_.getInt64(); }
  double getDouble() const override { return c_.getDouble(); }
  std::string getString() const override { return c_.getString(); }
  const void* getBlob() const override { return c_.getBlob(); }
  int getBytes() const override { return c_.getBytes(); }

 private:
  SQLite::Column c_;
};

// Text borrowed from `*v`, or NULL when v is null.
SqlValue OptText(const std::string* v) {
  return v != nullptr ? SqlValue::TextRef(*v) : SqlValue::Null();
}
SqlValue DurationValue(absl::Duration d) {
  return SqlValue::Int(absl::ToInt64Microseconds(d));
}
absl::Duration DurationFromColumn(C c) {
  return absl::Microseconds(c.getInt64());
}
std::string BlobFromColumn(C c) {
  if (c.isNull()) return {};
  return std::string(static_cast<const char*>(c.getBlob()),
                     static_cast<size_t>(c.getBytes()));
}
int32_t Int32(C c) { return static_cast<int32_t>(c.getInt64()); }

std::string JoinInts(const std::vector<int>& v) {
  return absl::StrJoin(v, ",");
}
std::vector<int> SplitInts(absl::string_view text) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int v = 0;
    if (absl::SimpleAtoi(part, &v)) out.push_back(v);
  }
  return out;
}

// The columns of the `result` and `error` members that Job and JobEvent
// share: a result is present iff result_data is not NULL, an error iff
// error_code is not NULL. result_payload is heavy.
template <typename Row>
void AppendResultAndErrorColumns(std::vector<RowColumn<Row>>* columns) {
  using R = const Row&;
  columns->insert(
      columns->end(),
      {
          {"result_data",
           [](R r) {
             return OptText(r.result ? &r.result->data_json : nullptr);
           },
           [](C c, Row* r) {
             if (c.isNull()) return;
             r->result.emplace();
             r->result->data_json = c.getString();
           }},
          {"result_payload",
           [](R r) {
             return r.result ? SqlValue::BlobRef(r.result->payload)
                             : SqlValue::Null();
           },
           [](C c, Row* r) {
             if (r->result) r->result->payload = BlobFromColumn(c);
           },
           true},
          {"error_code",
           [](R r) {
             return r.error ? SqlValue::Int(r.error->code) : SqlValue::Null();
           },
           [](C c, Row* r) {
             if (c.isNull()) return;
             r->error.emplace();
             r->error->code = Int32(c);
           }},
          {"error_message",
           [](R r) { return OptText(r.error ? &r.error->message : nullptr); },
           [](C c, Row* r) {
             if (r->error) r->error->message = c.getString();
           }},
          {"error_details",
           [](R r) {
             return OptText(r.error ? &r.error->details_json : nullptr);
           },
           [](C c, Row* r) {
             if (r->error) r->error->details_json = c.getString();
           }},
          {"error_retryable",
           [](R r) {
             return r.error ? SqlValue::Int(r.error->retryable ? 1 : 0)
                            : SqlValue::Null();
           },
           [](C c, Row* r) {
             if (r->error) r->error->retryable = c.getInt() != 0;
           }},
      });
}

std::vector<JobColumn> MakeJobColumns() {
  std::vector<JobColumn> columns = {
      {"id", [](const Job& j) { return SqlValue::TextRef(j.id); },
       [](C c, Job* j) { j->id = c.getString(); }, false},
      {"queue", [](const Job& j) { return SqlValue::TextRef(j.queue); },
       [](C c, Job* j) { j->queue = c.getString(); }, false},
      {"kind", [](const Job& j) { return SqlValue::TextRef(j.kind); },
       [](C c, Job* j) { j->kind = c.getString(); }, false},
      {"args_json", [](const Job& j) { return SqlValue::TextRef(j.args_json); },
       [](C c, Job* j) { j->args_json = c.getString(); }, true},
      {"payload", [](const Job& j) { return SqlValue::BlobRef(j.payload); },
       [](C c, Job* j) { j->payload = BlobFromColumn(c); }, true},
      {"priority", [](const Job& j) { return SqlValue::Int(j.priority); },
       [](C c, Job* j) { j->priority = Int32(c); }, false},
      {"labels",
       [](const Job& j) { return SqlValue::Text(EncodeLabels(j.labels)); },
       [](C c, Job* j) { j->labels = DecodeLabels(c.getString()); }, false},
      {"schedule_time", [](const Job& j) { return TimeValue(j.schedule_time); },
       [](C c, Job* j) { j->schedule_time = TimeFromColumn(c); }, false},
      {"max_attempts",
       [](const Job& j) { return SqlValue::Int(j.max_attempts); },
       [](C c, Job* j) { j->max_attempts = Int32(c); }, false},
      // retry_policy: present iff retry_initial_us is not NULL.
      {"retry_initial_us",
       [](const Job& j) {
         return j.retry_policy ? DurationValue(j.retry_policy->initial_backoff)
                               : SqlValue::Null();
       },
       [](C c, Job* j) {
         if (c.isNull()) return;
         j->retry_policy.emplace();
         j->retry_policy->initial_backoff = DurationFromColumn(c);
       },
       false},
      {"retry_max_us",
       [](const Job& j) {
         return j.retry_policy ? DurationValue(j.retry_policy->max_backoff)
                               : SqlValue::Null();
       },
       [](C c, Job* j) {
         if (j->retry_policy)
           j->retry_policy->max_backoff = DurationFromColumn(c);
       },
       false},
      {"retry_multiplier",
       [](const Job& j) {
         return j.retry_policy ? SqlValue::Real(j.retry_policy->multiplier)
                               : SqlValue::Null();
       },
       [](C c, Job* j) {
         if (j->retry_policy) j->retry_policy->multiplier = c.getDouble();
       },
       false},
      {"retry_jitter",
       [](const Job& j) {
         return j.retry_policy ? SqlValue::Real(j.retry_policy->jitter)
                               : SqlValue::Null();
       },
       [](C c, Job* j) {
         if (j->retry_policy) j->retry_policy->jitter = c.getDouble();
       },
       false},
      {"attempt_timeout_us",
       [](const Job& j) { return DurationValue(j.attempt_timeout); },
       [](C c, Job* j) { j->attempt_timeout = DurationFromColumn(c); }, false},
      // webhook: present iff webhook_url is not NULL.
      {"webhook_url",
       [](const Job& j) {
         return OptText(j.webhook ? &j.webhook->url : nullptr);
       },
       [](C c, Job* j) {
         if (c.isNull()) return;
         j->webhook.emplace();
         j->webhook->url = c.getString();
       },
       false},
      {"webhook_events",
       [](const Job& j) {
         return j.webhook ? SqlValue::Text(JoinInts(j.webhook->events))
                          : SqlValue::Null();
       },
       [](C c, Job* j) {
         if (j->webhook) j->webhook->events = SplitInts(c.getString());
       },
       false},
      {"request_id",
       [](const Job& j) {
         return OptText(j.request_id.empty() ? nullptr : &j.request_id);
       },
       [](C c, Job* j) { j->request_id = c.getString(); }, false},
      {"state",
       [](const Job& j) { return SqlValue::Int(static_cast<int>(j.state)); },
       [](C c, Job* j) { j->state = static_cast<JobState>(c.getInt()); },
       false},
      // progress: present iff progress_done is not NULL.
      {"progress_done",
       [](const Job& j) {
         return j.progress ? SqlValue::Int(j.progress->done) : SqlValue::Null();
       },
       [](C c, Job* j) {
         if (c.isNull()) return;
         j->progress.emplace();
         j->progress->done = c.getInt64();
       },
       false},
      {"progress_total",
       [](const Job& j) {
         return j.progress ? SqlValue::Int(j.progress->total)
                           : SqlValue::Null();
       },
       [](C c, Job* j) {
         if (j->progress) j->progress->total = c.getInt64();
       },
       false},
      {"progress_message",
       [](const Job& j) {
         return OptText(j.progress ? &j.progress->message : nullptr);
       },
       [](C c, Job* j) {
         if (j->progress) j->progress->message = c.getString();
       },
       false},
      {"progress_details",
       [](const Job& j) {
         return OptText(j.progress ? &j.progress->details_json : nullptr);
       },
       [](C c, Job* j) {
         if (j->progress) j->progress->details_json = c.getString();
       },
       false},
      {"attempt", [](const Job& j) { return SqlValue::Int(j.attempt); },
       [](C c, Job* j) { j->attempt = Int32(c); }, false},
      {"checkpoint",
       [](const Job& j) { return SqlValue::BlobRef(j.checkpoint); },
       [](C c, Job* j) { j->checkpoint = BlobFromColumn(c); }, true},
      {"backoff_until", [](const Job& j) { return TimeValue(j.backoff_until); },
       [](C c, Job* j) { j->backoff_until = TimeFromColumn(c); }, false},
      {"worker_id", [](const Job& j) { return SqlValue::TextRef(j.worker_id); },
       [](C c, Job* j) { j->worker_id = c.getString(); }, false},
      {"lease_expire_time",
       [](const Job& j) { return TimeValue(j.lease_expire_time); },
       [](C c, Job* j) { j->lease_expire_time = TimeFromColumn(c); }, false},
      {"stop_request",
       [](const Job& j) {
         return SqlValue::Int(static_cast<int>(j.stop_request));
       },
       [](C c, Job* j) {
         j->stop_request = static_cast<StopRequest>(c.getInt());
       },
       false},
      {"stop_reason",
       [](const Job& j) { return SqlValue::TextRef(j.stop_reason); },
       [](C c, Job* j) { j->stop_reason = c.getString(); }, false},
      {"create_time", [](const Job& j) { return TimeValue(j.create_time); },
       [](C c, Job* j) { j->create_time = TimeFromColumn(c); }, false},
      {"start_time", [](const Job& j) { return TimeValue(j.start_time); },
       [](C c, Job* j) { j->start_time = TimeFromColumn(c); }, false},
      {"update_time", [](const Job& j) { return TimeValue(j.update_time); },
       [](C c, Job* j) { j->update_time = TimeFromColumn(c); }, false},
      {"finish_time", [](const Job& j) { return TimeValue(j.finish_time); },
       [](C c, Job* j) { j->finish_time = TimeFromColumn(c); }, false},
      {"version", [](const Job& j) { return SqlValue::Int(j.version); },
       [](C c, Job* j) { j->version = c.getInt64(); }, false},
      {"last_seq", [](const Job& j) { return SqlValue::Int(j.last_seq); },
       [](C c, Job* j) { j->last_seq = c.getInt64(); }, false},
  };
  AppendResultAndErrorColumns(&columns);
  return columns;
}

std::vector<EventColumn> MakeEventColumns() {
  using E = const JobEvent&;
  std::vector<EventColumn> columns = {
      {"job_id", [](E e) { return SqlValue::TextRef(e.job_id); },
       [](C c, JobEvent* e) { e->job_id = c.getString(); }},
      {"seq", [](E e) { return SqlValue::Int(e.seq); },
       [](C c, JobEvent* e) { e->seq = c.getInt64(); }},
      {"time", [](E e) { return TimeValue(e.time); },
       [](C c, JobEvent* e) { e->time = TimeFromColumn(c); }},
      {"type", [](E e) { return SqlValue::Int(static_cast<int>(e.type)); },
       [](C c, JobEvent* e) { e->type = static_cast<EventType>(c.getInt()); }},
      {"from_state",
       [](E e) { return SqlValue::Int(static_cast<int>(e.from)); },
       [](C c, JobEvent* e) { e->from = static_cast<JobState>(c.getInt()); }},
      {"to_state", [](E e) { return SqlValue::Int(static_cast<int>(e.to)); },
       [](C c, JobEvent* e) { e->to = static_cast<JobState>(c.getInt()); }},
      {"reason", [](E e) { return SqlValue::TextRef(e.reason); },
       [](C c, JobEvent* e) { e->reason = c.getString(); }},
      {"attempt", [](E e) { return SqlValue::Int(e.attempt); },
       [](C c, JobEvent* e) { e->attempt = Int32(c); }},
      {"progress_done", [](E e) { return SqlValue::Int(e.progress.done); },
       [](C c, JobEvent* e) { e->progress.done = c.getInt64(); }},
      {"progress_total", [](E e) { return SqlValue::Int(e.progress.total); },
       [](C c, JobEvent* e) { e->progress.total = c.getInt64(); }},
      {"progress_message",
       [](E e) { return SqlValue::TextRef(e.progress.message); },
       [](C c, JobEvent* e) { e->progress.message = c.getString(); }},
      {"progress_details",
       [](E e) { return SqlValue::TextRef(e.progress.details_json); },
       [](C c, JobEvent* e) { e->progress.details_json = c.getString(); }},
      {"paths", [](E e) { return SqlValue::Text(absl::StrJoin(e.paths, ",")); },
       [](C c, JobEvent* e) {
         e->paths = absl::StrSplit(c.getString(), ',', absl::SkipEmpty());
       }},
      {"log_line", [](E e) { return SqlValue::TextRef(e.log_line); },
       [](C c, JobEvent* e) { e->log_line = c.getString(); }},
      {"wh_attempt",
       [](E e) { return SqlValue::Int(e.webhook_delivery.attempt); },
       [](C c, JobEvent* e) { e->webhook_delivery.attempt = Int32(c); }},
      {"wh_http_status",
       [](E e) { return SqlValue::Int(e.webhook_delivery.http_status); },
       [](C c, JobEvent* e) { e->webhook_delivery.http_status = Int32(c); }},
      {"wh_delivered",
       [](E e) { return SqlValue::Int(e.webhook_delivery.delivered ? 1 : 0); },
       [](C c, JobEvent* e) {
         e->webhook_delivery.delivered = c.getInt() != 0;
       }},
      {"wh_error",
       [](E e) { return SqlValue::TextRef(e.webhook_delivery.error); },
       [](C c, JobEvent* e) { e->webhook_delivery.error = c.getString(); }},
      {"queue", [](E e) { return SqlValue::TextRef(e.queue); },
       [](C c, JobEvent* e) { e->queue = c.getString(); }},
      {"kind", [](E e) { return SqlValue::TextRef(e.kind); },
       [](C c, JobEvent* e) { e->kind = c.getString(); }},
      {"priority", [](E e) { return SqlValue::Int(e.priority); },
       [](C c, JobEvent* e) { e->priority = Int32(c); }},
      {"labels", [](E e) { return SqlValue::Text(EncodeLabels(e.labels)); },
       [](C c, JobEvent* e) { e->labels = DecodeLabels(c.getString()); }},
      {"run_after", [](E e) { return TimeValue(e.run_after); },
       [](C c, JobEvent* e) { e->run_after = TimeFromColumn(c); }},
      {"job_state",
       [](E e) { return SqlValue::Int(static_cast<int>(e.state)); },
       [](C c, JobEvent* e) { e->state = static_cast<JobState>(c.getInt()); }},
  };
  AppendResultAndErrorColumns(&columns);
  return columns;
}

}  // namespace

void BindValue(SQLite::Statement& stmt, int index, const SqlValue& value) {
  switch (value.type) {
    case SqlValue::Type::kNull:
      stmt.bind(index);
      return;
    case SqlValue::Type::kInt:
      stmt.bind(index, static_cast<int64_t>(value.i));
      return;
    case SqlValue::Type::kReal:
      stmt.bind(index, value.d);
      return;
    case SqlValue::Type::kText:
      if (value.ref != nullptr) {
        stmt.bindNoCopy(index, *value.ref);
      } else if (value.owned.empty()) {
        // A copy would still allocate (SQLite copies into at least 32 bytes).
        stmt.bindNoCopy(index, "");
      } else {
        stmt.bind(index, value.owned);
      }
      return;
    case SqlValue::Type::kBlob:
      if (value.ref != nullptr) {
        stmt.bindNoCopy(index, value.ref->data(),
                        static_cast<int>(value.ref->size()));
      } else {
        stmt.bind(index, value.owned.data(),
                  static_cast<int>(value.owned.size()));
      }
      return;
  }
}

SqlValue TimeValue(absl::Time t) {
  if (t == absl::InfinitePast()) return SqlValue::Null();
  return SqlValue::Int(absl::ToUnixMicros(t));
}

absl::Time TimeFromColumn(const SQLite::Column& c) {
  if (c.isNull()) return absl::InfinitePast();
  return absl::FromUnixMicros(c.getInt64());
}

absl::Time TimeFromColumn(const ColumnValue& c) {
  if (c.isNull()) return absl::InfinitePast();
  return absl::FromUnixMicros(c.getInt64());
}

std::string EncodeLabels(const std::map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [k, v] : labels)
    absl::StrAppend(&out, k.size(), ":", k, v.size(), ":", v);
  return out;
}

std::map<std::string, std::string> DecodeLabels(absl::string_view text) {
  std::map<std::string, std::string> out;
  auto next = [&text](std::string* part) {
    size_t colon = text.find(':');
    size_t len = 0;
    if (colon == absl::string_view::npos ||
        !absl::SimpleAtoi(text.substr(0, colon), &len) ||
        len > text.size() - colon - 1) {
      return false;
    }
    *part = std::string(text.substr(colon + 1, len));
    text.remove_prefix(colon + 1 + len);
    return true;
  };
  std::string key, value;
  while (!text.empty() && next(&key) && next(&value)) out[key] = value;
  return out;
}

const std::vector<JobColumn>& JobColumns() {
  static const auto* columns = new std::vector<JobColumn>(MakeJobColumns());
  return *columns;
}

const std::string& JobColumnList(bool light_only) {
  static const auto* lists = [] {
    auto* l = new std::string[2];
    for (int light = 0; light < 2; ++light) {
      std::vector<std::string> names;
      for (const JobColumn& c : JobColumns()) {
        if (!light || !c.heavy) names.push_back(c.name);
      }
      l[light] = absl::StrJoin(names, ", ");
    }
    return l;
  }();
  return lists[light_only ? 1 : 0];
}

bool JobColumnsEqual(const Job& a, const Job& b) {
  for (const JobColumn& c : JobColumns()) {
    if (c.get(a) != c.get(b)) return false;
  }
  return true;
}

Job ReadJob(SQLite::Statement& stmt, bool light_only) {
  Job job;
  int index = 0;
  for (const JobColumn& c : JobColumns()) {
    if (light_only && c.heavy) continue;
    c.set(SqliteColumnValue(stmt.getColumn(index++)), &job);
  }
  return job;
}

const std::vector<EventColumn>& EventColumns() {
  static const auto* columns = new std::vector<EventColumn>(MakeEventColumns());
  return *columns;
}

const std::string& EventSelectList() {
  static const auto* list = [] {
    std::vector<std::string> names = {"event_id"};
    for (const EventColumn& c : EventColumns()) names.push_back(c.name);
    return new std::string(absl::StrJoin(names, ", "));
  }();
  return *list;
}

JobEvent ReadEvent(SQLite::Statement& stmt) {
  JobEvent event;
  event.event_id = stmt.getColumn(0).getInt64();
  int index = 1;
  for (const EventColumn& c : EventColumns())
    c.set(SqliteColumnValue(stmt.getColumn(index++)), &event);
  return event;
}

void BoundParams::Bind(SQLite::Statement& stmt, int index,
                       const SqlValue& value) {
  const auto at = static_cast<size_t>(index - 1);
  if (at >= slots_.size()) slots_.resize(at + 1);
  Slot& slot = slots_[at];
  // Empty text is bound as the static "", which outlives every row.
  const bool empty_text =
      value.type == SqlValue::Type::kText && value.str().empty();
  const bool scalar = empty_text || value.type == SqlValue::Type::kNull ||
                      value.type == SqlValue::Type::kInt ||
                      value.type == SqlValue::Type::kReal;
  // Reals compare by their bits: -0.0 is not 0.0 here.
  if (scalar && slot.known && slot.type == value.type && slot.i == value.i &&
      std::memcmp(&slot.d, &value.d, sizeof slot.d) == 0) {
    return;
  }
  slot.known = false;
  if (empty_text) {
    stmt.bindNoCopy(index, "");
  } else {
    BindValue(stmt, index, value);
  }
  if (!scalar) return;
  slot = Slot{true, value.type, value.i, value.d};
}

StatementCache::Lease::~Lease() {
  // Every use binds every parameter again, so bindings need no clearing.
  if (stmt_ != nullptr) stmt_->tryReset();
}

StatementCache::Lease StatementCache::Get(const std::string& sql) {
  auto it = stmts_.find(sql);
  if (it == stmts_.end()) {
    it = stmts_.emplace(sql, std::make_unique<SQLite::Statement>(*db_, sql))
             .first;
  }
  return Lease(it->second.get());
}

}  // namespace jobwire
