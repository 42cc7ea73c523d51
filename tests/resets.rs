//! Task management that reaches across sessions: a LUN RESET from one initiator ends another
//! initiator's tasks on that unit (on whichever core it lives) and every nexus hears of it.

mod common;

use common::{cdb, Initiator};
use ringtgt::pdu::tmf::{TmfFunction, TmfResponseCode};

#[test]
fn lun_reset_ends_other_initiators_tasks_and_raises_unit_attentions_everywhere() {
    let d = common::daemon(&["--cores", "2"]);
    let mut a = common::session(&d, &[("InitialR2T", "Yes"), ("ImmediateData", "No")]);
    let mut b = Initiator::connect(d.port());
    b.initiator_name = "iqn.2026-12.test:other".into();
    b.login(Some(common::TARGET), &[]);
    b.clear_unit_attentions();

    // A's write waits for its data (an R2T is out) when B resets the unit.
    let (cmd, r2t) = a.write_awaiting_data(0, &cdb::write10(0, 8), 4096);
    assert_eq!(
        b.task_management(TmfFunction::LOGICAL_UNIT_RESET, 0, 0, 0),
        TmfResponseCode::COMPLETE
    );
    // A's task is gone: its data is dropped and nothing answers it.
    a.assert_write_ended(&cmd, &r2t);
    // Both nexuses are told, on their next command to the unit.
    for ini in [&mut a, &mut b] {
        ini.test_unit_ready(0).assert_sense(0x06, 0x29);
        ini.test_unit_ready(0).assert_good();
    }
    // Only LUN 0 was reset.
    a.test_unit_ready(1).assert_good();
}

/// PREVENT ALLOW MEDIUM REMOVAL (SBC-3), PREVENT = `prevent`.
fn prevent_allow(prevent: bool) -> Vec<u8> {
    vec![0x1e, 0, 0, 0, prevent as u8, 0]
}

/// START STOP UNIT with LOEJ: eject (start = false) or load.
fn eject(start: bool) -> Vec<u8> {
    vec![0x1b, 0, 0, 0, 0x02 | start as u8, 0]
}

#[test]
fn lun_reset_from_another_initiator_ends_every_prevention_of_medium_removal() {
    let d = common::Daemon::start_config(|port| {
        format!(
            "portals = [\"127.0.0.1:{port}\"]\n\
             [[target]]\nname = \"{}\"\n\
             [[target.lun]]\npath = \"ram:4MiB\"\nremovable = true\n",
            common::TARGET
        )
    });
    let mut a = common::session(&d, &[]);
    let mut b = Initiator::connect(d.port());
    b.initiator_name = "iqn.2026-12.test:other".into();
    b.login(Some(common::TARGET), &[]);
    b.clear_unit_attentions();

    a.non_data(0, &prevent_allow(true)).assert_good();
    // MEDIUM REMOVAL PREVENTED (53h/02h) while A holds it.
    b.non_data(0, &eject(false))
        .assert_sense(cdb::ILLEGAL_REQUEST, 0x53);
    assert_eq!(
        b.task_management(TmfFunction::LOGICAL_UNIT_RESET, 0, 0, 0),
        TmfResponseCode::COMPLETE
    );
    b.test_unit_ready(0).assert_sense(cdb::UNIT_ATTENTION, 0x29);
    b.non_data(0, &eject(false)).assert_good();
    b.test_unit_ready(0).assert_sense(cdb::NOT_READY, 0x3a);
    b.non_data(0, &eject(true)).assert_good();
    b.test_unit_ready(0).assert_good();
}
