//! REGISTER, REGISTER AND IGNORE EXISTING KEY, ALL_TG_PT and APTPL (SPC-4 register behaviors).

use super::*;

#[test]
fn register_adds_the_key_and_bumps_prgeneration() {
    let mut lu = Lu::default();
    let fx = lu.out(&a(), sa::REGISTER, WE, 0, 0xA1, 0).unwrap();
    assert_eq!(fx, OutEffects::default(), "no UA, nothing to persist");
    assert_eq!(lu.keys(), [0xA1]);
    assert_eq!(lu.state.generation(), 1);
    assert_eq!(lu.key_of(&a()), Some(0xA1));
    assert!(lu.key_of(&b()).is_none());
}

#[test]
fn register_from_an_unregistered_nexus_with_a_reservation_key_conflicts() {
    let mut lu = Lu::default();
    conflict(lu.out(&a(), sa::REGISTER, WE, 7, 0xA1, 0));
    assert!(lu.state.is_idle());
}

#[test]
fn unregistering_an_unregistered_nexus_is_good_and_changes_nothing() {
    let mut lu = Lu::default();
    lu.out(&a(), sa::REGISTER, WE, 0, 0, 0).unwrap();
    lu.out(&a(), sa::REGISTER_AND_IGNORE_EXISTING_KEY, WE, 9, 0, 0)
        .unwrap();
    assert_eq!(lu.state.generation(), 0);
    assert!(lu.state.is_idle());
}

#[test]
fn reregistering_needs_the_registered_key() {
    // libiscsi ProutRegister.Simple: prout_reregister_key_fails sends REGISTER with
    // RESERVATION KEY 0 from a registered nexus and wants RESERVATION CONFLICT.
    let mut lu = Lu::default();
    lu.register(&a(), 0xA1);
    conflict(lu.out(&a(), sa::REGISTER, WE, 0, 0xA2, 0));
    conflict(lu.out(&a(), sa::REGISTER, WE, 0xA2, 0xA3, 0));
    assert_eq!(lu.keys(), [0xA1]);
    lu.out(&a(), sa::REGISTER, WE, 0xA1, 0xA2, 0).unwrap();
    assert_eq!(lu.keys(), [0xA2]);
    assert_eq!(lu.state.generation(), 2);
    lu.out(&a(), sa::REGISTER, WE, 0xA2, 0, 0).unwrap();
    assert!(lu.keys().is_empty());
    assert_eq!(lu.state.generation(), 3);
}

#[test]
fn register_and_ignore_existing_key_replaces_any_key() {
    let mut lu = Lu::default();
    lu.register(&a(), 0xA1);
    lu.out(
        &a(),
        sa::REGISTER_AND_IGNORE_EXISTING_KEY,
        WE,
        0x55,
        0xA2,
        0,
    )
    .unwrap();
    assert_eq!(lu.keys(), [0xA2]);
    lu.out(&a(), sa::REGISTER_AND_IGNORE_EXISTING_KEY, WE, 0x55, 0, 0)
        .unwrap();
    assert!(lu.keys().is_empty());
}

#[test]
fn each_nexus_registers_its_own_key_and_keys_may_repeat() {
    let mut lu = Lu::registered(1);
    lu.register(&b(), 1);
    lu.register(&host('a', 2, 1), 3);
    assert_eq!(lu.keys(), [1, 1, 3]);
    assert_eq!(lu.state.generation(), 3);
}

#[test]
fn unregistering_the_holder_releases_the_reservation() {
    // libiscsi ProutReserve.Ownership{EA,WE,EARO,WERO}: the holder unregisters, the unit is
    // no longer reserved.
    for kind in [WE, EA, WE_RO, EA_RO] {
        let mut lu = Lu::registered(2);
        lu.reserve(&a(), 1, kind);
        let fx = lu.out(&a(), sa::REGISTER, WE, 1, 0, 0).unwrap();
        assert!(lu.state.reservation().is_none(), "{kind:?}");
        // SPC-4: a registrants-only reservation released this way tells the other registrants.
        let released = told(&fx, UnitAttention::RESERVATIONS_RELEASED);
        assert_eq!(
            released,
            Vec::from_iter(kind.registrants_only().then(b)),
            "{kind:?}"
        );
    }
}

#[test]
fn unregistering_a_registrant_that_is_not_the_holder_keeps_the_reservation() {
    let mut lu = Lu::registered(2);
    lu.reserve(&a(), 1, EA_RO);
    let fx = lu.out(&b(), sa::REGISTER, WE, 2, 0, 0).unwrap();
    assert!(fx.unit_attentions.is_empty());
    assert!(lu.state.is_holder(&a()));
}

#[test]
fn an_all_registrants_reservation_lasts_until_the_last_registrant_leaves() {
    // libiscsi ProutReserve.Ownership{EAAR,WEAR}: the reserving nexus unregisters, the
    // reservation stays for the other registrant, which can release it.
    for kind in [WE_AR, EA_AR] {
        let mut lu = Lu::registered(2);
        lu.reserve(&a(), 1, kind);
        lu.out(&a(), sa::REGISTER, WE, 1, 0, 0).unwrap();
        assert_eq!(lu.kind(), Some(kind));
        assert!(lu.state.is_holder(&b()) && !lu.state.is_holder(&a()));
        lu.out(&b(), sa::REGISTER, WE, 2, 0, 0).unwrap();
        assert!(lu.state.reservation().is_none(), "{kind:?}");
        assert!(lu.state.is_idle());
    }
}

#[test]
fn all_tg_pt_registers_the_initiator_port_through_every_target_port() {
    let mut lu = Lu::default();
    lu.out(&a(), sa::REGISTER, WE, 0, 0xA1, ALL_TG_PT).unwrap();
    let a2 = host('a', 1, 2);
    assert_eq!(lu.key_of(&a2), Some(0xA1));
    assert_eq!(lu.state.registrations().len(), 1);
    // The same port through port 2 is registered: REGISTER there needs the key.
    conflict(lu.out(&a2, sa::REGISTER, WE, 0, 0xA2, 0));
    lu.reserve(&a2, 0xA1, WE);
    assert!(lu.state.is_holder(&a2) && !lu.state.is_holder(&a()));
    // Another ISID of the same name is another initiator port.
    assert!(lu.key_of(&host('a', 2, 1)).is_none());
    // Unregistering through either port removes the one registration.
    lu.out(&a(), sa::REGISTER, WE, 0xA1, 0, 0).unwrap();
    assert!(lu.key_of(&a2).is_none());
    assert!(lu.state.is_idle());
}

#[test]
fn all_tg_pt_over_a_registration_through_another_port_conflicts() {
    let mut lu = Lu::default();
    let a2 = host('a', 1, 2);
    lu.register(&a2, 5);
    conflict(lu.out(&a(), sa::REGISTER, WE, 0, 6, ALL_TG_PT));
    lu.out(&a(), sa::REGISTER, WE, 0, 6, 0).unwrap();
    assert_eq!(lu.keys(), [5, 6]);
}

#[test]
fn aptpl_says_when_to_persist_and_when_to_forget() {
    let mut lu = Lu::default();
    let fx = lu.out(&a(), sa::REGISTER, WE, 0, 1, APTPL).unwrap();
    assert!(fx.persist && lu.state.aptpl());
    // RESERVE changes state (not PRgeneration): persisted while APTPL is active.
    assert!(lu.out(&a(), sa::RESERVE, WE, 1, 0, 0).unwrap().persist);
    // A refused or no-op command persists nothing.
    assert!(!lu.out(&a(), sa::RESERVE, WE, 1, 0, 0).unwrap().persist);
    conflict(lu.out(&b(), sa::RELEASE, WE, 0, 0, 0));
    // APTPL cleared: persist once more (the integrator deletes the saved state).
    let fx = lu.out(&b(), sa::REGISTER, WE, 0, 2, 0).unwrap();
    assert!(fx.persist && !lu.state.aptpl());
    assert!(!lu.out(&b(), sa::REGISTER, WE, 2, 3, 0).unwrap().persist);
    // APTPL is ignored by the service actions that do not register.
    assert!(!lu.out(&a(), sa::RELEASE, WE, 1, 0, APTPL).unwrap().persist);
    assert!(!lu.state.aptpl());
}

#[test]
fn registrations_are_bounded() {
    let mut lu = Lu::default();
    for i in 0..MAX_REGISTRATIONS {
        let n = nexus(
            "iqn.1994-05.com.example:many",
            (i % 250) as u8,
            (i / 250) as u16,
        );
        lu.register(&n, 1);
    }
    let s = refused_with(lu.out(&nexus("iqn.x:late", 1, 1), sa::REGISTER, WE, 0, 1, 0));
    assert_eq!(s, Sense::insufficient_registration_resources());
}

#[test]
fn prgeneration_wraps() {
    let mut lu = Lu::default();
    lu.state.generation = u32::MAX;
    lu.register(&a(), 1);
    assert_eq!(lu.state.generation(), 0);
}
