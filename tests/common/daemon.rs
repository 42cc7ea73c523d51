//! Runs the real `ringtgt` binary on a free 127.0.0.1 port for one test, and runs other programs
//! (the CLI itself, libiscsi's tools) with a time limit so that no test can hang CI.

use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the daemon may take to accept TCP on its portal.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

pub const BIN: &str = env!("CARGO_BIN_EXE_ringtgt");

/// How to launch the daemon beyond its arguments.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// RUST_LOG for the daemon (default: the test's RUST_LOG, else debug).
    pub rust_log: Option<String>,
    /// A program (with its arguments) that execs the daemon, e.g. `prlimit --nofile=64 --`.
    pub wrapper: Vec<String>,
}

pub struct Daemon {
    child: Child,
    port: u16,
    log_path: PathBuf,
    /// Holds the log file and any config file for as long as the daemon runs.
    dir: tempfile::TempDir,
    /// The full command line and launch options, to start the daemon again.
    args: Vec<String>,
    launch: Launch,
}

/// Ports the tests hand out: below the kernel's ephemeral range, where no other program's
/// outgoing connection (the Ceph cluster's, a client's) can take one between the check here and
/// the daemon's bind; the scripts (scripts/lib/free-port.sh) take theirs from 27000 up.
const TEST_PORTS: std::ops::Range<u32> = 20000..27000;

/// A port nothing was bound to a moment ago. Taken in turn from a random start, so that the tests
/// of one binary never get the same one; where the ephemeral range reaches down into
/// `TEST_PORTS`, a port the kernel picks (bind :0, read it, release it).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(0);
    if ephemeral_low >= TEST_PORTS.end {
        let span = TEST_PORTS.len() as u32;
        let seed = std::process::id().wrapping_mul(7919)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
        let _ = NEXT.compare_exchange(u32::MAX, seed % span, Ordering::Relaxed, Ordering::Relaxed);
        for _ in 0..span {
            let port = TEST_PORTS.start + NEXT.fetch_add(1, Ordering::Relaxed) % span;
            if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
                return port as u16;
            }
        }
    }
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl Daemon {
    /// `ringtgt serve --portal 127.0.0.1:PORT <args>`.
    pub fn start(args: &[&str]) -> Daemon {
        let port = free_port();
        let portal = format!("127.0.0.1:{port}");
        let mut full = vec!["serve", "--portal", &portal];
        full.extend_from_slice(args);
        Self::spawn(port, &full, tempfile::tempdir().expect("tempdir"))
    }

    /// `ringtgt serve --config FILE`, where `toml` builds the file's text from the chosen port
    /// (the portal lives in the file).
    pub fn start_config(toml: impl FnOnce(u16) -> String) -> Daemon {
        Self::start_config_with(toml, &Launch::default())
    }

    /// [`Daemon::start_config`] with launch options.
    pub fn start_config_with(toml: impl FnOnce(u16) -> String, launch: &Launch) -> Daemon {
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ringtgt.toml");
        std::fs::write(&path, toml(port)).expect("write config");
        let path = path.to_str().expect("utf-8 path").to_string();
        Self::spawn_with(port, &["serve", "--config", &path], dir, launch)
    }

    /// `ringtgt serve --portal 127.0.0.1:PORT <args>` on a port the test chose (e.g. the one a
    /// daemon that just stopped had).
    pub fn start_on(port: u16, args: &[&str]) -> Daemon {
        let portal = format!("127.0.0.1:{port}");
        let mut full = vec!["serve", "--portal", &portal];
        full.extend_from_slice(args);
        Self::spawn(port, &full, tempfile::tempdir().expect("tempdir"))
    }

    /// `ringtgt serve --portal 127.0.0.1:PORT <args>` with launch options.
    pub fn start_with(args: &[&str], launch: &Launch) -> Daemon {
        let port = free_port();
        let portal = format!("127.0.0.1:{port}");
        let mut full = vec!["serve", "--portal", &portal];
        full.extend_from_slice(args);
        Self::spawn_with(port, &full, tempfile::tempdir().expect("tempdir"), launch)
    }

    fn spawn(port: u16, args: &[&str], dir: tempfile::TempDir) -> Daemon {
        Self::spawn_with(port, args, dir, &Launch::default())
    }

    fn spawn_with(port: u16, args: &[&str], dir: tempfile::TempDir, launch: &Launch) -> Daemon {
        let log_path = dir.path().join("ringtgt.log");
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        // Reservations a test makes persistent (APTPL) stay in the test's directory, not in
        // /var/lib/ringtgt where they would reach other tests.
        if args.first().is_some_and(|a| a == "serve") && !args.iter().any(|a| a == "--state-dir") {
            let state = dir.path().join("state");
            args.extend(["--state-dir".into(), state.to_str().expect("utf-8").into()]);
        }
        // Likewise the admin socket: in the test's directory, never /run/ringtgt.
        if args.first().is_some_and(|a| a == "serve") && !args.iter().any(|a| a == "--admin-socket")
        {
            let socket = dir.path().join("ctl.sock");
            args.extend([
                "--admin-socket".into(),
                socket.to_str().expect("utf-8").into(),
            ]);
        }
        let child = Self::launch(&args, &log_path, launch, false);
        let mut d = Daemon {
            child,
            port,
            log_path,
            dir,
            args,
            launch: launch.clone(),
        };
        d.wait_ready();
        d
    }

    fn launch(args: &[String], log_path: &Path, launch: &Launch, append: bool) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(log_path)
            .expect("open log");
        let mut command = match launch.wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let rust_log = launch
            .rust_log
            .clone()
            .or_else(|| std::env::var("RUST_LOG").ok())
            .unwrap_or("debug".into());
        command
            .args(args)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"))
    }

    /// Kills the daemon with SIGKILL (nothing flushed, nothing said to initiators) and starts
    /// it again with the same arguments, port and directories; its log continues.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The kernel tears a dead process's io_uring down asynchronously: its listening
        // sockets may accept for a moment after the process is gone.
        let deadline = Instant::now() + READY_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "the killed daemon's portal stays open"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Self::launch(&self.args, &self.log_path, &self.launch, true);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let args = &self.args;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "ringtgt {args:?} exited before accepting ({status}); its log:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "ringtgt {args:?} did not accept on 127.0.0.1:{} within {READY_TIMEOUT:?}; \
                     its log:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size of the daemon, in bytes (Linux /proc).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kib * 1024
    }

    /// CPU time the daemon has used (user + system), from /proc/PID/stat.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read /proc/PID/stat");
        // Fields after the command name (which may contain spaces) start after the last ')'.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // USER_HZ is 100 on every Linux this runs on.
        Duration::from_millis(ticks * 10)
    }

    /// The core (reactor) that serves the connection from local port `peer_port`, from the
    /// debug log's connection span.
    pub fn core_of(&self, peer_port: u16) -> Option<usize> {
        let needle = format!("peer=127.0.0.1:{peer_port} core=");
        let log = self.log();
        let at = log.find(&needle)? + needle.len();
        let digits: String = log[at..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }

    /// [`Daemon::core_of`] a connection just opened, once the reactor it was placed on has
    /// logged it.
    pub fn wait_core_of(&self, peer_port: u16) -> usize {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(core) = self.core_of(peer_port) {
                return core;
            }
            assert!(
                Instant::now() < deadline,
                "no reactor logged the connection from port {peer_port}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the daemon wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The daemon's admin socket (the harness puts it in the test's directory).
    pub fn admin_socket(&self) -> PathBuf {
        let at = self
            .args
            .iter()
            .position(|a| a == "--admin-socket")
            .expect("--admin-socket");
        PathBuf::from(&self.args[at + 1])
    }

    /// A scratch directory that lives as long as the daemon (for backing files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends a signal by name (`HUP`, `TERM`, `KILL`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name} {}", self.pid());
        if name == "STOP" {
            self.wait_stopped();
        }
    }

    /// Waits until every thread of the daemon is stopped: SIGSTOP takes effect asynchronously,
    /// and on a loaded machine a thread can still run (receive, complete a write) for a moment
    /// after `kill` returned.
    fn wait_stopped(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let tasks = format!("/proc/{}/task", self.pid());
        loop {
            let running = std::fs::read_dir(&tasks)
                .map(|dir| {
                    dir.flatten().any(|t| {
                        let stat =
                            std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                        // The state follows the command name's closing parenthesis.
                        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
                        !matches!(state, Some(Some('T' | 't')) | None)
                    })
                })
                .unwrap_or(false);
            if !running {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not stop on SIGSTOP"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits up to `limit` for the process to end; its exit code (`None` if a signal ended it).
    /// Panics if it is still running then.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "ringtgt still running {limit:?} after being told to stop; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// True while the process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A daemon that was already gone when its test failed is the likelier culprit than the
        // test: say how it ended (a signal leaves nothing in its log).
        let ended = self.child.try_wait().ok().flatten();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let how = ended.map_or_else(
                || format!("running until the test failed; killed at {} UTC", utc_now()),
                |status| format!("had already ended: {status}"),
            );
            eprintln!(
                "----- ringtgt log (port {}, pid {}, {how}) -----\n{}----- end of log -----",
                self.port,
                self.child.id(),
                self.log()
            );
        }
    }
}

/// The time of day as the daemon's log lines give it (HH:MM:SS.micros, UTC), to place a test's
/// failure among them.
fn utc_now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let s = t.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        t.subsec_micros()
    )
}

/// Runs a program to completion, killing it after `limit`. Returns `None` as the exit code when it
/// was killed or died by a signal.
pub fn run(program: &str, args: &[&str], limit: Duration) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let deadline = Instant::now() + limit;
    let code = loop {
        match child.try_wait().expect("try_wait") {
            Some(status) => break status.code(),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!("{program} {args:?} killed after {limit:?}");
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    (code, read_lossy(&out_path), read_lossy(&err_path))
}

fn read_lossy(p: &Path) -> String {
    let mut buf = Vec::new();
    let _ = File::open(p).and_then(|mut f| f.read_to_end(&mut buf));
    String::from_utf8_lossy(&buf).into_owned()
}

/// The per-second IOPS that `iscsi-perf` printed ("iops current N" on each progress line).
#[allow(dead_code)] // not every test binary runs iscsi-perf
pub fn iscsi_perf_iops(out: &str) -> Vec<u64> {
    out.split(['\r', '\n'])
        .filter_map(|l| l.split("iops current ").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect()
}
