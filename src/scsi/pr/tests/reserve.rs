//! RESERVE, RELEASE and CLEAR (SPC-4), and SPC-2 RESERVE/RELEASE with their exceptions.

use super::*;

#[test]
fn reserve_needs_a_registration_and_its_key() {
    let mut lu = Lu::default();
    conflict(lu.out(&a(), sa::RESERVE, WE, 0, 0, 0));
    lu.register(&a(), 1);
    conflict(lu.out(&a(), sa::RESERVE, WE, 2, 0, 0));
    assert!(lu.state.reservation().is_none());
}

#[test]
fn every_type_can_be_reserved_and_released_without_prgeneration_changing() {
    // libiscsi ProutReserve.Simple and PrinReportCapabilities.Simple.
    let mut lu = Lu::default();
    lu.register(&a(), 0xA1);
    for kind in PrType::ALL {
        lu.reserve(&a(), 0xA1, kind);
        let r = lu.state.reservation().expect("reserved");
        assert_eq!(r.kind, kind);
        assert!(lu.state.is_holder(&a()));
        // READ RESERVATION reports the key, or zero for all-registrants types.
        let expected = if kind.all_registrants() { 0 } else { 0xA1 };
        assert_eq!(lu.state.reservation_key(), expected, "{kind:?}");
        lu.out(&a(), sa::RELEASE, kind, 0xA1, 0, 0).unwrap();
        assert!(lu.state.reservation().is_none());
    }
    assert_eq!(lu.state.generation(), 1, "only the REGISTER counted");
}

#[test]
fn the_holder_reserving_again_changes_nothing_but_another_type_conflicts() {
    let mut lu = Lu::registered(1);
    lu.reserve(&a(), 1, EA);
    let fx = lu.out(&a(), sa::RESERVE, EA, 1, 0, 0).unwrap();
    assert_eq!(fx, OutEffects::default());
    conflict(lu.out(&a(), sa::RESERVE, WE, 1, 0, 0));
    assert_eq!(lu.kind(), Some(EA));
}

#[test]
fn another_registrant_cannot_reserve_a_held_unit() {
    let mut lu = Lu::registered(2);
    lu.reserve(&a(), 1, WE_RO);
    conflict(lu.out(&b(), sa::RESERVE, WE_RO, 2, 0, 0));
    conflict(lu.out(&b(), sa::RESERVE, EA, 2, 0, 0));
    assert!(lu.state.is_holder(&a()) && !lu.state.is_holder(&b()));
}

#[test]
fn under_all_registrants_every_registrant_holds_the_reservation() {
    let mut lu = Lu::registered(2);
    lu.reserve(&a(), 1, EA_AR);
    assert!(lu.state.is_holder(&b()) && !lu.state.is_holder(&c()));
    // Reserving the same type again is a holder's no-op, from any registrant.
    lu.reserve(&b(), 2, EA_AR);
    conflict(lu.out(&b(), sa::RESERVE, WE_AR, 2, 0, 0));
    // Any registrant may release it.
    lu.out(&b(), sa::RELEASE, EA_AR, 2, 0, 0).unwrap();
    assert!(lu.state.reservation().is_none());
}

#[test]
fn release_from_a_non_holder_or_of_nothing_is_good_without_effect() {
    let mut lu = Lu::registered(2);
    let fx = lu.out(&a(), sa::RELEASE, WE, 1, 0, 0).unwrap();
    assert_eq!(fx, OutEffects::default());
    lu.reserve(&a(), 1, WE);
    let fx = lu.out(&b(), sa::RELEASE, WE, 2, 0, 0).unwrap();
    assert_eq!(fx, OutEffects::default());
    assert!(lu.state.is_holder(&a()));
    // Still, only a registered nexus with its key may ask.
    conflict(lu.out(&b(), sa::RELEASE, WE, 9, 0, 0));
    conflict(lu.out(&c(), sa::RELEASE, WE, 0, 0, 0));
}

#[test]
fn releasing_with_another_type_is_an_invalid_release() {
    let mut lu = Lu::registered(1);
    lu.reserve(&a(), 1, WE);
    let s = refused_with(lu.out(&a(), sa::RELEASE, EA, 1, 0, 0));
    assert_eq!(s, Sense::invalid_release_of_persistent_reservation());
    assert_eq!((s.asc, s.ascq), (0x26, 0x04));
    assert!(lu.state.is_holder(&a()));
}

#[test]
fn releasing_a_shared_type_tells_the_other_registrants() {
    for kind in PrType::ALL {
        let mut lu = Lu::registered(2);
        lu.reserve(&a(), 1, kind);
        let fx = lu.out(&a(), sa::RELEASE, kind, 1, 0, 0).unwrap();
        let released = told(&fx, UnitAttention::RESERVATIONS_RELEASED);
        // SPC-4: only registrants-only and all-registrants releases are announced.
        assert_eq!(
            released,
            Vec::from_iter(kind.shared_with_registrants().then(b)),
            "{kind:?}"
        );
    }
}

#[test]
fn clear_removes_everything_and_tells_every_other_registrant() {
    // libiscsi ProutClear.Simple: PRgeneration moves once for CLEAR, not for RESERVE.
    let mut lu = Lu::registered(2);
    let generation = lu.state.generation();
    lu.reserve(&a(), 1, EA);
    let fx = lu.out(&a(), sa::CLEAR, WE, 1, 0, 0).unwrap();
    assert!(lu.state.is_idle());
    assert_eq!(lu.state.generation(), generation + 1);
    let preempted = told(&fx, UnitAttention::RESERVATIONS_PREEMPTED);
    assert_eq!(preempted, [b()]);
}

#[test]
fn clear_needs_a_registration_and_its_key() {
    let mut lu = Lu::registered(1);
    conflict(lu.out(&b(), sa::CLEAR, WE, 0, 0, 0));
    conflict(lu.out(&a(), sa::CLEAR, WE, 2, 0, 0));
    assert_eq!(lu.keys(), [1]);
}

#[test]
fn spc2_reserve_is_held_by_one_nexus_and_released_only_by_it() {
    // libiscsi Reserve6.2Initiators.
    let mut s = PrState::new();
    reserve_spc2(&mut s, &a()).unwrap();
    reserve_spc2(&mut s, &a()).unwrap();
    assert_eq!(reserve_spc2(&mut s, &b()), Err(Refusal::Conflict));
    release_spc2(&mut s, &b()).unwrap();
    assert_eq!(
        s.spc2_holder(),
        Some(&a()),
        "RELEASE from a non-holder is a no-op"
    );
    release_spc2(&mut s, &a()).unwrap();
    assert!(s.is_idle());
    reserve_spc2(&mut s, &b()).unwrap();
    assert_eq!(s.spc2_holder(), Some(&b()));
}

#[test]
fn spc2_reservations_go_with_resets_and_the_holders_nexus() {
    // libiscsi Reserve6.LunReset, TargetWarmReset, TargetColdReset, Logout, ItNexusLoss.
    let mut s = PrState::new();
    reserve_spc2(&mut s, &a()).unwrap();
    assert!(!s.nexus_lost(&b()));
    assert!(s.nexus_lost(&a()));
    assert!(s.is_idle());
    reserve_spc2(&mut s, &a()).unwrap();
    assert!(s.reset());
    assert!(!s.reset());
    reserve_spc2(&mut s, &b()).unwrap();
}

#[test]
fn resets_and_nexus_loss_keep_persistent_reservations() {
    let mut lu = Lu::registered(1);
    lu.reserve(&a(), 1, EA);
    let before = lu.state.clone();
    assert!(!lu.state.reset());
    assert!(!lu.state.nexus_lost(&a()));
    assert_eq!(lu.state, before);
}

#[test]
fn persistent_reserve_out_conflicts_while_spc2_reserved() {
    let mut lu = Lu::default();
    reserve_spc2(&mut lu.state, &a()).unwrap();
    conflict(lu.out(&a(), sa::REGISTER, WE, 0, 1, 0));
    conflict(lu.out(&b(), sa::REGISTER_AND_IGNORE_EXISTING_KEY, WE, 0, 1, 0));
    assert!(lu.state.conflict(&a(), Access::Persistent));
    assert!(lu.state.conflict(&b(), Access::Persistent));
}

#[test]
fn spc2_reserve_and_release_conflict_while_anything_is_registered() {
    let mut lu = Lu::registered(1);
    assert_eq!(reserve_spc2(&mut lu.state, &a()), Err(Refusal::Conflict));
    assert_eq!(release_spc2(&mut lu.state, &b()), Err(Refusal::Conflict));
    assert!(lu.state.conflict(&b(), Access::Reserve));
    assert!(lu.state.conflict(&a(), Access::Release));
}

#[test]
fn spc2_reserve_and_release_from_the_holder_or_a_sharing_registrant_are_no_ops() {
    // SPC-4 exceptions to SPC-2 RESERVE and RELEASE behavior.
    for kind in PrType::ALL {
        let mut lu = Lu::registered(2);
        lu.reserve(&a(), 1, kind);
        let before = lu.state.clone();
        assert_eq!(reserve_spc2(&mut lu.state, &a()), Ok(()));
        assert_eq!(release_spc2(&mut lu.state, &a()), Ok(()));
        let b_exempt = kind.shared_with_registrants();
        assert_eq!(
            reserve_spc2(&mut lu.state, &b()).is_ok(),
            b_exempt,
            "{kind:?}"
        );
        assert_eq!(lu.state.conflict(&b(), Access::Release), !b_exempt);
        assert_eq!(reserve_spc2(&mut lu.state, &c()), Err(Refusal::Conflict));
        assert_eq!(lu.state, before);
    }
}
