//! Reservation commands leave the session for the logical unit's one writer (the control
//! thread) and complete with what it applied; every session then checks commands against the
//! snapshot it published.

use super::*;
use crate::control::lu::{LuAction, LuRegistry};
use crate::control::ConnRef;
use crate::pdu::tmf::{TmfResponse, TmfResponseCode};

const ME: ConnRef = ConnRef { core: 0, key: 1 };
const RESERVE6: [u8; 6] = [0x16, 0, 0, 0, 0, 0];
const RESERVATION_CONFLICT: u8 = 0x18;

/// Plays the control thread for `p`: applies what it asked and hands the answers back.
fn serve_control(p: &mut Pair, registry: &mut LuRegistry) -> usize {
    let mut served = 0;
    while let Some(req) = p.conn.poll_control() {
        apply(p, registry, req);
        served += 1;
    }
    served
}

fn apply(p: &mut Pair, registry: &mut LuRegistry, req: ControlRequest) {
    let ControlRequest::Lu { token, request } = req else {
        panic!("unexpected {req:?}");
    };
    for action in registry.request(ME, token, request) {
        let LuAction::Reply { token, reply, .. } = action else {
            panic!("no other reactor to ask: {action:?}");
        };
        p.conn.handle_lu_reply(token, reply, p.now);
    }
}

#[test]
fn reserve_completes_when_applied_and_other_nexuses_then_conflict() {
    let ctx = context(default_offer(), Tuning::default());
    let mut registry = LuRegistry::new(&ctx, 0, None);
    let mut holder = Pair::logged_in_to(ctx.clone(), &[]);
    let mut other = Pair::logged_in_as(ctx, "iqn.2026-11.test:other", &[]);

    holder.command(1, &RESERVE6, 0, false, false, &[]);
    assert!(
        holder.recv().is_empty(),
        "nothing answers before it is applied"
    );
    let req = holder
        .conn
        .poll_control()
        .expect("a request to the control thread");
    assert!(
        matches!(&req, ControlRequest::Lu { request, .. } if matches!(request.op, LuOp::Reservation(_))),
        "{req:?}"
    );
    apply(&mut holder, &mut registry, req);
    let rsp = response(&holder.recv());
    assert_eq!((rsp.itt, rsp.status), (1, 0));

    other.command(3, &rw10(0x2a, 0, 1), 512, false, true, &[]);
    let rsp = response(&other.recv());
    assert_eq!((rsp.itt, rsp.status), (3, RESERVATION_CONFLICT));
    other.command(4, &[0u8; 6], 0, false, false, &[]);
    assert_eq!(
        response(&other.recv()).status,
        0,
        "TEST UNIT READY is allowed"
    );
}

#[test]
fn persistent_reserve_out_goes_to_the_control_thread_with_its_parameter_list() {
    let ctx = context(default_offer(), Tuning::default());
    let mut registry = LuRegistry::new(&ctx, 0, None);
    let keys = [("ImmediateData", "Yes"), ("InitialR2T", "No")];
    let mut p = Pair::logged_in_to(ctx.clone(), &keys);
    let mut params = vec![0u8; 24];
    params[8..16].copy_from_slice(&0xabcdu64.to_be_bytes());
    // REGISTER with the key in SERVICE ACTION RESERVATION KEY.
    p.command(
        1,
        &[0x5f, 0, 0, 0, 0, 0, 0, 0, 24, 0],
        24,
        false,
        true,
        &params,
    );
    assert!(p.recv().is_empty());
    assert_eq!(serve_control(&mut p, &mut registry), 1);
    assert_eq!(response(&p.recv()).status, 0);
    let pr = ctx.targets[0].luns.get(0).unwrap().shared.snapshot();
    assert_eq!(pr.pr.registrations().len(), 1);
    assert_eq!(pr.pr.registrations()[0].key, 0xabcd);
}

#[test]
fn an_aborted_reservation_command_is_answered_by_the_tmf_alone() {
    let ctx = context(default_offer(), Tuning::default());
    let mut registry = LuRegistry::new(&ctx, 0, None);
    let mut p = Pair::logged_in_to(ctx, &[]);
    p.command(1, &RESERVE6, 0, false, false, &[]);
    p.send_abort_task(0x7001, 1);
    assert!(
        p.recv().is_empty(),
        "the TMF waits for the control thread's answer"
    );
    serve_control(&mut p, &mut registry);
    let pdus = p.recv();
    assert_eq!(pdus.len(), 1, "no SCSI Response for the aborted command");
    assert_eq!(pdus[0].0.opcode(), Opcode::TASK_MGMT_RESPONSE);
    assert_eq!(
        TmfResponse::decode(&pdus[0].0).response,
        TmfResponseCode::COMPLETE
    );
}
