#include "server/common/errors.h"

#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace jobwire {
namespace {

// Payload type URLs private to this process; never sent on the wire.
constexpr absl::string_view kFieldViolationsUrl =
    "jobwire.internal/field-violations";
constexpr absl::string_view kPreconditionUrl = "jobwire.internal/precondition";
constexpr absl::string_view kRetryDelayUrl = "jobwire.internal/retry-delay";
constexpr absl::string_view kReasonUrl = "jobwire.internal/reason";

// Records are joined by '\x1e' and their fields by '\x1f': neither appears in
// field paths or messages that jobwire writes.
constexpr char kRecordSep = '\x1e';
constexpr char kFieldSep = '\x1f';

std::vector<std::vector<std::string>> Decode(const absl::Status& status,
                                             absl::string_view url) {
  std::vector<std::vector<std::string>> out;
  absl::optional<absl::Cord> payload = status.GetPayload(url);
  if (!payload.has_value()) return out;
  std::string text(*payload);
  for (absl::string_view record :
       absl::StrSplit(text, kRecordSep, absl::SkipEmpty())) {
    out.push_back(absl::StrSplit(record, kFieldSep));
  }
  return out;
}

}  // namespace

absl::Status InvalidArgumentError(std::vector<FieldViolation> violations) {
  std::vector<std::string> parts;
  std::vector<std::string> records;
  for (const FieldViolation& v : violations) {
    parts.push_back(absl::StrCat(v.field, ": ", v.description));
    records.push_back(
        absl::StrCat(v.field, std::string(1, kFieldSep), v.description));
  }
  absl::Status status = absl::InvalidArgumentError(absl::StrJoin(parts, "; "));
  status.SetPayload(
      kFieldViolationsUrl,
      absl::Cord(absl::StrJoin(records, std::string(1, kRecordSep))));
  return status;
}

absl::Status InvalidArgumentError(absl::string_view field,
                                  absl::string_view description) {
  return InvalidArgumentError(
      {FieldViolation{std::string(field), std::string(description)}});
}

absl::Status FailedPreconditionError(absl::string_view message,
                                     PreconditionViolation violation) {
  absl::Status status = absl::FailedPreconditionError(message);
  status.SetPayload(
      kPreconditionUrl,
      absl::Cord(absl::StrCat(violation.type, std::string(1, kFieldSep),
                              violation.subject, std::string(1, kFieldSep),
                              violation.description)));
  return status;
}

absl::Status UnavailableError(absl::string_view message,
                              absl::Duration retry_delay) {
  absl::Status status = absl::UnavailableError(message);
  status.SetPayload(
      kRetryDelayUrl,
      absl::Cord(absl::StrCat(absl::ToInt64Milliseconds(retry_delay))));
  return status;
}

absl::Status ShuttingDownError(absl::Duration retry_delay) {
  return UnavailableError("server is shutting down", retry_delay);
}

absl::Status ResourceExhaustedError(absl::string_view message,
                                    absl::string_view reason) {
  absl::Status status = absl::ResourceExhaustedError(message);
  status.SetPayload(kReasonUrl, absl::Cord(reason));
  return status;
}

std::vector<FieldViolation> GetFieldViolations(const absl::Status& status) {
  std::vector<FieldViolation> out;
  for (auto& fields : Decode(status, kFieldViolationsUrl)) {
    if (fields.size() == 2)
      out.push_back({std::move(fields[0]), std::move(fields[1])});
  }
  return out;
}

std::vector<PreconditionViolation> GetPreconditionViolations(
    const absl::Status& status) {
  std::vector<PreconditionViolation> out;
  for (auto& fields : Decode(status, kPreconditionUrl)) {
    if (fields.size() == 3) {
      out.push_back(
          {std::move(fields[0]), std::move(fields[1]), std::move(fields[2])});
    }
  }
  return out;
}

bool GetRetryDelay(const absl::Status& status, absl::Duration* delay) {
  absl::optional<absl::Cord> payload = status.GetPayload(kRetryDelayUrl);
  if (!payload.has_value()) return false;
  int64_t ms = 0;
  if (!absl::SimpleAtoi(std::string(*payload), &ms)) return false;
  *delay = absl::Milliseconds(ms);
  return true;
}

std::string GetErrorReason(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kReasonUrl);
  return payload.has_value() ? std::string(*payload) : std::string();
}

}  // namespace jobwire
