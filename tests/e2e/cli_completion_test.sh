#!/usr/bin/env bash
# End-to-end checks of `jobwire completion bash`: the real binary's script,
# sourced into bash, completes command names, a group's subcommands and a
# command's flags as bash's completion would ask for them (COMP_WORDS and
# COMP_CWORD, then COMPREPLY). The zsh and fish scripts are checked by their
# shells' syntax check when those shells are installed.
#
# Usage: tests/e2e/cli_completion_test.sh [BIN_DIR]   (default: build/dev/bin)
# Prints "N passed, N failed" last; exits non-zero on a failure.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin_dir="$(cd "${1:-$repo/build/dev/bin}" && pwd)"
jobwire="$bin_dir/jobwire"

passed=0
failed=0

# complete WANT WORD...: completes the last WORD of `jobwire WORD...` and
# checks that WANT is among the answers.
complete_has() {
  local want="$1"
  shift
  local got
  got="$(bash -c '
    source <("$0" completion bash)
    COMP_WORDS=(jobwire "$@")
    COMP_CWORD=$#
    _jobwire
    printf "%s\n" "${COMPREPLY[@]}"' "$jobwire" "$@")"
  if grep -qxF -- "$want" <<<"$got"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: jobwire $* <TAB> should offer $want; got: $(tr '\n' ' ' <<<"$got")"
  fi
}

complete_has submit-batch sub
complete_has completion comp
complete_has list ''
complete_has --kind submit --k
complete_has --order-by list --or
complete_has --output list --addr x -o json --out
complete_has list webhooks l
complete_has --failed webhooks list --fa
complete_has --exec worker --ex

# The same through the zsh script, with compdef and compadd stubbed (they
# exist only under zsh's completion system).
complete_zsh_has() {
  local want="$1"
  shift
  local got
  got="$(zsh -c '
    compdef() { :; }
    compadd() { shift; print -l -- "$@"; }
    source <("$0" completion zsh)
    words=(jobwire "$@")
    CURRENT=$#words
    _jobwire' "$jobwire" "$@")"
  if grep -qxF -- "$want" <<<"$got"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: zsh: jobwire $* <TAB> should offer $want; got: $(tr '\n' ' ' <<<"$got")"
  fi
}

if command -v zsh >/dev/null; then
  complete_zsh_has submit-batch sub
  complete_zsh_has --order-by list --or
  complete_zsh_has --failed webhooks list --fa
fi

for shell in zsh fish; do
  if command -v "$shell" >/dev/null; then
    if "$shell" -n <("$jobwire" completion "$shell"); then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      echo "FAIL: $shell -n rejects jobwire completion $shell"
    fi
  fi
done

echo "$passed passed, $failed failed"
((failed == 0))
