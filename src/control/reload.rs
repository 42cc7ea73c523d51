//! SIGHUP and `ringtgt ctl reload`: what separates the running configuration from the file read
//! again, as a list of the same live edits `ringtgt ctl` makes, and the settings that only a
//! restart can change.
//!
//! The order of the edits is the rule: removals first (each publishes, drains and closes on its
//! own, as `ctl target remove --force` and `ctl lun remove` do), then everything added or
//! changed, which the reload publishes once at the end, so that no initiator ever logs in to a
//! new target that does not have its units, masking and CHAP yet.

use std::sync::Arc;

use crate::backstore::Store;
use crate::config::{
    format_size, Backing, ChapConfig, Config, Failover, LunConfig, PortGroupConfig, TargetConfig,
};

/// One live edit of the running configuration.
#[derive(Debug)]
pub enum Edit {
    /// Ask the target's sessions to log out, then remove it.
    RemoveTarget(String),
    /// Take the unit out of the target, drain its I/O, close its store.
    RemoveLun {
        target: String,
        id: u16,
    },
    /// A new target with its attributes but without units or masking (added next).
    AddTarget(TargetConfig),
    /// A unit whose store the reload opened before changing anything.
    AddLun {
        target: String,
        lun: LunConfig,
        store: Option<Arc<Store>>,
    },
    /// `None`: read a file's size again.
    ResizeLun {
        target: String,
        id: u16,
        size: Option<u64>,
    },
    /// Every attribute of the target but its units (ACLs, CHAP, allowed initiators, ...).
    SetTarget(TargetConfig),
    DiscoveryChap(Option<ChapConfig>),
    ShutdownGrace(u32),
}

impl Edit {
    /// Whether the edit publishes, drains and waits by itself (the removals).
    pub fn removes(&self) -> bool {
        matches!(self, Edit::RemoveTarget(_) | Edit::RemoveLun { .. })
    }
}

impl std::fmt::Display for Edit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Edit::RemoveTarget(t) => write!(f, "target {t} removed"),
            Edit::RemoveLun { target, id } => write!(f, "LUN {id} removed from {target}"),
            Edit::AddTarget(t) => write!(f, "target {} added", t.name),
            Edit::AddLun { target, lun, .. } => {
                write!(f, "LUN {} ({}) added to {target}", lun.id, lun.backing)
            }
            Edit::ResizeLun {
                target,
                id,
                size: Some(s),
            } => write!(f, "LUN {id} of {target} resized to {}", format_size(*s)),
            Edit::ResizeLun { target, id, .. } => write!(f, "LUN {id} of {target} size re-read"),
            Edit::SetTarget(t) => write!(f, "target {} attributes applied", t.name),
            Edit::DiscoveryChap(_) => f.write_str("discovery CHAP changed"),
            Edit::ShutdownGrace(s) => write!(f, "shutdown_grace_secs = {s}"),
        }
    }
}

/// What a reload does.
#[derive(Debug, Default)]
pub struct Diff {
    pub edits: Vec<Edit>,
    /// Settings that differ in the file but keep their running value until a restart.
    pub restart: Vec<String>,
}

/// A gateway target's failover thread and its shared reservations are set up at start, for the
/// images and port groups it started with (`control::live`), as `ctl lun add` and `ctl lun
/// remove` say: a reload leaves what they depend on as it is, until a restart.
fn is_gateway(t: &TargetConfig) -> bool {
    t.failover == Failover::RbdLock
}

/// What a gateway target depends on: a reload still applies its other attributes (ACLs, CHAP).
fn gateway_shape(t: &TargetConfig) -> (Failover, &[PortGroupConfig], &[LunConfig]) {
    (t.failover, &t.port_groups, &t.luns)
}

fn gateway_restart(t: &TargetConfig, what: &str) -> String {
    format!("target {} (failover = \"rbd-lock\") {what}", t.name)
}

/// The edits that turn `old` (running) into `new` (the file); an error for a change no live
/// edit can make, before anything is changed.
pub fn diff(old: &Config, new: &Config) -> Result<Diff, String> {
    let mut d = Diff::default();
    let fixed = [
        ("portals", old.portals != new.portals),
        ("cores", old.cores != new.cores),
        (
            "portal_group_tag",
            old.portal_group_tag != new.portal_group_tag,
        ),
        ("[iscsi]", old.iscsi != new.iscsi),
        ("[limits]", old.limits != new.limits),
        ("state_dir", old.state_dir != new.state_dir),
        ("admin_socket", old.admin_socket != new.admin_socket),
        ("metrics_addr", old.metrics_addr != new.metrics_addr),
    ];
    d.restart.extend(
        fixed
            .iter()
            .filter(|(_, differs)| *differs)
            .map(|(k, _)| k.to_string()),
    );
    let find = |list: &'_ [TargetConfig], name: &str| -> Option<usize> {
        list.iter().position(|t| t.name.eq_ignore_ascii_case(name))
    };
    for t in &old.targets {
        if find(&new.targets, &t.name).is_none() {
            if is_gateway(t) {
                d.restart.push(gateway_restart(t, "removed"));
                continue;
            }
            d.edits.push(Edit::RemoveTarget(t.name.clone()));
        }
    }
    let mut later = Vec::new();
    for t in &new.targets {
        match find(&old.targets, &t.name).map(|i| &old.targets[i]) {
            None if is_gateway(t) => d.restart.push(gateway_restart(t, "added")),
            Some(o) if (is_gateway(o) || is_gateway(t)) && gateway_shape(o) != gateway_shape(t) => {
                d.restart
                    .push(gateway_restart(t, "failover, port groups or LUNs changed"));
            }
            None => {
                later.push(Edit::AddTarget(TargetConfig {
                    luns: Vec::new(),
                    acls: Vec::new(),
                    ..t.clone()
                }));
                later.extend(t.luns.iter().map(|l| add_lun(t, l)));
                later.push(Edit::SetTarget(t.clone()));
            }
            Some(o) => diff_target(o, t, &mut d, &mut later)?,
        }
    }
    d.edits.extend(later);
    if old.discovery_chap != new.discovery_chap {
        d.edits
            .push(Edit::DiscoveryChap(new.discovery_chap.clone()));
    }
    if old.shutdown_grace_secs != new.shutdown_grace_secs {
        d.edits.push(Edit::ShutdownGrace(new.shutdown_grace_secs));
    }
    Ok(d)
}

fn add_lun(t: &TargetConfig, l: &LunConfig) -> Edit {
    Edit::AddLun {
        target: t.name.clone(),
        lun: l.clone(),
        store: None,
    }
}

/// A target in both: removals into `d`, the rest into `later`.
fn diff_target(
    old: &TargetConfig,
    new: &TargetConfig,
    d: &mut Diff,
    later: &mut Vec<Edit>,
) -> Result<(), String> {
    let mut removed_any = false;
    for o in &old.luns {
        let Some(n) = new.luns.iter().find(|l| l.id == o.id) else {
            d.edits.push(Edit::RemoveLun {
                target: old.name.clone(),
                id: o.id,
            });
            removed_any = true;
            continue;
        };
        match unit_change(o, n).map_err(|e| format!("target {} LUN {}: {e}", new.name, o.id))? {
            UnitChange::None => {}
            UnitChange::Size(size) => later.push(Edit::ResizeLun {
                target: new.name.clone(),
                id: o.id,
                size: Some(size),
            }),
            UnitChange::Replace => {
                d.edits.push(Edit::RemoveLun {
                    target: old.name.clone(),
                    id: o.id,
                });
                removed_any = true;
                later.push(add_lun(new, n));
            }
            UnitChange::Restart(what) => d.restart.push(format!(
                "target {} LUN {} {}",
                new.name,
                o.id,
                what.join(", ")
            )),
        }
    }
    for n in &new.luns {
        if !old.luns.iter().any(|l| l.id == n.id) {
            later.push(add_lun(new, n));
        }
    }
    let attributes = |t: &TargetConfig| TargetConfig {
        luns: Vec::new(),
        ..t.clone()
    };
    // A removed unit also leaves the ACLs: they are set again from the file.
    if removed_any || attributes(old) != attributes(new) {
        later.push(Edit::SetTarget(new.clone()));
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum UnitChange {
    None,
    Size(u64),
    /// Another store: the unit goes and a new one takes its id.
    Replace,
    /// Attributes initiators have cached (block size, serial, ...): left until a restart.
    Restart(Vec<&'static str>),
}

/// `old` is a running unit (block size and write cache filled in from its store), `new` as the
/// file gives it (either may be left out, meaning "the store's own").
fn unit_change(old: &LunConfig, new: &LunConfig) -> Result<UnitChange, String> {
    let size = match (&old.backing, &new.backing) {
        (Backing::Ram { size: a }, Backing::Ram { size: b }) if b < a => {
            return Err(format!(
                "a RAM unit cannot shrink (from {} to {}): it would cut off data initiators wrote",
                format_size(*a),
                format_size(*b)
            ))
        }
        (Backing::Ram { size: a }, Backing::Ram { size: b })
        | (Backing::Null { size: a }, Backing::Null { size: b }) => (a != b).then_some(*b),
        (a, b) if a == b => None,
        _ => return Ok(UnitChange::Replace),
    };
    let mut restart = Vec::new();
    if differs(old.block_size, new.block_size) {
        restart.push("block_size");
    }
    if differs(old.write_cache, new.write_cache) {
        restart.push("write_cache");
    }
    if old.read_only != new.read_only {
        restart.push("read_only");
    }
    if old.serial != new.serial {
        restart.push("serial");
    }
    if old.removable != new.removable {
        restart.push("removable");
    }
    if old.sanitize_rate != new.sanitize_rate {
        restart.push("sanitize_rate");
    }
    Ok(match (size, restart.is_empty()) {
        (_, false) => UnitChange::Restart(restart),
        (Some(s), true) => UnitChange::Size(s),
        (None, true) => UnitChange::None,
    })
}

/// A setting the file leaves out keeps the store's own, whatever the running unit has.
fn differs<T: PartialEq>(running: Option<T>, file: Option<T>) -> bool {
    file.is_some() && file != running
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LunAcl;

    fn config(targets: Vec<TargetConfig>) -> Config {
        let mut c = Config::demo("/nonexistent".into());
        c.targets = targets;
        c
    }

    fn target(name: &str, luns: &[(u16, Backing)]) -> TargetConfig {
        let luns = luns
            .iter()
            .map(|(id, b)| LunConfig::new(*id, b.clone()))
            .collect();
        TargetConfig::new(name.into(), luns)
    }

    fn ram(mib: u64) -> Backing {
        Backing::Ram { size: mib << 20 }
    }

    fn names(d: &Diff) -> Vec<String> {
        d.edits.iter().map(ToString::to_string).collect()
    }

    fn gateway(name: &str) -> TargetConfig {
        let mut t = target(name, &[(0, ram(1))]);
        t.failover = Failover::RbdLock;
        t.port_groups = vec![PortGroupConfig {
            id: 1,
            portals: vec!["127.0.0.1:3260".parse().unwrap()],
            state: crate::config::AluaState::ActiveOptimized,
            remote: false,
        }];
        t
    }

    #[test]
    fn a_gateway_target_keeps_its_failover_port_groups_and_luns_until_a_restart() {
        let plain = target("iqn.plain", &[(0, ram(1))]);
        let old = config(vec![gateway("iqn.gw"), gateway("iqn.gone"), plain.clone()]);
        let mut changed = gateway("iqn.gw");
        changed.luns.push(LunConfig::new(1, ram(1)));
        let mut turned = plain.clone();
        turned.failover = Failover::RbdLock;
        let new = config(vec![changed, gateway("iqn.new"), turned]);
        let d = diff(&old, &new).unwrap();
        assert!(d.edits.is_empty(), "{d:?}");
        assert_eq!(
            d.restart,
            [
                "target iqn.gone (failover = \"rbd-lock\") removed",
                "target iqn.gw (failover = \"rbd-lock\") failover, port groups or LUNs changed",
                "target iqn.new (failover = \"rbd-lock\") added",
                "target iqn.plain (failover = \"rbd-lock\") failover, port groups or LUNs changed",
            ]
        );

        // A port group's state is the lock's, not the file's, once running.
        let mut standby = gateway("iqn.gw");
        standby.port_groups[0].state = crate::config::AluaState::Standby;
        let d = diff(&config(vec![gateway("iqn.gw")]), &config(vec![standby])).unwrap();
        assert!(d.edits.is_empty() && d.restart.len() == 1, "{d:?}");

        // Its other attributes apply as any target's.
        let mut masked = gateway("iqn.gw");
        masked.acls = vec![LunAcl {
            initiator: "iqn.i".into(),
            luns: vec![0],
        }];
        let d = diff(&config(vec![gateway("iqn.gw")]), &config(vec![masked])).unwrap();
        assert_eq!(names(&d), ["target iqn.gw attributes applied"]);
        assert!(d.restart.is_empty(), "{d:?}");
    }

    #[test]
    fn nothing_differs_nothing_is_done() {
        let c = config(vec![target("iqn.a", &[(0, ram(1))])]);
        let d = diff(&c, &c.clone()).unwrap();
        assert!(d.edits.is_empty() && d.restart.is_empty(), "{d:?}");
    }

    #[test]
    fn removals_come_first_and_a_new_target_is_complete_before_it_is_published() {
        let old = config(vec![
            target("iqn.a", &[(0, ram(1)), (1, ram(1))]),
            target("iqn.gone", &[(0, ram(1))]),
        ]);
        let mut fresh = target("iqn.new", &[(0, ram(2))]);
        fresh.acls = vec![LunAcl {
            initiator: "iqn.i".into(),
            luns: vec![0],
        }];
        let new = config(vec![target("iqn.a", &[(0, ram(4)), (2, ram(1))]), fresh]);
        let d = diff(&old, &new).unwrap();
        assert_eq!(
            names(&d),
            [
                "target iqn.gone removed",
                "LUN 1 removed from iqn.a",
                "LUN 0 of iqn.a resized to 4MiB",
                "LUN 2 (ram:1MiB) added to iqn.a",
                "target iqn.a attributes applied",
                "target iqn.new added",
                "LUN 0 (ram:2MiB) added to iqn.new",
                "target iqn.new attributes applied",
            ]
        );
        let Edit::AddTarget(bare) = &d.edits[5] else {
            panic!("{d:?}");
        };
        assert!(bare.luns.is_empty() && bare.acls.is_empty());
    }

    #[test]
    fn another_store_replaces_the_unit_and_cached_attributes_wait_for_a_restart() {
        let old_lun = |read_only| LunConfig {
            block_size: Some(512),
            write_cache: Some(true),
            read_only,
            ..LunConfig::new(0, Backing::Path("/a.img".into()))
        };
        let mut old = config(vec![TargetConfig::new(
            "iqn.a".into(),
            vec![old_lun(false)],
        )]);
        // The running unit's filled-in block size is no difference.
        let same = config(vec![target(
            "iqn.a",
            &[(0, Backing::Path("/a.img".into()))],
        )]);
        assert!(diff(&old, &same).unwrap().edits.is_empty());
        let moved = config(vec![target(
            "iqn.a",
            &[(0, Backing::Path("/b.img".into()))],
        )]);
        assert_eq!(
            names(&diff(&old, &moved).unwrap()),
            [
                "LUN 0 removed from iqn.a",
                "LUN 0 (/b.img) added to iqn.a",
                "target iqn.a attributes applied"
            ]
        );
        old.targets[0].luns[0] = old_lun(true);
        old.portals.push("127.0.0.1:3261".parse().unwrap());
        let d = diff(&old, &same).unwrap();
        assert!(d.edits.is_empty());
        assert_eq!(d.restart, ["portals", "target iqn.a LUN 0 read_only"]);
    }

    #[test]
    fn a_ram_unit_that_would_shrink_is_refused() {
        let old = config(vec![target("iqn.a", &[(0, ram(4))])]);
        let new = config(vec![target("iqn.a", &[(0, ram(2))])]);
        let err = diff(&old, &new).unwrap_err();
        assert!(err.contains("cannot shrink"), "{err}");
    }
}
