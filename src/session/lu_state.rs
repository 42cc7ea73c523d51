//! The session's view of state its logical units share with every other session: the latest
//! published snapshot of each (reservations), and the unit attentions other nexuses' actions
//! raised for this one, imported into the nexus's own queues as the snapshots move on.

use std::sync::Arc;

use super::context::PortalContext;
use super::full::Session;
use crate::scsi::pr::ItNexus;
use crate::scsi::shared::LuSnapshot;
use crate::scsi::{LunMap, UnitAttention};

/// One logical unit as this session last saw it.
pub struct LuView {
    snapshot: Arc<LuSnapshot>,
    /// Sequence number of the last unit attention event taken from the snapshots.
    seen: u64,
}

/// Views of every logical unit of `luns`, in its order, starting from what is published now:
/// events already in the log happened before this nexus existed.
pub fn views_of(luns: &LunMap) -> Vec<LuView> {
    luns.iter()
        .map(|lu| {
            let snapshot = lu.shared.snapshot();
            let seen = snapshot.next_seq() - 1;
            LuView { snapshot, seen }
        })
        .collect()
}

/// When this nexus missed events (it sent nothing while the log moved past them), SPC-4's
/// generic PARAMETERS CHANGED (2Ah/00h) tells it that something about the unit changed.
const MISSED_EVENTS: UnitAttention = UnitAttention::new(0x2a, 0x00);

impl Session {
    /// Brings the view of `lun` up to date (one atomic load when nothing changed) and returns
    /// its index in `lu_views`. The snapshot is borrowed from there, not cloned: an `Arc` clone
    /// per command would bounce the reference count between every core using the unit.
    pub(super) fn refresh_lu(&mut self, lun: u16) -> Option<usize> {
        let i = self.luns.index_of(lun)?;
        let lu = self.luns.at(i)?;
        let view = self.lu_views.get_mut(i)?;
        let before = view.snapshot.generation;
        lu.shared.load(&mut view.snapshot);
        if view.snapshot.generation != before {
            let snapshot = view.snapshot.clone();
            import_events(&snapshot, &self.it_nexus, view, &mut |ua| {
                self.nexus.unit_attentions.establish(lun, ua)
            });
        }
        Some(i)
    }
}

impl Session {
    /// Switches to a new portal context: the operator added, removed or resized logical units
    /// (see `control::live` for when this happens). The session's LUN inventory is taken again
    /// from its target (through its initiator's mask); a nexus whose inventory changed gets
    /// REPORTED LUNS DATA HAS CHANGED on each of its units, one whose unit changed size gets
    /// CAPACITY DATA HAS CHANGED on it (SPC-4, SBC-3), and a unit new to it (added, or another
    /// store under a removed unit's id) first POWER ON OCCURRED, in the same step that makes the new
    /// inventory visible, so an initiator that reacts to the attention reads the new data.
    /// Tasks in flight keep running: their unit's store stays open until they have drained.
    pub fn adopt(&mut self, ctx: Arc<PortalContext>) {
        let luns = self
            .target
            .and_then(|t| ctx.targets.get(t))
            .map_or_else(Arc::default, |t| t.view_for(&self.params.initiator_name));
        let same_inventory = luns.len() == self.luns.len()
            && luns
                .iter()
                .zip(self.luns.iter())
                .all(|(a, b)| a.lun == b.lun);
        let mut views = Vec::with_capacity(luns.len());
        for lu in luns.iter() {
            let old = self.luns.index_of(lu.lun).and_then(|i| {
                let info = self.luns.at(i)?;
                let view = self.lu_views.get(i)?;
                Some((info, view))
            });
            match old {
                Some((info, view)) if Arc::ptr_eq(&info.shared, &lu.shared) => {
                    if info.num_blocks != lu.num_blocks || info.block_size != lu.block_size {
                        let ua = UnitAttention::CAPACITY_DATA_HAS_CHANGED;
                        self.nexus.unit_attentions.establish(lu.lun, ua);
                    }
                    views.push(LuView {
                        snapshot: view.snapshot.clone(),
                        seen: view.seen,
                    });
                }
                // A unit new to this nexus (added, replaced by another store under its id, or
                // let in by an ACL): its state is a fresh unit's, as after a power on (SAM-5
                // §5.14), which the nexus hears before anything else about it.
                _ => {
                    let ua = UnitAttention::POWER_ON_RESET;
                    self.nexus.unit_attentions.establish(lu.lun, ua);
                    let snapshot = lu.shared.snapshot();
                    let seen = snapshot.next_seq() - 1;
                    views.push(LuView { snapshot, seen });
                }
            }
        }
        if !same_inventory {
            for lu in luns.iter() {
                let ua = UnitAttention::REPORTED_LUNS_DATA_HAS_CHANGED;
                self.nexus.unit_attentions.establish(lu.lun, ua);
            }
        }
        self.luns = luns;
        self.lu_views = views;
        self.ctx = ctx;
    }
}

impl LuView {
    pub fn snapshot(&self) -> &LuSnapshot {
        &self.snapshot
    }
}

fn import_events(
    snapshot: &LuSnapshot,
    nexus: &ItNexus,
    view: &mut LuView,
    establish: &mut dyn FnMut(UnitAttention),
) {
    let (events, missed) = snapshot.events_for(nexus, view.seen);
    if missed {
        establish(MISSED_EVENTS);
    }
    for ua in events {
        establish(ua);
    }
    view.seen = snapshot.next_seq() - 1;
}
