// Crash test: the real jobwired is killed with SIGKILL and restarted while
// client threads submit jobs with unique request_ids, retrying a request_id
// after any error with the same request_id. Afterwards every acknowledged
// submit exists exactly once, every request_id maps to at most one job (and
// to the acknowledged one), and the database passes PRAGMA integrity_check.
//
// Each job carries its request_id as label `rid`, so the jobs listed after
// the run can be matched to what the clients sent.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "SQLiteCpp/Database.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "tests/jobwired_process.h"

namespace jobwire::test {
namespace {

constexpr int kClients = 6;
constexpr int kKillCycles = 4;
// Acknowledged submits between two kills.
constexpr int kAcksPerCycle = 25;

std::chrono::system_clock::time_point In(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

// What the clients saw, by request_id.
struct Ledger {
  absl::Mutex mu;
  std::map<std::string, std::string> acked ABSL_GUARDED_BY(mu);  // rid -> id
  std::set<std::string> retried ABSL_GUARDED_BY(mu);  // errored, then acked
  std::set<std::string> unacked ABSL_GUARDED_BY(mu);  // never acked
  int64_t errors ABSL_GUARDED_BY(mu) = 0;
  std::map<std::string, int> error_kinds ABSL_GUARDED_BY(mu);
};

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("jobwire-crash"); }
  void TearDown() override {
    server_.reset();
    if (!HasFailure()) RemoveDir(dir_);
  }

  std::vector<std::string> Args() {
    return {"--listen", "unix:var/j.sock", "--listen", "127.0.0.1:0",
            "--db",     "var/j.db"};
  }
  void StartServer() {
    server_ = std::make_unique<JobwiredProcess>(dir_, Args());
    ASSERT_EQ(server_->WaitListening(2).size(), 2u) << server_->log();
  }

  std::string dir_;
  std::unique_ptr<JobwiredProcess> server_;
};

// One client: submits r0, r1, ... and retries each until it is acknowledged
// or `give_up_at` passes. Clients with an odd index abandon a request_id
// after its first error instead (it may or may not have been committed), so
// the "at most once" side is exercised too.
void RunClient(int index, const std::string& target, std::atomic<bool>* stop,
               std::atomic<int64_t>* acks, absl::Time give_up_at,
               Ledger* ledger) {
  auto stub = v1::JobService::NewStub(ReconnectingChannel(target));
  for (int n = 0; !stop->load(); ++n) {
    const std::string rid = absl::StrCat("c", index, "-", n);
    v1::SubmitJobRequest request;
    request.set_request_id(rid);
    request.mutable_job()->set_queue("crash");
    request.mutable_job()->set_kind("crash-test");
    (*request.mutable_job()->mutable_labels())["rid"] = rid;
    bool errored = false;
    while (true) {
      grpc::ClientContext context;
      context.set_wait_for_ready(true);
      context.set_deadline(In(absl::Seconds(5)));
      v1::SubmitJobResponse response;
      grpc::Status status = stub->SubmitJob(&context, request, &response);
      absl::MutexLock lock(&ledger->mu);
      if (status.ok()) {
        ledger->acked[rid] = response.job().id();
        if (errored) ledger->retried.insert(rid);
        acks->fetch_add(1);
        break;
      }
      ++ledger->errors;
      ++ledger->error_kinds[absl::StrCat(status.error_code(), " ",
                                         status.error_message())];
      errored = true;
      if (index % 2 == 1 || absl::Now() > give_up_at) {
        ledger->unacked.insert(rid);
        break;
      }
    }
  }
}

TEST_F(CrashTest, AcknowledgedSubmitsSurviveKillsExactlyOnce) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string target = "unix:" + dir_ + "/var/j.sock";
  const absl::Time give_up_at = absl::Now() + absl::Seconds(50);

  Ledger ledger;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> acks{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back(RunClient, i, target, &stop, &acks, give_up_at,
                         &ledger);
  }
  auto wait_for_acks = [&](int64_t want) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (acks.load() < want && absl::Now() < deadline)
      absl::SleepFor(absl::Milliseconds(5));
    return acks.load() >= want;
  };

  bool progressed = true;
  for (int cycle = 0; cycle < kKillCycles && progressed; ++cycle) {
    progressed = wait_for_acks(acks.load() + kAcksPerCycle);
    if (!progressed) break;
    server_->Signal(SIGKILL);
    ASSERT_TRUE(server_->Exited(absl::Seconds(10)));
    ASSERT_EQ(server_->exit_code(), 128 + SIGKILL);
    ASSERT_NO_FATAL_FAILURE(StartServer());
  }
  if (progressed) progressed = wait_for_acks(acks.load() + kAcksPerCycle);
  stop.store(true);
  for (std::thread& t : clients) t.join();
  ASSERT_TRUE(progressed) << "submits stalled; acks=" << acks.load() << "\n"
                          << server_->log();

  absl::MutexLock lock(&ledger.mu);
  std::cout << "acked " << ledger.acked.size() << ", retried after an error "
            << ledger.retried.size() << ", never acked "
            << ledger.unacked.size() << ", errors " << ledger.errors << ":\n";
  for (const auto& [kind, n] : ledger.error_kinds)
    std::cout << "  " << n << " x " << kind << "\n";

  // Every job of the run, by its rid label.
  auto stub = v1::JobService::NewStub(ReconnectingChannel(target));
  std::map<std::string, std::vector<std::string>> jobs_by_rid;
  int64_t listed = 0;
  std::string page_token;
  do {
    grpc::ClientContext context;
    context.set_deadline(In(absl::Seconds(10)));
    v1::ListJobsRequest request;
    request.set_filter("queue = \"crash\"");
    request.set_page_size(1000);
    request.set_page_token(page_token);
    v1::ListJobsResponse response;
    grpc::Status status = stub->ListJobs(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (const v1::Job& job : response.jobs()) {
      jobs_by_rid[job.labels().at("rid")].push_back(job.id());
      ++listed;
    }
    page_token = response.next_page_token();
  } while (!page_token.empty());

  int64_t unacked_present = 0;
  for (const auto& [rid, ids] : jobs_by_rid) {
    const bool sent = ledger.acked.count(rid) > 0 || ledger.unacked.count(rid);
    EXPECT_TRUE(sent) << "a job for a request_id never sent: " << rid;
    EXPECT_EQ(ids.size(), 1u)
        << "request_id " << rid << " has " << ids.size() << " jobs";
    if (ledger.unacked.count(rid) > 0) ++unacked_present;
  }
  for (const auto& [rid, id] : ledger.acked) {
    auto it = jobs_by_rid.find(rid);
    ASSERT_NE(it, jobs_by_rid.end()) << "acknowledged " << rid << " is lost";
    EXPECT_EQ(it->second.front(), id) << rid;
    grpc::ClientContext context;
    context.set_deadline(In(absl::Seconds(10)));
    v1::GetJobRequest get;
    get.set_id(id);
    v1::Job job;
    grpc::Status status = stub->GetJob(&context, get, &job);
    EXPECT_TRUE(status.ok())
        << rid << " " << id << ": " << status.error_message();
  }
  std::cout << unacked_present << " of the never-acked request_ids were "
            << "committed (each once)\n";
  EXPECT_EQ(listed,
            static_cast<int64_t>(ledger.acked.size()) + unacked_present);

  // A retry of a request_id that errored first (and of a sample of the rest)
  // returns the same job and creates nothing.
  int sampled = 0;
  for (const auto& [rid, id] : ledger.acked) {
    if (ledger.retried.count(rid) == 0 && (sampled++ % 10) != 0) continue;
    v1::SubmitJobRequest request;
    request.set_request_id(rid);
    request.mutable_job()->set_queue("crash");
    request.mutable_job()->set_kind("crash-test");
    (*request.mutable_job()->mutable_labels())["rid"] = rid;
    grpc::ClientContext context;
    context.set_deadline(In(absl::Seconds(10)));
    v1::SubmitJobResponse response;
    grpc::Status status = stub->SubmitJob(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_FALSE(response.created()) << rid;
    EXPECT_EQ(response.job().id(), id) << rid;
  }

  // A clean stop, then the file itself.
  server_->Signal(SIGTERM);
  ASSERT_TRUE(server_->Exited(absl::Seconds(20))) << server_->log();
  EXPECT_EQ(server_->exit_code(), 0) << server_->log();
  SQLite::Database db(dir_ + "/var/j.db", SQLite::OPEN_READONLY);
  EXPECT_EQ(db.execAndGet("PRAGMA integrity_check").getString(), "ok");
  EXPECT_EQ(db.execAndGet("SELECT count(*) FROM jobs WHERE queue = 'crash'")
                .getInt64(),
            listed);
}

}  // namespace
}  // namespace jobwire::test
