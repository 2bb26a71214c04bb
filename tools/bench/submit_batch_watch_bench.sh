#!/usr/bin/env bash
# `jobwire submit-batch --watch` over N jobs on a real jobwired: the wall
# time and the CLI's peak RSS (GNU time) when all N are new (they are
# cancelled by one bulk cancel once the bar shows 0/N), then again with the
# same request ids (all N existed: their states are listed by id).
#
#   tools/bench/submit_batch_watch_bench.sh BIN_DIR N    e.g. build/ci/bin 100000
set -euo pipefail
bin="$(cd "$1" && pwd)"
n="$2"
d="$(mktemp -d /tmp/jobwire-sbw-XXXXXX)"
srv=""
cleanup() {
  if [[ -n "$srv" ]]; then kill "$srv" 2>/dev/null || true; fi
  rm -rf "$d"
}
trap cleanup EXIT
"$bin/jobwired" --listen "unix:$d/s.sock" --db "$d/j.db" 2>"$d/server.log" &
srv=$!
for _ in $(seq 1 200); do
  if [[ -S "$d/s.sock" ]]; then break; fi
  sleep 0.05
done
python3 -c "
for i in range($n):
    print('{\"job\": {\"kind\": \"k\", \"queue\": \"m\"}, \"request_id\": \"r%d\"}' % i)" >"$d/jobs.jsonl"
addr=(--addr "unix:$d/s.sock")
(/usr/bin/time -f "new: %e s wall, %M KiB max RSS" "$bin/jobwire" "${addr[@]}" \
  submit-batch --watch "$d/jobs.jsonl" >"$d/new.out" 2>"$d/new.err" || true) &
watch=$!
until grep -q "0/$n ended" "$d/new.out" 2>/dev/null; do sleep 0.2; done
"$bin/jobwire" "${addr[@]}" bulk --filter 'queue = "m"' --action cancel >/dev/null || true
wait "$watch"
tail -n 1 "$d/new.err"
tail -n 1 "$d/new.out"
/usr/bin/time -f "existing: %e s wall, %M KiB max RSS" "$bin/jobwire" "${addr[@]}" \
  submit-batch --watch "$d/jobs.jsonl" >"$d/again.out" 2>"$d/again.err" || true
tail -n 1 "$d/again.err"
tail -n 1 "$d/again.out"
