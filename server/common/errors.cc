#include "server/common/errors.h"

#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace jobwire {
namespace {

// Payload type URLs private to this process; never sent on the wire.
constexpr absl::string_view kFieldViolationsUrl =
    "jobwire.internal/field-violations";
constexpr absl::string_view kPreconditionUrl = "jobwire.internal/precondition";
constexpr absl::string_view kRetryDelayUrl = "jobwire.internal/retry-delay";
constexpr absl::string_view kReasonUrl = "jobwire.internal/reason";

// A payload is a sequence of records of a fixed number of fields; each field
// is written as its byte length, ':' and its bytes, so any byte survives
// (descriptions quote a client's text, which may hold any byte).
void AppendField(std::string* out, absl::string_view field) {
  absl::StrAppend(out, field.size(), ":", field);
}

// The records of `arity` fields in the payload at `url`; a malformed tail
// (none that this file writes) is dropped.
std::vector<std::vector<std::string>> Decode(const absl::Status& status,
                                             absl::string_view url,
                                             size_t arity) {
  std::vector<std::vector<std::string>> out;
  absl::optional<absl::Cord> payload = status.GetPayload(url);
  if (!payload.has_value()) return out;
  const std::string text(*payload);
  absl::string_view rest(text);
  std::vector<std::string> record;
  while (!rest.empty()) {
    const size_t colon = rest.find(':');
    size_t n = 0;
    if (colon == absl::string_view::npos ||
        !absl::SimpleAtoi(rest.substr(0, colon), &n) ||
        n > rest.size() - colon - 1) {
      break;
    }
    record.emplace_back(rest.substr(colon + 1, n));
    rest.remove_prefix(colon + 1 + n);
    if (record.size() == arity) {
      out.push_back(std::move(record));
      record.clear();
    }
  }
  return out;
}

}  // namespace

absl::Status InvalidArgumentError(std::vector<FieldViolation> violations) {
  std::vector<std::string> parts;
  std::string records;
  for (const FieldViolation& v : violations) {
    parts.push_back(absl::StrCat(v.field, ": ", v.description));
    AppendField(&records, v.field);
    AppendField(&records, v.description);
  }
  absl::Status status = absl::InvalidArgumentError(absl::StrJoin(parts, "; "));
  status.SetPayload(kFieldViolationsUrl, absl::Cord(records));
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
  std::string record;
  AppendField(&record, violation.type);
  AppendField(&record, violation.subject);
  AppendField(&record, violation.description);
  status.SetPayload(kPreconditionUrl, absl::Cord(record));
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

absl::Status RequestTooLargeError(absl::string_view what, size_t bytes,
                                  size_t limit) {
  return ResourceExhaustedError(
      absl::StrCat(what, " too large: ",
                   bytes > 0 ? absl::StrCat(bytes, " bytes, ") : "", "at most ",
                   limit,
                   " bytes (--max-receive-message-bytes); send less at "
                   "once, e.g. smaller batches"),
      kRequestTooLargeReason);
}

std::vector<FieldViolation> GetFieldViolations(const absl::Status& status) {
  std::vector<FieldViolation> out;
  for (auto& fields : Decode(status, kFieldViolationsUrl, 2)) {
    out.push_back({std::move(fields[0]), std::move(fields[1])});
  }
  return out;
}

std::vector<PreconditionViolation> GetPreconditionViolations(
    const absl::Status& status) {
  std::vector<PreconditionViolation> out;
  for (auto& fields : Decode(status, kPreconditionUrl, 3)) {
    out.push_back(
        {std::move(fields[0]), std::move(fields[1]), std::move(fields[2])});
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
