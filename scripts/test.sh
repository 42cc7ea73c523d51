#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need (libiscsi-bin, Ceph and
# librbd-dev), then runs formatting and lint checks, every unit and integration test, the libiscsi
# conformance suites (on RAM LUNs, then on an RBD LUN of a throwaway Ceph cluster), a short run
# of every fuzz target and the Linux initiator in a VM. Every step runs even after a failure, so one run shows everything that is broken; the
# exit status is non-zero if any step failed.
#
# Integration tests use the debug binary (Cargo's CARGO_BIN_EXE_ringtgt); conformance builds and
# uses the release binary, where iscsi-test-cu's large transfers run faster.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

START=$SECONDS
FAILED=()
PASSED=()

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
# if this script is killed.
CEPH_DIR=
ceph_up() {
    local base=/dev/shm
    [[ -d $base ]] || base=${TMPDIR:-/tmp}
    CEPH_DIR=$base/ringtgt-ceph-$$
    scripts/ceph/up.sh "$CEPH_DIR" --owner $$ || return 1
    export RINGTGT_TEST_CEPH_CONF=$CEPH_DIR/ceph.conf
}
ceph_down() {
    [[ -n $CEPH_DIR ]] && scripts/ceph/down.sh "$CEPH_DIR"
}
trap ceph_down EXIT

install_rust_components() {
    cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1 && return 0
    rustup component add rustfmt clippy
}

# With Ceph, clippy also lints and the conformance build uses the `rbd` feature. The test suite
# runs without it, then tests/rbd.rs and the memory bound of tests/hostile.rs with it (a binary
# linked with librados/librbd hands freed heap memory back with a trimmer thread, see
# reactor::start_heap_trimmer).
FEATURES=()
run_tests() {
    # --no-fail-fast: a failing test binary must not hide the results of the others.
    cargo test --all-targets --no-fail-fast
}
run_rbd_tests() {
    cargo test --no-fail-fast --features rbd --test rbd --test gateway --test hostile
}

step setup install_libiscsi
step ceph-setup install_ceph
if ((RBD)); then
    FEATURES=(--features rbd)
    export CONFORMANCE_FEATURES=rbd
    step ceph-up ceph_up
    [[ -n ${RINGTGT_TEST_CEPH_CONF:-} ]] || RBD=0
fi
step toolchain install_rust_components
step fmt cargo fmt --all --check
step clippy cargo clippy --all-targets --quiet -- -D warnings
if ((RBD)); then
    # The `rbd` feature compiles other code (src/ceph, the reactor's RBD port): lint it too.
    step clippy-rbd cargo clippy --all-targets --quiet "${FEATURES[@]}" -- -D warnings
fi
step test run_tests
if ((RBD)); then
    step test-rbd run_rbd_tests
else
    echo "==> test-rbd: SKIPPED (no Ceph cluster; see the ceph-setup step)"
fi
step conformance scripts/conformance.sh
if ((RBD)); then
    step conformance-rbd env CONFORMANCE_CEPH_CONF="$RINGTGT_TEST_CEPH_CONF" scripts/conformance.sh
else
    echo "==> conformance-rbd: SKIPPED (no Ceph cluster; see the ceph-setup step)"
fi

# --- Fuzzing smoke test (issue 7) ------------------------------------------------------------------
# Every cargo-fuzz target for 20 s on its seeds (nightly toolchain; installs cargo-fuzz if
# missing). The long runs are `scripts/fuzz.sh SECONDS`; their figures are in fuzz/README.md.
step fuzz-smoke scripts/fuzz.sh 20

# --- Linux initiator (issue 4) -------------------------------------------------------------------
# The kernel's iscsi_tcp + open-iscsi + fio in a QEMU guest (stock Debian kernel) against a
# release ringtgt: discovery/login/identity, fio verify, ext4, connection loss and target restart
# mid-write, clean logout. Installs its tools with apt, caches its image in /var/cache/ringtgt-vm.
# With Ceph installed the binary has the `rbd` feature, so that point 9 (an RBD LUN of a cluster
# the harness runs in its namespace) runs rather than being skipped.
run_vm() {
    if ((CEPH_INSTALLED)); then
        cargo build --release --quiet --bin ringtgt --features rbd || return 1
        RINGTGT_BIN=${CARGO_TARGET_DIR:-target}/release/ringtgt scripts/vm/run.sh
    else
        echo "linux-initiator: no Ceph packages (see the ceph-setup step): point 9 will be SKIPPED"
        scripts/vm/run.sh
    fi
}
step linux-initiator run_vm

echo
if ((${#FAILED[@]})); then
    echo "test.sh: FAILED steps: ${FAILED[*]} (passed: ${PASSED[*]:-none}) in $((SECONDS - START))s"
    exit 1
fi
echo "test.sh: all steps passed (${PASSED[*]}) in $((SECONDS - START))s"
