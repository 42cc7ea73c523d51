//! `ringtgt ctl top`: a refreshing table like `iostat -x 1`. Each refresh asks the daemon for
//! every core's counters (`stats`) and shows what changed since the previous one: IOPS, MB/s,
//! latency p50/p99 and queue depth per LUN and per session, and each reactor's busy share.
//!
//! Plain text and a few cursor commands (crossterm), so it works over `ssh` in 80×24; a frame
//! never has more lines than the terminal nor wider lines. Without a terminal (a pipe) each
//! frame is printed after the previous one.

use std::io::{IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyModifiers};
use crossterm::{cursor, execute, queue, terminal};

use crate::control::admin::protocol::Request;
use crate::control::admin::request;
use crate::control::report::{IoReport, OpReport, Stats};

/// One row of the view: rates over the last interval.
#[derive(Debug, Clone, PartialEq)]
struct Rates {
    iops: f64,
    mb_per_s: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

fn delta_op(now: &OpReport, before: Option<&OpReport>) -> OpReport {
    let Some(b) = before else {
        return now.clone();
    };
    OpReport {
        commands: now.commands.saturating_sub(b.commands),
        bytes: now.bytes.saturating_sub(b.bytes),
        errors: now.errors.saturating_sub(b.errors),
        latency_buckets: now
            .latency_buckets
            .iter()
            .enumerate()
            .map(|(i, n)| n.saturating_sub(b.latency_buckets.get(i).copied().unwrap_or(0)))
            .collect(),
        latency_sum_ns: now.latency_sum_ns.saturating_sub(b.latency_sum_ns),
    }
}

fn rates(now: &IoReport, before: Option<&IoReport>, secs: f64) -> Rates {
    let all_now = now.all();
    let all_before = before.map(IoReport::all);
    let d = delta_op(&all_now, all_before.as_ref());
    let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    Rates {
        iops: per_sec(d.commands),
        mb_per_s: per_sec(d.bytes) / 1e6,
        p50_ms: d.latency_quantile_secs(0.50).map(|s| s * 1e3),
        p99_ms: d.latency_quantile_secs(0.99).map(|s| s * 1e3),
    }
}

/// `name` cut to `width` characters (keeping its end, where IQNs differ), padded.
fn fit(name: &str, width: usize) -> String {
    let n = name.chars().count();
    if n <= width {
        format!("{name:<width$}")
    } else {
        let tail: String = name.chars().skip(n - (width - 1)).collect();
        format!("…{tail}")
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

fn row(name: &str, name_width: usize, r: &Rates, qd: usize) -> String {
    format!(
        "{} {:>9.0} {:>8.1} {:>7} {:>7} {:>5}",
        fit(name, name_width),
        r.iops,
        r.mb_per_s,
        ms(r.p50_ms),
        ms(r.p99_ms),
        qd
    )
}

/// One frame for a `width`×`height` terminal: the counters of `now`, as rates since `before`
/// (`None`: since the daemon started).
pub fn render(before: Option<&Stats>, now: &Stats, width: u16, height: u16) -> Vec<String> {
    let width = usize::from(width.max(40));
    let height = usize::from(height.max(8));
    let secs = match before {
        Some(b) => now.uptime_secs - b.uptime_secs,
        None => now.uptime_secs,
    };
    // Columns after the name: 9+8+7+7+5 plus 5 spaces = 41.
    let name_width = width.saturating_sub(42).max(10);
    let mut lines = Vec::new();
    let sessions = now.sessions();
    lines.push(format!(
        "ringtgt {}  up {}  sessions {}  connections {}",
        now.version,
        super::table::duration(now.uptime_secs),
        sessions.len(),
        now.connections().len()
    ));
    let cores: Vec<String> = now
        .cores
        .iter()
        .map(|c| {
            let prev = before.and_then(|b| b.cores.iter().find(|p| p.core == c.core));
            let (busy, elapsed) = match prev {
                Some(p) => (
                    c.busy_ns.saturating_sub(p.busy_ns),
                    c.elapsed_ns.saturating_sub(p.elapsed_ns),
                ),
                None => (c.busy_ns, c.elapsed_ns),
            };
            let pct = if elapsed == 0 {
                0.0
            } else {
                busy as f64 * 100.0 / elapsed as f64
            };
            format!("cpu{} {pct:5.1}% busy", c.core)
        })
        .collect();
    lines.push(cores.join("  "));
    let header = |what: &str| {
        format!(
            "{} {:>9} {:>8} {:>7} {:>7} {:>5}",
            fit(what, name_width),
            "IOPS",
            "MB/s",
            "p50ms",
            "p99ms",
            "QD"
        )
    };
    let before_luns = before.map(Stats::luns).unwrap_or_default();
    let luns = now.luns();
    // Room for rows: what is left after the 2 summary lines, 2 headers and a blank line.
    let room = height.saturating_sub(lines.len() + 3);
    let lun_rows = if sessions.is_empty() {
        room
    } else {
        luns.len().min(room.div_ceil(2).max(1))
    };
    lines.push(String::new());
    lines.push(header("LUN"));
    for l in luns.iter().take(lun_rows) {
        let prev = before_luns
            .iter()
            .find(|p| p.target == l.target && p.lun == l.lun);
        let r = rates(&l.io, prev.map(|p| &p.io), secs);
        lines.push(row(
            &format!("{}/{}", l.target, l.lun),
            name_width,
            &r,
            l.in_flight,
        ));
    }
    let left = height.saturating_sub(lines.len() + 1);
    if left > 0 && !sessions.is_empty() {
        lines.push(header("SESSION (TSIH initiator)"));
        let before_sessions = before.map(Stats::sessions).unwrap_or_default();
        for s in sessions.iter().take(left) {
            let prev = before_sessions.iter().find(|p| p.tsih == s.tsih);
            let r = rates(&s.io, prev.map(|p| &p.io), secs);
            // The TSIH whole, the initiator name cut to what is left.
            let name = format!("{:>5} {}", s.tsih, fit(&s.initiator, name_width - 6));
            lines.push(row(&name, name_width, &r, s.tasks));
        }
    }
    lines.truncate(height);
    for l in &mut lines {
        if l.chars().count() > width {
            *l = l.chars().take(width).collect();
        }
    }
    lines
}

fn fetch(stream: &mut UnixStream) -> anyhow::Result<Stats> {
    let answer = request(stream, Request::Stats).context("admin request failed")?;
    if !answer.ok {
        bail!("{}", answer.error.unwrap_or_default());
    }
    Ok(serde_json::from_value(answer.result.unwrap_or_default())?)
}

/// Restores the terminal however `top` ends.
struct Screen;

impl Screen {
    fn enter() -> anyhow::Result<Screen> {
        terminal::enable_raw_mode()?;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )?;
        Ok(Screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(
            std::io::stdout(),
            cursor::Show,
            terminal::LeaveAlternateScreen
        );
        let _ = terminal::disable_raw_mode();
    }
}

pub fn run(mut stream: UnixStream, interval: Duration, count: Option<u64>) -> anyhow::Result<()> {
    let tty = std::io::stdout().is_terminal();
    let _screen = if tty { Some(Screen::enter()?) } else { None };
    let mut before: Option<Stats> = None;
    let mut frames = 0u64;
    loop {
        let now = fetch(&mut stream)?;
        let (w, h) = if tty {
            terminal::size().unwrap_or((80, 24))
        } else {
            (80, 24)
        };
        let lines = render(before.as_ref(), &now, w, h);
        let mut out = std::io::stdout().lock();
        if tty {
            queue!(
                out,
                cursor::MoveTo(0, 0),
                terminal::Clear(terminal::ClearType::All)
            )?;
            write!(out, "{}", lines.join("\r\n"))?;
        } else {
            writeln!(out, "{}\n", lines.join("\n"))?;
        }
        out.flush()?;
        drop(out);
        before = Some(now);
        frames += 1;
        if count.is_some_and(|c| frames >= c) {
            return Ok(());
        }
        if wait_or_quit(tty, interval)? {
            return Ok(());
        }
    }
}

/// Waits `interval`; with a terminal, returns early (true) on q, Esc or Ctrl-C.
fn wait_or_quit(tty: bool, interval: Duration) -> anyhow::Result<bool> {
    if !tty {
        std::thread::sleep(interval);
        return Ok(false);
    }
    let deadline = Instant::now() + interval;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !event::poll(left)? {
            return Ok(false);
        }
        if let Event::Key(KeyEvent {
            code, modifiers, ..
        }) = event::read()?
        {
            let ctrl_c = code == KeyCode::Char('c') && modifiers.contains(KeyModifiers::CONTROL);
            if ctrl_c || code == KeyCode::Char('q') || code == KeyCode::Esc {
                return Ok(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::report::{CoreReport, LunReport, SessionReport};
    use crate::session::stats::BUCKETS;

    fn io(commands: u64, bytes: u64, bucket: usize) -> IoReport {
        let mut latency_buckets = vec![0; BUCKETS];
        latency_buckets[bucket] = commands;
        IoReport {
            read: OpReport {
                commands,
                bytes,
                errors: 0,
                latency_buckets,
                latency_sum_ns: 0,
            },
            ..IoReport::default()
        }
    }

    fn snapshot(uptime: f64, commands: u64, busy_ns: u64) -> Stats {
        let target = "iqn.2026-11.io.ringtgt:a-rather-long-target-name-for-the-column";
        Stats {
            version: "0.1.0".into(),
            uptime_secs: uptime,
            cores: vec![CoreReport {
                core: 0,
                elapsed_ns: (uptime * 1e9) as u64,
                busy_ns,
                luns: (0..30)
                    .map(|lun| LunReport {
                        target: target.into(),
                        lun,
                        io: io(commands, commands * 4096, 6),
                        in_flight: 4,
                    })
                    .collect(),
                sessions: vec![SessionReport {
                    tsih: 7,
                    initiator: "iqn.1993-08.org.debian:01:abcdef".into(),
                    io: io(commands, commands * 4096, 6),
                    tasks: 3,
                    ..SessionReport::default()
                }],
                ..CoreReport::default()
            }],
        }
    }

    #[test]
    fn a_frame_fits_80_by_24_and_shows_rates_since_the_last_one() {
        let before = snapshot(10.0, 1000, 1_000_000_000);
        let now = snapshot(12.0, 21_000, 2_000_000_000);
        let lines = render(Some(&before), &now, 80, 24);
        assert!(lines.len() <= 24, "{lines:#?}");
        assert!(lines.iter().all(|l| l.chars().count() <= 80), "{lines:#?}");
        assert!(lines[0].starts_with("ringtgt 0.1.0  up 12s  sessions 1"));
        // One of two seconds busy.
        assert!(lines[1].contains("cpu0  50.0% busy"), "{}", lines[1]);
        let unit = lines
            .iter()
            .find(|l| l.contains("column/0 "))
            .expect("LUN 0 row");
        // 20000 commands in 2 s of 4 KiB each: 10000 IOPS, 40.96 MB/s; every latency in bucket
        // 6 (0.52 .. 1.05 ms).
        let cells: Vec<&str> = unit.split_whitespace().collect();
        assert_eq!(&cells[1..3], ["10000", "41.0"], "{unit}");
        let p50: f64 = cells[3].parse().unwrap();
        assert!((0.52..=1.05).contains(&p50), "{unit}");
        assert_eq!(cells[5], "4");
        let session = lines
            .iter()
            .find(|l| l.starts_with("    7 iqn.1993-08"))
            .expect("the session's row");
        assert!(session.trim_end().ends_with(" 3"), "{session}");
    }

    #[test]
    fn a_small_terminal_gets_a_shorter_frame() {
        let lines = render(None, &snapshot(5.0, 10, 0), 40, 8);
        assert_eq!(lines.len(), 8);
        assert!(lines.iter().all(|l| l.chars().count() <= 40));
    }
}
