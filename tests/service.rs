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
