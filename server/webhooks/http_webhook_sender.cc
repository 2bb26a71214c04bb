#include "server/webhooks/http_webhook_sender.h"

#include <pthread.h>
#include <sys/socket.h>

#include <algorithm>
#include <mutex>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace jobwire {
namespace {

// How often the outbox is read even when nothing says so: a safety net.
constexpr absl::Duration kRescanPeriod = absl::Seconds(30);
// After a failed read of the outbox.
constexpr absl::Duration kScanRetry = absl::Seconds(1);
// The longest curl_multi_poll wait, so the thread checks its flags.
constexpr absl::Duration kMaxPoll = absl::Seconds(1);
// How long a row whose attempt could not be recorded waits to go again.
constexpr absl::Duration kRecordFailureHold = absl::Seconds(5);
// Characters of a failed response's body kept in the error text.
constexpr size_t kErrorExcerpt = 200;

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

struct HttpWebhookSender::Transfer {
  HttpWebhookSender* sender = nullptr;
  WebhookOutboxRow row;
  absl::Time attempt_time;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string response;       // up to max_response_bytes
  bool response_cut = false;  // more came: the read was stopped
  std::string refused;        // why the AddressPolicy refused an address
  char error[CURL_ERROR_SIZE] = {};

  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (headers != nullptr) curl_slist_free_all(headers);
  }

  // CURLOPT_OPENSOCKETFUNCTION: the address libcurl is about to connect to,
  // after DNS. Refused: no socket, so no connection.
  static curl_socket_t OpenSocket(void* self, curlsocktype,
                                  curl_sockaddr* address) {
    auto* t = static_cast<Transfer*>(self);
    std::optional<IpAddress> ip = IpAddress::FromSockaddr(&address->addr);
    if (!ip.has_value()) {
      t->refused = "not an IP address";
      return CURL_SOCKET_BAD;
    }
    if (std::optional<std::string> why = t->sender->policy_.Refusal(*ip)) {
      t->refused = *why;
      return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype | SOCK_CLOEXEC,
                  address->protocol);
  }

  // CURLOPT_WRITEFUNCTION: keeps the start of the body, stops the read past
  // the cap.
  static size_t Write(char* data, size_t size, size_t n, void* self) {
    auto* t = static_cast<Transfer*>(self);
    const size_t bytes = size * n;
    const size_t cap = t->sender->options_.max_response_bytes;
    if (t->response.size() + bytes > cap) {
      t->response.append(data, cap - t->response.size());
      t->response_cut = true;
      return 0;  // CURLE_WRITE_ERROR: the status is known already
    }
    t->response.append(data, bytes);
    return bytes;
  }
};

HttpWebhookSender::HttpWebhookSender(JobStore* store, Clock* clock,
                                     RandomSource* random, WebhookSigner signer,
                                     AddressPolicy policy, Options options)
    : store_(store),
      clock_(clock),
      random_(random),
      signer_(std::move(signer)),
      policy_(std::move(policy)),
      options_(std::move(options)),
      multi_((InitCurlOnce(), curl_multi_init())) {}

HttpWebhookSender::~HttpWebhookSender() {
  Stop();
  // Store callbacks may still wake the handle until the store shut down,
  // which its owner does before destroying this.
  curl_multi_cleanup(multi_);
}

std::string HttpWebhookSender::MessageId(const WebhookOutboxRow& row) {
  return absl::StrCat("msg_", row.event_id);
}

void HttpWebhookSender::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stop_) return;
  started_ = true;
  thread_ = std::thread([this] { Loop(); });
}

void HttpWebhookSender::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
  }
  curl_multi_wakeup(multi_);
  if (thread_.joinable()) thread_.join();
}

void HttpWebhookSender::Wake() {
  {
    absl::MutexLock lock(&mu_);
    wake_ = true;
  }
  curl_multi_wakeup(multi_);
}

void HttpWebhookSender::OnCommit(const std::vector<JobEvent>& events) {
  for (const JobEvent& e : events) {
    if (e.webhook_queued) {
      Wake();
      return;
    }
  }
}

HttpWebhookSender::Stats HttpWebhookSender::stats() const {
  Stats s;
  s.attempts = attempts_.load();
  s.delivered = delivered_.load();
  s.refused = refused_.load();
  return s;
}

void HttpWebhookSender::Loop() {
  pthread_setname_np(pthread_self(), "jw-webhooks");
  absl::Time next_scan = absl::InfinitePast();
  while (true) {
    bool scan = false;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
      scan = wake_;
      wake_ = false;
    }
    const absl::Time now = clock_->Now();
    if (scan || now >= next_scan) next_scan = ScanBlocking(now);
    int running = 0;
    curl_multi_perform(multi_, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      FinishTransfer(t, msg->data.result);
      // A slot is free: start the next due row now, while this one's
      // record commits (it stays busy until then).
      next_scan = absl::InfinitePast();
    }
    const absl::Duration wait =
        std::clamp(next_scan - clock_->Now(), absl::ZeroDuration(), kMaxPoll);
    curl_multi_poll(multi_, nullptr, 0,
                    static_cast<int>(absl::ToInt64Milliseconds(wait)), nullptr);
  }
  // Aborted: their rows stay pending and go again at the next start.
  for (auto& [id, t] : transfers_) curl_multi_remove_handle(multi_, t->easy);
  transfers_.clear();
}

absl::Time HttpWebhookSender::ScanBlocking(absl::Time now) {
  // The rows busy before the read (sending, or their attempt's record not
  // yet committed): what the read returns for them may predate their
  // record, so they are skipped even if they are idle by the time the loop
  // reaches them. The record's commit wakes another scan.
  absl::flat_hash_set<int64_t> busy;
  for (const auto& [id, t] : transfers_) busy.insert(id);
  {
    absl::MutexLock lock(&mu_);
    busy.insert(recording_.begin(), recording_.end());
  }
  const int limit = static_cast<int>(busy.size()) + options_.max_in_flight;
  absl::StatusOr<std::vector<WebhookOutboxRow>> rows =
      store_->PendingWebhooksBlocking(limit);
  if (!rows.ok()) {
    JW_LOG(WARNING) << "webhooks: reading the outbox: " << rows.status();
    return now + kScanRetry;
  }
  absl::Time next = now + kRescanPeriod;
  for (const WebhookOutboxRow& row : *rows) {
    if (busy.contains(row.id)) continue;
    {
      absl::MutexLock lock(&mu_);
      if (auto held = held_.find(row.id); held != held_.end()) {
        if (held->second > now) {
          next = std::min(next, held->second);
          continue;
        }
        held_.erase(held);
      }
    }
    if (row.next_attempt_time > now) {
      next = std::min(next, row.next_attempt_time);
      break;  // rows come in next_attempt_time order
    }
    if (static_cast<int>(transfers_.size()) >= options_.max_in_flight) {
      break;  // a finished transfer wakes the thread again
    }
    StartTransfer(row, now);
  }
  // A full page may hide more due rows behind the busy ones.
  if (static_cast<int>(rows->size()) == limit) {
    next = std::min(next, now + absl::Milliseconds(200));
  }
  return next;
}

void HttpWebhookSender::StartTransfer(const WebhookOutboxRow& row,
                                      absl::Time now) {
  auto t = std::make_unique<Transfer>();
  t->sender = this;
  t->row = row;
  t->attempt_time = now;
  t->easy = curl_easy_init();
  if (t->easy == nullptr) {
    JW_LOG(ERROR) << "webhooks: curl_easy_init failed";
    return;
  }
  const std::string id = MessageId(row);
  const int64_t timestamp = absl::ToUnixSeconds(now);
  for (const std::string& h :
       {std::string("content-type: application/json"),
        absl::StrCat("webhook-id: ", id),
        absl::StrCat("webhook-timestamp: ", timestamp),
        absl::StrCat("webhook-signature: ",
                     signer_.Sign(id, timestamp, t->row.body)),
        // No "100-continue" round trip.
        std::string("expect:")}) {
    t->headers = curl_slist_append(t->headers, h.c_str());
  }
  CURL* e = t->easy;
  curl_easy_setopt(e, CURLOPT_URL, t->row.url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_PROXY, "");  // none from the environment
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->row.body.data());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                   static_cast<curl_off_t>(t->row.body.size()));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "jobwire-webhooks/1");
  curl_easy_setopt(
      e, CURLOPT_CONNECTTIMEOUT_MS,
      static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(
      e, CURLOPT_TIMEOUT_MS,
      static_cast<long>(absl::ToInt64Milliseconds(options_.total_timeout)));
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &Transfer::OpenSocket);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t.get());
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Transfer::Write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
  if (curl_multi_add_handle(multi_, e) != CURLM_OK) {
    JW_LOG(ERROR) << "webhooks: curl_multi_add_handle failed";
    return;
  }
  transfers_[row.id] = std::move(t);
}

void HttpWebhookSender::FinishTransfer(Transfer* t, int curl_code) {
  const auto code = static_cast<CURLcode>(curl_code);
  long status = 0;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  WebhookAttemptOutcome outcome;
  outcome.http_status = static_cast<int32_t>(status);
  const bool cut_only = code == CURLE_WRITE_ERROR && t->response_cut;
  if (!t->refused.empty()) {
    outcome.http_status = 0;
    outcome.error = absl::StrCat("refused: ", t->refused);
    refused_.fetch_add(1);
  } else if (code != CURLE_OK && !cut_only) {
    outcome.error = curl_easy_strerror(code);
    if (t->error[0] != '\0') absl::StrAppend(&outcome.error, ": ", t->error);
  } else if (!IsDelivered(outcome)) {
    outcome.error = absl::StrCat("HTTP ", status);
    if (!t->response.empty()) {
      absl::StrAppend(&outcome.error, ": ",
                      t->response.substr(0, kErrorExcerpt));
    }
  }
  if (status == 429 || status == 503) {
    curl_off_t retry_after = 0;
    if (curl_easy_getinfo(t->easy, CURLINFO_RETRY_AFTER, &retry_after) ==
            CURLE_OK &&
        retry_after > 0) {
      outcome.retry_after = absl::Seconds(retry_after);
    }
  }
  WebhookAttempt attempt =
      PlanNextAttempt(t->row, outcome, options_.schedule, t->attempt_time,
                      clock_->Now(), random_->Uniform());
  attempts_.fetch_add(1);
  if (attempt.delivered) delivered_.fetch_add(1);
  if (options_.observer != nullptr) {
    WebhookAttemptResult result = WebhookAttemptResult::kFailedWillRetry;
    if (!t->refused.empty()) {
      result = WebhookAttemptResult::kRefused;
    } else if (attempt.delivered) {
      result = WebhookAttemptResult::kDelivered;
    } else if (attempt.next_state == WebhookDeliveryState::kDead) {
      result = WebhookAttemptResult::kDead;
    }
    options_.observer->OnWebhookAttempt(result,
                                        clock_->Now() - t->attempt_time);
  }
  const int64_t id = t->row.id;
  curl_multi_remove_handle(multi_, t->easy);
  transfers_.erase(id);  // deletes t
  {
    absl::MutexLock lock(&mu_);
    recording_.insert(id);
  }
  store_->RecordWebhookAttempt(std::move(attempt), [this, id](absl::Status s) {
    if (!s.ok()) {
      // Still pending in the outbox and due: sent again, but not before
      // kRecordFailureHold (a store that cannot write must not make the
      // sender hammer the receiver).
      JW_LOG(WARNING) << "webhooks: recording delivery " << id << ": " << s;
    }
    {
      absl::MutexLock lock(&mu_);
      recording_.erase(id);
      if (!s.ok()) held_[id] = clock_->Now() + kRecordFailureHold;
    }
    // After the erase: a scan woken earlier would skip the row.
    Wake();
  });
}

}  // namespace jobwire
