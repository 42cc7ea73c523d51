//! This core's counters (DESIGN.md §1 "Admin and metrics"): plain fields that only this reactor
//! writes, copied into a [`CoreReport`] when the control thread asks. Sessions count their own
//! I/O (`session::stats`); when a connection ends its counts are folded in here, so the totals
//! a scrape sees never go backwards.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::conn::ConnSlot;
use super::Reactor;
use crate::control::report::{
    isid_hex, ConnReport, CoreReport, IoReport, LoginFailures, LunReport, PoolReport, SessionReport,
};
use crate::pdu::login::LoginStatus;
use crate::session::stats::LunStats;

pub struct CoreCounters {
    pub started: Instant,
    pub busy: Duration,
    pub submissions: u64,
    pub enters: u64,
    /// Waits that gathered completions for up to `--coalesce-us` (`Reactor::enter_coalescing`).
    pub coalesced_waits: u64,
    pub logins: u64,
    pub login_failures: LoginFailures,
    /// Digest errors of connections that have ended.
    pub digest_errors: u64,
    /// Receives that found every buffer of the receive ring in use.
    pub recv_ring_starved: u64,
    /// Bytes received into receive ring buffers.
    pub recv_ring_bytes: u64,
    /// Write data submitted to files and block devices from memory not registered with the
    /// ring (the kernel pins its pages for each I/O).
    pub write_bytes_unregistered: u64,
    /// I/O of sessions that have ended, by (target index, LUN) and by initiator name.
    retired_luns: HashMap<(usize, u16), LunStats>,
    retired_initiators: HashMap<String, LunStats>,
}

impl CoreCounters {
    pub fn new(now: Instant) -> Self {
        CoreCounters {
            started: now,
            busy: Duration::ZERO,
            submissions: 0,
            enters: 0,
            coalesced_waits: 0,
            logins: 0,
            login_failures: LoginFailures::default(),
            digest_errors: 0,
            recv_ring_starved: 0,
            recv_ring_bytes: 0,
            write_bytes_unregistered: 0,
            retired_luns: HashMap::new(),
            retired_initiators: HashMap::new(),
        }
    }

    /// A refused login, by the status it was refused with.
    pub fn login_refused(&mut self, status: LoginStatus) {
        let f = &mut self.login_failures;
        match status {
            LoginStatus::AUTHENTICATION_FAILURE => f.auth += 1,
            LoginStatus::AUTHORIZATION_FAILURE | LoginStatus::SESSION_TYPE_NOT_SUPPORTED => {
                f.acl += 1
            }
            LoginStatus::NOT_FOUND | LoginStatus::TARGET_REMOVED => f.not_found += 1,
            LoginStatus::OUT_OF_RESOURCES
            | LoginStatus::TOO_MANY_CONNECTIONS
            | LoginStatus::SERVICE_UNAVAILABLE => f.resources += 1,
            _ => f.other += 1,
        }
    }

    /// Keeps the counts of a connection that is going away.
    pub fn retire(&mut self, slot: &ConnSlot) {
        self.digest_errors += slot.conn.digest_errors();
        let Some(stats) = slot.conn.stats() else {
            return;
        };
        if let Some((target, _)) = slot.conn.it_nexus() {
            for (lun, s) in stats.luns() {
                self.retired_luns.entry((target, *lun)).or_default().add(s);
            }
        }
        if let Some(name) = slot.conn.initiator_name() {
            let total = stats.total();
            self.retired_initiators
                .entry(name.to_ascii_lowercase())
                .or_default()
                .add(&total);
        }
    }
}

impl Reactor {
    /// Copies this core's counters into a report.
    pub(super) fn report(&self) -> CoreReport {
        let now = Instant::now();
        let c = &self.counters;
        let mut luns: HashMap<(usize, u16), (LunStats, usize)> = HashMap::new();
        let mut initiators: HashMap<String, LunStats> = HashMap::new();
        for (key, s) in &c.retired_luns {
            luns.entry(*key).or_default().0.add(s);
        }
        for (name, s) in &c.retired_initiators {
            initiators.entry(name.clone()).or_default().add(s);
        }
        let mut sessions = Vec::new();
        let mut connections = Vec::new();
        let mut digest_errors = c.digest_errors;
        for (_, slot) in self.conns.iter() {
            digest_errors += slot.conn.digest_errors();
            connections.push(self.conn_report(slot, now));
            let (Some(info), Some(stats)) = (slot.conn.session_info(), slot.conn.stats()) else {
                continue;
            };
            if let Some((target, _)) = slot.conn.it_nexus() {
                for (lun, s) in stats.luns() {
                    luns.entry((target, *lun)).or_default().0.add(s);
                }
                if let Some(t) = self.ctx.targets.get(target) {
                    for lu in t.luns.iter() {
                        let in_flight = slot.conn.tasks_on(target, lu.lun);
                        luns.entry((target, lu.lun)).or_default().1 += in_flight;
                    }
                }
            }
            let total = stats.total();
            initiators
                .entry(info.initiator.to_ascii_lowercase())
                .or_default()
                .add(&total);
            sessions.push(SessionReport {
                core: self.index,
                peer: slot.peer_label().to_string(),
                initiator: info.initiator,
                initiator_alias: info.initiator_alias,
                isid: isid_hex(&info.isid),
                tsih: info.tsih,
                cid: info.cid,
                target: info.target,
                header_digest: info.header_digest,
                data_digest: info.data_digest,
                initial_r2t: info.initial_r2t,
                immediate_data: info.immediate_data,
                max_burst_length: info.max_burst_length,
                first_burst_length: info.first_burst_length,
                max_outstanding_r2t: info.max_outstanding_r2t,
                initiator_mrdsl: info.initiator_mrdsl,
                target_mrdsl: info.target_mrdsl,
                exp_cmd_sn: info.exp_cmd_sn,
                max_cmd_sn: info.max_cmd_sn,
                tasks: info.tasks,
                io: IoReport::of(&total),
            });
        }
        let pool = crate::backstore::buf::pool_usage();
        let (recv_ring_buffers, recv_ring_in_use) = crate::backstore::buf::recv_ring_usage();
        CoreReport {
            core: self.index,
            elapsed_ns: nanos(now.saturating_duration_since(c.started)),
            busy_ns: nanos(c.busy),
            submissions: c.submissions,
            enters: c.enters,
            coalesced_waits: c.coalesced_waits,
            pool: PoolReport {
                registered: pool.registered,
                in_use: pool.registered.saturating_sub(pool.free),
                heap_fallbacks: pool.heap_fallbacks,
                lent_bytes: pool.lent_bytes,
                realigned_bytes: pool.realigned_bytes,
                copied_write_bytes: pool.copied_write_bytes,
                recv_ring_carried_bytes: pool.carried_bytes,
                unregistered_write_bytes: c.write_bytes_unregistered,
                recv_ring_buffers,
                recv_ring_in_use,
                recv_ring_starved: c.recv_ring_starved,
                recv_ring_bytes: c.recv_ring_bytes,
            },
            logins: c.logins,
            login_failures: c.login_failures.clone(),
            digest_errors,
            connections,
            sessions,
            luns: self.lun_reports(luns),
            initiators: initiators
                .into_iter()
                .map(|(name, s)| (name, IoReport::of(&s)))
                .collect(),
        }
    }

    /// Publishes the busy time since the last tick for the placer (`place::Loads`).
    pub(super) fn publish_busy(&mut self) {
        let since = self.counters.busy.saturating_sub(self.busy_published);
        self.busy_published = self.counters.busy;
        self.loads.ticked(self.index, nanos(since));
    }

    /// Units by target name, skipping LUNs that do not exist (commands to unknown LUNs).
    fn lun_reports(&self, luns: HashMap<(usize, u16), (LunStats, usize)>) -> Vec<LunReport> {
        let mut out: Vec<LunReport> = luns
            .into_iter()
            .filter_map(|((t, lun), (s, in_flight))| {
                let target = self.ctx.targets.get(t)?;
                target.luns.get(lun)?;
                Some(LunReport {
                    target: target.name.clone(),
                    lun,
                    io: IoReport::of(&s),
                    in_flight,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.target, a.lun).cmp(&(&b.target, b.lun)));
        out
    }

    fn conn_report(&self, slot: &ConnSlot, now: Instant) -> ConnReport {
        ConnReport {
            core: self.index,
            peer: slot.peer_label().to_string(),
            local: slot
                .sock
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .map(|a| a.to_string())
                .unwrap_or_default(),
            phase: slot.conn.phase_name().to_string(),
            initiator: slot.conn.initiator_name().map(str::to_string),
            tsih: slot.tsih,
            age_secs: now.saturating_duration_since(slot.accepted).as_secs(),
            buffered_bytes: slot.conn.buffered_bytes(),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
