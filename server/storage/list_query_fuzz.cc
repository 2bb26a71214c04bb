// libFuzzer target: the page tokens and listing parameters a client sends,
// through a real SqliteJobStore (a private temporary database holding a few
// jobs, opened once; the target only reads it):
//  - ListJobs: filter, order_by, page_size and page_token (list_query.h's
//    base64url keyset tokens), either as raw bytes or as a real token the
//    store issued with some of its bytes changed;
//  - ListWebhookDeliveries: job_id, failed_only, page_size and page_token
//    (the decimal outbox id).
//
// Oracle: a listing answers or refuses with INVALID_ARGUMENT naming one of
// its parameters (never INTERNAL: no client bytes reach the SQL text, every
// value is a `?` parameter, checked on the plan). A page holds at most
// page_size jobs. Paging through any accepted filter and order with small
// pages, following next_page_token, gives the same jobs in the same order
// as one big page: no job is skipped or repeated by the keyset tokens.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/storage/list_query.h"
#include "server/storage/sqlite_job_store.h"
#include "tests/fuzz/fuzz_util.h"

namespace jobwire {
namespace {

SqliteJobStore* store = nullptr;

void CloseStore() {
  if (store != nullptr) store->Shutdown();
}

// Opens the store once and submits jobs in several queues, kinds,
// priorities and labels (some sharing a priority, so ties need the id).
SqliteJobStore* Store() {
  if (store != nullptr) return store;
  SqliteJobStore::Options options;
  absl::StatusOr<std::unique_ptr<SqliteJobStore>> opened =
      SqliteJobStore::Open(options);
  FUZZ_CHECK(opened.ok(), opened.status().ToString());
  store = opened->release();  // lives for the process; closed at exit
  std::atexit(CloseStore);
  std::vector<NewJob> jobs;
  for (int i = 0; i < 14; ++i) {
    NewJob j;
    j.job.queue = i % 3 == 0 ? "default" : absl::StrCat("q", i % 4);
    j.job.kind = i % 2 == 0 ? "send" : "resize";
    j.job.priority = (i * 7) % 5 - 2;
    if (i % 3 != 1) j.job.labels["tenant"] = absl::StrCat("t", i % 2);
    jobs.push_back(std::move(j));
  }
  absl::Notification done;
  store->Submit(std::move(jobs),
                [&](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                  FUZZ_CHECK(r.ok(), r.status().ToString());
                  done.Notify();
                });
  done.WaitForNotification();
  return store;
}

void CheckRefusal(const absl::Status& status) {
  const std::vector<FieldViolation> v = GetFieldViolations(status);
  FUZZ_CHECK(!v.empty(), status.ToString());
  fuzz::CheckBadRequest(status, v[0].field);
  FUZZ_CHECK(v[0].field == "filter" || v[0].field == "order_by" ||
                 v[0].field == "page_size" || v[0].field == "page_token",
             status.ToString());
}

std::vector<std::string> Ids(const std::vector<Job>& jobs) {
  std::vector<std::string> ids;
  for (const Job& j : jobs) ids.push_back(j.id);
  return ids;
}

void FuzzListJobs(fuzz::FuzzInput& in) {
  static const char* const kOrders[] = {"", "create_time desc", "priority desc",
                                        "update_time desc", " PRIORITY  desc "};
  ListJobsQuery query;
  query.filter = in.String(64);
  const uint8_t order = in.Byte();
  query.order_by = order < 200 ? kOrders[order % 5] : in.String(32);
  query.page_size = static_cast<int8_t>(in.Byte());
  const bool derived = in.Bool();

  absl::StatusOr<ListPlan> plan = PlanListJobs(query);
  if (plan.ok()) {
    FUZZ_CHECK(
        static_cast<size_t>(std::count(plan->sql.begin(), plan->sql.end(),
                                       '?')) == plan->params.size(),
        plan->sql);
  }
  if (derived) {
    // A real token of this listing, with bytes changed: (position, byte)
    // pairs from the rest of the input.
    absl::StatusOr<ListJobsResult> first = Store()->ListJobsBlocking(query);
    if (first.ok()) query.page_token = first->next_page_token;
    while (!in.empty() && !query.page_token.empty()) {
      const size_t at = in.Byte() % query.page_token.size();
      query.page_token[at] = static_cast<char>(in.Byte());
    }
  } else {
    query.page_token = in.Rest();
  }
  absl::StatusOr<ListJobsResult> page = Store()->ListJobsBlocking(query);
  if (!page.ok()) {
    CheckRefusal(page.status());
    return;
  }
  const size_t size = query.page_size == 0 ? kDefaultPageSize : query.page_size;
  FUZZ_CHECK(page->jobs.size() <= size, "page larger than page_size");

  // Keyset paging: small pages add up to the one big page.
  ListJobsQuery all = query;
  all.page_token.clear();
  all.page_size = kMaxPageSize;
  absl::StatusOr<ListJobsResult> whole = Store()->ListJobsBlocking(all);
  FUZZ_CHECK(whole.ok(), whole.status().ToString());
  std::vector<std::string> paged;
  ListJobsQuery next = all;
  next.page_size = 1 + static_cast<int32_t>(size % 4);
  for (int pages = 0; pages < 64; ++pages) {
    absl::StatusOr<ListJobsResult> p = Store()->ListJobsBlocking(next);
    FUZZ_CHECK(p.ok(), "a token the store issued was refused: " +
                           p.status().ToString());
    for (const std::string& id : Ids(p->jobs)) paged.push_back(id);
    if (p->next_page_token.empty()) break;
    next.page_token = p->next_page_token;
  }
  FUZZ_CHECK(paged == Ids(whole->jobs),
             "paging skipped or repeated jobs for filter '" + all.filter +
                 "' order '" + all.order_by + "'");
}

void FuzzWebhookDeliveries(fuzz::FuzzInput& in) {
  WebhookDeliveryQuery query;
  query.job_id = in.String(32);
  query.failed_only = in.Bool();
  query.page_size = static_cast<int8_t>(in.Byte());
  query.page_token = in.Rest();
  absl::StatusOr<WebhookDeliveryPage> page =
      Store()->ListWebhookDeliveriesBlocking(query);
  if (!page.ok()) {
    const std::vector<FieldViolation> v = GetFieldViolations(page.status());
    FUZZ_CHECK(!v.empty(), page.status().ToString());
    fuzz::CheckBadRequest(page.status(), v[0].field);
    FUZZ_CHECK(v[0].field == "page_size" || v[0].field == "page_token",
               page.status().ToString());
  }
}

}  // namespace
}  // namespace jobwire

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  jobwire::fuzz::FuzzInput in(data, size);
  if (in.Byte() % 4 == 3) {
    jobwire::FuzzWebhookDeliveries(in);
  } else {
    jobwire::FuzzListJobs(in);
  }
  return 0;
}
