// Power loss under a real SqliteJobStore: a concurrent mixed load (batched
// submits, assigns and completions, bulk updates and deletes, settings and
// queue rows) runs on a store whose files sit on PowerLossVfs
// (power_loss_vfs.h), which cuts the power at random points of its writes,
// syncs and checkpoints. Each cut's disk is then opened by a fresh store:
// at synchronous=FULL every write acknowledged before the cut must be there,
// and PRAGMA integrity_check must say ok. The same run at synchronous=OFF
// must see acknowledged writes lost, which shows the test can see a loss;
// at NORMAL it may lose the last commits, never one with a later one kept,
// and never corrupts.
//
// JOBWIRE_PL_VERBOSE=1 prints every cut; JOBWIRE_PL_KEEP=1 keeps the folder
// of a cut that lost a write, and its files as cut in <folder>-raw.
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "SQLiteCpp/Database.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "server/storage/power_loss_vfs.h"
#include "server/storage/sqlite_job_store.h"
#include "server/storage/wal_write_buffer.h"

namespace jobwire::test {
namespace {

// One acknowledged write to a job, and how many cuts had begun when its
// `done` ran: cuts with a higher index must hold it.
struct Ack {
  int64_t cuts_started = 0;
  int64_t version = 0;  // 0: unknown (a bulk update)
  JobState state = JobState::kUnspecified;
  int32_t min_priority = 0;  // a bulk update's priority floor
  bool deleted = false;
  // The order in which `done`s ran: commit order, as the store answers
  // commit after commit.
  int64_t order = 0;
};

// Every acknowledged write of a run, by job id. Thread-safe.
class AckLog {
 public:
  // Call first thing in `done`.
  static int64_t Now() { return PowerLossCutsStarted(); }
  // Then this, once per `done`.
  int64_t NextOrder() { return ++order_; }
  void Record(const std::string& id, Ack ack) {
    absl::MutexLock lock(&mu_);
    acks_[id].push_back(ack);
  }
  std::map<std::string, std::vector<Ack>> acks() {
    absl::MutexLock lock(&mu_);
    return acks_;
  }
  // A delete of `id` was asked: it may be durable before it is
  // acknowledged, so the job may be gone from a cut taken meanwhile.
  void DeleteAsked(const std::string& id) {
    absl::MutexLock lock(&mu_);
    delete_asked_.insert(id);
  }
  std::set<std::string> delete_asked() {
    absl::MutexLock lock(&mu_);
    return delete_asked_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::vector<Ack>> acks_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> delete_asked_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> order_{0};
};

// Moves a job on: QUEUED -> RUNNING -> SUCCEEDED; an ended job gets a label.
JobMutation Advance() {
  return [](const Job& current, absl::Time now) -> absl::StatusOr<JobChange> {
    JobChange change{current, {}};
    JobEvent e;
    if (current.state == JobState::kQueued ||
        current.state == JobState::kRunning) {
      const JobState to = current.state == JobState::kQueued
                              ? JobState::kRunning
                              : JobState::kSucceeded;
      change.job.state = to;
      if (to == JobState::kRunning) {
        change.job.worker_id = "w1";
        change.job.attempt = current.attempt + 1;
        change.job.start_time = now;
      } else {
        change.job.finish_time = now;
      }
      e.type = EventType::kStateChanged;
      e.from = current.state;
      e.to = to;
    } else {
      change.job.labels["touched"] = absl::StrCat(current.version);
      e.type = EventType::kUpdated;
      e.paths = {"labels"};
    }
    change.events.push_back(std::move(e));
    return change;
  };
}

// Raises the priority to at least `floor` (one change for every job of a
// chunk below it: the set-based UPDATE).
JobMutation PriorityFloor(int32_t floor) {
  return [floor](const Job& current, absl::Time) -> absl::StatusOr<JobChange> {
    JobChange change{current, {}};
    change.job.priority = std::max(current.priority, floor);
    JobEvent e;
    e.type = EventType::kUpdated;
    e.paths = {"priority"};
    change.events.push_back(std::move(e));
    return change;
  };
}

// Runs writes from `threads` threads, each with up to `in_flight` writes
// queued, until Stop(); Drain() then waits for every answer.
class Load {
 public:
  Load(SqliteJobStore* store, AckLog* log, uint64_t seed, int threads)
      : store_(store), log_(log) {
    for (int t = 0; t < threads; ++t)
      threads_.emplace_back([this, seed, t] { Run(seed * 7919 + t); });
  }
  ~Load() { Drain(); }

  void Drain() {
    stop_ = true;
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* n) { return *n == 0; }, &in_flight_));
  }
  int64_t acked() const { return acked_.load(); }

 private:
  static constexpr int kInFlightPerThread = 8;

  void Run(uint64_t seed) {
    std::mt19937_64 rng(seed);
    while (!stop_) {
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](int* n) { return *n < kInFlightPerThread * 3; }, &in_flight_));
        ++in_flight_;
      }
      const int pick = static_cast<int>(rng() % 100);
      if (pick < 45) {
        Submit(rng);
      } else if (pick < 80) {
        MutateOne(rng);
      } else if (pick < 90) {
        Bulk(rng);
      } else {
        SettingOrQueue(pick % 2 == 0);
      }
    }
  }

  void Finished() {
    absl::MutexLock lock(&mu_);
    --in_flight_;
  }

  std::vector<std::string> Pick(std::mt19937_64& rng, size_t n) {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    if (known_.empty()) return out;
    for (size_t i = 0; i < n; ++i) {
      // Mostly recent jobs, so that they move through their states.
      const size_t span = std::min<size_t>(known_.size(), 400);
      out.push_back(known_[known_.size() - 1 - rng() % span]);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

  void Submit(std::mt19937_64& rng) {
    std::vector<NewJob> jobs(1 + rng() % 6);
    for (NewJob& j : jobs) {
      j.job.kind = "resize";
      j.job.queue = rng() % 2 == 0 ? "default" : "media";
      const size_t bytes = rng() % 10 == 0 ? 20000 : rng() % 600;
      j.job.payload.assign(bytes, static_cast<char>('a' + rng() % 26));
    }
    using Outcomes = absl::StatusOr<std::vector<SubmitOutcome>>;
    store_->Submit(std::move(jobs), [this](Outcomes r) {
      const int64_t now = AckLog::Now();
      const int64_t order = log_->NextOrder();
      if (r.ok()) {
        absl::MutexLock lock(&mu_);
        for (const SubmitOutcome& o : *r) {
          log_->Record(o.job.id,
                       {now, o.job.version, o.job.state, 0, false, order});
          known_.push_back(o.job.id);
        }
        acked_ += static_cast<int64_t>(r->size());
      }
      Finished();
    });
  }

  void MutateOne(std::mt19937_64& rng) {
    std::vector<std::string> ids = Pick(rng, 1);
    if (ids.empty()) return Finished();
    store_->Mutate(ids[0], Advance(), [this](absl::StatusOr<Job> r) {
      const int64_t now = AckLog::Now();
      const int64_t order = log_->NextOrder();
      if (r.ok()) {
        log_->Record(r->id, {now, r->version, r->state, 0, false, order});
        ++acked_;
      }
      Finished();
    });
  }

  void Bulk(std::mt19937_64& rng) {
    std::vector<std::string> ids = Pick(rng, 1 + rng() % 40);
    if (ids.empty()) return Finished();
    auto spec = std::make_shared<BulkWriteSpec>();
    const bool del = rng() % 3 == 0;  // refused for jobs not ended
    spec->del = del;
    if (del) {
      for (const std::string& id : ids) log_->DeleteAsked(id);
    }
    const int32_t floor = ++priority_floor_;
    if (!del) spec->mutation = PriorityFloor(floor);
    store_->BulkWrite(
        ids, spec,
        [this, ids, del, floor](absl::StatusOr<std::vector<BulkItemResult>> r) {
          const int64_t now = AckLog::Now();
          const int64_t order = log_->NextOrder();
          if (r.ok()) {
            for (size_t i = 0; i < ids.size(); ++i) {
              if (!(*r)[i].status.ok() || !(*r)[i].changed) continue;
              log_->Record(ids[i], {now, 0, JobState::kUnspecified,
                                    del ? 0 : floor, del, order});
              ++acked_;
            }
          }
          Finished();
        });
  }

  // A new setting or queue row, under a name of its own: checked as a job
  // "setting:NAME" or "queue:NAME" that must exist.
  void SettingOrQueue(bool setting) {
    const std::string name = absl::StrCat("pl-", ++names_);
    auto done = [this, name, setting](absl::Status s) {
      const int64_t now = AckLog::Now();
      const int64_t order = log_->NextOrder();
      if (s.ok()) {
        log_->Record(absl::StrCat(setting ? "setting:" : "queue:", name),
                     {now, 0, JobState::kUnspecified, 0, false, order});
        ++acked_;
      }
      Finished();
    };
    if (setting) {
      store_->PutSetting(name, "on", done);
    } else {
      QueueRow row;
      row.name = name;
      row.weight = 2;
      store_->UpsertQueue(row, done);
    }
  }

  SqliteJobStore* const store_;
  AckLog* const log_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> acked_{0};
  std::atomic<int32_t> priority_floor_{0};
  std::atomic<int64_t> names_{0};
  std::vector<std::thread> threads_;
  absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> known_ ABSL_GUARDED_BY(mu_);
};

// What one cut's disk holds against what was acknowledged before it.
struct Verdict {
  bool integrity_ok = false;
  std::string integrity;
  int64_t required = 0;  // acknowledged writes the cut must hold
  int64_t lost = 0;      // of those, missing
  std::string first_loss;
  // Acknowledged writes kept although one answered before them was lost:
  // a cut may lose only a tail of the commits.
  int64_t holes = 0;
};

std::string MakeTempDir(const char* tag) {
  std::string tmpl = absl::StrCat("/tmp/jobwire-", tag, "-XXXXXX");
  return mkdtemp(tmpl.data()) == nullptr ? "" : tmpl;
}

void RemoveDb(const std::string& dir) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"})
    std::remove(absl::StrCat(dir, "/jobs.db", suffix).c_str());
  rmdir(dir.c_str());
}

Verdict Check(const PowerLossCut& cut,
              const std::map<std::string, std::vector<Ack>>& acks,
              const std::set<std::string>& delete_asked) {
  Verdict v;
  const std::string dir = MakeTempDir("pl-cut");
  const std::string db = dir + "/jobs.db";
  if (absl::Status s = MaterializeCut(cut, dir); !s.ok()) {
    v.integrity = s.ToString();
    RemoveDb(dir);
    return v;
  }
  std::map<std::string, Job> jobs;
  bool opened = false;
  try {
    SQLite::Database raw(db, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    v.integrity = raw.execAndGet("PRAGMA integrity_check").getString();
    v.integrity_ok = v.integrity == "ok";
  } catch (const SQLite::Exception& e) {
    v.integrity = e.what();
  }
  if (v.integrity_ok) {
    SqliteJobStore::Options options;
    options.path = db;
    options.synchronous = SqliteJobStore::Synchronous::kOff;
    options.checkpoint_pages = 0;
    options.reader_connections = 1;
    auto store = SqliteJobStore::Open(options);
    if (store.ok()) {
      opened = true;
      ListJobsQuery q;
      q.page_size = 1000;
      do {
        auto page = (*store)->ListJobsBlocking(q);
        if (!page.ok()) {
          opened = false;
          break;
        }
        for (Job& j : page->jobs) jobs[j.id] = std::move(j);
        q.page_token = page->next_page_token;
      } while (!q.page_token.empty());
      // A job's row and its events commit together: seq 1..last_seq.
      std::map<std::string, int64_t> events;
      int64_t after = 0;
      while (opened) {
        auto page = (*store)->ReadEventsBlocking(after, 10000);
        if (!page.ok()) opened = false;
        if (!opened || page->empty()) break;
        for (const JobEvent& e : *page) ++events[e.job_id];
        after = page->back().event_id;
      }
      for (const auto& [id, job] : jobs) {
        if (events[id] != job.last_seq && v.integrity_ok) {
          v.integrity_ok = false;
          v.integrity = absl::StrCat("job ", id, " has last_seq ", job.last_seq,
                                     " and ", events[id], " events");
        }
      }
      // Settings and queue rows, as jobs of their own for the checks below.
      auto rows = (*store)->ListQueueRowsBlocking();
      if (!rows.ok()) opened = false;
      for (const QueueRow& row : rows.ok() ? *rows : std::vector<QueueRow>())
        jobs["queue:" + row.name];
      for (const auto& [id, list] : acks) {
        if (!opened || id.rfind("setting:", 0) != 0) continue;
        auto value = (*store)->GetSettingBlocking(id.substr(8));
        if (!value.ok()) opened = false;
        if (value.ok() && value->has_value()) jobs[id];
      }
      (*store)->Shutdown();
    } else {
      v.integrity = store.status().ToString();
    }
  }
  for (const auto& [id, list] : acks) {
    int64_t version = 0;
    JobState state = JobState::kUnspecified;
    int32_t priority = 0;
    bool deleted = false;
    bool any = false;
    for (const Ack& a : list) {
      if (a.cuts_started >= cut.index) continue;  // acknowledged after it
      any = true;
      if (a.version > version) {
        version = a.version;
        state = a.state;
      }
      priority = std::max(priority, a.min_priority);
      deleted = deleted || a.deleted;
    }
    if (!any) continue;
    ++v.required;
    auto it = jobs.find(id);
    std::string loss;
    if (!opened) {
      loss = "the store did not open";
    } else if (deleted) {
      if (it != jobs.end()) loss = "deleted, but present";
    } else if (it == jobs.end()) {
      if (delete_asked.count(id) == 0) loss = "missing";
    } else if (it->second.version < version) {
      loss = absl::StrCat("version ", it->second.version, " < ", version);
    } else if (version > 0 && it->second.version == version &&
               it->second.state != state) {
      loss = absl::StrCat("state ", JobStateName(it->second.state),
                          " != ", JobStateName(state));
    } else if (it->second.priority < priority) {
      loss = absl::StrCat("priority ", it->second.priority, " < ", priority);
    }
    if (!loss.empty()) {
      if (v.lost++ == 0) v.first_loss = absl::StrCat(id, ": ", loss);
    }
  }
  // Write by write, in the order they were answered (jobs a delete was asked
  // of aside): none kept after one lost.
  int64_t first_lost = INT64_MAX;
  std::vector<int64_t> kept;
  for (const auto& [id, list] : acks) {
    if (!opened || delete_asked.count(id) != 0) continue;
    auto it = jobs.find(id);
    for (const Ack& a : list) {
      if (a.cuts_started >= cut.index) continue;
      const bool held = it != jobs.end() && it->second.version >= a.version &&
                        it->second.priority >= a.min_priority;
      if (held) {
        kept.push_back(a.order);
      } else {
        first_lost = std::min(first_lost, a.order);
      }
    }
  }
  for (int64_t order : kept) v.holes += order > first_lost ? 1 : 0;
  if (v.lost > 0 && getenv("JOBWIRE_PL_KEEP") != nullptr) {
    std::cout << "kept " << dir << " (" << v.first_loss << ")\n";
    mkdir((dir + "-raw").c_str(), 0700);
    (void)MaterializeCut(cut, dir + "-raw");
  } else {
    RemoveDb(dir);
  }
  return v;
}

struct RunTotals {
  int64_t cuts = 0;
  int64_t acked = 0;
  int64_t required = 0;  // summed over cuts
  int64_t lost = 0;
  int64_t cuts_with_loss = 0;
  int64_t holes = 0;
  int64_t integrity_failures = 0;
  int64_t torn = 0;
  int64_t with_wal_pending = 0;
  int64_t checkpoints = 0;
  std::map<std::string, int64_t> before;  // cuts by the operation they preceded
  std::vector<std::string> failures;
};

// `rounds` runs of a fresh store under load, `cuts_per_round` cuts each.
RunTotals RunRounds(SqliteJobStore::Synchronous sync, int rounds,
                    int cuts_per_round, int64_t mean_ops, uint64_t seed) {
  RunTotals totals;
  for (int round = 0; round < rounds; ++round) {
    const std::string dir = MakeTempDir("pl-run");
    SqliteJobStore::Options options;
    options.path = dir + "/jobs.db";
    options.synchronous = sync;
    // Small steps, so that cuts land inside checkpoints often.
    const int steps[] = {4, 16, 64};
    options.checkpoint_pages = steps[round % 3];
    options.gather_wal_writes = round % 4 != 3;
    // Answers from the writer itself or from the completion thread; big
    // group commits or many small ones.
    options.complete_on_idle_writer = round % 2 == 0;
    options.max_batch_jobs = round % 3 == 1 ? 16 : 2000;
    PowerLossArm arm;
    arm.dir = dir;
    arm.seed = seed + static_cast<uint64_t>(round);
    arm.mean_ops_between_cuts = mean_ops + mean_ops * (round % 4) / 2;
    arm.max_cuts = cuts_per_round;
    ArmPowerLoss(arm);
    AckLog log;
    std::vector<PowerLossCut> cuts;
    {
      auto store = SqliteJobStore::Open(options);
      if (!store.ok()) {
        totals.failures.push_back(store.status().ToString());
        DisarmPowerLoss();
        RemoveDb(dir);
        continue;
      }
      {
        Load load(store->get(), &log, arm.seed, /*threads=*/3);
        // Until the cuts are taken (bounded: the load always writes).
        const absl::Time give_up = absl::Now() + absl::Seconds(20);
        while (PowerLossCutsTaken() < cuts_per_round && absl::Now() < give_up)
          absl::SleepFor(absl::Milliseconds(2));
        load.Drain();
        totals.acked += load.acked();
      }
      cuts = DisarmPowerLoss();
      totals.checkpoints +=
          (*store)->stats().checkpoints + (*store)->stats().writer_checkpoints;
      (*store)->Shutdown();
    }
    RemoveDb(dir);
    const auto acks = log.acks();
    const auto delete_asked = log.delete_asked();
    for (const PowerLossCut& cut : cuts) {
      const Verdict v = Check(cut, acks, delete_asked);
      ++totals.cuts;
      totals.required += v.required;
      totals.lost += v.lost;
      totals.holes += v.holes;
      totals.torn += cut.torn ? 1 : 0;
      totals.with_wal_pending += cut.wal_pending_bytes > 0 ? 1 : 0;
      ++totals.before[cut.before];
      if (getenv("JOBWIRE_PL_VERBOSE") != nullptr) {
        std::cout << "cut " << cut.index << " before " << cut.before
                  << (cut.torn ? " torn" : "") << " files";
        for (const auto& [name, bytes] : cut.files)
          std::cout << " " << name << ":" << bytes.size();
        std::cout << " required " << v.required << " lost " << v.lost << " "
                  << v.integrity << "\n";
      }
      if (v.lost > 0) {
        ++totals.cuts_with_loss;
        totals.failures.push_back(
            absl::StrCat("round ", round, " cut ", cut.index, " before ",
                         cut.before, cut.torn ? " (torn)" : "", ": ", v.lost,
                         " of ", v.required, " lost, first ", v.first_loss));
      }
      if (!v.integrity_ok) {
        ++totals.integrity_failures;
        totals.failures.push_back(absl::StrCat("round ", round, " cut ",
                                               cut.index, " before ",
                                               cut.before, ": ", v.integrity));
      }
    }
  }
  return totals;
}

std::string Describe(const RunTotals& t) {
  std::string out = absl::StrCat(
      t.cuts, " cuts, ", t.acked, " writes acknowledged, ", t.required,
      " acknowledged writes checked over all cuts, ", t.lost, " lost in ",
      t.cuts_with_loss, " cuts, ", t.holes, " kept after a lost one, ",
      t.integrity_failures, " integrity failures, ", t.torn, " torn, ",
      t.with_wal_pending, " with unsynced WAL bytes, ", t.checkpoints,
      " checkpoints; cuts before:");
  for (const auto& [op, n] : t.before) absl::StrAppend(&out, " ", op, "=", n);
  return out;
}

class PowerLossTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Before any store opens: the WAL write buffer wraps the default VFS
    // it finds at its first registration.
    ASSERT_TRUE(InstallPowerLossVfs());
    ASSERT_TRUE(RegisterWalWriteBufferVfs());
    sqlite3_vfs* gather = sqlite3_vfs_find(kWalWriteBufferVfs);
    ASSERT_NE(gather, nullptr);
    ASSERT_EQ(gather->pAppData, sqlite3_vfs_find(kPowerLossVfs))
        << "the WAL write buffer must sit on the power-loss VFS";
  }
};

TEST_F(PowerLossTest, FullSyncLosesNoAcknowledgedWriteAtAnyOfManyCuts) {
  const WalWriteBufferStats gather_before = GetWalWriteBufferStats();
  const RunTotals t =
      RunRounds(SqliteJobStore::Synchronous::kFull, /*rounds=*/9,
                /*cuts_per_round=*/25, /*mean_ops=*/12, /*seed=*/20261208);
  const WalWriteBufferStats gather_after = GetWalWriteBufferStats();
  std::cout << "synchronous=FULL: " << Describe(t) << "\n";
  for (size_t i = 0; i < t.failures.size() && i < 20; ++i)
    ADD_FAILURE() << t.failures[i];
  EXPECT_EQ(t.lost, 0);
  EXPECT_EQ(t.holes, 0);
  EXPECT_EQ(t.integrity_failures, 0);
  EXPECT_GE(t.cuts, 200);
  // The cuts checked something, and landed everywhere that matters.
  EXPECT_GT(t.required, 10 * t.cuts);
  EXPECT_GT(t.torn, 0);
  EXPECT_GT(t.with_wal_pending, 0);
  EXPECT_GT(t.checkpoints, 0);
  EXPECT_GT(t.before.count("wal write") ? t.before.at("wal write") : 0, 0);
  EXPECT_GT(t.before.count("wal sync") ? t.before.at("wal sync") : 0, 0);
  EXPECT_GT(t.before.count("db write") ? t.before.at("db write") : 0, 0)
      << "no cut inside a checkpoint's copy into the database";
  EXPECT_GT(t.before.count("db sync") ? t.before.at("db sync") : 0, 0)
      << "no cut between a checkpoint's copy and its sync";
  // The WAL write buffer was in the path: it gathered writes.
  EXPECT_GT(gather_after.writes_gathered - gather_before.writes_gathered,
            gather_after.writes_issued - gather_before.writes_issued);
}

TEST_F(PowerLossTest, SyncOffLosesAcknowledgedWrites) {
  const RunTotals t = RunRounds(SqliteJobStore::Synchronous::kOff,
                                /*rounds=*/3, /*cuts_per_round=*/15,
                                /*mean_ops=*/150, /*seed=*/77);
  std::cout << "synchronous=OFF: " << Describe(t) << "\n";
  EXPECT_GT(t.cuts_with_loss, 0) << "the test cannot see a loss";
  EXPECT_GT(t.lost, 0);
}

// NORMAL syncs only at checkpoints: it may lose the last commits, but the
// database must stay consistent (sqlite_job_store.h).
TEST_F(PowerLossTest, NormalSyncMayLoseTheLastCommitsButNeverCorrupts) {
  const RunTotals t = RunRounds(SqliteJobStore::Synchronous::kNormal,
                                /*rounds=*/3, /*cuts_per_round=*/15,
                                /*mean_ops=*/40, /*seed=*/4242);
  std::cout << "synchronous=NORMAL: " << Describe(t) << "\n";
  EXPECT_EQ(t.integrity_failures, 0);
  EXPECT_EQ(t.holes, 0) << "a lost commit with later ones kept";
  EXPECT_GE(t.cuts, 45);
}

}  // namespace
}  // namespace jobwire::test
