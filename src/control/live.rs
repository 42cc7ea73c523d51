//! The running configuration and the context the reactors serve from it; live changes
//! (`ringtgt ctl target add`, `lun resize`, ...) edit the first and rebuild the second.
//!
//! # How a change reaches the reactors (the rule)
//!
//! Each reactor reads an immutable [`PortalContext`] (targets, LUN maps, login entries) and an
//! immutable [`StoreTable`] (backing stores), both behind an `Arc`, with no lock. A change is
//! never made to them in place: the control thread, their only author, builds new ones here
//! and sends both to every reactor over its mailbox (`ToReactor::Apply`). A reactor swaps them
//! in between two loop turns and hands the new context to every connection (`Connection::adopt`)
//! before it handles any further input: that is the safe point, since no protocol code runs
//! concurrently on a core. Each reactor acknowledges (`ToControl::Applied`); a change that
//! depends on every core having switched waits for all acknowledgements.
//!
//! - Target indices are stable: a removed target leaves a tombstone (an empty target that takes
//!   no logins) and an added one takes a new index, so no session, request or store is ever
//!   re-pointed at another target.
//! - A unit keeps its shared state (reservations, unit-attention log, medium) across rebuilds.
//! - A unit being removed leaves the context first (new commands get LOGICAL UNIT NOT
//!   SUPPORTED) but stays in the store table until every core reports its tasks drained; only
//!   then does a second table drop it and its descriptor close.
//! - Sessions learn of inventory and capacity changes by comparing the LUN map they had with
//!   the one they adopt (`Session::adopt`): unit attentions come with the new data.

use std::collections::HashMap;
use std::sync::Arc;

use crossbeam_channel::Sender;

use super::sanitize_store::SanitizeStore;
use super::ToControl;
use crate::backstore::{identify, Store};
use crate::config::{parse_backing, Config, LunConfig, TargetConfig};
use crate::daemon;
use crate::reactor::StoreTable;
use crate::scsi::shared::LuShared;
use crate::session::PortalContext;

/// One target index.
struct Slot {
    /// Lower-cased name.
    name: String,
    /// Still configured (false: a tombstone).
    live: bool,
    /// Being removed: no new logins.
    closed: bool,
}

pub struct Runtime {
    config: Config,
    slots: Vec<Slot>,
    /// Open stores by slot, including those of units still draining after their removal.
    stores: Vec<HashMap<u16, Arc<Store>>>,
    ctx: Arc<PortalContext>,
    table: Arc<StoreTable>,
    /// Where a store that changes size by itself (an RBD image) reports it, and where stores
    /// a change's helper thread reports (`ToControl::Helped`).
    to_control: Sender<ToControl>,
    /// The failover threads of gateway targets.
    #[cfg(feature = "rbd")]
    gateways: Vec<super::failover::Handle>,
    /// The reservation threads of gateway targets, by target index.
    #[cfg(feature = "rbd")]
    cluster_prs: Vec<(usize, super::cluster_pr::Handle)>,
    /// Where units a change adds keep their sanitize records.
    journals: SanitizeStore,
}

impl Runtime {
    /// The runtime of a daemon that started with `config`, whose stores (by target, in config
    /// order) and context were built from it. Stores that change size by themselves report it
    /// on `to_control` (`ToControl::StoreResized`). Fails if a gateway target cannot be set up
    /// safely: it would otherwise write without the images' locks or keep reservations that
    /// the other gateways do not see.
    pub fn new(
        config: Config,
        stores: Vec<HashMap<u16, Arc<Store>>>,
        ctx: Arc<PortalContext>,
        table: Arc<StoreTable>,
        to_control: Sender<ToControl>,
        journals: SanitizeStore,
    ) -> Result<Runtime, String> {
        let slots = config
            .targets
            .iter()
            .map(|t| Slot {
                name: t.name.to_ascii_lowercase(),
                live: true,
                closed: false,
            })
            .collect();
        let mut runtime = Runtime {
            config,
            slots,
            stores,
            ctx,
            table,
            to_control,
            #[cfg(feature = "rbd")]
            gateways: Vec::new(),
            #[cfg(feature = "rbd")]
            cluster_prs: Vec::new(),
            journals,
        };
        for t in &runtime.config.targets {
            for l in &t.luns {
                if let Some(store) = runtime
                    .slot_of(&t.name)
                    .and_then(|i| runtime.store(i, l.id))
                {
                    runtime.watch_size(&t.name, l.id, store);
                }
            }
        }
        runtime.start_gateways()?;
        Ok(runtime)
    }

    /// Starts the failover thread of every gateway target (`failover = "rbd-lock"`), each
    /// settling first whether this gateway holds its images' locks.
    #[cfg(feature = "rbd")]
    fn start_gateways(&mut self) -> Result<(), String> {
        use super::failover;
        let gateways: Vec<usize> = (0..self.config.targets.len())
            .filter(|&i| self.config.targets[i].failover == crate::config::Failover::RbdLock)
            .collect();
        for index in gateways {
            let t = &self.config.targets[index];
            let fail = |e: String| format!("target {} (failover = \"rbd-lock\"): {e}", t.name);
            let Some(local) = t.port_groups.iter().find(|g| !g.remote) else {
                continue;
            };
            let images: Vec<_> = t
                .luns
                .iter()
                .filter_map(|l| self.store(index, l.id)?.rbd_image().cloned())
                .collect();
            for image in &images {
                if !image
                    .has_exclusive_lock()
                    .map_err(|e| fail(e.to_string()))?
                {
                    return Err(fail(format!(
                        "{} has no exclusive-lock feature, which gateways need to fence each \
                         other (rbd feature enable IMAGE exclusive-lock)",
                        image.label()
                    )));
                }
            }
            let gateway = failover::Gateway {
                index,
                name: t.name.clone(),
                images,
                groups: self.ctx.targets[index].port_groups.clone(),
                local: local.id,
                remote: t
                    .port_groups
                    .iter()
                    .filter(|g| g.remote)
                    .map(|g| g.id)
                    .collect(),
                preferred: local.state == crate::config::AluaState::ActiveOptimized,
            };
            let handle = failover::start(gateway, self.to_control.clone())
                .map_err(|e| fail(format!("cannot start its failover thread: {e}")))?;
            self.gateways.push(handle);
            let name = t.name.clone();
            self.start_cluster_pr(index).map_err(|e| {
                format!(
                    "target {name} (failover = \"rbd-lock\"): cannot share its persistent \
                     reservations through the cluster: {e}"
                )
            })?;
        }
        Ok(())
    }

    /// Starts the thread that keeps gateway target `index`'s persistent reservations in the
    /// cluster.
    #[cfg(feature = "rbd")]
    fn start_cluster_pr(&mut self, index: usize) -> Result<(), String> {
        use super::cluster_pr;
        let t = &self.config.targets[index];
        let units = t
            .luns
            .iter()
            .filter_map(|l| {
                let crate::config::Backing::Rbd(rbd) = &l.backing else {
                    return None;
                };
                Some(cluster_pr::Unit {
                    lun: l.id,
                    image: self.store(index, l.id)?.rbd_image()?.clone(),
                    object: cluster_pr::object_name(&rbd.image),
                    shared: self.ctx.targets[index].luns.get(l.id)?.shared.clone(),
                })
            })
            .collect();
        let handle = cluster_pr::start(index, t.name.clone(), units, self.to_control.clone())?;
        self.cluster_prs.push((index, handle));
        Ok(())
    }

    /// Where the control thread sends gateway targets' PERSISTENT RESERVE OUTs.
    #[cfg(feature = "rbd")]
    pub fn cluster_pr_jobs(
        &self,
    ) -> Vec<(usize, crossbeam_channel::Sender<super::cluster_pr::Job>)> {
        self.cluster_prs
            .iter()
            .map(|(t, h)| (*t, h.jobs.clone()))
            .collect()
    }

    #[cfg(not(feature = "rbd"))]
    fn start_gateways(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// Ends the failover threads; a gateway that holds locks gives them back.
    pub fn stop_gateways(&mut self) {
        #[cfg(feature = "rbd")]
        for handle in self.gateways.drain(..) {
            handle.stop();
        }
        #[cfg(feature = "rbd")]
        for (_, handle) in self.cluster_prs.drain(..) {
            handle.stop();
        }
    }

    /// Has a store whose size can change outside the daemon (an RBD image resized in the
    /// cluster) report each change, so that the unit is resized as `ringtgt ctl lun resize`
    /// without a size does: the same capacity change and CAPACITY DATA HAS CHANGED. The watch
    /// ends when the store closes.
    #[cfg(feature = "rbd")]
    fn watch_size(&self, target: &str, lun: u16, store: &Store) {
        let Some(image) = store.rbd_image() else {
            return;
        };
        let (name, tx) = (target.to_string(), self.to_control.clone());
        let hook = move |_bytes: u64| {
            let msg = ToControl::StoreResized {
                target: name.clone(),
                lun,
            };
            // Gone only while the daemon stops.
            let _ = tx.send(msg);
        };
        if let Err(e) = image.watch_size(hook) {
            tracing::warn!(target, lun, error = %e, "resizes of this image will not be seen until `ringtgt ctl lun resize` or a restart");
        }
    }

    #[cfg(not(feature = "rbd"))]
    fn watch_size(&self, _target: &str, _lun: u16, _store: &Store) {}

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn ctx(&self) -> &Arc<PortalContext> {
        &self.ctx
    }

    pub fn table(&self) -> &Arc<StoreTable> {
        &self.table
    }

    /// The index of live target `name` (case-insensitive).
    pub fn slot_of(&self, name: &str) -> Option<usize> {
        self.slots
            .iter()
            .rposition(|s| s.live && s.name.eq_ignore_ascii_case(name))
    }

    /// Whether a login to `name` may still be admitted.
    pub fn takes_logins(&self, name: &str) -> bool {
        self.slot_of(name).is_some_and(|i| !self.slots[i].closed)
    }

    pub fn target(&self, name: &str) -> Option<&TargetConfig> {
        self.config
            .targets
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    pub fn store(&self, slot: usize, lun: u16) -> Option<&Arc<Store>> {
        self.stores.get(slot)?.get(&lun)
    }

    /// Applies `edit` to a copy of the configuration and keeps it if it still validates.
    fn edit_config(&mut self, edit: impl FnOnce(&mut Config)) -> Result<(), String> {
        let mut next = self.config.clone();
        edit(&mut next);
        next.validate().map_err(|e| e.to_string())?;
        self.config = next;
        Ok(())
    }

    pub fn add_target(&mut self, target: TargetConfig) -> Result<(), String> {
        let name = target.name.clone();
        self.edit_config(|c| c.targets.push(target))?;
        self.slots.push(Slot {
            name: name.to_ascii_lowercase(),
            live: true,
            closed: false,
        });
        self.stores.push(HashMap::new());
        self.rebuild();
        Ok(())
    }

    /// First step of a target's removal: no new logins.
    pub fn close_target(&mut self, slot: usize) {
        self.slots[slot].closed = true;
        self.rebuild();
    }

    /// Last step: the target leaves the configuration, its index becomes a tombstone and its
    /// stores close once no reactor holds the old table.
    pub fn remove_target(&mut self, slot: usize) {
        let name = self.slots[slot].name.clone();
        self.config
            .targets
            .retain(|t| !t.name.eq_ignore_ascii_case(&name));
        self.slots[slot].live = false;
        self.stores[slot].clear();
        self.rebuild();
    }

    /// `lun` as target `slot` would take it: given the lowest free id if it has none, and
    /// checked (`check_new_lun`) before its store is opened.
    pub fn prepare_lun(&self, slot: usize, mut lun: LunConfig) -> Result<LunConfig, String> {
        let target = self
            .target(&self.slots[slot].name)
            .ok_or("no such target")?;
        if lun.id == u16::MAX {
            lun.id = (0..=crate::config::MAX_LUN_ID)
                .find(|id| target.luns.iter().all(|l| l.id != *id))
                .ok_or("every LUN id is taken")?;
        }
        self.check_new_lun(slot, &lun)?;
        Ok(lun)
    }

    /// Where helpers of the control thread send what they did.
    pub fn to_control(&self) -> Sender<ToControl> {
        self.to_control.clone()
    }

    /// Sets port group `group` of target `slot` to `state`, in the running configuration and
    /// at once on every core.
    pub fn set_alua_state(
        &mut self,
        slot: usize,
        group: u16,
        state: crate::config::AluaState,
    ) -> Result<(), String> {
        let groups = self.ctx.targets[slot].port_groups.clone();
        if groups.takeover().is_some() {
            return Err(
                "a gateway target's states follow its images' locks (failover = \"rbd-lock\")"
                    .into(),
            );
        }
        let name = self.slots[slot].name.clone();
        let t = self
            .config
            .targets
            .iter_mut()
            .find(|t| t.name.eq_ignore_ascii_case(&name))
            .ok_or("no such target")?;
        if t.port_groups.is_empty() {
            return Err(
                "the target has no [[target.port_group]]: it is one active/optimized group".into(),
            );
        }
        let ids: Vec<String> = t.port_groups.iter().map(|g| g.id.to_string()).collect();
        let g = t
            .port_groups
            .iter_mut()
            .find(|g| g.id == group && !g.remote)
            .ok_or_else(|| format!("no port group {group} (groups: {})", ids.join(", ")))?;
        g.state = state;
        groups.set_state(group, daemon::access_state(state));
        Ok(())
    }

    /// A gateway target's failover thread holds the locks of the images it started with: its
    /// LUNs change only with a restart.
    pub fn check_luns_may_change(&self, slot: usize) -> Result<(), String> {
        let gateway = self
            .ctx
            .targets
            .get(slot)
            .is_some_and(|t| t.port_groups.takeover().is_some());
        if gateway {
            return Err("a gateway target (failover = \"rbd-lock\") keeps the LUNs it started with: change the configuration and restart the gateway".into());
        }
        Ok(())
    }

    /// Refuses a unit that target `slot` cannot take (id in use or still draining, a medium
    /// another unit uses, or a configuration that would not validate) before its store is
    /// opened.
    pub fn check_new_lun(&self, slot: usize, lun: &LunConfig) -> Result<(), String> {
        if self.stores[slot].contains_key(&lun.id) {
            return Err(format!("LUN {} is still being removed", lun.id));
        }
        self.check_shared_medium(lun)?;
        self.with_lun(slot, lun.clone())
            .validate()
            .map_err(|e| e.to_string())
    }

    /// Adds a unit whose store is open and whose configuration [`crate::startup::open_lun`]
    /// completed.
    pub fn add_opened_lun(
        &mut self,
        slot: usize,
        lun: LunConfig,
        store: Arc<Store>,
    ) -> Result<u16, String> {
        let id = lun.id;
        if self.stores[slot].contains_key(&id) {
            return Err(format!("LUN {id} is still being removed"));
        }
        // The configuration keeps what the store decided (block size, write cache), as at
        // start-up, so that `ctl save` writes what initiators see.
        let candidate = self.with_lun(slot, lun);
        candidate.validate().map_err(|e| e.to_string())?;
        self.config = candidate;
        let name = self.slots[slot].name.clone();
        self.watch_size(&name, id, &store);
        self.stores[slot].insert(id, store);
        self.rebuild();
        Ok(id)
    }

    /// The rule start-up applies (`startup::open_stores`): a file or block device may back two
    /// units only if both are read-only, whatever the paths that name it. Two writable units
    /// on one medium would each cache, reserve and lock their blocks without the other.
    fn check_shared_medium(&self, lun: &LunConfig) -> Result<(), String> {
        let identity = |l: &LunConfig| identify(&crate::startup::store_spec(&l.backing, false));
        let Some(id) = identity(lun) else {
            return Ok(());
        };
        for t in &self.config.targets {
            for other in &t.luns {
                if identity(other) == Some(id) && !(other.read_only && lun.read_only) {
                    return Err(format!(
                        "{} is the medium of LUN {} of {} ({}): two LUNs may share a file or \
                         device only if both are read-only",
                        lun.backing, other.id, t.name, other.backing
                    ));
                }
            }
        }
        Ok(())
    }

    /// The configuration with `lun` added to target `slot`.
    fn with_lun(&self, slot: usize, lun: LunConfig) -> Config {
        let name = &self.slots[slot].name;
        let mut candidate = self.config.clone();
        if let Some(t) = candidate
            .targets
            .iter_mut()
            .find(|t| t.name.eq_ignore_ascii_case(name))
        {
            t.luns.push(lun);
        }
        candidate
    }

    /// Gives target `slot` every attribute of `t` but its units (a reload): logins from now
    /// on meet the new ACLs, CHAP and allowed initiators.
    pub fn set_target(&mut self, slot: usize, t: &TargetConfig) -> Result<(), String> {
        let name = self.slots[slot].name.clone();
        self.edit_config(|c| {
            if let Some(running) = c
                .targets
                .iter_mut()
                .find(|r| r.name.eq_ignore_ascii_case(&name))
            {
                let luns = std::mem::take(&mut running.luns);
                *running = TargetConfig { luns, ..t.clone() };
            }
        })?;
        self.rebuild();
        Ok(())
    }

    /// Changes settings that need no rebuild of a target (a reload).
    pub fn set_global(&mut self, edit: impl FnOnce(&mut Config)) -> Result<(), String> {
        self.edit_config(edit)?;
        self.rebuild();
        Ok(())
    }

    /// First step of a unit's removal: it leaves the configuration and the context (its store
    /// stays open for the tasks still running).
    pub fn unmap_lun(&mut self, slot: usize, id: u16) -> Result<(), String> {
        let name = self.slots[slot].name.clone();
        let target = self.target(&name).ok_or("no such target")?;
        if !target.luns.iter().any(|l| l.id == id) {
            return Err(format!("target {} has no LUN {id}", target.name));
        }
        // A target keeps at least one unit (the configuration's rule): say so plainly.
        self.edit_config(|c| {
            if let Some(t) = c
                .targets
                .iter_mut()
                .find(|t| t.name.eq_ignore_ascii_case(&name))
            {
                t.luns.retain(|l| l.id != id);
                for acl in &mut t.acls {
                    acl.luns.retain(|l| *l != id);
                }
            }
        })?;
        self.rebuild();
        Ok(())
    }

    /// Last step: the drained unit's store leaves the table.
    pub fn close_lun(&mut self, slot: usize, id: u16) {
        self.stores[slot].remove(&id);
        self.rebuild();
    }

    /// Resizes unit `id` of target `slot` (see `Store::resize`); returns the new size.
    pub fn resize_lun(&mut self, slot: usize, id: u16, size: Option<u64>) -> Result<u64, String> {
        let name = self.slots[slot].name.clone();
        let lun = self
            .target(&name)
            .and_then(|t| t.luns.iter().find(|l| l.id == id))
            .ok_or_else(|| format!("target {name} has no LUN {id}"))?
            .clone();
        let store = self.store(slot, id).ok_or("the unit has no store")?.clone();
        // Units in the configuration have had their block size filled in when they were opened.
        let block_size = lun.block_size.unwrap_or(crate::backstore::MIN_BLOCK);
        if let Some(s) = size {
            if s % u64::from(block_size) != 0 {
                return Err(format!(
                    "{s} bytes is not a multiple of the {block_size}-byte block size"
                ));
            }
        }
        let new = store.resize(size).map_err(|e| e.to_string())?;
        self.resized_lun(slot, id, new);
        Ok(new)
    }

    /// Unit `id` of target `slot` has been resized to `new` bytes (its store's size is set):
    /// the running configuration follows.
    pub fn resized_lun(&mut self, slot: usize, id: u16, new: u64) {
        let name = self.slots[slot].name.clone();
        let Some(lun) = self
            .target(&name)
            .and_then(|t| t.luns.iter().find(|l| l.id == id))
        else {
            return;
        };
        // RAM and null sizes live in the configuration; a file or device carries its own.
        let backing = match &lun.backing {
            crate::config::Backing::Ram { .. } => Some(crate::config::Backing::Ram { size: new }),
            crate::config::Backing::Null { .. } => Some(crate::config::Backing::Null { size: new }),
            crate::config::Backing::Path(_) | crate::config::Backing::Rbd(_) => None,
        };
        if let Some(backing) = backing {
            for t in &mut self.config.targets {
                if t.name.eq_ignore_ascii_case(&name) {
                    for l in t.luns.iter_mut().filter(|l| l.id == id) {
                        l.backing = backing.clone();
                    }
                }
            }
        }
        self.rebuild();
    }

    /// The name of target `slot`.
    pub fn slot_name(&self, slot: usize) -> &str {
        &self.slots[slot].name
    }

    /// Flushes every file and block-device unit that reports a write cache: initiators were
    /// told writes may sit in a volatile cache, and the daemon is about to stop holding it.
    /// Returns how many could not be flushed (each is logged).
    pub fn flush_write_caches(&self) -> usize {
        use crate::backstore::StoreKind;
        let mut failed = 0;
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(t) = slot.live.then(|| self.target(&slot.name)).flatten() else {
                continue;
            };
            for l in t.luns.iter().filter(|l| l.write_cache.unwrap_or(true)) {
                let Some(store) = self.stores[i].get(&l.id) else {
                    continue;
                };
                if !matches!(
                    store.kind(),
                    StoreKind::File | StoreKind::BlockDevice | StoreKind::Rbd | StoreKind::Nvme
                ) {
                    continue;
                }
                match store.flush() {
                    Ok(()) => {
                        tracing::debug!(target = %t.name, lun = l.id, path = %l.backing, "write cache flushed")
                    }
                    Err(e) => {
                        failed += 1;
                        tracing::error!(target = %t.name, lun = l.id, path = %l.backing, error = %e, "cannot flush the write cache");
                    }
                }
            }
        }
        failed
    }

    /// Builds the context and store table from the configuration, the slots and the stores.
    fn rebuild(&mut self) {
        let c = &self.config;
        let tpg = c.portal_group_tag;
        let mut targets = Vec::with_capacity(self.slots.len());
        let mut login_targets = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let old = self.ctx.targets.get(i);
            let reuse = |lun: u16| -> Option<Arc<LuShared>> {
                old.and_then(|t| t.luns.get(lun)).map(|l| l.shared.clone())
            };
            let config = slot.live.then(|| self.target(&slot.name)).flatten();
            match config {
                Some(t) => {
                    let mut runtime =
                        daemon::target_runtime_with(t, &self.stores[i], tpg, &c.iscsi, &reuse);
                    // Sessions keep the groups they logged in with: a rebuild that keeps the same
                    // groups keeps their (shared) states, set from the configuration, except a
                    // gateway's, which follow its locks (its failover thread sets them).
                    if let Some(old) =
                        old.filter(|o| o.port_groups.ids() == runtime.port_groups.ids())
                    {
                        if old.port_groups.takeover().is_none() {
                            for g in t.port_groups.iter().filter(|g| !g.remote) {
                                old.port_groups
                                    .set_state(g.id, daemon::access_state(g.state));
                            }
                        }
                        runtime.port_groups = old.port_groups.clone();
                    }
                    targets.push(runtime);
                    if !slot.closed {
                        login_targets.push(daemon::login_entry(t));
                    }
                }
                None => targets.push(crate::session::TargetRuntime::new(
                    slot.name.clone(),
                    Default::default(),
                )),
            }
        }
        self.ctx = Arc::new(daemon::context_of(c, targets, login_targets));
        self.table = Arc::new(StoreTable::new(self.stores.clone()));
        self.journals.attach(&self.ctx, &self.stores);
    }
}

/// A `LunConfig` from a `ctl lun add` request: `spec` as `serve --lun` takes it; `id` none =
/// the lowest free id.
pub fn lun_config(
    id: Option<u16>,
    spec: &str,
    read_only: bool,
    block_size: Option<u32>,
) -> Result<LunConfig, String> {
    let backing = parse_backing(spec)?;
    let mut lun = LunConfig::new(id.unwrap_or(u16::MAX), backing);
    lun.read_only = read_only;
    lun.block_size = block_size;
    Ok(lun)
}
