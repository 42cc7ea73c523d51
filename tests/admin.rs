//! `ringtgt ctl` against a live daemon: listings, run-time log filter, session drop, save
//! round trip, `top`, the protocol's version check, and the admin socket's mode.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{daemon, session, Daemon, TARGET};
use ringtgt::control::admin::protocol::Request;

#[test]
fn listings_show_the_daemon_its_targets_luns_sessions_and_connections() {
    let d = daemon(&[]);
    let mut ini = session(&d, &[("HeaderDigest", "CRC32C")]);
    let tsih = ini.tsih;

    let status = d.ctl_ok(&["status"]);
    assert!(status.starts_with("ringtgt "), "{status}");
    assert!(
        status.contains(&format!("127.0.0.1:{}", d.port())),
        "{status}"
    );
    assert!(status.contains("targets 1, LUNs 2, sessions 1"), "{status}");

    let targets = d.ctl_ok(&["targets"]);
    assert!(
        targets.lines().nth(1).unwrap().starts_with(TARGET),
        "{targets}"
    );

    let luns = d.ctl_json(&["luns", "--target", TARGET]);
    let sizes: Vec<u64> = luns
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size_bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [64 << 20, 1 << 30]);

    let sessions = d.ctl_json(&["sessions"]);
    let s = &sessions[0];
    assert_eq!(s["tsih"], u64::from(tsih));
    assert_eq!(s["initiator"], ini.initiator_name.as_str());
    assert_eq!(s["isid"], "801234560001");
    assert_eq!(s["target"], TARGET);
    assert_eq!(s["header_digest"], true);
    assert_eq!(s["data_digest"], false);
    assert_eq!(
        s["peer"],
        format!("127.0.0.1:{}", ini.conn.local_port()).as_str()
    );
    assert_eq!(
        s["core"].as_u64(),
        d.core_of(ini.conn.local_port()).map(|c| c as u64)
    );
    // The window the initiator last heard of, or wider.
    assert!(
        s["max_cmd_sn"].as_u64().unwrap() >= u64::from(ini.max_cmd_sn),
        "{s}"
    );
    let table = d.ctl_ok(&["sessions"]);
    assert!(table.contains("CRC32C/None"), "{table}");
    assert!(table.contains("InitialR2T=No"), "{table}");

    let conns = d.ctl_json(&["connections"]);
    assert_eq!(conns.as_array().unwrap().len(), 1);
    assert_eq!(conns[0]["phase"], "full");
    assert_eq!(conns[0]["tsih"], u64::from(tsih));
    ini.logout();
}

#[test]
fn session_drop_resets_the_connection_and_the_session_ends() {
    let d = daemon(&[]);
    let mut ini = session(&d, &[]);
    let out = d.ctl_ok(&["session", "drop", &ini.tsih.to_string()]);
    assert!(out.contains("dropped"), "{out}");
    assert!(ini.conn.wait_closed(Duration::from_secs(5)), "still open");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !d.ctl_json(&["sessions"]).as_array().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the session lingers");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, _, err) = d.ctl(&["session", "drop", "999"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no session with TSIH 999"), "{err}");
}

#[test]
fn log_level_changes_the_filter_while_running() {
    let launch = common::daemon::Launch {
        rust_log: Some("info".into()),
        ..Default::default()
    };
    let d = Daemon::start_with(&["--target", TARGET, "--lun", "ram:1MiB"], &launch);
    let mut ini = session(&d, &[]);
    ini.logout();
    assert!(
        !d.log().contains("connection accepted"),
        "debug logged at info"
    );
    d.ctl_ok(&["log-level", "debug"]);
    let mut ini = session(&d, &[]);
    ini.logout();
    assert!(d.log().contains("connection accepted"), "{}", d.log());
    let (code, _, err) = d.ctl(&["log-level", "ringtgt=loud"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("log filter"), "{err}");
}

#[test]
fn save_writes_toml_that_serve_reads_back() {
    let d = daemon(&[]);
    d.ctl_ok(&[
        "target",
        "add",
        "iqn.2026-11.io.ringtgt:second",
        "--alias",
        "two",
    ]);
    d.ctl_ok(&[
        "lun",
        "add",
        "--target",
        "iqn.2026-11.io.ringtgt:second",
        "--id",
        "5",
        "ram:8MiB",
        "--block-size",
        "4096",
    ]);
    d.ctl_ok(&["lun", "resize", "--target", TARGET, "--id", "1", "2GiB"]);
    let file = d.dir().join("saved.toml");
    let out = d.ctl_ok(&["save", file.to_str().unwrap()]);
    assert!(out.contains("written"), "{out}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let printed = d.ctl_ok(&["save"]);
    assert_eq!(
        printed.trim_end(),
        std::fs::read_to_string(&file).unwrap().trim_end()
    );

    let again = Daemon::start(&["--config", file.to_str().unwrap()]);
    assert_eq!(again.ctl_json(&["luns"]), d.ctl_json(&["luns"]));
    assert_eq!(again.ctl_json(&["targets"]), d.ctl_json(&["targets"]));
}

#[test]
fn top_prints_rates_per_lun_and_session() {
    let d = daemon(&[]);
    let mut ini = session(&d, &[]);
    for lba in 0..20 {
        ini.write_blocks(0, lba, &[7; 512], 512).assert_good();
    }
    let out = d.ctl_ok(&["top", "--count", "2", "--interval", "0.2"]);
    let frames: Vec<&str> = out.split("ringtgt ").skip(1).collect();
    assert_eq!(frames.len(), 2, "{out}");
    for f in frames {
        assert!(
            f.lines().count() <= 24 && f.lines().all(|l| l.chars().count() <= 80),
            "{f}"
        );
        assert!(f.contains(&format!("{TARGET}/0")), "{f}");
        let tsih = format!("{:>5} ", ini.tsih);
        let session = f.lines().find(|l| l.starts_with(&tsih));
        assert!(
            session.is_some_and(|l| l.contains("ringtgt:test-initiator")),
            "{f}"
        );
        assert!(f.contains("cpu0"), "{f}");
    }
}

#[test]
fn the_socket_is_private_and_speaks_one_protocol_version() {
    let d = daemon(&[]);
    d.admin(Request::Status);
    let mode = std::fs::metadata(d.admin_socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(d.admin_socket()).unwrap();
    s.write_all(b"{\"version\":99,\"command\":\"status\"}\n{\"version\":1,\"command\":\"nope\"}\n")
        .unwrap();
    let mut lines = BufReader::new(s).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["ok"], false);
    assert!(first["error"].as_str().unwrap().contains("version 99"));
    let second: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(second["ok"], false);
    assert!(second["error"].as_str().unwrap().contains("bad request"));
}

#[test]
fn an_admin_socket_that_cannot_be_made_stops_the_start() {
    let (code, _, err) = common::daemon::run(
        common::daemon::BIN,
        &[
            "serve",
            "--portal",
            &format!("127.0.0.1:{}", common::daemon::free_port()),
            "--target",
            TARGET,
            "--lun",
            "null:1MiB",
            "--admin-socket",
            "/proc/ringtgt/ctl.sock",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("admin socket /proc/ringtgt/ctl.sock"), "{err}");
}

#[test]
fn json_logs_carry_the_connection_span() {
    let d = daemon(&["--log-format", "json"]);
    let mut ini = session(&d, &[]);
    ini.logout();
    let closed = |log: &str| {
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| {
                v["fields"]["message"] == "closing connection" && v["fields"]["reason"] == "logout"
            })
    };
    // The connection closes (and says so) just after the Logout Response.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let closing = loop {
        if let Some(line) = closed(&d.log()) {
            break line;
        }
        assert!(std::time::Instant::now() < deadline, "{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    let span = &closing["spans"][0];
    assert_eq!(span["name"], "conn");
    assert_eq!(span["initiator"], ini.initiator_name.as_str());
    assert_eq!(span["isid"], "801234560001");
    assert_eq!(span["tsih"], u64::from(ini.tsih));
    assert_eq!(span["cid"], u64::from(ini.cid));
    assert_eq!(
        span["peer"],
        format!("127.0.0.1:{}", ini.conn.local_port()).as_str()
    );
}
