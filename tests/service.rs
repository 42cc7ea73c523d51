//! Running ringtgt as a service: the systemd unit in dist/ verifies, the example configuration
//! checks, `check-config` validates and prints, the daemon tells systemd when it is ready, and
//! completions and the man page come from the command line definition.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use common::daemon::{run, Launch, BIN};
use common::Daemon;
use ringtgt::config::Config;

const LIMIT: Duration = Duration::from_secs(30);

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

#[test]
fn check_config_prints_the_configuration_the_example_makes() {
    let example = repo("dist/ringtgt.toml");
    let (code, out, err) = run(BIN, &["check-config", &example], LIMIT);
    assert_eq!(code, Some(0), "{err}");
    let (want, _) = Config::load(Path::new(&example)).expect("the example is valid");
    let printed = Config::from_toml_str(&out).expect("the output reads back");
    assert_eq!(printed, want);
    assert!(out.contains("state_dir = \"/var/lib/ringtgt\""), "{out}");
    assert!(out.contains("shutdown_grace_secs = 10"), "{out}");
}

#[test]
fn check_config_exits_2_with_one_line_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[target]]\nname = \"iqn.2026-11.io.ringtgt:x\"\n[[target.lun]]\npath = \"ram:1MiB\"\nblock_size = 1000\n",
    )
    .unwrap();
    let (code, out, err) = run(BIN, &["check-config", bad.to_str().unwrap()], LIMIT);
    assert_eq!(code, Some(2));
    assert!(out.is_empty(), "nothing printed for an invalid file: {out}");
    let lines: Vec<_> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("target[0].lun[0].block_size"), "{err}");
}

#[test]
fn the_systemd_unit_verifies() {
    // systemd-analyze checks that the commands exist: point them at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(repo("dist/ringtgt.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("LimitMEMLOCK=infinity"));
    let path = dir.path().join("ringtgt.service");
    std::fs::write(&path, unit.replace("/usr/bin/ringtgt", BIN)).unwrap();
    let (code, out, err) = run(
        "systemd-analyze",
        &["verify", "--man=no", path.to_str().unwrap()],
        LIMIT,
    );
    assert_eq!(code, Some(0), "systemd-analyze verify:\n{out}{err}");
    assert!(err.trim().is_empty(), "no warnings: {err}");
}

#[test]
fn the_daemon_tells_systemd_it_is_ready_once_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let launch = Launch {
        wrapper: vec![
            "env".into(),
            format!("NOTIFY_SOCKET={}", socket_path.display()),
        ],
        ..Launch::default()
    };
    let d = Daemon::start_with(&["--target", common::TARGET, "--lun", "ram:4MiB"], &launch);
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("a notification");
    let msg = String::from_utf8_lossy(&buf[..n]);
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg:?}");
    // Ready means ready: the portal answers.
    std::net::TcpStream::connect(("127.0.0.1", d.port())).expect("the portal listens");
}

#[test]
fn completions_and_the_man_page_cover_the_commands() {
    let (code, bash, _) = run(BIN, &["completions", "bash"], LIMIT);
    assert_eq!(code, Some(0));
    for word in ["serve", "check-config", "--state-dir"] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let (code, man, _) = run(BIN, &["man"], LIMIT);
    assert_eq!(code, Some(0));
    assert!(
        man.contains(".TH ringtgt"),
        "{}",
        &man[..man.len().min(200)]
    );
    assert!(
        man.contains("check\\-config"),
        "the man page lists the subcommands"
    );
}

/// A reactor that cannot be made (here: no descriptor left for its io_uring) stops the start:
/// the daemon exits 1 and says so. It never runs on without one, where connections would queue
/// on a listener nobody accepts from (the first reactor's) or its cores would sit idle. The
/// descriptor limit is raised one by one until the daemon starts; every lower limit must have
/// ended in an exit, and at least one in this one.
#[test]
fn a_reactor_that_cannot_be_made_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut reactor_failures = 0;
    for nofile in 8..=64 {
        let port = common::daemon::free_port();
        let log_path = dir.path().join(format!("ringtgt-{nofile}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = std::process::Command::new("prlimit")
            .arg(format!("--nofile={nofile}"))
            .arg("--")
            .arg(BIN)
            .args(["serve", "--portal", &format!("127.0.0.1:{port}")])
            .args(["--target", common::TARGET, "--lun", "ram:1MiB"])
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--admin-socket")
            .arg(dir.path().join(format!("ctl-{nofile}.sock")))
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn prlimit");
        let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let deadline = std::time::Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if read_log().contains("listening") {
                break None;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nofile={nofile}: neither listening nor exited: {}",
                read_log()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let Some(status) = status else {
            // Started: with every reactor made, it stays up.
            std::thread::sleep(Duration::from_millis(300));
            let running = child.try_wait().unwrap().is_none();
            let _ = child.kill();
            let _ = child.wait();
            let log = read_log();
            assert!(running, "nofile={nofile}: started, then ended:\n{log}");
            assert!(
                !log.contains("ERROR"),
                "nofile={nofile}: started with an error:\n{log}"
            );
            assert!(
                reactor_failures > 0,
                "no limit below {nofile} failed a reactor: the test did not see the case"
            );
            return;
        };
        let log = read_log();
        assert!(
            matches!(status.code(), Some(1 | 2)),
            "nofile={nofile}: {status}:\n{log}"
        );
        assert!(!log.contains("listening"), "nofile={nofile}:\n{log}");
        if log.contains("cannot start reactor") {
            assert_eq!(status.code(), Some(1), "{log}");
            reactor_failures += 1;
        }
    }
    panic!("the daemon did not start with up to 64 descriptors");
}
