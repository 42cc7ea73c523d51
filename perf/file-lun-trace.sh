#!/usr/bin/env bash
# perf/file-lun-trace.sh — where the file LUN's reads spend their time, against local fio.
#
# One command:   perf/file-lun-trace.sh      (about 1 minute; as root, after one perf/run.sh,
#                                             which builds fio-with-libiscsi and the file LUN)
#
# ringtgt exports perf/run.sh's file LUN; three clients in turn, ROUNDS times, drive 4K randread
# QD32 for RUNTIME seconds each: local fio (io_uring, O_DIRECT, the same file), ringtgt through
# examples/load.rs (batched sends) and ringtgt through fio's libiscsi engine. During each,
# `perf record` takes the io_uring submissions and completions of the whole machine for 0.5 s,
# and each READ / READ_FIXED is paired with its completion. Printed per client and round: IOPS,
# reads per second seen by io_uring, their mean / median / p90 time from submission to
# completion and the reads held on average (Little's law) — the two factors of the IOPS, so a
# gap against local fio splits into "fewer reads in flight" and "each read slower". (The block
# layer's own request times cannot be had here: virtio-blk completes in batches, whose path
# emits neither block_rq_complete nor block_io_done for most requests.)
#
# Knobs (environment): ROUNDS=2, RUNTIME=5, RW=randread (or randwrite), RINGTGT_BIN=path (default:
# cargo build --release of this checkout), PORT=3470, PERF_CACHE and PERF_WORK as perf/run.sh.
# Nothing but 127.0.0.1 is used; ringtgt is stopped on exit.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-2} RUNTIME=${RUNTIME:-5} RW=${RW:-randread} PORT=${PORT:-3470}
PERF_CACHE=${PERF_CACHE:-/var/cache/ringtgt-perf} PERF_WORK=${PERF_WORK:-/var/tmp/ringtgt-perf}
FIO=$PERF_CACHE/fio/fio LUN_FILE=$PERF_WORK/lun.img
IQN=iqn.2026-11.io.ringtgt:trace
die() { echo "file-lun-trace: $*" >&2; exit 1; }
[[ -x $FIO ]] || die "no $FIO: run perf/run.sh once (it builds fio with the libiscsi engine)"
[[ -f $LUN_FILE ]] || die "no $LUN_FILE: run perf/run.sh once (it writes the file LUN)"
command -v perf >/dev/null || die "no perf (apt-get install linux-perf)"
case $RW in randread | randwrite) ;; *) die "RW: randread or randwrite" ;; esac

if [[ -z ${RINGTGT_BIN:-} ]]; then
    (cd "$REPO" && cargo build --release --quiet --bin ringtgt)
    RINGTGT_BIN=$REPO/target/release/ringtgt
fi
(cd "$REPO" && cargo build --release --quiet --example load)
LOAD=$REPO/target/release/examples/load
WORK=$(mktemp -d /tmp/file-lun-trace.XXXXXX)
RT_PID=""
cleanup() {
    [[ -n $RT_PID ]] && kill "$RT_PID" 2>/dev/null && wait "$RT_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

"$RINGTGT_BIN" serve --portal "127.0.0.1:$PORT" --target "$IQN" --lun "$LUN_FILE" \
    --state-dir "$WORK/state" --admin-socket "$WORK/ctl.sock" >"$WORK/ringtgt.log" 2>&1 &
RT_PID=$!
for ((i = 0; i < 100; i++)); do
    kill -0 "$RT_PID" 2>/dev/null || die "ringtgt exited at start: $(tail -n 5 "$WORK/ringtgt.log")"
    ss -Hltn "sport = :$PORT" | grep -q . && break
    sleep 0.1
done
((i < 100)) || die "ringtgt does not listen on 127.0.0.1:$PORT (its log: $(tail -n 5 "$WORK/ringtgt.log"))"

cat >"$WORK/local.fio" <<EOF
[local]
ioengine=io_uring
thread=1
direct=1
filename=$LUN_FILE
size=1g
rw=$RW
bs=4k
iodepth=32
time_based=1
runtime=$RUNTIME
EOF
cat >"$WORK/iscsi.fio" <<EOF
[global]
ioengine=libiscsi
thread=1
rw=$RW
bs=4k
iodepth=32
size=1g
time_based=1
runtime=$RUNTIME
[s0]
filename=iscsi\\://127.0.0.1\\:$PORT/${IQN//:/\\:}/0
initiator=iqn.2026-11.io.ringtgt:trace-client
EOF

# client NAME: runs client NAME in the background, its IOPS into $WORK/NAME.iops when done.
client() {
    case $1 in
    local | fio)
        local job=$WORK/local.fio
        [[ $1 == fio ]] && job=$WORK/iscsi.fio
        "$FIO" --output-format=json "$job" >"$WORK/$1.json" &&
            python3 -c "import json,sys; j=json.load(open(sys.argv[1]))['jobs'][0]; \
print(int(j['read']['iops'] + j['write']['iops']))" "$WORK/$1.json" >"$WORK/$1.iops"
        ;;
    load)
        "$LOAD" --host 127.0.0.1 --port "$PORT" --target "$IQN" --lun 0 --rw "${RW#rand}" --bs 4096 \
            --span $((1 << 21)) --seconds "$RUNTIME" --qd 32 >"$WORK/load.txt" &&
            grep -o 'iops=[0-9]*' "$WORK/load.txt" | cut -d= -f2 >"$WORK/load.iops"
        ;;
    esac
}

# kernel_times DATA: the paired reads (or writes) of a perf.data file, summarised.
kernel_times() {
    perf script -i "$1" -F time,event,trace 2>/dev/null | python3 -c '
import re, statistics, sys
op = "WRITE" if sys.argv[1] == "randwrite" else "READ"
submitted, took = {}, []
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+):\s+(\S+):.*?req (0x[0-9a-f]+)(.*)", line)
    if not m:
        continue
    t, event, req, rest = float(m[1]) * 1e6, m[2], m[3], m[4]
    if event.endswith("submit_req"):
        if re.search(r"opcode (%s|%s_FIXED)," % (op, op), rest):
            submitted[req] = t
    elif req in submitted:
        took.append(t - submitted.pop(req))
if not took:
    print("no paired I/O")
    sys.exit()
took.sort()
per_s = len(took) / 0.5
mean = statistics.mean(took)
print("%6.1fk/s, %4.0f us (median %4.0f, p90 %4.0f), %4.1f held"
      % (per_s / 1e3, mean, statistics.median(took), took[len(took) * 9 // 10], per_s * mean / 1e6))
' "$RW"
}

rel() { realpath --relative-to="$REPO" "$1"; }
echo "file LUN \$PERF_WORK/lun.img, 4K $RW QD32, $RUNTIME s per client, $ROUNDS rounds; ringtgt $(rel "$RINGTGT_BIN")"
printf '%-6s %-6s %9s  %s\n' round client IOPS "io_uring: I/O per s, submission -> completion, I/O held"
for ((r = 1; r <= ROUNDS; r++)); do
    for c in local load fio; do
        rm -f "$WORK/$c.iops"
        client "$c" &
        cpid=$!
        sleep $((RUNTIME > 3 ? 2 : 1))
        perf record -q -a -o "$WORK/$c.data" -e io_uring:io_uring_submit_req,io_uring:io_uring_complete \
            -- sleep 0.5 >/dev/null 2>&1
        wait "$cpid" || die "client $c failed (see $WORK)"
        printf '%-6s %-6s %9s  %s\n' "$r" "$c" "$(cat "$WORK/$c.iops")" "$(kernel_times "$WORK/$c.data")"
    done
done
