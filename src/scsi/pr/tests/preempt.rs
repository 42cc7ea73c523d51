//! PREEMPT, PREEMPT AND ABORT and REGISTER AND MOVE.

use super::*;

fn preempt(
    lu: &mut Lu,
    from: &ItNexus,
    key: u64,
    sa_key: u64,
    kind: PrType,
) -> Result<OutEffects, Refusal> {
    lu.out(from, sa::PREEMPT, kind, key, sa_key, 0)
}

#[test]
fn preempt_without_a_reservation_removes_the_named_registrations() {
    // libiscsi ProutPreempt.RemoveRegistration: k2 preempts k1 with no reservation; one key
    // is left and PRgeneration moved once.
    let mut lu = Lu::default();
    lu.register(&a(), 0x11);
    lu.register(&b(), 0x22);
    let generation = lu.state.generation();
    let fx = preempt(&mut lu, &b(), 0x22, 0x11, EA).unwrap();
    assert_eq!(lu.keys(), [0x22]);
    assert_eq!(lu.state.generation(), generation + 1);
    assert!(lu.state.reservation().is_none(), "no reservation is made");
    let preempted = told(&fx, UnitAttention::REGISTRATIONS_PREEMPTED);
    assert_eq!(preempted, [a()]);
    assert!(fx.abort_tasks_of.is_empty(), "PREEMPT aborts nothing");
}

#[test]
fn preempt_with_key_zero_and_no_reservation_is_an_invalid_field() {
    let mut lu = Lu::registered(1);
    let s = refused_with(preempt(&mut lu, &a(), 1, 0, WE));
    assert_eq!(s, Sense::invalid_field_in_param_list().at_param(8, None));
}

#[test]
fn preempting_a_key_nobody_has_conflicts() {
    let mut lu = Lu::registered(2);
    conflict(preempt(&mut lu, &a(), 1, 3, WE));
    lu.reserve(&b(), 2, WE);
    conflict(preempt(&mut lu, &a(), 1, 3, WE));
    // And only a registered nexus with its key may preempt.
    conflict(preempt(&mut lu, &c(), 0, 2, WE));
    conflict(preempt(&mut lu, &a(), 9, 2, WE));
}

#[test]
fn preempting_the_holder_takes_the_reservation_over() {
    let mut lu = Lu::registered(3);
    lu.reserve(&b(), 2, WE);
    let fx = preempt(&mut lu, &a(), 1, 2, EA).unwrap();
    assert!(lu.state.is_holder(&a()));
    assert_eq!(lu.kind(), Some(EA));
    assert_eq!(lu.keys(), [1, 3]);
    assert_eq!(told(&fx, UnitAttention::REGISTRATIONS_PREEMPTED), [b()]);
    // The type changed: the remaining registrants but the preemptor hear RESERVATIONS RELEASED.
    assert_eq!(told(&fx, UnitAttention::RESERVATIONS_RELEASED), [c()]);
}

#[test]
fn preempting_the_holder_with_the_same_type_releases_nothing_to_announce() {
    let mut lu = Lu::registered(3);
    lu.reserve(&b(), 2, WE_RO);
    let fx = preempt(&mut lu, &a(), 1, 2, WE_RO).unwrap();
    assert!(lu.state.is_holder(&a()));
    assert!(told(&fx, UnitAttention::RESERVATIONS_RELEASED).is_empty());
}

#[test]
fn preempting_the_holders_key_removes_every_registration_with_it() {
    let mut lu = Lu::registered(2);
    lu.register(&c(), 2);
    lu.reserve(&b(), 2, EA);
    let fx = preempt(&mut lu, &a(), 1, 2, EA).unwrap();
    assert_eq!(lu.keys(), [1]);
    assert_eq!(
        told(&fx, UnitAttention::REGISTRATIONS_PREEMPTED),
        [b(), c()]
    );
}

#[test]
fn preempting_another_key_leaves_the_reservation_alone() {
    let mut lu = Lu::registered(3);
    lu.reserve(&b(), 2, WE);
    preempt(&mut lu, &a(), 1, 3, EA).unwrap();
    assert!(lu.state.is_holder(&b()));
    assert_eq!(lu.kind(), Some(WE));
    assert_eq!(lu.keys(), [1, 2]);
    // With a reservation whose holder it does not name, key zero is invalid.
    let s = refused_with(preempt(&mut lu, &a(), 1, 0, WE));
    assert_eq!(s.asc, 0x26);
}

#[test]
fn the_holder_may_preempt_itself_to_change_type() {
    let mut lu = Lu::registered(2);
    lu.reserve(&a(), 1, WE);
    let fx = preempt(&mut lu, &a(), 1, 1, EA).unwrap();
    assert_eq!(lu.keys(), [1, 2], "the preemptor keeps its registration");
    assert!(lu.state.is_holder(&a()));
    assert_eq!(lu.kind(), Some(EA));
    assert_eq!(told(&fx, UnitAttention::RESERVATIONS_RELEASED), [b()]);
}

#[test]
fn preempting_all_registrants_with_key_zero_leaves_the_preemptor_alone() {
    let mut lu = Lu::registered(3);
    lu.reserve(&b(), 2, WE_AR);
    let fx = preempt(&mut lu, &a(), 1, 0, EA).unwrap();
    assert_eq!(lu.keys(), [1]);
    assert!(lu.state.is_holder(&a()));
    assert_eq!(lu.kind(), Some(EA));
    assert_eq!(
        told(&fx, UnitAttention::REGISTRATIONS_PREEMPTED),
        [b(), c()]
    );
}

#[test]
fn preempting_a_key_under_all_registrants_keeps_the_reservation() {
    let mut lu = Lu::registered(3);
    lu.reserve(&b(), 2, EA_AR);
    preempt(&mut lu, &a(), 1, 2, EA_AR).unwrap();
    assert_eq!(lu.keys(), [1, 3]);
    assert_eq!(lu.kind(), Some(EA_AR));
    assert!(lu.state.is_holder(&c()));
}

#[test]
fn preempt_and_abort_names_the_preempted_nexuses_for_abort() {
    let mut lu = Lu::registered(2);
    lu.out(&c(), sa::REGISTER, WE, 0, 2, ALL_TG_PT).unwrap();
    lu.reserve(&b(), 2, EA);
    let fx = lu.out(&a(), sa::PREEMPT_AND_ABORT, EA, 1, 2, 0).unwrap();
    let c2 = host('c', 1, 2);
    let aborted = |n: &ItNexus| fx.abort_tasks_of.iter().any(|s| s.covers(n));
    assert!(aborted(&b()) && aborted(&c()) && aborted(&c2));
    assert!(!aborted(&a()));
    assert!(lu.state.is_holder(&a()));
}

#[test]
fn register_and_move_hands_the_reservation_to_another_nexus() {
    let mut lu = Lu::registered(1);
    lu.reserve(&a(), 1, WE_RO);
    let generation = lu.state.generation();
    let d = host('d', 7, 2);
    let params = move_params(1, 0xD0, 0, 2, &d.initiator);
    lu.raw(
        &a(),
        &out_cdb(sa::REGISTER_AND_MOVE, WE, params.len() as u32),
        &params,
    )
    .unwrap();
    assert!(lu.state.is_holder(&d));
    assert_eq!(lu.kind(), Some(WE_RO));
    assert_eq!(lu.key_of(&d), Some(0xD0));
    assert_eq!(lu.key_of(&a()), Some(1));
    assert_eq!(lu.state.generation(), generation + 1);
}

#[test]
fn register_and_move_with_unreg_drops_the_issuer_and_keeps_a_registered_destination_key() {
    let mut lu = Lu::registered(2);
    lu.reserve(&a(), 1, EA);
    let params = move_params(1, 0xB0, 0x03, 1, &b().initiator);
    let fx = lu
        .raw(
            &a(),
            &out_cdb(sa::REGISTER_AND_MOVE, WE, params.len() as u32),
            &params,
        )
        .unwrap();
    assert!(lu.state.is_holder(&b()));
    assert_eq!(lu.keys(), [2], "UNREG: the issuer is gone; B keeps its key");
    assert!(lu.state.aptpl() && fx.persist);
}

#[test]
fn register_and_move_refusals() {
    let mut lu = Lu::registered(2);
    let d = host('d', 7, 1);
    let send = |lu: &mut Lu, from: &ItNexus, params: Vec<u8>| {
        let cdb = out_cdb(sa::REGISTER_AND_MOVE, WE, params.len() as u32);
        lu.raw(from, &cdb, &params)
    };
    // No reservation, or not the holder: RESERVATION CONFLICT.
    conflict(send(&mut lu, &a(), move_params(1, 5, 0, 1, &d.initiator)));
    lu.reserve(&a(), 1, WE);
    conflict(send(&mut lu, &b(), move_params(2, 5, 0, 1, &d.initiator)));
    conflict(send(&mut lu, &a(), move_params(9, 5, 0, 1, &d.initiator)));
    // Key zero, an unknown target port, the issuer itself: INVALID FIELD IN PARAMETER LIST.
    let invalid = |r| refused_with(r).asc;
    assert_eq!(
        invalid(send(&mut lu, &a(), move_params(1, 0, 0, 1, &d.initiator))),
        0x26
    );
    assert_eq!(
        invalid(send(&mut lu, &a(), move_params(1, 5, 0, 3, &d.initiator))),
        0x26
    );
    assert_eq!(
        invalid(send(&mut lu, &a(), move_params(1, 5, 0, 1, &a().initiator))),
        0x26
    );
    // A name-only TransportID names no I_T nexus.
    let mut params = move_params(1, 5, 0, 1, &d.initiator);
    params.truncate(24);
    let id = TransportId {
        name: "iqn.1994-05.com.example:d".into(),
        isid: None,
    }
    .encode();
    params[20..24].copy_from_slice(&(id.len() as u32).to_be_bytes());
    params.extend_from_slice(&id);
    assert_eq!(invalid(send(&mut lu, &a(), params)), 0x26);
    // All-registrants reservations have no one holder to move.
    lu.out(&a(), sa::RELEASE, WE, 1, 0, 0).unwrap();
    lu.reserve(&a(), 1, EA_AR);
    conflict(send(&mut lu, &a(), move_params(1, 5, 0, 1, &d.initiator)));
}

/// REGISTER AND MOVE parameter list: keys, byte 17 flags, RELATIVE TARGET PORT IDENTIFIER and
/// the destination's TransportID.
pub(super) fn move_params(
    key: u64,
    sa_key: u64,
    flags: u8,
    port: u16,
    to: &InitiatorPort,
) -> Vec<u8> {
    let id = TransportId::of(to).encode();
    let mut p = vec![0u8; 24];
    p[..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[17] = flags;
    p[18..20].copy_from_slice(&port.to_be_bytes());
    p[20..24].copy_from_slice(&(id.len() as u32).to_be_bytes());
    p.extend_from_slice(&id);
    p
}
