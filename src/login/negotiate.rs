//! Text negotiation across the requests of one login (RFC 7143 §6.2, §6.3): which key may come
//! when, duplicates, irrelevance, the target's own offers and the final integrity checks.

use std::sync::Arc;

use super::auth::Authenticator;
use super::chap::{ChallengeSource, ChapKeys, ChapPolicy};
use super::error::LoginError;
use super::keys::{is_auth_method_key, Key, KeySet, Sender, Usage};
use super::params::{SessionParams, SessionType, TargetOffer, DEFAULT_MRDSL};
use super::rules::{
    accept_reply, answer_offer, required_offer, Answer, IRRELEVANT, NOT_UNDERSTOOD, OFFERABLE,
};
use super::value::MAX_SIMPLE_VALUE_LEN;
use crate::pdu::login::Stage;

/// Answers accumulated for one response.
pub type Pairs = Vec<(String, String)>;

/// The negotiation state of one login, from its first complete request to full feature phase.
#[derive(Debug, Clone)]
pub struct Negotiation {
    pub params: SessionParams,
    offer: TargetOffer,
    /// Keys the initiator has sent (offered, declared or replied) during this login.
    seen: KeySet,
    /// Keys the target offered itself and still awaits a reply for.
    awaiting: KeySet,
    mrdsl_declared: bool,
    /// The CHAP policy this login must satisfy; None = no authentication required.
    chap: Option<Arc<ChapPolicy>>,
    auth: Option<Authenticator>,
    /// Whether the request being processed chose the method or moved its exchange on.
    auth_advanced: bool,
}

impl Negotiation {
    /// `params` carries the identity taken from the first request; the keys it came from count
    /// as already seen. `chap` is the policy that applies to this login, if any.
    pub fn new(
        params: SessionParams,
        offer: &TargetOffer,
        identity: KeySet,
        chap: Option<Arc<ChapPolicy>>,
    ) -> Self {
        Negotiation {
            params,
            offer: offer.clamped(),
            seen: identity,
            awaiting: KeySet::default(),
            mrdsl_declared: false,
            chap,
            auth: None,
            auth_advanced: false,
        }
    }

    /// Processes the pairs of one complete request received in `stage`, appending answers.
    /// `first` marks the login's first request, whose identity keys were already consumed.
    /// `challenges` supplies the randomness of an authentication exchange.
    pub fn process(
        &mut self,
        stage: Stage,
        pairs: &[(String, String)],
        first: bool,
        challenges: &mut dyn ChallengeSource,
        out: &mut Pairs,
    ) -> Result<(), LoginError> {
        let mut identity_left = if first { self.seen } else { KeySet::default() };
        let chosen_before = self.auth.is_some();
        self.auth_advanced = false;
        let mut method_keys = ChapKeys::default();
        for (k, v) in in_dependency_order(pairs) {
            match Key::lookup(k) {
                Some(key) if identity_left.contains(key) => identity_left.remove(key),
                Some(key) => self.process_key(stage, key, v, out)?,
                None if is_auth_method_key(k) => {
                    self.check_stage(stage, Usage::Security, k)?;
                    method_keys.insert(k, v)?;
                }
                None => out.push((k.clone(), NOT_UNDERSTOOD.into())),
            }
        }
        if method_keys.is_empty() {
            return Ok(());
        }
        self.run_method(chosen_before, &method_keys, challenges, out)
    }

    fn process_key(
        &mut self,
        stage: Stage,
        key: Key,
        v: &str,
        out: &mut Pairs,
    ) -> Result<(), LoginError> {
        let spec = key.spec();
        if spec.sender == Sender::Target {
            return Err(LoginError::protocol(format!(
                "initiator sent {}",
                spec.name
            )));
        }
        if self.awaiting.contains(key) {
            self.awaiting.remove(key);
            self.seen.insert(key);
            return accept_reply(key, v, &self.offer, &mut self.params);
        }
        self.check_repeat(key)?;
        self.check_stage(stage, spec.usage, spec.name)?;
        if spec.discovery_irrelevant && self.params.session_type == SessionType::Discovery {
            out.push((spec.name.into(), IRRELEVANT.into()));
            return Ok(());
        }
        self.answer(key, v, out)
    }

    /// RFC 7143 §6.2: a key may be negotiated or declared once per login; a repeat is answered
    /// with a login reject (initiator error). MaxRecvDataSegmentLength may be re-declared (the
    /// UNH-IOL reading, which conformance suites test).
    fn check_repeat(&mut self, key: Key) -> Result<(), LoginError> {
        if self.seen.contains(key) && key != Key::MaxRecvDataSegmentLength {
            return Err(LoginError::protocol(format!("{} sent twice", key.name())));
        }
        self.seen.insert(key);
        Ok(())
    }

    /// Security keys belong to the security stage, operational keys to the operational stage;
    /// declarative keys may come in either (RFC 7143 §6.3, §12, §13).
    fn check_stage(&self, stage: Stage, usage: Usage, name: &str) -> Result<(), LoginError> {
        let ok = match usage {
            Usage::Security => stage == Stage::SECURITY,
            Usage::Operational => stage == Stage::OPERATIONAL,
            Usage::Declarative | Usage::FullFeature => true,
        };
        if ok {
            Ok(())
        } else {
            Err(LoginError::protocol(format!(
                "{name} sent in stage {}",
                stage.0
            )))
        }
    }

    fn answer(&mut self, key: Key, v: &str, out: &mut Pairs) -> Result<(), LoginError> {
        let answer = match key {
            Key::AuthMethod => Answer::Value(self.select_auth(v)?.into()),
            Key::InitiatorName | Key::TargetName => Answer::Silent,
            Key::SessionType => self.late_session_type(v)?,
            Key::InitiatorAlias => self.alias(v)?,
            _ => answer_offer(key, v, &self.offer, &mut self.params)?,
        };
        if let Answer::Value(a) = answer {
            out.push((key.name().into(), a));
        }
        Ok(())
    }

    fn select_auth(&mut self, offered: &str) -> Result<&'static str, LoginError> {
        let auth = Authenticator::select(offered, self.chap.as_ref())?;
        let name = auth.method_name();
        self.auth = Some(auth);
        self.auth_advanced = true;
        Ok(name)
    }

    /// SessionType first sent after the first request: only a restatement of the default.
    fn late_session_type(&self, v: &str) -> Result<Answer, LoginError> {
        if SessionType::parse(v) == Some(self.params.session_type) {
            Ok(Answer::Silent)
        } else {
            Err(LoginError::protocol(format!(
                "SessionType {v:?} after the first request"
            )))
        }
    }

    fn alias(&mut self, v: &str) -> Result<Answer, LoginError> {
        if v.len() > MAX_SIMPLE_VALUE_LEN {
            return Err(LoginError::protocol("InitiatorAlias longer than 255 bytes"));
        }
        self.params.initiator_alias = Some(v.to_string());
        Ok(Answer::Silent)
    }

    /// Method keys are valid only once the target has answered AuthMethod, i.e. in a later
    /// request than the one that chose the method (RFC 7143 §12.1.3).
    fn run_method(
        &mut self,
        chosen_before: bool,
        keys: &ChapKeys,
        challenges: &mut dyn ChallengeSource,
        out: &mut Pairs,
    ) -> Result<(), LoginError> {
        match self.auth.as_mut() {
            Some(auth) if chosen_before => {
                auth.handle_keys(keys, challenges, out)?;
                self.auth_advanced = true;
                Ok(())
            }
            _ => Err(LoginError::protocol(format!(
                "{} before AuthMethod was answered",
                keys.first().unwrap_or("method key")
            ))),
        }
    }

    /// Whether the security stage may end: the chosen method finished, or none was chosen and
    /// no policy requires authentication.
    pub fn auth_complete(&self) -> bool {
        match &self.auth {
            Some(auth) => auth.is_complete(),
            None => self.chap.is_none(),
        }
    }

    /// Whether the last request chose the authentication method or moved its exchange on: an
    /// unfinished exchange that made progress is answered T=0, one that did not fails.
    pub fn auth_advanced(&self) -> bool {
        self.auth_advanced
    }

    /// RFC 7143 §13.12: the target declares its MaxRecvDataSegmentLength once, unasked, in its
    /// first operational-stage answer.
    pub fn declare_mrdsl(&mut self, out: &mut Pairs) {
        if !self.mrdsl_declared {
            self.mrdsl_declared = true;
            self.params.target_mrdsl = self.offer.max_recv_data_segment_length;
            let v = self.params.target_mrdsl.to_string();
            out.push((Key::MaxRecvDataSegmentLength.name().into(), v));
        }
    }

    /// Offers the keys whose defaults the target cannot accept and that the initiator never sent.
    /// Returns true when something was offered (the target must then wait for replies).
    pub fn offer_required(&mut self, out: &mut Pairs) -> bool {
        let mut offered = false;
        for key in OFFERABLE {
            if self.seen.contains(key) || self.awaiting.contains(key) {
                continue;
            }
            if let Some(v) = required_offer(key, &self.offer, &self.params) {
                out.push((key.name().into(), v));
                self.awaiting.insert(key);
                offered = true;
            }
        }
        offered
    }

    /// Whether a direct security → full feature transit must be turned into a visit to the
    /// operational stage (something must be offered, or an MRDSL below 8192 declared).
    pub fn needs_operational_stage(&self) -> bool {
        let something_to_offer = OFFERABLE.iter().any(|&k| {
            !self.seen.contains(k) && required_offer(k, &self.offer, &self.params).is_some()
        });
        something_to_offer || self.offer.max_recv_data_segment_length < DEFAULT_MRDSL
    }

    /// Checks before full feature phase: no offer left unanswered, and the integrity rule of
    /// RFC 7143 §13.14 (FirstBurstLength ≤ MaxBurstLength) holds.
    pub fn check_complete(&self) -> Result<(), LoginError> {
        if !self.awaiting.is_empty() {
            return Err(LoginError::protocol("no reply to the target's offer"));
        }
        let p = &self.params;
        let relevant = p.session_type == SessionType::Normal && !p.first_burst_irrelevant();
        if relevant && p.first_burst_length > p.max_burst_length {
            return Err(LoginError::NegotiationFailed {
                key: Key::FirstBurstLength.name(),
                reason: format!(
                    "FirstBurstLength {} exceeds MaxBurstLength {}",
                    p.first_burst_length, p.max_burst_length
                ),
                answer: Vec::new(),
            });
        }
        Ok(())
    }

    pub fn awaiting_replies(&self) -> bool {
        !self.awaiting.is_empty()
    }
}

/// Keys whose answers depend on others come last: FirstBurstLength needs InitialR2T,
/// ImmediateData and MaxBurstLength settled first (RFC 7143 §13.14).
fn in_dependency_order(pairs: &[(String, String)]) -> impl Iterator<Item = &(String, String)> {
    let late = |(k, _): &&(String, String)| k == Key::FirstBurstLength.name();
    pairs
        .iter()
        .filter(move |p| !late(p))
        .chain(pairs.iter().filter(late))
}

#[cfg(test)]
mod tests {
    use super::super::chap::OsRandom;
    use super::super::params::DigestPolicy;
    use super::*;

    fn nego(t: SessionType) -> Negotiation {
        let mut id = KeySet::default();
        id.insert(Key::InitiatorName);
        Negotiation::new(
            SessionParams::new(t, "iqn.i".into()),
            &TargetOffer::default(),
            id,
            None,
        )
    }

    fn pairs(kv: &[(&str, &str)]) -> Pairs {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn run(n: &mut Negotiation, stage: Stage, kv: &[(&str, &str)]) -> Result<Pairs, LoginError> {
        let mut out = Vec::new();
        n.process(stage, &pairs(kv), false, &mut OsRandom, &mut out)
            .map(|_| out)
    }

    #[test]
    fn first_burst_is_answered_after_max_burst_of_the_same_request() {
        let mut n = nego(SessionType::Normal);
        let out = run(
            &mut n,
            Stage::OPERATIONAL,
            &[("FirstBurstLength", "262144"), ("MaxBurstLength", "131072")],
        )
        .unwrap();
        assert_eq!(
            out,
            pairs(&[("MaxBurstLength", "131072"), ("FirstBurstLength", "131072")])
        );
        assert!(n.check_complete().is_ok());
    }

    #[test]
    fn later_smaller_max_burst_violates_integrity() {
        let mut n = nego(SessionType::Normal);
        run(
            &mut n,
            Stage::OPERATIONAL,
            &[("FirstBurstLength", "262144")],
        )
        .unwrap();
        run(&mut n, Stage::OPERATIONAL, &[("MaxBurstLength", "65536")]).unwrap();
        assert!(matches!(
            n.check_complete(),
            Err(LoginError::NegotiationFailed { .. })
        ));
    }

    #[test]
    fn identity_keys_of_the_first_request_are_skipped_once() {
        let mut n = nego(SessionType::Normal);
        let mut out = Vec::new();
        let kv = pairs(&[("InitiatorName", "iqn.i"), ("InitiatorName", "iqn.j")]);
        assert!(n
            .process(Stage::SECURITY, &kv, true, &mut OsRandom, &mut out)
            .is_err());
    }

    #[test]
    fn discovery_irrelevant_keys() {
        let mut n = nego(SessionType::Discovery);
        let out = run(
            &mut n,
            Stage::OPERATIONAL,
            &[
                ("MaxBurstLength", "1"),
                ("HeaderDigest", "None"),
                ("DefaultTime2Wait", "2"),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            pairs(&[
                ("MaxBurstLength", "Irrelevant"),
                ("HeaderDigest", "None"),
                ("DefaultTime2Wait", "2")
            ])
        );
    }

    #[test]
    fn target_offer_and_reply() {
        let mut n = Negotiation::new(
            SessionParams::new(SessionType::Normal, "iqn.i".into()),
            &TargetOffer {
                data_digest: DigestPolicy::Require,
                ..TargetOffer::default()
            },
            KeySet::default(),
            None,
        );
        assert!(n.needs_operational_stage());
        let mut out = Vec::new();
        assert!(n.offer_required(&mut out));
        assert_eq!(out, pairs(&[("DataDigest", "CRC32C")]));
        assert!(n.check_complete().is_err());
        run(&mut n, Stage::OPERATIONAL, &[("DataDigest", "CRC32C")]).unwrap();
        assert!(n.check_complete().is_ok());
        assert!(n.params.data_digest);
        assert!(!n.offer_required(&mut Vec::new()));
        // A second DataDigest is now a repeat.
        assert!(run(&mut n, Stage::OPERATIONAL, &[("DataDigest", "None")]).is_err());
    }

    #[test]
    fn mrdsl_declared_once() {
        let mut n = nego(SessionType::Normal);
        let mut out = Vec::new();
        n.declare_mrdsl(&mut out);
        n.declare_mrdsl(&mut out);
        assert_eq!(out, pairs(&[("MaxRecvDataSegmentLength", "262144")]));
        assert_eq!(n.params.target_mrdsl, 262_144);
    }
}
