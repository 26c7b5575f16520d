#!/usr/bin/env bash
# Runs a command that must fail: non-zero exit (not a crash signal) and a message on stderr that
# contains the expected text. Usage: expect_fail.sh "TEXT" COMMAND [ARGS...]
set -uo pipefail
want=$1
shift
err=$(mktemp)
trap 'rm -f "$err"' EXIT
"$@" >/dev/null 2>"$err"
rc=$?
if [ $rc -eq 0 ]; then
  echo "expected failure, got exit 0: $*"; exit 1
fi
if [ $rc -ge 128 ]; then
  echo "crashed with signal $((rc - 128)): $*"; cat "$err"; exit 1
fi
if ! grep -qF -- "$want" "$err"; then
  echo "exit $rc but the message lacks '$want': $*"; cat "$err"; exit 1
fi
echo "ok (exit $rc): $(head -1 "$err")"
