//! Persistent reservations (SPC-4). Placeholder types until the reservation engine lands: the
//! shared-state plumbing needs the nexus identity and a state to publish.

/// An initiator port (iSCSI: initiator name in lower case + ISID).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InitiatorPort {
    pub name: String,
    pub isid: [u8; 6],
}

/// An I_T nexus as reservations see it: initiator port and relative target port identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItNexus {
    pub initiator: InitiatorPort,
    pub relative_port: u16,
}

/// All reservation state of one logical unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrState {}
