//! Tests of the login state machine, driven with Login Request PDUs that go through the real
//! codec (encode → wire bytes → frame parse → decode), as the transport will feed them.

mod access;
mod chap;
mod garbage;
mod multipdu;
mod operational;
mod security;
mod stages;
mod walkthrough;

use super::*;
use std::net::{IpAddr, Ipv4Addr};

use crate::pdu::bhs::Opcode;
use crate::pdu::frame::{self, Digests};
use crate::pdu::login::{LoginRequest, LoginResponse, LoginStatus, Stage};
use crate::pdu::Bhs;

pub const SEC: Stage = Stage::SECURITY;
pub const OP: Stage = Stage::OPERATIONAL;
pub const FFP: Stage = Stage::FULL_FEATURE;

pub const DISK: &str = "iqn.2024-01.org.ringtgt:disk1";
pub const SECRET: &str = "iqn.2024-01.org.ringtgt:secret";
pub const GOOD: &str = "iqn.1994-05.com.redhat:good";

pub fn targets() -> Vec<TargetEntry> {
    vec![
        TargetEntry {
            name: DISK.into(),
            alias: Some("Disk One".into()),
            ..Default::default()
        },
        TargetEntry {
            name: SECRET.into(),
            allowed_initiators: vec![GOOD.into()],
            ..Default::default()
        },
    ]
}

/// The address test initiators connect from unless a test says otherwise.
pub const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 50));

/// A deterministic challenge source: bytes `seed, seed+1, …` on each call, so the identifier is
/// `seed` and the challenge starts at `seed+1`.
pub fn counting_source(seed: u8) -> impl ChallengeSource {
    move |buf: &mut [u8]| {
        let mut next = seed;
        for b in buf.iter_mut() {
            *b = next;
            next = next.wrapping_add(1);
        }
        Ok(())
    }
}

/// One connection's login, seen from a test initiator.
pub struct Harness {
    pub login: Login,
    pub targets: Vec<TargetEntry>,
    pub discovery_chap: Option<ChapPolicy>,
    pub peer: Option<IpAddr>,
    pub offer: TargetOffer,
    pub tpgt: u16,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub itt: u32,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_offer(TargetOffer::default())
    }

    pub fn with_offer(offer: TargetOffer) -> Self {
        Harness {
            login: Login::with_challenge_source(counting_source(0x10)),
            targets: targets(),
            discovery_chap: None,
            peer: Some(PEER),
            offer,
            tpgt: 1,
            isid: [0x40, 0x00, 0x01, 0x37, 0x00, 0x00],
            tsih: 0,
            cid: 0,
            cmd_sn: 0x1000,
            exp_stat_sn: 0x77,
            itt: 0x5,
        }
    }

    pub fn req(&self, csg: Stage, nsg: Stage, transit: bool, cont: bool) -> LoginRequest {
        LoginRequest {
            immediate: true,
            transit,
            cont,
            csg,
            nsg,
            version_max: 0,
            version_min: 0,
            isid: self.isid,
            tsih: self.tsih,
            itt: self.itt,
            cid: self.cid,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        }
    }

    /// Sends a request through the wire codec and returns the target's action, after checking
    /// that every response also survives the codec and respects the 8192-byte login limit.
    pub fn send(&mut self, req: LoginRequest, data: &[u8]) -> LoginAction {
        let mut wire = Vec::new();
        frame::encode(&mut wire, &req.encode(), &[], data, Digests::default());
        let (f, _) = frame::parse(&wire, Digests::default(), 1 << 24)
            .expect("valid frame")
            .expect("complete frame");
        assert_eq!(f.bhs.opcode(), Opcode::LOGIN_REQUEST);
        let decoded = LoginRequest::decode(&f.bhs);
        let env = LoginEnv {
            targets: &self.targets,
            portal_group_tag: self.tpgt,
            local: None,
            offer: &self.offer,
            discovery_chap: self.discovery_chap.as_ref(),
            peer: self.peer,
        };
        let action = self.login.handle(&env, &decoded, f.data);
        check_wire(&action);
        if let LoginAction::Respond(rsp, _) = &action {
            self.exp_stat_sn = rsp.stat_sn.wrapping_add(1);
        }
        self.itt = self.itt.wrapping_add(1);
        action
    }

    pub fn send_kv(
        &mut self,
        csg: Stage,
        nsg: Stage,
        transit: bool,
        kv: &[(&str, &str)],
    ) -> LoginAction {
        let req = self.req(csg, nsg, transit, false);
        self.send(req, &encode_pairs(kv))
    }

    /// A typical first security request (Linux-like), T=1 towards the operational stage.
    pub fn security(&mut self, target: &str) -> LoginAction {
        self.send_kv(
            SEC,
            OP,
            true,
            &[
                ("InitiatorName", GOOD),
                ("InitiatorAlias", "host1"),
                ("TargetName", target),
                ("SessionType", "Normal"),
                ("AuthMethod", "None"),
            ],
        )
    }
}

fn check_wire(action: &LoginAction) {
    let (rsp, data) = match action {
        LoginAction::Respond(r, d) | LoginAction::Fail(r, d, _) => (r, d),
        LoginAction::Ready(_) => return,
    };
    assert!(
        data.len() <= MAX_LOGIN_DATA,
        "login response of {} bytes",
        data.len()
    );
    let bhs: Bhs = rsp.encode();
    assert_eq!(LoginResponse::decode(&bhs), *rsp);
    assert!(!(rsp.cont && rsp.transit), "C and T both set in a response");
}

pub fn pairs(data: &[u8]) -> Vec<(String, String)> {
    parse_pairs(data).expect("target text is well-formed")
}

pub fn get(data: &[u8], key: &str) -> Option<String> {
    pairs(data)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

#[track_caller]
pub fn respond(action: LoginAction) -> (LoginResponse, Vec<u8>) {
    match action {
        LoginAction::Respond(r, d) => {
            assert_eq!(r.status, LoginStatus::SUCCESS);
            (r, d)
        }
        other => panic!("expected Respond, got {other:?}"),
    }
}

#[track_caller]
pub fn fail(action: LoginAction) -> (LoginResponse, Vec<u8>) {
    match action {
        LoginAction::Fail(r, d, reason) => {
            assert!(!reason.is_empty());
            assert!(!r.transit && !r.cont);
            assert_eq!((r.csg, r.nsg), (Stage(0), Stage(0)), "reserved in a reject");
            (r, d)
        }
        other => panic!("expected Fail, got {other:?}"),
    }
}

#[track_caller]
pub fn fail_status(action: LoginAction) -> LoginStatus {
    fail(action).0.status
}

#[track_caller]
pub fn ready(action: LoginAction) -> LoginOutcome {
    match action {
        LoginAction::Ready(o) => *o,
        other => panic!("expected Ready, got {other:?}"),
    }
}

/// Security (T=1 → operational) then an operational request with `kv` (T=1 → full feature).
pub fn to_operational(h: &mut Harness) {
    let (rsp, _) = respond(h.security(DISK));
    assert!(rsp.transit);
    assert_eq!(rsp.nsg, OP);
}
