#!/usr/bin/env bash
# Linux-initiator harness: proves ringtgt against the real Linux kernel initiator (iscsi_tcp +
# open-iscsi) and fio, in a QEMU guest running Debian's stock cloud kernel.
#
#   scripts/vm/run.sh            (as root; scripts/test.sh runs it as its linux-initiator step)
#
# What it does:
#   1. installs the host tools it needs with apt (qemu-system-x86, debootstrap, ...);
#   2. builds target/release/ringtgt (unless RINGTGT_BIN names a binary);
#   3. builds or reuses the cached guest image (build-image.sh);
#   4. creates a network namespace with a tap device: the target listens on 10.213.0.1:3260 in
#      it and the guest is 10.213.0.2 on the tap. Nothing is routed out of the namespace;
#   5. starts ringtgt there with two LUNs (a file with 512-byte blocks, a loop device with
#      4096-byte sectors),
#      a second ringtgt on port 3261 whose targets and discovery require CHAP (point 6), and a
#      third on ports 3262 and 3263, one ALUA port group each (active/optimized and
#      active/non-optimized), for multipath (point 7); and, in the background while the guest
#      boots and runs the other points, a single-node Ceph cluster in the namespace
#      (scripts/ceph/up.sh, data on /dev/shm), an image in it and a fourth ringtgt on port 3264
#      exporting that image (point 9), and a second image exported by two gateways
#      (failover = "rbd-lock"; same target name and LU serial): A on port 3265 (port group 1,
#      the preferred owner, started first so that it takes the image's lock) and B on 3266
#      (group 2) (point 10). Points 9 and 10 are SKIPPED, saying why, where the binary was
#      built without the `rbd` feature or the Ceph packages are missing;
#   6. gives the guest an emulated NVMe controller (QEMU's nvme device, 4 KiB LBAs) on a fresh
#      sparse file, and the ringtgt binary with the shared libraries it links (beside the test
#      script, on the input disk): for point 11, where the guest runs ringtgt itself on
#      127.0.0.1 and exports the namespace's generic character device (/dev/ng0n1, io_uring
#      NVMe passthrough) to its own initiator;
#   7. boots the guest (KVM when it works, else TCG), which runs guest-test.sh: the eleven
#      points of the issues. On request from the guest, mid-fio (point 4), it black-holes the
#      session's connection (nftables in the namespace; the initiator's new login must reinstate
#      the session, and ringtgt's log must say so), destroys the target's sockets (ss -K), and
#      kills and restarts ringtgt; mid-fio in point 7 it black-holes the active/optimized portal
#      (port 3262), and later opens it again; in point 8 it stops ringtgt with SIGTERM and
#      starts it again; mid-fio in point 10 it kills gateway A (SIGKILL), and afterwards checks
#      that gateway B's log says it broke A's lock and took it over, after the kill only;
#   8. prints the guest's output as it comes, then a verdict per point, and on any failure the
#      guest's kernel log (dmesg) and the end of ringtgt's log. Exit status 0 = all passed.
#
# Everything it made is kept in target/vm/ (console.log = guest output, dmesg.log = guest
# kernel log, ringtgt.log; ceph-up.log and ceph-log/ for points 9 and 10, ringtgt-gwa.log and
# ringtgt-gwb.log for point 10's gateways, nvme.img and nvme-md.img for point 11; point 11's
# ringtgt runs in the guest, and its log is in console.log when the point fails). Everything it started is
# stopped on exit (the Ceph cluster with scripts/ceph/down.sh), the namespace removed.
# Time: about 8 minutes with a cached image under TCG on a 2-core machine (load ~1; a busy one,
# load ~10, takes longer), of which point 7 takes 75 s, point 9 about 20 s (its cluster, about
# 20 s more, comes up in the background meanwhile), point 10 about 55 s and point 11 about
# 60 s. Building the image takes a few minutes more.
#
# Environment:
#   RINGTGT_BIN          ringtgt binary to test (default: build target/release/ringtgt, with
#                        `--features rbd` when librbd-dev and the Ceph packages are installed)
#   RINGTGT_VM_RBD       0: skip points 9 and 10 (the RBD LUN, the two gateways) even where
#                        they could run
#   RINGTGT_VM_POINTS    the points to run, e.g. "11" or "6 7" (default: all); the others are
#                        SKIPPED (not selected). Points 2, 3, 4 and 8 run in point 1's session,
#                        which point 5 logs out: selecting any of 1-5 and 8 adds 1 and 5. The Ceph
#                        cluster is started only for point 9 or 10, the NVMe device and the
#                        binary in the guest only for point 11.
#   RINGTGT_VM_NVME_LUN  point 11's --lun inside the guest (default /dev/ng0n1, the namespace's
#                        passthrough device; /dev/nvme0n1, its block device, is a stand-in that
#                        checks the plumbing with a binary that has no passthrough store: then
#                        the log check is skipped and the point says so)
#   RINGTGT_VM_ACCEL     auto (default: KVM if a probe boot works, else TCG), kvm or tcg
#   RINGTGT_VM_TIMEOUT   seconds the guest may run in all (default 780)
#   RINGTGT_VM_LOG       ringtgt --log level or filter (default info)
#   RINGTGT_VM_CACHE     image cache (default /var/cache/ringtgt-vm), see build-image.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

OUT=${CARGO_TARGET_DIR:-$ROOT/target}/vm
TIMEOUT=${RINGTGT_VM_TIMEOUT:-780}
ACCEL=${RINGTGT_VM_ACCEL:-auto}
LOG_LEVEL=${RINGTGT_VM_LOG:-info}
NS=ringtgt-vm-$$
TARGET_IP=10.213.0.1
GUEST_IP=10.213.0.2
PORT=3260
IQN=iqn.2026-11.io.ringtgt:vm
# A second ringtgt for point 6 (CHAP): every session to it needs CHAP, discovery included.
CHAP_PORT=3261
CHAP_IQN=iqn.2026-11.io.ringtgt:vm-chap
MUTUAL_IQN=iqn.2026-11.io.ringtgt:vm-mutual
CHAP_USER=vmguest CHAP_SECRET=guest-secret-0123
MUTUAL_USER=vmtarget MUTUAL_SECRET=target-secret-4567
DISCOVERY_USER=vmdiscover DISCOVERY_SECRET=discover-secret-89
# A third ringtgt for point 7 (multipath): one LU reached through two portals, each the one
# portal of an ALUA target port group (group 1 active/optimized, group 2 active/non-optimized).
MPATH_IQN=iqn.2026-11.io.ringtgt:vm-mpath
MPATH_AO_PORT=3262 MPATH_ANO_PORT=3263
MPATH_SIZE=$((256 << 20)) MPATH_SERIAL=RTVM-MPATH-0
# LUN 0: a file (it must survive a restart of ringtgt, point 4); LUN 1: a 4Kn loop device.
LUN0_SIZE=$((512 << 20)) LUN0_BS=512 LUN0_SERIAL=RTVM-FILE-0
LUN1_SIZE=$((256 << 20)) LUN1_BS=4096 LUN1_SERIAL=RTVM-4KN-1
# A fourth ringtgt for point 9: one LUN, an image of a single-node Ceph cluster that runs in the
# namespace (so that its 127.0.0.1 is the namespace's loopback, where this ringtgt reaches it).
RBD_PORT=3264
RBD_IQN=iqn.2026-11.io.ringtgt:vm-rbd
RBD_IMAGE=rbd/vm-lun
RBD_SIZE=$((256 << 20))
# Point 10: two more ringtgts of the same cluster, gateways of one image (failover = "rbd-lock"):
# the same target name and LU serial on both, each its own ALUA port group. A (group 1,
# active/optimized: the preferred owner, which takes the image's lock at start) on GW_A_PORT,
# B (group 2, active/non-optimized) on GW_B_PORT; each names the other's group as remote.
GW_IQN=iqn.2026-11.io.ringtgt:vm-gw
GW_IMAGE=rbd/vm-gw
GW_SIZE=$((256 << 20)) GW_SERIAL=RTVM-GW-0
GW_A_PORT=3265 GW_B_PORT=3266
# On tmpfs where there is one (the OSD's commits then cost no disk flush), as scripts/test.sh does.
CEPH_BASE=/dev/shm
[[ -d $CEPH_BASE ]] || CEPH_BASE=${TMPDIR:-/tmp}
CEPH_DIR=$CEPH_BASE/ringtgt-vm-ceph-$$
CEPH_TOOLS=(ceph-mon ceph-mgr ceph-osd ceph ceph-authtool monmaptool rbd)

say() { echo "vm: $*"; }
# The default build has the `rbd` feature (point 9) where it can be built and tested: librbd-dev
# and libclang-dev to build, the Ceph daemons and tools to run a cluster.
rbd_features() {
    if dpkg -s librbd-dev libclang-dev ceph-mon ceph-mgr ceph-osd ceph-common >/dev/null 2>&1; then
        echo "--features=rbd"
    fi
}
die() {
    echo "vm: $*" >&2
    exit 1
}

# ---- 1. host tools -----------------------------------------------------------------------------
if [[ $(id -u) -ne 0 ]]; then
    # Build as the calling user, then come back as root for namespaces, tap and debootstrap.
    command -v sudo >/dev/null || die "needs root (namespaces, tap, debootstrap); no sudo here"
    if [[ -z ${RINGTGT_BIN:-} ]]; then
        # shellcheck disable=SC2046 # no feature or one word
        cargo build --release --quiet --bin ringtgt $(rbd_features)
        RINGTGT_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/ringtgt
    fi
    exec sudo --preserve-env=RINGTGT_VM_ACCEL,RINGTGT_VM_TIMEOUT,RINGTGT_VM_LOG,RINGTGT_VM_CACHE,RINGTGT_VM_RBD,RINGTGT_VM_POINTS,RINGTGT_VM_NVME_LUN,CARGO_TARGET_DIR \
        RINGTGT_BIN="$(realpath "$RINGTGT_BIN")" "$0" "$@"
fi

need=()
for tool in qemu-system-x86_64:qemu-system-x86 debootstrap:debootstrap cpio:cpio depmod:kmod \
    mkfs.ext4:e2fsprogs ip:iproute2 ss:iproute2 nft:nftables flock:util-linux dpkg-deb:dpkg; do
    command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if ((${#need[@]})); then
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Package lists are refreshed only when the install fails without it (a fresh machine has none).
    timeout 900 apt-get install -y -q --no-install-recommends "${need[@]}" ||
        { timeout 900 apt-get update -q &&
            timeout 900 apt-get install -y -q --no-install-recommends "${need[@]}"; }
fi

# ---- 2. ringtgt --------------------------------------------------------------------------------
if [[ -z ${RINGTGT_BIN:-} ]]; then
    say "building release ringtgt $(rbd_features)"
    # shellcheck disable=SC2046 # no feature or one word
    cargo build --release --quiet --bin ringtgt $(rbd_features)
    RINGTGT_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/ringtgt
fi
[[ -x $RINGTGT_BIN ]] || die "no ringtgt binary at $RINGTGT_BIN"

# ---- the points to run (RINGTGT_VM_POINTS) -----------------------------------------------------
ALL_POINTS=(1 2 3 4 5 6 7 8 9 10 11)
declare -A SEL=()
for p in ${RINGTGT_VM_POINTS:-${ALL_POINTS[*]}}; do
    p=${p//,/}
    [[ -z $p ]] && continue
    [[ $p =~ ^([1-9]|1[01])$ ]] || die "RINGTGT_VM_POINTS: '$p' is not a point (1 to 11)"
    SEL[$p]=1
done
((${#SEL[@]})) || die "RINGTGT_VM_POINTS selects no point"
selected() { [[ -n ${SEL[$1]:-} ]]; }
# Points 2, 3, 4 and 8 run in the session that point 1 logs in to, and point 5 logs it out; the
# points after 5 (7 and 10) must find no session of point 1 left: multipathd would claim its
# disks, and they count the sessions.
for p in 1 2 3 4 5 8; do
    if selected "$p" && ! { selected 1 && selected 5; }; then
        SEL[1]=1 SEL[5]=1
        say "point $p runs in point 1's session, which point 5 logs out: points 1 and 5 added"
        break
    fi
done
SELECTED=""
for p in "${ALL_POINTS[@]}"; do
    if selected "$p"; then SELECTED+="${SELECTED:+ }$p"; fi
done
[[ -z ${RINGTGT_VM_POINTS:-} ]] || say "points selected (RINGTGT_VM_POINTS): $SELECTED"

# Points 9 and 10 run where the binary has the `rbd` feature (it links librbd) and Ceph is
# installed.
RBD_SKIP=""
if [[ ${RINGTGT_VM_RBD:-1} == 0 ]]; then
    RBD_SKIP="RINGTGT_VM_RBD=0"
elif ! selected 9 && ! selected 10; then
    RBD_SKIP="not selected (RINGTGT_VM_POINTS)"
# (Not `ldd | grep -q`: with pipefail, grep -q leaving at the first match can make ldd die of
# SIGPIPE mid-output, and the pipeline then fails although librbd is there.)
elif ! ldd "$RINGTGT_BIN" 2>/dev/null | grep 'librbd\.so' >/dev/null; then
    RBD_SKIP="$(basename "$RINGTGT_BIN") was built without the rbd feature (cargo build --release --features rbd)"
else
    for tool in "${CEPH_TOOLS[@]}"; do
        if ! command -v "$tool" >/dev/null; then
            RBD_SKIP="no $tool here (apt-get install ceph-mon ceph-mgr ceph-osd ceph-common)"
            break
        fi
    done
fi
[[ -z $RBD_SKIP ]] || say "points 9 and 10 (RBD LUN, two gateways) will be SKIPPED: $RBD_SKIP"

# ---- 3. guest image ----------------------------------------------------------------------------
t=$SECONDS
IMAGE=$("$HERE/build-image.sh" | tail -n1) || die "building the guest image failed (see above)"
[[ -s $IMAGE/root.img ]] || die "build-image.sh produced no image"
say "guest image $IMAGE ($(cat "$IMAGE/kernel-package"), $((SECONDS - t))s)"

rm -rf "$OUT"
mkdir -p "$OUT/input"

# ---- cleanup: whatever happens, stop what we started and remove the namespace ------------------
# child PID: PID is still a process this script started. A child that ended is reaped by bash at
# once, and its number may then belong to anyone: this machine's PIDs wrap within minutes, and
# scripts/test.sh runs the host's tests (whose daemons a stray SIGKILL or SIGTERM would take
# down mid-login) beside this script. So every signal to a PID of ours is sent through `signal`.
child() {
    [[ $1 =~ ^[0-9]+$ && -r /proc/$1/stat ]] || return 1
    local stat rest ppid
    stat=$(</proc/$1/stat) 2>/dev/null || return 1
    rest=${stat##*) } # the fields after the command name, which may hold spaces or parentheses
    read -r _ ppid _ <<<"$rest"
    [[ $ppid == "$$" ]]
}
# signal SIG PID: sends SIG (e.g. -9, -TERM, -0) to PID only while it is our child.
signal() {
    child "$2" && kill "$1" "$2" 2>/dev/null
}

QEMU_PID="" TGT_PID="" TAIL_PID=""
AUX_PIDS=() # the CHAP and multipath daemons (start_aux)
CEPH_JOB="" # points 9 and 10's background set-up (rbd_setup)
CEPH_LOG_KEEP=1 # the cluster's logs are copied to $OUT/ceph-log unless the run passed
cleanup() {
    local pid name
    for pid in $QEMU_PID $TGT_PID "${AUX_PIDS[@]}" $TAIL_PID $CEPH_JOB; do
        signal -9 "$pid" || true
        wait "$pid" 2>/dev/null || true
    done
    # Points 9 and 10: their ringtgts (clients of the cluster), then the cluster, daemon by
    # daemon from their pid files (down.sh); its logs are kept in $OUT/ceph-log unless all went
    # well.
    # Only while the process is still in our namespace: this machine's PIDs wrap around within
    # minutes (pid_max 32768), and a daemon that exited earlier (gateway A, killed by point 10)
    # may have left its number to a process of someone else.
    for name in rbd gwa gwb; do
        if [[ -s $OUT/ringtgt-$name.pid ]]; then
            pid=$(cat "$OUT/ringtgt-$name.pid")
            if [[ $(ip netns identify "$pid" 2>/dev/null) == "$NS" ]]; then
                kill -9 "$pid" 2>/dev/null || true
            fi
        fi
    done
    if [[ -d $CEPH_DIR ]]; then
        rm -rf "$OUT/ceph-log"
        if ((CEPH_LOG_KEEP)); then cp -r "$CEPH_DIR/log" "$OUT/ceph-log" 2>/dev/null || true; fi
        "$HERE/../ceph/down.sh" "$CEPH_DIR" >/dev/null 2>&1 || true
    fi
    # Anything else still inside our namespace was started by this script: stop it by PID too,
    # or it would keep the namespace (and the portal) alive after the namespace is deleted.
    if ip netns list 2>/dev/null | grep -qw "$NS"; then
        for pid in $(ip netns pids "$NS" 2>/dev/null); do
            kill -9 "$pid" 2>/dev/null || true
        done
        ip netns del "$NS" 2>/dev/null || true
    fi
    # Again: an up.sh that was still starting the cluster may have written more before it ended.
    rm -rf "$CEPH_DIR"
    [[ -n ${LOOP_DEV:-} ]] && losetup -d "$LOOP_DEV" 2>/dev/null
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 4. network namespace ----------------------------------------------------------------------
# The namespace has only lo and the tap, and no default route: the guest can reach the target
# and nothing else, and no packet leaves the machine.
ip netns add "$NS"
nsx() { ip netns exec "$NS" "$@"; }
nsx ip link set lo up
nsx ip tuntap add dev tap0 mode tap
nsx ip addr add "$TARGET_IP/24" dev tap0
nsx ip link set tap0 up

# ---- points 9 and 10: the Ceph cluster and its ringtgts, in the background ---------------------
# The cluster takes 20 s on an idle machine and a minute or more beside a TCG guest: it is
# started now and comes up while the guest boots and runs points 1 to 8. In the namespace, so
# that the monitor's and the OSD's 127.0.0.1 is the namespace's loopback. When it is up, two
# images are created: a fourth ringtgt exports the first on RBD_PORT (point 9), and two gateways
# export the second (point 10): A on GW_A_PORT first, which takes the image's lock, then B on
# GW_B_PORT once A listens. The guest waits for these portals. Everything goes to ceph-up.log
# and each ringtgt's pid to ringtgt-NAME.pid (this runs in a subshell, so the trap and the host's
# "gwkill" find them there). up.sh's --owner watcher stops the cluster should this script die
# without its trap.
rbd_setup() {
    echo "rbd_setup: starting the Ceph cluster in $CEPH_DIR at $(date +%T)"
    if ! nsx env CEPH_UP_TIMEOUT="${CEPH_UP_TIMEOUT:-300}" "$HERE/../ceph/up.sh" "$CEPH_DIR" --owner $$; then
        echo "rbd_setup: scripts/ceph/up.sh failed; the end of its daemons' logs:"
        tail -n 20 "$CEPH_DIR"/log/*.log 2>/dev/null
        return 1
    fi
    local image
    for image in "$RBD_IMAGE:$RBD_SIZE" "$GW_IMAGE:$GW_SIZE"; do
        echo "rbd_setup: creating ${image%:*} ($((${image#*:} >> 20)) MiB) at $(date +%T)"
        nsx rbd -c "$CEPH_DIR/ceph.conf" --client_mount_timeout 30 create \
            --size "$((${image#*:} >> 20))M" "${image%:*}" || { echo "rbd_setup: rbd create failed"; return 1; }
    done
    cat >"$OUT/ringtgt-rbd.toml" <<EOF
portals = ["$TARGET_IP:$RBD_PORT"]
cores = 1

[[target]]
name = "$RBD_IQN"
[[target.lun]]
path = "rbd:$RBD_IMAGE"
ceph_conf = "$CEPH_DIR/ceph.conf"
EOF
    gateway_config gwa "$GW_A_PORT" 1 2 active-optimized
    gateway_config gwb "$GW_B_PORT" 2 1 active-non-optimized
    rbd_start rbd "$RBD_PORT" && rbd_start gwa "$GW_A_PORT" && rbd_start gwb "$GW_B_PORT"
}
# gateway_config NAME PORT LOCAL REMOTE STATE: point 10's gateway NAME, its own port group LOCAL
# (in STATE) on PORT, the other gateway's group REMOTE.
gateway_config() {
    cat >"$OUT/ringtgt-$1.toml" <<EOF
portals = ["$TARGET_IP:$2"]
cores = 1

[[target]]
name = "$GW_IQN"
failover = "rbd-lock"
[[target.lun]]
path = "rbd:$GW_IMAGE"
ceph_conf = "$CEPH_DIR/ceph.conf"
serial = "$GW_SERIAL"
[[target.port_group]]
id = $3
portals = ["$TARGET_IP:$2"]
state = "$5"
[[target.port_group]]
id = $4
remote = true
EOF
}
# rbd_start NAME PORT: starts the ringtgt of $OUT/ringtgt-NAME.toml (pid in ringtgt-NAME.pid,
# log in ringtgt-NAME.log) and waits until it listens on PORT. It connects to the cluster and
# opens its image before it listens (client_mount_timeout, 10 s, at most for the connection).
rbd_start() {
    local name=$1 port=$2 i
    echo "rbd_setup: starting the $name ringtgt on $TARGET_IP:$port at $(date +%T)"
    ip netns exec "$NS" "$RINGTGT_BIN" serve --config "$OUT/ringtgt-$name.toml" --log "$LOG_LEVEL" \
        --state-dir "$OUT/state-$name" --admin-socket "$OUT/ctl-$name.sock" >>"$OUT/ringtgt-$name.log" 2>&1 &
    echo "$!" >"$OUT/ringtgt-$name.pid"
    for ((i = 0; i < 600; i++)); do
        if nsx ss -Hltn "sport = :$port" | grep -q .; then
            echo "rbd_setup: $name ready at $(date +%T)"
            return 0
        fi
        kill -0 "$(cat "$OUT/ringtgt-$name.pid")" 2>/dev/null || break
        sleep 0.1
    done
    echo "rbd_setup: the $name ringtgt did not listen on $TARGET_IP:$port; the end of its log:"
    tail -n 20 "$OUT/ringtgt-$name.log"
    return 1
}
RBD_PROBLEM=""
if [[ -z $RBD_SKIP ]]; then
    CEPH_START=$SECONDS
    rbd_setup </dev/null >"$OUT/ceph-up.log" 2>&1 &
    CEPH_JOB=$!
    say "points 9 and 10: starting a Ceph cluster in $CEPH_DIR in the background (log $OUT/ceph-up.log)"
fi

# ---- 5. ringtgt in the namespace ---------------------------------------------------------------
truncate -s "$LUN0_SIZE" "$OUT/lun0.img"
# LUN 1 is a block device as an NVMe namespace with 4 KiB LBAs is: a loop device with
# 4096-byte sectors, exported with default settings (ringtgt takes its block size from the
# device). Where no loop device can be made it is a RAM disk with 4096-byte blocks instead.
truncate -s "$LUN1_SIZE" "$OUT/lun1.img"
if LOOP_DEV=$(losetup -f --show --sector-size "$LUN1_BS" "$OUT/lun1.img" 2>"$OUT/losetup.err"); then
    LUN1_PATH=$LOOP_DEV LUN1_BLOCK_SIZE=""
    say "LUN 1 is $LOOP_DEV ($LUN1_BS-byte sectors)"
else
    LOOP_DEV="" LUN1_PATH="ram:$LUN1_SIZE" LUN1_BLOCK_SIZE="block_size = $LUN1_BS"
    say "no loop device ($(cat "$OUT/losetup.err")): LUN 1 is a RAM disk"
fi
cat >"$OUT/ringtgt.toml" <<EOF
portals = ["$TARGET_IP:$PORT"]
cores = $(($(nproc) < 2 ? 1 : 2))

[iscsi]
# Point 4's partition must reach the target while it still holds the old session, so that the
# new login reinstates it: the initiator notices the silence after ~10 s (NOP-Out 5 s + 5 s)
# and logs in again ~2 s later; the target's own NOP-In check is made slower than that.
nop_in_interval_secs = 5
nop_in_timeout_secs = 30

[[target]]
name = "$IQN"
alias = "ringtgt linux-initiator harness"

[[target.lun]]
id = 0
path = "$OUT/lun0.img"
block_size = $LUN0_BS
serial = "$LUN0_SERIAL"

[[target.lun]]
id = 1
path = "$LUN1_PATH"
$LUN1_BLOCK_SIZE
serial = "$LUN1_SERIAL"
EOF

start_target() {
    echo "==== ringtgt started at $(date +%T)" >>"$OUT/ringtgt.log"
    # Not through nsx: a backgrounded function is a subshell, and $! would be its PID rather than
    # ringtgt's (ip netns exec execs the command, so here $! is ringtgt itself). Each daemon has
    # its own admin socket in $OUT: the default one is shared by every ringtgt on the machine.
    ip netns exec "$NS" "$RINGTGT_BIN" serve --config "$OUT/ringtgt.toml" --log "$LOG_LEVEL" --state-dir "$OUT/state" \
        --admin-socket "$OUT/ctl.sock" >>"$OUT/ringtgt.log" 2>&1 &
    TGT_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        if nsx ss -Hltn "sport = :$PORT" | grep -q .; then
            return 0
        fi
        child "$TGT_PID" || break
        sleep 0.1
    done
    tail -n 50 "$OUT/ringtgt.log" >&2
    die "ringtgt did not start listening on $TARGET_IP:$PORT"
}
stop_target() { # SIGKILL: like a crash, nothing is flushed or closed politely
    signal -9 "$TGT_PID" || true
    wait "$TGT_PID" 2>/dev/null || true
    # The restarted daemon must not find the old one still listening: ringtgt's listeners use
    # SO_REUSEPORT, so a second daemon would bind the same portal and share its connections.
    # The kernel closes the old sockets shortly after the process is gone, not at once (an
    # io_uring with registered files is torn down asynchronously): give it 5 s.
    local i
    echo "==== ringtgt killed at $(date +%T)" >>"$OUT/ringtgt.log"
    for ((i = 0; i < 50; i++)); do
        if ! nsx ss -Hltn "sport = :$PORT" | grep -q .; then
            ((i == 0)) || say "host: the old listener went away $((i * 100)) ms after the kill"
            return 0
        fi
        sleep 0.1
    done
    die "the portal is still listening 5 s after ringtgt (pid $TGT_PID) was killed"
}
start_target
say "ringtgt $("$RINGTGT_BIN" --version | cut -d' ' -f2) listening on $TARGET_IP:$PORT in netns $NS"

# start_aux NAME PORT...: starts a ringtgt on $OUT/ringtgt-NAME.toml in the namespace (log in
# $OUT/ringtgt-NAME.log) and waits until it listens on every PORT. It is never restarted.
start_aux() {
    local name=$1 pid port i
    shift
    ip netns exec "$NS" "$RINGTGT_BIN" serve --config "$OUT/ringtgt-$name.toml" --log "$LOG_LEVEL" \
        --state-dir "$OUT/state-$name" --admin-socket "$OUT/ctl-$name.sock" >"$OUT/ringtgt-$name.log" 2>&1 &
    pid=$!
    AUX_PIDS+=("$pid")
    for port in "$@"; do
        for ((i = 0; ; i++)); do
            nsx ss -Hltn "sport = :$port" | grep -q . && break
            child "$pid" || die "the $name ringtgt exited: $(tail -n 5 "$OUT/ringtgt-$name.log")"
            ((i < 100)) || die "the $name ringtgt is not listening on $TARGET_IP:$port after 10 s"
            sleep 0.1
        done
    done
    say "$name ringtgt listening on $TARGET_IP port $*"
}

# Point 6's target: one-way CHAP on one target, mutual CHAP on the other, CHAP for discovery;
# every algorithm allowed, so the initiator's chap_algs choose. Secrets come from files, as an
# operator would keep them.
(
    umask 077
    printf '%s\n' "$CHAP_SECRET" >"$OUT/chap.secret"
    printf '%s\n' "$MUTUAL_SECRET" >"$OUT/mutual.secret"
    printf '%s\n' "$DISCOVERY_SECRET" >"$OUT/discovery.secret"
)
cat >"$OUT/ringtgt-chap.toml" <<EOF
portals = ["$TARGET_IP:$CHAP_PORT"]
cores = 1

[discovery.chap]
user = "$DISCOVERY_USER"
secret_file = "$OUT/discovery.secret"

[[target]]
name = "$CHAP_IQN"
[target.chap]
user = "$CHAP_USER"
secret_file = "$OUT/chap.secret"
[[target.lun]]
path = "ram:32MiB"

[[target]]
name = "$MUTUAL_IQN"
[target.chap]
user = "$CHAP_USER"
secret_file = "$OUT/chap.secret"
mutual_user = "$MUTUAL_USER"
mutual_secret_file = "$OUT/mutual.secret"
[[target.lun]]
path = "ram:32MiB"
EOF
start_aux chap "$CHAP_PORT"

# Point 7's target: the LU is one logical unit through both port groups (same NAA identifier),
# which is what makes Linux multipath put both paths into one map; the access states make
# multipath's ALUA prioritizer put them in two path groups. RAM: nothing here outlives the run.
cat >"$OUT/ringtgt-mpath.toml" <<EOF
portals = ["$TARGET_IP:$MPATH_AO_PORT", "$TARGET_IP:$MPATH_ANO_PORT"]
cores = 1

[[target]]
name = "$MPATH_IQN"
[[target.lun]]
path = "ram:$MPATH_SIZE"
serial = "$MPATH_SERIAL"

[[target.port_group]]
id = 1
portals = ["$TARGET_IP:$MPATH_AO_PORT"]
state = "active-optimized"

[[target.port_group]]
id = 2
portals = ["$TARGET_IP:$MPATH_ANO_PORT"]
state = "active-non-optimized"
EOF
start_aux mpath "$MPATH_AO_PORT" "$MPATH_ANO_PORT"

# ---- 6. the guest ------------------------------------------------------------------------------
cp "$HERE/guest-test.sh" "$OUT/input/"
# Point 11: the guest runs ringtgt itself, on an emulated NVMe namespace. The binary goes on the
# input disk with the shared libraries it links, but for the C library's own (libc, libm, libdl,
# libpthread, librt, the dynamic loader), which every guest has: a `--features rbd` build links
# librbd, librados and Ceph's libraries, which the guest has not. Host and guest are both Debian
# bookworm, so the host's copies fit; the guest runs the binary with LD_LIBRARY_PATH on them.
# Cost: the input tar grows from a few KiB to about 40 MiB (the binary 7 MiB, its 28 libraries
# 33 MiB: libceph-common 11, librbd 9, libcrypto 5), which the guest also keeps in RAM
# (/run/input is a tmpfs, of its 1 GiB); copying them takes well under a second. A build
# without `rbd` needs little beyond the C library.
NVME_SIZE=$((256 << 20))
NVME_MD_SIZE=$((16 << 20))
NVME_IQN=iqn.2026-11.io.ringtgt:vm-nvme
NVME_PORT=3270 # on the guest's 127.0.0.1, where nothing else listens
NVME_LUN=${RINGTGT_VM_NVME_LUN:-/dev/ng0n1}
QEMU_NVME=()
if selected 11; then
    mkdir -p "$OUT/input/bin" "$OUT/input/lib"
    cp "$RINGTGT_BIN" "$OUT/input/bin/ringtgt"
    # (ldd's output kept in a file: see the librbd check above about pipes.)
    ldd "$RINGTGT_BIN" >"$OUT/ldd.txt" 2>&1 || die "ldd $RINGTGT_BIN failed: $(cat "$OUT/ldd.txt")"
    if grep 'not found' "$OUT/ldd.txt" >/dev/null; then
        die "$RINGTGT_BIN needs libraries this host lacks: $(grep 'not found' "$OUT/ldd.txt")"
    fi
    while read -r lib; do
        case ${lib##*/} in
        libc.so* | libm.so* | libdl.so* | libpthread.so* | librt.so* | ld-linux*) ;;
        *) cp -L "$lib" "$OUT/input/lib/" ;;
        esac
    done < <(awk '$2 == "=>" && $3 ~ /^\// {print $3}' "$OUT/ldd.txt")
    say "point 11: ringtgt and $(find "$OUT/input/lib" -type f | wc -l) libraries for the guest" \
        "($(du -sm "$OUT/input" | cut -f1) MiB on its input disk)"
    # The namespace: a sparse file, fresh each run, behind QEMU's NVMe controller with 4 KiB
    # LBAs. QEMU's namespace supports Write Zeroes and Dataset Management (deallocated blocks
    # read zeros), and its controller takes at most 512 KiB per command (mdts=7, the default).
    # A second namespace (nsid 2, /dev/ng0n2) has 8 bytes of metadata per block with protection
    # information (type 1), which ringtgt must refuse to export.
    truncate -s "$NVME_SIZE" "$OUT/nvme.img"
    truncate -s "$NVME_MD_SIZE" "$OUT/nvme-md.img"
    QEMU_NVME=(-drive "file=$OUT/nvme.img,if=none,id=nvm,format=raw"
        -drive "file=$OUT/nvme-md.img,if=none,id=nvmmd,format=raw"
        -device "nvme,id=nvmectl,serial=RTVM-NVME-0"
        -device "nvme-ns,bus=nvmectl,drive=nvm,nsid=1,logical_block_size=4096,physical_block_size=4096"
        -device "nvme-ns,bus=nvmectl,drive=nvmmd,nsid=2,logical_block_size=4096,physical_block_size=4096,ms=8,pi=1")
fi
cat >"$OUT/input/params.env" <<EOF
TARGET_IP=$TARGET_IP
TARGET_PORT=$PORT
GUEST_IP=$GUEST_IP
TARGET_IQN=$IQN
INITIATOR_IQN=iqn.2026-11.io.ringtgt:vm-guest
LUN_VENDOR=RINGTGT
LUN0_SIZE=$LUN0_SIZE
LUN0_BS=$LUN0_BS
LUN0_SERIAL=$LUN0_SERIAL
LUN1_SIZE=$LUN1_SIZE
LUN1_BS=$LUN1_BS
LUN1_SERIAL=$LUN1_SERIAL
CHAP_PORT=$CHAP_PORT
CHAP_IQN=$CHAP_IQN
MUTUAL_IQN=$MUTUAL_IQN
CHAP_USER=$CHAP_USER
CHAP_SECRET=$CHAP_SECRET
MUTUAL_USER=$MUTUAL_USER
MUTUAL_SECRET=$MUTUAL_SECRET
DISCOVERY_USER=$DISCOVERY_USER
DISCOVERY_SECRET=$DISCOVERY_SECRET
MPATH_IQN=$MPATH_IQN
MPATH_AO_PORT=$MPATH_AO_PORT
MPATH_ANO_PORT=$MPATH_ANO_PORT
MPATH_SIZE=$MPATH_SIZE
MPATH_SERIAL=$MPATH_SERIAL
FIO_TIMEOUT=150
FIO_RAND_SIZE=${RINGTGT_VM_FIO_RAND_SIZE:-64M}
FIO_SEQ_SIZE=${RINGTGT_VM_FIO_SEQ_SIZE:-256M}
RBD_PORT=$RBD_PORT
RBD_IQN=$RBD_IQN
RBD_SIZE=$RBD_SIZE
RBD_WAIT=240
FIO_RBD_SIZE=${RINGTGT_VM_FIO_RBD_SIZE:-32M}
RBD_SKIP=$(printf '%q' "$RBD_SKIP")
GW_IQN=$GW_IQN
GW_A_PORT=$GW_A_PORT
GW_B_PORT=$GW_B_PORT
GW_SIZE=$GW_SIZE
GW_SERIAL=$GW_SERIAL
FIO_GW_SIZE=${RINGTGT_VM_FIO_GW_SIZE:-24M}
SELECTED_POINTS="$SELECTED"
NVME_LUN=$(printf '%q' "$NVME_LUN")
NVME_IQN=$NVME_IQN
NVME_PORT=$NVME_PORT
NVME_SIZE=$NVME_SIZE
NVME_BS=4096
EOF
tar -cf "$OUT/input.tar" -C "$OUT/input" .

# KVM only where it can boot this kernel: some hosts have a /dev/kvm that cannot (the guest hangs
# before printing anything). The probe boots the kernel with no root (it panics at once when it
# runs) and its answer is cached per host kernel and QEMU version.
probe_kvm() {
    [[ -w /dev/kvm ]] || return 1
    local cache
    cache=${RINGTGT_VM_CACHE:-/var/cache/ringtgt-vm}/kvm-probe.$(uname -r)
    cache+=.$(qemu-system-x86_64 --version | head -n1 | tr -dc '0-9.')
    if [[ -f $cache ]]; then
        [[ $(cat "$cache") == yes ]]
        return
    fi
    timeout 10 qemu-system-x86_64 -accel kvm -m 256 -display none -monitor none -no-reboot \
        -serial "file:$OUT/kvm-probe.log" -kernel "$IMAGE/vmlinuz" \
        -append "console=ttyS0 panic=-1" >/dev/null 2>&1 || true
    if grep -q 'Linux version' "$OUT/kvm-probe.log" 2>/dev/null; then echo yes; else echo no; fi >"$cache"
    [[ $(cat "$cache") == yes ]]
}
case $ACCEL in
auto) if probe_kvm; then ACCEL=kvm; else ACCEL=tcg; fi ;;
kvm | tcg) ;;
*) die "RINGTGT_VM_ACCEL must be auto, kvm or tcg" ;;
esac

# Serial port 0 carries the test's output (console.log), port 1 the kernel's log (dmesg.log).
# The root image runs with snapshot=on so the cached image is never written.
# maxcpus=2 (one vCPU, one empty slot): with a maximum of one CPU, TCG translates the guest's
# `lock`-prefixed instructions as plain loads and stores, and `lock addl` is x86 Linux's full
# barrier (__smp_mb, what virtio's rings use; QEMU keeps explicit fences, not this). QEMU's device
# code reads and writes the virtqueues from another host thread meanwhile, and virtio's
# notification handshake (store the ring index, then load the other side's event index) needs
# that barrier: without it a notification is now and then lost and virtio-net stops for good
# (the guest's iSCSI pings time out, the target's NOP-Ins go unanswered, later NETDEV WATCHDOG),
# which failed this lane twice in the CI runs of 2026-12-02/03, each time mid-fio. With a maximum
# above one, TCG translates every atomic as one (CF_PARALLEL).
: >"$OUT/console.log"
QEMU=(qemu-system-x86_64 -accel "$ACCEL" -m 1024 -smp 1,maxcpus=2 -no-reboot -display none -monitor none
    -nodefaults -serial "file:$OUT/console.log" -serial "file:$OUT/dmesg.log"
    -kernel "$IMAGE/vmlinuz" -initrd "$IMAGE/initrd.img"
    -append "console=ttyS1 panic=-1 ignore_loglevel log_buf_len=4M"
    -drive "file=$IMAGE/root.img,format=raw,if=virtio,snapshot=on"
    -drive "file=$OUT/input.tar,format=raw,if=virtio,readonly=on"
    -netdev "tap,id=n0,ifname=tap0,script=no,downscript=no"
    -device "virtio-net-pci,netdev=n0,romfile="
    "${QEMU_NVME[@]}")
# TCG's "max" model has SSE4.2, so the guest's crc32c (fio's verify) runs the fast path.
if [[ $ACCEL == tcg ]]; then QEMU+=(-cpu max); else QEMU+=(-cpu host); fi
say "booting the guest ($ACCEL, timeout ${TIMEOUT}s)"
GUEST_START=$SECONDS
ip netns exec "$NS" "${QEMU[@]}" >"$OUT/qemu.log" 2>&1 </dev/null &
QEMU_PID=$!
# The guest's output, live.
tail -n +1 -s 0.2 -F --pid="$QEMU_PID" "$OUT/console.log" 2>/dev/null &
TAIL_PID=$!

# Host side of the guest's requests: each "@@ringtgt-vm: host ACTION@@" line is acted on once.
host_action() {
    case $1 in
    partition)
        # Black-hole the session's TCP connection in both directions, in the namespace's
        # firewall: neither side hears from the other, nothing is reset, and new connections
        # (the initiator's next login) pass. Lifted again on "heal".
        local peer
        peer=$(nsx ss -Htn state established "( sport = :$PORT )" | awk '{print $4}' | head -n1)
        say "host: black-holing the connection from $peer"
        echo "==== partition: connection from $peer black-holed at $(date +%T)" >>"$OUT/ringtgt.log"
        PARTITIONED=1
        # (If this fails the guest sees no connection error and point 4 fails, saying so.)
        nsx nft -f - <<EOF || say "host: nft failed: the partition did not happen"
table inet ringtgt_vm {
    chain input { type filter hook input priority 0; ip saddr ${peer%:*} tcp sport ${peer##*:} drop; }
    chain output { type filter hook output priority 0; ip daddr ${peer%:*} tcp dport ${peer##*:} drop; }
}
EOF
        ;;
    heal)
        say "host: lifting the black hole"
        nsx nft delete table inet ringtgt_vm || true
        echo "==== partition healed at $(date +%T)" >>"$OUT/ringtgt.log"
        ;;
    cut)
        # Destroy the target's established sockets: ringtgt sees them fail, the guest gets RSTs.
        say "host: destroying the target's TCP connections"
        nsx ss -K -tn state established "( sport = :$PORT )" | sed 's/^/vm: host:   /'
        echo "==== connections destroyed (ss -K) at $(date +%T)" >>"$OUT/ringtgt.log"
        ;;
    restart)
        say "host: killing ringtgt (SIGKILL), restarting it in 2 s on the same LUN file"
        stop_target
        sleep 2
        start_target
        say "host: ringtgt is back"
        ;;
    stop)
        # Point 8. As `systemctl stop` does: SIGTERM. ringtgt asks the initiator to log out and exits
        # once it has (shutdown_grace_secs, 10 s by default, at most).
        say "host: stopping ringtgt with SIGTERM, starting it again 2 s after it exits"
        local from i rc=0
        from=$(($(wc -l <"$OUT/ringtgt.log") + 1))
        echo "==== ringtgt sent SIGTERM at $(date +%T)" >>"$OUT/ringtgt.log"
        signal -TERM "$TGT_PID" || true
        for ((i = 0; i < 300; i++)); do
            child "$TGT_PID" || break
            sleep 0.1
        done
        if child "$TGT_PID"; then
            STOP_PROBLEM="ringtgt still ran 30 s after SIGTERM"
            signal -9 "$TGT_PID" || true
        fi
        wait "$TGT_PID" 2>/dev/null || rc=$?
        say "host: ringtgt exited with status $rc after $((i / 10)).$((i % 10)) s"
        echo "==== ringtgt exited with status $rc at $(date +%T)" >>"$OUT/ringtgt.log"
        if [[ -z $STOP_PROBLEM ]] && ((rc != 0)); then
            STOP_PROBLEM="ringtgt exited with status $rc on SIGTERM"
        elif [[ -z $STOP_PROBLEM ]] &&
            ! grep -q 'closing connection reason=logout' <(tail -n +"$from" "$OUT/ringtgt.log"); then
            STOP_PROBLEM="the initiator did not log out at the target's request (no \
'closing connection reason=logout' in ringtgt's log after the SIGTERM)"
        fi
        STOPPED=1
        sleep 2
        start_target
        say "host: ringtgt is back"
        ;;
    pathcut)
        # Point 7: black-hole the active/optimized portal, its established connection and any
        # new one alike, so that the path stays down (the initiator's logins through it go
        # unanswered) until "pathheal". Nothing is reset: the initiator must notice by itself.
        say "host: black-holing the multipath target's portal $TARGET_IP:$MPATH_AO_PORT"
        echo "==== pathcut: portal $MPATH_AO_PORT black-holed at $(date +%T)" >>"$OUT/ringtgt-mpath.log"
        PATHCUT=1
        # (If this fails the guest sees no connection error and point 7 fails, saying so.)
        nsx nft -f - <<EOF || say "host: nft failed: the path was not cut"
table inet ringtgt_vm_path {
    chain input { type filter hook input priority 0; tcp dport $MPATH_AO_PORT drop; }
    chain output { type filter hook output priority 0; tcp sport $MPATH_AO_PORT drop; }
}
EOF
        ;;
    pathheal)
        say "host: opening $TARGET_IP:$MPATH_AO_PORT again"
        nsx nft delete table inet ringtgt_vm_path || true
        echo "==== pathheal: portal $MPATH_AO_PORT open again at $(date +%T)" >>"$OUT/ringtgt-mpath.log"
        ;;
    gwkill)
        # Point 10: gateway A, the owner of the image's lock, dies (SIGKILL: it releases nothing).
        # Gateway B must take the lock over when the initiator's writes come to it.
        local gwa
        gwa=$(cat "$OUT/ringtgt-gwa.pid" 2>/dev/null)
        # (Checked to be in our namespace first: a PID is only ours while the process lives.)
        if [[ -n $gwa && $(ip netns identify "$gwa" 2>/dev/null) == "$NS" ]] &&
            kill -9 "$gwa" 2>/dev/null; then
            GWKILLED=1
            say "host: gateway A (pid $gwa, $TARGET_IP:$GW_A_PORT) killed (SIGKILL)"
            echo "==== gwkill: gateway A killed (SIGKILL) at $(date +%T.%N | cut -c1-12)" |
                tee -a "$OUT/ringtgt-gwa.log" >>"$OUT/ringtgt-gwb.log"
        else
            say "host: gateway A (pid '${gwa:-?}') could not be killed: it is not running"
        fi
        ;;
    *) say "host: unknown request '$1' ignored" ;;
    esac
}
handled=0
timed_out=0
PARTITIONED=0 PATHCUT=0 GWKILLED=0
STOPPED=0
STOP_PROBLEM=
# rbd_setup_done: once points 9 and 10's background set-up has ended, says how it went.
rbd_setup_done() {
    local rc=0
    [[ -n $CEPH_JOB ]] && ! child "$CEPH_JOB" || return 0
    wait "$CEPH_JOB" || rc=$?
    CEPH_JOB=""
    if ((rc == 0)); then
        say "host: the Ceph cluster is up, its ringtgt listens on $TARGET_IP:$RBD_PORT and its" \
            "gateways on ports $GW_A_PORT and $GW_B_PORT, $((SECONDS - CEPH_START))s after the start"
    else
        RBD_PROBLEM="the Ceph cluster or its ringtgts did not start (status $rc, see $OUT/ceph-up.log)"
        say "host: points 9 and 10: $RBD_PROBLEM:"
        tail -n 30 "$OUT/ceph-up.log" | sed 's/^/vm: host:   /'
    fi
}
while child "$QEMU_PID"; do
    rbd_setup_done
    if ((SECONDS - GUEST_START > TIMEOUT)); then
        timed_out=1
        say "TIMEOUT: the guest ran for more than ${TIMEOUT}s; stopping it"
        signal -9 "$QEMU_PID" || true
        break
    fi
    mapfile -t reqs < <(grep -ao '@@ringtgt-vm: host [a-z]*@@' "$OUT/console.log" || true)
    while ((handled < ${#reqs[@]})); do
        req=${reqs[handled]#@@ringtgt-vm: host }
        handled=$((handled + 1))
        host_action "${req%@@}"
    done
    sleep 0.2
done
wait "$QEMU_PID" 2>/dev/null || true
QEMU_PID=
wait "$TAIL_PID" 2>/dev/null || true
TAIL_PID=
GUEST_TIME=$((SECONDS - GUEST_START))
rbd_setup_done
if [[ -n $CEPH_JOB ]]; then
    RBD_PROBLEM="the Ceph cluster was still starting when the guest ended ($((SECONDS - CEPH_START))s)"
fi

# ---- 7. verdict --------------------------------------------------------------------------------
exit_line=$(grep -ao '@@ringtgt-vm: exit [0-9]*@@' "$OUT/console.log" | tail -n1 || true)
guest_rc=${exit_line//[^0-9]/}
POINTS=("${ALL_POINTS[@]}")
declare -A VERDICT=()
for p in "${POINTS[@]}"; do
    if grep -aq "^RESULT point $p: PASS" "$OUT/console.log"; then
        VERDICT[$p]=PASS
    elif grep -aq "^RESULT point $p: SKIPPED" "$OUT/console.log"; then
        VERDICT[$p]=SKIPPED
    else
        VERDICT[$p]=FAIL
    fi
done
problems=()
((timed_out)) && problems+=("the guest timed out")
[[ -z $exit_line ]] && problems+=("the guest ended without a result (see its kernel log below)")
[[ -n $guest_rc && $guest_rc != 0 ]] && problems+=("guest-test.sh exited with $guest_rc")
# Point 4's partition is only a reinstatement test if the target really reinstated: the new
# login must have found the old session alive and ended it (ringtgt logs that at info level).
# (grep reads all of sed's output here, so that sed cannot fail of SIGPIPE: see the ldd check.)
if ((PARTITIONED)) && ! sed -n '/^==== partition:/,/^==== partition healed/p' "$OUT/ringtgt.log" |
    grep 'reinstating session' >/dev/null; then
    VERDICT[4]=FAIL
    problems+=("point 4: the target did not reinstate the session after the partition (its log \
has no 'reinstating session')")
fi
# Point 8's graceful stop is judged on the target's side here: exit status 0, the logout.
if ((!STOPPED)) && selected 8; then
    VERDICT[8]=FAIL
    problems+=("point 8: the guest never asked for the graceful stop")
elif [[ -n $STOP_PROBLEM ]]; then
    VERDICT[8]=FAIL
    problems+=("point 8: $STOP_PROBLEM")
fi
# ringtgt logs at error level only for its own faults (DESIGN.md §6): any is a failure here.
# Point 6's daemon must never have logged a secret, whatever the initiator sent.
for secret in "$CHAP_SECRET" "$MUTUAL_SECRET" "$DISCOVERY_SECRET"; do
    if grep -aqF "$secret" "$OUT/ringtgt-chap.log"; then
        VERDICT[6]=FAIL
        problems+=("point 6: a CHAP secret appears in ringtgt's log")
    fi
done
# Point 7 is only a failover test if the host really cut the path.
if ((!PATHCUT)) && [[ ${VERDICT[7]} == PASS ]]; then
    VERDICT[7]=FAIL
    problems+=("point 7: the guest never asked the host to cut the active/optimized path")
fi
# Point 9 is skipped only where the host cannot run it, and fails when its cluster did not start.
if [[ ${VERDICT[9]} == SKIPPED && -z $RBD_SKIP ]] && selected 9; then
    VERDICT[9]=FAIL
    problems+=("point 9: the guest skipped the RBD LUN although the host set it up")
fi
if [[ ${VERDICT[10]} == SKIPPED && -z $RBD_SKIP ]] && selected 10; then
    VERDICT[10]=FAIL
    problems+=("point 10: the guest skipped the two gateways although the host set them up")
fi
if [[ -n $RBD_PROBLEM ]]; then
    VERDICT[9]=FAIL VERDICT[10]=FAIL
    problems+=("points 9 and 10: $RBD_PROBLEM")
fi
# A point that was not selected must not have run, and one that was must not be skipped as such.
for p in "${POINTS[@]}"; do
    if selected "$p"; then
        if grep -aq "^RESULT point $p: SKIPPED .*(not selected)" "$OUT/console.log"; then
            VERDICT[$p]=FAIL
            problems+=("point $p: the guest skipped it as not selected, but it was")
        fi
    elif grep -aq "^RESULT point $p: \(PASS\|FAIL\)" "$OUT/console.log"; then
        problems+=("point $p: it was not selected, but the guest ran it")
        VERDICT[$p]=FAIL
    else # (no result at all: the guest ended early, which is reported above)
        VERDICT[$p]=SKIPPED
    fi
done
# Point 10 is a failover test only if the owner really died, and a takeover only if gateway B
# says it took the image's lock over; A held it, and a killed A cannot give it back, so B must
# have broken it (librbd blocklists A first).
if [[ ${VERDICT[10]} == PASS ]]; then
    if ((!GWKILLED)); then
        VERDICT[10]=FAIL
        problems+=("point 10: the guest never had gateway A killed")
    elif sed '/^==== gwkill/q' "$OUT/ringtgt-gwb.log" | grep "taking the images' locks over" >/dev/null; then
        VERDICT[10]=FAIL
        problems+=("point 10: gateway B took the lock over before A was killed (see its log)")
    elif ! grep -q "taking the images' locks over" "$OUT/ringtgt-gwb.log" ||
        ! grep -q "broke the lock of the previous owner" "$OUT/ringtgt-gwb.log"; then
        VERDICT[10]=FAIL
        problems+=("point 10: gateway B's log does not say it took the lock over and broke A's \
('taking the images' locks over', 'broke the lock of the previous owner')")
    fi
fi
logs=("$OUT/ringtgt.log" "$OUT/ringtgt-chap.log" "$OUT/ringtgt-mpath.log")
for name in rbd gwa gwb; do
    [[ -f $OUT/ringtgt-$name.log ]] && logs+=("$OUT/ringtgt-$name.log")
done
if grep -a ' ERROR ' "${logs[@]}" >"$OUT/ringtgt-errors.log"; then
    problems+=("ringtgt logged errors: $(wc -l <"$OUT/ringtgt-errors.log") lines, see below")
fi
passed=0 skipped=()
for p in "${POINTS[@]}"; do
    [[ ${VERDICT[$p]} == PASS ]] && passed=$((passed + 1))
    [[ ${VERDICT[$p]} == SKIPPED ]] && skipped+=("$p")
done
failed=$((${#POINTS[@]} - passed - ${#skipped[@]}))
((failed)) && problems+=("$failed of ${#POINTS[@]} points did not pass")
summary="$passed passed, $failed failed"
if ((${#skipped[@]})); then
    summary+=", ${#skipped[@]} skipped (point"
    ((${#skipped[@]} > 1)) && summary+=s
    summary+=" ${skipped[*]}"
    [[ -n $RBD_SKIP ]] && { selected 9 || selected 10; } && summary+="; points 9 and 10: $RBD_SKIP"
    [[ -n ${RINGTGT_VM_POINTS:-} ]] && summary+="; RINGTGT_VM_POINTS=\"$RINGTGT_VM_POINTS\""
    summary+=")"
fi

echo
say "guest ran ${GUEST_TIME}s under $ACCEL; results in $OUT"
for p in "${POINTS[@]}"; do
    title=$(grep -a "^RESULT point $p: " "$OUT/console.log" | head -n1 | sed 's/^[^-]*- //')
    say "point $p: ${VERDICT[$p]}${title:+ - $title}"
done
if grep -aq ' WARN ' "$OUT/ringtgt.log"; then
    say "ringtgt warnings (not failures):"
    grep -a ' WARN ' "$OUT/ringtgt.log" | tail -n 20 | sed 's/^/vm:   /'
fi
# Point 10's takeover as gateway B saw it (timestamps: how long it took after the kill).
if grep -aq '^==== gwkill' "$OUT/ringtgt-gwb.log" 2>/dev/null; then
    say "point 10, gateway B's log from the kill of A:"
    sed -n '/^==== gwkill/,$p' "$OUT/ringtgt-gwb.log" |
        grep -aE "gwkill|locks over|broke the lock|port group state|failed" | head -n 12 | sed 's/^/vm:   /'
fi
if ((${#problems[@]})); then
    echo
    echo "==== guest kernel log (dmesg) ===================================================="
    cat "$OUT/dmesg.log" 2>/dev/null || true
    echo "==== qemu ======================================================================="
    cat "$OUT/qemu.log" 2>/dev/null || true
    echo "==== ringtgt log (last 200 lines of $OUT/ringtgt.log) ==========================="
    tail -n 200 "$OUT/ringtgt.log"
    if [[ ${VERDICT[7]} != PASS ]]; then
        echo "==== multipath ringtgt log (last 100 lines of $OUT/ringtgt-mpath.log) ============"
        tail -n 100 "$OUT/ringtgt-mpath.log"
    fi
    if [[ ${VERDICT[9]} == FAIL || ${VERDICT[10]} == FAIL ]]; then
        echo "==== points 9 and 10's set-up ($OUT/ceph-up.log; the cluster's logs in $OUT/ceph-log) ======"
        cat "$OUT/ceph-up.log" 2>/dev/null || true
        echo "==== RBD ringtgt log (last 100 lines of $OUT/ringtgt-rbd.log) ===================="
        tail -n 100 "$OUT/ringtgt-rbd.log" 2>/dev/null || true
    fi
    if [[ ${VERDICT[10]} == FAIL ]]; then
        for name in gwa gwb; do
            gw=${name#gw}
            echo "==== gateway ${gw^^} log (last 60 lines of $OUT/ringtgt-$name.log) =================="
            tail -n 60 "$OUT/ringtgt-$name.log" 2>/dev/null || true
        done
    fi
    if [[ -s $OUT/ringtgt-errors.log ]]; then
        echo "==== ringtgt ERROR lines ======================================================="
        cat "$OUT/ringtgt-errors.log"
    fi
    echo
    for p in "${problems[@]}"; do say "FAILED: $p"; done
    echo "linux-initiator: $summary"
    exit 1
fi
# The LUN file, the NVMe namespace and the cluster's logs are only worth keeping to look at a
# failure.
rm -f "$OUT/lun0.img" "$OUT/nvme.img" "$OUT/nvme-md.img"
CEPH_LOG_KEEP=0
echo "linux-initiator: $summary"
