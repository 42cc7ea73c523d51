#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS (default 60) each: seeds from fuzz/seeds/<target>, a
# persistent corpus in fuzz/corpus/<target> (gitignored), -rss_limit_mb=2048 -timeout=10.
# Prints per target the runs, exec/s and coverage (cov / ft of libFuzzer's last status line);
# fails if any target found a crash, timeout or OOM, and prints the artifact paths.
#
# Needs only a nightly toolchain: installs cargo-fuzz when it is missing. A CI smoke test:
#   scripts/fuzz.sh 20
# Environment:
#   FUZZ_TARGETS   space-separated subset of targets (default: all of them)
#   FUZZ_JOBS      parallel fuzzing processes per target (default 1)
#   FUZZ_SANITIZER address (default: AddressSanitizer) or none. The fuzzed code is the sans-I/O
#                  core, which forbids unsafe code, so ASan finds nothing there that a panic
#                  would not; it costs build time and speed. The CI smoke test (scripts/test.sh)
#                  runs with none; the long runs keep ASan.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECONDS_PER_TARGET=${1:-60}
TARGETS=${FUZZ_TARGETS:-"pdu_frame login scsi_dispatch connection"}
JOBS=${FUZZ_JOBS:-1}
SANITIZER=${FUZZ_SANITIZER:-address}
LOGS=logs

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: a nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install --locked cargo-fuzz || cargo +nightly install --locked cargo-fuzz
fi

echo "fuzz: building the targets"
cargo +nightly fuzz build --sanitizer "$SANITIZER"

mkdir -p "$LOGS"
failed=0
summary=()
for t in $TARGETS; do
    mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
    log="$LOGS/$t.log"
    args=(-max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -malloc_limit_mb=2048
        -timeout=10 -print_final_stats=1)
    [[ -f "dict/$t.dict" ]] && args+=(-dict="dict/$t.dict")
    if ((JOBS > 1)); then
        args+=(-fork="$JOBS" -ignore_crashes=0 -ignore_timeouts=0 -ignore_ooms=0)
    fi
    echo "fuzz: $t for ${SECONDS_PER_TARGET}s (log: fuzz/$log)"
    status=0
    cargo +nightly fuzz run --sanitizer "$SANITIZER" "$t" "corpus/$t" "seeds/$t" -- "${args[@]}" \
        >"$log" 2>&1 || status=$?
    runs=$(grep -oE 'stat::number_of_executed_units:\s+[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || true)
    speed=$(grep -oE 'stat::average_exec_per_sec:\s+[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || true)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
    cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || true)
    ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || true)
    [[ -z $runs ]] && runs=$(grep -oE '^#[0-9]+' <<<"$last" | tr -d '#' || true)
    line=$(printf '%-14s runs %-10s exec/s %-7s cov %-6s ft %-6s' "$t" "${runs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}")
    if ((status != 0)); then
        failed=1
        line+=" FAILED (exit $status)"
        while read -r artifact; do
            line+=$'\n'"    artifact: $artifact"
        done < <(grep -oE '(Test unit written to|written to) [^ ]+' "$log" | awk '{print $NF}' | sort -u)
        grep -m1 -E "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer" "$log" | sed 's/^/    /' >>/dev/stderr || true
    fi
    summary+=("$line")
done

echo
echo "fuzz: summary (${SECONDS_PER_TARGET}s per target)"
printf '%s\n' "${summary[@]}"
if ((failed)); then
    echo "fuzz: FAILED: reproduce with: cd fuzz && cargo +nightly fuzz run TARGET ARTIFACT" >&2
    exit 1
fi
