//! First request, identity, access and the security stage (RFC 7143 §6.3.1, §12, §13.4-§13.9,
//! §13.21).

use super::*;

#[test]
fn first_response_carries_tpgt_and_alias() {
    let mut h = Harness::new();
    h.tpgt = 7;
    let (_, data) = respond(h.security(DISK));
    assert_eq!(get(&data, "TargetPortalGroupTag").as_deref(), Some("7"));
    assert_eq!(get(&data, "TargetAlias").as_deref(), Some("Disk One"));
    // Only the first response.
    let o = h.send_kv(OP, FFP, false, &[]);
    let (_, data) = respond(o);
    assert_eq!(get(&data, "TargetPortalGroupTag"), None);
}

#[test]
fn target_without_alias_sends_none() {
    let mut h = Harness::new();
    let (_, data) = respond(h.security(SECRET));
    assert_eq!(get(&data, "TargetAlias"), None);
    assert_eq!(get(&data, "TargetPortalGroupTag").as_deref(), Some("1"));
}

#[test]
fn missing_initiator_name_is_missing_parameter() {
    let mut h = Harness::new();
    let st = fail_status(h.send_kv(
        SEC,
        OP,
        true,
        &[("TargetName", DISK), ("AuthMethod", "None")],
    ));
    assert_eq!(st, LoginStatus::MISSING_PARAMETER);
}

#[test]
fn initiator_name_only_in_a_later_request_is_missing() {
    let mut h = Harness::new();
    let st = fail_status(h.send_kv(SEC, OP, false, &[("AuthMethod", "None")]));
    assert_eq!(st, LoginStatus::MISSING_PARAMETER);
}

#[test]
fn missing_target_name_in_normal_session_is_missing_parameter() {
    let mut h = Harness::new();
    let st = fail_status(h.send_kv(
        SEC,
        OP,
        true,
        &[("InitiatorName", GOOD), ("SessionType", "Normal")],
    ));
    assert_eq!(st, LoginStatus::MISSING_PARAMETER);
}

#[test]
fn unknown_target_is_not_found() {
    let mut h = Harness::new();
    let (rsp, data) = fail(h.security("iqn.2024-01.org.ringtgt:nope"));
    assert_eq!(rsp.status, LoginStatus::NOT_FOUND);
    assert!(data.is_empty());
}

#[test]
fn initiator_outside_the_acl_is_not_authorized() {
    let mut h = Harness::new();
    let st = fail_status(h.send_kv(
        SEC,
        OP,
        true,
        &[("InitiatorName", "iqn.evil"), ("TargetName", SECRET)],
    ));
    assert_eq!(st, LoginStatus::AUTHORIZATION_FAILURE);
    let mut h = Harness::new();
    respond(h.security(SECRET));
}

#[test]
fn discovery_accepts_and_ignores_target_name() {
    let mut h = Harness::new();
    let (_, data) = respond(h.send_kv(
        SEC,
        OP,
        true,
        &[
            ("InitiatorName", "iqn.anyone"),
            ("SessionType", "Discovery"),
            ("TargetName", "iqn.does-not-exist"),
            ("AuthMethod", "None"),
        ],
    ));
    assert_eq!(get(&data, "TargetPortalGroupTag").as_deref(), Some("1"));
    assert_eq!(get(&data, "TargetAlias"), None);
    let o = ready(h.send_kv(OP, FFP, true, &[]));
    assert_eq!(o.params.session_type, SessionType::Discovery);
    assert_eq!(o.params.target_name, None);
}

#[test]
fn unknown_session_type_is_not_supported() {
    let mut h = Harness::new();
    let st = fail_status(h.send_kv(
        SEC,
        OP,
        true,
        &[("InitiatorName", GOOD), ("SessionType", "Magic")],
    ));
    assert_eq!(st, LoginStatus::SESSION_TYPE_NOT_SUPPORTED);
}

#[test]
fn session_type_defaults_to_normal() {
    let mut h = Harness::new();
    to_operational(&mut h);
    let o = ready(h.send_kv(OP, FFP, true, &[]));
    assert_eq!(o.params.session_type, SessionType::Normal);
    assert_eq!(o.params.initiator_alias.as_deref(), Some("host1"));
}

#[test]
fn chap_or_none_selects_none() {
    let mut h = Harness::new();
    let (_, data) = respond(h.send_kv(
        SEC,
        OP,
        true,
        &[
            ("InitiatorName", GOOD),
            ("TargetName", DISK),
            ("AuthMethod", "CHAP,None"),
        ],
    ));
    assert_eq!(get(&data, "AuthMethod").as_deref(), Some("None"));
}

#[test]
fn chap_only_is_rejected_with_authentication_failure() {
    let mut h = Harness::new();
    let (rsp, data) = fail(h.send_kv(
        SEC,
        OP,
        true,
        &[
            ("InitiatorName", GOOD),
            ("TargetName", DISK),
            ("AuthMethod", "CHAP"),
        ],
    ));
    assert_eq!(rsp.status, LoginStatus::AUTHENTICATION_FAILURE);
    assert_eq!(get(&data, "AuthMethod").as_deref(), Some("Reject"));
}

#[test]
fn operational_key_in_security_stage_is_an_error() {
    let mut h = Harness::new();
    let st = fail_status(h.send_kv(
        SEC,
        OP,
        true,
        &[
            ("InitiatorName", GOOD),
            ("TargetName", DISK),
            ("MaxBurstLength", "65536"),
        ],
    ));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn declarative_mrdsl_is_fine_in_security_stage() {
    let mut h = Harness::new();
    respond(h.send_kv(
        SEC,
        OP,
        true,
        &[
            ("InitiatorName", GOOD),
            ("TargetName", DISK),
            ("MaxRecvDataSegmentLength", "65536"),
        ],
    ));
    let o = ready(h.send_kv(OP, FFP, true, &[]));
    assert_eq!(o.params.initiator_mrdsl, 65_536);
}

#[test]
fn auth_method_in_operational_stage_is_an_error() {
    let mut h = Harness::new();
    let st = fail_status(h.send_kv(
        OP,
        FFP,
        true,
        &[
            ("InitiatorName", GOOD),
            ("TargetName", DISK),
            ("AuthMethod", "None"),
        ],
    ));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn chap_keys_without_chap_are_an_error() {
    let mut h = Harness::new();
    respond(h.send_kv(
        SEC,
        OP,
        false,
        &[
            ("InitiatorName", GOOD),
            ("TargetName", DISK),
            ("AuthMethod", "None"),
        ],
    ));
    let st = fail_status(h.send_kv(SEC, OP, false, &[("CHAP_A", "5")]));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
    let mut h = Harness::new();
    let st = fail_status(h.send_kv(
        SEC,
        OP,
        false,
        &[
            ("InitiatorName", GOOD),
            ("TargetName", DISK),
            ("CHAP_A", "5"),
        ],
    ));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn identity_keys_may_not_be_redeclared() {
    for kv in [
        ("InitiatorName", GOOD),
        ("TargetName", DISK),
        ("SessionType", "Normal"),
        ("InitiatorAlias", "again"),
    ] {
        let mut h = Harness::new();
        to_operational(&mut h);
        let st = fail_status(h.send_kv(OP, FFP, true, &[kv]));
        assert_eq!(st, LoginStatus::INITIATOR_ERROR, "{kv:?}");
    }
}

#[test]
fn initiator_alias_may_come_later_once() {
    let mut h = Harness::new();
    respond(h.send_kv(
        SEC,
        OP,
        true,
        &[("InitiatorName", GOOD), ("TargetName", DISK)],
    ));
    let o = ready(h.send_kv(OP, FFP, true, &[("InitiatorAlias", "late")]));
    assert_eq!(o.params.initiator_alias.as_deref(), Some("late"));
}

#[test]
fn duplicate_identity_key_in_the_first_request_is_an_error() {
    let mut h = Harness::new();
    let st = fail_status(h.send_kv(
        SEC,
        OP,
        true,
        &[
            ("InitiatorName", GOOD),
            ("TargetName", DISK),
            ("TargetName", SECRET),
        ],
    ));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn overlong_names_are_refused() {
    let long = format!("iqn.{}", "a".repeat(300));
    let mut h = Harness::new();
    let st = fail_status(h.send_kv(
        SEC,
        OP,
        true,
        &[("InitiatorName", &long), ("TargetName", DISK)],
    ));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}
