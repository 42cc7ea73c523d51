//! Task management to RFC 7143 and RFC 7144: aborts of commands still waiting for their CmdSN
//! or not received yet, the QUERY functions and the I_T nexus reset.

use super::*;
use crate::pdu::tmf::{TmfFunction, TmfRequest, TmfResponse, TmfResponseCode};

fn tmf(p: &mut Pair, function: TmfFunction, referenced: u32, ref_cmd_sn: u32) -> TmfResponse {
    let req = TmfRequest {
        immediate: true,
        function,
        lun: 0,
        itt: 0x7000 + u32::from(function.0),
        referenced_task_tag: referenced,
        cmd_sn: p.cmd_sn,
        exp_stat_sn: 0,
        ref_cmd_sn,
        exp_data_sn: 0,
    };
    p.send(&req.encode(), &[]);
    let pdus = p.recv();
    let (b, _) = pdus
        .iter()
        .find(|(b, _)| b.opcode() == Opcode::TASK_MGMT_RESPONSE)
        .expect("TMF response");
    TmfResponse::decode(b)
}

const TUR: [u8; 6] = [0; 6];

#[test]
fn abort_task_drops_a_command_waiting_behind_a_cmdsn_gap() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &[]);
    let base = p.cmd_sn;
    p.cmd_sn = base + 1;
    p.command(2, &TUR, 0, false, false, &[]);
    assert_eq!(
        tmf(&mut p, TmfFunction::QUERY_TASK, 2, base + 1).response,
        TmfResponseCode::SUCCEEDED
    );
    let r = tmf(&mut p, TmfFunction::ABORT_TASK, 2, base + 1);
    assert_eq!(r.response, TmfResponseCode::COMPLETE);
    assert_eq!(
        tmf(&mut p, TmfFunction::QUERY_TASK, 2, base + 1).response,
        TmfResponseCode::COMPLETE
    );
    // Filling the gap delivers CmdSN base only: the aborted one is skipped, silently.
    p.cmd_sn = base;
    p.command(1, &TUR, 0, false, false, &[]);
    let itts: Vec<u32> = p.recv().iter().map(|(b, _)| b.itt()).collect();
    assert_eq!(itts, vec![1]);
    p.cmd_sn = base + 2;
    p.command(3, &TUR, 0, false, false, &[]);
    assert_eq!(response(&p.recv()).exp_cmd_sn, base + 3);
}

#[test]
fn abort_task_for_a_command_not_yet_received_consumes_its_cmdsn() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &[]);
    let base = p.cmd_sn;
    // The command with CmdSN base never arrived; the initiator aborts it by RefCmdSN.
    p.cmd_sn = base + 1;
    let r = tmf(&mut p, TmfFunction::ABORT_TASK, 99, base);
    assert_eq!(r.response, TmfResponseCode::COMPLETE);
    assert_eq!(r.exp_cmd_sn, base + 1, "CmdSN base counts as received");
    // A late copy is ignored; the next command runs.
    p.cmd_sn = base;
    p.command(99, &TUR, 0, false, false, &[]);
    assert!(p.recv().is_empty());
    p.cmd_sn = base + 1;
    p.command(4, &TUR, 0, false, false, &[]);
    assert_eq!(response(&p.recv()).itt, 4);
}

#[test]
fn abort_task_of_an_unknown_task_outside_the_window_says_so() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &[]);
    let far = p.cmd_sn.wrapping_add(1000);
    let r = tmf(&mut p, TmfFunction::ABORT_TASK, 55, far);
    assert_eq!(r.response, TmfResponseCode::TASK_DOES_NOT_EXIST);
    // A command already answered is no longer in the window: nothing to abort (libiscsi's
    // AbortTaskSimpleAsync counts on it when its write wins the race).
    let done = p.cmd_sn;
    p.command(56, &TUR, 0, false, false, &[]);
    p.recv();
    let r = tmf(&mut p, TmfFunction::ABORT_TASK, 56, done);
    assert_eq!(r.response, TmfResponseCode::TASK_DOES_NOT_EXIST);
}

#[test]
fn query_task_set_and_query_async_event_report_without_changing_anything() {
    let keys = [("ImmediateData", "No"), ("InitialR2T", "Yes")];
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &keys);
    assert_eq!(
        tmf(&mut p, TmfFunction::QUERY_TASK_SET, 0, 0).response,
        TmfResponseCode::COMPLETE
    );
    p.command(5, &rw10(0x2a, 0, 1), 512, false, true, &[]);
    p.recv();
    assert_eq!(
        tmf(&mut p, TmfFunction::QUERY_TASK_SET, 0, 0).response,
        TmfResponseCode::SUCCEEDED
    );
    assert_eq!(
        tmf(&mut p, TmfFunction::QUERY_ASYNC_EVENT, 0, 0).response,
        TmfResponseCode::COMPLETE
    );
    p.publish_ua(0, crate::scsi::UnitAttention::CAPACITY_DATA_HAS_CHANGED);
    let r = tmf(&mut p, TmfFunction::QUERY_ASYNC_EVENT, 0, 0);
    assert_eq!(
        (r.response, r.additional_info),
        (TmfResponseCode::SUCCEEDED, [0x06, 0x2a, 0x09])
    );
    // Still pending: the next command gets it.
    p.command(6, &TUR, 0, false, false, &[]);
    assert_eq!(response(&p.recv()).status, 2);
}

#[test]
fn i_t_nexus_reset_ends_the_tasks_and_then_the_session() {
    let keys = [("ImmediateData", "No"), ("InitialR2T", "Yes")];
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &keys);
    p.command(5, &rw10(0x2a, 0, 1), 512, false, true, &[]);
    p.recv();
    let r = tmf(&mut p, TmfFunction::I_T_NEXUS_RESET, 0, 0);
    assert_eq!(r.response, TmfResponseCode::COMPLETE);
    assert_eq!(p.conn.close_reason(), Some(&CloseReason::NexusReset));
    assert_eq!(p.conn.io_in_flight(), 0);
}
