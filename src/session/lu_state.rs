//! The session's view of state its logical units share with every other session: the latest
//! published snapshot of each (reservations), and the unit attentions other nexuses' actions
//! raised for this one, imported into the nexus's own queues as the snapshots move on.

use std::sync::Arc;

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
    /// its snapshot.
    pub(super) fn refresh_lu(&mut self, lun: u16) -> Option<Arc<LuSnapshot>> {
        let i = self.luns.index_of(lun)?;
        let lu = self.luns.at(i)?;
        let view = self.lu_views.get_mut(i)?;
        let before = view.snapshot.generation;
        let snapshot = lu.shared.load(&mut view.snapshot).clone();
        if snapshot.generation != before {
            import_events(&snapshot, &self.it_nexus, view, &mut |ua| {
                self.nexus.unit_attentions.establish(lun, ua)
            });
        }
        // Checked on every command, not only when the snapshot moved: a session that logs in
        // after a resize starts from the map of start-up and the snapshot of now.
        if let Some(blocks) = snapshot.capacity.filter(|&b| b != lu.num_blocks) {
            // Copy-on-write: the map is shared with every session that has not seen the new
            // size yet; commands already running keep the size they were checked with.
            Arc::make_mut(&mut self.luns).set_num_blocks(i, blocks);
        }
        Some(snapshot)
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
