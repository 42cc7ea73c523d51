//! Persistent reservations (SPC-4) and SPC-2 RESERVE/RELEASE against the real daemon, with the
//! two initiators on different reactors: one unit's reservation is enforced on every core,
//! PREEMPT AND ABORT ends the preempted initiator's tasks wherever they run, APTPL state
//! survives a SIGKILL, and an SPC-2 reservation ends with its holder's session or a reset.

mod common;

use common::pr::*;
use common::{cdb, Daemon, Initiator};
use ringtgt::pdu::tmf::{TmfFunction, TmfResponseCode};

const OTHER: &str = "iqn.2026-12.test:other-host";

fn write_status(ini: &mut Initiator) -> u8 {
    ini.write(0, &cdb::write10(0, 1), &[0x42; 512]).status
}

fn read_status(ini: &mut Initiator) -> u8 {
    ini.read(0, &cdb::read10(0, 1), 512).status
}

/// Unit attentions a nexus has pending (ASC, ASCQ), taken with TEST UNIT READY until GOOD.
fn unit_attentions(ini: &mut Initiator) -> Vec<(u8, u8)> {
    let mut seen = Vec::new();
    loop {
        let r = ini.test_unit_ready(0);
        if r.status == 0 {
            return seen;
        }
        let s = r
            .assert_sense(cdb::UNIT_ATTENTION, r.sense().unwrap().asc)
            .sense()
            .unwrap();
        seen.push((s.asc, s.ascq));
        assert!(seen.len() < 8, "unit attentions never end: {seen:?}");
    }
}

/// A with the default initiator name on core 0, B with another name on core 1.
fn two_initiators(d: &Daemon) -> (Initiator, Initiator) {
    let keys = [("InitialR2T", "Yes"), ("ImmediateData", "No")];
    let a = common::session_on_core(d, 0, 0x31, &keys);
    let b = common::session_on_core_as(d, 1, OTHER, 0x32, &keys);
    (a, b)
}

#[test]
fn a_reservation_taken_on_one_core_is_enforced_on_the_other() {
    let d = common::daemon(&["--cores", "2"]);
    let (mut a, mut b) = two_initiators(&d);
    assert_eq!(prout(&mut a, REGISTER, 0, 0, 0xA, false), 0);
    assert_eq!(prout(&mut a, RESERVE, WRITE_EXCLUSIVE, 0xA, 0, false), 0);

    assert_eq!(read_reservation(&mut b), Some((0xA, WRITE_EXCLUSIVE)));
    assert_eq!(write_status(&mut b), RESERVATION_CONFLICT);
    assert_eq!(read_status(&mut b), 0, "Write Exclusive lets others read");
    assert_eq!(write_status(&mut a), 0, "the holder writes");

    assert_eq!(prout(&mut a, RELEASE, WRITE_EXCLUSIVE, 0xA, 0, false), 0);
    assert_eq!(read_reservation(&mut b), None);
    assert_eq!(write_status(&mut b), 0);
}

#[test]
fn preempt_and_abort_ends_the_preempted_initiators_tasks_on_another_core() {
    let d = common::daemon(&["--cores", "2"]);
    let (mut a, mut b) = two_initiators(&d);
    assert_eq!(prout(&mut a, REGISTER, 0, 0, 0xA, false), 0);
    assert_eq!(prout(&mut a, RESERVE, EXCLUSIVE_ACCESS, 0xA, 0, false), 0);
    assert_eq!(read_status(&mut b), RESERVATION_CONFLICT);

    // A's write waits for its data (an R2T is out) when B preempts A and aborts its tasks.
    let (cmd, r2t) = a.write_awaiting_data(0, &cdb::write10(8, 8), 4096);
    assert_eq!(prout(&mut b, REGISTER, 0, 0, 0xB, false), 0);
    assert_eq!(
        prout(&mut b, PREEMPT_AND_ABORT, EXCLUSIVE_ACCESS, 0xB, 0xA, false),
        0
    );
    assert_eq!(read_reservation(&mut b), Some((0xB, EXCLUSIVE_ACCESS)));

    // A's task is gone: its data is dropped and nothing answers it.
    a.assert_write_ended(&cmd, &r2t);
    let uas = unit_attentions(&mut a);
    assert!(
        uas.contains(&(0x2a, 0x05)),
        "REGISTRATIONS PREEMPTED: {uas:?}"
    );
    assert!(
        uas.contains(&(0x2f, 0x00)),
        "COMMANDS CLEARED BY ANOTHER INITIATOR: {uas:?}"
    );
    assert_eq!(read_status(&mut a), RESERVATION_CONFLICT);
    assert_eq!(write_status(&mut b), 0);
    assert_eq!(unit_attentions(&mut b), Vec::<(u8, u8)>::new());
}

#[test]
fn an_aptpl_reservation_survives_a_sigkill_restart() {
    let mut d = common::daemon(&["--cores", "2"]);
    let (mut a, _) = two_initiators(&d);
    assert_eq!(prout(&mut a, REGISTER, 0, 0, 0xA, true), 0);
    assert_eq!(prout(&mut a, RESERVE, WRITE_EXCLUSIVE, 0xA, 0, false), 0);
    // Completed means durable: kill at once, without any chance to flush.
    d.kill_and_restart();
    assert!(d.log().contains("restored persistent reservations"));

    let (mut a, mut b) = two_initiators(&d);
    assert_eq!(read_reservation(&mut b), Some((0xA, WRITE_EXCLUSIVE)));
    assert_eq!(write_status(&mut b), RESERVATION_CONFLICT);
    assert_eq!(write_status(&mut a), 0, "the same I_T nexus still holds it");

    // Without APTPL the next restart forgets everything.
    assert_eq!(prout(&mut a, REGISTER, 0, 0xA, 0xA, false), 0);
    d.kill_and_restart();
    let (_, mut b) = two_initiators(&d);
    assert_eq!(read_reservation(&mut b), None);
    assert_eq!(write_status(&mut b), 0);
}

#[test]
fn an_spc2_reservation_ends_with_its_holders_session_and_on_a_lun_reset() {
    let d = common::daemon(&["--cores", "2"]);
    let (mut a, mut b) = two_initiators(&d);
    a.non_data(0, &[0x16, 0, 0, 0, 0, 0]).assert_good();
    assert_eq!(write_status(&mut b), RESERVATION_CONFLICT);
    b.test_unit_ready(0).assert_good();
    assert_eq!(write_status(&mut a), 0);
    // Released before the Logout Response: the unit is free the moment A has it.
    a.logout();
    assert_eq!(write_status(&mut b), 0, "still reserved after A's logout");

    b.non_data(0, &[0x16, 0, 0, 0, 0, 0]).assert_good();
    let mut a = common::session_on_core(&d, 0, 0x31, &[]);
    assert_eq!(write_status(&mut a), RESERVATION_CONFLICT);
    assert_eq!(
        a.task_management(TmfFunction::LOGICAL_UNIT_RESET, 0, 0, 0),
        TmfResponseCode::COMPLETE
    );
    assert_eq!(unit_attentions(&mut a), vec![(0x29, 0x03)]);
    assert_eq!(write_status(&mut a), 0);
}
