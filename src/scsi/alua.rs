//! Asymmetric logical unit access (SPC-4 "Asymmetric logical unit access"): the target port
//! groups of a target, their access states, REPORT TARGET PORT GROUPS, and which commands a
//! port in each state accepts.
//!
//! Each target port group holds one target port, so a group's identifier is also the relative
//! target port identifier of the port and the iSCSI target portal group tag of its portals.
//! The access is implicit (TPGS = 01b): the target changes states itself (configuration, a
//! gateway taking over), initiators only read them. States are per target — every logical unit
//! of a target has the same state through a given port — and shared by every core: a state
//! lives in an atomic that sessions read once per command.
//!
//! A gateway target (`failover = "rbd-lock"`) also reports the port groups of the other
//! gateways that export the same images, and its states follow who holds the images' exclusive
//! locks: a command that would change the medium through an active/non-optimized port asks the
//! target's [`Takeover`] for the locks and gets ASYMMETRIC ACCESS STATE TRANSITION, which
//! initiators retry until the takeover is done. SYNCHRONIZE CACHE there is answered at once
//! ([`nothing_to_flush`]).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::thread::Thread;

use super::cdb::{op, Cdb};
use super::sense::Sense;
use super::{data_in, Plan};

/// SPC-4 ASYMMETRIC ACCESS STATE values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessState {
    ActiveOptimized = 0x0,
    ActiveNonOptimized = 0x1,
    Standby = 0x2,
    Unavailable = 0x3,
    Transitioning = 0xF,
}

impl AccessState {
    fn from_code(code: u8) -> AccessState {
        match code {
            0x0 => AccessState::ActiveOptimized,
            0x1 => AccessState::ActiveNonOptimized,
            0x2 => AccessState::Standby,
            0x3 => AccessState::Unavailable,
            _ => AccessState::Transitioning,
        }
    }

    /// The name the configuration uses.
    pub fn name(self) -> &'static str {
        match self {
            AccessState::ActiveOptimized => "active-optimized",
            AccessState::ActiveNonOptimized => "active-non-optimized",
            AccessState::Standby => "standby",
            AccessState::Unavailable => "unavailable",
            AccessState::Transitioning => "transitioning",
        }
    }
}

/// One target port group (one target port).
#[derive(Debug)]
pub struct PortGroup {
    pub id: u16,
    state: AtomicU8,
}

impl PortGroup {
    pub fn state(&self) -> AccessState {
        AccessState::from_code(self.state.load(Ordering::Relaxed))
    }
}

/// A gateway target's standing request for its images' exclusive locks, raised by the cores
/// and served by the failover thread (`control::failover`), which it wakes.
#[derive(Debug, Default)]
pub struct Takeover {
    requested: AtomicBool,
    /// The failover thread, set once it runs.
    serving: OnceLock<Thread>,
}

impl Takeover {
    /// Asks for the locks; wakes the failover thread on the first ask only, so a burst of
    /// writes costs one atomic swap each and one wake-up.
    pub fn request(&self) {
        if !self.requested.swap(true, Ordering::AcqRel) {
            if let Some(t) = self.serving.get() {
                t.unpark();
            }
        }
    }

    /// The failover thread takes the pending request, if any.
    pub fn take_request(&self) -> bool {
        self.requested.swap(false, Ordering::AcqRel)
    }

    /// Names the thread that serves requests (the calling one).
    pub fn serve_from_this_thread(&self) {
        let _ = self.serving.set(std::thread::current());
    }
}

/// The target port groups of one target.
#[derive(Debug)]
pub struct PortGroups {
    groups: Vec<PortGroup>,
    /// Gateway mode: where a write through an active/non-optimized port asks for the locks.
    takeover: Option<Takeover>,
}

impl PortGroups {
    /// Groups `(id, initial state)`; ids are unique (the configuration checks it).
    pub fn new(groups: &[(u16, AccessState)]) -> Self {
        PortGroups {
            groups: groups
                .iter()
                .map(|&(id, state)| PortGroup {
                    id,
                    state: AtomicU8::new(state as u8),
                })
                .collect(),
            takeover: None,
        }
    }

    /// A gateway target's groups: their states follow the exclusive locks of its images.
    pub fn gateway(groups: &[(u16, AccessState)]) -> Self {
        PortGroups {
            takeover: Some(Takeover::default()),
            ..Self::new(groups)
        }
    }

    /// The takeover requests of a gateway target.
    pub fn takeover(&self) -> Option<&Takeover> {
        self.takeover.as_ref()
    }

    /// One active/optimized group: a target without ALUA configuration.
    pub fn single(id: u16) -> Self {
        Self::new(&[(id, AccessState::ActiveOptimized)])
    }

    pub fn iter(&self) -> impl Iterator<Item = &PortGroup> {
        self.groups.iter()
    }

    pub fn ids(&self) -> Vec<u16> {
        self.groups.iter().map(|g| g.id).collect()
    }

    /// The state of the group of relative target port `port` (a port of no group of this
    /// target cannot carry a session; it reads as unavailable).
    pub fn state_of(&self, port: u16) -> AccessState {
        self.groups
            .iter()
            .find(|g| g.id == port)
            .map_or(AccessState::Unavailable, PortGroup::state)
    }

    /// Changes a group's state; false if there is no such group. Raising ASYMMETRIC ACCESS
    /// STATE CHANGED for the nexuses is the caller's part.
    pub fn set_state(&self, id: u16, state: AccessState) -> bool {
        match self.groups.iter().find(|g| g.id == id) {
            Some(g) => {
                g.state.store(state as u8, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

/// Whether a SYNCHRONIZE CACHE through relative target port `port` has nothing to flush and is
/// answered GOOD at once: a gateway's active/non-optimized port. Such a gateway has written
/// nothing (every write through it gets the transition until it owns the locks), so its cache
/// is clean, and a flush is no sign that the initiator has given up on the owner's paths:
/// Linux sends one to each path device of a multipath map (multipath-tools' udev rules run
/// `partx -d` on every path when the map is made, sd flushes each disk it removes at logout).
/// Taking the locks over for it would fence the owner at every login.
pub(super) fn nothing_to_flush(groups: &PortGroups, port: u16, cdb: Cdb) -> bool {
    groups.takeover().is_some()
        && matches!(
            cdb.opcode(),
            op::SYNCHRONIZE_CACHE_10 | op::SYNCHRONIZE_CACHE_16
        )
        && groups.state_of(port) == AccessState::ActiveNonOptimized
}

/// Whether relative target port `port` accepts the command (`changes_medium`: it writes or
/// changes the unit), else the NOT READY sense it gets. A gateway's active/non-optimized port
/// does not write: it asks for the takeover and answers ASYMMETRIC ACCESS STATE TRANSITION.
pub(super) fn check_port(
    groups: &PortGroups,
    port: u16,
    cdb: Cdb,
    changes_medium: bool,
) -> Result<(), Sense> {
    let state = groups.state_of(port);
    if let (AccessState::ActiveNonOptimized, Some(takeover), true) =
        (state, groups.takeover(), changes_medium)
    {
        takeover.request();
        return Err(Sense::not_accessible(0x0A));
    }
    check_access(state, cdb)
}

/// SPC-4: whether a port in `state` accepts the command, else the NOT READY sense it gets.
/// Standby accepts what manages the unit and its access (identification, mode pages,
/// reservations; log pages and diagnostics too, which this target does not implement);
/// unavailable and transitioning accept only identification and
/// the ALUA commands.
pub(super) fn check_access(state: AccessState, cdb: Cdb) -> Result<(), Sense> {
    let opcode = cdb.opcode();
    let identify = matches!(opcode, op::INQUIRY | op::REPORT_LUNS | op::REQUEST_SENSE)
        || is_report_target_port_groups(cdb);
    match state {
        AccessState::ActiveOptimized | AccessState::ActiveNonOptimized => Ok(()),
        AccessState::Standby
            if identify
                || matches!(
                    opcode,
                    op::MODE_SENSE_6
                        | op::MODE_SENSE_10
                        | op::MODE_SELECT_6
                        | op::MODE_SELECT_10
                        | op::PERSISTENT_RESERVE_IN
                        | op::PERSISTENT_RESERVE_OUT
                ) =>
        {
            Ok(())
        }
        AccessState::Standby => Err(Sense::not_accessible(0x0B)),
        _ if identify => Ok(()),
        AccessState::Unavailable => Err(Sense::not_accessible(0x0C)),
        AccessState::Transitioning => Err(Sense::not_accessible(0x0A)),
    }
}

fn is_report_target_port_groups(cdb: Cdb) -> bool {
    cdb.opcode() == op::MAINTENANCE_IN
        && cdb.len() > 1
        && cdb.u8(1) & 0x1F == super::cdb::SA_REPORT_TARGET_PORT_GROUPS
}

/// REPORT TARGET PORT GROUPS byte 1 bits 7..5: PARAMETER DATA FORMAT (000b length only,
/// 001b extended header).
const FORMAT_EXTENDED: u8 = 0b001;
/// Target port group descriptor byte 0: PREF (bit 7) is never claimed; byte 1: the states a
/// group may take: U_SUP, S_SUP, AN_SUP, AO_SUP. T_SUP stays clear because a group changes
/// state at once (never reports transitioning), O_SUP and LBD_SUP because those states do not
/// exist here.
const SUPPORTED_STATES: u8 = 0x08 | 0x04 | 0x02 | 0x01;
/// Byte 0 of an extended header: FORMAT TYPE 001b in bits 6..4.
const EXTENDED_HEADER: u8 = 0x10;
/// IMPLICIT TRANSITION TIME (seconds) reported in the extended header.
const IMPLICIT_TRANSITION_SECS: u8 = 10;

/// SPC-4 REPORT TARGET PORT GROUPS: one descriptor per group, each naming its one port.
pub(super) fn report_target_port_groups(groups: &PortGroups, cdb: Cdb) -> Result<Plan, Sense> {
    let format = cdb.u8(1) >> 5;
    if format > FORMAT_EXTENDED {
        return Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(7)));
    }
    let mut body = Vec::new();
    for g in groups.iter() {
        body.push(g.state() as u8);
        body.push(SUPPORTED_STATES);
        body.extend_from_slice(&g.id.to_be_bytes());
        body.push(0); // reserved
        body.push(0); // STATUS CODE: no status available
        body.push(0); // vendor specific
        body.push(1); // TARGET PORT COUNT
        body.extend_from_slice(&[0, 0]); // obsolete
        body.extend_from_slice(&g.id.to_be_bytes()); // RELATIVE TARGET PORT IDENTIFIER
    }
    let len = body.len() as u32;
    let mut d = Vec::with_capacity(8 + body.len());
    if format == FORMAT_EXTENDED {
        d.extend_from_slice(&len.to_be_bytes());
        d.extend_from_slice(&[EXTENDED_HEADER, IMPLICIT_TRANSITION_SECS, 0, 0]);
    } else {
        d.extend_from_slice(&len.to_be_bytes());
    }
    d.extend_from_slice(&body);
    Ok(data_in(d, cdb.be32(6)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtpg(format: u8, alloc: u32) -> [u8; 12] {
        let mut c = [0u8; 12];
        c[0] = op::MAINTENANCE_IN;
        c[1] = (format << 5) | super::super::cdb::SA_REPORT_TARGET_PORT_GROUPS;
        c[6..10].copy_from_slice(&alloc.to_be_bytes());
        c
    }

    fn data(plan: Plan) -> Vec<u8> {
        match plan {
            Plan::Complete(c) => c.data,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn both_formats_describe_every_group_and_its_port() {
        let groups =
            PortGroups::new(&[(1, AccessState::ActiveOptimized), (2, AccessState::Standby)]);
        let c = rtpg(0, 512);
        let d = data(report_target_port_groups(&groups, Cdb::new(&c)).unwrap());
        assert_eq!(u32::from_be_bytes(d[0..4].try_into().unwrap()), 24);
        assert_eq!(d.len(), 4 + 24);
        assert_eq!((d[4] & 0x0F, u16::from_be_bytes([d[6], d[7]])), (0, 1));
        assert_eq!(
            d[5], 0x0F,
            "U_SUP S_SUP AN_SUP AO_SUP; never transitioning (T_SUP)"
        );
        assert_eq!(d[11], 1, "one port");
        assert_eq!(u16::from_be_bytes([d[14], d[15]]), 1, "relative port 1");
        assert_eq!((d[16] & 0x0F, u16::from_be_bytes([d[18], d[19]])), (2, 2));

        let c = rtpg(1, 512);
        let d = data(report_target_port_groups(&groups, Cdb::new(&c)).unwrap());
        assert_eq!(d[4], EXTENDED_HEADER);
        assert_eq!(d.len(), 8 + 24);
        assert_eq!(u16::from_be_bytes([d[10], d[11]]), 1);

        let c = rtpg(2, 512);
        assert!(report_target_port_groups(&groups, Cdb::new(&c)).is_err());
        let c = rtpg(0, 6);
        assert_eq!(
            data(report_target_port_groups(&groups, Cdb::new(&c)).unwrap()).len(),
            6
        );
    }

    #[test]
    fn states_accept_what_spc4_allows_and_refuse_the_rest_with_not_ready() {
        let read = [op::READ_10, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        let inquiry = [op::INQUIRY, 0, 0, 0, 36, 0];
        let mode = [op::MODE_SENSE_6, 0, 0x3F, 0, 255, 0];
        let rtpg = rtpg(0, 64);
        for state in [
            AccessState::ActiveOptimized,
            AccessState::ActiveNonOptimized,
        ] {
            assert!(check_access(state, Cdb::new(&read)).is_ok());
        }
        let standby = check_access(AccessState::Standby, Cdb::new(&read)).unwrap_err();
        assert_eq!(standby.key, super::super::SenseKey::NOT_READY);
        assert_eq!((standby.asc, standby.ascq), (0x04, 0x0B));
        assert!(check_access(AccessState::Standby, Cdb::new(&mode)).is_ok());
        let gone = check_access(AccessState::Unavailable, Cdb::new(&mode)).unwrap_err();
        assert_eq!((gone.asc, gone.ascq), (0x04, 0x0C));
        for state in [
            AccessState::Standby,
            AccessState::Unavailable,
            AccessState::Transitioning,
        ] {
            assert!(check_access(state, Cdb::new(&inquiry)).is_ok());
            assert!(check_access(state, Cdb::new(&rtpg)).is_ok());
        }
    }

    #[test]
    fn a_state_change_is_seen_through_the_shared_groups() {
        let groups = PortGroups::single(7);
        assert_eq!(groups.state_of(7), AccessState::ActiveOptimized);
        assert_eq!(groups.state_of(8), AccessState::Unavailable);
        assert!(groups.set_state(7, AccessState::Standby));
        assert!(!groups.set_state(8, AccessState::Standby));
        assert_eq!(groups.state_of(7), AccessState::Standby);
    }

    #[test]
    fn a_gateway_write_through_a_non_optimized_port_asks_for_the_takeover() {
        let write = [op::WRITE_10, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        let read = [op::READ_10, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        let states = [
            (1, AccessState::ActiveOptimized),
            (2, AccessState::ActiveNonOptimized),
        ];
        let transition = Err(Sense::not_accessible(0x0A));

        let gw = PortGroups::gateway(&states);
        let takeover = gw.takeover().expect("a gateway has takeovers");
        assert_eq!(check_port(&gw, 2, Cdb::new(&read), false), Ok(()));
        assert!(!takeover.take_request(), "reads need no lock");
        assert_eq!(check_port(&gw, 1, Cdb::new(&write), true), Ok(()));
        assert!(!takeover.take_request(), "the owner writes");
        assert_eq!(check_port(&gw, 2, Cdb::new(&write), true), transition);
        assert_eq!(check_port(&gw, 2, Cdb::new(&write), true), transition);
        assert!(takeover.take_request(), "the follower asks");
        assert!(
            !takeover.take_request(),
            "once per request, however many writes"
        );
        gw.set_state(2, AccessState::ActiveOptimized);
        assert_eq!(check_port(&gw, 2, Cdb::new(&write), true), Ok(()));

        // Without gateway mode an active/non-optimized port writes as it is.
        let plain = PortGroups::new(&states);
        assert!(plain.takeover().is_none());
        assert_eq!(check_port(&plain, 2, Cdb::new(&write), true), Ok(()));
    }

    #[test]
    fn a_gateway_flush_through_a_non_optimized_port_has_nothing_to_flush() {
        let sync10 = [op::SYNCHRONIZE_CACHE_10, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut sync16 = [0u8; 16];
        sync16[0] = op::SYNCHRONIZE_CACHE_16;
        let write = [op::WRITE_10, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        let states = [
            (1, AccessState::ActiveOptimized),
            (2, AccessState::ActiveNonOptimized),
        ];
        let gw = PortGroups::gateway(&states);
        assert!(nothing_to_flush(&gw, 2, Cdb::new(&sync10)));
        assert!(nothing_to_flush(&gw, 2, Cdb::new(&sync16)));
        assert!(!nothing_to_flush(&gw, 2, Cdb::new(&write)));
        // The owner flushes what it wrote.
        assert!(!nothing_to_flush(&gw, 1, Cdb::new(&sync10)));
        // A fenced gateway's port refuses it (check_port), it is not answered here.
        gw.set_state(2, AccessState::Unavailable);
        assert!(!nothing_to_flush(&gw, 2, Cdb::new(&sync10)));
        // Without gateway mode every port flushes.
        let plain = PortGroups::new(&states);
        assert!(!nothing_to_flush(&plain, 2, Cdb::new(&sync10)));
    }
}
