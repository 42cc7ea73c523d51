//! Hostile clients against the real daemon: descriptor exhaustion, log floods, and many attacks at
//! once while a normal libiscsi client keeps doing I/O within the documented memory bound.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::daemon::Launch;
use common::Daemon;
use ringtgt::pdu::{Bhs, Opcode};

/// With its descriptors exhausted the daemon pauses accepting (EMFILE would otherwise fail at
/// once, forever): it must not spin, must not flood its log, and must serve again once
/// descriptors are free.
#[test]
fn descriptor_exhaustion_pauses_accepts_instead_of_spinning() {
    let launch = Launch {
        rust_log: Some("info".into()),
        wrapper: ["prlimit", "--nofile=64:64", "--"]
            .map(String::from)
            .to_vec(),
    };
    let d = Daemon::start_with(
        &[
            "--target",
            common::TARGET,
            "--lun",
            "ram:16MiB",
            "--cores",
            "1",
        ],
        &launch,
    );
    let mut held = Vec::new();
    for _ in 0..200 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", d.port())) {
            held.push(s);
        }
    }
    let (cpu0, log0, t0) = (d.cpu_time(), d.log().len(), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let cpu = d.cpu_time() - cpu0;
    let wall = t0.elapsed();
    let logged = d.log().len() - log0;
    assert!(
        cpu < wall / 5,
        "daemon used {cpu:?} of CPU in {wall:?} while out of descriptors"
    );
    assert!(logged < 20_000, "{logged} bytes of log in {wall:?}");
    drop(held);
    std::thread::sleep(Duration::from_millis(500));
    let mut ini = common::session(&d, &[]);
    assert_eq!(ini.nop_out(b"back"), b"back");
}

/// Each bad PDU is answered, but the log gets a burst of lines and then about one per second.
#[test]
fn a_flood_of_bad_pdus_is_logged_a_few_lines_at_a_time() {
    let launch = Launch {
        rust_log: Some("warn".into()),
        ..Launch::default()
    };
    let d = Daemon::start_with(&["--target", common::TARGET, "--lun", "ram:16MiB"], &launch);
    let mut ini = common::session(&d, &[]);
    let before = d.log().lines().count();
    let mut snack = Bhs::new(Opcode::SNACK_REQUEST);
    snack.set_flags(0x80);
    let flood = 20_000;
    for _ in 0..flood {
        ini.send_pdu(&snack, &[], &[]);
    }
    for _ in 0..flood {
        let (bhs, _) = ini.recv();
        assert_eq!(bhs.opcode(), Opcode::REJECT);
    }
    let lines = d.log().lines().count() - before;
    assert!(
        (1..=30).contains(&lines),
        "{lines} log lines for {flood} bad PDUs"
    );
    assert_eq!(ini.nop_out(b"still fine"), b"still fine");
}
