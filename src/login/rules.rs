//! Result functions of the operational keys (RFC 7143 §13): how the target answers an initiator's
//! offer, and how it checks the initiator's reply to an offer the target made itself.
//!
//! After `Reject` a key keeps its default (RFC 7143 §6.2); where that default is unacceptable to
//! the target (e.g. HeaderDigest=None under `DigestPolicy::Require`) the login fails instead.

use super::error::LoginError;
use super::keys::Key;
use super::params::{
    DigestPolicy, SessionParams, TargetOffer, DEFAULT_FIRST_BURST_LENGTH, DEFAULT_MAX_BURST_LENGTH,
    DEFAULT_TIME2RETAIN, DEFAULT_TIME2WAIT, ISCSI_PROTOCOL_LEVEL, MAX_DATA_LENGTH,
    MAX_ERROR_RECOVERY_LEVEL, MAX_ISCSI_PROTOCOL_LEVEL, MAX_TIME2, MIN_DATA_LENGTH,
};
use super::text::encode_pairs;
use super::value::{bool_str, list_items, parse_bool, parse_in_range};

/// RFC 7143 §6.2: reserved answer constants.
pub const REJECT: &str = "Reject";
pub const IRRELEVANT: &str = "Irrelevant";
pub const NOT_UNDERSTOOD: &str = "NotUnderstood";

/// RFC 7143 §13.23: the only TaskReporting the target implements.
const TASK_REPORTING: &str = "RFC3720";

/// What the target answers to one offered key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Value(String),
    /// Declarative key: no answer.
    Silent,
}

impl Answer {
    fn num(v: impl ToString) -> Self {
        Answer::Value(v.to_string())
    }
    fn text(s: &str) -> Self {
        Answer::Value(s.to_string())
    }
}

fn failed(key: Key, reason: impl Into<String>) -> LoginError {
    LoginError::NegotiationFailed {
        key: key.name(),
        reason: reason.into(),
        answer: encode_pairs(&[(key.name(), REJECT)]),
    }
}

/// `Reject`, or a login failure when the key's default is not acceptable to the target.
fn reject_unless(default_ok: bool, key: Key, value: &str) -> Result<Answer, LoginError> {
    if default_ok {
        Ok(Answer::text(REJECT))
    } else {
        Err(failed(key, format!("unacceptable value {value:?}")))
    }
}

fn range_u32(v: &str, lo: u32, hi: u32) -> Option<u32> {
    parse_in_range(v, u64::from(lo), u64::from(hi)).and_then(|n| u32::try_from(n).ok())
}

fn range_u16(v: &str, lo: u16, hi: u16) -> Option<u16> {
    parse_in_range(v, u64::from(lo), u64::from(hi)).and_then(|n| u16::try_from(n).ok())
}

fn range_u8(v: &str, lo: u8, hi: u8) -> Option<u8> {
    parse_in_range(v, u64::from(lo), u64::from(hi)).and_then(|n| u8::try_from(n).ok())
}

/// Answers an operational key offered by the initiator, updating `p`.
pub fn answer_offer(
    key: Key,
    v: &str,
    o: &TargetOffer,
    p: &mut SessionParams,
) -> Result<Answer, LoginError> {
    match key {
        Key::HeaderDigest => digest(key, v, o.header_digest, &mut p.header_digest),
        Key::DataDigest => digest(key, v, o.data_digest, &mut p.data_digest),
        Key::MaxConnections => Ok(min_u16(
            v,
            1,
            u16::MAX,
            o.max_connections,
            &mut p.max_connections,
        )),
        Key::InitialR2T => Ok(bool_or(v, o.initial_r2t, &mut p.initial_r2t)),
        Key::ImmediateData => immediate_data(v, o, p),
        Key::MaxRecvDataSegmentLength => Ok(mrdsl(v, p)),
        Key::MaxBurstLength => max_burst(v, o, p),
        Key::FirstBurstLength => first_burst(v, o, p),
        Key::DefaultTime2Wait => time2wait(v, o, p),
        Key::DefaultTime2Retain => time2retain(v, o, p),
        Key::MaxOutstandingR2T => Ok(min_u16(
            v,
            1,
            u16::MAX,
            o.max_outstanding_r2t,
            &mut p.max_outstanding_r2t,
        )),
        Key::DataPduInOrder => Ok(bool_or(v, true, &mut p.data_pdu_in_order)),
        Key::DataSequenceInOrder => Ok(bool_or(v, true, &mut p.data_sequence_in_order)),
        Key::ErrorRecoveryLevel => Ok(error_recovery_level(v, o, p)),
        Key::TaskReporting => Ok(task_reporting(v)),
        Key::IscsiProtocolLevel => Ok(protocol_level(v, p)),
        Key::IfMarker | Key::OfMarker => Ok(marker(v)),
        // RFC 7143 §13.25: IFMarkInt/OFMarkInt MUST be answered Reject.
        Key::IfMarkInt | Key::OfMarkInt => Ok(Answer::text(REJECT)),
        // FFPO keys during login, and anything routed here by mistake.
        _ => Ok(Answer::text(REJECT)),
    }
}

/// RFC 7143 §13.1: list negotiation, the first digest in the initiator's list that the policy
/// allows. `Reject` when none; a failure when the default (None) is not allowed either.
fn digest(key: Key, v: &str, policy: DigestPolicy, out: &mut bool) -> Result<Answer, LoginError> {
    match list_items(v).find(|d| policy.accepts(d)) {
        Some(d) => {
            *out = d == "CRC32C";
            Ok(Answer::text(d))
        }
        None => reject_unless(policy.accepts("None"), key, v),
    }
}

/// Minimum result function (RFC 7143 §6.2.2) over a numerical range; malformed: `Reject`
/// (the defaults of the keys using this are the range minimum, always acceptable).
fn min_u16(v: &str, lo: u16, hi: u16, ours: u16, out: &mut u16) -> Answer {
    match range_u16(v, lo, hi) {
        Some(n) => {
            *out = n.min(ours);
            Answer::num(*out)
        }
        None => Answer::text(REJECT),
    }
}

/// OR result function (RFC 7143 §6.2.2). The default of every OR key is Yes, always acceptable.
fn bool_or(v: &str, ours: bool, out: &mut bool) -> Answer {
    match parse_bool(v) {
        Some(b) => {
            *out = b || ours;
            Answer::text(bool_str(*out))
        }
        None => Answer::text(REJECT),
    }
}

/// RFC 7143 §13.11: ImmediateData, AND; default Yes.
fn immediate_data(v: &str, o: &TargetOffer, p: &mut SessionParams) -> Result<Answer, LoginError> {
    match parse_bool(v) {
        Some(b) => {
            p.immediate_data = b && o.immediate_data;
            Ok(Answer::text(bool_str(p.immediate_data)))
        }
        None => reject_unless(o.immediate_data, Key::ImmediateData, v),
    }
}

/// RFC 7143 §13.12: declarative, 512..=2^24-1. Out of range: `Reject`, the default 8192 stays.
fn mrdsl(v: &str, p: &mut SessionParams) -> Answer {
    match range_u32(v, MIN_DATA_LENGTH, MAX_DATA_LENGTH) {
        Some(n) => {
            p.initiator_mrdsl = n;
            Answer::Silent
        }
        None => Answer::text(REJECT),
    }
}

/// RFC 7143 §13.13: Minimum.
fn max_burst(v: &str, o: &TargetOffer, p: &mut SessionParams) -> Result<Answer, LoginError> {
    match range_u32(v, MIN_DATA_LENGTH, MAX_DATA_LENGTH) {
        Some(n) => {
            p.max_burst_length = n.min(o.max_burst_length);
            Ok(Answer::num(p.max_burst_length))
        }
        None => reject_unless(
            o.max_burst_length >= DEFAULT_MAX_BURST_LENGTH,
            Key::MaxBurstLength,
            v,
        ),
    }
}

/// RFC 7143 §13.14: Minimum, never above MaxBurstLength; Irrelevant when InitialR2T=Yes and
/// ImmediateData=No.
fn first_burst(v: &str, o: &TargetOffer, p: &mut SessionParams) -> Result<Answer, LoginError> {
    if p.first_burst_irrelevant() {
        return Ok(Answer::text(IRRELEVANT));
    }
    let ours = o.first_burst_length.min(p.max_burst_length);
    match range_u32(v, MIN_DATA_LENGTH, MAX_DATA_LENGTH) {
        Some(n) => {
            p.first_burst_length = n.min(ours);
            Ok(Answer::num(p.first_burst_length))
        }
        None => reject_unless(ours >= DEFAULT_FIRST_BURST_LENGTH, Key::FirstBurstLength, v),
    }
}

/// RFC 7143 §13.15: Maximum over 0..=3600.
fn time2wait(v: &str, o: &TargetOffer, p: &mut SessionParams) -> Result<Answer, LoginError> {
    match range_u16(v, 0, MAX_TIME2) {
        Some(n) => {
            p.default_time2wait = n.max(o.default_time2wait);
            Ok(Answer::num(p.default_time2wait))
        }
        None => reject_unless(
            o.default_time2wait <= DEFAULT_TIME2WAIT,
            Key::DefaultTime2Wait,
            v,
        ),
    }
}

/// RFC 7143 §13.16: Minimum over 0..=3600.
fn time2retain(v: &str, o: &TargetOffer, p: &mut SessionParams) -> Result<Answer, LoginError> {
    match range_u16(v, 0, MAX_TIME2) {
        Some(n) => {
            p.default_time2retain = n.min(o.default_time2retain);
            Ok(Answer::num(p.default_time2retain))
        }
        None => reject_unless(
            o.default_time2retain >= DEFAULT_TIME2RETAIN,
            Key::DefaultTime2Retain,
            v,
        ),
    }
}

/// RFC 7143 §13.20: Minimum over 0..=2.
fn error_recovery_level(v: &str, o: &TargetOffer, p: &mut SessionParams) -> Answer {
    match range_u8(v, 0, MAX_ERROR_RECOVERY_LEVEL) {
        Some(n) => {
            p.error_recovery_level = n.min(o.error_recovery_level);
            Answer::num(p.error_recovery_level)
        }
        None => Answer::text(REJECT),
    }
}

/// RFC 7143 §13.23: list; the target implements only RFC3720 reporting.
fn task_reporting(v: &str) -> Answer {
    if list_items(v).any(|t| t == TASK_REPORTING) {
        Answer::text(TASK_REPORTING)
    } else {
        Answer::text(REJECT)
    }
}

/// RFC 7143 §13.24 / RFC 7144 §2.1: Minimum over 0..=31; the target is at level 1.
fn protocol_level(v: &str, p: &mut SessionParams) -> Answer {
    match range_u8(v, 0, MAX_ISCSI_PROTOCOL_LEVEL) {
        Some(n) => {
            p.iscsi_protocol_level = n.min(ISCSI_PROTOCOL_LEVEL);
            Answer::num(p.iscsi_protocol_level)
        }
        None => Answer::text(REJECT),
    }
}

/// RFC 7143 §13.25: IFMarker/OFMarker SHOULD be answered Reject and MAY be answered No. We answer
/// No, as LIO, tgt and FreeBSD ctld do (initiators written against RFC 3720 expect a boolean);
/// a value that is not a boolean gets Reject.
fn marker(v: &str) -> Answer {
    match parse_bool(v) {
        Some(_) => Answer::text("No"),
        None => Answer::text(REJECT),
    }
}

/// Checks the initiator's reply to a key the target offered itself (see
/// [`required_offer`]); the reply must be a legal outcome of the key's result function.
pub fn accept_reply(
    key: Key,
    v: &str,
    o: &TargetOffer,
    p: &mut SessionParams,
) -> Result<(), LoginError> {
    let bad = || failed(key, format!("reply {v:?} to the target's offer"));
    match key {
        Key::HeaderDigest if v == "CRC32C" => p.header_digest = true,
        Key::DataDigest if v == "CRC32C" => p.data_digest = true,
        Key::ImmediateData if v == "No" => p.immediate_data = false,
        Key::MaxBurstLength => {
            p.max_burst_length =
                range_u32(v, MIN_DATA_LENGTH, o.max_burst_length).ok_or_else(bad)?
        }
        Key::FirstBurstLength => {
            let ours = o.first_burst_length.min(p.max_burst_length);
            p.first_burst_length = range_u32(v, MIN_DATA_LENGTH, ours).ok_or_else(bad)?
        }
        Key::DefaultTime2Wait => {
            p.default_time2wait = range_u16(v, o.default_time2wait, MAX_TIME2).ok_or_else(bad)?
        }
        Key::DefaultTime2Retain => {
            p.default_time2retain = range_u16(v, 0, o.default_time2retain).ok_or_else(bad)?
        }
        _ => return Err(bad()),
    }
    Ok(())
}

/// The value the target must offer itself for `key` when the initiator never sent it and the
/// RFC default is not acceptable to the target (RFC 7143 §6.2: either side may originate).
/// Offers that would only improve performance are not made: some initiators (libiscsi) resend
/// their whole key set when the target answers T=0, which would then fail as a re-negotiation.
pub fn required_offer(key: Key, o: &TargetOffer, p: &SessionParams) -> Option<String> {
    let normal = p.session_type == super::params::SessionType::Normal;
    match key {
        Key::HeaderDigest if o.header_digest == DigestPolicy::Require => Some("CRC32C".into()),
        Key::DataDigest if o.data_digest == DigestPolicy::Require => Some("CRC32C".into()),
        Key::ImmediateData if normal && !o.immediate_data => Some("No".into()),
        Key::MaxBurstLength if normal && o.max_burst_length < p.max_burst_length => {
            Some(o.max_burst_length.to_string())
        }
        Key::FirstBurstLength if normal && !p.first_burst_irrelevant() => {
            let ours = o.first_burst_length.min(p.max_burst_length);
            (ours < p.first_burst_length).then(|| ours.to_string())
        }
        Key::DefaultTime2Wait if o.default_time2wait > p.default_time2wait => {
            Some(o.default_time2wait.to_string())
        }
        Key::DefaultTime2Retain if o.default_time2retain < p.default_time2retain => {
            Some(o.default_time2retain.to_string())
        }
        _ => None,
    }
}

/// Keys the target may have to offer itself, in the order it offers them.
pub const OFFERABLE: [Key; 7] = [
    Key::HeaderDigest,
    Key::DataDigest,
    Key::ImmediateData,
    Key::MaxBurstLength,
    Key::FirstBurstLength,
    Key::DefaultTime2Wait,
    Key::DefaultTime2Retain,
];

#[cfg(test)]
mod tests {
    use super::super::params::SessionType;
    use super::*;

    fn params() -> SessionParams {
        SessionParams::new(SessionType::Normal, "iqn.i".into())
    }

    fn ans(key: Key, v: &str, o: &TargetOffer) -> (Result<Answer, LoginError>, SessionParams) {
        let mut p = params();
        (answer_offer(key, v, o, &mut p), p)
    }

    fn val(s: &str) -> Result<Answer, LoginError> {
        Ok(Answer::Value(s.into()))
    }

    #[test]
    fn digest_takes_first_acceptable() {
        let o = TargetOffer::default();
        let (a, p) = ans(Key::HeaderDigest, "CRC32C,None", &o);
        assert_eq!(a, val("CRC32C"));
        assert!(p.header_digest);
        let (a, p) = ans(Key::DataDigest, "None,CRC32C", &o);
        assert_eq!(a, val("None"));
        assert!(!p.data_digest);
        let (a, _) = ans(Key::HeaderDigest, "X-foo,CRC32C", &o);
        assert_eq!(a, val("CRC32C"));
    }

    #[test]
    fn digest_policies_never_and_require() {
        let never = TargetOffer {
            header_digest: DigestPolicy::Never,
            ..TargetOffer::default()
        };
        assert_eq!(ans(Key::HeaderDigest, "CRC32C,None", &never).0, val("None"));
        assert_eq!(ans(Key::HeaderDigest, "CRC32C", &never).0, val("Reject"));
        let req = TargetOffer {
            data_digest: DigestPolicy::Require,
            ..TargetOffer::default()
        };
        assert_eq!(ans(Key::DataDigest, "None,CRC32C", &req).0, val("CRC32C"));
        let err = ans(Key::DataDigest, "None", &req).0.unwrap_err();
        assert_eq!(err.answer(), b"DataDigest=Reject\0");
        assert_eq!(err.status().class, 2);
    }

    #[test]
    fn numeric_result_functions() {
        let o = TargetOffer::default();
        assert_eq!(ans(Key::MaxBurstLength, "16776192", &o).0, val("1048576"));
        assert_eq!(ans(Key::MaxBurstLength, "65536", &o).0, val("65536"));
        assert_eq!(ans(Key::MaxConnections, "4", &o).0, val("1"));
        assert_eq!(ans(Key::MaxOutstandingR2T, "1", &o).0, val("1"));
        assert_eq!(ans(Key::MaxOutstandingR2T, "64", &o).0, val("8"));
        assert_eq!(ans(Key::DefaultTime2Wait, "0", &o).0, val("2"));
        assert_eq!(ans(Key::DefaultTime2Retain, "0", &o).0, val("0"));
        assert_eq!(ans(Key::ErrorRecoveryLevel, "2", &o).0, val("0"));
        assert_eq!(ans(Key::IscsiProtocolLevel, "2", &o).0, val("1"));
        assert_eq!(ans(Key::IscsiProtocolLevel, "0", &o).0, val("0"));
    }

    #[test]
    fn out_of_range_numbers_are_rejected() {
        let o = TargetOffer::default();
        for (k, v) in [
            (Key::MaxBurstLength, "511"),
            (Key::MaxBurstLength, "16777216"),
            (Key::MaxBurstLength, "0b AAAA"),
            (Key::MaxBurstLength, "99999999999999999999999"),
            (Key::FirstBurstLength, "0"),
            (Key::MaxConnections, "0"),
            (Key::MaxConnections, "65536"),
            (Key::DefaultTime2Wait, "3601"),
            (Key::ErrorRecoveryLevel, "3"),
            (Key::MaxOutstandingR2T, "0"),
            (Key::IscsiProtocolLevel, "32"),
        ] {
            assert_eq!(ans(k, v, &o).0, val("Reject"), "{k:?}={v}");
        }
    }

    #[test]
    fn hex_numbers_are_accepted() {
        let o = TargetOffer::default();
        assert_eq!(ans(Key::MaxBurstLength, "0x10000", &o).0, val("65536"));
    }

    #[test]
    fn booleans_or_and() {
        let o = TargetOffer::default();
        assert_eq!(ans(Key::InitialR2T, "No", &o).0, val("No"));
        assert_eq!(ans(Key::InitialR2T, "Yes", &o).0, val("Yes"));
        assert_eq!(ans(Key::ImmediateData, "Yes", &o).0, val("Yes"));
        assert_eq!(ans(Key::ImmediateData, "No", &o).0, val("No"));
        assert_eq!(ans(Key::DataPduInOrder, "No", &o).0, val("Yes"));
        assert_eq!(ans(Key::DataSequenceInOrder, "Maybe", &o).0, val("Reject"));
        let no_imm = TargetOffer {
            immediate_data: false,
            initial_r2t: true,
            ..TargetOffer::default()
        };
        assert_eq!(ans(Key::ImmediateData, "Yes", &no_imm).0, val("No"));
        assert_eq!(ans(Key::InitialR2T, "No", &no_imm).0, val("Yes"));
        assert!(ans(Key::ImmediateData, "yes", &no_imm).0.is_err());
    }

    #[test]
    fn first_burst_is_capped_by_max_burst_and_irrelevant_without_unsolicited_data() {
        let o = TargetOffer::default();
        let mut p = params();
        p.max_burst_length = 131_072;
        assert_eq!(
            answer_offer(Key::FirstBurstLength, "262144", &o, &mut p),
            val("131072")
        );
        p.initial_r2t = true;
        p.immediate_data = false;
        assert_eq!(
            answer_offer(Key::FirstBurstLength, "4096", &o, &mut p),
            val("Irrelevant")
        );
    }

    #[test]
    fn mrdsl_is_declarative() {
        let o = TargetOffer::default();
        let (a, p) = ans(Key::MaxRecvDataSegmentLength, "262144", &o);
        assert_eq!(a, Ok(Answer::Silent));
        assert_eq!(p.initiator_mrdsl, 262_144);
        let (a, p) = ans(Key::MaxRecvDataSegmentLength, "100", &o);
        assert_eq!(a, val("Reject"));
        assert_eq!(p.initiator_mrdsl, 8192);
    }

    #[test]
    fn obsolete_and_other_keys() {
        let o = TargetOffer::default();
        assert_eq!(ans(Key::IfMarker, "No", &o).0, val("No"));
        assert_eq!(ans(Key::OfMarker, "Yes", &o).0, val("No"));
        assert_eq!(ans(Key::OfMarker, "x", &o).0, val("Reject"));
        assert_eq!(ans(Key::IfMarkInt, "2048~8192", &o).0, val("Reject"));
        assert_eq!(
            ans(Key::TaskReporting, "FastAbort,RFC3720", &o).0,
            val("RFC3720")
        );
        assert_eq!(ans(Key::TaskReporting, "FastAbort", &o).0, val("Reject"));
        assert_eq!(ans(Key::SendTargets, "All", &o).0, val("Reject"));
    }

    #[test]
    fn required_offers_only_where_defaults_do_not_fit() {
        let p = params();
        let o = TargetOffer::default();
        assert!(OFFERABLE
            .iter()
            .all(|&k| required_offer(k, &o, &p).is_none()));
        let strict = TargetOffer {
            header_digest: DigestPolicy::Require,
            immediate_data: false,
            max_burst_length: 65_536,
            first_burst_length: 8192,
            default_time2wait: 5,
            default_time2retain: 0,
            ..TargetOffer::default()
        };
        let offers: Vec<_> = OFFERABLE
            .iter()
            .filter_map(|&k| required_offer(k, &strict, &p).map(|v| (k, v)))
            .collect();
        assert_eq!(
            offers,
            vec![
                (Key::HeaderDigest, "CRC32C".into()),
                (Key::ImmediateData, "No".into()),
                (Key::MaxBurstLength, "65536".into()),
                (Key::FirstBurstLength, "8192".into()),
                (Key::DefaultTime2Wait, "5".into()),
                (Key::DefaultTime2Retain, "0".into()),
            ]
        );
    }

    #[test]
    fn replies_to_target_offers_are_checked() {
        let o = TargetOffer {
            max_burst_length: 65_536,
            ..TargetOffer::default()
        };
        let mut p = params();
        assert!(accept_reply(Key::MaxBurstLength, "32768", &o, &mut p).is_ok());
        assert_eq!(p.max_burst_length, 32_768);
        assert!(accept_reply(Key::MaxBurstLength, "131072", &o, &mut p).is_err());
        assert!(accept_reply(Key::HeaderDigest, "None", &o, &mut p).is_err());
        assert!(accept_reply(Key::HeaderDigest, "CRC32C", &o, &mut p).is_ok());
        assert!(p.header_digest);
        assert!(accept_reply(Key::ImmediateData, "Reject", &o, &mut p).is_err());
    }
}
