//! `/metrics` in Prometheus text format (`--metrics ADDR`, config `metrics_addr`).
//!
//! How the numbers are made: every reactor keeps plain counters that only it writes (sessions
//! count their own commands; the reactor keeps what ended). A scrape is an admin `stats`
//! request: the control thread asks each reactor over its mailbox for a copy of its counters,
//! and this thread sums the copies and encodes them with `prometheus-client`. The data path
//! pays nothing for a scrape but one message per core, and nothing at all between scrapes.
//!
//! One small thread accepts, and each request is answered on a thread of its own, at most
//! `MAX_CLIENTS` at a time (more are closed at once): a client that is slow to ask or to read
//! delays nobody else's scrape, and each has `REQUEST_DEADLINE` to send its request and
//! `RESPONSE_DEADLINE` to take the answer, however it paces its bytes. Anything but
//! `GET /metrics` gets 404.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::admin::protocol::{LunInfo, Request, ResponseLine};
use super::report::{latency_bound_secs, IoReport, OpReport, Stats};
use super::ToControl;
use crate::session::stats::OpClass;

/// How long a client may take to send its request (request line and headers), in all.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// How long a client may take to read the answer, in all.
const RESPONSE_DEADLINE: Duration = Duration::from_secs(10);
/// Requests answered at once; a connection beyond them is closed without an answer.
const MAX_CLIENTS: usize = 8;
/// The most of a request that is read (request line and headers): a scraper sends a few hundred
/// bytes, and a client that sends an endless line must not make the daemon hold it.
const MAX_REQUEST_BYTES: u64 = 16 << 10;
/// How long the control thread may take to gather the reports.
const GATHER_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `addr` and serves `/metrics` on its own thread; returns the bound address.
pub fn serve(addr: SocketAddr, to_control: Sender<ToControl>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let busy = Arc::new(AtomicUsize::new(0));
            for stream in listener.incoming().flatten() {
                if busy.load(Ordering::Acquire) >= MAX_CLIENTS {
                    tracing::debug!(max = MAX_CLIENTS, "metrics: too many clients; closing");
                    continue;
                }
                busy.fetch_add(1, Ordering::AcqRel);
                let (done, to_control) = (Arc::clone(&busy), to_control.clone());
                let spawned = std::thread::Builder::new()
                    .name("metrics-client".into())
                    .spawn(move || {
                        if let Err(e) = answer(stream, &to_control) {
                            tracing::debug!(error = %e, "metrics request failed");
                        }
                        done.fetch_sub(1, Ordering::AcqRel);
                    });
                if let Err(e) = spawned {
                    busy.fetch_sub(1, Ordering::AcqRel);
                    tracing::warn!(error = %e, "metrics: cannot start a thread for a request");
                }
            }
        })?;
    tracing::info!(addr = %bound, "metrics at http://{bound}/metrics");
    Ok(bound)
}

/// Reads from a stream until a deadline: each read may wait only for what is left of it, so a
/// client that sends a byte now and then cannot hold its thread for longer.
struct UntilDeadline {
    stream: TcpStream,
    deadline: Instant,
}

impl UntilDeadline {
    /// What is left until the deadline, or `TimedOut` once it has passed.
    fn left(&self) -> std::io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        Ok(left)
    }
}

impl Read for UntilDeadline {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        self.stream.read(buf)
    }
}

impl Write for UntilDeadline {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

fn answer(stream: TcpStream, to_control: &Sender<ToControl>) -> std::io::Result<()> {
    let request = UntilDeadline {
        stream: stream.try_clone()?,
        deadline: Instant::now() + REQUEST_DEADLINE,
    };
    let mut reader = BufReader::new(request.take(MAX_REQUEST_BYTES));
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // The headers are read and ignored.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next(), parts.next());
    if method != Some("GET") || path.map(|p| p.split('?').next()) != Some(Some("/metrics")) {
        return respond(stream, "404 Not Found", "text/plain", "not found\n");
    }
    match scrape(to_control) {
        Ok(body) => respond(
            stream,
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            &body,
        ),
        Err(e) => respond(
            stream,
            "503 Service Unavailable",
            "text/plain",
            &format!("{e}\n"),
        ),
    }
}

/// Sends the answer, within `RESPONSE_DEADLINE` from now.
fn respond(stream: TcpStream, status: &str, kind: &str, body: &str) -> std::io::Result<()> {
    let mut stream = UntilDeadline {
        stream,
        deadline: Instant::now() + RESPONSE_DEADLINE,
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}

fn ask(to_control: &Sender<ToControl>, request: Request) -> Result<serde_json::Value, String> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    to_control
        .send(ToControl::Admin { request, reply: tx })
        .map_err(|_| "the daemon is shutting down".to_string())?;
    let answer: ResponseLine = rx
        .recv_timeout(GATHER_TIMEOUT)
        .map_err(|_| "the reactors did not report in time".to_string())?;
    match (answer.ok, answer.result) {
        (true, Some(v)) => Ok(v),
        _ => Err(answer.error.unwrap_or_default()),
    }
}

fn scrape(to_control: &Sender<ToControl>) -> Result<String, String> {
    let stats: Stats =
        serde_json::from_value(ask(to_control, Request::Stats)?).map_err(|e| e.to_string())?;
    let luns: Vec<LunInfo> =
        serde_json::from_value(ask(to_control, Request::Luns { target: None })?)
            .map_err(|e| e.to_string())?;
    render(&stats, &luns)
}

/// The exposition of `stats`, with every configured unit (`luns`) present even before its
/// first command.
pub fn render(stats: &Stats, luns: &[LunInfo]) -> Result<String, String> {
    let mut registry = Registry::with_prefix("ringtgt");
    registry.register_collector(Box::new(Scrape {
        stats: stats.clone(),
        luns: luns.to_vec(),
    }));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        .map_err(|e| e.to_string())?;
    Ok(text)
}

type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
struct Scrape {
    stats: Stats,
    luns: Vec<LunInfo>,
}

/// One metric family: rows of (labels, value).
struct Family<'a> {
    name: &'a str,
    help: &'a str,
    rows: Vec<(Labels, u64)>,
}

fn counters(e: &mut DescriptorEncoder, f: Family<'_>) -> std::fmt::Result {
    let mut m = e.encode_descriptor(f.name, f.help, None, MetricType::Counter)?;
    for (labels, v) in &f.rows {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauges(e: &mut DescriptorEncoder, f: Family<'_>) -> std::fmt::Result {
    let mut m = e.encode_descriptor(f.name, f.help, None, MetricType::Gauge)?;
    for (labels, v) in &f.rows {
        let v = i64::try_from(*v).unwrap_or(i64::MAX);
        ConstGauge::new(v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn seconds_counters(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, f64)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn histograms(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, &OpReport)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, op) in rows {
        let buckets: Vec<(f64, u64)> = op
            .latency_buckets
            .iter()
            .enumerate()
            .map(|(i, n)| (latency_bound_secs(i).unwrap_or(f64::INFINITY), *n))
            .collect();
        let count = op.latency_buckets.iter().sum();
        let sum = op.latency_sum_ns as f64 * 1e-9;
        m.encode_family(labels)?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
    }
    Ok(())
}

/// (label, value) pairs plus `op`, for each operation of `io`.
fn by_op<'a>(base: &Labels, io: &'a IoReport) -> Vec<(Labels, &'a OpReport)> {
    OpClass::ALL
        .iter()
        .map(|c| {
            let mut l = base.clone();
            l.push(("op", c.as_str().to_string()));
            (l, io.op(*c))
        })
        .collect()
}

/// Counter families `<prefix>_commands`, `_bytes`, `_errors` of rows split by operation.
fn io_counters(
    e: &mut DescriptorEncoder,
    prefix: &str,
    what: &str,
    rows: &[(Labels, &OpReport)],
) -> std::fmt::Result {
    let pick = |f: fn(&OpReport) -> u64| rows.iter().map(|(l, o)| (l.clone(), f(o))).collect();
    counters(
        e,
        Family {
            name: &format!("{prefix}_commands"),
            help: &format!("SCSI commands completed, per {what} and operation"),
            rows: pick(|o| o.commands),
        },
    )?;
    counters(
        e,
        Family {
            name: &format!("{prefix}_bytes"),
            help: &format!("Bytes transferred, per {what} and operation"),
            rows: pick(|o| o.bytes),
        },
    )?;
    counters(
        e,
        Family {
            name: &format!("{prefix}_errors"),
            help: &format!(
                "Commands that ended with a status other than GOOD, per {what} and operation"
            ),
            rows: pick(|o| o.errors),
        },
    )
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        self.encode_units(&mut e)?;
        self.encode_initiators(&mut e)?;
        self.encode_logins(&mut e)?;
        self.encode_cores(&mut e)
    }
}

impl Scrape {
    fn encode_units(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let reported = self.stats.luns();
        let mut units = Vec::new();
        for l in &self.luns {
            let found = reported
                .iter()
                .find(|r| r.target == l.target && r.lun == l.id);
            let labels = vec![("target", l.target.clone()), ("lun", l.id.to_string())];
            units.push((
                labels,
                found.map(|r| r.io.clone()).unwrap_or_default(),
                found.map_or(0, |r| r.in_flight),
            ));
        }
        let rows: Vec<(Labels, &OpReport)> =
            units.iter().flat_map(|(l, io, _)| by_op(l, io)).collect();
        io_counters(e, "lun", "logical unit", &rows)?;
        histograms(
            e,
            "lun_latency_seconds",
            "Command latency from arrival to status, per logical unit and operation",
            &rows,
        )?;
        gauges(
            e,
            Family {
                name: "lun_in_flight",
                help: "Commands running now (queue depth), per logical unit",
                rows: units
                    .iter()
                    .map(|(l, _, n)| (l.clone(), *n as u64))
                    .collect(),
            },
        )
    }

    fn encode_initiators(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let initiators = self.stats.initiators();
        let rows: Vec<(Labels, &OpReport)> = initiators
            .iter()
            .flat_map(|(name, io)| by_op(&vec![("initiator", name.clone())], io))
            .collect();
        io_counters(e, "initiator", "initiator", &rows)?;
        let sessions = self.stats.sessions();
        let session_io: Vec<(Labels, &IoReport)> = sessions
            .iter()
            .map(|s| {
                let labels = vec![
                    ("initiator", s.initiator.clone()),
                    ("isid", s.isid.clone()),
                    ("tsih", s.tsih.to_string()),
                    ("target", s.target.clone().unwrap_or_default()),
                ];
                (labels, &s.io)
            })
            .collect();
        let rows: Vec<(Labels, &OpReport)> =
            session_io.iter().flat_map(|(l, io)| by_op(l, io)).collect();
        io_counters(e, "session", "session", &rows)?;
        let total = |f: fn(&super::report::CoreReport) -> usize| {
            self.stats.cores.iter().map(f).sum::<usize>() as u64
        };
        gauges(
            e,
            Family {
                name: "sessions",
                help: "Sessions in full feature phase (normal and discovery)",
                rows: vec![(Vec::new(), total(|c| c.sessions.len()))],
            },
        )?;
        gauges(
            e,
            Family {
                name: "connections",
                help: "TCP connections, in any phase",
                rows: vec![(Vec::new(), total(|c| c.connections.len()))],
            },
        )
    }

    fn encode_logins(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let sum = |f: fn(&super::report::CoreReport) -> u64| self.stats.cores.iter().map(f).sum();
        counters(
            e,
            Family {
                name: "logins",
                help: "Logins admitted into full feature phase",
                rows: vec![(Vec::new(), sum(|c| c.logins))],
            },
        )?;
        counters(
            e,
            Family {
                name: "login_failures",
                help: "Logins refused, by reason (auth, acl, not_found, resources, other)",
                rows: self
                    .stats
                    .login_failures()
                    .by_reason()
                    .iter()
                    .map(|(r, n)| (vec![("reason", r.to_string())], *n))
                    .collect(),
            },
        )?;
        counters(
            e,
            Family {
                name: "digest_errors",
                help: "PDUs received with a wrong header or data digest (CRC32C)",
                rows: vec![(Vec::new(), sum(|c| c.digest_errors))],
            },
        )
    }

    fn encode_cores(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let cores = &self.stats.cores;
        let core = |c: &super::report::CoreReport| vec![("core", c.core.to_string())];
        let per_core = |f: fn(&super::report::CoreReport) -> u64| -> Vec<(Labels, u64)> {
            cores.iter().map(|c| (core(c), f(c))).collect()
        };
        let secs = |f: fn(&super::report::CoreReport) -> u64| -> Vec<(Labels, f64)> {
            cores
                .iter()
                .map(|c| (core(c), f(c) as f64 * 1e-9))
                .collect()
        };
        seconds_counters(
            e,
            "reactor_busy_seconds",
            "Time each reactor spent working (not waiting for events)",
            &secs(|c| c.busy_ns),
        )?;
        seconds_counters(
            e,
            "reactor_seconds",
            "Time since each reactor started (busy / this = busy share)",
            &secs(|c| c.elapsed_ns),
        )?;
        gauges(
            e,
            Family {
                name: "reactor_connections",
                help: "TCP connections in any phase, per reactor (where placement put them)",
                rows: per_core(|c| c.connections.len() as u64),
            },
        )?;
        gauges(
            e,
            Family {
                name: "reactor_sessions",
                help: "Sessions in full feature phase, per reactor",
                rows: per_core(|c| c.sessions.len() as u64),
            },
        )?;
        counters(
            e,
            Family {
                name: "reactor_logins",
                help: "Logins admitted into full feature phase, per reactor (sessions it served)",
                rows: per_core(|c| c.logins),
            },
        )?;
        counters(
            e,
            Family {
                name: "io_uring_submissions",
                help: "io_uring submission queue entries, per reactor",
                rows: per_core(|c| c.submissions),
            },
        )?;
        counters(
            e,
            Family {
                name: "io_uring_enters",
                help: "io_uring_enter system calls, per reactor",
                rows: per_core(|c| c.enters),
            },
        )?;
        counters(
            e,
            Family {
                name: "io_uring_coalesced_waits",
                help: "Waits for completions that gathered them for up to --coalesce-us after a turn of small receives, per reactor",
                rows: per_core(|c| c.coalesced_waits),
            },
        )?;
        gauges(
            e,
            Family {
                name: "buffer_pool_registered",
                help: "Registered I/O buffers, per reactor",
                rows: per_core(|c| c.pool.registered as u64),
            },
        )?;
        gauges(
            e,
            Family {
                name: "buffer_pool_in_use",
                help: "Registered I/O buffers in use now, per reactor",
                rows: per_core(|c| c.pool.in_use as u64),
            },
        )?;
        counters(
            e,
            Family {
                name: "buffer_heap_fallbacks",
                help: "I/O buffers taken from the heap because no registered one was free or large enough",
                rows: per_core(|c| c.pool.heap_fallbacks),
            },
        )?;
        counters(
            e,
            Family {
                name: "write_bytes_lent",
                help: "Write data written from the receive buffer it arrived in, without a copy, per reactor",
                rows: per_core(|c| c.pool.lent_bytes),
            },
        )?;
        counters(
            e,
            Family {
                name: "write_bytes_realigned",
                help: "Of the write data lent, bytes copied after all into an aligned buffer for direct I/O, per reactor",
                rows: per_core(|c| c.pool.realigned_bytes),
            },
        )?;
        counters(
            e,
            Family {
                name: "write_bytes_copied",
                help: "Write data copied from the receive buffer it arrived in into the buffer it is written from (what was neither lent nor received in place), per reactor",
                rows: per_core(|c| c.pool.copied_write_bytes),
            },
        )?;
        counters(
            e,
            Family {
                name: "write_bytes_unregistered",
                help: "Write data submitted to files and block devices from memory not registered with the ring (pages pinned per I/O), per reactor",
                rows: per_core(|c| c.pool.unregistered_write_bytes),
            },
        )?;
        gauges(
            e,
            Family {
                name: "recv_ring_buffers",
                help: "Buffers of the receive ring (io_uring provided buffers), per reactor; 0 without one",
                rows: per_core(|c| c.pool.recv_ring_buffers as u64),
            },
        )?;
        gauges(
            e,
            Family {
                name: "recv_ring_in_use",
                help: "Receive ring buffers out of the ring now (being consumed, or holding write data not yet written), per reactor",
                rows: per_core(|c| c.pool.recv_ring_in_use as u64),
            },
        )?;
        counters(
            e,
            Family {
                name: "recv_ring_bytes",
                help: "Bytes received into receive ring buffers, per reactor",
                rows: per_core(|c| c.pool.recv_ring_bytes),
            },
        )?;
        counters(
            e,
            Family {
                name: "recv_ring_starved",
                help: "Receives that found every receive ring buffer in use and went to the connection's own buffer, per reactor",
                rows: per_core(|c| c.pool.recv_ring_starved),
            },
        )?;
        counters(
            e,
            Family {
                name: "recv_ring_carried_bytes",
                help: "Bytes of PDUs cut by the end of a receive ring buffer that were copied to the connection's own buffer (payloads that land in place are not), per reactor",
                rows: per_core(|c| c.pool.recv_ring_carried_bytes),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::report::{CoreReport, LunReport};

    #[test]
    fn exposition_names_every_family_and_sums_the_cores() {
        let unit = |commands| LunReport {
            target: "iqn.t".into(),
            lun: 0,
            io: IoReport {
                write: OpReport {
                    commands,
                    bytes: commands * 4096,
                    errors: 0,
                    latency_buckets: vec![commands, 0, 0],
                    latency_sum_ns: 1000,
                },
                ..IoReport::default()
            },
            in_flight: 0,
        };
        let stats = Stats {
            cores: vec![
                CoreReport {
                    luns: vec![unit(2)],
                    ..CoreReport::default()
                },
                CoreReport {
                    core: 1,
                    luns: vec![unit(3)],
                    ..CoreReport::default()
                },
            ],
            ..Stats::default()
        };
        let luns = vec![
            LunInfo {
                target: "iqn.t".into(),
                id: 0,
                ..LunInfo::default()
            },
            LunInfo {
                target: "iqn.t".into(),
                id: 1,
                ..LunInfo::default()
            },
        ];
        let text = render(&stats, &luns).unwrap();
        let want = "ringtgt_lun_commands_total{target=\"iqn.t\",lun=\"0\",op=\"write\"} 5";
        assert!(text.contains(want), "{text}");
        assert!(text.contains("ringtgt_lun_bytes_total{target=\"iqn.t\",lun=\"1\",op=\"read\"} 0"));
        assert!(text.contains("# TYPE ringtgt_lun_latency_seconds histogram"));
        assert!(text.contains("ringtgt_login_failures_total{reason=\"auth\"} 0"));
        assert!(text.contains("ringtgt_reactor_busy_seconds_total{core=\"1\"}"));
        assert!(text.contains("ringtgt_reactor_sessions{core=\"0\"} 0"));
        assert!(text.contains("ringtgt_reactor_logins_total{core=\"1\"} 0"));
    }
}
