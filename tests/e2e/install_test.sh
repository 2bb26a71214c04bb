#!/usr/bin/env bash
# The install and the SDKs' quick starts, as a user outside the clone gets
# them: `cmake --install` of this build into a temp prefix; the installed
# jobwired on the default address (unix:$XDG_RUNTIME_DIR/jobwire.sock) and
# the installed CLI reaching it from another folder; then each README's
# quick start from a clean install, in a folder of its own:
#   C++         tests/install/consumer, configured with find_package(jobwire)
#   Python      clients/python/README.md, pip-installed into a new venv
#               (and mypy following its types into the generated stubs)
#   TypeScript  clients/typescript/README.md, from the tarball `npm pack` makes
#   Go          clients/go/README.md, a module that `replace`s the SDK
#
# Usage: tests/e2e/install_test.sh [BIN_DIR]   (default: build/dev/bin; its
# parent is the build folder to install). Needs what tools/bootstrap
# installs, and the package registries (PyPI, npm, the Go proxy) or their
# caches. Prints "N passed, N failed, N skipped" last.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin_dir="$(cd "${1:-$repo/build/dev/bin}" && pwd)"
build_dir="$(dirname "$bin_dir")"
work="$(mktemp -d /tmp/jobwire-install-XXXXXX)"
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
pass() {
  passed=$((passed + 1))
  echo "ok   $1"
}
fail() {
  failed=$((failed + 1))
  echo "FAIL $1"
  if [[ -n "${2:-}" ]]; then printf '%s\n' "$2" | tail -n 30 | sed 's/^/     | /'; fi
}
# check NAME PATTERN COMMAND...: COMMAND succeeds and prints PATTERN.
check() {
  local name="$1" pattern="$2" out
  shift 2
  if out="$("$@" 2>&1)" && grep -qF -- "$pattern" <<<"$out"; then
    pass "$name"
  else
    fail "$name" "$out"
  fi
}
# quick_start README LANG: the fenced LANG block after the README's
# "<!-- quick start" marker.
quick_start() {
  awk -v lang="$2" '
    /<!-- quick start/ { marked = 1; next }
    marked && !inside && $0 == "```" lang { inside = 1; next }
    inside && $0 == "```" { exit }
    inside { print }' "$1"
}

prefix="$work/prefix"
check "cmake --install" "jobwireConfig.cmake" \
  cmake --install "$build_dir" --prefix "$prefix"
for f in bin/jobwired bin/jobwire include/jobwire/clients/cpp/client.h \
  include/jobwire/jobwire/v1/job.pb.h lib/cmake/jobwire/jobwireConfigVersion.cmake; do
  if [[ -e "$prefix/$f" ]]; then pass "installs $f"; else fail "installs $f"; fi
done

# The systemd unit, its ExecStart naming the installed jobwired; still
# accepted by systemd-analyze when it is installed.
unit="$prefix/lib/systemd/system/jobwired.service"
if [[ -s "$unit" ]] && grep -qF "ExecStart=$prefix/bin/jobwired " "$unit" &&
  ! grep -qF /usr/local/bin "$unit"; then
  pass "installs lib/systemd/system/jobwired.service running $prefix/bin/jobwired"
else
  fail "installs lib/systemd/system/jobwired.service running $prefix/bin/jobwired" \
    "$(cat "$unit" 2>&1)"
fi
if command -v systemd-analyze >/dev/null; then
  if out="$(systemd-analyze verify "$unit" 2>&1)"; then
    pass "systemd-analyze verify accepts the installed unit"
  else
    fail "systemd-analyze verify accepts the installed unit" "$out"
  fi
fi
if grep -qxF "$unit" "$build_dir/install_manifest.txt"; then
  pass "the unit is in install_manifest.txt"
else
  fail "the unit is in install_manifest.txt" "$(cat "$build_dir/install_manifest.txt")"
fi

# Shell completions, once the CLI writes them (`jobwire completion SHELL`).
if "$prefix/bin/jobwire" completion bash >/dev/null 2>&1; then
  for f in share/bash-completion/completions/jobwire share/zsh/site-functions/_jobwire \
    share/fish/vendor_completions.d/jobwire.fish; do
    if [[ -s "$prefix/$f" ]]; then pass "installs $f"; else fail "installs $f"; fi
  done
fi

# The server and every client below run with this runtime folder and no
# address: they meet at its jobwire.sock, whatever their current folder.
export XDG_RUNTIME_DIR="$work/run"
unset JOBWIRE_ADDR JOBWIRE_LISTEN
mkdir -p "$XDG_RUNTIME_DIR" "$work/elsewhere"
sock="$XDG_RUNTIME_DIR/jobwire.sock"
# (Only the Unix socket: the default TCP port may be taken on this machine.)
(cd "$work/elsewhere" && exec "$prefix/bin/jobwired" --listen "unix:$sock" \
  --db "$work/db/jobwire.db" 2>"$work/server.log") &
server_pid=$!
for _ in $(seq 1 200); do
  if [[ -S "$sock" ]] && grep -q 'listening on' "$work/server.log"; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
  sleep 0.05
done
if [[ -S "$sock" ]]; then
  pass "installed jobwired serves unix:$sock"
else
  fail "installed jobwired starts" "$(cat "$work/server.log")"
  echo "$passed passed, $failed failed, 0 skipped"
  exit 1
fi
check "installed jobwire reaches the default address from /" "SERVING" \
  bash -c "cd / && '$prefix/bin/jobwire' health"
out="$(cd / || exit; XDG_RUNTIME_DIR=/nonexistent "$prefix/bin/jobwire" health --timeout 1s 2>&1)" || true
if grep -qF "unix:/nonexistent/jobwire.sock" <<<"$out" && grep -qF "JOBWIRE_ADDR" <<<"$out"; then
  pass "UNAVAILABLE names the address tried and JOBWIRE_ADDR"
else
  fail "UNAVAILABLE names the address tried and JOBWIRE_ADDR" "$out"
fi

# C++: a project of its own, find_package(jobwire) from the install.
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
if out="$(cmake -S "$repo/tests/install/consumer" -B "$work/cpp" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" "${launcher[@]}" 2>&1 &&
  cmake --build "$work/cpp" 2>&1)"; then
  pass "C++ consumer builds with find_package(jobwire)"
  check "C++ consumer runs against the installed jobwired" "STATE_SUCCEEDED" \
    bash -c "cd '$work/elsewhere' && '$work/cpp/consumer'"
else
  fail "C++ consumer builds with find_package(jobwire)" "$out"
fi

# Python: pip install into a new venv, the README's quick start.
mkdir -p "$work/py"
cp -r "$repo/clients/python" "$work/py/src"
rm -rf "$work/py/src/build" "$work/py/src"/*.egg-info
quick_start "$repo/clients/python/README.md" python >"$work/py/quickstart.py"
if out="$(python3 -m venv "$work/py/venv" 2>&1 &&
  "$work/py/venv/bin/pip" install -q --disable-pip-version-check "$work/py/src" 2>&1)"; then
  pass "pip install clients/python into a new venv"
  check "Python quick start (README)" "STATE_SUCCEEDED" \
    bash -c "cd '$work/py' && venv/bin/python quickstart.py"
  check "Python package ships py.typed and the .pyi stubs" "job_pb2.pyi" \
    bash -c "cd '$work/py' && venv/bin/python -c 'import jobwire, pathlib; d = pathlib.Path(jobwire.__file__).parent; assert (d / \"py.typed\").exists(); print(*(p.name for p in (d / \"v1\").glob(\"*.pyi\")))'"
  # A type checker follows the package and the generated stubs: a str
  # field assigned to an int is an error found through jobwire.v1's .pyi.
  printf '%s\n' 'from jobwire import Client' 'job = Client("unix:/x").get_job("x")' \
    'ok: str = job.kind' 'bad: int = job.kind' >"$work/py/typed.py"
  if out="$("$work/py/venv/bin/pip" install -q --disable-pip-version-check mypy==2.4.1 2>&1)"; then
    out="$(cd "$work/py" || exit; venv/bin/mypy typed.py 2>&1)" || true
    if grep -qF 'typed.py:4: error: Incompatible types' <<<"$out" && grep -qF 'Found 1 error' <<<"$out"; then
      pass "mypy follows the package's types into the generated stubs"
    else
      fail "mypy follows the package's types into the generated stubs" "$out"
    fi
  else
    fail "pip install mypy" "$out"
  fi
else
  fail "pip install clients/python into a new venv" "$out"
fi

# TypeScript: the tarball npm pack makes, installed into a new project.
mkdir -p "$work/ts"
quick_start "$repo/clients/typescript/README.md" js >"$work/ts/quickstart.mjs"
if out="$(cd "$work/ts" && npm pack --silent "$repo/clients/typescript" 2>&1 &&
  echo '{"name": "quickstart", "private": true}' >package.json &&
  npm install --no-audit --no-fund --loglevel=error ./jobwire-client-*.tgz 2>&1)"; then
  pass "npm pack and npm install of clients/typescript"
  check "TypeScript quick start (README, ES module)" "STATE_SUCCEEDED" \
    bash -c "cd '$work/ts' && node quickstart.mjs"
  check "the package loads with require (CommonJS)" "function" \
    bash -c "cd '$work/ts' && node -e 'console.log(typeof require(\"@jobwire/client\").Client)'"
else
  fail "npm pack and npm install of clients/typescript" "$out"
fi

# Go: a module of its own with a replace, as the README says.
mkdir -p "$work/go"
quick_start "$repo/clients/go/README.md" go >"$work/go/main.go"
if out="$(cd "$work/go" && go mod init example.com/quickstart 2>&1 &&
  go mod edit -replace "github.com/jobwire/jobwire/clients/go=$repo/clients/go" &&
  go mod edit -require github.com/jobwire/jobwire/clients/go@v0.0.0 &&
  go mod tidy 2>&1 && go build -o quickstart . 2>&1)"; then
  pass "Go quick start builds in a module that replaces the SDK"
  check "Go quick start (README)" "STATE_SUCCEEDED" bash -c "cd '$work/go' && ./quickstart"
else
  fail "Go quick start builds in a module that replaces the SDK" "$out"
fi

kill -TERM "$server_pid"
wait "$server_pid" || true
server_pid=""
echo "$passed passed, $failed failed, 0 skipped"
[[ "$failed" -eq 0 ]]
