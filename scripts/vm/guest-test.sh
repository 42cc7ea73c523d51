#!/bin/bash
# Runs inside the harness's guest (stock Debian kernel, open-iscsi, fio) against the ringtgt that
# run.sh started on the host. It checks the five points of the Linux-initiator issue, CHAP (point 6)
# and a graceful target stop (point 7), printing
# every initiator command with its own output, and ends with one "RESULT point N: PASS|FAIL" line
# per point. Its exit status is the number of failed points (0 = all passed).
#
# It talks to run.sh through the serial console: a line "@@ringtgt-vm: host ACTION@@" asks the
# host to act on the target's side (point 4): partition = black-hole the session's connection,
# heal = lift that, cut = destroy the target's TCP connections, restart = kill ringtgt and start
# it again on the same LUN file; and (point 7) stop = stop ringtgt with SIGTERM, as systemctl
# stop does, and start it again. The parameters come from params.env beside this script
# (written by run.sh).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
. "$HERE/params.env"

PORTAL=$TARGET_IP:$TARGET_PORT
START=$SECONDS
declare -A POINT_OK=([1]=1 [2]=1 [3]=1 [4]=1 [5]=1 [6]=1 [7]=1)
POINT_NAME=(
    [1]="discovery, login, LUN identity"
    [2]="fio verify (4 KiB random, 1 MiB sequential, iodepth 32)"
    [3]="ext4: mkfs, files, e2fsck -fn, remount (CRC32C digests from here), checksums"
    [4]="partition (reinstatement), connection cut, target restart during fio writes"
    [5]="clean logout, no errors in dmesg"
    [6]="CHAP: discovery, one-way and mutual with every algorithm, wrong secrets refused"
    [7]="target stop (SIGTERM) during fio writes: logout on request, login when it is back"
)

say() { echo "guest[$((SECONDS - START))s]: $*"; }
fail() { # fail POINT MESSAGE
    POINT_OK[$1]=0
    echo "guest: FAIL (point $1): $2"
}
section() {
    echo
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
section 1
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

# ---------------------------------------------------------------------------------------------
section 2
# Random 4 KiB writes over the 4 KiB-sector RAM LUN, then 1 MiB sequential writes over the file
# LUN; each job writes its whole size, then reads every block back and checks its crc32c.
if dev1=$(lun_dev 1) && dev0=$(lun_dev 0); then
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
if dev=$(lun_dev 1); then
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
say "write regions of ${region_mib} MiB (point 2 wrote ${iops:-?} IOPS)"

# writes_done DEV: writes completed on DEV so far (field 5 of /sys/block/X/stat).
writes_done() { awk '{print $5}' "/sys/block/${1#/dev/}/stat"; }
# p4_args N: the fio arguments of region N (the same for writing and for verify_only).
p4_args() { echo "--name=p4r$1 --rw=randwrite --bs=4k --offset=$(($1 * region_mib))M --size=${region_mib}M"; }

if dev=$(lun_dev 0); then
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
section 7
if dev=$(lun_dev 0); then
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
    [[ $state != "LOGGED_IN/LOGGED IN" ]] || fail 7 "the session was still logged in 30 s after the stop"
    for ((i = 0; i < 600; i++)); do
        [[ $(session_state) == "LOGGED_IN/LOGGED IN" ]] && break
        sleep 0.1
    done
    state=$(session_state)
    say "session state: $state, $((SECONDS - t0))s after the stop"
    [[ $state == "LOGGED_IN/LOGGED IN" ]] || fail 7 "the session did not log in again once the target was back"
    [[ $(session_id) == "$sid_before" ]] ||
        fail 7 "the initiator replaced its session (sid $sid_before -> $(session_id)) instead of recovering it"
    wait "$fio_pid"
    rc=$?
    echo "+ fio write phase across the stop: exit status $rc"
    sed 's/^/  | /' /tmp/fio-p7.txt
    if [[ $rc != 0 ]] || grep -E 'err= *[1-9]' /tmp/fio-p7.txt >/dev/null; then
        fail 7 "fio's writes failed across the stop"
    elif dev=$(lun_dev 0); then
        fio_run 7 /tmp/fio-p7-verify.txt --filename="$dev" --verify_only "${p7_args[@]}" &&
            say "verified $(io_total /tmp/fio-p7-verify.txt READ) written across the stop"
    else
        fail 7 "LUN 0 missing after the stop"
    fi
    # LUN 1 serves again too. (The restarted target reports a power-on to each unit's first
    # command: LUN 1 takes it here rather than at point 5's logout.)
    if dev1=$(lun_dev 1); then
        run dd if="$dev1" of=/dev/null bs=4k count=1 iflag=direct status=none ||
            fail 7 "LUN 1 cannot be read after the stop"
    else
        fail 7 "LUN 1 missing after the stop"
    fi
    echo "+ dmesg (since the stop)"
    dmesg_since "$mark" | sed 's/^/  | /'
    no_failed_io 7 "$mark" "across the stop"
else
    fail 7 "LUN 0 not attached"
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

# ---------------------------------------------------------------------------------------------
section 5
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

# ---------------------------------------------------------------------------------------------
failed=0
for p in 1 2 3 4 5 6 7; do
    ((POINT_OK[$p])) || failed=$((failed + 1))
done
if ((failed)); then
    echo
    echo "======== guest dmesg (a point failed)"
    dmesg
fi
echo
for p in 1 2 3 4 5 6 7; do
    if ((POINT_OK[$p])); then v=PASS; else v=FAIL; fi
    echo "RESULT point $p: $v - ${POINT_NAME[$p]}"
done
say "done"
exit "$failed"
