//! Login (RFC 7143 §6, §11.12): security stage with AuthMethod=None, then operational
//! negotiation, then full-feature phase — or a single CSG=1→NSG=3 step when `skip_security` is set.
//! Keys given by a test override the defaults below; a key given with an empty value is left out.

use ringtgt::pdu::frame::Digests;
use ringtgt::pdu::login::{LoginRequest, LoginResponse, LoginStatus, Stage};
use ringtgt::pdu::Opcode;

use super::initiator::Initiator;
use super::keys::{self, Pairs};

/// Keys that belong to the security stage (RFC 7143 §13: the "leading/declarative" login keys).
const SECURITY_KEYS: &[&str] = &[
    "InitiatorName",
    "InitiatorAlias",
    "TargetName",
    "SessionType",
    "AuthMethod",
];

/// Keys the target declares without expecting an answer (RFC 7143 §13).
const DECLARATIVE: &[&str] = &[
    "TargetAlias",
    "TargetAddress",
    "TargetPortalGroupTag",
    "MaxRecvDataSegmentLength",
];

/// Our operational offer: ERL 0, both write modes allowed, large bursts.
const OPERATIONAL_DEFAULTS: &[(&str, &str)] = &[
    ("HeaderDigest", "None"),
    ("DataDigest", "None"),
    ("MaxRecvDataSegmentLength", "262144"),
    ("InitialR2T", "No"),
    ("ImmediateData", "Yes"),
    ("MaxBurstLength", "262144"),
    ("FirstBurstLength", "65536"),
    ("MaxOutstandingR2T", "1"),
    ("MaxConnections", "1"),
    ("DefaultTime2Wait", "2"),
    ("DefaultTime2Retain", "0"),
    ("ErrorRecoveryLevel", "0"),
    ("DataPDUInOrder", "Yes"),
    ("DataSequenceInOrder", "Yes"),
];

/// Discovery sessions negotiate only what the Text exchange needs.
const DISCOVERY_DEFAULTS: &[(&str, &str)] = &[
    ("HeaderDigest", "None"),
    ("DataDigest", "None"),
    ("MaxRecvDataSegmentLength", "262144"),
];

/// Bound on login round trips, so a target that never lets us proceed fails the test.
const MAX_EXCHANGES: usize = 16;

/// The outcome of operational negotiation, as the initiator must obey it.
#[derive(Debug, Clone)]
pub struct Negotiated {
    pub header_digest: bool,
    pub data_digest: bool,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    pub max_burst: u32,
    pub first_burst: u32,
    pub max_outstanding_r2t: u32,
    /// Largest data segment we may send: the target's declared MaxRecvDataSegmentLength.
    pub target_mrdsl: u32,
    /// Largest data segment the target may send us: what we declared.
    pub initiator_mrdsl: u32,
    /// Everything the target said during login, in order.
    pub target_keys: Pairs,
}

impl Default for Negotiated {
    /// RFC 7143 §13 defaults.
    fn default() -> Self {
        Negotiated {
            header_digest: false,
            data_digest: false,
            initial_r2t: true,
            immediate_data: true,
            max_burst: 262_144,
            first_burst: 65_536,
            max_outstanding_r2t: 1,
            target_mrdsl: 8192,
            initiator_mrdsl: 8192,
            target_keys: Vec::new(),
        }
    }
}

/// A login the target refused (status class ≠ 0).
#[derive(Debug, Clone)]
pub struct LoginFailure {
    pub status: LoginStatus,
    pub response: LoginResponse,
    pub keys: Pairs,
}

impl Initiator {
    /// Logs in and panics unless the target accepts. `target: None` is a discovery session.
    pub fn login(&mut self, target: Option<&str>, extra: &[(&str, &str)]) -> Negotiated {
        match self.try_login(target, extra) {
            Ok(n) => n,
            Err(f) => panic!(
                "login refused with status 0x{:02x}{:02x}, keys {:?}",
                f.status.class, f.status.detail, f.keys
            ),
        }
    }

    pub fn try_login(
        &mut self,
        target: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Result<Negotiated, LoginFailure> {
        self.params = Negotiated::default();
        let (security, operational) = self.login_keys(target, extra);
        let mut csg = if self.skip_security {
            Stage::OPERATIONAL
        } else {
            Stage::SECURITY
        };
        let mut pending = if self.skip_security {
            [security, operational.clone()].concat()
        } else {
            security
        };
        let itt = self.new_itt();
        for _ in 0..MAX_EXCHANGES {
            let nsg = if csg == Stage::SECURITY {
                Stage::OPERATIONAL
            } else {
                Stage::FULL_FEATURE
            };
            let (resp, said) = self.login_exchange(itt, csg, nsg, &pending)?;
            // Keys the target offered on its own need an answer; accepting its value is enough
            // for a test initiator.
            let mut next: Pairs = said
                .into_iter()
                .filter(|(k, _)| !DECLARATIVE.contains(&k.as_str()))
                .filter(|(k, _)| !pending.iter().any(|(p, _)| p == k))
                .collect();
            if !resp.transit {
                pending = next;
                continue;
            }
            if resp.nsg == Stage::FULL_FEATURE {
                return Ok(self.finish(&operational));
            }
            csg = resp.nsg;
            next.extend(operational.iter().cloned());
            pending = next;
        }
        panic!("login did not reach full-feature phase in {MAX_EXCHANGES} exchanges");
    }

    /// Sends one Login Request and gathers the whole response, following C-bit continuations.
    /// Returns the last response and the target's keys (also kept in `self.params.target_keys`).
    fn login_exchange(
        &mut self,
        itt: u32,
        csg: Stage,
        nsg: Stage,
        pairs: &[(String, String)],
    ) -> Result<(LoginResponse, Pairs), LoginFailure> {
        let mut data = keys::encode(pairs);
        let mut transit = true;
        let mut text = Vec::new();
        loop {
            let req = LoginRequest {
                immediate: true,
                transit,
                cont: false,
                csg,
                nsg: if transit { nsg } else { Stage(0) },
                version_max: self.version_max,
                version_min: self.version_min,
                isid: self.isid,
                tsih: self.tsih,
                itt,
                cid: self.cid,
                cmd_sn: self.cmd_sn,
                exp_stat_sn: self.exp_stat_sn,
            };
            self.send_pdu(&req.encode(), &[], &data);
            data.clear();
            let (bhs, seg) = self.recv_pdu();
            assert_eq!(
                bhs.opcode(),
                Opcode::LOGIN_RESPONSE,
                "login answered by {bhs:?}"
            );
            let resp = LoginResponse::decode(&bhs);
            text.extend_from_slice(&seg);
            if !resp.status.is_success() {
                return Err(LoginFailure {
                    status: resp.status,
                    response: resp,
                    keys: keys::decode(&text),
                });
            }
            assert_eq!(resp.itt, itt, "Login Response ITT");
            if resp.cont {
                // RFC 7143 §11.13.2: answer a partial response with an empty request, T=0.
                transit = false;
                continue;
            }
            self.tsih = resp.tsih;
            let pairs = keys::decode(&text);
            self.params.target_keys.extend(pairs.iter().cloned());
            return Ok((resp, pairs));
        }
    }

    /// Splits defaults plus the test's keys into the two stages' key lists.
    fn login_keys(&self, target: Option<&str>, extra: &[(&str, &str)]) -> (Pairs, Pairs) {
        let mut all: Pairs = vec![
            ("InitiatorName".into(), self.initiator_name.clone()),
            (
                "SessionType".into(),
                if target.is_some() {
                    "Normal"
                } else {
                    "Discovery"
                }
                .into(),
            ),
        ];
        if let Some(t) = target {
            all.push(("TargetName".into(), t.into()));
        }
        if !self.skip_security {
            all.push(("AuthMethod".into(), "None".into()));
        }
        let defaults = if target.is_some() {
            OPERATIONAL_DEFAULTS
        } else {
            DISCOVERY_DEFAULTS
        };
        all.extend(defaults.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        for (k, v) in extra {
            match all.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v.to_string(),
                None => all.push((k.to_string(), v.to_string())),
            }
        }
        all.retain(|(_, v)| !v.is_empty());
        all.into_iter()
            .partition(|(k, _)| SECURITY_KEYS.contains(&k.as_str()))
    }

    /// Computes the negotiated values from our offer and the target's answers, and switches on
    /// digests: RFC 7143 §13.1, they apply from the first PDU after the final Login Response.
    fn finish(&mut self, offered: &[(String, String)]) -> Negotiated {
        let said = std::mem::take(&mut self.params.target_keys);
        // The target's answer is the result; a key it left unanswered keeps the RFC default.
        let value = |key: &str| keys::get(&said, key);
        let flag = |key: &str, default: bool| value(key).map_or(default, |v| v == "Yes");
        let num =
            |key: &str, default: u32| value(key).and_then(|v| v.parse().ok()).unwrap_or(default);
        let d = Negotiated::default();
        let n = Negotiated {
            header_digest: value("HeaderDigest") == Some("CRC32C"),
            data_digest: value("DataDigest") == Some("CRC32C"),
            initial_r2t: flag("InitialR2T", d.initial_r2t),
            immediate_data: flag("ImmediateData", d.immediate_data),
            max_burst: num("MaxBurstLength", d.max_burst),
            first_burst: num("FirstBurstLength", d.first_burst),
            max_outstanding_r2t: num("MaxOutstandingR2T", d.max_outstanding_r2t),
            target_mrdsl: num("MaxRecvDataSegmentLength", d.target_mrdsl),
            initiator_mrdsl: keys::get(offered, "MaxRecvDataSegmentLength")
                .and_then(|v| v.parse().ok())
                .unwrap_or(d.initiator_mrdsl),
            target_keys: said,
        };
        self.conn.digests = Digests {
            header: n.header_digest,
            data: n.data_digest,
        };
        self.params = n.clone();
        n
    }
}
