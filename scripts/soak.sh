#!/usr/bin/env bash
# Runs the whole test suite N times in a row (default 10) with the other core kept busy, and
# stops at the first failure: no test is retried. Usage: bash scripts/soak.sh [N]
# SOAK_LOAD=stress (default) keeps one core busy with stress-ng; SOAK_LOAD=none leaves the load
# to the caller (a parallel build, say).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}

load_kind=${SOAK_LOAD:-stress}
if [ "$load_kind" = stress ] && ! command -v stress-ng >/dev/null; then
  echo "installing stress-ng"
  apt-get install -y -q stress-ng >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q stress-ng >/dev/null; }
fi
# Build once first, so that the runs below measure the tests, not the compiler.
cargo test --workspace --locked --tests --no-run

if [ "$load_kind" = stress ]; then
  stress-ng --cpu 1 --quiet &
  load=$!
  trap 'kill "$load" 2>/dev/null || true' EXIT
fi

for i in $(seq 1 "$runs"); do
  started=$(date +%s)
  if ! bash scripts/test.sh >"target/soak-$i.log" 2>&1; then
    echo "run $i of $runs failed (target/soak-$i.log):"
    grep -E "^test .* FAILED|panicked" "target/soak-$i.log" | head -20
    exit 1
  fi
  echo "run $i of $runs passed in $(( $(date +%s) - started )) s: $(tail -n 1 "target/soak-$i.log")"
done
