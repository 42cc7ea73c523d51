//! Running the daemon as a service: signals, stopping, and starting again at once.

mod common;

use std::time::Duration;

use common::{cdb, Daemon, Initiator, TARGET};

const STOP_LIMIT: Duration = Duration::from_secs(10);

fn args() -> Vec<&'static str> {
    vec!["--target", TARGET, "--lun", "ram:16MiB", "--cores", "1"]
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
    let log = d.log();
    for signal in ["SIGHUP", "SIGUSR1"] {
        assert!(
            log.contains(&format!(
                "reload not supported yet; ignored signal=\"{signal}\""
            )),
            "{log}"
        );
    }
}

fn stops_cleanly_on(signal: &str) {
    let mut d = Daemon::start(&args());
    let _ini = busy_session(&d);
    d.signal(signal);
    assert_eq!(d.wait_exit(STOP_LIMIT), Some(0), "{}", d.log());
    let log = d.log();
    assert!(
        log.contains(&format!("stopping signal=\"SIG{signal}\"")),
        "{log}"
    );
    assert!(
        log.contains("closing connection reason=target stopping"),
        "{log}"
    );
    assert!(log.trim_end().ends_with("stopped"), "{log}");
}

#[test]
fn sigterm_stops_with_exit_code_0_and_a_log_line() {
    stops_cleanly_on("TERM");
}

#[test]
fn sigint_stops_with_exit_code_0_and_a_log_line() {
    stops_cleanly_on("INT");
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
