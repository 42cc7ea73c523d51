//! Hostile clients against the real daemon: descriptor exhaustion, log floods, and many attacks at
//! once while a normal libiscsi client keeps doing I/O within the documented memory bound.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::daemon::Launch;
use common::{Daemon, Initiator};
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

/// Knobs of the daemon under attack, and the per-connection bound they give (README, "Memory").
const DEPTH: u64 = 32;
const BUFFER: u64 = 8 << 20;
const MAX_TRANSFER: u64 = 8 << 20;
const FIRST_BURST: u64 = 256 << 10;
const MRDSL: u64 = 256 << 10;
const MAX_SESSIONS: usize = 40;
const LOGIN_CONNECTIONS: u64 = 128;
/// Two staging buffers (being sent, being filled) of at most 1 MiB plus one answer each.
const STAGED: u64 = 2 * ((1 << 20) + (256 << 10));

/// A receive buffer: a connection has one; each core keeps up to 16 spares and up to 16 that
/// writes still hold views of.
const RECV_BUF: u64 = MRDSL + 4096;

/// A multi-step command's largest step (`scsi::STEP_BYTES`).
const STEP: u64 = 1 << 20;

/// What one full-feature connection may hold: the buffer budget (or one transfer larger than
/// it, or a multi-step command's step beside the data it keeps), a first burst of unsolicited
/// data per command, its receive buffer, staged answers, and task bookkeeping.
fn per_session_bound() -> u64 {
    BUFFER.max(MAX_TRANSFER + STEP) + DEPTH * FIRST_BURST + RECV_BUF + STAGED + DEPTH * 1024
}

/// What one connection still logging in may hold: its receive buffer and the login text both
/// ways.
fn per_login_bound() -> u64 {
    MRDSL + 1024 + 2 * (64 << 10)
}

const ATTACK: Duration = Duration::from_secs(15);

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn until(stop: &std::sync::atomic::AtomicBool) -> bool {
    !stop.load(std::sync::atomic::Ordering::Relaxed)
}

/// Garbage, truncated and oversized headers, before and after login, on fresh connections.
fn garbage(port: u16, stop: &std::sync::atomic::AtomicBool) -> usize {
    use std::io::Write;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut rounds = 0;
    while until(stop) {
        rounds += 1;
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            continue;
        };
        let mut oversized = Bhs::new(Opcode::LOGIN_REQUEST);
        oversized.0[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
        let mut ahs_only = Bhs::new(Opcode::SCSI_COMMAND);
        ahs_only.0[4] = 0xff;
        let junk = match rounds % 4 {
            0 => rng.bytes(4096),
            1 => oversized.0.to_vec(),
            2 => ahs_only.0[..20].to_vec(),
            _ => [ahs_only.0.to_vec(), rng.bytes(100)].concat(),
        };
        let _ = s.write_all(&junk);
        if rounds % 8 == 0 {
            // After a real login too.
            let mut ini = Initiator::connect(port);
            ini.initiator_name = format!("iqn.2026-12.test:garbage{rounds}");
            if ini.try_login(Some(common::TARGET), &[]).is_ok() {
                let _ = ini.conn.send_raw(&rng.bytes(8192));
                let mut huge = Bhs::new(Opcode::SCSI_COMMAND);
                huge.0[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
                let _ = ini.conn.send_raw(&huge.0);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    rounds
}

/// Logins sent one byte at a time, slower than the login timeout allows.
fn slowloris(port: u16, stop: &std::sync::atomic::AtomicBool) {
    use std::io::Write;
    let mut login = Bhs::new(Opcode::LOGIN_REQUEST);
    login.set_immediate(true);
    login.0[5..8].copy_from_slice(&[0, 0x01, 0x00]);
    let mut socks: Vec<(TcpStream, usize)> = (0..50)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .map(|s| (s, 0))
        .collect();
    while until(stop) {
        for (s, sent) in socks.iter_mut() {
            if *sent < login.0.len() && s.write_all(&login.0[*sent..*sent + 1]).is_ok() {
                *sent += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A session that sends `DEPTH` commands of 8 MiB and never reads its socket; writes never get
/// their data.
fn hog(port: u16, name: String, write: bool, lun: u16) -> Initiator {
    let mut ini = Initiator::connect(port);
    ini.initiator_name = name;
    ini.login(Some(common::TARGET), &[("MaxOutstandingR2T", "8")]);
    let blocks = (MAX_TRANSFER / 512) as u32;
    for _ in 0..DEPTH {
        let cdb = if write {
            common::cdb::write16(0, blocks)
        } else {
            common::cdb::read16(0, blocks)
        };
        let mut cmd = ini.command_pdu(lun, &cdb, !write, write, MAX_TRANSFER as u32);
        // F=0: unsolicited data is announced, and never sent.
        cmd.final_bit = !write;
        ini.send_pdu(&cmd.encode(), &[], &[]);
    }
    ini
}

fn raise_descriptor_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < 4096 {
            lim.rlim_cur = lim.rlim_max.min(8192);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Everything at once, while a normal libiscsi client keeps reading: the daemon must not panic,
/// its RSS must stay under the documented bound, a new initiator must still get in, and
/// afterwards every session and buffer must be released.
#[test]
fn hostile_clients_leave_a_normal_one_working_within_the_memory_bound() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    raise_descriptor_limit();
    let launch = Launch {
        rust_log: Some("info".into()),
        ..Launch::default()
    };
    let max_sessions = MAX_SESSIONS.to_string();
    let login_conns = LOGIN_CONNECTIONS.to_string();
    let d = Daemon::start_with(
        &[
            "--target",
            common::TARGET,
            "--lun",
            "ram:64MiB",
            "--lun",
            "null:64GiB",
            "--queue-depth",
            "32",
            "--connection-buffer",
            "8MiB",
            "--max-sessions",
            &max_sessions,
            "--max-sessions-per-initiator",
            &max_sessions,
            "--max-login-connections",
            &login_conns,
        ],
        &launch,
    );
    let port = d.port();
    let url = format!("iscsi://127.0.0.1:{port}/{}/0", common::TARGET);
    let secs = (ATTACK.as_secs() + 6).to_string();
    let perf_url = url.clone();
    let perf = std::thread::spawn(move || {
        common::daemon::run(
            "iscsi-perf",
            &["-t", &secs, "-m", "8", &perf_url],
            Duration::from_secs(60),
        )
    });
    std::thread::sleep(Duration::from_secs(2));
    let base = d.rss();

    let stop = Arc::new(AtomicBool::new(false));
    let mut hogs = Vec::new();
    for i in 0..16 {
        hogs.push(hog(port, format!("iqn.2026-12.test:writer{i}"), true, 1));
    }
    hogs.push(hog(port, "iqn.2026-12.test:reader0".into(), false, 1));
    hogs.push(hog(port, "iqn.2026-12.test:reader1".into(), false, 0));
    let idle: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(
        idle.len() > 900,
        "only {} idle connections opened",
        idle.len()
    );
    let threads: Vec<_> = [garbage as fn(u16, &AtomicBool) -> usize, |p, s| {
        slowloris(p, s);
        0
    }]
    .into_iter()
    .map(|f| {
        let stop = stop.clone();
        std::thread::spawn(move || f(port, &stop))
    })
    .collect();

    let t0 = std::time::Instant::now();
    let mut peak = base;
    let mut newcomer_ok = None;
    while t0.elapsed() < ATTACK {
        peak = peak.max(d.rss());
        if newcomer_ok.is_none() && t0.elapsed() > ATTACK / 2 {
            let (code, out, _) = common::daemon::run("iscsi-inq", &[&url], Duration::from_secs(10));
            newcomer_ok = Some(code == Some(0) && out.contains("DIRECT_ACCESS"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let garbage_rounds: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    drop(idle);
    drop(hogs);

    let (code, out, err) = perf.join().unwrap();
    let seconds = common::daemon::iscsi_perf_iops(&out);
    assert_eq!(code, Some(0), "iscsi-perf failed: {out}\n{err}");
    assert!(
        seconds.len() as u64 >= ATTACK.as_secs() && seconds.iter().all(|&iops| iops > 0),
        "the normal client stalled: per-second IOPS {seconds:?}"
    );
    assert_eq!(
        newcomer_ok,
        Some(true),
        "a new initiator could not log in during the attack"
    );
    assert!(
        garbage_rounds > 100,
        "garbage sent only {garbage_rounds} times"
    );

    let sessions = 16 + 2 + 4;
    // Per core, up to 16 spare receive buffers and 16 that writes hold views of.
    let spares = 2 * 32 * RECV_BUF;
    let bound = sessions * per_session_bound()
        + LOGIN_CONNECTIONS * per_login_bound()
        + spares
        + (32 << 20);
    eprintln!(
        "RSS: base {} MiB, peak {} MiB, bound base + {} MiB",
        base >> 20,
        peak >> 20,
        bound >> 20
    );
    assert!(
        peak <= base + bound,
        "RSS peaked at {peak}, above {base} + {bound}"
    );

    // Everything is released: sessions (all TSIHs can be taken again, exactly), and memory.
    std::thread::sleep(Duration::from_secs(3));
    let after = d.rss();
    eprintln!("RSS after: {} MiB", after >> 20);
    assert!(
        after <= base + (64 << 20),
        "RSS {after} stays far above the start {base}"
    );
    let mut again = Vec::new();
    for i in 0..MAX_SESSIONS {
        let mut ini = Initiator::connect(port);
        ini.isid[5] = i as u8;
        ini.login(Some(common::TARGET), &[]);
        again.push(ini);
    }
    let mut one_more = Initiator::connect(port);
    one_more.isid[5] = 0xff;
    let refused = one_more
        .try_login(Some(common::TARGET), &[])
        .expect_err("over max_sessions");
    assert_eq!((refused.status.class, refused.status.detail), (0x03, 0x02));
    for mut ini in again {
        ini.logout();
    }
    let log = d.log();
    assert!(!log.contains("panicked"), "the daemon panicked:\n{log}");
}
