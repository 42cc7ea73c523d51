//! ALUA through two portals of one daemon: each `[[target.port_group]]` is a target port with
//! its own relative port identifier and access state; the logical unit is the same one through
//! both (same identifiers, one reservation state), and a standby port refuses media access.

mod common;

use common::daemon::free_port;
use common::{cdb, keys, Daemon, Initiator, TARGET};

const NOT_READY: u8 = 0x02;

/// The configuration of portals A (group 1, active/optimized) and B (group 2, `b_state`).
fn two_port_config(a: u16, b: u16, b_state: &str) -> String {
    format!(
        "portals = [\"127.0.0.1:{a}\", \"127.0.0.1:{b}\"]\n\
         [[target]]\nname = \"{TARGET}\"\n\
         [[target.lun]]\npath = \"ram:4MiB\"\n\
         [[target.port_group]]\nid = 1\nportals = [\"127.0.0.1:{a}\"]\n\
         [[target.port_group]]\nid = 2\nportals = [\"127.0.0.1:{b}\"]\nstate = \"{b_state}\"\n"
    )
}

/// A daemon with portals A (group 1, active/optimized) and B (group 2, `b_state`); returns it
/// and B's port.
fn two_port_daemon(b_state: &str) -> (Daemon, u16) {
    let b = free_port();
    let d = Daemon::start_config(|a| two_port_config(a, b, b_state));
    (d, b)
}

fn session_through(port: u16, isid: u8) -> Initiator {
    let mut ini = Initiator::connect(port);
    ini.isid[5] = isid;
    ini.login(Some(TARGET), &[]);
    // REQUEST SENSE reports (and clears) the power-on unit attention in any ALUA state, where
    // TEST UNIT READY would get NOT READY on a standby port.
    let sense = ini.read(0, &[0x03, 0, 0, 0, 252, 0], 252);
    sense.assert_good();
    assert_eq!(sense.data[2] & 0x0f, 0x06, "the power-on unit attention");
    ini
}

/// VPD 83h designators as (association and type byte, designator).
fn designators(ini: &mut Initiator) -> Vec<(u8, Vec<u8>)> {
    let r = ini.read(0, &cdb::inquiry(true, 0x83, 512), 512);
    r.assert_good();
    let d = &r.data;
    let mut out = Vec::new();
    let mut at = 4;
    while at + 4 <= d.len() {
        let len = usize::from(d[at + 3]);
        out.push((d[at + 1] & 0x3F, d[at + 4..at + 4 + len].to_vec()));
        at += 4 + len;
    }
    out
}

fn relative_port(ini: &mut Initiator) -> u16 {
    let d = designators(ini);
    let (_, rel) = d.iter().find(|(t, _)| *t == 0x14).expect("relative port");
    u16::from_be_bytes([rel[2], rel[3]])
}

/// REPORT TARGET PORT GROUPS: (group id, state) of each group.
fn port_groups(ini: &mut Initiator) -> Vec<(u16, u8)> {
    let r = ini.read(0, &[0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    r.assert_good();
    r.data[4..]
        .chunks(12)
        .map(|g| (u16::from_be_bytes([g[2], g[3]]), g[0] & 0x0f))
        .collect()
}

#[test]
fn each_portal_group_is_a_target_port_of_one_logical_unit() {
    let (d, b) = two_port_daemon("active-non-optimized");
    let mut a_side = session_through(d.port(), 1);
    let mut b_side = session_through(b, 2);

    let inquiry = a_side.read(0, &cdb::inquiry(false, 0, 96), 96);
    assert_eq!(inquiry.data[5] & 0x30, 0x10, "TPGS: implicit ALUA");
    assert_eq!(relative_port(&mut a_side), 1);
    assert_eq!(relative_port(&mut b_side), 2);
    let naa = |ini: &mut Initiator| designators(ini).into_iter().find(|(t, _)| *t == 0x03);
    assert_eq!(naa(&mut a_side), naa(&mut b_side), "one logical unit");
    for ini in [&mut a_side, &mut b_side] {
        assert_eq!(port_groups(ini), vec![(1, 0), (2, 1)]);
    }

    // Data written through one port is read through the other.
    a_side
        .write(0, &cdb::write10(3, 1), &[0x5a; 512])
        .assert_good();
    let r = b_side.read(0, &cdb::read10(3, 1), 512);
    r.assert_good();
    assert_eq!(r.data, vec![0x5a; 512]);
}

#[test]
fn a_standby_port_answers_identification_and_refuses_media_access() {
    let (d, b) = two_port_daemon("standby");
    let mut standby = session_through(b, 2);
    standby.test_unit_ready(0).assert_sense(NOT_READY, 0x04);
    let r = standby.read(0, &cdb::read10(0, 1), 512);
    let s = r.sense().expect("sense");
    assert_eq!(
        (s.key, s.asc, s.ascq),
        (NOT_READY, 0x04, 0x0B),
        "TARGET PORT IN STANDBY STATE"
    );
    assert_eq!(port_groups(&mut standby), vec![(1, 0), (2, 2)]);
    let mut active = session_through(d.port(), 1);
    active.read(0, &cdb::read10(0, 1), 512).assert_good();
}

#[test]
fn discovery_lists_each_portal_with_its_group_tag_and_logins_elsewhere_are_refused() {
    let b = free_port();
    let c = free_port();
    let d = Daemon::start_config(|a| {
        format!(
            "portals = [\"127.0.0.1:{a}\", \"127.0.0.1:{b}\", \"127.0.0.1:{c}\"]\n\
             [[target]]\nname = \"{TARGET}\"\n\
             [[target.lun]]\npath = \"ram:4MiB\"\n\
             [[target.port_group]]\nid = 7\nportals = [\"127.0.0.1:{a}\"]\n\
             [[target.port_group]]\nid = 9\nportals = [\"127.0.0.1:{b}\"]\n"
        )
    });
    let mut disco = Initiator::connect(c);
    disco.login(None, &[]);
    let answer = disco.send_targets();
    let mut addresses = keys::get_all(&answer, "TargetAddress");
    addresses.sort();
    let mut want = vec![
        format!("127.0.0.1:{},7", d.port()),
        format!("127.0.0.1:{b},9"),
    ];
    want.sort();
    assert_eq!(addresses, want, "portal C is in no group of the target");

    let n = Initiator::connect(b).login(Some(TARGET), &[]);
    assert_eq!(keys::get(&n.target_keys, "TargetPortalGroupTag"), Some("9"));
    let refused = Initiator::connect(c)
        .try_login(Some(TARGET), &[])
        .expect_err("the target is not reached through portal C");
    assert_eq!((refused.status.class, refused.status.detail), (0x02, 0x03));
}

/// Both sessions hear first (SPC-4 ASYMMETRIC ACCESS STATE CHANGED), then see, that group 2
/// went standby; B's port then refuses media access.
fn group_2_went_standby(a_side: &mut Initiator, b_side: &mut Initiator) {
    for ini in [&mut *a_side, &mut *b_side] {
        let s = ini.test_unit_ready(0).sense().expect("a unit attention");
        assert_eq!((s.key, s.asc, s.ascq), (0x06, 0x2a, 0x06));
        assert_eq!(port_groups(ini), vec![(1, 0), (2, 2)]);
    }
    let s = b_side
        .read(0, &cdb::read10(0, 1), 512)
        .sense()
        .expect("refused");
    assert_eq!((s.key, s.asc, s.ascq), (NOT_READY, 0x04, 0x0B));
}

#[test]
fn ctl_alua_set_changes_a_group_for_every_session_and_tells_them() {
    let (d, b) = two_port_daemon("active-non-optimized");
    let mut b_side = session_through(b, 2);
    let mut a_side = session_through(d.port(), 1);

    let out = d.ctl_ok(&["alua", "set", "--target", TARGET, "--group", "2", "standby"]);
    assert!(out.contains("port group 2"), "{out}");
    group_2_went_standby(&mut a_side, &mut b_side);
    // A session that logs in now, and the saved configuration, say the same.
    let mut late = session_through(b, 3);
    assert_eq!(port_groups(&mut late), vec![(1, 0), (2, 2)]);
    assert!(d.ctl_ok(&["save"]).contains("state = \"standby\""));

    // A later change of anything else rebuilds the target: the state stays, and still reaches
    // the sessions that logged in before.
    d.ctl_ok(&["lun", "add", "--target", TARGET, "ram:1MiB"]);
    d.ctl_ok(&[
        "alua",
        "set",
        "--target",
        TARGET,
        "--group",
        "2",
        "active-optimized",
    ]);
    b_side.clear_unit_attentions();
    b_side.read(0, &cdb::read10(0, 1), 512).assert_good();

    let (code, _, err) = d.ctl(&["alua", "set", "--target", TARGET, "--group", "5", "standby"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("no port group 5"), "{err}");
    let (code, _, err) = d.ctl(&["alua", "set", "--target", TARGET, "--group", "2", "offline"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("expected one of"), "{err}");
}

/// A reload that changes a port group's state tells every nexus, as `ctl alua set` does
/// (SPC-4 ASYMMETRIC ACCESS STATE CHANGED), once the new state is what they read; one that
/// leaves the states as they are raises nothing.
#[test]
fn a_reload_that_changes_a_group_state_tells_every_session() {
    let (d, b) = two_port_daemon("active-non-optimized");
    let mut b_side = session_through(b, 2);
    let mut a_side = session_through(d.port(), 1);
    let config = d.dir().join("ringtgt.toml");

    std::fs::write(&config, two_port_config(d.port(), b, "standby")).unwrap();
    d.ctl_ok(&["reload"]);
    group_2_went_standby(&mut a_side, &mut b_side);

    // The same states again (the target's alias changed instead): no unit attention.
    let same = two_port_config(d.port(), b, "standby").replace(
        &format!("name = \"{TARGET}\"\n"),
        &format!("name = \"{TARGET}\"\nalias = \"renamed\"\n"),
    );
    std::fs::write(&config, same).unwrap();
    assert!(d.ctl_ok(&["reload"]).contains("attributes applied"));
    a_side.test_unit_ready(0).assert_good();
}
