#!/usr/bin/env bash
# Checks deploy/sidecar/compose.yaml: `docker-compose config` accepts it; both
# containers keep their hardening and share the socket volume; and the
# commands it gives run: jobwired with the compose file's flags (its paths
# moved to a temp folder) serves, the healthcheck's command says SERVING and
# the app's submit works, as uid 10001's would. Exit 77 (skipped) without
# docker-compose (tools/bootstrap installs it).
#   tests/deploy_sidecar_test.sh PATH/TO/jobwired PATH/TO/jobwire
set -euo pipefail
jobwired="$1"
jobwire="$2"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
compose="$repo/deploy/sidecar/compose.yaml"
if ! command -v docker-compose >/dev/null; then
  echo "docker-compose not installed: skipped"
  exit 77
fi
dir="$(mktemp -d)"
pid=""
cleanup() {
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
docker-compose -f "$compose" config >"$dir/config.yaml"
python3 - "$dir/config.yaml" "$dir" <<'PY'
import json, sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
out = sys.argv[2]
services = config["services"]
for name in ("jobwired", "app"):
    s = services[name]
    for key, want in (("read_only", True), ("network_mode", "none"),
                      ("cap_drop", ["ALL"]),
                      ("security_opt", ["no-new-privileges:true"]),
                      ("user", "10001:10001")):
        if s.get(key) != want:
            sys.exit(f"{name}: {key} is {s.get(key)!r}, want {want!r}")
    if not any(v.startswith("jobwire-socket:/run/jobwire")
               for v in s["volumes"]):
        sys.exit(f"{name}: does not mount the socket volume")
if services["app"]["depends_on"]["jobwired"]["condition"] != "service_healthy":
    sys.exit("app: does not wait for jobwired's healthcheck")
# The commands, their container paths moved under the temp folder.
def moved(args):
    return [a.replace("/var/lib/jobwire", out).replace("/run/jobwire", out)
            for a in args]
json.dump({"jobwired": moved(services["jobwired"]["command"]),
           "health": moved(services["jobwired"]["healthcheck"]["test"][1:]),
           "addr": moved([services["app"]["environment"]["JOBWIRE_ADDR"]])[0]},
          open(f"{out}/commands.json", "w"))
PY
mapfile -t server_args < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["jobwired"]))' "$dir/commands.json")
mapfile -t health_args < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["health"][1:]))' "$dir/commands.json")
addr="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["addr"])' "$dir/commands.json")"
"$jobwired" "${server_args[@]}" >"$dir/jobwired.log" 2>&1 &
pid=$!
for _ in $(seq 1 500); do
  grep -q "listening on" "$dir/jobwired.log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/jobwired.log"; exit 1; }
  sleep 0.02
done
"$jobwire" "${health_args[@]}" | grep -q SERVING || {
  echo "healthcheck command failed"; cat "$dir/jobwired.log"; exit 1; }
JOBWIRE_ADDR="$addr" "$jobwire" submit --kind hello --args '{"name":"sidecar"}' \
  | grep -q QUEUED || { echo "app's submit failed"; exit 1; }
echo "deploy/sidecar/compose.yaml: ok"
