//! The conflict check: SPC-4's and SBC-3's tables of commands allowed in the presence of each
//! persistent reservation type, and SPC-2 RESERVE reservations.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Holder,
    Registered,
    Unregistered,
}

/// (reads allowed, writes allowed) for a nexus that is `who` under `kind`: SPC-4 / SBC-3.
fn allowed(kind: PrType, who: Who) -> (bool, bool) {
    match (who, kind) {
        (Who::Holder, _) => (true, true),
        (Who::Registered, k) if k.shared_with_registrants() => (true, true),
        (_, k) if k.reads_shared() => (true, false),
        _ => (false, false),
    }
}

#[test]
fn nothing_conflicts_while_nothing_is_reserved_or_registered() {
    let s = PrState::new();
    for access in [
        Access::Always,
        Access::Read,
        Access::Write,
        Access::Persistent,
        Access::Reserve,
        Access::Release,
        Access::PreventAllow,
        Access::StartStop,
    ] {
        assert!(!s.conflict(&a(), access));
    }
    assert!(IDLE.is_idle());
}

#[test]
fn registrations_alone_block_nothing_but_spc2_reserve_and_release() {
    let lu = Lu::registered(1);
    for n in [a(), b()] {
        for access in [
            Access::Always,
            Access::Read,
            Access::Write,
            Access::Persistent,
        ] {
            assert!(!lu.state.conflict(&n, access));
        }
        assert!(lu.state.conflict(&n, Access::Reserve));
    }
}

#[test]
fn persistent_reservation_conflict_table() {
    for kind in PrType::ALL {
        let mut lu = Lu::registered(2);
        lu.reserve(&a(), 1, kind);
        let cases = [
            (a(), Who::Holder),
            (b(), Who::Registered),
            (c(), Who::Unregistered),
        ];
        for (n, who) in cases {
            // Under all-registrants types every registrant holds the reservation.
            let who = if who == Who::Registered && kind.all_registrants() {
                Who::Holder
            } else {
                who
            };
            let (read, write) = allowed(kind, who);
            let s = &lu.state;
            assert_eq!(!s.conflict(&n, Access::Read), read, "{kind:?} {who:?} read");
            assert_eq!(
                !s.conflict(&n, Access::Write),
                write,
                "{kind:?} {who:?} write"
            );
            assert!(!s.conflict(&n, Access::Always), "{kind:?} {who:?}");
            assert!(!s.conflict(&n, Access::Persistent), "{kind:?} {who:?}");
            // Unsettled conditional kinds are taken as writes.
            assert_eq!(!s.conflict(&n, Access::PreventAllow), write);
            assert_eq!(!s.conflict(&n, Access::StartStop), write);
        }
    }
}

#[test]
fn conditional_kinds_settle_on_the_cdb() {
    let prevent = |p: u8| [0x1E, 0, 0, 0, p, 0];
    assert_eq!(Access::PreventAllow.for_cdb(&prevent(0)), Access::Always);
    assert_eq!(Access::PreventAllow.for_cdb(&prevent(1)), Access::Write);
    assert_eq!(Access::PreventAllow.for_cdb(&prevent(2)), Access::Write);
    let start_stop = |b4: u8| [0x1B, 0, 0, 0, b4, 0];
    assert_eq!(Access::StartStop.for_cdb(&start_stop(0x01)), Access::Always);
    assert_eq!(Access::StartStop.for_cdb(&start_stop(0x00)), Access::Write);
    assert_eq!(
        Access::StartStop.for_cdb(&start_stop(0x11)),
        Access::Write,
        "POWER CONDITION"
    );
    assert_eq!(Access::StartStop.for_cdb(&[0x1B]), Access::Write);
    assert_eq!(Access::Read.for_cdb(&[]), Access::Read);
}

#[test]
fn an_spc2_reservation_is_the_holders_alone() {
    let mut s = PrState::new();
    reserve_spc2(&mut s, &a()).unwrap();
    for access in [Access::Always, Access::Read, Access::Write, Access::Release] {
        assert!(!s.conflict(&a(), access), "{access:?}");
    }
    assert!(!s.conflict(&a(), Access::Reserve));
    for access in [Access::Read, Access::Write, Access::Reserve] {
        assert!(s.conflict(&b(), access), "{access:?}");
    }
    // INQUIRY, REQUEST SENSE, REPORT LUNS and the like; RELEASE is a no-op for others.
    assert!(!s.conflict(&b(), Access::Always));
    assert!(!s.conflict(&b(), Access::Release));
    // SPC-2: PERSISTENT RESERVE IN and OUT conflict whoever sends them.
    assert!(s.conflict(&a(), Access::Persistent));
    assert!(s.conflict(&b(), Access::Persistent));
}

#[test]
fn unit_attention_targets_cover_registrations_but_the_issuer() {
    let t = UaTarget {
        nexuses: NexusSet {
            initiator: TransportId {
                name: "iqn.1994-05.com.example:a".into(),
                isid: None,
            },
            relative_port: None,
        },
        except: Some(a()),
    };
    assert!(!t.includes(&a()));
    assert!(t.includes(&host('a', 1, 2)));
    assert!(t.includes(&host('a', 3, 1)));
    assert!(!t.includes(&b()));
}
