//! Admin requests on the control thread. Listings are answered at once from the running
//! configuration and the session table; `status`, `sessions`, `connections` and `stats` first
//! gather every reactor's report. Changes run one at a time, as a list of phases, each of which
//! may wait for the reactors (see `live` for the rule they follow): a new context applied by
//! every core, a removed unit's tasks drained on every core, the sessions of a removed target
//! gone. Changes that arrive meanwhile wait their turn.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::admin::protocol::{
    CoreStatus, Done, LunInfo, Request, ResponseLine, Saved, Status, TargetInfo,
};
use super::live::{lun_config, Runtime};
use super::lu::LuRegistry;
use super::report::{CoreReport, Stats};
use super::{ReactorLink, SessionTable, ToReactor};
use crate::config::{format_size, parse_size, TargetConfig};

/// Changes the log filter at run time; answers an error for a filter it cannot parse.
pub type LogControl = Box<dyn Fn(&str) -> Result<(), String> + Send>;

/// How long the initiators of a target removed with `--force` have to log out (RFC 7143
/// §11.9.1 Parameter3) before their connections are dropped.
const LOGOUT_GRACE: Duration = Duration::from_secs(5);

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
}

enum Wait {
    Acks { seq: u64, left: usize },
    Drains { id: u64, left: usize },
    Sessions { target: String },
}

struct Change {
    reply: Sender<ResponseLine>,
    phases: VecDeque<Phase>,
    wait: Option<Wait>,
    message: String,
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
    pub fn new(runtime: Runtime, log: Option<LogControl>) -> Ops {
        Ops {
            runtime,
            log,
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
            match self.plan(request, env.table) {
                Ok((phases, message)) => {
                    self.change = Some(Change {
                        reply,
                        phases,
                        wait: None,
                        message,
                    });
                    self.advance(env);
                }
                Err(e) => {
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
                let sessions = table.connections_to(&name).len();
                if sessions > 0 && !force {
                    return Err(format!(
                        "target {name} has {sessions} session(s): log them out first, or use --force to ask them to log out"
                    ));
                }
                rt.close_target(slot);
                let target = name.clone();
                (
                    vec![
                        Phase::Publish,
                        Phase::Logout {
                            target: target.clone(),
                        },
                        Phase::SessionsGone { target },
                        Phase::RemoveTarget { slot },
                        Phase::Publish,
                    ],
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
                let lun = lun_config(id, &spec, read_only, block_size)?;
                let id = rt.add_lun(slot, lun)?;
                (
                    vec![Phase::Publish],
                    format!("LUN {id} ({spec}) added to {target}"),
                )
            }
            Request::LunRemove { target, id } => {
                let slot = slot_of(rt, &target)?;
                rt.unmap_lun(slot, id)?;
                (
                    vec![
                        Phase::Publish,
                        Phase::Drain {
                            target: slot,
                            lun: id,
                        },
                        Phase::CloseLun { slot, lun: id },
                        Phase::Publish,
                    ],
                    format!("LUN {id} removed from {target}"),
                )
            }
            Request::LunResize { target, id, size } => {
                let slot = slot_of(rt, &target)?;
                let size = size
                    .map(|s| parse_size(&s))
                    .transpose()
                    .map_err(|e| format!("size: {e}"))?;
                let new = rt.resize_lun(slot, id, size)?;
                (
                    vec![Phase::Publish],
                    format!("LUN {id} of {target} is {} ({new} bytes)", format_size(new)),
                )
            }
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
                tracing::info!(change = %done.message, "admin change done");
                let _ = done.reply.send(ResponseLine::ok(Done {
                    message: done.message,
                }));
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
