#!/usr/bin/env bash
# Tests scripts/slownet.sh: a tiny sparcol-bench run on the emulated 1 Gbit/s network (right results,
# namespace gone afterwards), what the command sees inside (the tbf limit, Open MPI on TCP), and the
# bad-input and interruption paths (clear message, non-zero status, nothing left behind, a foreign
# namespace untouched).
# Usage: slownet_test.sh SPARCOL_BENCH MPIEXEC      (as root; exits 77, "skipped", otherwise)
set -uo pipefail

bench=${1:?usage: slownet_test.sh SPARCOL_BENCH MPIEXEC}
mpiexec=${2:?usage: slownet_test.sh SPARCOL_BENCH MPIEXEC}
here=$(cd "$(dirname "$0")" && pwd)
slownet="$here/../../scripts/slownet.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "skipped: network namespaces need root"
  exit 77
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

work=$(mktemp -d)
tag="sparcol-test-$$"
foreign="$tag-foreign"
trap 'ip netns del "$foreign" 2>/dev/null; rm -rf "$work"' EXIT
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
ns_exists() { [ -e "/run/netns/$1" ]; }

# 1. sparcol-bench inside at 1 Gbit/s: every result right, namespace removed.
echo "== sparcol-bench, 2 ranks, 1gbit"
"$slownet" --rate 1gbit --name "$tag-bench" -- \
  "$mpiexec" -np 2 --oversubscribe "$bench" -b 64K -e 1M -f 4 -n 3 -w 1 >"$work/bench.out" 2>&1
status=$?
cat "$work/bench.out"
[ "$status" -eq 0 ] || fail "sparcol-bench under slownet exited $status"
grep -q "total wrong: 0 (OK)" "$work/bench.out" || fail "no 'total wrong: 0 (OK)' footer"
grep -q "^# ranks 2," "$work/bench.out" || fail "the run did not have 2 ranks"
ns_exists "$tag-bench" && fail "namespace $tag-bench left behind"

# 2. What the command sees: the token bucket on lo, and Open MPI told to use TCP over it.
echo "== environment inside"
"$slownet" --rate 1gbit --name "$tag-env" -- sh -c 'tc qdisc show dev lo; env' >"$work/env.out" 2>&1 ||
  fail "slownet -- sh failed"
grep -q "tbf .*rate 1Gbit" "$work/env.out" || fail "no 'tbf rate 1Gbit' qdisc on lo inside: $(cat "$work/env.out")"
grep -qx "OMPI_MCA_btl=tcp,self" "$work/env.out" || fail "OMPI_MCA_btl not set to tcp,self inside"
grep -qx "OMPI_MCA_btl_tcp_if_include=lo" "$work/env.out" || fail "OMPI_MCA_btl_tcp_if_include not lo"
grep -qx "OMPI_MCA_oob_tcp_if_include=lo" "$work/env.out" || fail "OMPI_MCA_oob_tcp_if_include not lo"
ns_exists "$tag-env" && fail "namespace $tag-env left behind"

# 3. The command's own exit status comes back.
"$slownet" --rate none --name "$tag-status" -- sh -c 'exit 7' 2>/dev/null
status=$?
[ "$status" -eq 7 ] || fail "expected the command's status 7, got $status"
ns_exists "$tag-status" && fail "namespace $tag-status left behind"

# 4. Bad input: a message and status 2.
expect_bad() {  # expect_bad "wanted message" args...
  local want=$1 out st
  shift
  out=$("$slownet" "$@" 2>&1)
  st=$?
  if [ "$st" -ne 2 ]; then
    fail "slownet $* exited $st, expected 2"
  elif ! grep -qF -- "$want" <<<"$out"; then
    fail "slownet $*: message lacks '$want': $out"
  fi
}
echo "== bad input"
expect_bad "no command given" --rate 1gbit
expect_bad "--rate is required" -- true
expect_bad "is not a tc rate" --rate fast -- true
expect_bad "unknown option '--rat'" --rat 1gbit -- true
expect_bad "command not found: no-such-program-$$" --rate 1gbit -- "no-such-program-$$"
ip netns add "$foreign" || fail "cannot create the foreign namespace"
expect_bad "already exists" --rate 1gbit --name "$foreign" -- true
ns_exists "$foreign" || fail "slownet removed a namespace it did not create"
ip netns del "$foreign"
if command -v setpriv >/dev/null; then
  out=$(setpriv --reuid=65534 --regid=65534 --clear-groups bash "$slownet" --rate 1gbit -- true 2>&1)
  st=$?
  { [ "$st" -eq 2 ] && grep -q "needs root" <<<"$out"; } || fail "as nobody: status $st, message: $out"
fi

# 5. Stopped while the command runs: status 128+15 and nothing left behind.
echo "== SIGTERM during the command"
"$slownet" --rate 1gbit --name "$tag-sig" -- sleep 60 2>/dev/null &
pid=$!
for _ in $(seq 50); do
  [ -n "$(ip netns pids "$tag-sig" 2>/dev/null)" ] && break
  sleep 0.1
done
ns_exists "$tag-sig" || fail "namespace $tag-sig never appeared"
kill -TERM "$pid"
wait "$pid"
status=$?
[ "$status" -eq 143 ] || fail "expected status 143 after SIGTERM, got $status"
ns_exists "$tag-sig" && fail "namespace $tag-sig left behind after SIGTERM"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all slownet checks passed"
