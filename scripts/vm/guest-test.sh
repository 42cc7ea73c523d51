#!/bin/bash
# Runs inside the harness's guest (stock Debian kernel, open-iscsi, fio, multipath-tools) against
# the ringtgts that run.sh started on the host. It checks the five points of the Linux-initiator
# issue, CHAP (point 6), multipath through two ALUA port groups (point 7), a graceful target
# stop (point 8), a Ceph RBD LUN (point 9), two gateways of one RBD image with the owner
# killed during fio (point 10) and an NVMe namespace exported through io_uring NVMe passthrough
# by a ringtgt that runs in the guest itself (point 11), printing every initiator command with
# its own output, and ends with one "RESULT point N: PASS|FAIL|SKIPPED" line per point (SKIPPED:
# points 9 and 10 where the host has no RBD support, RBD_SKIP; any point not in SELECTED_POINTS,
# "not selected"). Its exit status is the number of failed points (0 = all passed).
#
# It talks to run.sh through the serial console: a line "@@ringtgt-vm: host ACTION@@" asks the
# host to act on the target's side. Point 4: partition = black-hole the session's connection,
# heal = lift that, cut = destroy the target's TCP connections, restart = kill ringtgt and start
# it again on the same LUN file. Point 7: pathcut = black-hole the multipath target's
# active/optimized portal, pathheal = open it again. Point 8: stop = stop ringtgt with SIGTERM,
# as systemctl stop does, and start it again. Point 10: gwkill = kill gateway A, the owner of
# the image's lock (SIGKILL). Point 9 asks nothing: the host starts the RBD target and the two
# gateways once its Ceph cluster is up, and the guest waits for their portals. Point 11 asks
# nothing either: its ringtgt (bin/ and lib/ beside this script) and its NVMe controller are the
# guest's own. The parameters come from params.env beside this script (written by run.sh).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
. "$HERE/params.env"

PORTAL=$TARGET_IP:$TARGET_PORT
START=$SECONDS
declare -A POINT_OK=([1]=1 [2]=1 [3]=1 [4]=1 [5]=1 [6]=1 [7]=1 [8]=1 [9]=1 [10]=1 [11]=1)
declare -A POINT_SKIP=() # point -> why it was not run
POINT_NAME=(
    [1]="discovery, login, LUN identity"
    [2]="fio verify (4 KiB random, 1 MiB sequential, iodepth 32)"
    [3]="ext4: mkfs, files, e2fsck -fn, remount (CRC32C digests from here), checksums"
    [4]="partition (reinstatement), connection cut, target restart during fio writes"
    [5]="clean logout, no errors in dmesg"
    [6]="CHAP: discovery, one-way and mutual with every algorithm, wrong secrets refused"
    [7]="multipath: one map of two ALUA paths, fio verify across a cut of the optimized path, heal"
    [8]="target stop (SIGTERM) during fio writes: logout on request, login when it is back"
    [9]="RBD LUN: fio verify (4 KiB + 64 KiB random writes) on a Ceph image, verified again after a re-login"
    [10]="two gateways of one RBD image: multipath by ALUA, the owner killed during fio, writes carry on through the other, verify"
    [11]="NVMe passthrough LUN: a namespace's data through iSCSI, fio verify, UNMAP, written data on the namespace, held exclusively, live add/remove, metadata refused"
)

say() { echo "guest[$((SECONDS - START))s]: $*"; }
fail() { # fail POINT MESSAGE
    POINT_OK[$1]=0
    echo "guest: FAIL (point $1): $2"
}
# selected N: whether point N is to run (SELECTED_POINTS, from run.sh's RINGTGT_VM_POINTS).
selected() { [[ " ${SELECTED_POINTS:-1 2 3 4 5 6 7 8 9 10 11} " == *" $1 "* ]]; }
# section N: the header of point N; a point not selected is marked SKIPPED, and section fails.
section() {
    echo
    if ! selected "$1"; then
        POINT_SKIP[$1]="not selected"
        echo "======== point $1: ${POINT_NAME[$1]}: not selected (RINGTGT_VM_POINTS), skipped"
        return 1
    fi
    echo "======== point $1: ${POINT_NAME[$1]}"
}

# run CMD...: prints the command and its whole output, indented, and returns its status.
run() {
    echo "+ [$((SECONDS - START))s] $*"
    "$@" 2>&1 | sed -u 's/^/  | /'
    return "${PIPESTATUS[0]}"
}
# runo FILE CMD...: as run, and also keeps the output in FILE for the checks.
runo() {
    local file=$1
    shift
    echo "+ [$((SECONDS - START))s] $*"
    "$@" >"$file" 2>&1
    local rc=$?
    sed 's/^/  | /' "$file"
    return $rc
}

# /dev/sdX of LUN $1 of the (single) iSCSI session, from sysfs: H:C:T:L names the SCSI device.
lun_dev() {
    local d
    for d in /sys/class/scsi_disk/*:0:0:"$1"/device/block/*; do
        if [[ -e $d && -b /dev/${d##*/} ]]; then
            echo "/dev/${d##*/}"
            return 0
        fi
    done
    return 1
}
wait_lun() { # wait_lun LUN: up to 20 s for its block device
    local i
    for ((i = 0; i < 200; i++)); do
        lun_dev "$1" >/dev/null && return 0
        sleep 0.1
    done
    return 1
}

session_state() { # "SESSION-STATE/CONNECTION-STATE" of the session, e.g. LOGGED_IN/LOGGED IN
    local out
    out=$(iscsiadm -m session -P 1 2>/dev/null) || return 1
    echo "$(sed -n 's/.*iSCSI Session State: //p' <<<"$out" | head -n1)/$(
        sed -n 's/.*iSCSI Connection State: //p' <<<"$out" | head -n1)"
}
session_id() { iscsiadm -m session 2>/dev/null | sed -n 's/^tcp: \[\([0-9]*\)\].*/\1/p' | head -n1; }

dmesg_mark() { dmesg | wc -l; }
dmesg_since() { dmesg | tail -n +$(($1 + 1)); }

# Debian 6.1's scsi_transport_iscsi sometimes WARNs (check_flush_dependency) while a logged-out
# session's SCSI target is removed: its WQ_MEM_RECLAIM workqueue flushes PM-runtime work. That is
# the initiator kernel's own teardown bookkeeping, whatever the target sent, and it shows in some
# runs only. Exactly that splat is dropped; every other warning still fails the run.
drop_known_kernel_splats() {
    awk '/-+\[ cut here \]-+/ { inblk = 1; blk = $0 "\n"; next }
         inblk {
             blk = blk $0 "\n"
             if ($0 ~ /---\[ end trace/) {
                 if (!(blk ~ /check_flush_dependency/ && blk ~ /__iscsi_unbind_session/)) printf "%s", blk
                 inblk = 0
             }
             next
         }
         { print }
         END { if (inblk) printf "%s", blk }'
}

# no_failed_io POINT MARK WHEN: fails POINT if the kernel failed I/O since dmesg line MARK.
# Connection errors are expected around a disruption; I/O errors are not: nothing may have
# failed up to the application.
no_failed_io() {
    local bad='I/O error|blk_update_request|session recovery timed out|rejecting I/O|FAILED Result'
    if dmesg_since "$2" | grep -E "$bad" >"/tmp/p$1-bad.txt"; then
        fail "$1" "the kernel failed I/O $3:"
        sed 's/^/  | /' "/tmp/p$1-bad.txt"
    fi
}

login() { # login POINT: logs in and waits for both LUNs
    local out=/tmp/login.txt
    if ! runo "$out" timeout 60 iscsiadm -m node -T "$TARGET_IQN" -p "$PORTAL" --login; then
        fail "$1" "iscsiadm --login failed"
        return 1
    fi
    grep -q "Login to .*$TARGET_IQN.* successful" "$out" || fail "$1" "no 'Login ... successful' line"
    local lun
    for lun in 0 1; do
        wait_lun "$lun" || { fail "$1" "LUN $lun did not appear as a block device within 20 s"; return 1; }
    done
    say "LUN 0 = $(lun_dev 0), LUN 1 = $(lun_dev 1)"
}
logout() { # logout POINT
    local out=/tmp/logout.txt
    if ! runo "$out" timeout 60 iscsiadm -m node -T "$TARGET_IQN" -p "$PORTAL" --logout; then
        fail "$1" "iscsiadm --logout failed"
        return 1
    fi
    grep -q "Logout of .*$TARGET_IQN.* successful" "$out" || fail "$1" "no 'Logout ... successful' line"
}

# fio_run POINT FILE ARGS...: one fio job at iodepth 32 on O_DIRECT with crc32c verification;
# output kept in FILE. Fails the point on a non-zero exit or any reported error.
fio_run() {
    local point=$1 file=$2
    shift 2
    if ! runo "$file" timeout "$FIO_TIMEOUT" fio --direct=1 --ioengine=libaio --iodepth=32 \
        --verify=crc32c --verify_fatal=1 --randrepeat=1 --group_reporting "$@"; then
        fail "$point" "fio failed (exit status above; 124 = timed out after ${FIO_TIMEOUT}s)"
        return 1
    fi
    if grep -E 'err= *[1-9]|verify: |bad magic|crc32c: verify failed' "$file" >/dev/null; then
        fail "$point" "fio reported an error or a verify mismatch"
        return 1
    fi
}
# io_total FILE READ|WRITE: the io= total of fio's "Run status" line, e.g. 64.0MiB
io_total() { sed -n "s/^ *$2: .*io=\([^ ,]*\).*/\1/p" "$1" | head -n1; }
# writes_done DEV, reads_done DEV: writes (reads) completed on DEV so far (/sys/block/X/stat).
writes_done() { awk '{print $5}' "/sys/block/${1#/dev/}/stat"; }
reads_done() { awk '{print $1}' "/sys/block/${1#/dev/}/stat"; }

# ---------------------------------------------------------------------------------------------
say "setting up: network $GUEST_IP -> $PORTAL, iscsid"
modprobe -a virtio_net iscsi_tcp sd_mod || { echo "guest: modprobe failed"; exit 99; }
ip link set lo up
for ((i = 0; i < 50; i++)); do [[ -e /sys/class/net/eth0 ]] && break; sleep 0.1; done
if ! ip addr add "$GUEST_IP/24" dev eth0 || ! ip link set eth0 up; then
    echo "guest: cannot configure eth0"
    ip link
    exit 99
fi

echo "InitiatorName=$INITIATOR_IQN" >/etc/iscsi/initiatorname.iscsi
# Initiator settings point 4 relies on, stated even where they are Debian's defaults: queue I/O
# across a lost connection for up to 120 s (replacement_timeout) rather than fail it, and send
# a NOP-Out every 5 s with a 5 s timeout, which is how a silent connection is noticed. Node
# records copy these at discovery, so this comes before discovery.
sed -i -e '/^node.session.timeo.replacement_timeout/d' -e '/^node.conn\[0\].timeo.noop_out_/d' \
    -e 's/^node.startup.*/node.startup = manual/' /etc/iscsi/iscsid.conf
cat >>/etc/iscsi/iscsid.conf <<'EOF'
node.session.timeo.replacement_timeout = 120
node.conn[0].timeo.noop_out_interval = 5
node.conn[0].timeo.noop_out_timeout = 5
EOF
mkdir -p /run/lock/iscsi /var/lib/iscsi
iscsid || { echo "guest: iscsid did not start"; exit 99; }
for ((i = 0; i < 50; i++)); do [[ -s /run/iscsid.pid ]] && break; sleep 0.1; done

# ---------------------------------------------------------------------------------------------
run_mark=$(dmesg_mark) # the whole-run dmesg check (point 5) starts here, after boot
if section 1; then
    out=/tmp/discovery.txt
    if runo "$out" timeout 60 iscsiadm -m discovery -t sendtargets -p "$PORTAL"; then
        grep -q "^$PORTAL,[0-9]* $TARGET_IQN\$" "$out" ||
            fail 1 "discovery did not list '$PORTAL,<tpgt> $TARGET_IQN'"
    else
        fail 1 "iscsiadm discovery failed"
    fi
    mark=$(dmesg_mark)
    if login 1; then
        run iscsiadm -m session -P 3 | head -n 60
        echo "+ dmesg (since login)"
        dmesg_since "$mark" | sed 's/^/  | /'
        for lun in 0 1; do
            dev=$(lun_dev "$lun")
            name=${dev#/dev/}
            v=LUN${lun}_SIZE && want_size=${!v}
            v=LUN${lun}_BS && want_bs=${!v}
            v=LUN${lun}_SERIAL && want_serial=${!v}
            echo "---- LUN $lun ($dev): want $want_size bytes, $want_bs-byte blocks, serial $want_serial"
            run sg_inq "$dev"
            runo /tmp/sn.txt sg_inq -p 0x80 "$dev"
            runo /tmp/cap.txt sg_readcap --long "$dev"
            size=$(blockdev --getsize64 "$dev")
            bs=$(blockdev --getss "$dev")
            vendor=$(tr -d ' ' </sys/block/"$name"/device/vendor)
            echo "  sysfs/blockdev: size=$size logical_block_size=$bs vendor=$vendor" \
                "model=$(cat /sys/block/"$name"/device/model) rev=$(cat /sys/block/"$name"/device/rev)"
            [[ $size == "$want_size" ]] || fail 1 "LUN $lun: size $size, want $want_size"
            [[ $bs == "$want_bs" ]] || fail 1 "LUN $lun: logical block size $bs, want $want_bs"
            [[ $(cat /sys/block/"$name"/queue/logical_block_size) == "$want_bs" ]] ||
                fail 1 "LUN $lun: sysfs logical_block_size differs"
            [[ $vendor == "$LUN_VENDOR" ]] || fail 1 "LUN $lun: vendor '$vendor', want '$LUN_VENDOR'"
            grep -q "Unit serial number: *$want_serial\$" /tmp/sn.txt ||
                fail 1 "LUN $lun: sg_inq -p 0x80 does not show serial $want_serial"
            grep -q "Logical block length=$want_bs bytes" /tmp/cap.txt ||
                fail 1 "LUN $lun: sg_readcap block length is not $want_bs"
            grep -q "Number of logical blocks=$((want_size / want_bs))\$" /tmp/cap.txt ||
                fail 1 "LUN $lun: sg_readcap block count is not $((want_size / want_bs))"
        done
    fi
fi

# ---------------------------------------------------------------------------------------------
section 2
# Random 4 KiB writes over the 4 KiB-sector block-device LUN, then 1 MiB sequential writes over the file
# LUN; each job writes its whole size, then reads every block back and checks its crc32c.
if ! selected 2; then
    : # not selected (section says so)
elif dev1=$(lun_dev 1) && dev0=$(lun_dev 0); then
    for job in "rand4k $dev1 --rw=randwrite --bs=4k --size=$FIO_RAND_SIZE" \
        "seq1m $dev0 --rw=write --bs=1M --size=$FIO_SEQ_SIZE"; do
        read -r name dev args <<<"$job"
        # shellcheck disable=SC2086 # args is a word list on purpose
        if fio_run 2 "/tmp/fio-$name.txt" --name="$name" --filename="$dev" --do_verify=1 $args; then
            w=$(io_total "/tmp/fio-$name.txt" WRITE)
            r=$(io_total "/tmp/fio-$name.txt" READ)
            say "$name: wrote $w, verified $r"
            [[ -n $w && $w == "$r" ]] || fail 2 "$name: verified $r of the $w written"
        fi
    done
else
    fail 2 "LUNs not attached"
fi

# ---------------------------------------------------------------------------------------------
section 3
# On LUN 1 (4 KiB sectors). Between unmount and remount the session is logged out and in again,
# so e2fsck and the checksums read what the target stored, not the guest's caches.
if ! selected 3; then
    : # not selected (section says so)
elif dev=$(lun_dev 1); then
    mkdir -p /mnt/p3
    if run mkfs.ext4 -F -q -L ringtgt-p3 "$dev" && run mount -t ext4 "$dev" /mnt/p3; then
        say "writing files"
        mkdir -p /mnt/p3/small
        for ((i = 0; i < 64; i++)); do
            head -c $((i * 397 + 1)) /dev/urandom >/mnt/p3/small/f$i
        done
        for size in 1 3 8 16; do
            head -c $((size << 20)) /dev/urandom >/mnt/p3/big-$size
        done
        (cd /mnt/p3 && find . -type f ! -name sums | sort | xargs sha256sum) >/tmp/p3.sums
        cp /tmp/p3.sums /mnt/p3/sums
        say "$(wc -l </tmp/p3.sums) files, $(du -sh /mnt/p3 | cut -f1)"
        run umount /mnt/p3 || fail 3 "umount failed"
        logout 3
        # From here on (the rest of point 3, points 4 and 5) the session also runs with CRC32C
        # header and data digests, so both ways of framing PDUs meet the real initiator.
        for key in HeaderDigest DataDigest; do
            iscsiadm -m node -T "$TARGET_IQN" -p "$PORTAL" -o update \
                -n "node.conn[0].iscsi.$key" -v CRC32C || fail 3 "cannot set $key in the node record"
        done
        login 3
        iscsiadm -m session -P 2 | grep -E 'HeaderDigest|DataDigest' | sed 's/^\s*/  | /'
        [[ $(iscsiadm -m session -P 2 | grep -cE '(Header|Data)Digest: CRC32C') == 2 ]] ||
            fail 3 "the re-login did not negotiate CRC32C digests"
        dev=$(lun_dev 1) || fail 3 "LUN 1 missing after re-login"
        run e2fsck -fn "$dev" || fail 3 "e2fsck -fn $dev is not clean"
        if run mount -t ext4 "$dev" /mnt/p3; then
            (cd /mnt/p3 && run sha256sum --quiet -c /tmp/p3.sums) ||
                fail 3 "checksums differ after remount"
            cmp -s /tmp/p3.sums /mnt/p3/sums || fail 3 "the stored checksum file differs"
            run umount /mnt/p3 || fail 3 "second umount failed"
        else
            fail 3 "remount failed"
        fi
    else
        fail 3 "mkfs.ext4 or mount failed"
    fi
else
    fail 3 "LUN 1 not attached"
fi

# ---------------------------------------------------------------------------------------------
section 4
# Three disruptions, each while a fio job writes 4 KiB blocks at random (iodepth 32, every block
# carrying its crc32c) over its own region of the file LUN:
#   partition  the host black-holes the session's TCP connection in both directions: the
#              initiator notices by its NOP-Out timeout and logs in again on a new connection
#              while the target still holds the old session (ISID reinstatement, RFC 7143 §6.3.5)
#   cut        the host destroys the target's TCP sockets (ss -K): both sides see the reset
#   restart    the host kills ringtgt (SIGKILL) and starts it again on the same LUN file
# Writes in flight, and those queued while the session is down, must be retried by the
# initiator after it logs in again; nothing may fail up to fio. Then every block of every region
# is read back through the session that survived all three (from the restarted daemon, which
# reads the LUN file with O_DIRECT) and verified.
ACTIONS=(partition cut restart)
# Region size: about 4 s of writing at the speed point 2 measured (so the disruption, started
# once 1/8 of the region is written, always lands mid-write), within 32..160 MiB.
iops=$(sed -n 's/^ *write: IOPS=\([0-9.k]*\),.*/\1/p' /tmp/fio-rand4k.txt 2>/dev/null | head -n1)
[[ $iops == *k ]] && iops=$(awk "BEGIN{print int(${iops%k} * 1000)}")
iops=${iops%%.*}
region_mib=$((${iops:-2000} * 4 * 4 / 1024))
((region_mib < 32)) && region_mib=32
((region_mib > 160)) && region_mib=160
selected 4 && say "write regions of ${region_mib} MiB (point 2 wrote ${iops:-?} IOPS)"

# p4_args N: the fio arguments of region N (the same for writing and for verify_only).
p4_args() { echo "--name=p4r$1 --rw=randwrite --bs=4k --offset=$(($1 * region_mib))M --size=${region_mib}M"; }

if ! selected 4; then
    : # not selected (section says so)
elif dev=$(lun_dev 0); then
    sid_before=$(session_id)
    p4_mark=$(dmesg_mark)
    regions=0
    for n in "${!ACTIONS[@]}"; do
        action=${ACTIONS[$n]}
        dev=$(lun_dev 0) || { fail 4 "LUN 0 gone before the $action"; break; }
        # shellcheck disable=SC2207
        args=($(p4_args "$n"))
        echo "---- $action: fio ${args[*]} on $dev"
        w0=$(writes_done "$dev")
        timeout "$FIO_TIMEOUT" fio --direct=1 --ioengine=libaio --iodepth=32 --verify=crc32c \
            --verify_fatal=1 --randrepeat=1 --group_reporting --do_verify=0 --filename="$dev" \
            "${args[@]}" >"/tmp/fio-p4-$action.txt" 2>&1 &
        fio_pid=$!
        # Start the disruption once an eighth of the region is written.
        for ((i = 0; i < 300; i++)); do
            (($(writes_done "$dev") - w0 >= region_mib * 32)) && break
            kill -0 "$fio_pid" 2>/dev/null || break
            sleep 0.1
        done
        mark=$(dmesg_mark)
        t0=$SECONDS
        if ! kill -0 "$fio_pid" 2>/dev/null; then
            fail 4 "fio ended before the $action could start:"
            sed 's/^/  | /' "/tmp/fio-p4-$action.txt"
            break
        fi
        say "asking the host to $action the target's connection ($(($(writes_done "$dev") - w0)) writes done)"
        echo "@@ringtgt-vm: host $action@@"
        for ((i = 0; i < 300; i++)); do
            dmesg_since "$mark" | grep -q 'detected conn error' && break
            sleep 0.1
        done
        if ! dmesg_since "$mark" | grep -q 'detected conn error'; then
            fail 4 "the initiator saw no connection error within 30 s of the $action"
            break
        fi
        kill -0 "$fio_pid" 2>/dev/null || fail 4 "fio had already finished when the connection failed"
        say "initiator detected the failure after $((SECONDS - t0))s; waiting for it to log in again"
        for ((i = 0; i < 1200; i++)); do
            [[ $(session_state) == "LOGGED_IN/LOGGED IN" ]] && break
            sleep 0.1
        done
        state=$(session_state)
        say "session state: $state, $((SECONDS - t0))s after the $action"
        [[ $action == partition ]] && echo "@@ringtgt-vm: host heal@@"
        echo "+ dmesg (since the $action)"
        dmesg_since "$mark" | sed 's/^/  | /'
        [[ $state == "LOGGED_IN/LOGGED IN" ]] || { fail 4 "the session did not recover after the $action"; break; }
        wait "$fio_pid"
        rc=$?
        echo "+ fio write phase across the $action: exit status $rc"
        sed 's/^/  | /' "/tmp/fio-p4-$action.txt"
        if [[ $rc != 0 ]] || grep -E 'err= *[1-9]' "/tmp/fio-p4-$action.txt" >/dev/null; then
            fail 4 "fio's writes failed across the $action"
            break
        fi
        regions=$((n + 1))
    done
    [[ $(session_id) == "$sid_before" ]] ||
        fail 4 "the initiator replaced its session (sid $sid_before -> $(session_id)) instead of recovering it"
    # One fio run per region, with the arguments that wrote it: fio derives the expected
    # offsets and seeds from its job, so a region is verified exactly as it was written.
    verify_regions() { # verify_regions WHERE
        local n got args
        dev=$(lun_dev 0) || { fail 4 "LUN 0 missing for the verify ($1)"; return; }
        for ((n = 0; n < regions; n++)); do # the regions whose write phase completed
            # shellcheck disable=SC2207
            args=($(p4_args "$n"))
            fio_run 4 "/tmp/fio-p4-verify-$n.txt" --filename="$dev" --verify_only "${args[@]}" || continue
            got=$(io_total "/tmp/fio-p4-verify-$n.txt" READ)
            say "region $n (${ACTIONS[$n]}): verified $got of ${region_mib}MiB written, $1"
            [[ $got == "${region_mib}MiB" || $got == "${region_mib}.0MiB" ]] ||
                fail 4 "region $n: verify read back $got, want ${region_mib}MiB ($1)"
        done
    }
    if kill -0 "${fio_pid:-0}" 2>/dev/null; then # left running by a failed disruption
        kill "$fio_pid"
        wait "$fio_pid"
    fi
    verify_regions "in the recovered session"
    # The restarted target reports a power-on unit attention on each LUN's first command (SAM-5).
    # LUN 1 had none since the restart: read it here, where resets are expected, so that the
    # kernel's "Power-on or device reset occurred" for it is not first seen at logout (point 5).
    for lun in 0 1; do
        dev=$(lun_dev "$lun") && run dd if="$dev" of=/dev/null bs=4096 count=1 iflag=direct status=none
    done
    no_failed_io 4 "$p4_mark" "during the disruptions"
else
    fail 4 "LUN 0 not attached"
fi

# ---------------------------------------------------------------------------------------------
# The target is stopped as `systemctl stop` does (SIGTERM) while fio writes, and started again
# 2 s after it exited. It asks the initiator to log out (Async Message); open-iscsi does, queues
# the I/O meanwhile and recovers the same session once the target is back. The host checks its
# side (ringtgt exited 0, its log has the logout); here: the session recovered, fio's writes all
# completed and read back intact, and the kernel failed no I/O.
section 8
if ! selected 8; then
    : # not selected (section says so)
elif dev=$(lun_dev 0); then
    # The last 16 MiB of LUN 0, which point 4's regions (at most 3 x 160 MiB) never reach; about
    # 10 s of writing at 400 IOPS, so the stop (2 s in) and the restart land mid-write.
    p7_args=(--name=p7 --rw=randwrite --bs=4k --offset=$(((LUN0_SIZE >> 20) - 16))M --size=16M)
    sid_before=$(session_id)
    mark=$(dmesg_mark)
    echo "---- stop: fio ${p7_args[*]} --rate_iops=400 on $dev"
    timeout "$FIO_TIMEOUT" fio --direct=1 --ioengine=libaio --iodepth=8 --rate_iops=400 \
        --verify=crc32c --verify_fatal=1 --randrepeat=1 --group_reporting --do_verify=0 \
        --filename="$dev" "${p7_args[@]}" >/tmp/fio-p7.txt 2>&1 &
    fio_pid=$!
    sleep 2
    t0=$SECONDS
    say "asking the host to stop ringtgt (SIGTERM) and start it again"
    echo "@@ringtgt-vm: host stop@@"
    for ((i = 0; i < 300; i++)); do
        [[ $(session_state) != "LOGGED_IN/LOGGED IN" ]] && break
        sleep 0.1
    done
    state=$(session_state)
    say "session state: $state, $((SECONDS - t0))s after the stop"
    [[ $state != "LOGGED_IN/LOGGED IN" ]] || fail 8 "the session was still logged in 30 s after the stop"
    for ((i = 0; i < 600; i++)); do
        [[ $(session_state) == "LOGGED_IN/LOGGED IN" ]] && break
        sleep 0.1
    done
    state=$(session_state)
    say "session state: $state, $((SECONDS - t0))s after the stop"
    [[ $state == "LOGGED_IN/LOGGED IN" ]] || fail 8 "the session did not log in again once the target was back"
    [[ $(session_id) == "$sid_before" ]] ||
        fail 8 "the initiator replaced its session (sid $sid_before -> $(session_id)) instead of recovering it"
    wait "$fio_pid"
    rc=$?
    echo "+ fio write phase across the stop: exit status $rc"
    sed 's/^/  | /' /tmp/fio-p7.txt
    if [[ $rc != 0 ]] || grep -E 'err= *[1-9]' /tmp/fio-p7.txt >/dev/null; then
        fail 8 "fio's writes failed across the stop"
    elif dev=$(lun_dev 0); then
        fio_run 7 /tmp/fio-p7-verify.txt --filename="$dev" --verify_only "${p7_args[@]}" &&
            say "verified $(io_total /tmp/fio-p7-verify.txt READ) written across the stop"
    else
        fail 8 "LUN 0 missing after the stop"
    fi
    # LUN 1 serves again too. (The restarted target reports a power-on to each unit's first
    # command: LUN 1 takes it here rather than at point 5's logout.)
    if dev1=$(lun_dev 1); then
        run dd if="$dev1" of=/dev/null bs=4k count=1 iflag=direct status=none ||
            fail 8 "LUN 1 cannot be read after the stop"
    else
        fail 8 "LUN 1 missing after the stop"
    fi
    echo "+ dmesg (since the stop)"
    dmesg_since "$mark" | sed 's/^/  | /'
    no_failed_io 8 "$mark" "across the stop"
else
    fail 8 "LUN 0 not attached"
fi

# ---------------------------------------------------------------------------------------------
# Point 6 runs before point 5, so that point 5's checks (no session left, a clean dmesg) cover it.
section 6
CPORTAL=$TARGET_IP:$CHAP_PORT
disc_set() { iscsiadm -m discoverydb -t sendtargets -p "$CPORTAL" -o update -n "$1" -v "$2" >/dev/null; }
node_set() { iscsiadm -m node -T "$1" -p "$CPORTAL" -o update -n "$2" -v "$3" >/dev/null; }
disks() { ls /sys/class/scsi_disk/ 2>/dev/null | sort; }

# chap_login IQN ALG SECRET [TARGET_USER TARGET_SECRET]: logs in with CHAP restricted to ALG
# (mutual when the target's credentials are given); returns iscsiadm's status.
chap_login() {
    local iqn=$1 alg=$2 secret=$3 tuser=${4:-} tsecret=${5:-}
    node_set "$iqn" node.session.auth.authmethod CHAP
    node_set "$iqn" node.session.auth.username "$CHAP_USER"
    node_set "$iqn" node.session.auth.password "$secret"
    node_set "$iqn" node.session.auth.username_in "$tuser"
    node_set "$iqn" node.session.auth.password_in "$tsecret"
    node_set "$iqn" node.session.auth.chap_algs "$alg"
    run timeout 60 iscsiadm -m node -T "$iqn" -p "$CPORTAL" --login
}
# chap_io POINT IQN WHAT: the login added one disk; read from it, then log out.
chap_io() {
    local before=$1 iqn=$2 what=$3 added disk i
    # (No process substitution: the guest has no /dev/fd.)
    echo "$before" >/tmp/disks-before.txt
    for ((i = 0; i < 100; i++)); do
        disks >/tmp/disks-now.txt
        added=$(comm -13 /tmp/disks-before.txt /tmp/disks-now.txt | head -n1)
        [[ -n $added ]] && break
        sleep 0.1
    done
    disk=$(ls "/sys/class/scsi_disk/$added/device/block/" 2>/dev/null | head -n1)
    if [[ -z $disk ]]; then
        fail 6 "$what: no disk appeared"
    elif ! run dd if="/dev/$disk" of=/dev/null bs=1M count=4 iflag=direct status=none; then
        fail 6 "$what: reading /dev/$disk failed"
    fi
    run timeout 60 iscsiadm -m node -T "$iqn" -p "$CPORTAL" --logout || fail 6 "$what: logout failed"
}

if selected 6; then
    run iscsiadm -m discoverydb -t sendtargets -p "$CPORTAL" -o new
    if run timeout 30 iscsiadm -m discoverydb -t sendtargets -p "$CPORTAL" --discover; then
        fail 6 "discovery without CHAP credentials succeeded"
    fi
    disc_set discovery.sendtargets.auth.authmethod CHAP
    disc_set discovery.sendtargets.auth.username "$DISCOVERY_USER"
    disc_set discovery.sendtargets.auth.password "$DISCOVERY_SECRET"
    if runo /tmp/disc6.txt timeout 30 iscsiadm -m discoverydb -t sendtargets -p "$CPORTAL" --discover; then
        grep -q "$CHAP_IQN" /tmp/disc6.txt && grep -q "$MUTUAL_IQN" /tmp/disc6.txt ||
            fail 6 "discovery with CHAP did not list both targets"
    else
        fail 6 "discovery with CHAP failed"
    fi
    for alg in MD5 SHA1 SHA256 SHA3-256; do
        before=$(disks)
        if chap_login "$CHAP_IQN" "$alg" "$CHAP_SECRET"; then
            chap_io "$before" "$CHAP_IQN" "one-way CHAP with $alg"
        else
            fail 6 "one-way CHAP login with $alg failed"
        fi
        before=$(disks)
        if chap_login "$MUTUAL_IQN" "$alg" "$CHAP_SECRET" "$MUTUAL_USER" "$MUTUAL_SECRET"; then
            chap_io "$before" "$MUTUAL_IQN" "mutual CHAP with $alg"
        else
            fail 6 "mutual CHAP login with $alg failed"
        fi
    done
    if chap_login "$CHAP_IQN" SHA256 "wrong-secret-0123"; then
        fail 6 "a wrong secret was accepted"
        run iscsiadm -m node -T "$CHAP_IQN" -p "$CPORTAL" --logout
    fi
    if chap_login "$MUTUAL_IQN" SHA256 "$CHAP_SECRET" "$MUTUAL_USER" "wrong-secret-4567"; then
        fail 6 "the initiator accepted a target that does not know the mutual secret"
        run iscsiadm -m node -T "$MUTUAL_IQN" -p "$CPORTAL" --logout
    fi
    if chap_login "$MUTUAL_IQN" SHA256 "$CHAP_SECRET"; then
        fail 6 "one-way CHAP was accepted where the target requires mutual CHAP"
        run iscsiadm -m node -T "$MUTUAL_IQN" -p "$CPORTAL" --logout
    fi
    run iscsiadm -m node -p "$CPORTAL" -o delete
fi

# ---------------------------------------------------------------------------------------------
# Point 9 runs before point 5 too, so that point 5's checks (no session left, a clean dmesg over
# the whole run) cover it. The host brings up a single-node Ceph cluster in its namespace while
# the earlier points run, creates the image and then starts a fourth ringtgt exporting it on
# RBD_PORT: the guest waits for that portal to open (RBD_WAIT seconds at most). fio writes
# random 4 KiB and 64 KiB blocks, each carrying its crc32c, and reads them all back; after a
# logout and a new login (nothing of the image left in the guest's caches) every block is read
# and checked again: what was written went to the cluster and comes back from it.
section 9
RPORTAL=$TARGET_IP:$RBD_PORT
# rbd_dev: the disk of the session to the RBD target (other sessions are logged in meanwhile).
rbd_dev() {
    local f s d
    for f in /sys/class/iscsi_session/session*/targetname; do
        [[ $(cat "$f" 2>/dev/null) == "$RBD_IQN" ]] || continue
        s=${f%/targetname} && s=${s##*/}
        for d in /sys/class/scsi_disk/*/device/block/*; do
            if [[ -e $d && $(readlink -f "$d") == */"$s"/* && -b /dev/${d##*/} ]]; then
                echo "/dev/${d##*/}"
                return 0
            fi
        done
    done
    return 1
}
# rbd_login: logs in to the RBD target and sets RBD_DEV to its disk.
RBD_DEV=""
rbd_login() {
    local i
    RBD_DEV=""
    if ! runo /tmp/login9.txt timeout 60 iscsiadm -m node -T "$RBD_IQN" -p "$RPORTAL" --login; then
        fail 9 "iscsiadm --login to $RBD_IQN failed"
        return 1
    fi
    for ((i = 0; i < 200; i++)); do
        RBD_DEV=$(rbd_dev) && break
        sleep 0.1
    done
    [[ -n $RBD_DEV ]] || { fail 9 "the RBD LUN did not appear as a block device within 20 s"; return 1; }
    say "RBD LUN = $RBD_DEV"
}
rbd_logout() {
    runo /tmp/logout9.txt timeout 60 iscsiadm -m node -T "$RBD_IQN" -p "$RPORTAL" --logout ||
        fail 9 "iscsiadm --logout from $RBD_IQN failed"
}
# portal_open: whether something accepts TCP connections on RPORTAL (bash's /dev/tcp: the
# guest has no nc).
portal_open() { (exec 3<>"/dev/tcp/$TARGET_IP/$RBD_PORT") 2>/dev/null; }

p9() {
    local t0=$SECONDS w r got size bs
    say "waiting for the RBD target's portal $RPORTAL (the host's Ceph cluster may still be starting)"
    until portal_open; do
        if ((SECONDS - t0 >= RBD_WAIT)); then
            fail 9 "$RPORTAL did not open within ${RBD_WAIT}s (the host's Ceph cluster or its ringtgt did not start; run.sh says why)"
            return 1
        fi
        sleep 2
    done
    say "$RPORTAL open after $((SECONDS - t0))s"
    if ! runo /tmp/disc9.txt timeout 60 iscsiadm -m discovery -t sendtargets -p "$RPORTAL"; then
        fail 9 "discovery through $RPORTAL failed"
        return 1
    fi
    grep -q "^$RPORTAL,[0-9]* $RBD_IQN\$" /tmp/disc9.txt || { fail 9 "discovery did not list $RBD_IQN"; return 1; }
    rbd_login || return 1
    size=$(blockdev --getsize64 "$RBD_DEV") bs=$(blockdev --getss "$RBD_DEV")
    echo "  blockdev: size=$size logical_block_size=$bs vendor=$(tr -d ' ' <"/sys/block/${RBD_DEV#/dev/}/device/vendor")"
    [[ $size == "$RBD_SIZE" ]] || fail 9 "size $size, want the image's $RBD_SIZE"
    [[ $bs == 512 ]] || fail 9 "logical block size $bs, want 512"
    local args=(--name=p9 --filename="$RBD_DEV" --rw=randwrite --bssplit=4k/50:64k/50 --size="$FIO_RBD_SIZE")
    if fio_run 9 /tmp/fio-p9.txt --do_verify=1 "${args[@]}"; then
        w=$(io_total /tmp/fio-p9.txt WRITE) r=$(io_total /tmp/fio-p9.txt READ)
        say "p9: wrote $w, verified $r"
        [[ -n $w && $w == "$r" ]] || fail 9 "verified $r of the $w written"
    fi
    rbd_logout || return 1
    rbd_login || return 1
    args[1]=--filename=$RBD_DEV
    if fio_run 9 /tmp/fio-p9-verify.txt --verify_only "${args[@]}"; then
        got=$(io_total /tmp/fio-p9-verify.txt READ)
        say "p9: verified $got again after a new login"
        [[ -n $got && $got == "$w" ]] || fail 9 "the verify after the new login read $got, want $w"
    fi
    rbd_logout
}

if ! selected 9; then
    : # not selected (section says so)
elif [[ -n ${RBD_SKIP:-} ]]; then
    POINT_SKIP[9]=$RBD_SKIP
    say "point 9 skipped: $RBD_SKIP"
else
    p9_mark=$(dmesg_mark)
    p9
    echo "+ dmesg (point 9)"
    dmesg_since "$p9_mark" | sed 's/^/  | /'
    no_failed_io 9 "$p9_mark" "on the RBD LUN"
    run iscsiadm -m node -T "$RBD_IQN" -p "$RPORTAL" -o delete
    iscsiadm -m session 2>/dev/null | grep -q "$RBD_IQN" && fail 9 "a session to $RBD_IQN is left"
fi

# ---------------------------------------------------------------------------------------------
if section 5; then
    mark=$(dmesg_mark)
    if logout 5; then
        sleep 1 # let the SCSI devices finish going away
        n=$(iscsiadm -m session 2>/dev/null | grep -c '^tcp:')
        [[ $n == 0 ]] || fail 5 "$n sessions still listed after logout"
        left=$(ls /sys/class/scsi_disk/)
        [[ -z $left ]] || fail 5 "SCSI disks still present after logout: $left"
    fi
    echo "+ dmesg (since logout)"
    dmesg_since "$mark" | sed 's/^/  | /'
    bad='error|fail|warn|timed out|reject|abort|reset|sense|invalid|unsupported'
    if dmesg_since "$mark" | drop_known_kernel_splats | grep -iE "$bad" >/tmp/p5-bad.txt; then
        fail 5 "the kernel logged problems at logout:"
        sed 's/^/  | /' /tmp/p5-bad.txt
    fi
    # Over the whole run (point 4's connection errors are expected and excluded): anything that
    # means a kernel or SCSI-level fault.
    bad='Call Trace|BUG:|WARNING:|Oops|EXT4-fs error|I/O error|Sense Key|Add\. Sense|FAILED Result'
    bad+='|blocked for more than|[Uu]nsupported'
    if dmesg_since "$run_mark" | drop_known_kernel_splats | grep -E "$bad" >/tmp/all-bad.txt; then
        fail 5 "the kernel logged faults during the run:"
        sed 's/^/  | /' /tmp/all-bad.txt
    fi
fi

# ---------------------------------------------------------------------------------------------
# Points 7 and 10 run last, after point 5's logout: they make the kernel fail I/O on one path on
# purpose (which point 5's whole-run dmesg check would hold against the other points), and the
# multipathd each starts must find no other SCSI disk to claim.
section 7
# One LU through two portals of run.sh's third ringtgt: port group 1 (MPATH_AO_PORT) is
# active/optimized, group 2 (MPATH_ANO_PORT) active/non-optimized. dm-multipath must make one map of
# the two paths, one path group per ALUA priority; fio's writes (each block carrying its
# crc32c) must survive a black hole on the optimized path, the kernel failing that path and
# sending the I/O down the other one; every block must then read back right. Then the path is
# opened again and must come back into use.
#
# Failover takes seconds because of these settings (and would take minutes with the defaults):
#   - NOP-Out every 2 s of silence, answer awaited 3 s (noop_out_interval/timeout, Debian's
#     default 5/5): a silent connection is noticed within ~5 s;
#   - the session then holds its I/O for replacement_timeout = 5 s (default 120) while iscsid
#     tries to log in again, then fails it with a transport error; dm-multipath fails the path
#     and resends the I/O down the other path group. multipathd's fast_io_fail_tmo sets that
#     same session timeout (sysfs recovery_tmo) on every iSCSI path it manages, overriding
#     replacement_timeout, so both say 5;
#   - login_timeout = 5 s (default 15): a login attempt through the cut portal gives up after
#     5 s, so the path is back within ~5 s of the heal;
#   - no_path_retry 10: should both paths be down, I/O is queued for 10 checker intervals
#     (~10 s), then failed up to fio, never queued for ever;
#   - dev_loss_tmo is not set: it is the timeout of FC and SAS remote ports; an iSCSI path's
#     SCSI device is not removed when its connection is lost (iscsid keeps logging in again
#     until it is logged out), and multipathd does not apply it to iSCSI.
MP_TMO=5

# path_session SDX: the iSCSI session (sysfs name, sessionN) SCSI disk SDX belongs to.
path_session() { readlink -f "/sys/block/$1/device" | grep -o 'session[0-9]*' | head -n1; }
# path_port SDX: the target TCP port of that session's connection.
path_port() {
    local s
    s=$(path_session "$1") && [[ -n $s ]] &&
        cat "/sys/class/iscsi_connection/connection${s#session}:0/persistent_port" 2>/dev/null
}
# port_disk PORT: the SCSI disk reached through the target's portal on PORT.
port_disk() {
    local d
    for d in /sys/class/scsi_disk/*/device/block/*; do
        [[ -e $d && $(path_port "${d##*/}") == "$1" ]] && { echo "${d##*/}"; return 0; }
    done
    return 1
}

# mp_paths FILE: one line per path of the multipath -ll output in FILE:
#   "<dev> <target port> <group prio> <group status> <dm state> <checker state> <device state>"
# (a checker state of two words, "i/o pending", is joined with "_").
mp_paths() {
    local dev rest
    awk '/policy=/ {
             prio = "?"; status = "?"
             for (i = 1; i <= NF; i++) {
                 if ($i ~ /^prio=/) prio = substr($i, 6)
                 if ($i ~ /^status=/) status = substr($i, 8)
             }
             next
         }
         {
             for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+:[0-9]+:[0-9]+:[0-9]+$/) break
             if (i + 4 >= NF) next
             chk = $(i + 4)
             for (j = i + 5; j < NF; j++) chk = chk "_" $j
             print $(i + 1), prio, status, $(i + 3), chk, $NF
         }' "$1" | while read -r dev rest; do
        echo "$dev $(path_port "$dev") $rest"
    done
}
# mp_is STATE FILE: whether the multipath -ll output in FILE shows one map of two paths, one
# per portal (MP_AO_PORT's, the optimized one at first, and MP_ANO_PORT's), and
#   healthy      both paths up in two path groups; the optimized one in the active group, of
#                ALUA priority 50, the non-optimized one in the other group, of priority 10;
#   failed-over  two path groups; the optimized path failed (kernel) and faulty (checker), the
#                other one up and its group the active one (point 7: still non-optimized, 10);
#   taken-over   the optimized path failed and faulty, the other one up, optimized now (50, its
#                gateway took the LU over: point 10) and in the active group.
mp_is() {
    local groups
    groups=$(grep -c 'policy=' "$2")
    [[ $(grep -cE ' dm-[0-9]+ ' "$2") == 1 ]] || return 1
    mp_paths "$2" >/tmp/mp-paths.txt
    [[ $(wc -l </tmp/mp-paths.txt) == 2 ]] || return 1
    case $1 in
    healthy)
        ((groups == 2)) &&
            grep -qE "^[a-z]+ $MP_AO_PORT 50 active active ready running\$" /tmp/mp-paths.txt &&
            grep -qE "^[a-z]+ $MP_ANO_PORT 10 enabled active ready running\$" /tmp/mp-paths.txt
        ;;
    failed-over)
        ((groups == 2)) &&
            grep -qE "^[a-z]+ $MP_AO_PORT -?[0-9]+ [a-z]+ failed faulty " /tmp/mp-paths.txt &&
            grep -qE "^[a-z]+ $MP_ANO_PORT 10 active active ready running\$" /tmp/mp-paths.txt
        ;;
    taken-over)
        # (With failback manual multipathd does not regroup the paths by their new priorities,
        # but another version might: one group or two.)
        grep -qE "^[a-z]+ $MP_AO_PORT -?[0-9]+ [a-z]+ failed faulty " /tmp/mp-paths.txt &&
            grep -qE "^[a-z]+ $MP_ANO_PORT 50 active active ready running\$" /tmp/mp-paths.txt
        ;;
    esac
}
# mp_wait SECONDS WHAT STATE: waits at most SECONDS until multipath -ll (into /tmp/mp.txt)
# shows STATE (see mp_is); prints its last output, and on failure the paths as they were read.
# multipath -ll runs the checker and the prioritizer on every path itself, which takes seconds
# under TCG, so the wait polls multipathd's own view (show topology, the same format) and runs
# multipath -ll once that shows STATE, or every fifth round.
mp_wait() {
    local secs=$1 what=$2 state=$3 t0=$SECONDS round
    for ((round = 1; ; round++)); do
        timeout 10 multipathd show topology >/tmp/mpd-topology.txt 2>&1
        if mp_is "$state" /tmp/mpd-topology.txt || ((round % 5 == 0)); then
            timeout 30 multipath -ll >/tmp/mp.txt 2>&1
            mp_is "$state" /tmp/mp.txt && break
        fi
        if ((SECONDS - t0 >= secs)); then
            echo "+ [$((SECONDS - START))s] multipath -ll: not $what after ${secs}s"
            sed 's/^/  | /' /tmp/mp.txt
            echo "  paths read (dev port group-prio group-status dm checker device):"
            mp_paths /tmp/mp.txt | sed 's/^/  |   /'
            return 1
        fi
        sleep 0.5
    done
    echo "+ [$((SECONDS - START))s] multipath -ll: $what ($((SECONDS - t0))s)"
    sed 's/^/  | /' /tmp/mp.txt
}

# mpd_events LINE: what multipathd's log says since its line LINE about path states and path
# groups (checker verdicts, failed and reinstated paths, group switches), each message once,
# with the time of its first appearance.
mpd_events() {
    tail -n +$(($1 + 1)) "$MPD_LOG" |
        grep -E 'reports path is|reinstated|failed path|switch to path group|remaining active paths' |
        awk -F' [|] ' '!seen[$2]++' | head -n 20 | sed 's/^/  | multipathd: /'
}

# mp_setup POINT IQN AO_PORT ANO_PORT FAILBACK NO_PATH_RETRY: starts udevd and multipathd
# (multipath.conf with FAILBACK and NO_PATH_RETRY), discovers IQN through the portal on each
# port, logs in through both and sets AO_DEV and ANO_DEV to the disk of each path: AO_PORT's
# is in port group 1, active/optimized, ANO_PORT's in group 2, active/non-optimized.
MPD_PID="" MPD_LOG="" MP_NAME="" MP_DEV="" AO_DEV="" ANO_DEV="" MP_AO_PORT="" MP_ANO_PORT=""
mp_setup() {
    local point=$1 iqn=$2 failback=$5 no_path_retry=$6
    MP_AO_PORT=$3 MP_ANO_PORT=$4 MPD_LOG=/tmp/multipathd-p$1.log
    MPD_PID="" MP_NAME="" MP_DEV="" AO_DEV="" ANO_DEV=""
    local ao=$TARGET_IP:$MP_AO_PORT ano=$TARGET_IP:$MP_ANO_PORT
    modprobe -a dm_multipath dm_service_time || { fail "$point" "modprobe dm_multipath failed"; return 1; }
    # multipathd learns of new paths from udev's events and takes each path's WWID (and the
    # SCSI_IDENT_* property that exempts it from its default blacklist) from what udev's rules
    # found; with no systemd in the guest, udevd runs as a plain daemon.
    run /lib/systemd/systemd-udevd --daemon || { fail "$point" "systemd-udevd did not start"; return 1; }
    # Debian's cloud kernel has no SCSI device handlers (CONFIG_SCSI_DH is off), so nothing in
    # the kernel reads ALUA states: multipath's alua prioritizer asks the target itself
    # (REPORT TARGET PORT GROUPS) and group_by_prio makes one path group per priority. prio is
    # set rather than detected (detect_prio no) so that it is alua on any kernel. (No
    # hardware_handler either: multipathd shows "1 alua" as detected from TPGS, but there is no
    # handler to attach. Point 10's writes answered ASYMMETRIC ACCESS STATE TRANSITION are
    # retried by the SCSI layer all the same: no error reaches dm-multipath.)
    cat >/etc/multipath.conf <<EOF
defaults {
    # A failed path is checked every second; a healthy one every 1..4 s.
    polling_interval 1
    max_polling_interval 4
    # The map is named by the LU's WWID.
    user_friendly_names no
    # Every path not blacklisted belongs in a map at once: no wwids file, no wait for a second path.
    find_multipaths greedy
}
blacklist {
    devnode "^vd[a-z]"
    # Point 11's NVMe namespace is no path of these maps.
    devnode "^nvme"
}
devices {
    device {
        vendor "$LUN_VENDOR"
        product ".*"
        path_grouping_policy group_by_prio
        detect_prio no
        prio alua
        path_checker tur
        failback $failback
        no_path_retry $no_path_retry
        fast_io_fail_tmo $MP_TMO
    }
}
EOF
    # -v3: the log says which prioritizer each path got, and the priority it gave.
    multipathd -d -v3 >"$MPD_LOG" 2>&1 &
    MPD_PID=$!
    local i
    for ((i = 0; i < 200; i++)); do
        multipathd show daemon >/dev/null 2>&1 && break
        kill -0 "$MPD_PID" 2>/dev/null || break
        sleep 0.1
    done
    if ! run multipathd show daemon; then
        fail "$point" "multipathd did not start or does not answer; its log:"
        sed 's/^/  | /' "$MPD_LOG"
        return 1
    fi

    # Through each portal: a gateway lists only its own portal (point 10), point 7's daemon both.
    local portal out=/tmp/discovery$point.txt
    : >"$out"
    for portal in "$ao" "$ano"; do
        if ! runo /tmp/discovery.txt timeout 60 iscsiadm -m discovery -t sendtargets -p "$portal"; then
            fail "$point" "discovery through $portal failed"
            return 1
        fi
        cat /tmp/discovery.txt >>"$out"
    done
    if ! grep -q "^$ao,1 $iqn\$" "$out" || ! grep -q "^$ano,2 $iqn\$" "$out"; then
        fail "$point" "discovery did not list '$ao,1' and '$ano,2' (portal,port group) for $iqn"
    fi
    local kv
    for portal in "$ao" "$ano"; do
        for kv in node.session.timeo.replacement_timeout=$MP_TMO node.conn[0].timeo.noop_out_interval=2 \
            node.conn[0].timeo.noop_out_timeout=3 node.conn[0].timeo.login_timeout=5; do
            iscsiadm -m node -T "$iqn" -p "$portal" -o update -n "${kv%%=*}" -v "${kv#*=}" ||
                { fail "$point" "cannot set ${kv%%=*} in the node record of $portal"; return 1; }
        done
    done
    # The optimized path first, and the other once multipathd has made the map of it and found
    # it up: with failback manual, a map made of the other path alone (or while the optimized
    # one's checker is still pending, which TCG makes likely) keeps using the non-optimized
    # group as long as its path is up.
    out=/tmp/login$point.txt
    if ! runo "$out" timeout 60 iscsiadm -m node -T "$iqn" -p "$ao" --login ||
        ! grep -q "Login to .*$iqn.* successful" "$out"; then
        fail "$point" "iscsiadm did not log in through $ao"
        return 1
    fi
    for ((i = 0; i < 200; i++)); do
        AO_DEV=$(port_disk "$MP_AO_PORT") && break
        sleep 0.1
    done
    [[ -n $AO_DEV ]] || { fail "$point" "no disk through $ao within 20 s"; return 1; }
    for ((i = 0; i < 300; i++)); do
        timeout 10 multipathd show topology 2>/dev/null | grep -qE " $AO_DEV [0-9]+:[0-9]+ +active ready" && break
        sleep 0.2
    done
    ((i < 300)) || fail "$point" "multipathd made no map of $AO_DEV with the path up within 60 s"
    if ! runo "$out" timeout 60 iscsiadm -m node -T "$iqn" -p "$ano" --login ||
        ! grep -q "Login to .*$iqn.* successful" "$out"; then
        fail "$point" "iscsiadm did not log in through $ano"
        return 1
    fi
    for ((i = 0; i < 200; i++)); do
        ANO_DEV=$(port_disk "$MP_ANO_PORT") && break
        sleep 0.1
    done
    [[ -n $ANO_DEV ]] || { fail "$point" "no disk through $ano within 20 s"; return 1; }
    local ao_s ano_s
    ao_s=$(path_session "$AO_DEV") ano_s=$(path_session "$ANO_DEV")
    say "optimized path $AO_DEV ($ao_s, $ao), non-optimized path $ANO_DEV ($ano_s, $ano)"
    # The portal group tag each login reported is the port group's id.
    [[ $(cat "/sys/class/iscsi_session/$ao_s/tpgt") == 1 && $(cat "/sys/class/iscsi_session/$ano_s/tpgt") == 2 ]] ||
        fail "$point" "session portal group tags are $(cat "/sys/class/iscsi_session/$ao_s/tpgt") (port $MP_AO_PORT)" \
            "and $(cat "/sys/class/iscsi_session/$ano_s/tpgt") (port $MP_ANO_PORT), want 1 and 2"
    # (Informational: it may take a unit attention the kernel has not seen yet.)
    run sg_rtpg --decode "/dev/$AO_DEV" || run sg_rtpg --decode "/dev/$AO_DEV" || true
}

# mp_map POINT: waits for one map of the two paths in two path groups by ALUA priority, sets
# MP_NAME and MP_DEV (/dev/dm-N), and checks the prioritizer and the sessions' timeout.
mp_map() {
    local point=$1
    if ! mp_wait 60 "one map, the optimized path in the active group (prio 50), the other enabled (prio 10)" healthy; then
        fail "$point" "multipath -ll does not show one map of the two paths in two path groups by ALUA priority"
        return 1
    fi
    MP_NAME=$(awk '$2 ~ /^dm-[0-9]+$/ {print $1; exit}' /tmp/mp.txt)
    MP_DEV=/dev/$(grep -oE ' dm-[0-9]+ ' /tmp/mp.txt | tr -d ' ')
    say "map $MP_NAME = $MP_DEV"
    local dev
    for dev in "$AO_DEV" "$ANO_DEV"; do
        grep -E "(^| )$dev: (alua )?prio = " "$MPD_LOG" | sort -u | sed 's/^/  | multipathd: /'
        grep -qE "$dev: prio = alua" "$MPD_LOG" || fail "$point" "multipathd did not choose the alua prioritizer for $dev"
    done
    # fast_io_fail_tmo must have reached both sessions: it is what bounds the failover.
    local s tmo
    for dev in "$AO_DEV" "$ANO_DEV"; do
        s=$(path_session "$dev")
        tmo=$(cat "/sys/class/iscsi_session/$s/recovery_tmo")
        [[ $tmo == "$MP_TMO" ]] || fail "$point" "$s ($dev): recovery_tmo is $tmo, want $MP_TMO"
    done
}

# p7_cut: fio writes 2048 random 4 KiB blocks over the map and then reads them all back; once
# 128 are written the host black-holes the optimized portal. The kernel must fail that path and
# carry on down the other one; fio must see no error and verify every block.
#
# fio's writes are held to 200 IOPS (its reads are not), so that they last 10 s whatever the
# machine: the cut must land while many are still to come. Under TCG the guest writes 400 or
# more IOPS unchecked, and this loop, sharing the guest's one CPU with fio, has seen its 128th
# write 4 s late, when nearly all of them were done. The I/O in flight at the cut waits for the
# failover; the rest goes down the other path.
P7_ARGS=()
p7_cut() {
    local blocks=2048 cut_at=128
    P7_ARGS=(--name=p7 --filename="$MP_DEV" --rw=randwrite --bs=4k --size=$((blocks * 4))k)
    echo "---- fio ${P7_ARGS[*]} --rate_iops=,200, write then verify"
    local w0 pid i t_fio stat
    w0=$(writes_done "$MP_DEV") t_fio=$SECONDS
    timeout "$FIO_TIMEOUT" fio --direct=1 --ioengine=libaio --iodepth=32 --verify=crc32c \
        --verify_fatal=1 --randrepeat=1 --group_reporting --do_verify=1 --rate_iops=,200 \
        "${P7_ARGS[@]}" >/tmp/fio-p7.txt 2>&1 &
    pid=$!
    # The count is read with bash's read rather than awk: fio keeps the guest's one CPU busy,
    # and every process started here makes the loop notice the writes later.
    for ((i = 0; i < 300; i++)); do
        read -ra stat <"/sys/block/${MP_DEV#/dev/}/stat"
        ((stat[4] - w0 >= cut_at)) && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! kill -0 "$pid" 2>/dev/null; then
        fail 7 "fio ended before the path could be cut:"
        sed 's/^/  | /' /tmp/fio-p7.txt
        return 1
    fi
    local mark log0 ano_w0 t0 failover s_ao s_ano
    mark=$(dmesg_mark) log0=$(wc -l <"$MPD_LOG")
    # The request goes out first and the report after it, from counts read without a fork.
    read -ra stat <"/sys/block/${MP_DEV#/dev/}/stat"
    read -ra s_ao <"/sys/block/$AO_DEV/stat"
    read -ra s_ano <"/sys/block/$ANO_DEV/stat"
    ano_w0=${s_ano[4]}
    t0=$SECONDS
    echo "@@ringtgt-vm: host pathcut@@"
    say "asked the host to cut the optimized path ($((stat[4] - w0)) writes done" \
        "$((SECONDS - t_fio))s after fio started; $AO_DEV wrote ${s_ao[4]}, $ANO_DEV $ano_w0)"
    for ((i = 0; i < 300; i++)); do
        dmesg_since "$mark" | grep -q 'detected conn error' && break
        sleep 0.1
    done
    dmesg_since "$mark" | grep -q 'detected conn error' ||
        fail 7 "the initiator saw no connection error within 30 s of the cut"
    # The failover is done when writes complete on the non-optimized path.
    for ((i = 0; i < 600; i++)); do
        (($(writes_done "$ANO_DEV") > ano_w0)) && break
        sleep 0.1
    done
    failover=$((SECONDS - t0))
    if (($(writes_done "$ANO_DEV") > ano_w0)); then
        say "failover: writes go down $ANO_DEV ${failover}s after the cut"
    else
        fail 7 "no write went down the non-optimized path $ANO_DEV within 60 s of the cut"
    fi
    wait "$pid"
    local rc=$?
    echo "+ fio across the cut: exit status $rc ($((SECONDS - t0))s after the cut)"
    sed 's/^/  | /' /tmp/fio-p7.txt
    echo "+ dmesg (since the cut)"
    dmesg_since "$mark" | sed 's/^/  | /'
    if [[ $rc != 0 ]] || grep -E 'err= *[1-9]|verify: |bad magic|crc32c: verify failed' /tmp/fio-p7.txt >/dev/null; then
        fail 7 "fio failed across the cut (exit status $rc; 124 = timed out after ${FIO_TIMEOUT}s)"
    else
        local w r
        w=$(io_total /tmp/fio-p7.txt WRITE) r=$(io_total /tmp/fio-p7.txt READ)
        say "fio wrote $w and verified $r across the cut"
        [[ -n $w && $w == "$r" ]] || fail 7 "fio verified $r of the $w written"
    fi
    echo "+ multipathd (since the cut)"
    mpd_events "$log0"
    dmesg_since "$mark" | grep -q "multipath.*Failing path" ||
        fail 7 "the kernel did not say it failed a path (device-mapper: multipath: ... Failing path)"
    mp_wait 30 "the optimized path failed, the other one active" failed-over ||
        fail 7 "multipath -ll does not show the cut path failed and the other one active"
}

# p7_heal: the host opens the portal again; the initiator logs in again through it, multipathd
# reinstates the path and fails back to its group, and reads go down it again.
p7_heal() {
    local t0 i s log0
    s=$(path_session "$AO_DEV")
    log0=$(wc -l <"$MPD_LOG")
    t0=$SECONDS
    echo "@@ringtgt-vm: host pathheal@@"
    for ((i = 0; i < 600; i++)); do
        [[ $(cat "/sys/class/iscsi_session/$s/state" 2>/dev/null) == LOGGED_IN ]] && break
        sleep 0.1
    done
    if [[ $(cat "/sys/class/iscsi_session/$s/state" 2>/dev/null) != LOGGED_IN ]]; then
        fail 7 "$s is $(cat "/sys/class/iscsi_session/$s/state" 2>/dev/null), not LOGGED_IN, 60 s after the heal"
        return 1
    fi
    say "$s logged in again $((SECONDS - t0))s after the heal"
    if ! mp_wait 30 "both paths up, the optimized group active again" healthy; then
        fail 7 "the healed path did not come back into use"
        return 1
    fi
    echo "+ multipathd (since the heal)"
    mpd_events "$log0"
    say "path back in the map $((SECONDS - t0))s after the heal"
    local r0 got
    r0=$(reads_done "$AO_DEV")
    if fio_run 7 /tmp/fio-p7-verify.txt --verify_only "${P7_ARGS[@]}"; then
        got=$(io_total /tmp/fio-p7-verify.txt READ)
        say "verified $got again after the heal; $AO_DEV read $(($(reads_done "$AO_DEV") - r0)) times"
        [[ $got == "$(io_total /tmp/fio-p7.txt WRITE)" ]] || fail 7 "the second verify read $got"
        (($(reads_done "$AO_DEV") - r0 > 0)) || fail 7 "no read went down the healed optimized path $AO_DEV"
    fi
}

# mp_teardown POINT IQN: removes the map, stops multipathd and udevd, logs out of IQN.
mp_teardown() {
    local point=$1 iqn=$2 i n
    # udev may still hold the map open for a moment after fio: a few tries. (-F: every map,
    # should the point have failed before it knew the map's name.)
    for ((i = 0; i < 10; i++)); do
        if [[ -n $MP_NAME ]]; then
            multipath -f "$MP_NAME" >/tmp/mpflush.txt 2>&1 && break
        else
            multipath -F >/tmp/mpflush.txt 2>&1 && break
        fi
        sleep 1
    done
    run cat /tmp/mpflush.txt
    ((i < 10)) || fail "$point" "multipath -f ${MP_NAME:--F} failed"
    if [[ -n $MPD_PID ]]; then
        run multipathd shutdown
        for ((i = 0; i < 100; i++)); do
            kill -0 "$MPD_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$MPD_PID" 2>/dev/null && { fail "$point" "multipathd still runs 10 s after shutdown"; kill -9 "$MPD_PID"; }
    fi
    runo "/tmp/logout$point.txt" timeout 60 iscsiadm -m node -T "$iqn" --logout ||
        fail "$point" "iscsiadm --logout failed"
    n=$(iscsiadm -m session 2>/dev/null | grep -c '^tcp:')
    [[ $n == 0 ]] || fail "$point" "$n sessions still listed after logout"
    udevadm control --exit
    if ((!POINT_OK[$point])) && [[ -n $MPD_LOG ]]; then
        echo "+ multipathd log (last 150 lines of $MPD_LOG)"
        tail -n 150 "$MPD_LOG" | sed 's/^/  | /'
    fi
}

if selected 7; then
    p7_mark=$(dmesg_mark)
    mp_setup 7 "$MPATH_IQN" "$MPATH_AO_PORT" "$MPATH_ANO_PORT" immediate 10 && mp_map 7 && p7_cut && p7_heal
    mp_teardown 7 "$MPATH_IQN"
    # Kernel faults are failures; I/O errors only on the path that was cut (they are how the kernel
    # hands the I/O to dm-multipath to send down the other path).
    bad='Call Trace|BUG:|WARNING:|Oops|blocked for more than'
    if dmesg_since "$p7_mark" | drop_known_kernel_splats | grep -E "$bad" >/tmp/p7-bad.txt; then
        fail 7 "the kernel logged faults:"
        sed 's/^/  | /' /tmp/p7-bad.txt
    fi
    if dmesg_since "$p7_mark" | grep -E 'I/O error|FAILED Result' |
        grep -vE "\[${AO_DEV:-none}\]|dev ${AO_DEV:-none}," >/tmp/p7-io.txt; then
        fail 7 "the kernel failed I/O on another device than the cut path ${AO_DEV:-?}:"
        sed 's/^/  | /' /tmp/p7-io.txt
    fi
fi

# ---------------------------------------------------------------------------------------------
# Point 10: two gateways, one RBD disk. run.sh's fifth and sixth ringtgts export the same image
# of its Ceph cluster under one target name with the same LU serial, in gateway mode
# (failover = "rbd-lock"): gateway A (GW_A_PORT, port group 1) holds the image's exclusive lock
# and reports its group active/optimized, gateway B (GW_B_PORT, group 2) active/non-optimized.
# dm-multipath makes one map of the two paths in two path groups by ALUA priority (the same
# multipath.conf as point 7, with failback manual and no_path_retry 12), and I/O goes to A's.
# fio writes random 4 KiB and 64 KiB blocks over the map (each carrying its crc32c); after some
# have completed, the host kills gateway A (SIGKILL). The initiator sees A's connection fail at
# once and fails the path fast_io_fail_tmo (5 s) later; dm-multipath sends the I/O down B's
# path, B answers the first writes NOT READY, ASYMMETRIC ACCESS STATE TRANSITION while it
# breaks A's lock in the cluster (librbd blocklists A first) and takes it, and then serves
# them. fio must finish without an error and read every block back right; multipath must then
# show A's path failed and B's path optimized (prio 50) and active. The host checks B's log for
# the takeover (run.sh). Skipped where point 9 is.
section 10
# gw_portals_open: both gateways accept connections (the host starts them with point 9's
# target once its cluster is up, so by now they normally are).
gw_portals_open() {
    local port
    for port in "$GW_A_PORT" "$GW_B_PORT"; do
        (exec 3<>"/dev/tcp/$TARGET_IP/$port") 2>/dev/null || return 1
    done
}
# ms: milliseconds since the epoch, without a fork (bash's EPOCHREALTIME).
ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
# secs_since MS: the seconds since MS, to a tenth.
secs_since() {
    local d=$(($(ms) - $1))
    echo "$((d / 1000)).$((d % 1000 / 100))"
}

p10_wait() {
    local t0=$SECONDS
    until gw_portals_open; do
        if ((SECONDS - t0 >= RBD_WAIT)); then
            fail 10 "the gateways' portals $TARGET_IP:$GW_A_PORT and :$GW_B_PORT did not open within ${RBD_WAIT}s (run.sh says why)"
            return 1
        fi
        sleep 2
    done
}

# p10_identity: one LU through both gateways: the image's size, the configured serial.
p10_identity() {
    local dev size
    for dev in "$AO_DEV" "$ANO_DEV"; do
        size=$(blockdev --getsize64 "/dev/$dev")
        [[ $size == "$GW_SIZE" ]] || fail 10 "$dev: size $size, want the image's $GW_SIZE"
        sg_inq -p 0x80 "/dev/$dev" 2>&1 | grep -q "Unit serial number: *$GW_SERIAL\$" ||
            fail 10 "$dev: sg_inq -p 0x80 does not show serial $GW_SERIAL"
    done
}

# p10_kill: fio writes over the map and reads every block back; the host kills gateway A once
# 64 writes have completed. fio's writes are held to 3 MiB/s (about 8 s for the default 24 MiB,
# some 90 writes a second) so that the kill lands with most of them still to come; the I/O in
# flight at the kill waits for the failover, and fio catches up afterwards.
p10_kill() {
    local kill_at=64 w0 a_w0 b_w0 pid i stat t_fio
    local args=(--name=p10 --filename="/dev/mapper/$MP_NAME" --rw=randwrite --bssplit=4k/50:64k/50
        --size="$FIO_GW_SIZE")
    echo "---- fio ${args[*]} --rate=,3m, write then verify"
    w0=$(writes_done "$MP_DEV") a_w0=$(writes_done "$AO_DEV") b_w0=$(writes_done "$ANO_DEV") t_fio=$SECONDS
    timeout "$FIO_TIMEOUT" fio --direct=1 --ioengine=libaio --iodepth=32 --verify=crc32c \
        --verify_fatal=1 --randrepeat=1 --group_reporting --do_verify=1 --rate=,3m \
        "${args[@]}" >/tmp/fio-p10.txt 2>&1 &
    pid=$!
    for ((i = 0; i < 300; i++)); do
        read -ra stat <"/sys/block/${MP_DEV#/dev/}/stat"
        ((stat[4] - w0 >= kill_at)) && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! kill -0 "$pid" 2>/dev/null; then
        fail 10 "fio ended before gateway A could be killed:"
        sed 's/^/  | /' /tmp/fio-p10.txt
        return 1
    fi
    local mark log0 b_w1 t0 t_b="" t_flow="" dm_w s_a s_b
    mark=$(dmesg_mark) log0=$(wc -l <"$MPD_LOG")
    # The request goes out first and the report after it, from counts read without a fork.
    read -ra stat <"/sys/block/${MP_DEV#/dev/}/stat"
    read -ra s_a <"/sys/block/$AO_DEV/stat"
    read -ra s_b <"/sys/block/$ANO_DEV/stat"
    b_w1=${s_b[4]}
    t0=$(ms)
    echo "@@ringtgt-vm: host gwkill@@"
    say "asked the host to kill gateway A ($((stat[4] - w0)) writes done" \
        "$((SECONDS - t_fio))s after fio started; A's path $AO_DEV wrote $((s_a[4] - a_w0))," \
        "B's path $ANO_DEV $((b_w1 - b_w0)))"
    ((b_w1 == b_w0)) || fail 10 "writes went down gateway B's path $ANO_DEV while A was the owner"
    for ((i = 0; i < 300; i++)); do
        dmesg_since "$mark" | grep -q 'detected conn error' && break
        sleep 0.1
    done
    if dmesg_since "$mark" | grep -q 'detected conn error'; then
        say "the initiator saw A's connection fail $(secs_since "$t0")s after the kill request"
    else
        fail 10 "the initiator saw no connection error within 30 s of the kill"
    fi
    # The failover: first a write down B's path (answered with the transition while B takes
    # the lock over), then writes completing on the map again.
    for ((i = 0; i < 600; i++)); do
        if [[ -z $t_b ]] && (($(writes_done "$ANO_DEV") > b_w1)); then
            t_b=$(secs_since "$t0") dm_w=$(writes_done "$MP_DEV")
        fi
        if [[ -n $t_b ]] && (($(writes_done "$MP_DEV") > dm_w)); then
            t_flow=$(secs_since "$t0")
            break
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $t_b ]]; then
        fail 10 "no write went down gateway B's path $ANO_DEV within 60 s of the kill"
    else
        say "failover: the first write went down B's path ${t_b}s after the kill request," \
            "writes completed on the map again after ${t_flow:-?}s"
    fi
    wait "$pid"
    local rc=$?
    echo "+ fio across the kill: exit status $rc ($(secs_since "$t0")s after the kill request)"
    sed 's/^/  | /' /tmp/fio-p10.txt
    echo "+ dmesg (since the kill)"
    dmesg_since "$mark" | sed 's/^/  | /'
    if [[ $rc != 0 ]] || grep -E 'err= *[1-9]|verify: |bad magic|crc32c: verify failed' /tmp/fio-p10.txt >/dev/null; then
        fail 10 "fio failed across the kill (exit status $rc; 124 = timed out after ${FIO_TIMEOUT}s)"
    else
        local w r
        w=$(io_total /tmp/fio-p10.txt WRITE) r=$(io_total /tmp/fio-p10.txt READ)
        say "fio wrote $w and verified $r across the kill; B's path wrote $(($(writes_done "$ANO_DEV") - b_w0))" \
            "times, A's $(($(writes_done "$AO_DEV") - a_w0))"
        [[ -n $w && $w == "$r" ]] || fail 10 "fio verified $r of the $w written"
    fi
    echo "+ multipathd (since the kill)"
    mpd_events "$log0"
    dmesg_since "$mark" | grep -q "multipath.*Failing path" ||
        fail 10 "the kernel did not say it failed a path (device-mapper: multipath: ... Failing path)"
    mp_wait 30 "A's path failed, B's path optimized (prio 50) and in the active group" taken-over ||
        fail 10 "multipath -ll does not show A's path failed and B's optimized and active"
}

if ! selected 10; then
    : # not selected (section says so)
elif [[ -n ${RBD_SKIP:-} ]]; then
    POINT_SKIP[10]=$RBD_SKIP
    say "point 10 skipped: $RBD_SKIP"
else
    p10_mark=$(dmesg_mark)
    # The SCSI commands the kernel sends, for the failure report: what went down which path.
    tracing=/sys/kernel/tracing
    mountpoint -q "$tracing" || mount -t tracefs nodev "$tracing" 2>/dev/null
    echo 1 >"$tracing/events/scsi/scsi_dispatch_cmd_start/enable" 2>/dev/null
    p10_wait && mp_setup 10 "$GW_IQN" "$GW_A_PORT" "$GW_B_PORT" manual 12 && mp_map 10 &&
        p10_identity && p10_kill
    if ((!POINT_OK[10])) && [[ -r $tracing/trace ]]; then
        echo "+ SCSI commands other than reads, TEST UNIT READY and INQUIRY (kernel trace; A's path" \
            "$(readlink -f "/sys/block/${AO_DEV:-none}/device" | grep -o 'host[0-9]*' | head -n1)," \
            "B's $(readlink -f "/sys/block/${ANO_DEV:-none}/device" | grep -o 'host[0-9]*' | head -n1))"
        grep scsi_dispatch_cmd_start "$tracing/trace" |
            grep -vE 'cmnd=\((READ_(6|10|16)|TEST_UNIT_READY|INQUIRY) ' |
            sed -E 's/^ *([^ ]+) .* ([0-9]+\.[0-9]+): .*host_no=([0-9]+).*cmnd=\(([A-Z_0-9]+( [A-Z_0-9]+)?).*/\2 host\3 \4 (\1)/' |
            head -n 60 | sed 's/^/  | /'
    fi
    echo 0 >"$tracing/events/scsi/scsi_dispatch_cmd_start/enable" 2>/dev/null
    mp_teardown 10 "$GW_IQN"
    run iscsiadm -m node -T "$GW_IQN" -o delete
    # Kernel faults are failures. I/O errors are expected on A's path (the kernel hands the I/O
    # that A never answered to dm-multipath to send down B's). B's path has shown none (the SCSI
    # layer retries the writes B answers with the transition while it takes the lock over);
    # should a slower takeover exhaust those retries, dm-multipath would fail B's path, queue
    # the I/O and reinstate the path a second later, which fio would not notice: errors there
    # are reported, not failed. None may reach the map.
    bad='Call Trace|BUG:|WARNING:|Oops|blocked for more than'
    if dmesg_since "$p10_mark" | drop_known_kernel_splats | grep -E "$bad" >/tmp/p10-bad.txt; then
        fail 10 "the kernel logged faults:"
        sed 's/^/  | /' /tmp/p10-bad.txt
    fi
    n=$(dmesg_since "$p10_mark" | grep -E 'I/O error|FAILED Result' | grep -cE "\[${ANO_DEV:-none}\]|dev ${ANO_DEV:-none},")
    ((n == 0)) || say "note: $n I/O error lines on B's path ${ANO_DEV:-?} (see the dmesg above)"
    if dmesg_since "$p10_mark" | grep -E 'I/O error|FAILED Result' |
        grep -vE "\[(${AO_DEV:-none}|${ANO_DEV:-none})\]|dev (${AO_DEV:-none}|${ANO_DEV:-none})," >/tmp/p10-io.txt; then
        fail 10 "the kernel failed I/O on another device than the two paths ${AO_DEV:-?} and ${ANO_DEV:-?}:"
        sed 's/^/  | /' /tmp/p10-io.txt
    fi
fi

# ---------------------------------------------------------------------------------------------
# Point 11: an NVMe namespace exported through io_uring NVMe passthrough. run.sh gives the guest
# an emulated NVMe controller (QEMU's nvme: one namespace of NVME_SIZE bytes with 4 KiB LBAs on
# a fresh sparse file, at most 512 KiB per command, and a small one with metadata) and the ringtgt binary (bin/ beside this
# script, the libraries it links in lib/). The guest runs that ringtgt itself on
# 127.0.0.1:NVME_PORT, exporting the namespace's generic character device (NVME_LUN, /dev/ng0n1)
# as LUN 0 of NVME_IQN, and its own initiator logs in to it:
#   a. a pattern written straight to the namespace (/dev/nvme0n1) reads back through the LUN;
#   b. the LUN has the namespace's size and logical block size;
#   c. fio verifies 4 KiB random writes (iodepth 32) and 1 MiB sequential writes through the
#      LUN: twice the controller's largest command, so the store must split them;
#   d. a second pattern is written through the LUN;
#   e. blkdiscard (UNMAP) of a range fio wrote: it reads zeros through the LUN;
#   e2. while ringtgt serves it, the namespace's block device is held exclusively (O_EXCL):
#      mkfs.ext4 finds it in use, and so does a second ringtgt's start; a second LUN on the same
#      namespace, added live, is refused;
#   f. after a logout and ringtgt's exit (SIGTERM, status 0), the namespace itself holds the
#      second pattern, zeros in the discarded range and the first pattern untouched;
#   g. a namespace whose blocks carry metadata and protection information (/dev/ng0n2, 8 bytes,
#      PI type 1) is refused at start, saying why;
#   h. the namespace added live (`ctl lun add`) to a ringtgt serving a RAM LUN is held while it
#      is a LUN and let go when it is removed live (`ctl lun remove`).
# It runs last and needs no other point: its session is found by its target name, whatever
# other sessions exist, and it leaves none. NVME_LUN=/dev/nvme0n1 (RINGTGT_VM_NVME_LUN), the
# namespace's block device, is a stand-in for a binary without the passthrough store: every
# check but the log's applies, and the point's title says so.
section 11
NVME_DEV=/dev/nvme0n1
# shellcheck disable=SC2153 # NVME_PORT and NVME_LUN come from params.env
NVME_PORTAL=127.0.0.1:$NVME_PORT
NVME_LOG=/tmp/ringtgt-nvme.log
NVME_SOCK=/tmp/ringtgt-nvme.sock
NVME_PID="" NVME_SDX=""
# Where on the namespace, in MiB: pattern A (1 MiB, written to the namespace directly), fio's
# random and sequential regions (P11_FIO MiB each), pattern B (1 MiB, written through the LUN)
# and the discarded range, inside fio's random region.
P11_A=8 P11_RAND=32 P11_SEQ=64 P11_FIO=32 P11_B=128 P11_DISC=32 P11_DISC_LEN=8
# A LUN other than a generic NVMe character device (/dev/ngXnY) is a stand-in.
P11_STANDIN=0
# shellcheck disable=SC2153
if [[ $NVME_LUN != /dev/ng* ]]; then
    P11_STANDIN=1
    selected 11 && POINT_NAME[11]+=" [stand-in: LUN $NVME_LUN, not the passthrough device]"
fi

# nvme_lun_dev: /dev/sdX of LUN 0 of the session to NVME_IQN, from sysfs: the session's device
# (/sys/devices/.../hostH/sessionN, whose iscsi_session/sessionN names the target) holds its
# SCSI target and that target's LUNs (sessions to other targets may exist).
nvme_lun_dev() {
    local f s d
    for f in /sys/class/iscsi_session/session*/targetname; do
        [[ $(cat "$f" 2>/dev/null) == "$NVME_IQN" ]] || continue
        s=$(readlink -f "${f%/targetname}") && s=${s%/iscsi_session/session*}
        for d in "$s"/target*/*:0/block/*; do
            if [[ -e $d && -b /dev/${d##*/} ]]; then
                echo "/dev/${d##*/}"
                return 0
            fi
        done
    done
    return 1
}
# p11_read DEV MIB COUNT FILE: COUNT MiB of DEV from MiB MIB on, with O_DIRECT, into FILE.
p11_read() { run dd if="$1" of="$4" bs=1M skip="$2" count="$3" iflag=direct status=none; }
# p11_write DEV MIB FILE: FILE onto DEV at MiB MIB, with O_DIRECT.
p11_write() { run dd if="$3" of="$1" bs=1M seek="$2" oflag=direct status=none; }
# zeros FILE: whether FILE holds only zero bytes.
zeros() { cmp -s -n "$(stat -c %s "$1")" "$1" /dev/zero; }
# p11_check WHAT DEV MIB COUNT WANT: whether COUNT MiB of DEV from MiB MIB on hold WANT (a file,
# or "zeros"); if not, fails the point, saying WHAT was checked and how it failed.
p11_check() {
    local what=$1 dev=$2 mib=$3 count=$4 want=$5 got=/tmp/p11-got.bin
    if ! p11_read "$dev" "$mib" "$count" "$got"; then
        fail 11 "$what: reading $count MiB at $mib MiB of $dev failed"
        return 1
    fi
    if [[ $want == zeros ]]; then
        zeros "$got" && return 0
        fail 11 "$what: $count MiB at $mib MiB of $dev do not read zeros"
    else
        cmp "$want" "$got" && return 0
        fail 11 "$what: $count MiB at $mib MiB of $dev differ from what was written"
    fi
    return 1
}

# p11_start [LUN]: starts ringtgt on the namespace (or on LUN) and waits until it listens.
p11_start() {
    local i rc lun=${1:-$NVME_LUN}
    echo "+ [$((SECONDS - START))s] LD_LIBRARY_PATH=$HERE/lib $HERE/bin/ringtgt serve --portal $NVME_PORTAL" \
        "--target $NVME_IQN --lun $lun --log info ... >>$NVME_LOG 2>&1 &"
    LD_LIBRARY_PATH=$HERE/lib "$HERE/bin/ringtgt" serve --portal "$NVME_PORTAL" --target "$NVME_IQN" \
        --lun "$lun" --log info --state-dir /tmp/ringtgt-nvme-state \
        --admin-socket "$NVME_SOCK" >>"$NVME_LOG" 2>&1 &
    NVME_PID=$!
    for ((i = 0; i < 300; i++)); do
        ss -Hltn "sport = :$NVME_PORT" | grep . >/dev/null && break
        if ! kill -0 "$NVME_PID" 2>/dev/null; then
            wait "$NVME_PID"
            rc=$?
            NVME_PID=""
            fail 11 "ringtgt exited with status $rc at start (its log is below)"
            return 1
        fi
        sleep 0.1
    done
    if ((i == 300)); then
        fail 11 "ringtgt does not listen on $NVME_PORTAL 30 s after its start"
        return 1
    fi
    say "ringtgt (pid $NVME_PID) listens on $NVME_PORTAL after $((i / 10)).$((i % 10)) s"
    grep -a 'serving LUN' "$NVME_LOG" | sed 's/^/  | /'
    [[ $lun == "$NVME_LUN" ]] || return 0
    if ((!P11_STANDIN)); then
        echo "+ ringtgt's log: the line that names the store"
        if grep -F 'NVMe passthrough' "$NVME_LOG" | grep -F "$NVME_LUN" >/tmp/p11-store.txt; then
            sed 's/^/  | /' /tmp/p11-store.txt
        else
            fail 11 "ringtgt's log has no line with 'NVMe passthrough' and $NVME_LUN (it is below)"
        fi
    else
        say "note: $NVME_LUN is a stand-in for the passthrough device: the log line of that store" \
            "('NVMe passthrough') is not checked"
    fi
}

# p11_ctl ARGS...: `ringtgt ctl` of the guest's ringtgt, printed with its output (kept in
# /tmp/p11-ctl.txt); its status.
p11_ctl() {
    runo /tmp/p11-ctl.txt env LD_LIBRARY_PATH="$HERE/lib" "$HERE/bin/ringtgt" ctl --socket "$NVME_SOCK" "$@"
}

# p11_in_use: whether mkfs.ext4 finds the namespace's block device in use (-n: it writes
# nothing either way). Its output is kept in /tmp/p11-mkfs.txt.
p11_in_use() {
    runo /tmp/p11-mkfs.txt mkfs.ext4 -n "$NVME_DEV" </dev/null && return 1
    grep -q 'apparently in use' /tmp/p11-mkfs.txt
}

# p11_exclusive: e2, while ringtgt serves the namespace.
p11_exclusive() {
    echo "---- e2. the namespace is ringtgt's alone while it serves it"
    if p11_in_use; then
        say "mkfs.ext4 finds $NVME_DEV in use"
    else
        fail 11 "mkfs.ext4 -n does not find $NVME_DEV in use while ringtgt serves the namespace (output above)"
    fi
    ((P11_STANDIN)) && return 0
    if p11_ctl lun add --target "$NVME_IQN" --id 5 "$NVME_LUN"; then
        fail 11 "a second LUN on $NVME_LUN was added while LUN 0 serves it"
        p11_ctl lun remove --target "$NVME_IQN" --id 5
    elif grep -q 'is the medium of LUN 0' /tmp/p11-ctl.txt; then
        say "a second LUN on $NVME_LUN is refused: it is LUN 0's medium"
    else
        fail 11 "adding a second LUN on $NVME_LUN failed, but not saying it is LUN 0's medium (output above)"
    fi
    # Another ringtgt: its start waits a few seconds for the device (a previous process's ring
    # may still hold it), then gives up.
    runo /tmp/p11-second.txt timeout 60 env LD_LIBRARY_PATH="$HERE/lib" "$HERE/bin/ringtgt" serve \
        --portal 127.0.0.1:$((NVME_PORT + 1)) --target "$NVME_IQN-2" --lun "$NVME_LUN" \
        --state-dir /tmp/ringtgt-nvme-2-state --admin-socket /tmp/ringtgt-nvme-2.sock
    local rc=$?
    if ((rc == 0 || rc == 124)); then
        fail 11 "a second ringtgt started on $NVME_LUN (status $rc) while the first serves it"
    elif grep -q 'block device is in use' /tmp/p11-second.txt; then
        say "a second ringtgt refuses $NVME_LUN (status $rc): its block device is in use"
    else
        fail 11 "a second ringtgt exited with status $rc on $NVME_LUN, but not saying it is in use (output above)"
    fi
}

# p11_metadata: g, a namespace with metadata and protection information is not exported.
p11_metadata() {
    local md=/dev/ng0n2 rc i
    echo "---- g. $md (8 bytes of metadata per block, PI type 1) is refused at start"
    for ((i = 0; i < 100; i++)); do
        [[ -c $md ]] && break
        sleep 0.1
    done
    if [[ ! -c $md ]]; then
        fail 11 "no $md (run.sh gives the controller a second namespace with metadata)"
        run ls -l /dev/
        return 1
    fi
    run ls -l "$md"
    runo /tmp/p11-md.txt timeout 60 env LD_LIBRARY_PATH="$HERE/lib" "$HERE/bin/ringtgt" serve \
        --portal 127.0.0.1:$((NVME_PORT + 1)) --target "$NVME_IQN-md" --lun "$md" \
        --state-dir /tmp/ringtgt-nvme-md-state --admin-socket /tmp/ringtgt-nvme-md.sock
    rc=$?
    if ((rc == 0 || rc == 124)); then
        fail 11 "ringtgt started on $md (status $rc), a namespace with metadata"
    elif grep -q 'bytes of metadata per block' /tmp/p11-md.txt; then
        say "ringtgt refuses $md (status $rc): its blocks carry metadata"
    else
        fail 11 "ringtgt exited with status $rc on $md, but not saying its blocks carry metadata (output above)"
    fi
}

# p11_live: h, the namespace added to and removed from a running ringtgt.
p11_live() {
    local i
    echo "---- h. $NVME_LUN added live to a ringtgt serving a RAM LUN, then removed live"
    p11_start ram:16MiB || return 1
    if ! p11_in_use && p11_ctl lun add --target "$NVME_IQN" --id 1 "$NVME_LUN"; then
        if p11_in_use; then
            say "LUN 1 on $NVME_LUN added live; mkfs.ext4 finds $NVME_DEV in use"
        else
            fail 11 "$NVME_DEV is not held while LUN 1 serves it (output above)"
        fi
        p11_ctl --json luns
        grep -q "$NVME_LUN" /tmp/p11-ctl.txt || fail 11 "ctl luns does not list $NVME_LUN (output above)"
        p11_ctl lun remove --target "$NVME_IQN" --id 1 || fail 11 "ctl lun remove of LUN 1 failed"
        for ((i = 0; i < 100; i++)); do
            p11_in_use >/dev/null || break
            sleep 0.1
        done
        if ((i == 100)); then
            fail 11 "$NVME_DEV is still held 10 s after LUN 1 was removed"
        else
            say "LUN 1 removed live; $NVME_DEV is let go"
        fi
    else
        fail 11 "adding LUN 1 on $NVME_LUN live failed, or the namespace was held before (output above)"
    fi
    p11_stop
}

# p11_stop: stops ringtgt with SIGTERM, as systemctl stop does; it must exit with status 0.
p11_stop() {
    local i rc
    [[ -n $NVME_PID ]] || return 0
    echo "+ [$((SECONDS - START))s] kill -TERM $NVME_PID (ringtgt)"
    kill -TERM "$NVME_PID"
    for ((i = 0; i < 300; i++)); do
        kill -0 "$NVME_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$NVME_PID" 2>/dev/null; then
        fail 11 "ringtgt still runs 30 s after SIGTERM; killed (SIGKILL)"
        kill -9 "$NVME_PID"
    fi
    wait "$NVME_PID"
    rc=$?
    NVME_PID=""
    say "ringtgt exited with status $rc after $((i / 10)).$((i % 10)) s"
    ((rc == 0)) || { fail 11 "ringtgt exited with status $rc on SIGTERM, want 0"; return 1; }
}

p11() {
    local i ns_size ns_bs size bs w r w0 r0 n m q msk
    for ((i = 0; i < 200; i++)); do
        [[ -c /dev/ng0n1 && -b $NVME_DEV ]] && break
        sleep 0.1
    done
    if [[ ! -c /dev/ng0n1 || ! -b $NVME_DEV ]]; then
        fail 11 "no /dev/ng0n1 and $NVME_DEV within 20 s of the point's start (run.sh adds an NVMe controller)"
        run ls -l /dev/
        dmesg | grep -i nvme | sed 's/^/  | /'
        return 1
    fi
    run ls -l /dev/ng0n1 "$NVME_DEV"
    ns_size=$(blockdev --getsize64 "$NVME_DEV") ns_bs=$(blockdev --getss "$NVME_DEV")
    q=/sys/block/${NVME_DEV#/dev/}/queue
    echo "  namespace: $(tr -s ' ' <"/sys/class/nvme/nvme0/model") serial $(tr -d ' ' <"/sys/class/nvme/nvme0/serial")," \
        "size=$ns_size logical_block_size=$ns_bs, largest command $(cat "$q/max_hw_sectors_kb") KiB," \
        "optimal_io_size=$(cat "$q/optimal_io_size") discard_max_bytes=$(cat "$q/discard_max_bytes")" \
        "write_zeroes_max_bytes=$(cat "$q/write_zeroes_max_bytes")"
    [[ $ns_size == "$NVME_SIZE" ]] || fail 11 "the namespace has $ns_size bytes, want $NVME_SIZE"
    [[ $ns_bs == "$NVME_BS" ]] || fail 11 "the namespace's logical block size is $ns_bs, want $NVME_BS"

    head -c 1M /dev/urandom >/tmp/p11-a.bin
    p11_write "$NVME_DEV" "$P11_A" /tmp/p11-a.bin || { fail 11 "writing pattern A to $NVME_DEV failed"; return 1; }
    p11_start || return 1

    if ! runo /tmp/disc11.txt timeout 60 iscsiadm -m discovery -t sendtargets -p "$NVME_PORTAL"; then
        fail 11 "discovery through $NVME_PORTAL failed"
        return 1
    fi
    grep -q "^$NVME_PORTAL,[0-9]* $NVME_IQN\$" /tmp/disc11.txt ||
        { fail 11 "discovery did not list '$NVME_PORTAL,<tpgt> $NVME_IQN'"; return 1; }
    if ! runo /tmp/login11.txt timeout 60 iscsiadm -m node -T "$NVME_IQN" -p "$NVME_PORTAL" --login ||
        ! grep -q "Login to .*$NVME_IQN.* successful" /tmp/login11.txt; then
        fail 11 "iscsiadm did not log in to $NVME_IQN"
        return 1
    fi
    for ((i = 0; i < 200; i++)); do
        NVME_SDX=$(nvme_lun_dev) && break
        sleep 0.1
    done
    if [[ -z $NVME_SDX ]]; then
        fail 11 "the LUN did not appear as a block device within 20 s of the login"
        run iscsiadm -m session -P 3
        return 1
    fi
    q=/sys/block/${NVME_SDX#/dev/}/queue
    say "the LUN is $NVME_SDX ($(readlink -f "/sys/block/${NVME_SDX#/dev/}/device" | grep -o 'session[0-9]*'))"
    run sg_readcap --long "$NVME_SDX"
    run sg_vpd -p bl "$NVME_SDX"
    echo "  $NVME_SDX: max_sectors_kb=$(cat "$q/max_sectors_kb") max_hw_sectors_kb=$(cat "$q/max_hw_sectors_kb")" \
        "discard_max_bytes=$(cat "$q/discard_max_bytes") discard_granularity=$(cat "$q/discard_granularity")"

    echo "---- a. pattern A, written to $NVME_DEV at ${P11_A} MiB, through the LUN"
    p11_check "pattern A through the LUN" "$NVME_SDX" "$P11_A" 1 /tmp/p11-a.bin &&
        say "pattern A reads back through $NVME_SDX"

    echo "---- b. size and block size"
    size=$(blockdev --getsize64 "$NVME_SDX") bs=$(blockdev --getss "$NVME_SDX")
    echo "  $NVME_SDX: size=$size logical_block_size=$bs; namespace: size=$ns_size logical_block_size=$ns_bs"
    [[ $size == "$ns_size" ]] || fail 11 "the LUN has $size bytes, the namespace $ns_size"
    [[ $bs == "$ns_bs" ]] || fail 11 "the LUN's logical block size is $bs, the namespace's $ns_bs"

    echo "---- c. fio verify through the LUN"
    if fio_run 11 /tmp/fio-p11-rand.txt --name=p11rand --filename="$NVME_SDX" --rw=randwrite --bs=4k \
        --offset="${P11_RAND}M" --size="${P11_FIO}M" --do_verify=1; then
        w=$(io_total /tmp/fio-p11-rand.txt WRITE) r=$(io_total /tmp/fio-p11-rand.txt READ)
        say "4 KiB random: wrote $w, verified $r"
        [[ -n $w && $w == "$r" ]] || fail 11 "4 KiB random: verified $r of the $w written"
    fi
    # The 1 MiB writes and reads must reach the target whole, twice the controller's largest
    # command. Linux caps a disk's requests at its OPTIMAL TRANSFER LENGTH (Block Limits VPD)
    # where that is at least a page: a LUN that reports 4 KiB there gets 4 KiB requests. The
    # cap is raised here for this pass (as far as the LUN's MAXIMUM TRANSFER LENGTH allows).
    msk=$(cat "$q/max_sectors_kb")
    if ((msk < 1024)); then
        say "note: the initiator caps $NVME_SDX's requests at $msk KiB (max_sectors_kb, from the LUN's" \
            "OPTIMAL TRANSFER LENGTH); raised to 1024 for the 1 MiB pass"
        echo 1024 >"$q/max_sectors_kb" ||
            fail 11 "cannot raise max_sectors_kb to 1024 (max_hw_sectors_kb $(cat "$q/max_hw_sectors_kb"))"
    fi
    w0=$(writes_done "$NVME_SDX") r0=$(reads_done "$NVME_SDX")
    if fio_run 11 /tmp/fio-p11-seq.txt --name=p11seq --filename="$NVME_SDX" --rw=write --bs=1M \
        --offset="${P11_SEQ}M" --size="${P11_FIO}M" --do_verify=1; then
        w=$(io_total /tmp/fio-p11-seq.txt WRITE) r=$(io_total /tmp/fio-p11-seq.txt READ)
        n=$(($(writes_done "$NVME_SDX") - w0)) m=$(($(reads_done "$NVME_SDX") - r0))
        say "1 MiB sequential: wrote $w, verified $r; the target got $n writes and $m reads" \
            "($((P11_FIO * 1024 / (n > 0 ? n : 1))) and $((P11_FIO * 1024 / (m > 0 ? m : 1))) KiB each)"
        [[ -n $w && $w == "$r" ]] || fail 11 "1 MiB sequential: verified $r of the $w written"
        ((n <= P11_FIO && m <= P11_FIO)) ||
            fail 11 "the 1 MiB writes and reads did not reach the target whole ($n writes, $m reads \
for ${P11_FIO} MiB): transfers above the controller's largest command were not tested"
    fi
    echo "$msk" >"$q/max_sectors_kb"

    echo "---- d. pattern B through the LUN at ${P11_B} MiB"
    head -c 1M /dev/urandom >/tmp/p11-b.bin
    p11_write "$NVME_SDX" "$P11_B" /tmp/p11-b.bin || fail 11 "writing pattern B through $NVME_SDX failed"

    echo "---- e. blkdiscard (UNMAP) of ${P11_DISC_LEN} MiB at ${P11_DISC} MiB, where fio wrote"
    if ! p11_read "$NVME_SDX" "$P11_DISC" "$P11_DISC_LEN" /tmp/p11-disc.bin; then
        fail 11 "reading the range to discard through the LUN failed"
    elif zeros /tmp/p11-disc.bin; then
        fail 11 "the range to discard reads zeros before the discard (fio's data is not there)"
    fi
    if (($(cat "$q/discard_max_bytes") == 0)); then
        fail 11 "$NVME_SDX takes no discard (discard_max_bytes 0): the LUN offers no UNMAP"
    elif ! run blkdiscard -v -o $((P11_DISC << 20)) -l $((P11_DISC_LEN << 20)) "$NVME_SDX"; then
        fail 11 "blkdiscard failed"
    elif p11_check "the discarded range through the LUN" "$NVME_SDX" "$P11_DISC" "$P11_DISC_LEN" zeros; then
        say "the discarded range reads zeros through $NVME_SDX"
    fi

    p11_exclusive

    echo "---- f. logout, ringtgt stopped, the namespace read directly"
    if ! runo /tmp/logout11.txt timeout 60 iscsiadm -m node -T "$NVME_IQN" -p "$NVME_PORTAL" --logout ||
        ! grep -q "Logout of .*$NVME_IQN.* successful" /tmp/logout11.txt; then
        fail 11 "iscsiadm did not log out of $NVME_IQN"
        return 1
    fi
    p11_stop || return 1
    p11_check "pattern B (written through the LUN) on the namespace" "$NVME_DEV" "$P11_B" 1 /tmp/p11-b.bin &&
        say "pattern B, written through the LUN, is on the namespace"
    p11_check "the range discarded through the LUN, on the namespace" "$NVME_DEV" "$P11_DISC" "$P11_DISC_LEN" zeros &&
        say "the discarded range reads zeros on the namespace"
    p11_check "pattern A on the namespace, after it all" "$NVME_DEV" "$P11_A" 1 /tmp/p11-a.bin &&
        say "pattern A is still on the namespace"
    ((P11_STANDIN)) && return 0
    p11_metadata
    p11_live
}

if selected 11; then
    p11_mark=$(dmesg_mark)
    p11_t0=$SECONDS
    p11
    # Whatever failed: no session, no node record, no ringtgt left.
    if [[ -n $(nvme_lun_dev) ]] || iscsiadm -m session 2>/dev/null | grep "$NVME_IQN" >/dev/null; then
        run timeout 60 iscsiadm -m node -T "$NVME_IQN" -p "$NVME_PORTAL" --logout
    fi
    if [[ -n $NVME_PID ]]; then
        kill -TERM "$NVME_PID" 2>/dev/null
        for ((i = 0; i < 100; i++)); do
            kill -0 "$NVME_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$NVME_PID" 2>/dev/null
        wait "$NVME_PID" 2>/dev/null
    fi
    iscsiadm -m node -T "$NVME_IQN" -o delete 2>/dev/null
    echo "+ dmesg (point 11)"
    dmesg_since "$p11_mark" | sed 's/^/  | /'
    no_failed_io 11 "$p11_mark" "on the NVMe LUN or the namespace"
    bad='Call Trace|BUG:|WARNING:|Oops|Sense Key|Add\. Sense|blocked for more than|[Uu]nsupported'
    if dmesg_since "$p11_mark" | drop_known_kernel_splats | grep -E "$bad" >/tmp/p11-bad.txt; then
        fail 11 "the kernel logged faults:"
        sed 's/^/  | /' /tmp/p11-bad.txt
    fi
    # ringtgt logs at error level only for its own faults (DESIGN.md §6), as run.sh holds the
    # host's ringtgts to.
    if grep -a ' ERROR ' "$NVME_LOG" >/tmp/p11-errors.txt 2>/dev/null; then
        fail 11 "ringtgt logged errors:"
        sed 's/^/  | /' /tmp/p11-errors.txt
    fi
    if grep -a ' WARN ' "$NVME_LOG" >/tmp/p11-warn.txt 2>/dev/null; then
        say "ringtgt's warnings (not failures):"
        tail -n 20 /tmp/p11-warn.txt | sed 's/^/  | /'
    fi
    if ((!POINT_OK[11])); then
        echo "+ ringtgt's log (last 200 lines of $NVME_LOG in the guest)"
        tail -n 200 "$NVME_LOG" 2>/dev/null | sed 's/^/  | /'
    fi
    say "point 11 took $((SECONDS - p11_t0)) s"
fi

# ---------------------------------------------------------------------------------------------
failed=0
for p in "${!POINT_NAME[@]}"; do
    [[ -n ${POINT_SKIP[$p]:-} ]] && continue
    ((POINT_OK[$p])) || failed=$((failed + 1))
done
if ((failed)); then
    echo
    echo "======== guest dmesg (a point failed)"
    dmesg
fi
echo
for p in "${!POINT_NAME[@]}"; do
    if [[ -n ${POINT_SKIP[$p]:-} ]]; then
        echo "RESULT point $p: SKIPPED - ${POINT_NAME[$p]} (${POINT_SKIP[$p]})"
        continue
    fi
    if ((POINT_OK[$p])); then v=PASS; else v=FAIL; fi
    echo "RESULT point $p: $v - ${POINT_NAME[$p]}"
done
say "done"
exit "$failed"
