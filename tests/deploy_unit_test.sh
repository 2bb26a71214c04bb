#!/usr/bin/env bash
# Checks deploy/jobwired.service with `systemd-analyze verify`, pointed at
# the jobwired of this build (verify wants an executable ExecStart), and
# that it keeps its hardening. Exit 77 (skipped) without systemd-analyze.
#   tests/deploy_unit_test.sh PATH/TO/jobwired
set -euo pipefail
jobwired="$1"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! command -v systemd-analyze >/dev/null; then
  echo "systemd-analyze not installed: skipped"
  exit 77
fi
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
sed "s|/usr/local/bin/jobwired|$jobwired|" "$repo/deploy/jobwired.service" \
  >"$dir/jobwired.service"
systemd-analyze verify "$dir/jobwired.service"
for want in DynamicUser=yes ProtectSystem=strict StateDirectory=jobwire \
  RuntimeDirectory=jobwire LimitNOFILE= UMask=0077 NoNewPrivileges=yes; do
  grep -q "^$want" "$dir/jobwired.service" || {
    echo "deploy/jobwired.service: missing $want"
    exit 1
  }
done
echo "deploy/jobwired.service: ok"
