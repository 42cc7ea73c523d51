#!/usr/bin/env bash
# perf/run.sh — ringtgt against tgt (tgtd), side by side on 127.0.0.1, in one run.
#
# One command:   perf/run.sh      (about 9 minutes with the defaults; ROUNDS=3 RUNTIME=10 ≈ 16)
# Knobs (environment):
#   ROUNDS=3          rounds; every row is measured once per round for each target, order rotating
#   RUNTIME=5         seconds per measurement (fio / iscsi-perf / iperf3)
#   ONLY=regex        run only the workloads whose name matches (e.g. ONLY='4k randread')
#   WARMUP=2          seconds per target of unmeasured 1m read, 1m write and file 4k randread first
#   RINGTGT_BIN=path  measure this binary instead of building this checkout (cargo build --profile
#                     profiling with PROFILE=1, else --release)
#   CORES=spec        --cores of the main ringtgt instance (default: all cores)
#   POLL_US=N         start the ringtgt instances with --poll-us N (busy-poll before sleeping)
#   COALESCE_US=N     start the ringtgt instances with --coalesce-us N (gathered waits)
#   METRICS=0         start ringtgt without --metrics (a binary older than the endpoint; the
#                     sessions-per-reactor column is then empty)
#   PORT_BASE=3460    ports PORT_BASE..PORT_BASE+5 on 127.0.0.1 (ringtgt, ringtgt --cores 1, tgtd,
#                     iperf3, the two ringtgts' /metrics); tgtd's control socket is -C PORT_BASE+2
#   PROFILE=1         after the rounds: perf record (cpu-clock) and strace -c of both targets
#   LABEL=text        heading of the section appended to perf/RESULTS.md (default "run")
#   APPEND=1          append the section to perf/RESULTS.md (0: only print it)
#   PERF_CACHE=/var/cache/ringtgt-perf   where fio-with-libiscsi is built once
#   PERF_WORK=/var/tmp/ringtgt-perf      file LUN (on local disk, not tmpfs) and raw results
#   RBD=1             also measure a Ceph RBD image: brings up a throwaway single-node cluster
#                     (scripts/ceph/up.sh, in a temporary directory on /dev/shm; stopped on exit),
#                     creates a 1 GiB image, and measures ringtgt exporting it (port PORT_BASE+6,
#                     its /metrics PORT_BASE+7) against `rbd bench` on the same image in the same
#                     rounds: 4K randwrite and randread at QD32, 1 MiB write and read at QD32, as
#                     ringtgt ÷ rbd bench. Needs ceph-mon, ceph-mgr, ceph-osd, ceph-common (and
#                     librbd-dev, libclang-dev to build ringtgt with --features rbd, which this
#                     then does; a RINGTGT_BIN must have been built so). Only those rows:
#                     RBD=1 ONLY=rbd
#
# What it needs (installed here if missing, as root): tgt, libiscsi-bin, libiscsi-dev, iperf3,
# gcc, make, dpkg-dev, pkg-config (and linux-perf, strace with PROFILE=1), plus a deb-src line for
# this Debian release (added if missing) to build fio from Debian's source package with
# --enable-libiscsi into PERF_CACHE (about 25 s, once). Debian's fio lacks the libiscsi engine, and
# upstream's engine is flagged FIO_SYNCIO, which makes fio cap iodepth at 1; the engine itself is
# asynchronous (iscsi_scsi_command_async + poll), so the build drops that flag to allow QD > 1.
#
# Besides the per-thread CPU of ringtgt, the report shows how many sessions each reactor served
# in every run (the per-core login counters of its /metrics endpoint).
#
# Scale row (ONLY='scale'): 256 iSCSI sessions at once — 4 fio processes × 64 libiscsi jobs, each
# job its own session and initiator name — each at QD4, 4K randrw 70 % reads, on a memory-backed
# LUN (ringtgt ram:1GiB; tgt bs rdwr on a sparse 1 GiB file in /dev/shm, buffered), RUNTIME
# seconds like every row. Reported: IOPS of reads and writes summed, p50/p99 of reads and writes
# together (fio's latency histograms of all 256 jobs merged) and of each apart, target CPU per
# I/O, and RSS per idle session: VmRSS of each fresh target before and while 256 sessions are
# logged in with no I/O (a bare iSCSI login from bench.py), ÷ 256. The run fails if any session
# did not log in (fio's per-job results, ringtgt's /metrics, tgtadm's I_T nexus list). Goals:
# IOPS ≥ 2× tgt, p99 ≤ 0.5× tgt's, ≤ 64 KiB per idle session.
#
# load-* rows: the same LUNs driven by examples/load.rs, a client that sends each batch of
# PDUs in one write, header and immediate data together, as the Linux initiator's corked sends
# put them on the wire (`load-batched`), or each write's header and data in two writes, as
# libiscsi does (`load-split`); one session, QD32 (4K) or QD8 (1 MiB, whose writes send the
# rest of their data as the target's R2Ts ask), for ringtgt and tgt.
#
# Nothing but 127.0.0.1 is used. Every process started is ended on exit (trap), by PID.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
PERF_CACHE="${PERF_CACHE:-/var/cache/ringtgt-perf}"
PERF_WORK="${PERF_WORK:-/var/tmp/ringtgt-perf}"
export ROUNDS="${ROUNDS:-3}" RUNTIME="${RUNTIME:-5}" PORT_BASE="${PORT_BASE:-3460}"
export PROFILE="${PROFILE:-1}" LABEL="${LABEL:-run}" APPEND="${APPEND:-1}"
FIO_VERSION_WANTED="fio-libiscsi-v1"

log() { printf '==> %s\n' "$*" >&2; }

RUN_DIR="$PERF_WORK/run-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$RUN_DIR" "$PERF_CACHE"
PIDFILE="$RUN_DIR/pids"
: >"$PIDFILE"
RAM_FILE="/dev/shm/ringtgt-perf-tgt-ram.$PORT_BASE.img"  # tgt's memory-backed LUN

BENCH_PID=""
CEPH_DIR=""
cleanup() {
    local rc=$?
    # bench.py ends what it started and then empties the pidfile; this is the backstop if it was
    # killed. PIDs only, never names.
    if [[ -n "$BENCH_PID" ]] && kill -0 "$BENCH_PID" 2>/dev/null; then
        kill -TERM "$BENCH_PID" 2>/dev/null || true
        sleep 1
    fi
    if [[ -s "$PIDFILE" ]]; then
        while read -r pid; do
            [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
        done <"$PIDFILE"
    fi
    rm -f "/run/tgtd/socket.$((PORT_BASE + 2))" "/run/tgtd/socket.$((PORT_BASE + 2)).lock"
    rm -f "$RAM_FILE"
    # RBD=1: the cluster, daemon by daemon from its pid files; its logs kept in the run directory.
    if [[ -n "$CEPH_DIR" && -d "$CEPH_DIR" ]]; then
        cp -r "$CEPH_DIR/log" "$RUN_DIR/ceph-log" 2>/dev/null || true
        "$REPO/scripts/ceph/down.sh" "$CEPH_DIR" >/dev/null 2>&1 || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_pkgs=()
command -v tgtd >/dev/null || need_pkgs+=(tgt)
command -v iscsi-perf >/dev/null || need_pkgs+=(libiscsi-bin)
[[ -e /usr/include/iscsi/iscsi.h ]] || need_pkgs+=(libiscsi-dev)
command -v iperf3 >/dev/null || need_pkgs+=(iperf3)
command -v dpkg-source >/dev/null || need_pkgs+=(dpkg-dev)
command -v pkg-config >/dev/null || need_pkgs+=(pkg-config)
command -v make >/dev/null || need_pkgs+=(make)
command -v gcc >/dev/null || need_pkgs+=(gcc)
if [[ "$PROFILE" == 1 ]]; then
    command -v perf >/dev/null || need_pkgs+=(linux-perf)
    command -v strace >/dev/null || need_pkgs+=(strace)
fi
RBD="${RBD:-0}"
if [[ "$RBD" == 1 ]]; then
    for p in ceph-mon ceph-mgr ceph-osd ceph-common; do
        dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
    done
    if [[ -z "${RINGTGT_BIN:-}" ]]; then
        for p in librbd-dev libclang-dev; do
            dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
        done
    fi
fi
if ((${#need_pkgs[@]})); then
    log "installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# fio with the libiscsi engine, built once into the cache from Debian's source package.
FIO="$PERF_CACHE/fio/fio"
if [[ ! -x "$FIO" || "$(cat "$PERF_CACHE/fio/.stamp" 2>/dev/null)" != "$FIO_VERSION_WANTED" ]]; then
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
    if ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        log "adding a deb-src source for Debian $codename"
        cat >/etc/apt/sources.list.d/ringtgt-perf-src.sources <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $codename $codename-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        apt-get update -qq
    fi
    log "building fio with --enable-libiscsi into $PERF_CACHE/fio (about 25 s)"
    src="$PERF_CACHE/fio-src"
    rm -rf "$src" && mkdir -p "$src"
    (cd "$src" && apt-get source -qq fio >/dev/null 2>&1)
    dir="$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'fio-*' | head -n1)"
    # Allow iodepth > 1: the engine queues asynchronously; FIO_SYNCIO only makes fio cap the depth.
    sed -i 's/FIO_SYNCIO | FIO_DISKLESSIO/FIO_DISKLESSIO/' "$dir/engines/libiscsi.c"
    grep -q 'FIO_SYNCIO' "$dir/engines/libiscsi.c" && { log "could not patch the libiscsi engine"; exit 1; }
    (cd "$dir" && ./configure --enable-libiscsi >"$src/configure.log" 2>&1 && make -j"$(nproc)" >"$src/make.log" 2>&1)
    "$dir/fio" --enghelp | grep -qx '[[:space:]]*libiscsi' || { log "fio built without libiscsi"; exit 1; }
    rm -rf "$PERF_CACHE/fio" && mkdir -p "$PERF_CACHE/fio" && cp "$dir/fio" "$FIO"
    echo "$FIO_VERSION_WANTED" >"$PERF_CACHE/fio/.stamp"
fi

# The ringtgt binary under test, copied so that a rebuild during the run cannot change it.
if [[ -n "${RINGTGT_BIN:-}" ]]; then
    src_bin="$RINGTGT_BIN"
else
    # Profiling wants symbols and line tables: the `profiling` profile is release with them
    # (the release binary itself is stripped).
    if [[ "$PROFILE" == 1 ]]; then cargo_profile=profiling; else cargo_profile=release; fi
    features=()
    [[ "$RBD" == 1 ]] && features=(--features rbd)
    log "cargo build --profile $cargo_profile ${features[*]} in $REPO"
    (cd "$REPO" && cargo build --profile "$cargo_profile" --quiet --bin ringtgt "${features[@]}")
    src_bin="$REPO/target/$cargo_profile/ringtgt"
fi
cp "$src_bin" "$RUN_DIR/ringtgt"
# The batching client of the load-* rows (examples/load.rs): always this checkout's.
(cd "$REPO" && cargo build --release --quiet --example load)
cp "$REPO/target/release/examples/load" "$RUN_DIR/load"
if [[ "$RBD" == 1 ]] && ! ldd "$RUN_DIR/ringtgt" | grep -q 'librbd\.so'; then
    log "RBD=1: $src_bin was built without the rbd feature (cargo build --features rbd)"
    exit 1
fi
# How RESULTS.md names it: relative to the repository (results read the same on any machine),
# with the commit it was built from when it is this checkout's build.
case "$(realpath "$src_bin")" in
"$REPO"/*) src_label="${src_bin#"$REPO"/}" ;;
*) src_label="$(basename "$src_bin") (given as RINGTGT_BIN)" ;;
esac
if [[ -z "${RINGTGT_BIN:-}" ]] && commit=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null); then
    git -C "$REPO" diff --quiet HEAD 2>/dev/null || commit+="+uncommitted"
    src_label+=" at $commit"
fi

# The file LUN: 1 GiB, preallocated, on local disk (tgt and ringtgt both open it O_DIRECT).
mkdir -p "$PERF_WORK"
LUN_FILE="$PERF_WORK/lun.img"
if [[ ! -f "$LUN_FILE.written" || ! -f "$LUN_FILE" || "$(stat -c %s "$LUN_FILE")" != 1073741824 ]]; then
    log "preparing the file LUN $LUN_FILE (1 GiB, written once)"
    rm -f "$LUN_FILE" "$LUN_FILE.written"
    fallocate -l 1G "$LUN_FILE"
    # Write every block once: reads of fallocated but unwritten extents never reach the disk
    # (the filesystem answers zeros), which would flatter every file-LUN read figure.
    dd if=/dev/zero of="$LUN_FILE" bs=1M count=1024 oflag=direct conv=notrunc status=none
    touch "$LUN_FILE.written"
fi
if [[ "$(stat -f -c %T "$LUN_FILE")" == tmpfs ]]; then
    log "PERF_WORK must be on a local disk, not tmpfs"; exit 1
fi
if [[ "$(stat -f -c %T /dev/shm)" != tmpfs ]]; then
    log "/dev/shm must be a tmpfs (tgt's memory-backed LUN lives there)"; exit 1
fi

# RBD=1: a throwaway cluster (on tmpfs where there is one, as scripts/test.sh's) and its image.
# up.sh's --owner watcher stops the cluster should this script die without its trap.
rbd_args=()
if [[ "$RBD" == 1 ]]; then
    base=/dev/shm
    [[ -d "$base" ]] || base="${TMPDIR:-/tmp}"
    CEPH_DIR="$(mktemp -d "$base/ringtgt-perf-ceph.XXXXXX")"
    log "RBD=1: bringing up a single-node Ceph cluster in $CEPH_DIR (about 20 s)"
    "$REPO/scripts/ceph/up.sh" "$CEPH_DIR" --owner $$ >&2
    RBD_IMAGE=rbd/perf
    rbd -c "$CEPH_DIR/ceph.conf" --client_mount_timeout 30 create --size 1G "$RBD_IMAGE"
    rbd_args=(--rbd-conf "$CEPH_DIR/ceph.conf" --rbd-image "$RBD_IMAGE")
fi

rbd_knob=""
[[ "$RBD" == 1 ]] && rbd_knob=" RBD=1"
COMMAND="ROUNDS=$ROUNDS RUNTIME=$RUNTIME${WARMUP:+ WARMUP=$WARMUP}${ONLY:+ ONLY='$ONLY'}\
${CORES:+ CORES=$CORES}${POLL_US:+ POLL_US=$POLL_US}${COALESCE_US:+ COALESCE_US=$COALESCE_US}$rbd_knob\
${RINGTGT_BIN:+ RINGTGT_BIN=$RINGTGT_BIN} perf/run.sh"

python3 "$HERE/bench.py" "${rbd_args[@]}" \
    --ringtgt "$RUN_DIR/ringtgt" --ringtgt-source "$src_bin" --ringtgt-label "$src_label" --fio "$FIO" --lun-file "$LUN_FILE" \
    --ram-file "$RAM_FILE" --load "$RUN_DIR/load" \
    --run-dir "$RUN_DIR" --pidfile "$PIDFILE" --command "$COMMAND" \
    --results "$HERE/RESULTS.md" &
BENCH_PID=$!
wait "$BENCH_PID"
