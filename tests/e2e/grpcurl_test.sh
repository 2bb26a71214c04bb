#!/usr/bin/env bash
# End-to-end checks with the real grpcurl against the real jobwired: server
# reflection (list, describe), health over the Unix socket and TCP, an admin
# call, JobService calls (submit with JSON args, get, watch), error codes and
# details (BadRequest field violations, NotFound, filter positions), ExplainJob,
# the dispatch and queue controls (PauseDispatch, ResumeDispatch, ListQueues,
# UpdateQueue), and a clean stop.
#
# Usage: tests/e2e/grpcurl_test.sh [BIN_DIR]   (default: build/dev/bin)
# grpcurl comes from $GRPCURL, build/tools/bin (tools/bootstrap) or PATH.
# Prints "N passed, N failed, N skipped" last; exits non-zero on a failure.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin_dir="$(cd "${1:-$repo/build/dev/bin}" && pwd)"
grpcurl="${GRPCURL:-}"
if [[ -z "$grpcurl" ]]; then
  if [[ -x "$repo/build/tools/bin/grpcurl" ]]; then
    grpcurl="$repo/build/tools/bin/grpcurl"
  else
    grpcurl="$(command -v grpcurl || true)"
  fi
fi
if [[ -z "$grpcurl" || ! -x "$grpcurl" ]]; then
  echo "grpcurl not found: run tools/bootstrap" >&2
  exit 1
fi

work="$(mktemp -d /tmp/jobwire-e2e-XXXXXX)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
skipped=0
pass() {
  passed=$((passed + 1))
  echo "ok   $1"
}
fail() {
  failed=$((failed + 1))
  echo "FAIL $1"
  if [[ -n "${2:-}" ]]; then
    printf '%s\n' "$2" | sed 's/^/     | /'
  fi
}
skip() {
  skipped=$((skipped + 1))
  echo "skip $1"
}

# expect_output NAME PATTERN... -- COMMAND...: the command succeeds and its
# output contains every pattern (fixed strings).
expect_output() {
  local name="$1"
  shift
  local patterns=()
  while [[ "$1" != "--" ]]; do
    patterns+=("$1")
    shift
  done
  shift
  local out
  if ! out="$("$@" 2>&1)"; then
    fail "$name" "$out"
    return
  fi
  local p
  for p in "${patterns[@]}"; do
    if ! grep -qF -- "$p" <<<"$out"; then
      fail "$name (missing \"$p\")" "$out"
      return
    fi
  done
  pass "$name"
}

# expect_error NAME CODE PATTERN -- COMMAND...: the command fails, naming CODE,
# and its output contains PATTERN.
expect_error() {
  local name="$1" code="$2" pattern="$3"
  shift 4
  local out
  if out="$("$@" 2>&1)"; then
    fail "$name (succeeded)" "$out"
    return
  fi
  if grep -qF "Code: $code" <<<"$out" && grep -qF -- "$pattern" <<<"$out"; then
    pass "$name"
  else
    fail "$name" "$out"
  fi
}

# Start the server on a temp Unix socket and a free TCP port.
(cd "$work" && exec "$bin_dir/jobwired" --listen unix:var/j.sock --listen 127.0.0.1:0 \
  --db var/j.db --shutdown-grace 5s 2>"$work/server.log") &
server_pid=$!
for _ in $(seq 1 200); do
  if [[ "$(grep -c 'listening on' "$work/server.log" || true)" -ge 2 ]]; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
  sleep 0.05
done
tcp="$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$work/server.log" | sed 's/listening on //' || true)"
sock="$work/var/j.sock"
if [[ -z "$tcp" || ! -S "$sock" ]]; then
  fail "jobwired starts" "$(cat "$work/server.log")"
  echo "$passed passed, $failed failed, $skipped skipped"
  exit 1
fi
pass "jobwired starts on unix:$sock and $tcp"

unix_grpcurl=("$grpcurl" -plaintext -unix "$sock")
tcp_grpcurl=("$grpcurl" -plaintext "$tcp")
services=(jobwire.v1.JobService jobwire.v1.WorkerService jobwire.v1.AdminService
  grpc.health.v1.Health)

expect_output "list over the Unix socket" "${services[@]}" -- "${unix_grpcurl[@]}" list
expect_output "list over TCP" "${services[@]}" -- "${tcp_grpcurl[@]}" list

expect_output "describe jobwire.v1.JobService lists every method" \
  "rpc SubmitJob" "rpc SubmitJobs" "rpc GetJob" "rpc ListJobs" "rpc WatchJob" \
  "rpc WatchJobs" "rpc CancelJob" "rpc PauseJob" "rpc ResumeJob" "rpc RetryJob" \
  "rpc UpdateJob" "rpc BulkUpdateJobs" "rpc ExplainJob" \
  -- "${unix_grpcurl[@]}" describe jobwire.v1.JobService
expect_output "describe jobwire.v1.WorkerService" "rpc Connect" \
  -- "${unix_grpcurl[@]}" describe jobwire.v1.WorkerService
expect_output "describe jobwire.v1.AdminService" "rpc GetServerInfo" "rpc PauseDispatch" \
  "rpc Backup" -- "${unix_grpcurl[@]}" describe jobwire.v1.AdminService
expect_output "describe grpc.health.v1.Health" "rpc Check" "rpc Watch" \
  -- "${tcp_grpcurl[@]}" describe grpc.health.v1.Health

expect_output "health Check SERVING over the Unix socket" '"status": "SERVING"' \
  -- "${unix_grpcurl[@]}" grpc.health.v1.Health/Check
expect_output "health Check SERVING over TCP" '"status": "SERVING"' \
  -- "${tcp_grpcurl[@]}" grpc.health.v1.Health/Check
expect_output "health Check of jobwire.v1.JobService" '"status": "SERVING"' \
  -- "$grpcurl" -plaintext -d '{"service":"jobwire.v1.JobService"}' "$tcp" \
  grpc.health.v1.Health/Check
expect_error "health Check of an unknown service is NotFound" NotFound "unknown service" \
  -- "$grpcurl" -plaintext -d '{"service":"nope.Service"}' "$tcp" grpc.health.v1.Health/Check

expect_output "GetServerInfo names version, listeners and storage" '"version"' \
  "$tcp" "unix:$sock" "$work/var/j.db" \
  -- "${unix_grpcurl[@]}" jobwire.v1.AdminService/GetServerInfo
expect_output "Backup streams the database in chunks with their offsets" '"data"' \
  '"total_bytes"' -- "${tcp_grpcurl[@]}" jobwire.v1.AdminService/Backup

# Bad input: INVALID_ARGUMENT with a google.rpc.BadRequest naming each field.
formatted="$("$grpcurl" -plaintext -format-error -d '{"job":{"kind":"","queue":"Bad Queue!"}}' \
  "$tcp" jobwire.v1.JobService/SubmitJob 2>&1 || true)"
if grep -qF '"code": 3' <<<"$formatted" &&
  grep -qF "type.googleapis.com/google.rpc.BadRequest" <<<"$formatted"; then
  pass "SubmitJob with an empty kind and a bad queue is INVALID_ARGUMENT (-format-error)"
else
  fail "SubmitJob with an empty kind and a bad queue is INVALID_ARGUMENT (-format-error)" \
    "$formatted"
fi
bad_submit="$("$grpcurl" -plaintext -d '{"job":{"kind":"","queue":"Bad Queue!"}}' \
  "$tcp" jobwire.v1.JobService/SubmitJob 2>&1 || true)"
if grep -qF "Code: InvalidArgument" <<<"$bad_submit" &&
  grep -qF "google.rpc.BadRequest" <<<"$bad_submit" &&
  grep -qE '"field_?[vV]iolations"' <<<"$bad_submit" &&
  grep -qF '"field": "job.kind"' <<<"$bad_submit" &&
  grep -qF '"field": "job.queue"' <<<"$bad_submit"; then
  pass "its BadRequest field violations name job.kind and job.queue"
else
  fail "its BadRequest field violations name job.kind and job.queue" "$bad_submit"
fi
unknown_id=01ARZ3NDEKTSV4RRFFQ69G5FAV # a well-formed id no job has
expect_error "GetJob of an unknown id is NotFound" NotFound "$unknown_id" \
  -- "$grpcurl" -plaintext -unix -d "{\"id\":\"$unknown_id\"}" "$sock" \
  jobwire.v1.JobService/GetJob
expect_error "ListJobs with a bad filter is InvalidArgument naming the position" \
  InvalidArgument "at position" \
  -- "$grpcurl" -plaintext -unix -d '{"filter":"state = = QUEUED"}' "$sock" jobwire.v1.JobService/ListJobs

# Happy path: submit with inline JSON args, read it back, watch its snapshot.
submitted="$("$grpcurl" -plaintext -d '{"request_id":"e2e-1","job":{"queue":"e2e",
  "kind":"resize-image","args":{"width":640,"src":"s3://bucket/a.png"},
  "labels":{"tenant":"acme"}}}' "$tcp" jobwire.v1.JobService/SubmitJob 2>&1 || true)"
job_id="$(grep -o '"id": "[^"]*"' <<<"$submitted" | head -1 | sed 's/"id": "\(.*\)"/\1/' || true)"
if [[ -n "$job_id" ]] && grep -qF '"created": true' <<<"$submitted" &&
  grep -qF '"STATE_QUEUED"' <<<"$submitted"; then
  pass "SubmitJob with inline JSON args creates a QUEUED job ($job_id)"
else
  fail "SubmitJob with inline JSON args creates a QUEUED job" "$submitted"
fi
expect_output "SubmitJob again with the same request_id returns the same job" \
  "\"id\": \"$job_id\"" -- "$grpcurl" -plaintext \
  -d '{"request_id":"e2e-1","job":{"queue":"e2e","kind":"resize-image"}}' \
  "$tcp" jobwire.v1.JobService/SubmitJob
expect_output "GetJob returns the job with its args and labels" "\"id\": \"$job_id\"" \
  '"kind": "resize-image"' '"src": "s3://bucket/a.png"' '"tenant": "acme"' \
  -- "$grpcurl" -plaintext -unix -d "{\"id\":\"$job_id\"}" "$sock" \
  jobwire.v1.JobService/GetJob
# The watch stays open (the job is not finished): -max-time ends it.
watch_out="$("$grpcurl" -plaintext -unix -max-time 2 -d "{\"id\":\"$job_id\"}" \
  "$sock" jobwire.v1.JobService/WatchJob 2>&1 || true)"
if grep -qF '"snapshot"' <<<"$watch_out" && grep -qE "\"job_?[iI]d\": \"$job_id\"" <<<"$watch_out" &&
  grep -qF '"STATE_QUEUED"' <<<"$watch_out"; then
  pass "WatchJob starts with the job's snapshot"
else
  fail "WatchJob starts with the job's snapshot" "$watch_out"
fi

# UpdateJob: grpcurl takes a FieldMask as {"paths": [...]}.
expect_output "UpdateJob writes the masked fields only" '"priority": 5' '"tenant": "globex"' \
  '"etag": "v2"' '"kind": "resize-image"' \
  -- "$grpcurl" -plaintext -d "{\"job\":{\"id\":\"$job_id\",\"priority\":5,\"kind\":\"x\",
  \"labels\":{\"tenant\":\"globex\"}},\"update_mask\":{\"paths\":[\"priority\",\"labels.tenant\"]},\"etag\":\"v1\"}" \
  "$tcp" jobwire.v1.JobService/UpdateJob
expect_error "UpdateJob with a stale etag is Aborted" Aborted "has etag v2, not v1" \
  -- "$grpcurl" -plaintext -d "{\"job\":{\"id\":\"$job_id\",\"priority\":6},
  \"update_mask\":{\"paths\":[\"priority\"]},\"etag\":\"v1\"}" "$tcp" jobwire.v1.JobService/UpdateJob
expect_error "UpdateJob of state is InvalidArgument naming the path" InvalidArgument \
  "update_mask.paths[0]: 'state' is not updatable" \
  -- "$grpcurl" -plaintext -d "{\"job\":{\"id\":\"$job_id\"},\"update_mask\":{\"paths\":[\"state\"]}}" \
  "$tcp" jobwire.v1.JobService/UpdateJob

# ExplainJob: a queued job with no worker connected is held by NO_WORKER.
job_id="$("$grpcurl" -plaintext -d '{"job":{"queue":"explain","kind":"e2e"}}' "$tcp" \
  jobwire.v1.JobService/SubmitJob 2>&1 | grep -o '"id": "[0-9A-Z]*"' | head -n 1 |
  sed 's/"id": "\(.*\)"/\1/' || true)"
if [[ -z "$job_id" ]]; then
  fail "SubmitJob returns a job id for ExplainJob"
else
  expect_output "ExplainJob of a queued job without workers names NO_WORKER" \
    '"type": "NO_WORKER"' "$job_id" \
    -- "$grpcurl" -plaintext -d "{\"id\":\"$job_id\"}" "$tcp" jobwire.v1.JobService/ExplainJob
fi
# Two distinct jobs were submitted above (the inline-args job, submitted twice
# with one request_id, and the ExplainJob job): both are QUEUED, no worker.
expect_output "GetServerInfo counts jobs by state" '"job_counts"' '"QUEUED": "2"' \
  -- "${tcp_grpcurl[@]}" jobwire.v1.AdminService/GetServerInfo

# BulkUpdateJobs (a bidi stream; one request, one response): a patch on a
# filter, a dry run over every job, and a bad id named by its path.
expect_output "BulkUpdateJobs patches the jobs a filter matches" '"matched": "1"' \
  '"updated": "1"' \
  -- "$grpcurl" -plaintext -d '{"filter":"queue = \"explain\"","patch":{"priority":3},
  "update_mask":{"paths":["priority"]}}' "$tcp" jobwire.v1.JobService/BulkUpdateJobs
expect_output "BulkUpdateJobs dry run counts every job and changes none" '"matched": "2"' \
  '"updated": "2"' \
  -- "$grpcurl" -plaintext -d '{"filter":"","action":"ACTION_CANCEL","dry_run":true}' \
  "$tcp" jobwire.v1.JobService/BulkUpdateJobs
expect_error "BulkUpdateJobs with a bad id is InvalidArgument naming it" InvalidArgument \
  "ids.ids[0]: is not a job id" \
  -- "$grpcurl" -plaintext -d '{"ids":{"ids":["nope"]},"action":"ACTION_CANCEL"}' \
  "$tcp" jobwire.v1.JobService/BulkUpdateJobs

# Operator controls: a dispatch pause shows in GetServerInfo and ExplainJob.
expect_output "PauseDispatch pauses with its reason" '"paused": true' \
  '"reason": "e2e maintenance"' \
  -- "$grpcurl" -plaintext -unix -d '{"reason":"e2e maintenance"}' "$sock" \
  jobwire.v1.AdminService/PauseDispatch
expect_output "GetServerInfo shows the dispatch pause" '"paused": true' \
  -- "${tcp_grpcurl[@]}" jobwire.v1.AdminService/GetServerInfo
if [[ -n "$job_id" ]]; then
  expect_output "ExplainJob names the dispatch pause" '"type": "DISPATCH_PAUSED"' \
    -- "$grpcurl" -plaintext -d "{\"id\":\"$job_id\"}" "$tcp" jobwire.v1.JobService/ExplainJob
fi
expect_output "ResumeDispatch lifts it" '"paused": false' \
  -- "$grpcurl" -plaintext -emit-defaults "$tcp" jobwire.v1.AdminService/ResumeDispatch
expect_output "ListQueues lists the queues with jobs and their counts" \
  '"name": "e2e"' '"name": "explain"' '"QUEUED": "1"' '"weight": 1' \
  -- "${unix_grpcurl[@]}" jobwire.v1.AdminService/ListQueues
expect_error "UpdateQueue with a bad mask is InvalidArgument naming the path" \
  InvalidArgument "update_mask.paths[0]" \
  -- "$grpcurl" -plaintext -d '{"queue":{"name":"e2e","weight":2},"update_mask":{"paths":["paused"]}}' \
  "$tcp" jobwire.v1.AdminService/UpdateQueue

expect_error "ExplainJob of an unknown job is NotFound" NotFound "" \
  -- "$grpcurl" -plaintext -d '{"id":"01ARZ3NDEKTSV4RRFFQ69G5FAV"}' "$tcp" \
  jobwire.v1.JobService/ExplainJob

# A clean stop: SIGTERM, exit 0, socket and lock removed.
kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=""
if [[ "$status" -eq 0 && ! -e "$sock" && ! -e "$sock.lock" ]]; then
  pass "SIGTERM stops jobwired with exit 0 and removes the socket and lock"
else
  fail "SIGTERM stops jobwired cleanly (exit $status)" "$(cat "$work/server.log")"
fi

echo "$passed passed, $failed failed, $skipped skipped"
[[ "$failed" -eq 0 ]]
