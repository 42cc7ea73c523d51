//! Stage transitions, header fields and flag rules (RFC 7143 §6.3, §11.12, §11.13).

use super::*;

#[test]
fn security_then_operational_then_full_feature() {
    let mut h = Harness::new();
    let (rsp, data) = respond(h.security(DISK));
    assert!(rsp.transit && !rsp.cont);
    assert_eq!((rsp.csg, rsp.nsg), (SEC, OP));
    assert_eq!(get(&data, "AuthMethod").as_deref(), Some("None"));
    let outcome = ready(h.send_kv(OP, FFP, true, &[("MaxRecvDataSegmentLength", "65536")]));
    assert_eq!(outcome.params.initiator_mrdsl, 65_536);
    let (fin, data) = h.login.accept(9, 0x1000 + 31);
    assert!(fin.transit && !fin.cont);
    assert_eq!((fin.csg, fin.nsg), (OP, FFP));
    assert_eq!(fin.tsih, 9);
    assert_eq!(fin.max_cmd_sn, 0x1000 + 31);
    assert_eq!(
        get(&data, "MaxRecvDataSegmentLength").as_deref(),
        Some("262144")
    );
}

#[test]
fn starting_in_operational_stage_is_allowed() {
    let mut h = Harness::new();
    let o = ready(h.send_kv(
        OP,
        FFP,
        true,
        &[("InitiatorName", GOOD), ("TargetName", DISK)],
    ));
    assert_eq!(o.params.target_name.as_deref(), Some(DISK));
}

#[test]
fn security_straight_to_full_feature_when_nothing_to_negotiate() {
    let mut h = Harness::new();
    let o = ready(h.send_kv(
        SEC,
        FFP,
        true,
        &[
            ("InitiatorName", GOOD),
            ("TargetName", DISK),
            ("AuthMethod", "None"),
        ],
    ));
    assert_eq!(o.params, {
        let mut p = SessionParams::new(SessionType::Normal, GOOD.into());
        p.target_name = Some(DISK.into());
        p
    });
    let (fin, _) = h.login.accept(1, 0x1000);
    assert_eq!((fin.csg, fin.nsg), (SEC, FFP));
}

#[test]
fn security_to_full_feature_visits_operational_when_the_target_must_offer() {
    let mut h = Harness::with_offer(TargetOffer {
        header_digest: DigestPolicy::Require,
        ..TargetOffer::default()
    });
    let (rsp, _) = respond(h.send_kv(
        SEC,
        FFP,
        true,
        &[
            ("InitiatorName", GOOD),
            ("TargetName", DISK),
            ("AuthMethod", "None"),
        ],
    ));
    assert!(rsp.transit);
    assert_eq!(rsp.nsg, OP, "target lowers NSG to negotiate");
    let (rsp, data) = respond(h.send_kv(OP, FFP, true, &[]));
    assert!(!rsp.transit);
    assert_eq!(get(&data, "HeaderDigest").as_deref(), Some("CRC32C"));
    let o = ready(h.send_kv(OP, FFP, true, &[("HeaderDigest", "CRC32C")]));
    assert!(o.params.header_digest);
}

#[test]
fn target_answers_t0_to_t0() {
    let mut h = Harness::new();
    let (rsp, _) = respond(h.send_kv(
        SEC,
        OP,
        false,
        &[("InitiatorName", GOOD), ("TargetName", DISK)],
    ));
    assert!(!rsp.transit);
    assert_eq!(rsp.csg, SEC);
    let (rsp, _) = respond(h.send_kv(SEC, OP, false, &[("AuthMethod", "None")]));
    assert!(!rsp.transit);
    let (rsp, _) = respond(h.send_kv(SEC, OP, true, &[]));
    assert!(rsp.transit);
    let (rsp, _) = respond(h.send_kv(OP, FFP, false, &[("MaxBurstLength", "65536")]));
    assert!(!rsp.transit);
    ready(h.send_kv(OP, FFP, true, &[]));
}

#[test]
fn reserved_nsg_and_backward_transits_are_initiator_errors() {
    for (csg, nsg) in [
        (SEC, Stage(2)),
        (OP, Stage(2)),
        (OP, OP),
        (SEC, SEC),
        (OP, SEC),
    ] {
        let mut h = Harness::new();
        let st = fail_status(h.send_kv(
            csg,
            nsg,
            true,
            &[("InitiatorName", GOOD), ("TargetName", DISK)],
        ));
        assert_eq!(st, LoginStatus::INITIATOR_ERROR, "{csg:?}->{nsg:?}");
    }
}

#[test]
fn nsg_is_ignored_without_transit() {
    let mut h = Harness::new();
    respond(h.send_kv(
        SEC,
        Stage(2),
        false,
        &[("InitiatorName", GOOD), ("TargetName", DISK)],
    ));
}

#[test]
fn csg_full_feature_or_reserved_is_an_error() {
    for csg in [Stage(2), FFP] {
        let mut h = Harness::new();
        let st = fail_status(h.send_kv(
            csg,
            FFP,
            false,
            &[("InitiatorName", GOOD), ("TargetName", DISK)],
        ));
        assert_eq!(st, LoginStatus::INITIATOR_ERROR);
    }
}

#[test]
fn c_and_t_together_are_an_error() {
    let mut h = Harness::new();
    let req = h.req(SEC, OP, true, true);
    let st = fail_status(h.send(req, &encode_pairs(&[("InitiatorName", GOOD)])));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn version_min_above_zero_is_unsupported() {
    let mut h = Harness::new();
    let mut req = h.req(SEC, OP, true, false);
    req.version_min = 1;
    req.version_max = 2;
    let st = fail_status(h.send(
        req,
        &encode_pairs(&[("InitiatorName", GOOD), ("TargetName", DISK)]),
    ));
    assert_eq!(st, LoginStatus::UNSUPPORTED_VERSION);
}

#[test]
fn version_max_above_zero_is_fine() {
    let mut h = Harness::new();
    let mut req = h.req(SEC, OP, true, false);
    req.version_max = 3;
    let (rsp, _) = respond(h.send(
        req,
        &encode_pairs(&[("InitiatorName", GOOD), ("TargetName", DISK)]),
    ));
    assert_eq!((rsp.version_max, rsp.version_active), (0, 0));
}

#[test]
fn isid_tsih_or_cid_change_is_an_initiator_error() {
    for change in 0..3 {
        let mut h = Harness::new();
        respond(h.send_kv(
            SEC,
            OP,
            false,
            &[("InitiatorName", GOOD), ("TargetName", DISK)],
        ));
        match change {
            0 => h.isid[5] ^= 1,
            1 => h.tsih = 7,
            _ => h.cid = 1,
        }
        let st = fail_status(h.send_kv(SEC, OP, true, &[("AuthMethod", "None")]));
        assert_eq!(st, LoginStatus::INITIATOR_ERROR, "change {change}");
    }
}

#[test]
fn going_back_to_security_is_an_error() {
    let mut h = Harness::new();
    to_operational(&mut h);
    let st = fail_status(h.send_kv(SEC, OP, true, &[]));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn failure_is_sticky() {
    let mut h = Harness::new();
    fail(h.send_kv(SEC, OP, true, &[("TargetName", DISK)]));
    let st = fail_status(h.security(DISK));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn stat_sn_starts_at_exp_stat_sn_and_each_response_consumes_one() {
    let mut h = Harness::new();
    h.exp_stat_sn = 0xffff_fffe;
    let (r1, _) = respond(h.security(DISK));
    assert_eq!(r1.stat_sn, 0xffff_fffe);
    assert_eq!((r1.exp_cmd_sn, r1.max_cmd_sn), (0x1000, 0x1000));
    assert_eq!(r1.itt, 0x5);
    assert_eq!(r1.isid, h.isid);
    assert_eq!(r1.tsih, 0);
    let o = ready(h.send_kv(OP, FFP, true, &[]));
    assert_eq!(o.cmd_sn, 0x1000);
    let (fin, _) = h.login.accept(0x22, 0x1040);
    assert_eq!(fin.stat_sn, 0xffff_ffff);
    assert_eq!(fin.exp_cmd_sn, 0x1000);
    assert_eq!(fin.itt, 0x6);
    assert_eq!(h.login.next_stat_sn(), 0);
}

#[test]
fn outcome_carries_the_connection_identity() {
    let mut h = Harness::new();
    h.tsih = 0x33;
    h.cid = 4;
    to_operational(&mut h);
    let o = ready(h.send_kv(OP, FFP, true, &[]));
    assert_eq!((o.isid, o.tsih, o.cid), (h.isid, 0x33, 4));
}

#[test]
fn request_while_registering_is_an_error() {
    let mut h = Harness::new();
    to_operational(&mut h);
    ready(h.send_kv(OP, FFP, true, &[]));
    let st = fail_status(h.send_kv(OP, FFP, true, &[]));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn request_after_full_feature_is_an_error() {
    let mut h = Harness::new();
    to_operational(&mut h);
    ready(h.send_kv(OP, FFP, true, &[]));
    h.login.accept(1, 1);
    fail(h.send_kv(OP, FFP, true, &[]));
}

#[test]
fn refuse_sends_the_given_status() {
    let mut h = Harness::new();
    to_operational(&mut h);
    ready(h.send_kv(OP, FFP, true, &[]));
    let (rsp, data) = h.login.refuse(LoginStatus::TOO_MANY_CONNECTIONS);
    assert_eq!(rsp.status, LoginStatus::TOO_MANY_CONNECTIONS);
    assert!(!rsp.transit && data.is_empty());
    fail(h.send_kv(OP, FFP, true, &[]));
}

#[test]
fn accept_outside_ready_is_a_target_error() {
    let mut h = Harness::new();
    let (rsp, _) = h.login.accept(1, 1);
    assert_eq!(rsp.status, LoginStatus::TARGET_ERROR);
    let mut h = Harness::new();
    to_operational(&mut h);
    let (rsp, _) = h.login.accept(1, 1);
    assert_eq!(rsp.status, LoginStatus::TARGET_ERROR);
}

#[test]
fn a_login_request_without_the_immediate_bit_is_an_initiator_error() {
    let mut h = Harness::new();
    let mut req = h.req(SEC, OP, true, false);
    req.immediate = false;
    let text = encode_pairs(&[("InitiatorName", GOOD), ("TargetName", DISK)]);
    match h.send(req, &text) {
        LoginAction::Fail(rsp, _, _) => assert_eq!(rsp.status, LoginStatus::INITIATOR_ERROR),
        other => panic!("{other:?}"),
    }
}
