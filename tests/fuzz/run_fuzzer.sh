#!/usr/bin/env bash
# Runs a libFuzzer target for a bounded time on a copy of its seed corpus (the checked-in corpus is
# never modified). Usage: run_fuzzer.sh TARGET SECONDS [SEED_CORPUS_DIR [LIBFUZZER_FLAGS...]]
set -euo pipefail
target=$1 seconds=$2 seeds=${3:-}
shift $(($# < 3 ? $# : 3))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
[ -n "$seeds" ] && [ -d "$seeds" ] && cp "$seeds"/* "$work/corpus/" 2>/dev/null || true
cd "$work"
"$target" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 "$@" corpus 2>&1 | tail -15
