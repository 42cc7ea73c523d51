//! Running the daemon as a service: signals, the graceful stop (sessions asked to log out
//! within the shutdown grace, write caches flushed), and starting again at once.

mod common;

use std::time::{Duration, Instant};

use common::{cdb, Daemon, Initiator, TARGET};
use ringtgt::pdu::reject::AsyncEvent;

const STOP_LIMIT: Duration = Duration::from_secs(10);

/// A grace short enough for tests whose initiators never log out.
fn args() -> Vec<&'static str> {
    args_with_grace("2")
}

/// One RAM LUN on one core, initiators given `grace` seconds to log out on a stop.
fn args_with_grace(grace: &str) -> Vec<&str> {
    vec![
        "--target",
        TARGET,
        "--lun",
        "ram:16MiB",
        "--cores",
        "1",
        "--shutdown-grace",
        grace,
    ]
}

/// A logged-in session that has written and read one block.
fn busy_session(d: &Daemon) -> Initiator {
    let mut ini = common::session(d, &[]);
    ini.wait_ready(0);
    let data = cdb::pattern(7, 4096);
    ini.write_blocks(0, 8, &data, 512).assert_good();
    ini
}

#[test]
fn sighup_and_sigusr1_leave_the_daemon_serving() {
    let mut d = Daemon::start(&args());
    d.signal("HUP");
    d.signal("USR1");
    // Signals are handled on their own thread; a new session proves the daemon still serves.
    let mut ini = busy_session(&d);
    let r = ini.read_blocks(0, 8, 8, 512);
    r.assert_good();
    assert!(d.is_running());
    // Started from flags, it has no file to read again: it says so and changes nothing. (The
    // signal thread may log after the session above is done.)
    wait_for_log(&d, "there is no file to reload");
    wait_for_log(
        &d,
        "nothing to do on this signal; ignored signal=\"SIGUSR1\"",
    );
}

/// The initiator hears it should log out (AsyncEvent 1, Parameter3 = the grace), can still do
/// I/O meanwhile, logs out, and the daemon exits 0 as soon as it has, within the grace.
fn stops_cleanly_on(signal: &str) {
    let mut d = Daemon::start(&args_with_grace("7"));
    let mut ini = busy_session(&d);
    let asked = Instant::now();
    d.signal(signal);
    let message = ini.async_message(STOP_LIMIT);
    assert_eq!(message.event, AsyncEvent::LOGOUT_REQUESTED);
    assert_eq!(message.parameter3, 7, "{message:?}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", d.port())).is_err(),
        "the portal stops listening at once"
    );
    ini.read_blocks(0, 8, 8, 512).assert_good();
    assert_eq!(
        ini.logout().response,
        ringtgt::pdu::logout::LogoutResponseCode::SUCCESS
    );
    assert_eq!(d.wait_exit(Duration::from_secs(7)), Some(0), "{}", d.log());
    assert!(
        asked.elapsed() < Duration::from_secs(7),
        "{:?}",
        asked.elapsed()
    );
    let log = d.log();
    assert!(
        log.contains(&format!(
            "stopping signal=\"SIG{signal}\" sessions=1 grace_secs=7"
        )),
        "{log}"
    );
    assert!(log.contains("closing connection reason=logout"), "{log}");
    assert!(log.trim_end().ends_with("stopped"), "{log}");
}

#[test]
fn sigterm_asks_sessions_to_log_out_and_exits_0_once_they_have() {
    stops_cleanly_on("TERM");
}

#[test]
fn sigint_asks_sessions_to_log_out_and_exits_0_once_they_have() {
    stops_cleanly_on("INT");
}

#[test]
fn a_session_that_ignores_the_logout_request_is_closed_after_the_grace() {
    let mut d = Daemon::start(&args());
    let mut ini = busy_session(&d);
    ini.answer_nop_in = false;
    let asked = Instant::now();
    d.signal("TERM");
    assert_eq!(d.wait_exit(STOP_LIMIT), Some(0), "{}", d.log());
    assert!(
        asked.elapsed() >= Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert!(ini.conn.wait_closed(Duration::from_secs(1)));
    let log = d.log();
    assert!(
        log.contains("no Logout within the time the target gave"),
        "{log}"
    );
    assert!(log.trim_end().ends_with("stopped"), "{log}");
}

#[test]
fn with_no_grace_connections_close_at_once() {
    let mut d = Daemon::start(&args_with_grace("0"));
    let _ini = busy_session(&d);
    d.signal("TERM");
    assert_eq!(d.wait_exit(STOP_LIMIT), Some(0));
    let log = d.log();
    assert!(
        log.contains("closing connection reason=target stopping"),
        "{log}"
    );
}

#[test]
fn a_second_signal_stops_at_once() {
    let mut d = Daemon::start(&args_with_grace("60"));
    let mut ini = busy_session(&d);
    d.signal("TERM");
    ini.async_message(STOP_LIMIT);
    let second = Instant::now();
    d.signal("INT");
    assert_eq!(d.wait_exit(STOP_LIMIT), Some(130), "{}", d.log());
    assert!(
        second.elapsed() < Duration::from_secs(2),
        "{:?}",
        second.elapsed()
    );
    assert!(d.log().contains("stopping at once"), "{}", d.log());
}

/// What an initiator wrote to a unit with a write cache is on stable storage when the daemon
/// has exited: it flushes file and block-device units after the reactors stop.
#[test]
fn write_caches_are_flushed_before_exit() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(4 << 20)
        .unwrap();
    let mut d = Daemon::start(&[
        "--target",
        TARGET,
        "--lun",
        image.to_str().unwrap(),
        "--shutdown-grace",
        "5",
    ]);
    let mut ini = common::session(&d, &[]);
    ini.wait_ready(0);
    let data = cdb::pattern(42, 8192);
    ini.write_blocks(0, 16, &data, 512).assert_good();
    d.signal("TERM");
    ini.async_message(STOP_LIMIT);
    assert_eq!(
        ini.logout().response,
        ringtgt::pdu::logout::LogoutResponseCode::SUCCESS
    );
    assert_eq!(d.wait_exit(STOP_LIMIT), Some(0), "{}", d.log());
    let log = d.log();
    let flushed = log
        .lines()
        .find(|l| l.contains("write cache flushed"))
        .unwrap_or_else(|| panic!("no flush in: {log}"));
    assert!(flushed.contains("lun=0"), "{flushed}");
    let flush_at = log.find("write cache flushed").unwrap();
    let closed_at = log.find("closing connection").unwrap();
    assert!(closed_at < flush_at, "flushed after the I/O stopped: {log}");
    let on_disk = std::fs::read(&image).unwrap();
    assert_eq!(&on_disk[16 * 512..16 * 512 + 8192], &data[..]);
}

/// The listeners are closed before the process ends, so a restart (systemd's, an operator's)
/// can bind the portal again at once.
#[test]
fn restart_right_after_a_stop_binds_the_same_portal() {
    let mut d = Daemon::start(&args());
    let _ini = busy_session(&d);
    let port = d.port();
    d.signal("TERM");
    assert_eq!(d.wait_exit(STOP_LIMIT), Some(0));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on the portal once the daemon has exited"
    );
    let again = Daemon::start_on(port, &args());
    busy_session(&again);
}

/// After a crash the kernel still holds the old listeners for a moment (it tears the io_uring
/// down after the process is gone); the new daemon waits for them instead of failing.
#[test]
fn restart_right_after_a_kill_binds_the_same_portal() {
    let mut d = Daemon::start(&args());
    // The window is a few milliseconds: several rounds make a daemon that does not wait fail.
    for _ in 0..5 {
        let _ini = busy_session(&d);
        let port = d.port();
        d.signal("KILL");
        assert_eq!(d.wait_exit(STOP_LIMIT), None, "killed by the signal");
        d = Daemon::start_on(port, &args());
        // The harness's readiness probe may have reached the old listener: wait for the new one.
        wait_for_log(&d, "listening");
    }
    busy_session(&d);
}

fn wait_for_log(d: &Daemon, needle: &str) {
    let deadline = std::time::Instant::now() + STOP_LIMIT;
    while !d.log().contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle:?} in: {}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
