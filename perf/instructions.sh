#!/usr/bin/env bash
# perf/instructions.sh BINARY [LOAD ARGS...] — instructions ringtgt executes per I/O, counted by
# callgrind (valgrind): unlike CPU time, the count repeats to within a fraction of a percent for
# the same binary and load, whatever else the machine does, so two binaries can be compared
# without a noise floor. The ratio between two binaries is the figure; an instruction count is
# not a time (cache misses, IPC).
#
# BINARY serves one LUN (LUN=SPEC, default null:1GiB) on one core under callgrind; examples/load drives it for SECS
# seconds (default 8; --rw write --qd 32 unless LOAD ARGS say otherwise). The counters are
# zeroed once the daemon listens (`callgrind_control -z`) and dumped when it is done, so
# start-up is not counted (the log-in is, a small part of SECS seconds of I/O). Under callgrind the target is ~50× slower, so every
# receive takes a full batch of commands: this measures the batched path.
#
#   perf/instructions.sh target/profiling/ringtgt --rw write --qd 32
set -euo pipefail
BIN=${1:?usage: perf/instructions.sh BINARY [LOAD ARGS...]}
shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v valgrind >/dev/null || apt-get install -y valgrind >/dev/null
[[ -x $ROOT/target/release/examples/load ]] || (cd "$ROOT" && cargo build --release --example load -q)
WORK=${KEEP_DIR:-$(mktemp -d)}
trap 'kill -9 $VG 2>/dev/null || true; [[ -n ${KEEP_DIR:-} ]] || rm -rf "$WORK"' EXIT
ARGS=("$@")
((${#ARGS[@]})) || ARGS=(--rw write --qd 32)
IQN=iqn.2026-12.io.ringtgt:instructions
for attempt in 1 2 3 4 5 6; do
    PORT=$(("${PORT_BASE:-28000}" + RANDOM % 1000))
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" "$BIN" serve \
        --portal "127.0.0.1:$PORT" --target "$IQN" --lun "${LUN:-null:1GiB}" --cores 1 --log warn \
        >"$WORK/target.log" 2>&1 &
    VG=$!
    for _ in $(seq 1 150); do
        (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
        sleep 0.2
    done
    sleep 1
    callgrind_control -z "$VG" >/dev/null 2>&1
    if "$ROOT/target/release/examples/load" --port "$PORT" --target "$IQN" \
        --seconds "${SECS:-8}" "${ARGS[@]}" >"$WORK/load.log" 2>&1; then
        callgrind_control -d "$VG" >/dev/null 2>&1
        kill -9 "$VG"
        wait "$VG" 2>/dev/null || true
        ios=$(grep -oE 'ios=[0-9]+' "$WORK/load.log" | cut -d= -f2)
        ir=$(awk '/^summary:/ {print $2; exit}' "$WORK/cg.out".*)
        echo "$(basename "$BIN") ${ARGS[*]}: $ios I/Os, $ir instructions, $((ir / ios)) per I/O"
        exit 0
    fi
    # Under valgrind, which runs one thread at a time, the control thread can spin in
    # crossbeam's channel receive (Backoff::snooze, seen with vgdb) and a login then waits past
    # the login timeout (15 s) for its answer; never seen without valgrind: start again.
    kill -9 "$VG" 2>/dev/null || true
    wait "$VG" 2>/dev/null || true
    rm -f "$WORK"/cg.out*
done
echo "instructions: the load never completed; its last output: $(cat "$WORK/load.log")" >&2
exit 1
