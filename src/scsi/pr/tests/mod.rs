//! The reservation state machine driven through [`reserve_out`], [`reserve_in`] and the SPC-2
//! functions, one PERSISTENT RESERVE OUT parameter list at a time.

mod conflicts;
mod preempt;
mod register;
mod reserve;
mod status;
mod transport;

use super::*;
use crate::scsi::sense::Sense;
use crate::scsi::ua::UnitAttention;

pub(super) const WE: PrType = PrType::WRITE_EXCLUSIVE;
pub(super) const EA: PrType = PrType::EXCLUSIVE_ACCESS;
pub(super) const WE_RO: PrType = PrType::WRITE_EXCLUSIVE_REGISTRANTS_ONLY;
pub(super) const EA_RO: PrType = PrType::EXCLUSIVE_ACCESS_REGISTRANTS_ONLY;
pub(super) const WE_AR: PrType = PrType::WRITE_EXCLUSIVE_ALL_REGISTRANTS;
pub(super) const EA_AR: PrType = PrType::EXCLUSIVE_ACCESS_ALL_REGISTRANTS;

/// Basic parameter list byte 20 flags.
pub(super) const SPEC_I_PT: u8 = 0x08;
pub(super) const ALL_TG_PT: u8 = 0x04;
pub(super) const APTPL: u8 = 0x01;

/// Service actions.
pub(super) use super::out::service_action as sa;

pub(super) fn nexus(name: &str, isid: u8, port: u16) -> ItNexus {
    ItNexus {
        initiator: InitiatorPort::new(name, [0x40, 0, 0x01, 0x37, 0, isid]),
        relative_port: port,
    }
}

/// Initiator `iqn.1994-05.com.example:<name>`, session `isid`, through target port `port`.
pub(super) fn host(name: char, isid: u8, port: u16) -> ItNexus {
    nexus(&format!("iqn.1994-05.com.example:{name}"), isid, port)
}

/// Three hosts reaching the unit through target port 1.
pub(super) fn a() -> ItNexus {
    host('a', 1, 1)
}
pub(super) fn b() -> ItNexus {
    host('b', 1, 1)
}
pub(super) fn c() -> ItNexus {
    host('c', 1, 1)
}

pub(super) fn out_cdb(action: u8, kind: PrType, len: u32) -> [u8; 10] {
    let l = len.to_be_bytes();
    [0x5F, action, kind.0, 0, 0, l[0], l[1], l[2], l[3], 0]
}

/// The 24-byte basic parameter list.
pub(super) fn basic(key: u64, sa_key: u64, flags: u8) -> Vec<u8> {
    let mut p = vec![0u8; 24];
    p[..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[20] = flags;
    p
}

/// One logical unit reachable through target ports 1 and 2.
#[derive(Default)]
pub(super) struct Lu {
    pub state: PrState,
}

impl Lu {
    pub const PORTS: [u16; 2] = [1, 2];

    /// The first `n` of A, B and C registered with keys 1, 2 and 3.
    pub fn registered(n: usize) -> Lu {
        let mut lu = Lu::default();
        for (key, nexus) in [a(), b(), c()].iter().take(n).enumerate() {
            lu.register(nexus, key as u64 + 1);
        }
        lu
    }

    /// The type of the persistent reservation, if there is one.
    pub fn kind(&self) -> Option<PrType> {
        self.state.reservation().map(|r| r.kind)
    }

    /// The key `nexus` is registered with.
    pub fn key_of(&self, nexus: &ItNexus) -> Option<u64> {
        self.state.registration_of(nexus).map(|r| r.key)
    }

    /// PERSISTENT RESERVE OUT with a basic parameter list.
    pub fn out(
        &mut self,
        from: &ItNexus,
        action: u8,
        kind: PrType,
        key: u64,
        sa_key: u64,
        flags: u8,
    ) -> Result<OutEffects, Refusal> {
        let cdb = out_cdb(action, kind, 24);
        self.raw(from, &cdb, &basic(key, sa_key, flags))
    }

    pub fn raw(
        &mut self,
        from: &ItNexus,
        cdb: &[u8],
        params: &[u8],
    ) -> Result<OutEffects, Refusal> {
        let before = self.state.clone();
        let r = reserve_out(&mut self.state, from, cdb, params, &Self::PORTS);
        if r.is_err() {
            assert_eq!(self.state, before, "a refused command changed the state");
        }
        r
    }

    /// REGISTER AND IGNORE EXISTING KEY, which must succeed.
    pub fn register(&mut self, from: &ItNexus, key: u64) {
        self.out(from, sa::REGISTER_AND_IGNORE_EXISTING_KEY, WE, 0, key, 0)
            .expect("registered");
    }

    /// RESERVE, which must succeed.
    pub fn reserve(&mut self, from: &ItNexus, key: u64, kind: PrType) {
        self.out(from, sa::RESERVE, kind, key, 0, 0)
            .expect("reserved");
    }

    pub fn keys(&self) -> Vec<u64> {
        self.state.registrations().iter().map(|r| r.key).collect()
    }

    /// PERSISTENT RESERVE IN with the largest allocation length.
    pub fn read(&self, action: u8) -> Vec<u8> {
        reserve_in(&self.state, &[0x5E, action, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0]).expect("PR IN")
    }
}

/// Which of A, B and C a list of effects sends `ua` to.
pub(super) fn told(fx: &OutEffects, ua: UnitAttention) -> Vec<ItNexus> {
    [a(), b(), c()]
        .into_iter()
        .filter(|n| {
            fx.unit_attentions
                .iter()
                .any(|(t, u)| *u == ua && t.includes(n))
        })
        .collect()
}

pub(super) fn conflict<T: std::fmt::Debug>(r: Result<T, Refusal>) {
    assert!(
        matches!(r, Err(Refusal::Conflict)),
        "expected RESERVATION CONFLICT, got {r:?}"
    );
}

pub(super) fn refused_with<T: std::fmt::Debug>(r: Result<T, Refusal>) -> Sense {
    match r {
        Err(Refusal::Sense(s)) => s,
        other => panic!("expected CHECK CONDITION, got {other:?}"),
    }
}
