//! The command line: bad flags fail fast with one line and exit code 2; `--help` documents every
//! flag.

mod common;

use std::time::Duration;

use common::daemon::{free_port, run, BIN};

/// Runs `serve --portal FREE --target TARGET <args>`, which must fail with exit code 2 and a
/// one-line error; returns that line.
fn serve_error(args: &[&str]) -> String {
    let portal = format!("127.0.0.1:{}", free_port());
    let mut full = vec!["serve", "--portal", &portal, "--target", common::TARGET];
    full.extend_from_slice(args);
    let (code, _, stderr) = run(BIN, &full, Duration::from_secs(10));
    assert_eq!(code, Some(2), "exit code; stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one-line error, got:\n{stderr}");
    lines[0].to_string()
}

#[test]
fn invalid_lun_spec_exits_2_with_one_line_error() {
    let line = serve_error(&["--lun", "foo:1"]);
    assert!(line.contains("--lun"), "the error names the flag: {line}");
}

#[test]
fn unreadable_chap_secret_file_exits_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.secret");
    let line = serve_error(&[
        "--lun",
        "null:1GiB",
        "--chap-user",
        "alice",
        "--chap-secret-file",
        missing.to_str().unwrap(),
    ]);
    let want = format!(
        "error: --chap-secret-file: cannot read secret file {}: ",
        missing.display()
    );
    assert!(line.starts_with(&want), "{line}");
}

/// A secret file that group or others can read does not stop the daemon, but is logged as a
/// warning that names the flag and the file and not the secret.
#[test]
fn loose_secret_file_is_logged_as_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("discovery.secret");
    std::fs::write(&file, "discovery-secret-333\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let d = common::daemon(&[
        "--discovery-chap-user",
        "scanner",
        "--discovery-chap-secret-file",
        file.to_str().unwrap(),
    ]);
    let log = d.log();
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("--discovery-chap-secret-file"))
        .unwrap_or_else(|| panic!("no warning in the log:\n{log}"));
    assert!(
        warning.contains(&format!("{}", file.display())) && warning.contains("mode 0644"),
        "{warning}"
    );
    assert!(
        !log.contains("discovery-secret-333"),
        "secret in the log:\n{log}"
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
        "--allow-network",
        "--chap-user",
        "--chap-secret-file",
        "--mutual-chap-user",
        "--mutual-chap-secret-file",
        "--discovery-chap-user",
        "--discovery-chap-secret-file",
        "--max-sessions",
        "--max-sessions-per-initiator",
        "--max-connections",
        "--max-login-connections",
        "--connection-buffer",
    ];
    for flag in flags {
        assert!(
            stdout.contains(flag),
            "`serve --help` does not mention {flag}:\n{stdout}"
        );
    }
}

/// A second daemon on the same portal is refused instead of silently taking a share of the
/// connections.
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

/// `--log warning` is not a level: tracing would read it as a target name and log nothing.
#[test]
fn invalid_log_filter_exits_2() {
    let portal = format!("127.0.0.1:{}", free_port());
    for bad in ["warning", "info,verbose"] {
        let args = [
            "serve",
            "--portal",
            &portal,
            "--target",
            common::TARGET,
            "--lun",
            "null:1GiB",
            "--log",
            bad,
        ];
        let (code, _, err) = run(BIN, &args, Duration::from_secs(10));
        assert_eq!(code, Some(2), "--log {bad}: {err}");
        assert!(err.contains("is not a log level"), "{err}");
    }
}

/// `--demo` where 3260 (here: any portal) is taken says how to pick another address.
#[test]
fn demo_on_a_taken_portal_suggests_another_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let portal = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("demo.img");
    let args = [
        "serve",
        "--demo",
        "--demo-image",
        image.to_str().unwrap(),
        "--portal",
        &portal,
    ];
    let (code, _, err) = run(BIN, &args, Duration::from_secs(10));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&portal) && err.contains("--portal ADDR"),
        "{err}"
    );
}
