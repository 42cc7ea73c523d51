#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need (libiscsi-bin, Ceph and
# librbd-dev), then runs formatting and lint checks, every unit and integration test, the libiscsi
# conformance suites (on RAM LUNs, then on an RBD LUN of a throwaway Ceph cluster), a short run
# of every fuzz target and the Linux initiator in a VM. Every step runs even after a failure, so
# one run shows everything that is broken; the exit status is non-zero if any step failed.
#
# Integration tests use the debug binary (Cargo's CARGO_BIN_EXE_ringtgt); conformance and the VM
# use one release binary (`--features rbd` when Ceph is installed), built once by the
# build-release step, where iscsi-test-cu's large transfers run faster.
#
# Schedule (for a 2-core CI machine): the VM step (linux-initiator, mostly QEMU TCG time on one
# core, and the longest step) and fuzz-smoke (at a lower CPU priority: nice) start in the
# background as soon as the release binary is built. Beside them, in the foreground and one
# after another: the unit and integration tests, those of the `rbd` feature, the conformance
# suites, then the lints; builds there are niced too, so that the VM keeps its core. The Ceph cluster comes up in the
# background during fmt and the release build. Background steps write their
# output to target/test-sh/STEP.log, printed when the step is collected under the same
# "==> STEP" header with the same ok/FAILED line and time.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

START=$SECONDS
FAILED=()
PASSED=()
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BG_LOGS=$TARGET_DIR/test-sh
rm -rf "$BG_LOGS"
mkdir -p "$BG_LOGS"

step() {
    local name=$1
    shift
    echo
    echo "==> $name: $*"
    local t=$SECONDS
    if "$@"; then
        PASSED+=("$name")
        echo "==> $name: ok ($((SECONDS - t))s)"
    else
        FAILED+=("$name")
        echo "==> $name: FAILED ($((SECONDS - t))s)"
    fi
}

# --- Background steps ----------------------------------------------------------------------------
# bg_steps LANE [NAME CMD ARG... ;]...: runs the steps one after another in a background lane;
# each step's output goes to $BG_LOGS/NAME.log (after its "==> NAME: CMD" header), its exit
# status, time and start (seconds after this script's) to $BG_LOGS/NAME.status. The arguments
# are steps separated by ";" words.
declare -A LANE_OF=()
LANE_PIDS=()
bg_steps() {
    local lane=$1 names=() args=() a
    shift
    for a in "$@" ";"; do
        if [[ $a == ";" ]]; then
            ((${#args[@]})) && names+=("${args[0]}")
            args=()
        else
            args+=("$a")
        fi
    done
    (
        local cmd=() t rc name
        for a in "$@" ";"; do
            if [[ $a != ";" ]]; then
                cmd+=("$a")
                continue
            fi
            ((${#cmd[@]})) || continue
            name=${cmd[0]}
            t=$SECONDS rc=0
            {
                echo "==> $name: ${cmd[*]:1}"
                "${cmd[@]:1}"
            } </dev/null >"$BG_LOGS/$name.log" 2>&1 || rc=$?
            # Written whole, then renamed: `collect` never reads a half-written status.
            echo "$rc $((SECONDS - t)) $((t - START))" >"$BG_LOGS/$name.status.part"
            mv "$BG_LOGS/$name.status.part" "$BG_LOGS/$name.status"
            cmd=()
        done
    ) &
    LANE_PIDS+=("$!")
    for a in "${names[@]}"; do
        LANE_OF[$a]=$!
        echo
        echo "==> $a: runs in the background (lane $lane), output in $BG_LOGS/$a.log; shown when it ends"
    done
}

# collect NAME: waits for background step NAME, prints its output and its ok/FAILED line;
# fails if the step did.
collect() {
    local name=$1 pid=${LANE_OF[$1]} rc secs began waited=$SECONDS
    while [[ ! -f $BG_LOGS/$name.status ]] && kill -0 "$pid" 2>/dev/null; do
        sleep 1
    done
    echo
    cat "$BG_LOGS/$name.log" 2>/dev/null || echo "==> $name: (no output)"
    if [[ -f $BG_LOGS/$name.status ]]; then
        read -r rc secs began <"$BG_LOGS/$name.status"
    else
        rc=lost secs='?' began='?'
        echo "test.sh: the background lane of $name ended without a status for it"
    fi
    local when="in the background from +${began}s; waited $((SECONDS - waited))s for it here"
    if [[ $rc == 0 ]]; then
        PASSED+=("$name")
        echo "==> $name: ok (${secs}s, $when)"
    else
        FAILED+=("$name")
        echo "==> $name: FAILED (${secs}s, $when)"
        return 1
    fi
}

# kill_tree PID: ends PID's descendants, then PID (SIGTERM), by process id.
kill_tree() {
    local child
    for child in $(pgrep -P "$1"); do
        kill_tree "$child"
    done
    kill -TERM "$1" 2>/dev/null
}

# Runs a command as root: directly, or through sudo when there is one.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "test.sh: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

# libiscsi-bin provides iscsi-ls, iscsi-inq, iscsi-readcapacity16 and iscsi-test-cu. The package
# lists are refreshed only when the install fails without it (a fresh machine has none).
install_libiscsi() {
    if command -v iscsi-test-cu >/dev/null && command -v iscsi-ls >/dev/null; then
        echo "libiscsi tools present"
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -q libiscsi-bin ||
        { as_root apt-get update -q && as_root apt-get install -y -q libiscsi-bin; }
}

# Ceph RBD LUNs (issue 11) need librbd-dev and libclang-dev to build (the `rbd` feature) and a
# single-node cluster from ceph-mon, ceph-mgr, ceph-osd and ceph-common to test. Where they cannot
# be installed, the RBD tests are skipped (said loudly), not failed.
CEPH_PACKAGES=(ceph-mon ceph-mgr ceph-osd ceph-common librbd-dev libclang-dev)
RBD=0
CEPH_INSTALLED=0 # the VM step's point 9 runs its own cluster: it only needs the packages
install_ceph() {
    if dpkg -s "${CEPH_PACKAGES[@]}" >/dev/null 2>&1; then
        echo "Ceph packages present"
        RBD=1 CEPH_INSTALLED=1
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    if as_root apt-get install -y -q --no-install-recommends "${CEPH_PACKAGES[@]}" ||
        { as_root apt-get update -q &&
            as_root apt-get install -y -q --no-install-recommends "${CEPH_PACKAGES[@]}"; }; then
        RBD=1 CEPH_INSTALLED=1
    else
        echo "test.sh: SKIPPING the Ceph RBD tests: cannot install ${CEPH_PACKAGES[*]}"
    fi
    return 0
}

# The cluster the RBD integration tests and the RBD conformance run share (on tmpfs when there
# is one: the OSD's commits then cost no disk flush); torn down at exit, or by up.sh's watcher
# if this script is killed. It comes up in the background (the ceph-up step).
CEPH_DIR=
ceph_up() {
    scripts/ceph/up.sh "$CEPH_DIR" --owner "$1"
}
# At exit: background lanes still running (only after an interruption) are ended first, then
# the cluster is torn down.
on_exit() {
    local pid
    [[ -n $RESET_RECORDER ]] && kill -INT "$RESET_RECORDER" 2>/dev/null
    for pid in "${LANE_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && kill_tree "$pid"
    done
    for pid in "${LANE_PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    [[ -n $CEPH_DIR ]] && scripts/ceph/down.sh "$CEPH_DIR"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# --- A flight recorder for TCP resets, while the tests run ---------------------------------------
# Some runs beside the VM lost a test's first login to a reset with nothing in the daemon's log
# (see the test step below). While the tests run, the kernel's tcp_send_reset tracepoint is
# recorded with perf (when installed: a few hundred events a run); if a test step fails, the
# resets on the tests' ports (tests/common/daemon.rs: 20000-26999) are printed, counted by
# sending thread, reason and kernel stack, then one by one: the stack says what sent each (a
# listener closed with connections queued, a socket closed with data unread, a segment for no
# socket), and the ports tie it to the failed test's connection.
RESETS=$BG_LOGS/resets.data
RESET_RECORDER=
start_reset_recorder() {
    if ! command -v perf >/dev/null 2>&1; then
        echo "test.sh: perf is not installed: TCP resets during the tests are not recorded"
        return 0
    fi
    perf record -q -a -g -e tcp:tcp_send_reset -o "$RESETS" >/dev/null 2>"$BG_LOGS/resets.err" &
    RESET_RECORDER=$!
}
stop_reset_recorder() {
    [[ -n $RESET_RECORDER ]] || return 0
    kill -INT "$RESET_RECORDER" 2>/dev/null
    wait "$RESET_RECORDER" 2>/dev/null
    RESET_RECORDER=
    [[ " ${FAILED[*]} " == *" test "* || " ${FAILED[*]} " == *" test-rbd "* ]] || return 0
    echo
    echo "==> TCP resets sent on the tests' ports while they ran (perf, tcp:tcp_send_reset):"
    if [[ ! -s $RESETS ]]; then
        echo "(none recorded: $(head -c 300 "$BG_LOGS/resets.err" 2>/dev/null))"
        return 0
    fi
    # One line per reset: thread, ports, state, reason, the 8 innermost kernel frames.
    perf script -i "$RESETS" 2>/dev/null | awk '
        /tcp:tcp_send_reset/ { head = $0; frames = ""; n = 0; inside = 1; next }
        inside && NF == 0 {
            inside = 0
            if (match(head, /src=[0-9.]+:([0-9]+) dest=[0-9.]+:([0-9]+)/)) {
                split(substr(head, RSTART, RLENGTH), a, /[: ]/)
                s = a[2] + 0; d = a[4] + 0
                if ((s >= 20000 && s < 27000) || (d >= 20000 && d < 27000)) {
                    sub(/^ +/, "", head); sub(/skbaddr=[^ ]+ skaddr=[^ ]+ /, "", head)
                    print head " |" frames
                }
            }
            next
        }
        inside && n < 8 { f = $2; sub(/\+0x[0-9a-f]+$/, "", f); frames = frames " " f; n++ }
    ' >"$BG_LOGS/resets.txt"
    echo "by thread, reason and stack ($(wc -l <"$BG_LOGS/resets.txt") resets):"
    sed -E 's/^([^ ]+) .* (state=[^ ]+ reason=[^ ]+) \|/\1 \2 |/' "$BG_LOGS/resets.txt" |
        sed -E 's/^([a-z_-]+)[-0-9/:]*[^ ]* /\1 /' | sort | uniq -c | sort -rn | head -n 20
    echo "each (at most 200):"
    head -n 200 "$BG_LOGS/resets.txt"
}

install_rust_components() {
    cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1 && return 0
    rustup component add rustfmt clippy
}

# With Ceph, clippy also lints and the release binary (conformance, VM) has the `rbd` feature.
# The test suite runs without it, then tests/rbd.rs and the memory bound of tests/hostile.rs
# with it (a binary linked with librados/librbd hands freed heap memory back with a trimmer
# thread, see reactor::start_heap_trimmer).
# Beside the VM, the cargo builds yield the CPU to it.
NICE=(nice -n 10)
# The test builds run niced, beside the VM; the tests themselves at normal priority, as many of
# them time their daemons (logins, keepalives, the hostile-client memory bound).
run_tests() {
    "${NICE[@]}" cargo test --all-targets --no-run --quiet || return 1
    # --no-fail-fast: a failing test binary must not hide the results of the others.
    cargo test --all-targets --no-fail-fast
}
run_rbd_tests() {
    local which=(--features rbd --test rbd --test gateway --test hostile)
    "${NICE[@]}" cargo test "${which[@]}" --no-run --quiet || return 1
    cargo test --no-fail-fast "${which[@]}"
}

step setup install_libiscsi
step ceph-setup install_ceph
if ((RBD)); then
    base=/dev/shm
    [[ -d $base ]] || base=${TMPDIR:-/tmp}
    CEPH_DIR=$base/ringtgt-ceph-$$
    bg_steps ceph ceph-up ceph_up $$
fi
step toolchain install_rust_components
step fmt cargo fmt --all --check

# --- The release binary of conformance and the VM ------------------------------------------------
# With Ceph installed it has the `rbd` feature: conformance-rbd needs it, and the VM's points 9
# and 10 (RBD LUN, two gateways of a cluster the harness runs in its namespace) run rather than
# being skipped.
RELEASE_BIN=$TARGET_DIR/release/ringtgt
RELEASE_FEATURES=()
((CEPH_INSTALLED)) && RELEASE_FEATURES=(--features rbd)
step build-release cargo build --release --quiet --bin ringtgt "${RELEASE_FEATURES[@]}"

# --- Linux initiator (issue 4), in the background from here on --------------------------------
# The kernel's iscsi_tcp + open-iscsi + fio in a QEMU guest (stock Debian kernel) against the
# release ringtgt: discovery/login/identity, fio verify, ext4, connection loss and target restart
# mid-write, clean logout, CHAP, multipath, graceful stop, RBD LUN, gateway failover, an NVMe
# passthrough LUN (ringtgt inside the guest, on QEMU's emulated NVMe controller). Installs
# its tools with apt, caches its image in /var/cache/ringtgt-vm.
run_vm() {
    if [[ ! -x $RELEASE_BIN ]]; then
        echo "linux-initiator: no release binary (see the build-release step)"
        return 1
    fi
    ((CEPH_INSTALLED)) ||
        echo "linux-initiator: no Ceph packages (see the ceph-setup step): points 9 and 10 will be SKIPPED"
    RINGTGT_BIN=$RELEASE_BIN scripts/vm/run.sh
}
bg_steps vm linux-initiator run_vm

# --- Fuzzing, in the background from here on too -----------------------------------------------------
# The fuzzing smoke test (issue 7): every cargo-fuzz target for 20 s on its seeds (nightly
# toolchain, its own target directory fuzz/target, so its build never waits for the tests' cargo
# lock; installs cargo-fuzz if missing; the long runs are `scripts/fuzz.sh SECONDS`, their figures
# in fuzz/README.md). At the lowest CPU priority: it has the most slack, so its build takes the
# CPU the VM and the foreground's own (niced) builds leave; a clean clone spent 598 s in the test
# step when both builds had the same priority.
# Without AddressSanitizer (FUZZ_SANITIZER=none, see scripts/fuzz.sh): its build was this lane's
# longest part, and the lane the run's tail (a clean clone: 1056 s, 132 s after everything else).
bg_steps fuzz fuzz-smoke nice -n 19 env FUZZ_SANITIZER=none scripts/fuzz.sh 20


if ((RBD)); then
    if collect ceph-up; then
        export RINGTGT_TEST_CEPH_CONF=$CEPH_DIR/ceph.conf
    else
        RBD=0
    fi
fi

# --- Tests, beside the VM ------------------------------------------------------------------------
# The unit and integration tests, then those of the `rbd` feature, then conformance, run one after
# another in the foreground while the VM runs. (Four runs that overlapped them lost a fresh
# daemon's first login to a reset, with nothing in the daemon's log. Suspected first: the VM
# harness signalling a reused PID; it now signals only its live children and the PIDs it checked
# to be in its namespace, and the fourth time the daemon was still running, so that was not it.
# The resets the kernel sent while the tests ran are recorded (start_reset_recorder) and printed
# if a test step fails: the kernel stack of the one that hit the test says what sent it.)
start_reset_recorder
step test run_tests
if ((RBD)); then
    step test-rbd run_rbd_tests
else
    echo "==> test-rbd: SKIPPED (no Ceph cluster; see the ceph-setup and ceph-up steps)"
fi
stop_reset_recorder

# --- libiscsi conformance --------------------------------------------------------------------------
# On RAM LUNs, then (with the cluster) on an RBD LUN, with the release binary built above
# (RINGTGT_BIN: conformance.sh builds nothing).
step conformance env RINGTGT_BIN="$RELEASE_BIN" scripts/conformance.sh
if ((RBD)); then
    step conformance-rbd env RINGTGT_BIN="$RELEASE_BIN" \
        CONFORMANCE_CEPH_CONF="$RINGTGT_TEST_CEPH_CONF" scripts/conformance.sh
else
    echo "==> conformance-rbd: SKIPPED (no Ceph cluster; see the ceph-setup and ceph-up steps)"
fi


# --- The lints, still beside the VM ----------------------------------------------------------------
step clippy "${NICE[@]}" cargo clippy --all-targets --quiet -- -D warnings
if ((CEPH_INSTALLED)); then
    # The `rbd` feature compiles other code (src/ceph, the reactor's RBD port): lint it too.
    step clippy-rbd "${NICE[@]}" cargo clippy --all-targets --quiet --features rbd -- -D warnings
fi
collect fuzz-smoke
collect linux-initiator

echo
if ((${#FAILED[@]})); then
    echo "test.sh: FAILED steps: ${FAILED[*]} (passed: ${PASSED[*]:-none}) in $((SECONDS - START))s"
    exit 1
fi
echo "test.sh: all steps passed (${PASSED[*]}) in $((SECONDS - START))s"
