//! Operational keys through the state machine (RFC 7143 §6.2, §13).

use super::*;

fn op_answer(h: &mut Harness, kv: &[(&str, &str)]) -> Vec<u8> {
    to_operational(h);
    respond(h.send_kv(OP, FFP, false, kv)).1
}

#[test]
fn target_declares_mrdsl_unasked_once() {
    let mut h = Harness::new();
    let data = op_answer(&mut h, &[]);
    assert_eq!(
        get(&data, "MaxRecvDataSegmentLength").as_deref(),
        Some("262144")
    );
    let (_, data) = respond(h.send_kv(OP, FFP, false, &[]));
    assert_eq!(get(&data, "MaxRecvDataSegmentLength"), None);
    let o = ready(h.send_kv(OP, FFP, true, &[]));
    assert_eq!(o.params.target_mrdsl, 262_144);
}

#[test]
fn never_negotiated_keys_keep_rfc_defaults() {
    let mut h = Harness::new();
    to_operational(&mut h);
    let p = ready(h.send_kv(OP, FFP, true, &[])).params;
    assert!(p.initial_r2t && p.immediate_data);
    assert_eq!(
        (p.max_burst_length, p.first_burst_length),
        (262_144, 65_536)
    );
    assert_eq!(p.max_outstanding_r2t, 1);
    assert_eq!(p.initiator_mrdsl, 8192);
    assert!(!p.header_digest && !p.data_digest);
    assert_eq!(p.error_recovery_level, 0);
}

#[test]
fn key_sent_twice_in_one_request_is_an_error() {
    let mut h = Harness::new();
    to_operational(&mut h);
    let st = fail_status(h.send_kv(
        OP,
        FFP,
        true,
        &[("MaxBurstLength", "65536"), ("MaxBurstLength", "65536")],
    ));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn key_sent_again_in_a_later_request_is_an_error() {
    let mut h = Harness::new();
    op_answer(&mut h, &[("HeaderDigest", "None")]);
    let st = fail_status(h.send_kv(OP, FFP, true, &[("HeaderDigest", "None")]));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn mrdsl_may_be_redeclared() {
    let mut h = Harness::new();
    op_answer(&mut h, &[("MaxRecvDataSegmentLength", "4096")]);
    let o = ready(h.send_kv(OP, FFP, true, &[("MaxRecvDataSegmentLength", "16384")]));
    assert_eq!(o.params.initiator_mrdsl, 16_384);
}

#[test]
fn target_only_keys_from_the_initiator_are_errors() {
    for key in ["TargetAlias", "TargetPortalGroupTag", "TargetAddress"] {
        let mut h = Harness::new();
        to_operational(&mut h);
        let st = fail_status(h.send_kv(OP, FFP, true, &[(key, "1")]));
        assert_eq!(st, LoginStatus::INITIATOR_ERROR, "{key}");
    }
}

#[test]
fn unknown_and_vendor_keys_are_not_understood() {
    let mut h = Harness::new();
    let data = op_answer(
        &mut h,
        &[
            ("X-com.example.foo", "1"),
            ("X#NodeArchitecture", "Linux"),
            ("FooBar", "x"),
            ("maxburstlength", "1"),
        ],
    );
    for k in [
        "X-com.example.foo",
        "X#NodeArchitecture",
        "FooBar",
        "maxburstlength",
    ] {
        assert_eq!(get(&data, k).as_deref(), Some("NotUnderstood"), "{k}");
    }
    // Unknown keys may repeat: they are not negotiated.
    respond(h.send_kv(OP, FFP, false, &[("FooBar", "y")]));
}

#[test]
fn discovery_answers_irrelevant_for_session_keys() {
    let mut h = Harness::new();
    respond(h.send_kv(
        SEC,
        OP,
        true,
        &[("InitiatorName", GOOD), ("SessionType", "Discovery")],
    ));
    let (_, data) = respond(h.send_kv(
        OP,
        FFP,
        false,
        &[
            ("MaxConnections", "1"),
            ("InitialR2T", "No"),
            ("ImmediateData", "Yes"),
            ("MaxBurstLength", "65536"),
            ("FirstBurstLength", "65536"),
            ("MaxOutstandingR2T", "1"),
            ("DataPDUInOrder", "Yes"),
            ("DataSequenceInOrder", "Yes"),
            ("TaskReporting", "RFC3720"),
            ("ErrorRecoveryLevel", "0"),
        ],
    ));
    for (k, v) in pairs(&data) {
        match k.as_str() {
            "ErrorRecoveryLevel" => assert_eq!(v, "0"),
            "MaxRecvDataSegmentLength" => assert_eq!(v, "262144"),
            _ => assert_eq!(v, "Irrelevant", "{k}"),
        }
    }
}

#[test]
fn malformed_values_are_rejected_and_defaults_kept() {
    let mut h = Harness::new();
    let data = op_answer(
        &mut h,
        &[
            ("MaxBurstLength", "0b AAAA"),
            ("MaxConnections", "0"),
            ("InitialR2T", "yes"),
            ("ErrorRecoveryLevel", "99999999999999999999999"),
            ("MaxRecvDataSegmentLength", "100"),
            ("FirstBurstLength", "0x"),
        ],
    );
    for k in [
        "MaxBurstLength",
        "MaxConnections",
        "InitialR2T",
        "ErrorRecoveryLevel",
        "FirstBurstLength",
    ] {
        assert_eq!(get(&data, k).as_deref(), Some("Reject"), "{k}");
    }
    assert!(pairs(&data).contains(&("MaxRecvDataSegmentLength".into(), "Reject".into())));
    let p = ready(h.send_kv(OP, FFP, true, &[])).params;
    assert_eq!(p.max_burst_length, 262_144);
    assert_eq!(p.initiator_mrdsl, 8192);
    assert!(p.initial_r2t);
}

#[test]
fn obsolete_marker_keys() {
    let mut h = Harness::new();
    let data = op_answer(
        &mut h,
        &[
            ("IFMarker", "No"),
            ("OFMarker", "Yes"),
            ("IFMarkInt", "2048~8192"),
            ("OFMarkInt", "1"),
        ],
    );
    assert_eq!(get(&data, "IFMarker").as_deref(), Some("No"));
    assert_eq!(get(&data, "OFMarker").as_deref(), Some("No"));
    assert_eq!(get(&data, "IFMarkInt").as_deref(), Some("Reject"));
    assert_eq!(get(&data, "OFMarkInt").as_deref(), Some("Reject"));
}

#[test]
fn task_reporting_and_protocol_level() {
    let mut h = Harness::new();
    let data = op_answer(
        &mut h,
        &[
            ("TaskReporting", "ResponseFence,RFC3720"),
            ("iSCSIProtocolLevel", "2"),
        ],
    );
    assert_eq!(get(&data, "TaskReporting").as_deref(), Some("RFC3720"));
    assert_eq!(get(&data, "iSCSIProtocolLevel").as_deref(), Some("1"));
    assert_eq!(
        ready(h.send_kv(OP, FFP, true, &[]))
            .params
            .iscsi_protocol_level,
        1
    );
}

#[test]
fn send_targets_during_login_is_rejected() {
    let mut h = Harness::new();
    let data = op_answer(&mut h, &[("SendTargets", "All")]);
    assert_eq!(get(&data, "SendTargets").as_deref(), Some("Reject"));
}

#[test]
fn first_burst_is_irrelevant_without_unsolicited_data() {
    let mut h = Harness::new();
    let data = op_answer(
        &mut h,
        &[
            ("FirstBurstLength", "65536"),
            ("InitialR2T", "Yes"),
            ("ImmediateData", "No"),
        ],
    );
    assert_eq!(
        get(&data, "FirstBurstLength").as_deref(),
        Some("Irrelevant")
    );
}

#[test]
fn required_digest_with_only_none_offered_fails() {
    let mut h = Harness::with_offer(TargetOffer {
        header_digest: DigestPolicy::Require,
        ..TargetOffer::default()
    });
    to_operational(&mut h);
    let (rsp, data) = fail(h.send_kv(OP, FFP, true, &[("HeaderDigest", "None")]));
    assert_eq!(rsp.status, LoginStatus::INITIATOR_ERROR);
    assert_eq!(get(&data, "HeaderDigest").as_deref(), Some("Reject"));
}

#[test]
fn required_digest_offered_by_the_target_when_not_sent() {
    let offer = TargetOffer {
        data_digest: DigestPolicy::Require,
        ..TargetOffer::default()
    };
    let mut h = Harness::with_offer(offer.clone());
    to_operational(&mut h);
    let (rsp, data) = respond(h.send_kv(OP, FFP, true, &[("HeaderDigest", "None")]));
    assert!(!rsp.transit, "target waits for the reply to its offer");
    assert_eq!(get(&data, "DataDigest").as_deref(), Some("CRC32C"));
    let o = ready(h.send_kv(OP, FFP, true, &[("DataDigest", "CRC32C")]));
    assert!(o.params.data_digest && !o.params.header_digest);

    let mut h = Harness::with_offer(offer.clone());
    to_operational(&mut h);
    respond(h.send_kv(OP, FFP, true, &[]));
    let (_, data) = fail(h.send_kv(OP, FFP, true, &[("DataDigest", "None")]));
    assert_eq!(get(&data, "DataDigest").as_deref(), Some("Reject"));

    let mut h = Harness::with_offer(offer);
    to_operational(&mut h);
    respond(h.send_kv(OP, FFP, true, &[]));
    let st = fail_status(h.send_kv(OP, FFP, true, &[]));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR, "offer ignored");
}

#[test]
fn restrictive_target_offers_its_limits() {
    let mut h = Harness::with_offer(TargetOffer {
        max_burst_length: 65_536,
        first_burst_length: 16_384,
        immediate_data: false,
        ..TargetOffer::default()
    });
    to_operational(&mut h);
    let (_, data) = respond(h.send_kv(OP, FFP, true, &[]));
    assert_eq!(get(&data, "MaxBurstLength").as_deref(), Some("65536"));
    assert_eq!(get(&data, "ImmediateData").as_deref(), Some("No"));
    assert_eq!(get(&data, "FirstBurstLength").as_deref(), Some("16384"));
    let p = ready(h.send_kv(
        OP,
        FFP,
        true,
        &[
            ("MaxBurstLength", "32768"),
            ("ImmediateData", "No"),
            ("FirstBurstLength", "8192"),
        ],
    ))
    .params;
    assert_eq!((p.max_burst_length, p.first_burst_length), (32_768, 8192));
    assert!(!p.immediate_data);
}

#[test]
fn first_burst_above_a_later_max_burst_fails_integrity() {
    let mut h = Harness::new();
    op_answer(&mut h, &[("FirstBurstLength", "262144")]);
    let st = fail_status(h.send_kv(OP, FFP, true, &[("MaxBurstLength", "65536")]));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn small_target_mrdsl_is_declared() {
    let mut h = Harness::with_offer(TargetOffer {
        max_recv_data_segment_length: 4096,
        ..TargetOffer::default()
    });
    let data = op_answer(&mut h, &[]);
    assert_eq!(
        get(&data, "MaxRecvDataSegmentLength").as_deref(),
        Some("4096")
    );
}
