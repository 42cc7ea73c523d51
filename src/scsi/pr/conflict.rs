//! Which commands a reservation lets through: SPC-4's table of SPC commands allowed in the
//! presence of the various persistent reservations, SBC-3's table for block commands, and the
//! SPC-2 rules for RESERVE/RELEASE reservations (with SPC-4's exceptions for their interplay).

use super::{spc2, ItNexus, PrState};

/// How a command relates to reservations: one value per entry of the command table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Allowed whatever is reserved, and by non-holders of an SPC-2 reservation too:
    /// INQUIRY, REPORT LUNS, REQUEST SENSE, TEST UNIT READY, READ CAPACITY, REPORT SUPPORTED
    /// OPERATION CODES (SPC-4/SBC-3 "Allowed" in every column).
    Always,
    /// Reads the medium or reports state a Write Exclusive reservation leaves readable: READ,
    /// VERIFY, GET LBA STATUS, MODE SENSE. Allowed to non-holders of Write Exclusive types and
    /// to registered I_T nexuses under registrants-only and all-registrants types; conflicts
    /// under Exclusive Access types otherwise.
    Read,
    /// Changes the medium or the unit: WRITE, WRITE SAME, UNMAP, COMPARE AND WRITE, ORWRITE,
    /// WRITE AND VERIFY, SYNCHRONIZE CACHE, MODE SELECT. Allowed to the holder and to
    /// registered I_T nexuses under registrants-only and all-registrants types only.
    Write,
    /// PREVENT ALLOW MEDIUM REMOVAL: [`Access::Always`] with PREVENT=0, else [`Access::Write`]
    /// (SPC-4). Resolve with [`Access::for_cdb`].
    PreventAllow,
    /// START STOP UNIT: [`Access::Always`] with START=1 and POWER CONDITION=0, else
    /// [`Access::Write`] (SBC-3). Resolve with [`Access::for_cdb`].
    StartStop,
    /// PERSISTENT RESERVE IN and OUT: never refused by a persistent reservation (the service
    /// action checks keys itself), always by an SPC-2 reservation (SPC-2: all PERSISTENT
    /// RESERVE commands conflict with a RESERVE reservation, whichever I_T nexus sends them).
    Persistent,
    /// RESERVE(6)/(10).
    Reserve,
    /// RELEASE(6)/(10).
    Release,
}

/// PREVENT ALLOW MEDIUM REMOVAL byte 4 bits 1..0: PREVENT.
const PREVENT_MASK: u8 = 0x03;
/// START STOP UNIT byte 4: POWER CONDITION (bits 7..4) and START (bit 0).
const POWER_CONDITION_MASK: u8 = 0xF0;
const START: u8 = 0x01;

impl Access {
    /// The access of this particular CDB: settles the conditional kinds.
    pub fn for_cdb(self, cdb: &[u8]) -> Access {
        let byte4 = cdb.get(4).copied().unwrap_or(0);
        match self {
            Access::PreventAllow if byte4 & PREVENT_MASK == 0 => Access::Always,
            Access::StartStop if byte4 & POWER_CONDITION_MASK == 0 && byte4 & START != 0 => {
                Access::Always
            }
            Access::PreventAllow | Access::StartStop => Access::Write,
            other => other,
        }
    }
}

impl PrState {
    /// Whether a command of `access` from `nexus` ends in RESERVATION CONFLICT. O(1) and
    /// allocation-free when nothing is reserved or registered. Conditional kinds not settled
    /// with [`Access::for_cdb`] are taken at their most restrictive.
    pub fn conflict(&self, nexus: &ItNexus, access: Access) -> bool {
        if self.is_idle() {
            return false;
        }
        match access {
            Access::Persistent => self.spc2_holder.is_some(),
            Access::Reserve => spc2::verdict(self, nexus, true) == spc2::Verdict::Conflict,
            Access::Release => spc2::verdict(self, nexus, false) == spc2::Verdict::Conflict,
            _ => self.spc2_conflict(nexus, access) || self.persistent_conflict(nexus, access),
        }
    }

    /// SPC-2: a logical unit reserved by RESERVE is the holder's alone, but for the commands
    /// every reservation lets through.
    fn spc2_conflict(&self, nexus: &ItNexus, access: Access) -> bool {
        match &self.spc2_holder {
            Some(holder) => holder != nexus && access != Access::Always,
            None => false,
        }
    }

    /// SPC-4 / SBC-3 tables of commands allowed in the presence of persistent reservations,
    /// for the holder, a registered I_T nexus and one that is not registered.
    fn persistent_conflict(&self, nexus: &ItNexus, access: Access) -> bool {
        let Some(reservation) = &self.reservation else {
            return false;
        };
        if access == Access::Always || self.is_holder(nexus) {
            return false;
        }
        let kind = reservation.kind;
        let registered = self.registration_of(nexus).is_some();
        let shared = kind.shared_with_registrants() && registered;
        match access {
            Access::Read => !(kind.reads_shared() || shared),
            _ => !shared,
        }
    }
}
