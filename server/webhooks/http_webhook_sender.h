// HttpWebhookSender: sends the webhook outbox over HTTP(S) with libcurl.
//
// One delivery thread of its own ("jw-webhooks") runs a libcurl multi handle:
// many deliveries are in flight at once (Options::max_in_flight), so a slow
// receiver holds up only its own delivery, never another one, a gRPC thread
// or the store's writer. The thread reads due rows from the store
// (PendingWebhooksBlocking, a reader connection), signs each attempt
// (WebhookSigner), sends it, and writes the outcome back with
// JobStore::RecordWebhookAttempt, which updates the row and appends the
// job's webhook_delivery event in one commit (delivery_plan.h decides what
// comes next). A row stays in memory as busy until that commit is
// answered, so it is never sent twice at once.
//
// At least once: a row is pending from the commit of its event until the
// commit of a successful attempt. A crash (or Stop) between a send and that
// commit leaves it pending, and the next start sends it again with the same
// `webhook-id` (msg_<event_id>), which receivers dedupe on.
//
// It learns of new rows as a CommitListener (events with webhook_queued)
// and from Wake(); it also looks again when the earliest pending row is due,
// and at least every 30 seconds.
//
// SSRF guard: every address libcurl is about to connect to passes the
// AddressPolicy first (CURLOPT_OPENSOCKETFUNCTION, after DNS), so names that
// resolve to refused addresses get no connection; only http and https; no
// redirects followed; no proxy from the environment; at most
// max_response_bytes of a response body read.
//
// Every attempt's result and time also go to Options::observer (metrics).
//
// Thread-safe. Not owned: the store, clock and random source, which must
// outlive it. Register it with the store before the store's first write
// and keep it alive until the store is shut down (store callbacks reach it
// until then). Start() once; Stop() (also run by the destructor) aborts the
// transfers in flight (their rows stay pending) and joins the thread.
#ifndef JOBWIRE_SERVER_WEBHOOKS_HTTP_WEBHOOK_SENDER_H_
#define JOBWIRE_SERVER_WEBHOOKS_HTTP_WEBHOOK_SENDER_H_

#include <curl/curl.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/core/job.h"
#include "server/core/retry.h"
#include "server/storage/job_store.h"
#include "server/webhooks/address_policy.h"
#include "server/webhooks/delivery_plan.h"
#include "server/webhooks/signer.h"
#include "server/webhooks/webhook_observer.h"

namespace jobwire {

class HttpWebhookSender final : public CommitListener {
 public:
  struct Options {
    WebhookRetrySchedule schedule;
    absl::Duration connect_timeout = absl::Seconds(5);
    // Whole attempt: connect, send, and the response.
    absl::Duration total_timeout = absl::Seconds(15);
    int max_in_flight = 64;
    size_t max_response_bytes = 4096;
    // Told of each attempt's result and time (metrics). Not owned; must
    // outlive the sender. Null: nobody.
    WebhookObserver* observer = nullptr;
  };

  // Counters since Start, for tests and operators.
  struct Stats {
    int64_t attempts = 0;   // attempts finished (any outcome)
    int64_t delivered = 0;  // of which answered 2xx
    int64_t refused = 0;    // of which refused by the AddressPolicy
  };

  HttpWebhookSender(JobStore* store, Clock* clock, RandomSource* random,
                    WebhookSigner signer, AddressPolicy policy,
                    Options options);
  ~HttpWebhookSender() override;
  HttpWebhookSender(const HttpWebhookSender&) = delete;
  HttpWebhookSender& operator=(const HttpWebhookSender&) = delete;

  // Starts the delivery thread; it first looks at every pending row (those
  // an earlier process left too).
  void Start();
  // See the class comment. Idempotent.
  void Stop();
  // Makes the delivery thread read the outbox again now (after a
  // RedeliverWebhook, say). Any thread.
  void Wake();

  // CommitListener: wakes the thread when a commit queued a delivery.
  void OnCommit(const std::vector<JobEvent>& events) override;

  Stats stats() const;

  // The `webhook-id` of a delivery: "msg_<event_id>", the same for every
  // attempt and redelivery of one event.
  static std::string MessageId(const WebhookOutboxRow& row);

 private:
  struct Transfer;

  void Loop();
  // Starts the due rows (as slots allow) and returns when to look again.
  absl::Time ScanBlocking(absl::Time now);
  void StartTransfer(const WebhookOutboxRow& row, absl::Time now);
  void FinishTransfer(Transfer* t, int curl_code);

  JobStore* const store_;
  Clock* const clock_;
  RandomSource* const random_;
  const WebhookSigner signer_;
  const AddressPolicy policy_;
  const Options options_;
  CURLM* const multi_;  // thread-safe only for curl_multi_wakeup

  // Delivery thread only.
  std::unordered_map<int64_t, std::unique_ptr<Transfer>> transfers_;

  mutable absl::Mutex mu_;
  bool wake_ ABSL_GUARDED_BY(mu_) = true;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  // Rows whose attempt was sent and whose record is not committed yet.
  std::unordered_set<int64_t> recording_ ABSL_GUARDED_BY(mu_);
  // Rows whose last record failed, and until when they wait.
  std::unordered_map<int64_t, absl::Time> held_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;

  std::atomic<int64_t> attempts_{0};
  std::atomic<int64_t> delivered_{0};
  std::atomic<int64_t> refused_{0};
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_WEBHOOKS_HTTP_WEBHOOK_SENDER_H_
