#include "tools/bench/raw_floor.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "SQLiteCpp/Database.h"
#include "SQLiteCpp/Statement.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/common/clock.h"
#include "server/core/ids.h"
#include "server/storage/migrations.h"
#include "server/storage/sqlite_rows.h"

namespace jobwire::bench {

Job SampleJob() {
  Job job;
  job.queue = "bench";
  job.kind = "resize-image";
  job.args_json = R"({"width":640,"height":480,"src":"s3://bucket/key.png"})";
  job.labels = {{"tenant", "acme"}};
  return job;
}

TempDb::TempDb(const std::string& parent) {
  std::string tmpl = parent + "/jobwire-bench-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    perror("mkdtemp");
    exit(1);
  }
  dir_ = tmpl;
}

TempDb::~TempDb() {
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::remove(absl::StrCat(path(), suffix).c_str());
  }
  rmdir(dir_.c_str());
}

RawResult RawInserts(const std::string& dir, double seconds, int per_txn,
                     bool full) {
  TempDb tmp(dir);
  SQLite::Database db(tmp.path(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = FULL");
  if (!MigrateBlocking(db).ok()) {
    std::cerr << "migration failed\n";
    exit(1);
  }
  std::vector<std::string> marks(JobColumns().size(), "?");
  SQLite::Statement insert(
      db, absl::StrCat("INSERT INTO jobs (", JobColumnList(false), ") VALUES (",
                       absl::StrJoin(marks, ", "), ")"));
  SQLite::Statement label(
      db, "INSERT INTO job_labels (job_id, key, value) VALUES (?, ?, ?)");
  std::vector<std::string> event_names = {"event_id"}, event_marks = {"?"};
  for (const EventColumn& c : EventColumns()) {
    event_names.push_back(c.name);
    event_marks.push_back("?");
  }
  SQLite::Statement event(
      db,
      absl::StrCat("INSERT INTO job_events (", absl::StrJoin(event_names, ", "),
                   ") VALUES (", absl::StrJoin(event_marks, ", "), ")"));
  JobEvent submitted;
  submitted.type = EventType::kStateChanged;
  submitted.to = JobState::kQueued;
  submitted.reason = "submitted";
  submitted.seq = 1;
  int64_t event_id = 0;
  IdGenerator ids(Clock::Real());
  Job job = SampleJob();
  RawResult r{full ? absl::StrCat("raw SQLite, job + label + event rows, ",
                                  per_txn, " jobs/txn")
                   : absl::StrCat("raw SQLite, ", per_txn, " row(s)/txn")};
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + absl::Seconds(seconds);
  std::vector<SqlValue> values;
  while (absl::Now() < deadline) {
    db.exec("BEGIN");
    for (int i = 0; i < per_txn; ++i) {
      job.id = ids.Next();
      job.create_time = job.update_time = absl::Now();
      values.clear();
      for (const JobColumn& c : JobColumns()) values.push_back(c.get(job));
      insert.reset();
      for (size_t k = 0; k < values.size(); ++k)
        BindValue(insert, static_cast<int>(k) + 1, values[k]);
      insert.exec();
      if (!full) continue;
      for (const auto& [key, value] : job.labels) {
        label.reset();
        label.bindNoCopy(1, job.id);
        label.bindNoCopy(2, key);
        label.bindNoCopy(3, value);
        label.exec();
      }
      submitted.job_id = job.id;
      submitted.time = job.create_time;
      submitted.queue = job.queue;
      submitted.kind = job.kind;
      submitted.labels = job.labels;
      event.reset();
      event.bind(1, static_cast<int64_t>(++event_id));
      int index = 1;
      for (const EventColumn& c : EventColumns())
        BindValue(event, ++index, c.get(submitted));
      event.exec();
    }
    const absl::Time commit_start = absl::Now();
    db.exec("COMMIT");
    r.commits.push_back(absl::Now() - commit_start);
    r.jobs += per_txn;
  }
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return r;
}

}  // namespace jobwire::bench
