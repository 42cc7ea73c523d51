//! The benchmark client perf/run.sh measures with (examples/load.rs) against the real daemon:
//! its I/O count is what the target served, in every mode perf/run.sh uses.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::admin::{parse_prometheus, scrape};
use common::daemon::run;
use common::{Daemon, TARGET};

/// The example's binary beside this test's (`target/<profile>/examples/load`), built first if
/// this run of `cargo test` did not build examples.
fn load_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let bin = profile_dir.join("examples").join("load");
    if !bin.exists() {
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "--example", "load"]);
        // Under `cargo test --release` the binary is looked for among the release builds.
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build --example load");
        assert!(status.success(), "cargo build --example load failed");
    }
    bin
}

/// `ios=N` of the client's one-line summary.
fn ios(summary: &str) -> u64 {
    summary
        .split_whitespace()
        .find_map(|f| f.strip_prefix("ios="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no ios= in {summary:?}"))
}

/// SCSI commands LUN 0 served, by operation.
fn lun0_commands(addr: &str, op: &str) -> f64 {
    parse_prometheus(&scrape(addr))
        .iter()
        .filter(|s| s.name == "ringtgt_lun_commands_total")
        .filter(|s| s.labels.get("lun").map(String::as_str) == Some("0"))
        .filter(|s| s.labels.get("op").map(String::as_str) == Some(op))
        .map(|s| s.value)
        .sum()
}

#[test]
fn every_io_the_load_client_counts_was_served_by_the_target() {
    let load = load_binary();
    let d = Daemon::start(&[
        "--target",
        TARGET,
        "--lun",
        "ram:64MiB",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let addr = d.metrics_addr();
    let port = d.port().to_string();
    let span = (64u64 << 20 >> 9).to_string();
    let modes: [&[&str]; 6] = [
        &["--rw", "write", "--qd", "8"],
        &["--rw", "write", "--qd", "8", "--split"],
        // Larger than the first burst: the rest goes as the target's R2Ts ask.
        &["--rw", "write", "--qd", "4", "--bs", "1048576"],
        &["--rw", "read", "--qd", "4", "--bs", "1048576"],
        &["--rw", "read", "--qd", "4", "--sessions", "3"],
        &[
            "--rw",
            "mix",
            "--read-pct",
            "70",
            "--qd",
            "4",
            "--sessions",
            "2",
        ],
    ];
    for mode in modes {
        let (reads, writes) = (lun0_commands(&addr, "read"), lun0_commands(&addr, "write"));
        let mut args = vec![
            "--port",
            &port,
            "--target",
            TARGET,
            "--lun",
            "0",
            "--seconds",
            "1",
            "--span",
            &span,
        ];
        args.extend_from_slice(mode);
        let (code, out, err) = run(load.to_str().unwrap(), &args, Duration::from_secs(30));
        assert_eq!(code, Some(0), "load {mode:?}: {err}");
        let done = ios(&out);
        assert!(done > 0, "load {mode:?}: {out}");
        let served = lun0_commands(&addr, "read") - reads + lun0_commands(&addr, "write") - writes;
        // Commands still in flight when the client stopped counting may have been served too.
        assert!(
            served >= done as f64 && served <= (done + 64) as f64,
            "load {mode:?} counted {done} I/Os, the target served {served}"
        );
    }
}

/// Waits that gathered completions (`--coalesce-us`), all reactors.
fn coalesced_waits(addr: &str) -> f64 {
    parse_prometheus(&scrape(addr))
        .iter()
        .filter(|s| s.name == "ringtgt_io_uring_coalesced_waits_total")
        .map(|s| s.value)
        .sum()
}

/// Runs the load client for a second against LUN 0 and checks that it did I/O.
fn run_load(load: &std::path::Path, d: &Daemon, mode: &[&str]) {
    let port = d.port().to_string();
    let mut args = vec!["--port", &port, "--target", TARGET, "--seconds", "1"];
    args.extend_from_slice(mode);
    let (code, out, err) = run(load.to_str().unwrap(), &args, Duration::from_secs(30));
    assert_eq!(code, Some(0), "load {mode:?}: {err}");
    assert!(ios(&out) > 0, "load {mode:?}: {out}");
}

#[test]
fn waits_coalesce_only_when_asked_and_only_for_initiators_with_many_requests_outstanding() {
    let load = load_binary();
    let args = |coalesce: &'static str| {
        let mut a = vec![
            "--target",
            TARGET,
            "--lun",
            "null:1GiB",
            "--metrics",
            "127.0.0.1:0",
        ];
        if !coalesce.is_empty() {
            a.extend(["--coalesce-us", coalesce]);
        }
        a
    };
    let deep: &[&str] = &["--rw", "write", "--qd", "32", "--split"];

    // Off by default, however deep the queue.
    let d = Daemon::start(&args(""));
    run_load(&load, &d, deep);
    assert_eq!(coalesced_waits(&d.metrics_addr()), 0.0, "off by default");
    drop(d);

    let d = Daemon::start(&args("50"));
    let addr = d.metrics_addr();
    // One request at a time: every command's latency is the initiator's, never held back.
    run_load(&load, &d, &["--rw", "write", "--qd", "1", "--split"]);
    run_load(&load, &d, &["--rw", "read", "--qd", "1"]);
    assert_eq!(coalesced_waits(&addr), 0.0, "QD1 never coalesces");
    // A client that sends what it has in one write (the Linux initiator's corked sends): its
    // receives bring several PDUs, which the kernel gathered already, so its turns do not wait.
    let enters = |addr: &str| -> f64 {
        parse_prometheus(&scrape(addr))
            .iter()
            .filter(|s| s.name == "ringtgt_io_uring_enters_total")
            .map(|s| s.value)
            .sum()
    };
    let before = (enters(&addr), coalesced_waits(&addr));
    run_load(&load, &d, &["--rw", "read", "--qd", "32"]);
    let (waits, turns) = (coalesced_waits(&addr) - before.1, enters(&addr) - before.0);
    assert!(
        waits <= turns / 4.0,
        "batched reads: {waits} of {turns} waits coalesced"
    );
    run_load(&load, &d, deep);
    let supported = io_uring::IoUring::new(2)
        .expect("io_uring")
        .params()
        .is_feature_min_timeout();
    let waits = coalesced_waits(&addr);
    if supported {
        assert!(waits > 0.0, "QD32 split writes: no wait coalesced");
    } else {
        // Before Linux 6.12 the option is ignored, with a warning at start-up.
        assert_eq!(waits, 0.0);
        assert!(d.log().contains("coalesce_us is ignored"), "{}", d.log());
    }
}
