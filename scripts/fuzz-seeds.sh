#!/usr/bin/env bash
# Seed corpora for the fuzz targets, recorded from real sessions: a release ringtgt with a RAM LUN
# on 127.0.0.1, libiscsi's tools (libiscsi-bin) talking to it through a recording TCP proxy
# (scripts/fuzz_seeds.py), and the recorded initiator -> target streams cut into seeds under
# fuzz/seeds/<target>/ (replacing what is there).
#
# Environment:
#   RINGTGT_BIN   use this binary instead of building target/release/ringtgt
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=iqn.2026-11.io.ringtgt:fuzz
WORK=$(mktemp -d)
SEEDS=fuzz/seeds

if ! command -v iscsi-test-cu >/dev/null; then
    echo "fuzz-seeds: installing libiscsi-bin"
    apt-get update -qq && apt-get install -y -qq libiscsi-bin >/dev/null
fi
if [[ -z ${RINGTGT_BIN:-} ]]; then
    cargo build --release --quiet --bin ringtgt
    RINGTGT_BIN="${CARGO_TARGET_DIR:-target}/release/ringtgt"
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    local port=$1 pid=$2
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "fuzz-seeds: nothing listens on port $port" >&2
    return 1
}

PIDS=()
cleanup() {
    ((${#PIDS[@]})) && kill "${PIDS[@]}" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

TGT_PORT=$(free_port)
"$RINGTGT_BIN" serve --portal "127.0.0.1:$TGT_PORT" --target "$TARGET" --lun ram:16MiB \
    --state-dir "$WORK/state" --header-digest never --data-digest never >"$WORK/ringtgt.log" 2>&1 &
PIDS+=("$!")
wait_port "$TGT_PORT" "${PIDS[-1]}"

PROXY_PORT=$(free_port)
python3 scripts/fuzz_seeds.py proxy "$PROXY_PORT" "$TGT_PORT" "$WORK/raw" &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_port "$PROXY_PORT" "$PROXY_PID"

PORTAL="iscsi://127.0.0.1:$PROXY_PORT"
LUN="$PORTAL/$TARGET/0"
run() {
    echo "fuzz-seeds: $*"
    timeout 120 "$@" >>"$WORK/tools.log" 2>&1 || echo "fuzz-seeds: ($1 exited $?; its streams are kept)"
}
run iscsi-ls -s "$PORTAL"
run iscsi-inq "$LUN"
run iscsi-inq -e 1 -c 0x83 "$LUN"
run iscsi-readcapacity16 "$LUN"
for t in SCSI.TestUnitReady SCSI.Inquiry SCSI.ReadCapacity10 SCSI.Read10 SCSI.Write10 \
    SCSI.Write16 SCSI.WriteSame10 SCSI.Unmap SCSI.CompareAndWrite SCSI.ModeSense6 \
    SCSI.Verify10 SCSI.ReportSupportedOpcodes iSCSI.iSCSIcmdsn iSCSI.iSCSIdatasn \
    iSCSI.iSCSIResiduals iSCSI.iSCSITMF SCSI.OrWrite; do
    run iscsi-test-cu --dataloss --test="$t" "$LUN"
done

kill "$PROXY_PID"
wait "$PROXY_PID" 2>/dev/null || true

# Recorded seeds are named by their SHA-1; anything else was written by hand and stays.
find "$SEEDS" -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
python3 scripts/fuzz_seeds.py seeds "$WORK/raw" "$SEEDS"
du -sh "$SEEDS"
