#!/usr/bin/env bash
# Stops the test cluster that scripts/ceph/up.sh started in DIR and removes DIR.
#
#   scripts/ceph/down.sh DIR [--keep]
#
# Each daemon is stopped by the pid in its pid file (SIGTERM, then SIGKILL after 3 s), never
# by name, so other clusters on the machine are left alone. --keep leaves DIR (logs) in place.
set -uo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 DIR [--keep]" >&2
    exit 2
fi
DIR=$(realpath -m "$1")
KEEP=${2:-}
if [[ ! -d $DIR ]]; then
    exit 0
fi

# is_ours PID NAME: the process exists and runs the daemon NAME (a recycled pid is left alone).
is_ours() {
    [[ -r /proc/$1/cmdline ]] && tr "\0" " " <"/proc/$1/cmdline" 2>/dev/null | grep -q -- "$2"
}

pids=()
for name in osd.0 mgr.x mon.a; do
    f=$DIR/run/$name.pid
    [[ -r $f ]] || continue
    pid=$(<"$f")
    bin=ceph-${name%%.*}
    if [[ $pid =~ ^[0-9]+$ ]] && is_ours "$pid" "$bin"; then
        kill -TERM "$pid" 2>/dev/null && pids+=("$pid:$bin")
    fi
done
for _ in $(seq 30); do
    alive=()
    for entry in "${pids[@]}"; do
        is_ours "${entry%%:*}" "${entry#*:}" && alive+=("$entry")
    done
    ((${#alive[@]})) || break
    sleep 0.1
done
for entry in "${alive[@]}"; do
    pid=${entry%%:*}
    is_ours "$pid" "${entry#*:}" && kill -KILL "$pid" 2>/dev/null
done

w=$DIR/run/watcher.pid
if [[ -r $w ]]; then
    pid=$(<"$w")
    # The watcher itself runs this script when its owner ends; only stop it from elsewhere.
    if [[ $pid =~ ^[0-9]+$ && $pid != "$PPID" && $pid != "$$" ]] && is_ours "$pid" watcher; then
        kill "$pid" 2>/dev/null
    fi
fi

if [[ $KEEP != --keep ]]; then
    rm -rf "$DIR"
fi
