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
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", "load"])
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
    let modes: [&[&str]; 4] = [
        &["--rw", "write", "--qd", "8"],
        &["--rw", "write", "--qd", "8", "--split"],
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
