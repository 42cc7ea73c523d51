//! The command line: bad flags fail fast with one line and exit code 2; `--help` documents every
//! flag.

mod common;

use std::time::Duration;

use common::daemon::{free_port, run, BIN};

#[test]
fn invalid_lun_spec_exits_2_with_one_line_error() {
    let portal = format!("127.0.0.1:{}", free_port());
    let args = [
        "serve",
        "--portal",
        &portal,
        "--target",
        common::TARGET,
        "--lun",
        "foo:1",
    ];
    let (code, _, stderr) = run(BIN, &args, Duration::from_secs(10));
    assert_eq!(code, Some(2), "exit code; stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one-line error, got:\n{stderr}");
    assert!(
        lines[0].contains("--lun"),
        "the error names the flag: {}",
        lines[0]
    );
}

#[test]
fn help_mentions_every_flag() {
    let (code, stdout, stderr) = run(BIN, &["serve", "--help"], Duration::from_secs(10));
    assert_eq!(code, Some(0), "stderr:\n{stderr}");
    let flags = [
        "--portal",
        "--target",
        "--lun",
        "--read-only",
        "--header-digest",
        "--data-digest",
        "--queue-depth",
        "--nop-interval",
        "--nop-timeout",
        "--cores",
        "--config",
        "--alias",
        "--block-size",
        "--allow-initiator",
        "--demo",
        "--demo-image",
        "--log",
    ];
    for flag in flags {
        assert!(
            stdout.contains(flag),
            "`serve --help` does not mention {flag}:\n{stdout}"
        );
    }
}

/// Listeners use SO_REUSEPORT to spread connections over cores; a second daemon on the same
/// portal must still be refused instead of silently taking half of the connections.
#[test]
fn second_daemon_on_the_same_portal_is_refused() {
    let d = common::daemon(&[]);
    let portal = format!("127.0.0.1:{}", d.port());
    let args = [
        "serve",
        "--portal",
        &portal,
        "--target",
        "iqn.2026-11.io.ringtgt:dup",
        "--lun",
        "null:1GiB",
    ];
    let (code, _, err) = run(BIN, &args, Duration::from_secs(5));
    assert_eq!(
        code,
        Some(1),
        "second daemon on {portal} was not refused; stderr: {err}"
    );
    assert!(
        err.contains(&portal) && err.contains("in use"),
        "stderr: {err}"
    );
}

/// `serve --demo` creates its sparse image and serves it as LUN 0 of the demo target.
#[test]
fn demo_serves_a_fresh_sparse_image() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("demo.img");
    let d = common::Daemon::start(&["--demo", "--demo-image", image.to_str().unwrap()]);
    let meta = std::fs::metadata(&image).expect("demo image created");
    assert_eq!(meta.len(), 1 << 30);
    let mut ini = common::Initiator::connect(d.port());
    ini.login(Some("iqn.2026-11.io.ringtgt:demo"), &[]);
    ini.wait_ready(0);
    let (blocks, bs) = ini.capacity(0);
    assert_eq!(blocks * u64::from(bs), 1 << 30);
}
