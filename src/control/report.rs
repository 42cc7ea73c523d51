//! What each reactor reports when the control thread asks (metrics scrapes, `ringtgt ctl`): its
//! plain per-core counters copied at that moment. Nothing here is shared while the reactors run;
//! the control thread, the metrics endpoint and `ringtgt ctl` sum the reports of every core.
//!
//! These types are also the `stats` answer of the admin protocol, so they serialize to JSON.

use serde::{Deserialize, Serialize};

use crate::session::stats::{Histogram, LunStats, OpClass, OpStats, BUCKETS};

/// Counters of one kind of operation (read, write, other).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpReport {
    pub commands: u64,
    pub bytes: u64,
    pub errors: u64,
    /// Commands per latency bucket (bounds in [`latency_bound_secs`]); the last is unbounded.
    pub latency_buckets: Vec<u64>,
    pub latency_sum_ns: u64,
}

impl OpReport {
    fn of(o: &OpStats) -> OpReport {
        OpReport {
            commands: o.commands,
            bytes: o.bytes,
            errors: o.errors,
            latency_buckets: o.latency.buckets.to_vec(),
            latency_sum_ns: o.latency.sum_ns,
        }
    }

    pub fn add(&mut self, o: &OpReport) {
        self.commands += o.commands;
        self.bytes += o.bytes;
        self.errors += o.errors;
        if self.latency_buckets.len() < o.latency_buckets.len() {
            self.latency_buckets.resize(o.latency_buckets.len(), 0);
        }
        for (a, b) in self.latency_buckets.iter_mut().zip(&o.latency_buckets) {
            *a += b;
        }
        self.latency_sum_ns += o.latency_sum_ns;
    }

    /// The latency below which `q` (0..=1) of the commands completed, estimated from the
    /// buckets (linear within the bucket); `None` without commands.
    pub fn latency_quantile_secs(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency_buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).max(1.0);
        let mut seen = 0u64;
        for (i, &n) in self.latency_buckets.iter().enumerate() {
            if n > 0 && (seen + n) as f64 >= rank {
                let low = if i == 0 {
                    0.0
                } else {
                    latency_bound_secs(i - 1).unwrap_or(0.0)
                };
                let Some(high) = latency_bound_secs(i) else {
                    return Some(low);
                };
                let within = (rank - seen as f64) / n as f64;
                return Some(low + (high - low) * within);
            }
            seen += n;
        }
        None
    }
}

/// Upper bound in seconds of latency bucket `i` (`None` for the last, unbounded one).
pub fn latency_bound_secs(i: usize) -> Option<f64> {
    if i >= BUCKETS {
        return None;
    }
    Histogram::bound_secs(i)
}

/// Counters of a unit, a session or an initiator, by operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoReport {
    pub read: OpReport,
    pub write: OpReport,
    pub other: OpReport,
}

impl IoReport {
    pub fn of(s: &LunStats) -> IoReport {
        IoReport {
            read: OpReport::of(s.op(OpClass::Read)),
            write: OpReport::of(s.op(OpClass::Write)),
            other: OpReport::of(s.op(OpClass::Other)),
        }
    }

    pub fn add(&mut self, o: &IoReport) {
        self.read.add(&o.read);
        self.write.add(&o.write);
        self.other.add(&o.other);
    }

    pub fn op(&self, class: OpClass) -> &OpReport {
        match class {
            OpClass::Read => &self.read,
            OpClass::Write => &self.write,
            OpClass::Other => &self.other,
        }
    }

    pub fn commands(&self) -> u64 {
        self.read.commands + self.write.commands + self.other.commands
    }

    pub fn bytes(&self) -> u64 {
        self.read.bytes + self.write.bytes + self.other.bytes
    }

    /// Every operation's latencies together.
    pub fn all(&self) -> OpReport {
        let mut all = self.read.clone();
        all.add(&self.write);
        all.add(&self.other);
        all
    }
}

/// One logical unit as seen from one core.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LunReport {
    pub target: String,
    pub lun: u16,
    pub io: IoReport,
    /// Commands of this unit running now (queue depth).
    pub in_flight: usize,
}

/// One session in full feature phase.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionReport {
    pub core: usize,
    pub peer: String,
    pub initiator: String,
    pub initiator_alias: Option<String>,
    /// Six bytes in hexadecimal.
    pub isid: String,
    pub tsih: u16,
    pub cid: u16,
    /// `None` for a discovery session.
    pub target: Option<String>,
    pub header_digest: bool,
    pub data_digest: bool,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
    pub max_outstanding_r2t: u16,
    pub initiator_mrdsl: u32,
    pub target_mrdsl: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    /// Tasks in flight.
    pub tasks: usize,
    pub io: IoReport,
}

/// One TCP connection, in any phase.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnReport {
    pub core: usize,
    pub peer: String,
    pub local: String,
    /// "login", "registering" or "full".
    pub phase: String,
    pub initiator: Option<String>,
    pub tsih: Option<u16>,
    pub age_secs: u64,
    /// Bytes held in the connection's buffers.
    pub buffered_bytes: usize,
}

/// Login refusals by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginFailures {
    /// Authentication failed (CHAP).
    pub auth: u64,
    /// Not allowed: initiator or network access lists, discovery-only.
    pub acl: u64,
    /// No such target (or it was removed).
    pub not_found: u64,
    /// Session or connection limits, out of TSIHs.
    pub resources: u64,
    /// Anything else: protocol errors, unsupported values, time-outs.
    pub other: u64,
}

impl LoginFailures {
    pub fn add(&mut self, o: &LoginFailures) {
        self.auth += o.auth;
        self.acl += o.acl;
        self.not_found += o.not_found;
        self.resources += o.resources;
        self.other += o.other;
    }

    /// (label, count) pairs, for metrics and tables.
    pub fn by_reason(&self) -> [(&'static str, u64); 5] {
        [
            ("auth", self.auth),
            ("acl", self.acl),
            ("not_found", self.not_found),
            ("resources", self.resources),
            ("other", self.other),
        ]
    }
}

/// The registered buffer pool of a core.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolReport {
    /// Registered buffers in the pool (0 when registration failed).
    pub registered: usize,
    /// Of those, how many are in use now.
    pub in_use: usize,
    /// Buffers taken from the heap because no registered one fitted or was free.
    pub heap_fallbacks: u64,
    /// Write data written from the receive buffer it arrived in, without a copy.
    #[serde(default)]
    pub lent_bytes: u64,
    /// Of those, bytes copied after all because direct I/O needed them aligned.
    #[serde(default)]
    pub realigned_bytes: u64,
    /// Write data copied from the receive buffer it arrived in into the buffer written from.
    #[serde(default)]
    pub copied_write_bytes: u64,
    /// Write data submitted to files and block devices from unregistered memory.
    #[serde(default)]
    pub unregistered_write_bytes: u64,
    /// Buffers of the receive ring (0 without one), and how many are out of it now.
    #[serde(default)]
    pub recv_ring_buffers: usize,
    #[serde(default)]
    pub recv_ring_in_use: usize,
    /// Receives that found every buffer of the receive ring in use.
    #[serde(default)]
    pub recv_ring_starved: u64,
    /// Bytes received into receive ring buffers.
    #[serde(default)]
    pub recv_ring_bytes: u64,
    /// Of those, bytes of PDUs cut by a ring buffer's end, copied to a connection's own buffer.
    #[serde(default)]
    pub recv_ring_carried_bytes: u64,
}

/// Everything one reactor reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreReport {
    pub core: usize,
    /// Time since the reactor started, and how much of it it spent working (not waiting).
    pub elapsed_ns: u64,
    pub busy_ns: u64,
    /// io_uring submission queue entries, and `io_uring_enter` calls.
    pub submissions: u64,
    pub enters: u64,
    /// Waits that gathered completions for up to `--coalesce-us`.
    #[serde(default)]
    pub coalesced_waits: u64,
    pub pool: PoolReport,
    /// Logins admitted into full feature phase (normal and discovery).
    pub logins: u64,
    pub login_failures: LoginFailures,
    pub digest_errors: u64,
    pub connections: Vec<ConnReport>,
    pub sessions: Vec<SessionReport>,
    /// Per logical unit: live sessions plus those that ended on this core.
    pub luns: Vec<LunReport>,
    /// Per initiator name: live sessions plus those that ended on this core.
    pub initiators: Vec<(String, IoReport)>,
}

/// The answer to the admin `stats` request: every core's report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub version: String,
    pub uptime_secs: f64,
    pub cores: Vec<CoreReport>,
}

impl Stats {
    /// Each logical unit's counters summed over the cores, by (target, LUN).
    pub fn luns(&self) -> Vec<LunReport> {
        let mut out: Vec<LunReport> = Vec::new();
        for l in self.cores.iter().flat_map(|c| &c.luns) {
            match out
                .iter_mut()
                .find(|o| o.target == l.target && o.lun == l.lun)
            {
                Some(o) => {
                    o.io.add(&l.io);
                    o.in_flight += l.in_flight;
                }
                None => out.push(l.clone()),
            }
        }
        out.sort_by(|a, b| (&a.target, a.lun).cmp(&(&b.target, b.lun)));
        out
    }

    /// Each initiator's counters summed over the cores.
    pub fn initiators(&self) -> Vec<(String, IoReport)> {
        let mut out: Vec<(String, IoReport)> = Vec::new();
        for (name, io) in self.cores.iter().flat_map(|c| &c.initiators) {
            match out.iter_mut().find(|(n, _)| n == name) {
                Some((_, o)) => o.add(io),
                None => out.push((name.clone(), io.clone())),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn sessions(&self) -> Vec<&SessionReport> {
        let mut all: Vec<_> = self.cores.iter().flat_map(|c| &c.sessions).collect();
        all.sort_by_key(|s| s.tsih);
        all
    }

    pub fn connections(&self) -> Vec<&ConnReport> {
        self.cores.iter().flat_map(|c| &c.connections).collect()
    }

    pub fn login_failures(&self) -> LoginFailures {
        let mut f = LoginFailures::default();
        for c in &self.cores {
            f.add(&c.login_failures);
        }
        f
    }

    /// Counters of every unit together.
    pub fn total(&self) -> IoReport {
        let mut t = IoReport::default();
        for l in self.cores.iter().flat_map(|c| &c.luns) {
            t.add(&l.io);
        }
        t
    }
}

/// ISID bytes as 12 hexadecimal digits.
pub fn isid_hex(isid: &[u8; 6]) -> String {
    isid.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let mut o = OpReport {
            latency_buckets: vec![0; BUCKETS],
            ..OpReport::default()
        };
        assert_eq!(o.latency_quantile_secs(0.5), None);
        // 100 commands in bucket 3 (65.5 µs .. 131 µs).
        o.latency_buckets[3] = 100;
        let p50 = o.latency_quantile_secs(0.5).unwrap();
        let (low, high) = (
            latency_bound_secs(2).unwrap(),
            latency_bound_secs(3).unwrap(),
        );
        assert!(p50 > low && p50 < high, "{p50}");
        let p99 = o.latency_quantile_secs(0.99).unwrap();
        assert!(p99 > p50 && p99 <= high);
    }

    #[test]
    fn cores_sum_per_unit_and_initiator() {
        let unit = |n| LunReport {
            target: "iqn.t".into(),
            lun: 0,
            io: IoReport {
                read: OpReport {
                    commands: n,
                    ..OpReport::default()
                },
                ..IoReport::default()
            },
            in_flight: 1,
        };
        let stats = Stats {
            cores: vec![
                CoreReport {
                    luns: vec![unit(2)],
                    initiators: vec![("iqn.i".into(), IoReport::default())],
                    ..CoreReport::default()
                },
                CoreReport {
                    core: 1,
                    luns: vec![unit(3)],
                    initiators: vec![("iqn.i".into(), IoReport::default())],
                    ..CoreReport::default()
                },
            ],
            ..Stats::default()
        };
        let luns = stats.luns();
        assert_eq!(luns.len(), 1);
        assert_eq!((luns[0].io.read.commands, luns[0].in_flight), (5, 2));
        assert_eq!(stats.initiators().len(), 1);
        assert_eq!(stats.total().commands(), 5);
    }
}
