#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need (libiscsi-bin), then runs
# formatting and lint checks, every unit and integration test, the libiscsi conformance suites,
# a short run of every fuzz target and the Linux initiator in a VM. Every step runs even after a failure, so one run shows everything that is broken; the
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

install_rust_components() {
    cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1 && return 0
    rustup component add rustfmt clippy
}

run_tests() {
    # --no-fail-fast: a failing test binary must not hide the results of the others.
    cargo test --all-targets --no-fail-fast
}

step setup install_libiscsi
step toolchain install_rust_components
step fmt cargo fmt --all --check
step clippy cargo clippy --all-targets --quiet -- -D warnings
step test run_tests
step conformance scripts/conformance.sh

# --- Fuzzing smoke test (issue 7) ------------------------------------------------------------------
# Every cargo-fuzz target for 20 s on its seeds (nightly toolchain; installs cargo-fuzz if
# missing). The long runs are `scripts/fuzz.sh SECONDS`; their figures are in fuzz/README.md.
step fuzz-smoke scripts/fuzz.sh 20

# --- Linux initiator (issue 4) -------------------------------------------------------------------
# The kernel's iscsi_tcp + open-iscsi + fio in a QEMU guest (stock Debian kernel) against a
# release ringtgt: discovery/login/identity, fio verify, ext4, connection loss and target restart
# mid-write, clean logout. Installs its tools with apt, caches its image in /var/cache/ringtgt-vm.
step linux-initiator scripts/vm/run.sh

echo
if ((${#FAILED[@]})); then
    echo "test.sh: FAILED steps: ${FAILED[*]} (passed: ${PASSED[*]:-none}) in $((SECONDS - START))s"
    exit 1
fi
echo "test.sh: all steps passed (${PASSED[*]}) in $((SECONDS - START))s"
