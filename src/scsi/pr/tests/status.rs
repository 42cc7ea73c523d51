//! PERSISTENT RESERVE IN data, allocation length truncation, persistence and power on.

use super::super::in_service_action as pr_in;
use super::*;

fn prin(state: &PrState, action: u8, alloc: u16) -> Vec<u8> {
    let [hi, lo] = alloc.to_be_bytes();
    reserve_in(state, &[0x5E, action, 0, 0, 0, 0, 0, hi, lo, 0]).unwrap()
}

#[test]
fn read_keys_lists_every_key_after_prgeneration_and_additional_length() {
    let mut lu = Lu::default();
    assert_eq!(lu.read(pr_in::READ_KEYS), [0, 0, 0, 0, 0, 0, 0, 0]);
    lu.register(&a(), 0x0102_0304_0506_0708);
    lu.register(&b(), 0xFFFF_FFFF_FFFF_FFFF);
    let d = lu.read(pr_in::READ_KEYS);
    assert_eq!(&d[..8], &[0, 0, 0, 2, 0, 0, 0, 16]);
    assert_eq!(&d[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(&d[16..], &[0xFF; 8]);
}

#[test]
fn allocation_length_cuts_the_data_but_not_its_additional_length() {
    // libiscsi PrinReadKeys.Truncate: allocation length 8 leaves the header, which still
    // says how long the key list is.
    let mut lu = Lu::default();
    lu.register(&a(), 7);
    assert_eq!(
        prin(&lu.state, pr_in::READ_KEYS, 8),
        [0, 0, 0, 1, 0, 0, 0, 8]
    );
    assert_eq!(prin(&lu.state, pr_in::READ_KEYS, 12).len(), 12);
    assert!(prin(&lu.state, pr_in::READ_KEYS, 0).is_empty());
    lu.reserve(&a(), 7, EA);
    assert_eq!(
        prin(&lu.state, pr_in::READ_RESERVATION, 8),
        [0, 0, 0, 1, 0, 0, 0, 16]
    );
    assert_eq!(prin(&lu.state, pr_in::REPORT_CAPABILITIES, 2), [0, 8]);
    let full = prin(&lu.state, pr_in::READ_FULL_STATUS, 0xFFFF);
    let cut = prin(&lu.state, pr_in::READ_FULL_STATUS, 10);
    assert_eq!(cut, full[..10]);
}

#[test]
fn read_reservation_reports_key_scope_and_type() {
    let mut lu = Lu::default();
    lu.register(&a(), 0xAB);
    assert_eq!(lu.read(pr_in::READ_RESERVATION), [0, 0, 0, 1, 0, 0, 0, 0]);
    lu.reserve(&a(), 0xAB, EA_RO);
    let d = lu.read(pr_in::READ_RESERVATION);
    assert_eq!(d.len(), 24);
    assert_eq!(&d[..8], &[0, 0, 0, 1, 0, 0, 0, 16]);
    assert_eq!(&d[8..16], &0xABu64.to_be_bytes());
    assert_eq!(&d[16..21], &[0; 5], "obsolete and reserved");
    assert_eq!(d[21], 0x06, "LU_SCOPE, type 6");
    assert_eq!(&d[22..], &[0, 0]);
    lu.out(&a(), sa::RELEASE, EA_RO, 0xAB, 0, 0).unwrap();
    lu.reserve(&a(), 0xAB, WE_AR);
    let d = lu.read(pr_in::READ_RESERVATION);
    assert_eq!(&d[8..16], &[0; 8], "all registrants: key zero");
    assert_eq!(d[21], 0x07);
}

#[test]
fn report_capabilities_names_every_type_and_capability() {
    // libiscsi PrinReportCapabilities.Simple: LENGTH 8, ALLOW COMMANDS <= 5, no mask bit
    // outside the six types.
    let mut lu = Lu::default();
    let d = lu.read(pr_in::REPORT_CAPABILITIES);
    assert_eq!(d, [0, 8, 0x1D, 0xB0, 0xEA, 0x01, 0, 0]);
    assert!((d[3] >> 4) & 0x07 <= 5);
    lu.out(&a(), sa::REGISTER, WE, 0, 1, APTPL).unwrap();
    assert_eq!(lu.read(pr_in::REPORT_CAPABILITIES)[3], 0xB1, "PTPL_A");
}

#[test]
fn read_full_status_describes_each_registration() {
    let mut lu = Lu::default();
    lu.out(&a(), sa::REGISTER, WE, 0, 0x11, 0).unwrap();
    lu.out(&b(), sa::REGISTER, WE, 0, 0x22, ALL_TG_PT).unwrap();
    lu.reserve(&a(), 0x11, WE_RO);
    let d = lu.read(pr_in::READ_FULL_STATUS);
    let id_a = TransportId::of(&a().initiator).encode();
    let id_b = TransportId::of(&b().initiator).encode();
    assert_eq!(id_a.len(), 48);
    let first = 24 + id_a.len();
    let total = first + 24 + id_b.len();
    assert_eq!(
        &d[..4],
        &[0, 0, 0, 2],
        "two REGISTERs; RESERVE does not count"
    );
    assert_eq!(&d[4..8], &(total as u32).to_be_bytes());
    assert_eq!(d.len(), 8 + total);
    let a_desc = &d[8..8 + first];
    assert_eq!(&a_desc[..8], &0x11u64.to_be_bytes());
    assert_eq!(&a_desc[8..12], &[0; 4]);
    assert_eq!(a_desc[12], 0x01, "R_HOLDER");
    assert_eq!(a_desc[13], 0x05, "LU_SCOPE, type 5");
    assert_eq!(&a_desc[14..18], &[0; 4]);
    assert_eq!(&a_desc[18..20], &[0, 1], "relative target port 1");
    assert_eq!(&a_desc[20..24], &(id_a.len() as u32).to_be_bytes());
    assert_eq!(&a_desc[24..], &id_a[..]);
    assert_eq!(&a_desc[24..28], &[0x45, 0, 0, 44]);
    assert_eq!(
        &a_desc[28..70],
        b"iqn.1994-05.com.example:a,i,0x400001370001"
    );
    let b_desc = &d[8 + first..];
    assert_eq!(&b_desc[..8], &0x22u64.to_be_bytes());
    assert_eq!(b_desc[12], 0x02, "ALL_TG_PT, not the holder");
    assert_eq!(b_desc[13], 0, "SCOPE and TYPE only for the holder");
    assert_eq!(&b_desc[18..20], &[0, 0]);
    assert_eq!(&b_desc[24..], &id_b[..]);
}

#[test]
fn read_full_status_marks_every_registrant_holder_under_all_registrants() {
    let mut lu = Lu::registered(2);
    lu.reserve(&b(), 2, EA_AR);
    let d = lu.read(pr_in::READ_FULL_STATUS);
    let desc_len = 24 + TransportId::of(&a().initiator).encode().len();
    for i in 0..2 {
        let desc = &d[8 + i * desc_len..];
        assert_eq!((desc[12], desc[13]), (0x01, 0x08), "descriptor {i}");
    }
}

#[test]
fn unknown_persistent_reserve_in_service_actions_are_invalid_fields() {
    // libiscsi PrinServiceactionRange: 0..=3 work, 4..0x1F fail.
    let s = PrState::new();
    for action in 0..4 {
        assert!(reserve_in(&s, &[0x5E, action, 0, 0, 0, 0, 0, 0x40, 0, 0]).is_ok());
    }
    for action in 4..0x20 {
        let e = reserve_in(&s, &[0x5E, action, 0, 0, 0, 0, 0, 0x40, 0, 0]).unwrap_err();
        assert_eq!(e, Sense::invalid_field_in_cdb().at_cdb(1, Some(4)));
    }
}

/// Every kind of registration and a reservation, APTPL on.
fn full_state() -> PrState {
    let mut lu = Lu::default();
    lu.out(&a(), sa::REGISTER, WE, 0, u64::MAX, APTPL | ALL_TG_PT)
        .unwrap();
    let mut params = basic(0, 0x8000_0000_0000_0001, SPEC_I_PT | APTPL);
    let id = TransportId {
        name: "iqn.1994-05.com.example:c".into(),
        isid: None,
    }
    .encode();
    params.extend_from_slice(&(id.len() as u32).to_be_bytes());
    params.extend_from_slice(&id);
    let cdb = out_cdb(sa::REGISTER, WE, params.len() as u32);
    lu.raw(&b(), &cdb, &params).unwrap();
    lu.reserve(&b(), 0x8000_0000_0000_0001, EA_RO);
    lu.state
}

#[test]
fn the_whole_state_survives_a_toml_round_trip() {
    let state = full_state();
    assert_eq!(state.registrations().len(), 3);
    let text = toml::to_string(&state).expect("serializes");
    // Keys above i64::MAX, which TOML integers cannot hold, are hex strings.
    assert!(text.contains("ffffffffffffffff"), "{text}");
    let back: PrState = toml::from_str(&text).expect("deserializes");
    assert_eq!(back, state);
}

#[test]
fn the_spc2_reservation_is_never_persisted() {
    let mut state = PrState::new();
    reserve_spc2(&mut state, &a()).unwrap();
    let back: PrState = toml::from_str(&toml::to_string(&state).unwrap()).unwrap();
    assert!(back.is_idle());
}

#[test]
fn power_on_keeps_registrations_only_with_aptpl_and_zeroes_prgeneration() {
    let state = full_state();
    let after = state.after_power_on();
    assert_eq!(after.generation(), 0);
    assert_eq!(after.registrations(), state.registrations());
    assert_eq!(after.reservation(), state.reservation());
    let mut lu = Lu::registered(1);
    lu.reserve(&a(), 1, WE);
    reserve_spc2(&mut PrState::new(), &a()).unwrap();
    assert_eq!(lu.state.after_power_on(), PrState::new());
}
