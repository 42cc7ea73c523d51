//! SPEC_I_PT and its TransportIDs, and the CDB and parameter list checks of PERSISTENT
//! RESERVE OUT.

use super::*;

/// REGISTER with SPEC_I_PT and `ids` (already encoded TransportIDs).
fn spec_i_pt(
    lu: &mut Lu,
    from: &ItNexus,
    sa_key: u64,
    flags: u8,
    ids: &[u8],
) -> Result<OutEffects, Refusal> {
    let mut params = basic(0, sa_key, SPEC_I_PT | flags);
    params.extend_from_slice(&(ids.len() as u32).to_be_bytes());
    params.extend_from_slice(ids);
    lu.raw(
        from,
        &out_cdb(sa::REGISTER, WE, params.len() as u32),
        &params,
    )
}

/// A hand-made iSCSI TransportID: format code, then `text` NUL padded to `len` bytes.
fn tid(format: u8, text: &str, len: usize) -> Vec<u8> {
    let mut id = vec![(format << 6) | 0x05, 0];
    id.extend_from_slice(&(len as u16).to_be_bytes());
    id.extend_from_slice(text.as_bytes());
    id.resize(4 + len, 0);
    id
}

#[test]
fn transport_ids_encode_as_spc4_iscsi_transport_ids() {
    let port = TransportId::of(&InitiatorPort::new("iqn.x:A", [0, 0x02, 0x3D, 0, 0, 0x01]));
    let encoded = port.encode();
    // "iqn.x:a,i,0x00023d000001" is 24 bytes; NUL and padding make 28.
    assert_eq!(&encoded[..4], &[0x45, 0, 0, 28]);
    assert_eq!(&encoded[4..28], b"iqn.x:a,i,0x00023d000001");
    assert_eq!(&encoded[28..], &[0; 4]);
    let name = TransportId {
        name: "iqn.x:a".into(),
        isid: None,
    }
    .encode();
    // Short names are padded to the 20-byte minimum.
    assert_eq!(&name[..4], &[0x05, 0, 0, 20]);
    assert_eq!(name.len(), 24);
    assert_eq!(TransportId::parse(&encoded, 0), Ok((port, 32)));
}

#[test]
fn spec_i_pt_registers_the_named_initiator_ports_too() {
    let mut lu = Lu::default();
    let port_b = b().initiator;
    let mut ids = TransportId::of(&port_b).encode();
    // Format 00b: every initiator port with that name (case-folded).
    ids.extend(tid(0, "IQN.1994-05.com.example:C", 28));
    spec_i_pt(&mut lu, &a(), 0x77, 0, &ids).unwrap();
    assert_eq!(lu.keys(), [0x77, 0x77, 0x77]);
    assert_eq!(lu.state.generation(), 1);
    assert!(lu.key_of(&b()).is_some());
    // B's other ISIDs are other ports; every ISID of C is covered.
    assert!(lu.key_of(&host('b', 9, 1)).is_none());
    assert!(lu.key_of(&host('c', 9, 1)).is_some());
    // Through the port the command came in on only, unless ALL_TG_PT.
    assert!(lu.key_of(&host('b', 1, 2)).is_none());
}

#[test]
fn spec_i_pt_with_all_tg_pt_registers_every_target_port() {
    let mut lu = Lu::default();
    spec_i_pt(
        &mut lu,
        &a(),
        1,
        ALL_TG_PT,
        &TransportId::of(&b().initiator).encode(),
    )
    .unwrap();
    assert!(lu.key_of(&host('b', 1, 2)).is_some());
    assert!(lu.key_of(&host('a', 1, 2)).is_some());
}

#[test]
fn spec_i_pt_naming_the_issuer_adds_nothing() {
    let mut lu = Lu::default();
    spec_i_pt(
        &mut lu,
        &a(),
        1,
        0,
        &TransportId::of(&a().initiator).encode(),
    )
    .unwrap();
    assert_eq!(lu.keys(), [1]);
}

#[test]
fn spec_i_pt_naming_a_registered_port_registers_nobody() {
    let mut lu = Lu::default();
    lu.register(&b(), 2);
    let mut ids = TransportId::of(&c().initiator).encode();
    ids.extend(TransportId::of(&b().initiator).encode());
    let s = refused_with(spec_i_pt(&mut lu, &a(), 1, 0, &ids));
    assert_eq!(
        (s.key, s.asc),
        (crate::scsi::SenseKey::ILLEGAL_REQUEST, 0x26)
    );
    // Two TransportIDs for one port are refused the same way.
    let mut twice = TransportId::of(&c().initiator).encode();
    twice.extend(tid(0, "iqn.1994-05.com.example:c", 28));
    assert_eq!(
        refused_with(spec_i_pt(&mut lu, &a(), 1, 0, &twice)).asc,
        0x26
    );
}

#[test]
fn spec_i_pt_from_a_registered_nexus_is_an_invalid_field_in_the_cdb() {
    let mut lu = Lu::registered(1);
    let mut params = basic(1, 2, SPEC_I_PT);
    params.extend_from_slice(&[0, 0, 0, 0]);
    let s = refused_with(lu.raw(&a(), &out_cdb(sa::REGISTER, WE, 28), &params));
    assert_eq!(s, Sense::invalid_field_in_cdb());
}

#[test]
fn spec_i_pt_is_only_for_register() {
    let mut lu = Lu::registered(1);
    for action in [
        sa::REGISTER_AND_IGNORE_EXISTING_KEY,
        sa::RESERVE,
        sa::CLEAR,
        sa::PREEMPT,
    ] {
        let s = refused_with(lu.out(&a(), action, WE, 1, 2, SPEC_I_PT));
        assert_eq!(
            s,
            Sense::invalid_field_in_param_list().at_param(20, Some(3))
        );
    }
}

#[test]
fn malformed_transport_ids_are_invalid_fields_in_the_parameter_list() {
    let good = TransportId::of(&b().initiator).encode();
    let mut wrong_protocol = good.clone();
    wrong_protocol[0] = 0x41; // SRP
    let mut reserved_format = good.clone();
    reserved_format[0] = 0x85;
    let mut reserved_bits = good.clone();
    reserved_bits[0] |= 0x10;
    let mut unpadded = good.clone();
    unpadded[3] -= 1;
    unpadded.pop();
    let mut junk_after_nul = good.clone();
    *junk_after_nul.last_mut().unwrap() = b'x';
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("wrong protocol", wrong_protocol),
        ("reserved format code", reserved_format),
        ("reserved bits", reserved_bits),
        ("length not a multiple of 4", unpadded),
        ("junk after the NUL", junk_after_nul),
        ("shorter than 20", tid(0, "iqn.x:a", 16)),
        ("no NUL", tid(0, "iqn.1994-05.com.example:nonul", 28)),
        ("empty name", tid(0, "", 20)),
        ("comma in a name", tid(0, "iqn.x:a,b", 20)),
        ("no separator", tid(1, "iqn.1994-05.com.example:b", 28)),
        ("short ISID", tid(1, "iqn.x:b,i,0x00023d0001", 24)),
        ("ISID not hex", tid(1, "iqn.x:b,i,0x00023d00000g", 28)),
        ("no name before the ISID", tid(1, ",i,0x00023d000001", 20)),
        ("truncated header", vec![0x45, 0]),
        ("length past the data", good[..good.len() - 4].to_vec()),
    ];
    for (what, ids) in cases {
        let mut lu = Lu::default();
        let s = refused_with(spec_i_pt(&mut lu, &a(), 1, 0, &ids));
        assert_eq!((s.asc, s.ascq), (0x26, 0x00), "{what}");
        assert!(s.field_pointer.is_some_and(|p| !p.in_cdb), "{what}");
    }
}

#[test]
fn transport_id_data_length_must_match_the_parameter_list() {
    let mut lu = Lu::default();
    let id = TransportId::of(&b().initiator).encode();
    let mut params = basic(0, 1, SPEC_I_PT);
    params.extend_from_slice(&(id.len() as u32 + 4).to_be_bytes());
    params.extend_from_slice(&id);
    let s = refused_with(lu.raw(
        &a(),
        &out_cdb(sa::REGISTER, WE, params.len() as u32),
        &params,
    ));
    assert_eq!(s, Sense::parameter_list_length_error());
    // SPEC_I_PT with no room for the TRANSPORTID PARAMETER DATA LENGTH.
    let s = refused_with(lu.raw(
        &a(),
        &out_cdb(sa::REGISTER, WE, 24),
        &basic(0, 1, SPEC_I_PT),
    ));
    assert_eq!(s, Sense::parameter_list_length_error());
}

#[test]
fn parameter_list_length_is_24_unless_spec_i_pt_or_register_and_move() {
    for action in 0..=7 {
        for len in [0u32, 8, 23] {
            let s = check_out_cdb(&out_cdb(action, WE, len)).unwrap_err();
            assert_eq!(s, Sense::parameter_list_length_error(), "{action} {len}");
        }
        assert_eq!(check_out_cdb(&out_cdb(action, WE, 24)), Ok(24));
        let longer = check_out_cdb(&out_cdb(action, WE, 28));
        let may_be_longer = matches!(action, sa::REGISTER | sa::REGISTER_AND_MOVE);
        assert_eq!(longer.is_ok(), may_be_longer, "{action}");
    }
    // A REGISTER list longer than 24 bytes without SPEC_I_PT.
    let mut lu = Lu::default();
    let mut params = basic(0, 1, 0);
    params.extend_from_slice(&[0; 4]);
    let s = refused_with(lu.raw(&a(), &out_cdb(sa::REGISTER, WE, 28), &params));
    assert_eq!(s, Sense::parameter_list_length_error());
    // Fewer bytes arrived than the CDB announced.
    let s = refused_with(lu.raw(&a(), &out_cdb(sa::REGISTER, WE, 24), &params[..20]));
    assert_eq!(s, Sense::parameter_list_length_error());
    // Far more than any registration needs.
    let huge = check_out_cdb(&out_cdb(sa::REGISTER, WE, u32::MAX)).unwrap_err();
    assert_eq!(huge, Sense::insufficient_registration_resources());
}

#[test]
fn scope_and_type_are_checked_where_the_service_action_uses_them() {
    for action in [sa::RESERVE, sa::RELEASE, sa::PREEMPT, sa::PREEMPT_AND_ABORT] {
        for bad in [0u8, 2, 4, 9, 0xF] {
            let s = check_out_cdb(&out_cdb(action, PrType(bad), 24)).unwrap_err();
            assert_eq!(
                s,
                Sense::invalid_field_in_cdb().at_cdb(2, Some(3)),
                "type {bad}"
            );
        }
        let mut cdb = out_cdb(action, WE, 24);
        cdb[2] |= 0x10; // element scope (obsolete)
        let s = check_out_cdb(&cdb).unwrap_err();
        assert_eq!(s, Sense::invalid_field_in_cdb().at_cdb(2, Some(7)));
    }
    // REGISTER, CLEAR and REGISTER AND MOVE ignore SCOPE and TYPE.
    for action in [
        sa::REGISTER,
        sa::CLEAR,
        sa::REGISTER_AND_IGNORE_EXISTING_KEY,
    ] {
        assert!(check_out_cdb(&out_cdb(action, PrType(0xFF), 24)).is_ok());
    }
}

#[test]
fn unknown_service_actions_are_invalid_fields_in_the_cdb() {
    for action in 8..0x20 {
        let s = check_out_cdb(&out_cdb(action, WE, 24)).unwrap_err();
        assert_eq!(s, Sense::invalid_field_in_cdb().at_cdb(1, Some(4)));
    }
}

#[test]
fn reserved_parameter_list_bits_are_refused() {
    let mut lu = Lu::default();
    for (flags, bit) in [(0x02, 1), (0x10, 4), (0x80, 7)] {
        let s = refused_with(lu.out(&a(), sa::REGISTER, WE, 0, 1, flags));
        assert_eq!(
            s,
            Sense::invalid_field_in_param_list().at_param(20, Some(bit))
        );
    }
    let mut params = basic(0, 1, 0);
    params[21] = 1;
    let s = refused_with(lu.raw(&a(), &out_cdb(sa::REGISTER, WE, 24), &params));
    assert_eq!(s, Sense::invalid_field_in_param_list().at_param(21, None));
    assert!(lu.state.is_idle());
}
