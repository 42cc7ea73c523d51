#!/usr/bin/env bash
# Brings up a throwaway single-node Ceph cluster in DIR for the RBD tests: one monitor, one
# manager and one BlueStore OSD on a sparse file, all on 127.0.0.1 with cephx, and a pool "rbd"
# of size 1. Returns once every placement group is active+clean.
#
#   scripts/ceph/up.sh DIR [--owner PID]
#
# DIR must not hold a running cluster (it is wiped). Everything the daemons write (data, logs,
# sockets, pid files) stays under DIR. Afterwards:
#   DIR/ceph.conf   configuration for clients (CEPH_CONF=DIR/ceph.conf; it names the keyring)
#   DIR/env         shell lines exporting CEPH_CONF and RINGTGT_TEST_CEPH_CONF
# With --owner PID, a watcher tears the cluster down (scripts/ceph/down.sh) once PID has exited,
# so a test process that dies cannot leave daemons behind.
#
# Needs Debian's ceph-mon, ceph-mgr, ceph-osd and ceph-common (ceph 16 is known to work).
# Settings: CEPH_OSD_SIZE (sparse OSD file, default 8G), CEPH_UP_TIMEOUT (seconds, default 90).
set -euo pipefail

usage() {
    echo "usage: $0 DIR [--owner PID]" >&2
    exit 2
}
[[ $# -ge 1 ]] || usage
DIR=$(realpath -m "$1")
shift
OWNER=
while [[ $# -gt 0 ]]; do
    case $1 in
    --owner)
        [[ $# -ge 2 ]] || usage
        OWNER=$2
        shift 2
        ;;
    *) usage ;;
    esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
OSD_SIZE=${CEPH_OSD_SIZE:-8G}
TIMEOUT=${CEPH_UP_TIMEOUT:-90}

for tool in ceph-mon ceph-mgr ceph-osd ceph ceph-authtool monmaptool rbd; do
    if ! command -v "$tool" >/dev/null; then
        echo "ceph/up.sh: $tool not found: apt-get install --no-install-recommends" \
            "ceph-mon ceph-mgr ceph-osd ceph-common" >&2
        exit 3
    fi
done

if [[ -e $DIR/run ]]; then
    "$HERE/down.sh" "$DIR" >/dev/null 2>&1 || true
fi
rm -rf "$DIR"
mkdir -p "$DIR"/{log,run,crash,mon.a,mgr.x,osd.0}
CONF=$DIR/ceph.conf
KEYRING=$DIR/keyring
FSID=$(cat /proc/sys/kernel/random/uuid)

# shellcheck source=scripts/lib/free-port.sh
source "$HERE/../lib/free-port.sh"
MON_PORT=$(free_port)
MON_ADDR="v2:127.0.0.1:$MON_PORT"

cat >"$CONF" <<EOF
# Written by scripts/ceph/up.sh: a single-node test cluster. Not for production.
[global]
fsid = $FSID
mon host = [$MON_ADDR]
public addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $KEYRING
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
crash dir = $DIR/crash
log file = $DIR/log/\$name.log
mon cluster log file = $DIR/log/cluster.log
log to stderr = false
err to stderr = false
log to syslog = false
# One OSD: one copy of everything, placement by OSD rather than by host.
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
# Quiet the warnings a single small node always raises.
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
mon max pg per osd = 1000
# A client that died (a killed test) gives up its image watch quickly.
osd client watch timeout = 10

[mon]
mon data = $DIR/\$name
mon initial members = a

[mgr]
mgr data = $DIR/\$name
mgr initial modules =

[osd]
osd data = $DIR/\$name
osd objectstore = bluestore
bluestore block create = true
bluestore block size = $OSD_SIZE
bluestore block db create = false
bluestore block wal create = false
bluestore fsck on mount = false
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 67108864
osd op num shards = 1
osd op num threads per shard = 2
EOF

ceph-authtool --create-keyring "$KEYRING" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$KEYRING" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
ceph-authtool "$KEYRING" --gen-key -n mgr.x \
    --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' >/dev/null
ceph-authtool "$KEYRING" --gen-key -n osd.0 \
    --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
chmod 600 "$KEYRING"

monmaptool --create --addv a "[$MON_ADDR]" --fsid "$FSID" "$DIR/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$KEYRING" \
    </dev/null >"$DIR/log/mkfs-mon.log" 2>&1

# Every daemon forks into the background; its descriptors must not keep the caller's pipes open.
ceph-mon -c "$CONF" -i a </dev/null >>"$DIR/log/daemons.out" 2>&1
ceph-mgr -c "$CONF" -i x </dev/null >>"$DIR/log/daemons.out" 2>&1

if [[ -n $OWNER ]]; then
    # Detached from the caller's descriptors, so that a test harness waiting on its pipes is not
    # held up by the watcher.
    # shellcheck disable=SC2016 # expanded by the inner shell, from its arguments
    nohup setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" "$3"' \
        watcher "$OWNER" "$HERE/down.sh" "$DIR" </dev/null >>"$DIR/log/watcher.log" 2>&1 &
    echo "$!" >"$DIR/run/watcher.pid"
fi

CEPH=(ceph -c "$CONF" --connect-timeout 10)
deadline=$((SECONDS + TIMEOUT))
# wait_for DESCRIPTION COMMAND...: retries COMMAND until it succeeds or the deadline passes.
wait_for() {
    local what=$1
    shift
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "ceph/up.sh: timed out waiting for $what; logs in $DIR/log" >&2
            exit 1
        fi
        sleep 0.5
    done
}
wait_for "the monitor" "${CEPH[@]}" mon stat
# The pool is the monitor's business: create it while the OSD is being made.
"${CEPH[@]}" osd pool create rbd 8 8 >/dev/null 2>&1
"${CEPH[@]}" osd pool application enable rbd rbd >/dev/null 2>&1

OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
"${CEPH[@]}" osd new "$OSD_UUID" 0 >/dev/null
ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" </dev/null >"$DIR/log/mkfs-osd.log" 2>&1
ceph-osd -c "$CONF" -i 0 </dev/null >>"$DIR/log/daemons.out" 2>&1

osd_up() { [[ $("${CEPH[@]}" osd stat -f json) == *'"num_up_osds":1'* ]]; }
wait_for "the OSD" osd_up

# HEALTH_OK can show before the placement groups have peered: wait for all of them.
pgs_clean() {
    local s
    s=$("${CEPH[@]}" pg stat -f json)
    [[ $s =~ \"num_pgs\":([0-9]+) ]] || return 1
    local n=${BASH_REMATCH[1]}
    ((n > 0)) && [[ $s == *"{\"name\":\"active+clean\",\"num\":$n}"* ]]
}
wait_for "active+clean placement groups" pgs_clean

cat >"$DIR/env" <<EOF
export CEPH_CONF=$CONF
export RINGTGT_TEST_CEPH_CONF=$CONF
EOF
echo "ceph/up.sh: cluster $FSID up in $DIR (mon $MON_ADDR, pool rbd); CEPH_CONF=$CONF"
