//! Task management that reaches across sessions: a LUN RESET from one initiator ends another
//! initiator's tasks on that unit (on whichever core it lives) and every nexus hears of it.

mod common;

use std::time::Duration;

use common::{cdb, Initiator};
use ringtgt::pdu::tmf::{TmfFunction, TmfResponseCode};
use ringtgt::pdu::Opcode;

#[test]
fn lun_reset_ends_other_initiators_tasks_and_raises_unit_attentions_everywhere() {
    let d = common::daemon(&["--cores", "2"]);
    let mut a = common::session(&d, &[("InitialR2T", "Yes"), ("ImmediateData", "No")]);
    let mut b = Initiator::connect(d.port());
    b.initiator_name = "iqn.2026-12.test:other".into();
    b.login(Some(common::TARGET), &[]);
    b.clear_unit_attentions();

    // A's write waits for its data (an R2T is out) when B resets the unit.
    let cmd = a.command_pdu(0, &cdb::write10(0, 8), false, true, 4096);
    a.send_pdu(&cmd.encode(), &[], &[]);
    let (r2t, _) = a.recv();
    assert_eq!(r2t.opcode(), Opcode::R2T);
    assert_eq!(
        b.task_management(TmfFunction::LOGICAL_UNIT_RESET, 0, 0, 0),
        TmfResponseCode::COMPLETE
    );
    // A's task is gone: its data is dropped and nothing answers it.
    a.send_data_out(
        cmd.lun,
        cmd.itt,
        ringtgt::pdu::scsi::R2t::decode(&r2t).ttt,
        0,
        &[7; 4096],
    );
    assert!(a.recv_within(Duration::from_millis(300)).is_none());
    // Both nexuses are told, on their next command to the unit.
    for ini in [&mut a, &mut b] {
        ini.test_unit_ready(0).assert_sense(0x06, 0x29);
        ini.test_unit_ready(0).assert_good();
    }
    // Only LUN 0 was reset.
    a.test_unit_ready(1).assert_good();
}
