//! Reservations of one logical unit: SPC-4 persistent reservations (PERSISTENT RESERVE IN/OUT)
//! and SPC-2 RESERVE/RELEASE, as pure data and functions.
//!
//! One authoritative [`PrState`] per logical unit lives with a single writer (the control
//! thread), which applies PERSISTENT RESERVE OUT, RESERVE and RELEASE to it ([`reserve_out`],
//! [`reserve_spc2`], [`release_spc2`], or [`super::apply_shared`]), persists it when
//! [`OutEffects::persist`] says so, delivers the unit attentions the effects name and publishes
//! immutable snapshots. Every core reads a snapshot on each command: [`PrState::conflict`] is
//! the hot-path check and costs three field reads while nothing is reserved or registered;
//! PERSISTENT RESERVE IN is answered from the snapshot ([`reserve_in`]).
//!
//! I_T nexuses are iSCSI ones: the initiator port is the initiator name plus the ISID (SPC-4
//! iSCSI TransportID format 01b), the target port is its relative target port identifier.

mod conflict;
mod input;
mod out;
mod spc2;
mod transport_id;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use conflict::Access;
pub use input::reserve_in;
pub use input::service_action as in_service_action;
pub use out::{
    apply_out, check_out_cdb, parse_out, reserve_out, service_action as out_service_action, Move,
    OutEffects, Preempt, ProutRequest, Refusal, Register, UaTarget,
};
pub use spc2::{release_spc2, reserve_spc2};
pub use transport_id::TransportId;

/// SPC-4 PERSISTENT RESERVE OUT TYPE field (and the TYPE reported by PERSISTENT RESERVE IN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PrType(pub u8);

impl PrType {
    /// SPC-4 persistent reservation type codes.
    pub const WRITE_EXCLUSIVE: Self = Self(0x1);
    pub const EXCLUSIVE_ACCESS: Self = Self(0x3);
    pub const WRITE_EXCLUSIVE_REGISTRANTS_ONLY: Self = Self(0x5);
    pub const EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: Self = Self(0x6);
    pub const WRITE_EXCLUSIVE_ALL_REGISTRANTS: Self = Self(0x7);
    pub const EXCLUSIVE_ACCESS_ALL_REGISTRANTS: Self = Self(0x8);

    /// Every type this device server implements (all SPC-4 defines).
    pub const ALL: [Self; 6] = [
        Self::WRITE_EXCLUSIVE,
        Self::EXCLUSIVE_ACCESS,
        Self::WRITE_EXCLUSIVE_REGISTRANTS_ONLY,
        Self::EXCLUSIVE_ACCESS_REGISTRANTS_ONLY,
        Self::WRITE_EXCLUSIVE_ALL_REGISTRANTS,
        Self::EXCLUSIVE_ACCESS_ALL_REGISTRANTS,
    ];

    pub fn is_supported(self) -> bool {
        Self::ALL.contains(&self)
    }

    /// Types 7 and 8: every registered I_T nexus is a reservation holder.
    pub fn all_registrants(self) -> bool {
        matches!(
            self,
            Self::WRITE_EXCLUSIVE_ALL_REGISTRANTS | Self::EXCLUSIVE_ACCESS_ALL_REGISTRANTS
        )
    }

    /// Types 5 and 6: one holder, but every registered I_T nexus has its access.
    pub fn registrants_only(self) -> bool {
        matches!(
            self,
            Self::WRITE_EXCLUSIVE_REGISTRANTS_ONLY | Self::EXCLUSIVE_ACCESS_REGISTRANTS_ONLY
        )
    }

    /// Registrants-only and all-registrants types: registered I_T nexuses have full access.
    pub fn shared_with_registrants(self) -> bool {
        self.registrants_only() || self.all_registrants()
    }

    /// The Write Exclusive family (1, 5, 7): reads stay open to everyone.
    pub fn reads_shared(self) -> bool {
        matches!(
            self,
            Self::WRITE_EXCLUSIVE
                | Self::WRITE_EXCLUSIVE_REGISTRANTS_ONLY
                | Self::WRITE_EXCLUSIVE_ALL_REGISTRANTS
        )
    }
}

/// SPC-4 SCOPE field: only LU_SCOPE (0h) exists; the element and extent scopes are obsolete.
pub const LU_SCOPE: u8 = 0x0;

/// An initiator port: the iSCSI initiator name (lower case: iSCSI names compare case-folded,
/// RFC 3722) and the ISID of the session (SPC-4 iSCSI TransportID format 01b).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InitiatorPort {
    pub name: String,
    #[serde(with = "hex_bytes")]
    pub isid: [u8; 6],
}

impl InitiatorPort {
    /// The port of `name` (case-folded here) and `isid`.
    pub fn new(name: &str, isid: [u8; 6]) -> Self {
        Self {
            name: name.to_lowercase(),
            isid,
        }
    }
}

/// An I_T nexus as reservations see it: initiator port and relative target port identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ItNexus {
    pub initiator: InitiatorPort,
    pub relative_port: u16,
}

/// The I_T nexuses one registration covers (and so one unit attention or abort reaches): an
/// initiator port, or every port of an initiator name (SPEC_I_PT TransportID format 00b), with
/// one target port or all of them (ALL_TG_PT).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NexusSet {
    pub initiator: TransportId,
    /// `None`: every target port of the logical unit (ALL_TG_PT=1).
    pub relative_port: Option<u16>,
}

impl NexusSet {
    /// Exactly one I_T nexus.
    pub fn of(nexus: &ItNexus) -> Self {
        Self {
            initiator: TransportId::of(&nexus.initiator),
            relative_port: Some(nexus.relative_port),
        }
    }

    pub fn covers(&self, nexus: &ItNexus) -> bool {
        self.initiator.covers(&nexus.initiator)
            && self.relative_port.is_none_or(|p| p == nexus.relative_port)
    }

    /// Whether some I_T nexus is in both sets.
    pub fn overlaps(&self, other: &NexusSet) -> bool {
        let ports = match (self.relative_port, other.relative_port) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        ports && self.initiator.overlaps(&other.initiator)
    }
}

/// One registration: the I_T nexuses it covers and their reservation key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub nexuses: NexusSet,
    /// Kept as a hex string when serialized: keys use all 64 bits, which not every format
    /// (TOML's integers are signed) can hold as a number.
    #[serde(with = "hex_key")]
    pub key: u64,
}

/// The persistent reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub kind: PrType,
    /// The I_T nexus holding it; `None` for the all-registrants types, where every registered
    /// I_T nexus holds it (SPC-4 persistent reservation holder).
    pub holder: Option<ItNexus>,
}

/// Most registrations one logical unit keeps; more are refused with INSUFFICIENT REGISTRATION
/// RESOURCES (SPC-4 REGISTER). Enough for 256 hosts with four paths each.
pub const MAX_REGISTRATIONS: usize = 1024;

/// All reservation state of one logical unit.
///
/// Invariants kept by every operation here: no two registrations cover the same I_T nexus,
/// a non-all-registrants reservation's holder is covered by a registration, an all-registrants
/// reservation exists only while something is registered, and an SPC-2 reservation never
/// coexists with a registration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrState {
    /// SPC-4 PRgeneration: bumped by every successful PERSISTENT RESERVE OUT except RESERVE and
    /// RELEASE, wraps at 32 bits.
    generation: u32,
    registrations: Vec<Registration>,
    reservation: Option<Reservation>,
    /// Activate persist through power loss (the last APTPL bit a registration carried).
    aptpl: bool,
    /// SPC-2 RESERVE(6)/(10) holder. Never persisted: a power on, a reset or the holder's
    /// I_T nexus loss releases it.
    #[serde(skip)]
    spc2_holder: Option<ItNexus>,
}

/// What a snapshot reader gets when a logical unit has no reservation state yet.
pub static IDLE: PrState = PrState::new();

impl PrState {
    /// Takes `other`'s SPC-2 reservation holder: persistent state shared through a cluster
    /// carries none (it is never persisted), and this gateway keeps its own.
    pub fn keep_spc2_of(&mut self, other: &PrState) {
        self.spc2_holder = other.spc2_holder.clone();
    }

    pub const fn new() -> Self {
        Self {
            generation: 0,
            registrations: Vec::new(),
            reservation: None,
            aptpl: false,
            spc2_holder: None,
        }
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    pub fn registrations(&self) -> &[Registration] {
        &self.registrations
    }

    pub fn reservation(&self) -> Option<&Reservation> {
        self.reservation.as_ref()
    }

    /// PTPL_A: whether the state must survive a power loss.
    pub fn aptpl(&self) -> bool {
        self.aptpl
    }

    pub fn spc2_holder(&self) -> Option<&ItNexus> {
        self.spc2_holder.as_ref()
    }

    /// Nothing reserved and nothing registered: no command can conflict.
    pub fn is_idle(&self) -> bool {
        self.reservation.is_none() && self.spc2_holder.is_none() && self.registrations.is_empty()
    }

    /// The registration covering `nexus`, if it is registered.
    pub fn registration_of(&self, nexus: &ItNexus) -> Option<&Registration> {
        self.registration_index(nexus)
            .map(|i| &self.registrations[i])
    }

    fn registration_index(&self, nexus: &ItNexus) -> Option<usize> {
        self.registrations
            .iter()
            .position(|r| r.nexuses.covers(nexus))
    }

    /// Whether `nexus` holds the persistent reservation (with an all-registrants type: is
    /// registered while one exists).
    pub fn is_holder(&self, nexus: &ItNexus) -> bool {
        match &self.reservation {
            None => false,
            Some(Reservation { holder: None, .. }) => self.registration_index(nexus).is_some(),
            Some(Reservation {
                holder: Some(h), ..
            }) => h == nexus,
        }
    }

    /// The key READ RESERVATION reports: the holder's, or zero for all-registrants types
    /// (SPC-4 READ RESERVATION).
    pub fn reservation_key(&self) -> u64 {
        self.reservation
            .as_ref()
            .and_then(|r| r.holder.as_ref())
            .and_then(|h| self.registration_of(h))
            .map_or(0, |r| r.key)
    }

    /// LOGICAL UNIT RESET, a target reset or a hard reset: the SPC-2 reservation is released,
    /// persistent reservations and registrations are kept (SPC-4 persistent reservations are
    /// not affected by resets or I_T nexus loss). Returns whether anything changed.
    pub fn reset(&mut self) -> bool {
        self.spc2_holder.take().is_some()
    }

    /// I_T nexus loss (logout, connection drop, session reinstatement): releases the SPC-2
    /// reservation `nexus` held. Returns whether anything changed.
    pub fn nexus_lost(&mut self, nexus: &ItNexus) -> bool {
        if self.spc2_holder.as_ref() == Some(nexus) {
            self.spc2_holder = None;
            return true;
        }
        false
    }

    /// What survives a power on: with APTPL, the registrations and the reservation, PRgeneration
    /// back to zero (SPC-4: regardless of APTPL); without it, nothing.
    pub fn after_power_on(&self) -> PrState {
        if !self.aptpl {
            return PrState::new();
        }
        PrState {
            generation: 0,
            registrations: self.registrations.clone(),
            reservation: self.reservation.clone(),
            aptpl: true,
            spc2_holder: None,
        }
    }

    fn bump_generation(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }
}

/// Reservation keys as 16 hex digits.
mod hex_key {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{key:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        u64::from_str_radix(&text, 16).map_err(D::Error::custom)
    }
}

/// ISIDs as 12 hex digits, the way iSCSI writes them.
mod hex_bytes {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 6], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::transport_id::hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 6], D::Error> {
        let text = String::deserialize(d)?;
        super::transport_id::parse_isid(&text).ok_or_else(|| D::Error::custom("bad ISID"))
    }
}
