#!/usr/bin/env bash
# End-to-end checks of `jobwire completion bash`: the real binary's script,
# sourced into bash, completes command names, a group's subcommands and a
# command's flags as bash's completion would ask for them (COMP_WORDS and
# COMP_CWORD, then COMPREPLY). The zsh script is checked under a real zsh
# with its completion system (compinit), typed into on a pseudo-terminal;
# zsh and fish also check their scripts' syntax (fish when installed).
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
complete_has --output --addr x list -o json --out
complete_has list webhooks l
complete_has --failed webhooks list --fa
complete_has --exec worker --ex

# The zsh script under a real zsh: `zsh -f -i` on a pseudo-terminal
# (zsh/zpty) with the completion system (compinit), where keys are typed
# (TAB included) and the command line is read back as zle left it. Both ways
# of installing the script: as _jobwire in a folder of $fpath (what
# `cmake --install` does), and sourced.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/fpath"
"$jobwire" completion zsh >"$work/fpath/_jobwire"
"$jobwire" completion zsh >"$work/sourced.zsh"
cat >"$work/drive.zsh" <<'ZSH'
# zsh -f drive.zsh SETUP OUT INPUT...: an interactive zsh -f on a pty, in
# emacs keys, runs SETUP, then types each INPUT (a TAB in it completes)
# and a key whose widget appends "[COMMAND LINE]" to OUT and clears the
# line. Waits until OUT has a line per INPUT (at most 20 s).
zmodload zsh/zpty || exit 3
setup=$1 out=$2
shift 2
: >$out
zpty jw zsh -f -i
zpty -w jw "PS1='' RPS1=''; bindkey -e; $setup"
zpty -w jw 'jw_dump() { print -r -- "[$BUFFER]" >>'"${(q)out}"'; BUFFER=; }; zle -N jw_dump; bindkey "^O" jw_dump'
for input in "$@"; do
  zpty -w -n jw "$input"$'\C-o'
done
integer want=$# tries=0
while (( $(wc -l <$out) < want && tries++ < 400 )); do
  while zpty -r -t jw junk 2>/dev/null; do :; done
  sleep 0.05
done
zpty -d jw
ZSH

# zsh_completes HOW: types each case's keys into a zsh whose completion is
# set up HOW, and checks the command line it leaves.
zsh_completes() {
  local how="$1" setup
  case "$how" in
    fpath) setup="fpath=(${work@Q}/fpath \$fpath); autoload -Uz compinit; compinit -u -D" ;;
    sourced) setup="autoload -Uz compinit; compinit -u -D; source ${work@Q}/sourced.zsh" ;;
  esac
  local -a keys=() want=()
  local k w
  while IFS='|' read -r k w; do
    keys+=("${k//<TAB>/$'\t'}")
    want+=("[$w]")
  done <<'CASES'
jobwire comp<TAB>|jobwire completion 
jobwire submit-<TAB>|jobwire submit-batch 
jobwire sub<TAB>|jobwire submit
jobwire list --or<TAB>|jobwire list --order-by 
jobwire --addr x list -o json --out<TAB>|jobwire --addr x list -o json --output 
jobwire webhooks l<TAB>|jobwire webhooks list 
jobwire webhooks list --fa<TAB>|jobwire webhooks list --failed 
jobwire worker --ex<TAB>|jobwire worker --exec 
jobwire submit --k<TAB>|jobwire submit --kind 
CASES
  zsh -f "$work/drive.zsh" "$setup" "$work/out.$how" "${keys[@]}" || true
  local -a got=()
  mapfile -t got <"$work/out.$how"
  local i
  for i in "${!keys[@]}"; do
    if [[ "${got[$i]:-}" == "${want[$i]}" ]]; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      echo "FAIL: zsh ($how): ${keys[$i]//$'\t'/<TAB>} should leave ${want[$i]}; got ${got[$i]:-nothing}"
    fi
  done
}

if command -v zsh >/dev/null; then
  zsh_completes fpath
  zsh_completes sourced
else
  failed=$((failed + 1))
  echo "FAIL: zsh is not installed (tools/bootstrap installs it)"
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
