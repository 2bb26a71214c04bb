#!/usr/bin/env bash
# End-to-end checks of the real `jobwire webhook verify` binary: requests
# signed just now by Python's hmac (from the Standard Webhooks spec, not by
# jobwire's code), fed on stdin as a raw HTTP request and as plain header
# lines, against the system clock; exit codes 0 (verified), 1 (not
# verified) and 2 (usage). Every verification case of the shared vectors
# runs in-process in webhook_command_test; this covers the binary's stdin,
# secret file and clock.
#
# Usage: tests/e2e/webhook_verify_test.sh [BIN_DIR]   (default: build/dev/bin)
# Prints "N passed, N failed" last; exits non-zero on a failure.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin_dir="$(cd "${1:-$repo/build/dev/bin}" && pwd)"
jobwire="$bin_dir/jobwire"

work="$(mktemp -d /tmp/jobwire-webhook-e2e-XXXXXX)"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0

old_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
new_secret="whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
printf '# rotating: the new secret, then the old one\n%s\n\n%s\n' \
  "$new_secret" "$old_secret" >"$work/secrets"
printf '%s\n' "$old_secret" >"$work/old-only"

# request FORM AGE_SECONDS BODY: a request signed with the old secret,
# AGE_SECONDS ago; FORM is "raw" (HTTP request line, CR LF) or "plain".
request() {
  python3 - "$1" "$2" "$3" "$old_secret" <<'PY'
import base64, hashlib, hmac, sys, time
form, age, body, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
key = base64.b64decode(secret[len("whsec_"):])
msg_id, ts = "msg_e2e_1", str(int(time.time()) - age)
sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.{body}".encode(),
                                 hashlib.sha256).digest()).decode()
eol = "\r\n" if form == "raw" else "\n"
head = "POST /hooks HTTP/1.1" + eol + "Content-Type: application/json" + eol if form == "raw" else ""
sys.stdout.write(head + f"Webhook-Id: {msg_id}{eol}webhook-timestamp: {ts}{eol}"
                 f"webhook-signature: v1,{sig}{eol}{eol}{body}")
PY
}

# check NAME WANT_EXIT WANT_TEXT STDIN_FILE ARGS...: runs jobwire with
# STDIN_FILE on stdin; wants that exit code and WANT_TEXT in its output.
check() {
  local name="$1" want_exit="$2" want_text="$3" input="$4"
  shift 4
  local out status=0
  out="$("$jobwire" "$@" <"$input" 2>&1)" || status=$?
  if [[ "$status" -eq "$want_exit" && "$out" == *"$want_text"* ]]; then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name: exit $status, want $want_exit with '$want_text'"
    printf '%s\n' "$out" | sed 's/^/     | /'
  fi
}

body='{"type":"job.succeeded","data":{"id":"01J"}}'
request raw 0 "$body" >"$work/raw"
request plain 0 "$body" >"$work/plain"
# The signature of one body, the bytes of another.
sed '$d' "$work/plain" >"$work/tampered"
printf '%s' "$body!" >>"$work/tampered"
request raw 600 "$body" >"$work/old"

verify=(webhook verify --secret-file "$work/secrets")
check "raw HTTP request, rotating secret file" 0 verified "$work/raw" "${verify[@]}"
check "header lines and body" 0 verified "$work/plain" "${verify[@]}"
check "as JSON, -o anywhere" 0 "\"verified\": true" "$work/plain" webhook verify -o json --secret-file "$work/old-only"
check "one secret" 0 verified "$work/plain" webhook verify --secret-file "$work/old-only"
check "tampered body" 1 "jobwire: webhook verify: UNAUTHENTICATED: no v1 signature" \
  "$work/tampered" "${verify[@]}"
check "10 minutes old" 1 "jobwire: webhook verify: UNAUTHENTICATED: webhook-timestamp" \
  "$work/old" "${verify[@]}"
check "10 minutes old, --tolerance 15m" 0 verified "$work/old" "${verify[@]}" --tolerance 15m
check "no --secret-file" 2 "--secret-file is required" "$work/raw" webhook verify
check "unreadable --secret-file" 2 "--secret-file: cannot read" "$work/raw" \
  webhook verify --secret-file "$work/nonexistent"

echo "$passed passed, $failed failed"
((failed == 0))
