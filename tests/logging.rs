//! What the daemon writes to its log at the default level: values in plain words (no Rust debug
//! syntax), session lines inside the connection's span, one line per failed login, and
//! backing-store errors rate-limited.

mod common;

use std::time::{Duration, Instant};

use common::daemon::Launch;
use common::{Daemon, Initiator, TARGET};

fn info_daemon(args: &[&str]) -> Daemon {
    let launch = Launch {
        rust_log: Some("info".into()),
        ..Launch::default()
    };
    Daemon::start_with(args, &launch)
}

/// The log lines after start-up (the "listening" line), but for the close of the harness's
/// readiness probe (a connection that never sent a byte).
fn lines_after_start(d: &Daemon) -> Vec<String> {
    let log = d.log();
    let start = log.find("listening").expect("listening line");
    let probe = |l: &&str| !l.contains("tsih=") && l.ends_with("closed by the peer");
    log[start..]
        .lines()
        .skip(1)
        .filter(|l| !probe(l))
        .map(str::to_string)
        .collect()
}

/// Waits until the target has closed the connection (everything about it is logged by then).
fn wait_closed(ini: &mut Initiator) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while ini.try_recv_pdu().is_ok() {
        assert!(
            Instant::now() < deadline,
            "the target kept the connection open"
        );
    }
}

#[test]
fn a_failed_login_is_one_line_in_plain_words() {
    let d = info_daemon(&["--target", TARGET, "--lun", "null:1GiB"]);
    let mut ini = Initiator::connect(d.port());
    let Err(failure) = ini.try_login(Some("iqn.2026-11.io.ringtgt:nope"), &[]) else {
        panic!("a login to an unknown target must be refused");
    };
    assert_eq!((failure.status.class, failure.status.detail), (2, 3));
    wait_closed(&mut ini);
    let lines = lines_after_start(&d);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    assert!(line.contains("WARN conn{peer=127.0.0.1:"), "{line}");
    assert!(line.contains("login failed"), "{line}");
    assert!(line.contains("status=0x0203 (not found)"), "{line}");
    assert!(line.contains("initiator=iqn."), "{line}");
    assert!(
        !line.contains("Some(") && !line.contains("LoginStatus"),
        "{line}"
    );
}

#[test]
fn session_lines_name_initiator_and_target_inside_the_connection_span() {
    let d = info_daemon(&["--target", TARGET, "--lun", "null:1GiB"]);
    let mut ini = common::session(&d, &[]);
    ini.logout();
    wait_closed(&mut ini);
    let lines = lines_after_start(&d);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let (full, closing) = (&lines[0], &lines[1]);
    assert!(full.contains("INFO conn{peer=127.0.0.1:"), "{full}");
    assert!(full.contains("session in full feature phase"), "{full}");
    assert!(full.contains(&format!("target={TARGET} ")), "{full}");
    assert!(full.contains("digests=none"), "{full}");
    assert!(
        !full.contains("Some(") && !full.contains("Digests {"),
        "{full}"
    );
    assert!(
        closing.contains("closing connection reason=logout"),
        "{closing}"
    );
}

#[test]
fn backing_store_errors_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("disk.img");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(4 << 20)
        .unwrap();
    let d = info_daemon(&["--target", TARGET, "--lun", file.to_str().unwrap()]);
    let mut ini = common::session(&d, &[]);
    ini.wait_ready(0);
    // The file shrinks under the daemon: every read now ends early, an I/O error.
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(0)
        .unwrap();
    let started = Instant::now();
    let failures = 100;
    for i in 0..failures {
        ini.read_blocks(0, 8 * i, 8, 512).assert_sense(0x03, 0x11);
    }
    let elapsed = started.elapsed().as_secs();
    let logged = d.log().matches("backing store I/O failed").count() as u64;
    // A burst of 10, then one line a second: whatever the pace of the reads.
    assert!(logged >= 1, "the failures are logged");
    assert!(
        logged <= 10 + elapsed + 1,
        "{logged} lines for {failures} failures in {elapsed}s"
    );
}
