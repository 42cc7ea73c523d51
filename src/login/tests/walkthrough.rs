//! Whole logins as real initiators perform them.

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// Linux open-iscsi (iscsid): security stage with AuthMethod=None, then its full operational
/// key set (iscsid.conf defaults), then the final response.
#[test]
fn linux_open_iscsi_login() {
    let mut h = Harness::new();
    let (r1, d1) = respond(h.send_kv(
        SEC,
        OP,
        true,
        &[
            ("InitiatorName", GOOD),
            ("InitiatorAlias", "node1"),
            ("TargetName", DISK),
            ("SessionType", "Normal"),
            ("AuthMethod", "None"),
        ],
    ));
    assert!(r1.transit && r1.nsg == OP);
    assert_eq!(
        pairs(&d1),
        vec![
            ("TargetPortalGroupTag".into(), "1".into()),
            ("TargetAlias".into(), "Disk One".into()),
            ("AuthMethod".into(), "None".into()),
        ]
    );
    let outcome = ready(h.send_kv(
        OP,
        FFP,
        true,
        &[
            ("HeaderDigest", "None"),
            ("DataDigest", "None"),
            ("DefaultTime2Wait", "2"),
            ("DefaultTime2Retain", "0"),
            ("IFMarker", "No"),
            ("OFMarker", "No"),
            ("ErrorRecoveryLevel", "0"),
            ("InitialR2T", "No"),
            ("ImmediateData", "Yes"),
            ("MaxBurstLength", "16776192"),
            ("FirstBurstLength", "262144"),
            ("MaxOutstandingR2T", "1"),
            ("MaxConnections", "1"),
            ("DataPDUInOrder", "Yes"),
            ("DataSequenceInOrder", "Yes"),
            ("MaxRecvDataSegmentLength", "262144"),
        ],
    ));
    let (fin, data) = h.login.accept(0x0101, 0x1000 + 127);
    assert!(fin.transit && fin.csg == OP && fin.nsg == FFP);
    assert_eq!(fin.status, LoginStatus::SUCCESS);
    assert_eq!(fin.stat_sn, r1.stat_sn + 1);
    assert_eq!(h.login.next_stat_sn(), fin.stat_sn + 1);
    assert_eq!(
        (fin.tsih, fin.exp_cmd_sn, fin.max_cmd_sn),
        (0x0101, 0x1000, 0x1000 + 127)
    );
    let answers = pairs(&data);
    for (k, v) in [
        ("HeaderDigest", "None"),
        ("DataDigest", "None"),
        ("DefaultTime2Wait", "2"),
        ("DefaultTime2Retain", "0"),
        ("IFMarker", "No"),
        ("OFMarker", "No"),
        ("ErrorRecoveryLevel", "0"),
        ("InitialR2T", "No"),
        ("ImmediateData", "Yes"),
        ("MaxBurstLength", "1048576"),
        ("FirstBurstLength", "262144"),
        ("MaxOutstandingR2T", "1"),
        ("MaxConnections", "1"),
        ("DataPDUInOrder", "Yes"),
        ("DataSequenceInOrder", "Yes"),
        ("MaxRecvDataSegmentLength", "262144"),
    ] {
        assert!(
            answers.contains(&(k.into(), v.into())),
            "{k}={v} in {answers:?}"
        );
    }
    let p = outcome.params;
    assert_eq!(p.initiator_name, GOOD);
    assert_eq!(p.initiator_alias.as_deref(), Some("node1"));
    assert_eq!(p.target_name.as_deref(), Some(DISK));
    assert!(!p.initial_r2t && p.immediate_data);
    assert_eq!(
        (p.max_burst_length, p.first_burst_length),
        (1 << 20, 262_144)
    );
    assert_eq!((p.initiator_mrdsl, p.target_mrdsl), (262_144, 262_144));
    assert_eq!((p.default_time2wait, p.default_time2retain), (2, 0));
    assert_eq!(p.max_outstanding_r2t, 1);
}

/// libiscsi without CHAP: one PDU, CSG=1 → NSG=3, every key at once (lib/login.c).
#[test]
fn libiscsi_single_pdu_login() {
    let mut h = Harness::new();
    h.isid = [0x80, 0x12, 0x34, 0x56, 0x00, 0x00];
    let outcome = ready(h.send_kv(
        OP,
        FFP,
        true,
        &[
            (
                "InitiatorName",
                "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test",
            ),
            ("TargetName", DISK),
            ("SessionType", "Normal"),
            ("HeaderDigest", "None,CRC32C"),
            ("DataDigest", "None"),
            ("InitialR2T", "Yes"),
            ("ImmediateData", "Yes"),
            ("MaxBurstLength", "262144"),
            ("FirstBurstLength", "262144"),
            ("DefaultTime2Wait", "2"),
            ("DefaultTime2Retain", "0"),
            ("MaxOutstandingR2T", "1"),
            ("ErrorRecoveryLevel", "0"),
            ("IFMarker", "No"),
            ("OFMarker", "No"),
            ("MaxConnections", "1"),
            ("MaxRecvDataSegmentLength", "262144"),
            ("DataPDUInOrder", "Yes"),
            ("DataSequenceInOrder", "Yes"),
        ],
    ));
    assert_eq!(outcome.isid, h.isid);
    assert_eq!(outcome.tsih, 0);
    let p = &outcome.params;
    assert!(p.initial_r2t && p.immediate_data && !p.header_digest);
    assert_eq!(
        (p.max_burst_length, p.first_burst_length),
        (262_144, 262_144)
    );
    let (fin, data) = h.login.accept(0x0102, 0x1000 + 63);
    assert_eq!((fin.csg, fin.nsg), (OP, FFP));
    assert_eq!(fin.stat_sn, 0x77, "the only response starts at ExpStatSN");
    assert_eq!(get(&data, "TargetPortalGroupTag").as_deref(), Some("1"));
    assert_eq!(get(&data, "TargetAlias").as_deref(), Some("Disk One"));
    assert_eq!(get(&data, "HeaderDigest").as_deref(), Some("None"));
    assert_eq!(
        get(&data, "MaxRecvDataSegmentLength").as_deref(),
        Some("262144")
    );
}

/// A discovery login (open-iscsi sendtargets) followed by SendTargets=All with an IPv4 and an
/// IPv6 portal, filtered by the access lists.
#[test]
fn discovery_login_then_send_targets_all() {
    let mut h = Harness::new();
    h.tpgt = 2;
    respond(h.send_kv(
        SEC,
        OP,
        true,
        &[
            ("InitiatorName", "iqn.other"),
            ("SessionType", "Discovery"),
            ("AuthMethod", "None"),
        ],
    ));
    let (rsp, data) = respond(h.send_kv(
        OP,
        FFP,
        false,
        &[
            ("HeaderDigest", "None"),
            ("DataDigest", "None"),
            ("DefaultTime2Wait", "2"),
            ("DefaultTime2Retain", "0"),
            ("IFMarker", "No"),
            ("OFMarker", "No"),
            ("ErrorRecoveryLevel", "0"),
            ("MaxRecvDataSegmentLength", "32768"),
        ],
    ));
    assert!(!rsp.transit);
    assert_eq!(
        get(&data, "MaxRecvDataSegmentLength").as_deref(),
        Some("262144")
    );
    let mut outcome = ready(h.send_kv(OP, FFP, true, &[]));
    h.login.accept(1, 0x1000 + 1);
    let portals = [
        SocketAddr::from((Ipv4Addr::new(10, 1, 2, 3), 3260)),
        SocketAddr::from(("fd00::5".parse::<Ipv6Addr>().unwrap(), 3260)),
    ];
    let text = encode_pairs(&[("SendTargets", "All")]);
    let answer = text_request_answer(
        &parse_pairs(&text).unwrap(),
        &mut outcome.params,
        outcome.peer,
        &h.targets,
        &portals,
        h.tpgt,
    );
    assert_eq!(
        pairs(&answer),
        vec![
            ("TargetName".into(), DISK.into()),
            ("TargetAddress".into(), "10.1.2.3:3260,2".into()),
            ("TargetAddress".into(), "[fd00::5]:3260,2".into()),
        ],
        "the ACL hides {SECRET} from iqn.other"
    );
    // The same request from the allowed initiator lists both, in pieces if the peer wants.
    let mut allowed = outcome.params.clone();
    allowed.initiator_name = GOOD.into();
    let all = send_targets("All", &allowed, outcome.peer, &h.targets, &portals, h.tpgt);
    assert_eq!(
        pairs(&all)
            .iter()
            .filter(|(k, _)| k == "TargetName")
            .count(),
        2
    );
    let mut pending = PendingText::new(all.clone());
    let mut joined = Vec::new();
    loop {
        let (piece, more) = pending.next_chunk(64);
        assert!(piece.len() <= 64);
        joined.extend(piece);
        if !more {
            break;
        }
    }
    assert!(pending.is_done());
    assert_eq!(joined, all);
}
