#!/usr/bin/env bash
# libiscsi conformance: runs iscsi-test-cu (libiscsi-bin) suite by suite against a release ringtgt,
# writes target/conformance/results.txt ("passed|failed|skipped|notrun FAMILY.SUITE.TEST"), and
# fails if any test listed in scripts/conformance-pass.txt did not pass. A skipped test is not a
# pass. Tests that pass but are not listed yet are printed, so the list only grows.
#
# Environment:
#   RINGTGT_BIN                use this binary instead of building target/release/ringtgt
#   CONFORMANCE_SUITE_TIMEOUT  seconds one suite may run (default 180)
#   CONFORMANCE_REPORT         1 (default) also runs every other SCSI/iSCSI suite, not gating
#   CONFORMANCE_REPORT_BUDGET  seconds for those extra suites together (default 300)
#   CONFORMANCE_FEATURES       cargo features of the release build (e.g. rbd)
#   CONFORMANCE_CEPH_CONF      a Ceph cluster's ceph.conf (scripts/ceph/up.sh): run the listed
#                              tests against an RBD LUN instead (a fresh image in pool rbd, removed
#                              afterwards), minus scripts/conformance-rbd-skip.txt; results in
#                              target/conformance-rbd
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=target/conformance
PASS_LIST=scripts/conformance-pass.txt
SUITE_TIMEOUT=${CONFORMANCE_SUITE_TIMEOUT:-180}
REPORT=${CONFORMANCE_REPORT:-1}
REPORT_BUDGET=${CONFORMANCE_REPORT_BUDGET:-300}
REPEAT=${CONFORMANCE_REPEAT:-20}
FEATURES=${CONFORMANCE_FEATURES:-}
TARGET=iqn.2026-11.io.ringtgt:conformance
CEPH_CONF_FILE=${CONFORMANCE_CEPH_CONF:-}
if [[ -n $CEPH_CONF_FILE ]]; then
    OUT=target/conformance-rbd
    FEATURES=rbd
    # Only the gate matters here, and each round trip to the OSD costs: no report-only suites,
    # fewer repeats of the racy test (the RAM LUN run repeats it in full).
    REPORT=0
    REPEAT=${CONFORMANCE_REPEAT:-5}
fi

if ! command -v iscsi-test-cu >/dev/null; then
    echo "conformance: iscsi-test-cu not found; run scripts/test.sh (installs libiscsi-bin)" >&2
    exit 1
fi

if [[ -z ${RINGTGT_BIN:-} ]]; then
    echo "conformance: building release binary"
    cargo build --release --quiet --bin ringtgt ${FEATURES:+--features "$FEATURES"}
    RINGTGT_BIN="${CARGO_TARGET_DIR:-target}/release/ringtgt"
fi

rm -rf "$OUT"
mkdir -p "$OUT/logs"
: >"$OUT/results.txt"
: >"$OUT/why.txt"

# shellcheck source=scripts/lib/free-port.sh
source scripts/lib/free-port.sh

PIDS=()
RBD_IMAGE=
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    # After the daemons: an image with a watcher cannot be removed.
    if [[ -n $RBD_IMAGE ]]; then
        rbd -c "$CEPH_CONF_FILE" rm --no-progress "$RBD_IMAGE" >/dev/null 2>&1 ||
            echo "conformance: could not remove $RBD_IMAGE" >&2
    fi
}
trap cleanup EXIT

# start_daemon NAME PORT ARGS...: runs ringtgt in the background and waits until it accepts.
start_daemon() {
    local name=$1 port=$2
    shift 2
    "$RINGTGT_BIN" serve --portal "127.0.0.1:$port" --target "$TARGET" "$@" \
        >"$OUT/ringtgt-$name.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "${PIDS[-1]}" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    echo "conformance: ringtgt ($name) did not start; its log:" >&2
    cat "$OUT/ringtgt-$name.log" >&2
    exit 1
}

# The read-write LUN takes every suite; SCSI.ReadOnly needs a write-protected LU (iscsi-test-cu
# reads the WP bit from MODE SENSE), so it runs against a second, read-only daemon.
RW_PORT=$(free_port)
if [[ -n $CEPH_CONF_FILE ]]; then
    # The same size as the RAM LUN: some tests scale with the capacity.
    RBD_IMAGE=rbd/conformance-$$-$RANDOM
    rbd -c "$CEPH_CONF_FILE" create --size 256M "$RBD_IMAGE"
    CEPH_CONF=$CEPH_CONF_FILE start_daemon rw "$RW_PORT" --lun "rbd:$RBD_IMAGE"
else
    start_daemon rw "$RW_PORT" --lun ram:256MiB
fi
RO_PORT=$(free_port)
start_daemon ro "$RO_PORT" --read-only --lun ram:64MiB
RW_URL="iscsi://127.0.0.1:$RW_PORT/$TARGET/0"
RO_URL="iscsi://127.0.0.1:$RO_PORT/$TARGET/0"
# The medium handling suites need a removable LU (they skip on a fixed one); GetLBAStatus runs on
# 4096-byte blocks, where LBPPB is 1: UnmapSingle expects the descriptor for LBA i+1 to start at
# i+LBPPB, which only holds then, while the 512-byte LU keeps LBPPB 8 for the WriteSame/
# CompareAndWrite tests that only run with LBPPB > 1 (see get_lba_status in provisioning.rs).
RM_PORT=$(free_port)
cat >"$OUT/removable.toml" <<EOF_RM
portals = ["127.0.0.1:$RM_PORT"]
[[target]]
name = "$TARGET"
[[target.lun]]
path = "ram:64MiB"
removable = true
EOF_RM
start_daemon_config() {
    local name=$1 port=$2 config=$3
    "$RINGTGT_BIN" serve --config "$config" >"$OUT/ringtgt-$name.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "conformance: ringtgt ($name) did not start; its log:" >&2
    cat "$OUT/ringtgt-$name.log" >&2
    exit 1
}
start_daemon_config rm "$RM_PORT" "$OUT/removable.toml"
B4K_PORT=$(free_port)
start_daemon b4k "$B4K_PORT" --block-size 4096 --lun ram:64MiB
RM_URL="iscsi://127.0.0.1:$RM_PORT/$TARGET/0"
B4K_URL="iscsi://127.0.0.1:$B4K_PORT/$TARGET/0"

# suite_url FAMILY.SUITE: the LU a suite runs against.
suite_url() {
    case $1 in
    SCSI.ReadOnly) echo "$RO_URL" ;;
    SCSI.PreventAllow | SCSI.StartStopUnit | SCSI.NoMedia) echo "$RM_URL" ;;
    SCSI.GetLBAStatus) echo "$B4K_URL" ;;
    *) echo "$RW_URL" ;;
    esac
}

iscsi-test-cu -l >"$OUT/all-tests.txt"

# parse_run FAMILY.SUITE LOG: one result line per test of the suite. CUnit's verbose output is
#   Suite: Read10
#     Test: Simple ...passed
#     Test: BeyondEol ...    [SKIPPED] <reason>      (libiscsi logs inside the test,
#   passed                                            then CUnit prints the verdict)
#     Test: ZeroBlocks ...FAILED
# The verdict starts a line (or follows "..."); text after it on that line comes from the next
# suite's set-up, not from the test. libiscsi skips a test, or a part of one it cannot exercise
# (e.g. "[SKIPPED] WRITEVERIFY10 is not implemented."), by logging "[SKIPPED]" and passing: such a
# test counts as skipped, because it did not fully run. A test that started but has no verdict
# (timeout, crash) is failed; one that never started is notrun.
parse_run() {
    local suite=$1 log=$2
    awk -v prefix="$suite" -v why="$OUT/why.txt" '
        function verdict(v) {
            if (name == "") return
            if (v == "passed" && skipped) v = "skipped"
            print v " " prefix "." name
            if (v != "passed" && reason != "") print prefix "." name "\t" reason >>why
            name = ""; skipped = 0; reason = ""
        }
        function scan(s) {
            if (s ~ /^passed/) verdict("passed")
            else if (s ~ /^FAILED/) verdict("failed")
            else if (s ~ /\[(SKIPPED|FAILED)\]/) {
                skipped = skipped || s ~ /\[SKIPPED\]/
                if (reason == "") { reason = s; sub(/^ +/, "", reason) }
            }
        }
        /^Suite: / { verdict("failed"); next }
        /^  Test: / {
            verdict("failed")
            line = substr($0, 9)
            i = index(line, " ...")
            name = substr(line, 1, i - 1)
            scan(substr(line, i + 4))
            next
        }
        name != "" { scan($0) }
        END { verdict("failed") }
    ' "$log" >"$log.results"
    local t seen
    seen=$(cut -d' ' -f2 "$log.results")
    while read -r t; do
        grep -qxF "$t" <<<"$seen" || echo "notrun $t" >>"$log.results"
    done < <(grep "^${suite//./\\.}\.[^.]*$" "$OUT/all-tests.txt")
    cat "$log.results" >>"$OUT/results.txt"
}

# run_suite FAMILY.SUITE URL: one iscsi-test-cu process per suite, so a hang costs one suite.
run_suite() {
    local suite=$1 url=$2 log="$OUT/logs/$1.log" rc=0
    stdbuf -oL -eL timeout -k 5 "$SUITE_TIMEOUT" \
        iscsi-test-cu --dataloss --allow-sanitize -t "$suite" "$url" >"$log" 2>&1 || rc=$?
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then
        echo "conformance: $suite timed out after ${SUITE_TIMEOUT}s" | tee -a "$log"
    fi
    parse_run "$suite" "$log"
    printf '  %-32s %s\n' "$suite" "$(cut -d' ' -f1 "$log.results" | sort | uniq -c | xargs)"
}

# The tests that must pass here: the pass list, minus (on an RBD LUN) the skip list's
# FAMILY.SUITE or FAMILY.SUITE.TEST entries.
WANTED=$OUT/wanted.txt
grep -v '^\s*\(#\|$\)' "$PASS_LIST" >"$WANTED"
if [[ -n $CEPH_CONF_FILE ]]; then
    while read -r skip _; do
        grep -v -e "^${skip//./\\.}\$" -e "^${skip//./\\.}\\." "$WANTED" >"$WANTED.new" || true
        mv "$WANTED.new" "$WANTED"
    done < <(grep -v '^\s*\(#\|$\)' scripts/conformance-rbd-skip.txt)
fi
mapfile -t GATED < <(cut -d. -f1,2 "$WANTED" | sort -u)
echo "conformance: gated suites (${#GATED[@]})"
for suite in "${GATED[@]}"; do
    run_suite "$suite" "$(suite_url "$suite")"
done

# Tests that race the target (an ABORT TASK against a write in flight) must pass every time,
# not once: each is repeated, and a single failure marks it failed.
REPEATED=(iSCSI.iSCSITMF.AbortTaskSimpleAsync)
repeat_failures=()
for t in "${REPEATED[@]}"; do
    fails=0
    for ((i = 1; i <= REPEAT; i++)); do
        log="$OUT/logs/repeat-$t-$i.log"
        timeout -k 5 60 iscsi-test-cu --dataloss -t "$t" "$RW_URL" >"$log" 2>&1 || true
        if grep -q "^  Test: .*passed" "$log" && ! grep -q FAILED "$log"; then
            rm -f "$log"
        else
            fails=$((fails + 1))
        fi
    done
    printf '  %-32s %s\n' "$t" "$((REPEAT - fails))/$REPEAT runs passed"
    ((fails)) && repeat_failures+=("$t")
done

if [[ $REPORT == 1 ]]; then
    echo "conformance: other suites (report only, ${REPORT_BUDGET}s budget)"
    deadline=$((SECONDS + REPORT_BUDGET))
    while read -r suite; do
        if printf '%s\n' "${GATED[@]}" | grep -qx "$suite" || [[ $suite == SCSI.ReadOnly ]]; then
            continue
        fi
        if ((SECONDS >= deadline)); then
            echo "  budget spent; $suite and later suites not run"
            break
        fi
        run_suite "$suite" "$(suite_url "$suite")"
    done < <(grep -E '^(SCSI|iSCSI)\.[^.]+$' "$OUT/all-tests.txt")
fi

sort -k2 -o "$OUT/results.txt" "$OUT/results.txt"

for name in rw ro; do
    pid=${PIDS[0]}
    [[ $name == ro ]] && pid=${PIDS[1]}
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "conformance: ringtgt ($name) died during the run; the end of its log:"
        tail -n 20 "$OUT/ringtgt-$name.log"
    fi
done

missing=()
while read -r t; do
    grep -qx "passed $t" "$OUT/results.txt" || missing+=("$t")
done <"$WANTED"
newly=$(awk '$1 == "passed" { print $2 }' "$OUT/results.txt" |
    grep -vxF -f <(grep -v '^\s*\(#\|$\)' "$PASS_LIST") || true)

count() { awk -v s="$1" '$1 == s' "$OUT/results.txt" | wc -l; }
echo "conformance: results in $OUT/results.txt (passed $(count passed) / failed $(count failed)" \
    "/ skipped $(count skipped) / not run $(count notrun))"
if [[ -n $newly ]]; then
    echo "conformance: passing but not yet in $PASS_LIST (add them):"
    while read -r t; do echo "  $t"; done <<<"$newly"
fi
if ((${#repeat_failures[@]})); then
    echo "conformance: FAILED: not every repeated run passed: ${repeat_failures[*]}" \
        "(logs: $OUT/logs/repeat-*.log)"
    exit 1
fi
if ((${#missing[@]})); then
    echo "conformance: FAILED: ${#missing[@]} listed test(s) did not pass:"
    for t in "${missing[@]}"; do
        status=$(awk -v t="$t" '$2 == t { print $1 }' "$OUT/results.txt")
        why=$(awk -F'\t' -v t="$t" '$1 == t { print $2; exit }' "$OUT/why.txt")
        printf '  %s (%s)%s\n' "$t" "${status:-no such test}" "${why:+: $why}"
    done
    echo "conformance: logs in $OUT/logs/"
    exit 1
fi
echo "conformance: all $(grep -c . "$WANTED") listed tests passed${RBD_IMAGE:+ on rbd:$RBD_IMAGE}"
