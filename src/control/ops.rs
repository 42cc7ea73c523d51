//! Admin requests on the control thread. Listings are answered at once from the running
//! configuration and the session table; `status`, `sessions`, `connections` and `stats` first
//! gather every reactor's report. Changes run one at a time, as a list of phases, each of which
//! may wait for the reactors (see `live` for the rule they follow): a new context applied by
//! every core, a removed unit's tasks drained on every core, the sessions of a removed target
//! gone, new units' stores opened, an RBD image's size read again. Changes that arrive meanwhile
//! wait their turn.
//!
//! Stores are opened, and RBD images' sizes read again, on a helper thread, never on the control
//! thread: an RBD image can take the cluster's timeouts to open (10 s for an unreachable
//! monitor, 30 s per operation of a slow one) or to refresh its header after a resize, and the
//! control thread meanwhile answers logins (TSIHs, reinstatement), reservations and listings.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::admin::protocol::{
    CoreStatus, Done, LunInfo, Request, ResponseLine, Saved, Status, TargetInfo,
};
use super::live::{lun_config, Runtime};
use super::lu::LuRegistry;
use super::reload::{self, Edit};
use super::report::{CoreReport, Stats};
use super::{ReactorLink, SessionTable, ToReactor};
use crate::backstore::{Store, StoreKind};
use crate::config::{
    format_size, parse_size, AluaState, Backing, Config, Failover, LunConfig, TargetConfig,
};
use crate::scsi::{JournalNote, MediumState, SanitizeFailure, SanitizeRunning, UnitAttention};

/// Changes the log filter at run time; answers an error for a filter it cannot parse.
pub type LogControl = Box<dyn Fn(&str) -> Result<(), String> + Send>;

/// Reads and validates the configuration file again (with the flags the daemon was started
/// with on top).
pub type Reloader = Box<dyn Fn() -> Result<Config, String> + Send>;

/// How long the initiators of a target removed with `--force` have to log out (RFC 7143
/// §11.9.1 Parameter3) before their connections are dropped.
const LOGOUT_GRACE: Duration = Duration::from_secs(5);
/// How long `ctl lun accept-medium` waits for a failed sanitize's record to be durably removed
/// before it answers: an operator told the medium is served must not find it failed after a
/// restart. The removal is one file and a directory sync, milliseconds.
const RECORD_REMOVAL_WAIT: Duration = Duration::from_secs(5);

/// What the control thread lends the admin code for one event.
pub struct Env<'a> {
    pub links: &'a [ReactorLink],
    pub table: &'a SessionTable,
    pub lus: &'a mut LuRegistry,
}

enum Phase {
    /// Send the runtime's context and stores to every reactor and wait until each applied them.
    Publish,
    /// Wait until no core runs a task of this unit.
    Drain {
        target: usize,
        lun: u16,
    },
    /// Ask every session of this target to log out.
    Logout {
        target: String,
    },
    /// Raise a unit attention on every unit of this target, for every nexus.
    Announce {
        target: String,
        ua: UnitAttention,
    },
    /// Wait until no session of this target is left.
    SessionsGone {
        target: String,
    },
    CloseLun {
        slot: usize,
        lun: u16,
    },
    RemoveTarget {
        slot: usize,
    },
    /// Make this edit now (what came before it is done) and run its phases next.
    Edit(Box<Edit>),
    /// Open the store of every `Edit::AddLun` among the phases that follow, on a helper thread
    /// (see the module's note); first in a change, so that one that does not open refuses the
    /// change before anything has changed.
    Open,
    /// Read the size of this unit's RBD image again, on a helper thread: asking the cluster
    /// waits as long as the cluster does.
    Reread {
        slot: usize,
        lun: u16,
    },
}

enum Wait {
    Acks { seq: u64, left: usize },
    Drains { id: u64, left: usize },
    Sessions { target: String },
    Helper { id: u64 },
}

/// What a change's helper thread did ([`Ops::helped`]).
#[derive(Debug)]
pub enum Helped {
    /// The stores it opened, in the order of the change's `Edit::AddLun` phases; it stops at
    /// the first that fails, naming its unit.
    Opened(Vec<Result<(LunConfig, Arc<Store>), String>>),
    /// The size it read again (and set) for this unit's store.
    Reread {
        slot: usize,
        lun: u16,
        size: Result<u64, String>,
    },
}

/// A unit's medium as `ctl luns` shows it.
fn medium_state(m: &MediumState) -> String {
    if let Some(p) = m.sanitize_progress() {
        return format!("sanitizing {}%", u32::from(p) * 100 / 65536);
    }
    match m.sanitize_failure() {
        Some(SanitizeFailure::Restricted) => "sanitize failed".into(),
        Some(SanitizeFailure::Unrestricted) => "sanitize failed, exit allowed".into(),
        None if !m.is_present() => "no medium".into(),
        None => "ready".into(),
    }
}

/// What a reload answers when it changed nothing.
fn reload_refused(e: impl std::fmt::Display) -> String {
    format!("reload refused, nothing changed: {e}")
}

struct Change {
    reply: Sender<ResponseLine>,
    phases: VecDeque<Phase>,
    wait: Option<Wait>,
    message: String,
    /// An edit failed: what it said (the edits before it stay, and are published).
    error: Option<String>,
    /// A reload (its errors say how far it got).
    reload: bool,
    /// It ended before its first edit (a store that did not open).
    changed_nothing: bool,
}

#[derive(Debug, Clone, Copy)]
enum Want {
    Status,
    Sessions,
    Connections,
    Stats,
}

struct Gather {
    reply: Sender<ResponseLine>,
    want: Want,
    reports: Vec<CoreReport>,
    left: usize,
}

pub struct Ops {
    runtime: Runtime,
    log: Option<LogControl>,
    reload: Option<Reloader>,
    /// The daemon is stopping: no more changes.
    stopping: bool,
    started: Instant,
    queue: VecDeque<(Request, Sender<ResponseLine>)>,
    change: Option<Change>,
    gathers: HashMap<u64, Gather>,
    next_id: u64,
    /// The answers to resizes that stores reported themselves ([`Ops::store_resized`]), logged
    /// when they come.
    store_resizes: Vec<(String, u16, Receiver<ResponseLine>)>,
}

impl Ops {
    pub fn new(runtime: Runtime, log: Option<LogControl>, reload: Option<Reloader>) -> Ops {
        Ops {
            runtime,
            log,
            reload,
            stopping: false,
            started: Instant::now(),
            queue: VecDeque::new(),
            change: None,
            gathers: HashMap::new(),
            next_id: 1,
            store_resizes: Vec::new(),
        }
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn runtime_mut(&mut self) -> &mut Runtime {
        &mut self.runtime
    }

    /// The daemon starts to stop: changes are refused from now on. False if it already was.
    pub fn stop(&mut self) -> bool {
        !std::mem::replace(&mut self.stopping, true)
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn admin(&mut self, request: Request, reply: Sender<ResponseLine>, env: &mut Env<'_>) {
        let answer = match request {
            Request::Status => return self.gather(Want::Status, reply, env),
            Request::Sessions => return self.gather(Want::Sessions, reply, env),
            Request::Connections => return self.gather(Want::Connections, reply, env),
            Request::Stats => return self.gather(Want::Stats, reply, env),
            Request::Targets => ResponseLine::ok(self.targets(env.table)),
            Request::Luns { target } => self.luns(target.as_deref()),
            Request::Save => match self.runtime.config().to_toml_string() {
                Ok(toml) => ResponseLine::ok(Saved { toml }),
                Err(e) => ResponseLine::error(e.to_string()),
            },
            Request::LogLevel { level } => self.log_level(&level),
            Request::SessionDrop { tsih } => drop_session(tsih, env),
            _ if self.stopping => ResponseLine::error("the daemon is stopping"),
            Request::AluaSet {
                target,
                group,
                state,
            } => self.alua_set(&target, group, &state, env),
            Request::LunAcceptMedium { target, id } => self.accept_medium(&target, id),
            change => {
                self.queue.push_back((change, reply));
                if self.change.is_none() {
                    self.next_change(env);
                }
                return;
            }
        };
        let _ = reply.send(answer);
    }

    /// `ringtgt ctl lun accept-medium`: the unit serves what a failed sanitize left (partly
    /// overwritten or erased) instead of MEDIUM ERROR, SANITIZE COMMAND FAILED, on every core at
    /// once (the medium state is shared atomics), and its record under `state_dir` goes.
    fn accept_medium(&self, target: &str, id: u16) -> ResponseLine {
        let lu = self
            .runtime
            .slot_of(target)
            .and_then(|slot| self.runtime.ctx().targets.get(slot))
            .and_then(|t| t.luns.get(id));
        let Some(lu) = lu else {
            return ResponseLine::error(format!("no LUN {id} in target {target}"));
        };
        let message = match lu.shared.medium.accept_failed() {
            Err(SanitizeRunning) => {
                return ResponseLine::error(format!(
                    "LUN {id} of {target} is being sanitized: its medium is accepted once the \
                     operation ends, if it fails"
                ))
            }
            Ok(None) => {
                return ResponseLine::error(format!(
                    "LUN {id} of {target}: no failed sanitize to accept (its medium is {})",
                    medium_state(&lu.shared.medium)
                ))
            }
            Ok(Some(accepted)) => {
                let served = format!(
                    "LUN {id} of {target}: the medium a failed sanitize left is served again"
                );
                match accepted.removal {
                    Some(note) if !finished_within(&note, RECORD_REMOVAL_WAIT) => format!(
                        "{served}, but its record under state_dir is not removed yet: a restart \
                         before it is finds the failure again"
                    ),
                    _ => served,
                }
            }
        };
        tracing::warn!(change = %message, "admin change");
        ResponseLine::ok(Done { message })
    }

    /// `ringtgt ctl alua set`: the state changes at once on every core (the groups are shared
    /// atomics) and in the running configuration; every nexus of the target is told.
    fn alua_set(
        &mut self,
        target: &str,
        group: u16,
        state: &str,
        env: &mut Env<'_>,
    ) -> ResponseLine {
        let Some(wanted) = AluaState::ALL.into_iter().find(|a| a.as_str() == state) else {
            let allowed: Vec<_> = AluaState::ALL.iter().map(|a| a.as_str()).collect();
            return ResponseLine::error(format!(
                "state: expected one of {}, got {state:?}",
                allowed.join(", ")
            ));
        };
        let Some(slot) = self.runtime.slot_of(target) else {
            return ResponseLine::error(format!("no target {target}"));
        };
        match self.runtime.set_alua_state(slot, group, wanted) {
            Ok(()) => {
                env.lus
                    .announce(slot, UnitAttention::ASYMMETRIC_ACCESS_STATE_CHANGED);
                let message = format!("port group {group} of {target} is {state}");
                tracing::info!(change = %message, "admin change");
                ResponseLine::ok(Done { message })
            }
            Err(e) => ResponseLine::error(e),
        }
    }

    /// A store changed size by itself (an RBD image resized in the cluster): the unit is resized
    /// as `ringtgt ctl lun resize` without a size does, in turn with the admin changes.
    pub fn store_resized(&mut self, target: String, lun: u16, env: &mut Env<'_>) {
        tracing::info!(%target, lun, "backing store changed size");
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.store_resizes.push((target.clone(), lun, answer));
        let request = Request::LunResize {
            target,
            id: lun,
            size: None,
        };
        self.admin(request, reply, env);
        self.log_store_resizes();
    }

    /// Logs the failures of resizes that stores reported (successes are logged as changes).
    fn log_store_resizes(&mut self) {
        self.store_resizes
            .retain(|(target, lun, answer)| match answer.try_recv() {
                Ok(line) => {
                    if let Some(error) = line.error.filter(|_| !line.ok) {
                        tracing::warn!(%target, lun, %error, "cannot follow the store's new size");
                    }
                    false
                }
                Err(crossbeam_channel::TryRecvError::Empty) => true,
                Err(crossbeam_channel::TryRecvError::Disconnected) => false,
            });
    }

    fn log_level(&self, level: &str) -> ResponseLine {
        let Some(log) = &self.log else {
            return ResponseLine::error("this daemon cannot change its log filter");
        };
        match log(level) {
            Ok(()) => {
                tracing::info!(filter = level, "log filter changed");
                ResponseLine::ok(Done {
                    message: format!("log filter is now {level:?}"),
                })
            }
            Err(e) => ResponseLine::error(format!("log filter {level:?}: {e}")),
        }
    }

    fn targets(&self, table: &SessionTable) -> Vec<TargetInfo> {
        self.runtime
            .config()
            .targets
            .iter()
            .map(|t| TargetInfo {
                name: t.name.clone(),
                alias: t.alias.clone(),
                luns: t.luns.len(),
                sessions: table.connections_to(&t.name).len(),
                allowed_initiators: t.allowed_initiators.clone(),
            })
            .collect()
    }

    fn luns(&self, only: Option<&str>) -> ResponseLine {
        if let Some(name) = only {
            if self.runtime.slot_of(name).is_none() {
                return ResponseLine::error(format!("no target {name}"));
            }
        }
        let mut out = Vec::new();
        let ctx = self.runtime.ctx();
        for t in &self.runtime.config().targets {
            if only.is_some_and(|n| !n.eq_ignore_ascii_case(&t.name)) {
                continue;
            }
            let Some(runtime) = self
                .runtime
                .slot_of(&t.name)
                .and_then(|i| ctx.targets.get(i))
            else {
                continue;
            };
            for l in &t.luns {
                let Some(lu) = runtime.luns.get(l.id) else {
                    continue;
                };
                out.push(LunInfo {
                    target: t.name.clone(),
                    id: l.id,
                    backing: l.backing.to_string(),
                    size_bytes: lu.num_blocks * u64::from(lu.block_size),
                    block_size: lu.block_size,
                    read_only: lu.read_only,
                    serial: lu.serial.clone(),
                    medium: medium_state(&lu.shared.medium),
                });
            }
        }
        ResponseLine::ok(out)
    }

    fn gather(&mut self, want: Want, reply: Sender<ResponseLine>, env: &mut Env<'_>) {
        let id = self.id();
        self.gathers.insert(
            id,
            Gather {
                reply,
                want,
                reports: Vec::new(),
                left: env.links.len(),
            },
        );
        for link in env.links {
            link.send(ToReactor::Report { id });
        }
        if env.links.is_empty() {
            self.finish_gather(id, env.table);
        }
    }

    /// A reactor's report for gather `id`.
    pub fn report(&mut self, id: u64, report: CoreReport, table: &SessionTable) {
        let Some(g) = self.gathers.get_mut(&id) else {
            return;
        };
        g.reports.push(report);
        g.left = g.left.saturating_sub(1);
        if g.left == 0 {
            self.finish_gather(id, table);
        }
    }

    fn finish_gather(&mut self, id: u64, table: &SessionTable) {
        let Some(mut g) = self.gathers.remove(&id) else {
            return;
        };
        g.reports.sort_by_key(|r| r.core);
        let stats = Stats {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_secs: self.started.elapsed().as_secs_f64(),
            cores: g.reports,
        };
        let answer = match g.want {
            Want::Stats => ResponseLine::ok(&stats),
            Want::Sessions => ResponseLine::ok(stats.sessions()),
            Want::Connections => ResponseLine::ok(stats.connections()),
            Want::Status => ResponseLine::ok(self.status(&stats, table)),
        };
        let _ = g.reply.send(answer);
    }

    fn status(&self, stats: &Stats, table: &SessionTable) -> Status {
        let config = self.runtime.config();
        Status {
            version: stats.version.clone(),
            uptime_secs: stats.uptime_secs,
            cores: stats
                .cores
                .iter()
                .map(|c| CoreStatus {
                    core: c.core,
                    busy_percent: percent(c.busy_ns, c.elapsed_ns),
                    connections: c.connections.len(),
                })
                .collect(),
            portals: config.portals.iter().map(ToString::to_string).collect(),
            targets: config.targets.len(),
            luns: config.targets.iter().map(|t| t.luns.len()).sum(),
            sessions: table.live_sessions(),
            connections: stats.cores.iter().map(|c| c.connections.len()).sum(),
            logins: stats.cores.iter().map(|c| c.logins).sum(),
            login_failures: stats.login_failures(),
            io: stats.total(),
        }
    }

    /// Starts the next queued change, answering at once those refused before any phase.
    fn next_change(&mut self, env: &mut Env<'_>) {
        while self.change.is_none() {
            let Some((request, reply)) = self.queue.pop_front() else {
                return;
            };
            let reload = matches!(request, Request::Reload);
            match self.plan(request, env.table) {
                Ok((phases, message)) => {
                    self.change = Some(Change {
                        reply,
                        phases,
                        wait: None,
                        message,
                        error: None,
                        reload,
                        changed_nothing: false,
                    });
                    self.advance(env);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin change refused");
                    let _ = reply.send(ResponseLine::error(e));
                    self.log_store_resizes();
                }
            }
        }
    }

    /// Makes the first edit of a change and lists the phases that follow.
    fn plan(
        &mut self,
        request: Request,
        table: &SessionTable,
    ) -> Result<(VecDeque<Phase>, String), String> {
        let rt = &mut self.runtime;
        let slot_of =
            |rt: &Runtime, name: &str| rt.slot_of(name).ok_or_else(|| format!("no target {name}"));
        let (phases, message) = match request {
            Request::TargetAdd {
                name,
                alias,
                allowed_initiators,
            } => {
                if rt.slot_of(&name).is_some() {
                    return Err(format!("target {name} exists"));
                }
                let target = TargetConfig {
                    alias,
                    allowed_initiators,
                    ..TargetConfig::new(name.clone(), Vec::new())
                };
                rt.add_target(target)?;
                (vec![Phase::Publish], format!("target {name} added"))
            }
            Request::TargetRemove { name, force } => {
                let slot = slot_of(rt, &name)?;
                rt.check_luns_may_change(slot)?;
                let sessions = table.connections_to(&name).len();
                if sessions > 0 && !force {
                    return Err(format!(
                        "target {name} has {sessions} session(s): log them out first, or use --force to ask them to log out"
                    ));
                }
                (
                    remove_target(rt, slot, &name),
                    format!("target {name} removed"),
                )
            }
            Request::LunAdd {
                target,
                id,
                spec,
                read_only,
                block_size,
            } => {
                let slot = slot_of(rt, &target)?;
                rt.check_luns_may_change(slot)?;
                let lun = rt.prepare_lun(slot, lun_config(id, &spec, read_only, block_size)?)?;
                let message = format!("LUN {} ({spec}) added to {target}", lun.id);
                let add = Edit::AddLun {
                    target,
                    lun,
                    store: None,
                };
                (
                    vec![Phase::Open, Phase::Edit(Box::new(add)), Phase::Publish],
                    message,
                )
            }
            Request::LunRemove { target, id } => {
                let slot = slot_of(rt, &target)?;
                rt.check_luns_may_change(slot)?;
                (
                    remove_lun(rt, slot, id)?,
                    format!("LUN {id} removed from {target}"),
                )
            }
            Request::LunResize { target, id, size } => {
                let slot = slot_of(rt, &target)?;
                let size = size
                    .map(|s| parse_size(&s))
                    .transpose()
                    .map_err(|e| format!("size: {e}"))?;
                let is_rbd = rt
                    .store(slot, id)
                    .is_some_and(|s| s.kind() == StoreKind::Rbd);
                if size.is_none() && is_rbd {
                    // The message says the size once it is known (`Ops::reread`).
                    (
                        vec![Phase::Reread { slot, lun: id }, Phase::Publish],
                        format!("LUN {id} of {target}: its image's size read again"),
                    )
                } else {
                    let new = rt.resize_lun(slot, id, size)?;
                    (
                        vec![Phase::Publish],
                        format!("LUN {id} of {target} is {} ({new} bytes)", format_size(new)),
                    )
                }
            }
            Request::Reload => self.plan_reload()?,
            other => return Err(format!("{other:?} is not a change")),
        };
        tracing::info!(change = %message, "admin change started");
        Ok((phases.into(), message))
    }

    /// Runs the current change's phases until one has to wait; answers when none is left.
    fn advance(&mut self, env: &mut Env<'_>) {
        loop {
            let Some(change) = self.change.as_mut() else {
                return;
            };
            if change.wait.is_some() {
                return;
            }
            let Some(phase) = change.phases.pop_front() else {
                let done = self.change.take().expect("present");
                let answer = match done.error {
                    None => {
                        tracing::info!(change = %done.message, "admin change done");
                        ResponseLine::ok(Done {
                            message: done.message,
                        })
                    }
                    Some(e) if done.changed_nothing => {
                        tracing::warn!(change = %done.message, error = %e, "admin change refused");
                        ResponseLine::error(e)
                    }
                    Some(e) => {
                        tracing::warn!(change = %done.message, error = %e, "admin change failed");
                        ResponseLine::error(e)
                    }
                };
                let _ = done.reply.send(answer);
                self.next_change(env);
                self.log_store_resizes();
                return;
            };
            let wait = match phase {
                Phase::Publish => {
                    env.lus.refresh(self.runtime.ctx());
                    let seq = self.next_id;
                    self.next_id += 1;
                    for link in env.links {
                        link.send(ToReactor::Apply {
                            seq,
                            ctx: self.runtime.ctx().clone(),
                            stores: self.runtime.table().clone(),
                        });
                    }
                    Some(Wait::Acks {
                        seq,
                        left: env.links.len(),
                    })
                }
                Phase::Drain { target, lun } => {
                    let id = self.next_id;
                    self.next_id += 1;
                    for link in env.links {
                        link.send(ToReactor::Drain { id, target, lun });
                    }
                    Some(Wait::Drains {
                        id,
                        left: env.links.len(),
                    })
                }
                Phase::Logout { target } => {
                    for conn in env.table.connections_to(&target) {
                        if let Some(link) = env.links.get(conn.core) {
                            link.send(ToReactor::RequestLogout {
                                key: conn.key,
                                within: LOGOUT_GRACE,
                            });
                        }
                    }
                    None
                }
                Phase::Announce { target, ua } => {
                    if let Some(slot) = self.runtime.slot_of(&target) {
                        env.lus.announce(slot, ua);
                    }
                    None
                }
                Phase::SessionsGone { target } => (!env.table.connections_to(&target).is_empty())
                    .then_some(Wait::Sessions { target }),
                Phase::CloseLun { slot, lun } => {
                    self.runtime.close_lun(slot, lun);
                    None
                }
                Phase::RemoveTarget { slot } => {
                    self.runtime.remove_target(slot);
                    None
                }
                Phase::Edit(edit) => {
                    let what = edit.to_string();
                    let result = self.edit(*edit);
                    let change = self.change.as_mut().expect("present");
                    match result {
                        Ok(next) => {
                            for p in next.into_iter().rev() {
                                change.phases.push_front(p);
                            }
                        }
                        Err(e) if change.reload => {
                            // What was applied before is served; nothing after it is tried.
                            change.error = Some(format!("reload stopped at \"{what}\": {e}"));
                            change.phases = VecDeque::from([Phase::Publish]);
                        }
                        // A `ctl` change's one edit refuses before it changes anything.
                        Err(e) => {
                            change.error = Some(e);
                            change.phases.clear();
                            change.changed_nothing = true;
                        }
                    }
                    None
                }
                Phase::Open => self.open_stores(),
                Phase::Reread { slot, lun } => self.reread_size(slot, lun),
            };
            let change = self.change.as_mut().expect("present");
            change.wait = wait.filter(|w| {
                !matches!(w, Wait::Acks { left: 0, .. } | Wait::Drains { left: 0, .. })
            });
        }
    }

    /// A reactor applied context `seq`.
    pub fn applied(&mut self, seq: u64, env: &mut Env<'_>) {
        if let Some(Change {
            wait: Some(Wait::Acks { seq: s, left }),
            ..
        }) = self.change.as_mut()
        {
            if *s == seq {
                *left -= 1;
                if *left == 0 {
                    self.change.as_mut().expect("present").wait = None;
                    self.advance(env);
                }
            }
        }
    }

    /// A reactor has no task left of the unit drain `id` names.
    pub fn drained(&mut self, id: u64, env: &mut Env<'_>) {
        if let Some(Change {
            wait: Some(Wait::Drains { id: i, left }),
            ..
        }) = self.change.as_mut()
        {
            if *i == id {
                *left -= 1;
                if *left == 0 {
                    self.change.as_mut().expect("present").wait = None;
                    self.advance(env);
                }
            }
        }
    }

    /// Starts a helper thread that opens the stores of the current change's new units.
    fn open_stores(&mut self) -> Option<Wait> {
        let change = self.change.as_ref().expect("present");
        let units: Vec<(String, LunConfig)> = change
            .phases
            .iter()
            .filter_map(|p| match p {
                Phase::Edit(e) => match &**e {
                    Edit::AddLun {
                        target,
                        lun,
                        store: None,
                    } => Some((target.clone(), lun.clone())),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        if units.is_empty() {
            return None;
        }
        self.help(move || {
            let mut opened = Vec::new();
            for (target, mut lun) in units {
                let result = crate::startup::open_lun(&target, &mut lun)
                    .map_err(|e| format!("target {target} LUN {}: {e}", lun.id));
                let failed = result.is_err();
                opened.push(result.map(|store| (lun, store)));
                if failed {
                    break;
                }
            }
            Helped::Opened(opened)
        })
    }

    /// Starts a helper thread that reads the size of unit `lun`'s RBD image again.
    fn reread_size(&mut self, slot: usize, lun: u16) -> Option<Wait> {
        let Some(store) = self.runtime.store(slot, lun).cloned() else {
            let change = self.change.as_mut().expect("present");
            change.error = Some(format!("the unit {lun} has no store"));
            change.phases.clear();
            change.changed_nothing = true;
            return None;
        };
        self.help(move || Helped::Reread {
            slot,
            lun,
            size: store.resize(None).map_err(|e| e.to_string()),
        })
    }

    /// Runs `work` on a helper thread; what it did comes back as `ToControl::Helped`
    /// ([`Ops::helped`]), which the change waits for.
    fn help(&mut self, work: impl FnOnce() -> Helped + Send + 'static) -> Option<Wait> {
        let id = self.id();
        let tx = self.runtime.to_control();
        let spawned = std::thread::Builder::new()
            .name("ringtgt-helper".into())
            .spawn(move || {
                let done = work();
                // Gone only while the daemon stops: opened stores close as they are dropped.
                let _ = tx.send(super::ToControl::Helped { id, done });
            });
        match spawned {
            Ok(_) => Some(Wait::Helper { id }),
            Err(e) => {
                let change = self.change.as_mut().expect("present");
                change.error = Some(format!("cannot start a helper thread: {e}"));
                change.phases.clear();
                change.changed_nothing = true;
                None
            }
        }
    }

    /// The current change's helper thread `id` is done: the change goes on with what it did,
    /// or ends, with nothing changed, if that failed.
    pub fn helped(&mut self, id: u64, done: Helped, env: &mut Env<'_>) {
        let Some(change) = self.change.as_mut() else {
            return;
        };
        if !matches!(change.wait, Some(Wait::Helper { id: i }) if i == id) {
            return;
        }
        change.wait = None;
        match done {
            Helped::Opened(units) => self.opened(units),
            Helped::Reread { slot, lun, size } => self.reread(slot, lun, size),
        }
        self.advance(env);
    }

    /// The change's new units take the stores the helper opened, or the change ends at the
    /// first that failed.
    fn opened(&mut self, units: Vec<Result<(LunConfig, Arc<Store>), String>>) {
        let change = self.change.as_mut().expect("present");
        let mut units = units.into_iter();
        for phase in change.phases.iter_mut() {
            let Phase::Edit(e) = phase else {
                continue;
            };
            let Edit::AddLun { lun, store, .. } = &mut **e else {
                continue;
            };
            match units.next() {
                Some(Ok((opened_lun, opened))) => {
                    *lun = opened_lun;
                    *store = Some(opened);
                }
                Some(Err(e)) => {
                    change.error = Some(if change.reload { reload_refused(e) } else { e });
                    change.phases.clear();
                    change.changed_nothing = true;
                    break;
                }
                // The helper answered for fewer units than it was given: `edit` refuses the
                // first without a store.
                None => break,
            }
        }
    }

    /// The helper read (and set) unit `lun`'s size: the running configuration follows and the
    /// change publishes it, or the change ends with the size as it was.
    fn reread(&mut self, slot: usize, lun: u16, size: Result<u64, String>) {
        let change = self.change.as_mut().expect("present");
        match size {
            Ok(new) => {
                let target = self.runtime.slot_name(slot).to_owned();
                change.message = format!(
                    "LUN {lun} of {target} is {} ({new} bytes)",
                    format_size(new)
                );
                self.runtime.resized_lun(slot, lun, new);
            }
            Err(e) => {
                change.error = Some(e);
                change.phases.clear();
                change.changed_nothing = true;
            }
        }
    }

    /// A session ended: a removal waiting for its target's sessions may go on.
    pub fn session_ended(&mut self, env: &mut Env<'_>) {
        if let Some(Change {
            wait: Some(Wait::Sessions { target }),
            ..
        }) = self.change.as_ref()
        {
            if env.table.connections_to(target).is_empty() {
                self.change.as_mut().expect("present").wait = None;
                self.advance(env);
            }
        }
    }
}

impl Ops {
    /// Reads the configuration again and plans the edits that make the running one match it
    /// (see `reload` for their order). A file that does not load, a change no live edit can
    /// make, or a new unit whose store does not open refuses the whole reload.
    fn plan_reload(&mut self) -> Result<(Vec<Phase>, String), String> {
        let Some(reload) = &self.reload else {
            return Err(
                "this daemon was started without --config: there is no file to reload \
                 (start it with `ringtgt serve --config FILE`)"
                    .into(),
            );
        };
        let new = reload().map_err(reload_refused)?;
        let mut diff = reload::diff(self.runtime.config(), &new).map_err(reload_refused)?;
        diff.edits.extend(self.regrown_files(&new));
        let mut message = if diff.edits.is_empty() {
            "configuration reloaded: nothing to change".to_string()
        } else {
            let edits: Vec<String> = diff.edits.iter().map(ToString::to_string).collect();
            format!("configuration reloaded: {}", edits.join("; "))
        };
        if !diff.restart.is_empty() {
            let settings = diff.restart.join("; ");
            tracing::warn!(%settings, "reload: these settings need a restart; left as they are");
            message.push_str(&format!("; needs a restart (left as they are): {settings}"));
        }
        // SPC-4: a change of a target port group's access state is told to every nexus, once
        // the new state is what they read (after the publish), as `ctl alua set` does.
        let announce: Vec<Phase> = diff
            .edits
            .iter()
            .filter_map(|e| match e {
                Edit::SetTarget(t) if self.alua_states_change(t) => Some(Phase::Announce {
                    target: t.name.clone(),
                    ua: UnitAttention::ASYMMETRIC_ACCESS_STATE_CHANGED,
                }),
                _ => None,
            })
            .collect();
        let mut phases = vec![Phase::Open];
        phases.extend(diff.edits.into_iter().map(|e| Phase::Edit(Box::new(e))));
        phases.push(Phase::Publish);
        phases.extend(announce);
        Ok((phases, message))
    }

    /// Whether `new` gives a running target's port groups other access states. A gateway
    /// target's states follow its lock (`control::failover`), not the file.
    fn alua_states_change(&self, new: &TargetConfig) -> bool {
        let Some(running) = self.runtime.target(&new.name) else {
            return false;
        };
        let states = |t: &TargetConfig| -> Vec<(u16, AluaState)> {
            t.port_groups.iter().map(|g| (g.id, g.state)).collect()
        };
        running.failover == Failover::None && states(running) != states(new)
    }

    /// File units the reload keeps whose file has another size than the unit: grown (or cut)
    /// outside the daemon, as `ctl lun resize` without a size would see.
    fn regrown_files(&self, new: &Config) -> Vec<Edit> {
        let mut out = Vec::new();
        for t in &new.targets {
            let (Some(slot), Some(running)) =
                (self.runtime.slot_of(&t.name), self.runtime.target(&t.name))
            else {
                continue;
            };
            for l in &t.luns {
                let Backing::Path(path) = &l.backing else {
                    continue;
                };
                let kept = running
                    .luns
                    .iter()
                    .any(|r| r.id == l.id && r.backing == l.backing);
                let (Some(store), Ok(meta)) =
                    (self.runtime.store(slot, l.id), std::fs::metadata(path))
                else {
                    continue;
                };
                if kept && meta.is_file() && meta.len() != store.size() {
                    out.push(Edit::ResizeLun {
                        target: t.name.clone(),
                        id: l.id,
                        size: None,
                    });
                }
            }
        }
        out
    }

    /// Makes one edit of a reload (or the edit a `ctl` change ends with); the phases it needs
    /// follow it.
    fn edit(&mut self, edit: Edit) -> Result<Vec<Phase>, String> {
        let rt = &mut self.runtime;
        let slot_of =
            |rt: &Runtime, name: &str| rt.slot_of(name).ok_or_else(|| format!("no target {name}"));
        match edit {
            Edit::RemoveTarget(name) => {
                let slot = slot_of(rt, &name)?;
                Ok(remove_target(rt, slot, &name))
            }
            Edit::RemoveLun { target, id } => {
                let slot = slot_of(rt, &target)?;
                remove_lun(rt, slot, id)
            }
            Edit::AddTarget(t) => rt.add_target(t).map(|()| Vec::new()),
            Edit::AddLun { target, lun, store } => {
                let slot = slot_of(rt, &target)?;
                let store = store.ok_or("its store was not opened")?;
                rt.add_opened_lun(slot, lun, store).map(|_| Vec::new())
            }
            Edit::ResizeLun { target, id, size } => {
                let slot = slot_of(rt, &target)?;
                rt.resize_lun(slot, id, size).map(|_| Vec::new())
            }
            Edit::SetTarget(t) => {
                let slot = slot_of(rt, &t.name)?;
                rt.set_target(slot, &t).map(|()| Vec::new())
            }
            Edit::DiscoveryChap(chap) => rt
                .set_global(|c| c.discovery_chap = chap)
                .map(|()| Vec::new()),
            Edit::ShutdownGrace(secs) => rt
                .set_global(|c| c.shutdown_grace_secs = secs)
                .map(|()| Vec::new()),
        }
    }
}

/// First edit of a target's removal (no new logins) and the phases after it: its sessions are
/// asked to log out, and it goes once they are gone.
fn remove_target(rt: &mut Runtime, slot: usize, name: &str) -> Vec<Phase> {
    rt.close_target(slot);
    let target = name.to_string();
    vec![
        Phase::Publish,
        Phase::Logout {
            target: target.clone(),
        },
        Phase::SessionsGone { target },
        Phase::RemoveTarget { slot },
        Phase::Publish,
    ]
}

/// First edit of a unit's removal (it leaves the context) and the phases after it: its I/O
/// drains on every core, then its store closes.
fn remove_lun(rt: &mut Runtime, slot: usize, id: u16) -> Result<Vec<Phase>, String> {
    rt.unmap_lun(slot, id)?;
    Ok(vec![
        Phase::Publish,
        Phase::Drain {
            target: slot,
            lun: id,
        },
        Phase::CloseLun { slot, lun: id },
        Phase::Publish,
    ])
}

fn drop_session(tsih: u16, env: &Env<'_>) -> ResponseLine {
    let Some(conn) = env.table.conn_of(tsih) else {
        return ResponseLine::error(format!("no session with TSIH {tsih}"));
    };
    let Some(link) = env.links.get(conn.core) else {
        return ResponseLine::error(format!("no reactor {}", conn.core));
    };
    link.send(ToReactor::Drop { key: conn.key });
    tracing::info!(tsih, "session dropped by the operator");
    ResponseLine::ok(Done {
        message: format!("session {tsih} dropped"),
    })
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Waits (on the control thread, polling) until the journal writer is done with `note`.
fn finished_within(note: &JournalNote, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while !note.is_finished() {
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}
