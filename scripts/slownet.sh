#!/usr/bin/env bash
# Runs a command on an emulated slow network: inside a fresh network namespace whose loopback is
# rate-limited with a token bucket (tc tbf), with Open MPI forced onto TCP over that loopback.
#
# Usage: scripts/slownet.sh --rate RATE [--burst SIZE] [--latency TIME] [--name NAME] [--] COMMAND [ARG...]
#   --rate RATE      tc rate of the loopback: 1gbit, 10gbit, 25gbit, 500mbit, ...; "none" keeps the
#                    namespace and the TCP transport but sets no limit (the unthrottled TCP reference)
#   --burst SIZE     token bucket size (default 256kb)
#   --latency TIME   longest a packet may wait in the bucket's queue (default 200ms; see below)
#   --name NAME      namespace name (default sparcol-slownet-<pid>); an existing one is refused
# Example (as root):
#   scripts/slownet.sh --rate 1gbit -- mpirun -np 4 --oversubscribe build/bin/sparcol-bench -b 1M -e 16M
#
# Why: on one machine Open MPI moves data through shared memory, so every "link" is fast and
# compression never pays. Inside the namespace the only interface is the rate-limited loopback and
# the exported OMPI_MCA_* variables below make both the MPI traffic (btl tcp) and mpirun's own
# control channel (oob) use it, so `mpirun ...` inside just works.
# Caveat: every rank shares the one loopback, so RATE is the aggregate bandwidth of the whole
# emulated cluster, not a per-rank link rate. netem (delay, loss) is not available on this kernel.
# The queue: tbf drops what does not fit in RATE x latency. With a short queue (10ms: 1.25 MB at
# 1 Gbit/s) the all-to-all bursts of the direct collectives overflow it, and every drop costs TCP a
# retransmission timeout (at least 200 ms), so times jump by 2-10x at random. A 200ms queue absorbs
# those bursts: the rate, not the loss recovery, sets the time.
#
# Contract: needs root (ip netns, tc). Exit status: the command's; 2 for bad usage or an environment
# that cannot run it (not root, tools missing, namespace exists, tc refuses the rate); 128+N when
# stopped by signal N. Whatever it created (the namespace, processes left inside it) is removed on
# every exit path, including SIGINT/SIGTERM; a namespace it did not create is never touched.
set -euo pipefail

prog=slownet
usage() {
  sed -n '/^# Usage:/,/^#$/p' "$0" | sed 's/^# \{0,1\}//'
}
die() {
  echo "$prog: error: $*" >&2
  exit 2
}

rate="" burst=256kb latency=200ms name=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) [ $# -ge 2 ] || die "--rate needs a value"; rate=$2; shift 2 ;;
    --rate=*) rate=${1#*=}; shift ;;
    --burst) [ $# -ge 2 ] || die "--burst needs a value"; burst=$2; shift 2 ;;
    --burst=*) burst=${1#*=}; shift ;;
    --latency) [ $# -ge 2 ] || die "--latency needs a value"; latency=$2; shift 2 ;;
    --latency=*) latency=${1#*=}; shift ;;
    --name) [ $# -ge 2 ] || die "--name needs a value"; name=$2; shift 2 ;;
    --name=*) name=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) break ;;
  esac
done

[ -n "$rate" ] || die "--rate is required (e.g. --rate 1gbit, or --rate none for no limit)"
[ $# -gt 0 ] || die "no command given (usage: $prog --rate 1gbit [--] COMMAND [ARG...])"
if [ "$rate" != none ] && ! [[ "$rate" =~ ^[0-9]+([.][0-9]+)?([kKmMgGtT]?(bit|bps))$ ]]; then
  die "--rate '$rate' is not a tc rate such as 1gbit, 10gbit, 500mbit (or 'none')"
fi
[[ "$burst" =~ ^[0-9]+([kKmMgG]?[bB]?)$ ]] || die "--burst '$burst' is not a size such as 256kb"
[[ "$latency" =~ ^[0-9]+([.][0-9]+)?(s|ms|us)$ ]] || die "--latency '$latency' is not a time such as 10ms"
[ -n "$name" ] || name="sparcol-slownet-$$"
[[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ ]] || die "--name '$name': use letters, digits, '.', '_', '-' (at most 64)"
[ "$(id -u)" -eq 0 ] || die "needs root (ip netns and tc); run it as root or with sudo"
for tool in ip tc; do
  command -v "$tool" >/dev/null || die "'$tool' not found (Debian package iproute2)"
done
# `ip netns exec` resolves the command itself; a missing program would otherwise surface as its
# terse "exec of ... failed".
command -v "$1" >/dev/null || die "command not found: $1"

created=0 child=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  if [ "$created" -eq 1 ]; then
    # Processes still inside (a daemon the command left behind) would keep the namespace alive after
    # its name is gone; they are ours, since the namespace is.
    local pids
    pids=$(ip netns pids "$name" 2>/dev/null || true)
    if [ -n "$pids" ]; then
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null || true
      sleep 0.5
      pids=$(ip netns pids "$name" 2>/dev/null || true)
      # shellcheck disable=SC2086
      [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$name" 2>/dev/null || echo "$prog: warning: could not delete namespace $name" >&2
  fi
  exit "$status"
}
on_signal() {
  echo "$prog: stopped by signal $1" >&2
  exit $((128 + $1))
}
trap cleanup EXIT
trap 'on_signal 2' INT
trap 'on_signal 15' TERM
trap 'on_signal 1' HUP

if [ -e "/run/netns/$name" ]; then
  die "network namespace '$name' already exists (another run, or one left behind: 'ip netns del $name')"
fi
ip netns add "$name" 2>/dev/null || die "cannot create network namespace '$name' (does it exist already?)"
created=1
ip netns exec "$name" ip link set lo up || die "cannot bring up the loopback in namespace '$name'"
if [ "$rate" != none ]; then
  ip netns exec "$name" tc qdisc add dev lo root tbf rate "$rate" burst "$burst" latency "$latency" ||
    die "tc refused 'tbf rate $rate burst $burst latency $latency' on the loopback"
fi
if [ "$rate" = none ]; then
  echo "$prog: namespace $name, loopback not limited, Open MPI on TCP" >&2
else
  echo "$prog: namespace $name, loopback limited to $rate (shared by all ranks), Open MPI on TCP" >&2
fi

# The command runs in the background so that a signal reaches the trap at once (bash defers traps
# until a foreground child exits); its stdin is passed on explicitly, since a background job would
# otherwise read /dev/null.
exec {stdin_fd}<&0
ip netns exec "$name" env \
  OMPI_MCA_btl=tcp,self OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo \
  SPARCOL_SLOWNET_NS="$name" SPARCOL_SLOWNET_RATE="$rate" \
  "$@" <&"$stdin_fd" &
child=$!
status=0
wait "$child" || status=$?
child=""
exit "$status"
