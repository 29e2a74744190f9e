#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/, cargo-fuzz's layout) with libFuzzer's coverage
# instrumentation on the stable toolchain, then runs each for a bounded time on its committed
# corpus (fuzz/corpus/<target>). Inputs that crash are kept in fuzz/artifacts/<target>/ and the
# script fails; new interesting inputs go to fuzz/target/corpus/<target>/ (add good ones to
# the committed corpus by hand).
#
#   scripts/fuzz.sh [--time SECONDS] [--seeds] [TARGET...]
#
# --time     seconds per target (default 30)
# --seeds    write the starting corpus again (after RPCs change) instead of fuzzing
# TARGET     grpc, tokens, csv, http (default: all)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

time=30
seeds=false
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --time) time="$2"; shift 2 ;;
        --seeds) seeds=true; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(grpc tokens csv http)

# What cargo-fuzz passes, minus the sanitizer (safe Rust; panics are what is looked for).
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
export CARGO_TARGET_DIR="$PWD/target"
# An explicit --target keeps the flags off build scripts and proc macros (as cargo-fuzz does).
host=$(rustc -vV | sed -n 's/^host: //p')
echo "fuzz: building the targets (first build takes several minutes)" >&2
cargo build --release --locked --bins --target "$host"
bin="target/$host/release"

if $seeds; then
    SENTINEL_FUZZ_SEEDS="$PWD/corpus" "$bin/grpc"
    exit 0
fi

failed=()
for target in "${targets[@]}"; do
    mkdir -p "target/corpus/$target" "artifacts/$target"
    echo "fuzz: $target for ${time}s" >&2
    if ! "$bin/$target" -max_total_time="$time" -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1 -artifact_prefix="artifacts/$target/" \
        "target/corpus/$target" "corpus/$target" 2>"target/$target.log"; then
        tail -n 40 "target/$target.log" >&2
        failed+=("$target")
    else
        grep -E "^stat::(number_of_executed_units|new_units_added)" "target/$target.log" \
            | sed "s/^/fuzz: $target /" >&2 || true
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (crashing inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${time}s each, no crash" >&2
