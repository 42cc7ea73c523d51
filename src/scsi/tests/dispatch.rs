//! End-to-end behaviour of `dispatch`, `execute_params` and the completion builders.

use super::*;
use super::{dispatch, execute_params};
use crate::scsi::cdb::op;
use crate::scsi::{check_condition, encode_lun, good, io_error, LunMap, NexusState, SenseFormat};

fn map() -> LunMap {
    LunMap::new(vec![lu(0), lu_with(|u| u.lun = 5)])
}

fn run(cdb: &[u8]) -> Plan {
    dispatch(&map(), &mut NexusState::new(), 0, cdb)
}

fn run_lun(lun_raw: u64, cdb: &[u8]) -> Plan {
    dispatch(&map(), &mut NexusState::new(), lun_raw, cdb)
}

/// The sense of a CHECK CONDITION plan, decoded from fixed format: (key, asc, ascq).
fn fixed_sense(plan: &Plan) -> (u8, u8, u8) {
    match plan {
        Plan::Complete(Completion {
            status: ScsiStatus::CHECK_CONDITION,
            data,
            sense,
        }) => {
            assert!(data.is_empty());
            assert_eq!(sense.len(), 18);
            assert_eq!(sense[0] & 0x7F, 0x70);
            (sense[2] & 0x0F, sense[12], sense[13])
        }
        other => panic!("expected CHECK CONDITION, got {other:?}"),
    }
}

fn good_data(plan: Plan) -> Vec<u8> {
    ok_data(Ok(plan))
}

const ILLEGAL: u8 = 0x05;

#[test]
fn test_unit_ready_is_good() {
    assert_eq!(run(&[0; 6]), Plan::Complete(good()));
}

#[test]
fn unsupported_opcodes_are_invalid_command_operation_code() {
    for opcode in [
        0x04, 0x1D, 0x3B, 0x5C, 0x7F, 0x82, 0x92, 0x9F, 0xA4, 0xC0, 0xFF,
    ] {
        let mut cdb = [0u8; 16];
        cdb[0] = opcode;
        assert_eq!(
            fixed_sense(&run(&cdb)),
            (ILLEGAL, 0x20, 0x00),
            "opcode {opcode:#x}"
        );
    }
}

#[test]
fn unknown_service_actions_are_invalid_field_at_byte_1() {
    // libiscsi reads INVALID FIELD IN CDB pointing at byte 1 of SERVICE ACTION IN / MAINTENANCE
    // IN as "not implemented", which is what it is.
    let mut sai = cdb16(op::SERVICE_ACTION_IN_16, 0x13, 0, 32);
    let mut mi = [op::MAINTENANCE_IN, 0x0B, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
    for cdb in [&sai[..], &mi[..]] {
        let plan = run(cdb);
        assert_eq!(fixed_sense(&plan), (ILLEGAL, 0x24, 0x00));
        let Plan::Complete(c) = plan else { panic!() };
        assert_eq!(
            &c.sense[15..18],
            &[0xCC, 0x00, 0x01],
            "C/D, BPV, bit 4 of byte 1"
        );
    }
    sai[1] = 0x10;
    mi[1] = 0x0C;
    assert!(matches!(
        run(&sai),
        Plan::Complete(Completion {
            status: ScsiStatus::GOOD,
            ..
        })
    ));
    assert!(matches!(
        run(&mi),
        Plan::Complete(Completion {
            status: ScsiStatus::GOOD,
            ..
        })
    ));
}

#[test]
fn provisioning_and_compare_commands_become_jobs() {
    let cases: [Vec<u8>; 6] = [
        cdb10(op::WRITE_SAME_10, 0, 0, 1).to_vec(),
        cdb16(op::WRITE_SAME_16, 0x08, 0, 1).to_vec(),
        cdb10(op::UNMAP, 0, 0, 24).to_vec(),
        cdb16(op::COMPARE_AND_WRITE, 0, 0, 1).to_vec(),
        cdb16(op::ORWRITE_16, 0, 0, 1).to_vec(),
        cdb10(op::VERIFY_10, 0x02, 0, 1).to_vec(),
    ];
    let lens = [512, 512, 24, 1024, 512, 512];
    for (cdb, len) in cases.iter().zip(lens) {
        match run(cdb) {
            Plan::Job(job) => assert_eq!(job.data_out_len(), len, "{cdb:02x?}"),
            other => panic!("{cdb:02x?}: {other:?}"),
        }
    }
}

#[test]
fn empty_cdb_is_invalid_field() {
    assert_eq!(fixed_sense(&run(&[])), (ILLEGAL, 0x24, 0x00));
    assert_eq!(
        fixed_sense(&run_lun(encode_lun(9), &[])),
        (ILLEGAL, 0x24, 0x00)
    );
}

#[test]
fn cdbs_shorter_than_their_opcode_are_invalid_field() {
    let cases: [(u8, usize); 10] = [
        (op::TEST_UNIT_READY, 6),
        (op::INQUIRY, 6),
        (op::MODE_SENSE_6, 6),
        (op::READ_6, 6),
        (op::READ_10, 10),
        (op::WRITE_10, 10),
        (op::MODE_SENSE_10, 10),
        (op::READ_12, 12),
        (op::REPORT_LUNS, 12),
        (op::READ_16, 16),
    ];
    for (opcode, len) in cases {
        for short in 1..len {
            let mut cdb = vec![0u8; short];
            cdb[0] = opcode;
            assert_eq!(
                fixed_sense(&run(&cdb)),
                (ILLEGAL, 0x24, 0x00),
                "{opcode:#x} len {short}"
            );
        }
    }
}

#[test]
fn naca_is_invalid_field_in_cdb() {
    let mut inq = [op::INQUIRY, 0, 0, 0, 96, 0x04];
    assert_eq!(fixed_sense(&run(&inq)), (ILLEGAL, 0x24, 0x00));
    inq[5] = 0;
    assert!(matches!(
        run(&inq),
        Plan::Complete(Completion {
            status: ScsiStatus::GOOD,
            ..
        })
    ));
    let mut r16 = cdb16(op::READ_16, 0, 0, 1);
    r16[15] = 0x04;
    assert_eq!(fixed_sense(&run(&r16)), (ILLEGAL, 0x24, 0x00));
}

#[test]
fn field_pointer_reaches_the_wire() {
    let plan = run(&cdb10(op::READ_10, 0x20, 0, 1));
    let Plan::Complete(c) = plan else {
        panic!("expected completion")
    };
    assert_eq!(
        &c.sense[15..18],
        &[0xCF, 0x00, 0x01],
        "C/D, BPV, bit 7 of byte 1"
    );
}

#[test]
fn medium_access_plans() {
    assert_eq!(
        run(&cdb10(op::READ_10, 0, 7, 8)),
        Plan::Read { lba: 7, blocks: 8 }
    );
    assert_eq!(
        run(&cdb16(op::WRITE_16, 0x08, 9, 1)),
        Plan::Write {
            lba: 9,
            blocks: 1,
            fua: true
        }
    );
    let sync = cdb10(op::SYNCHRONIZE_CACHE_10, 0x02, 0, 0);
    assert_eq!(run(&sync), Plan::Flush { lba: 0, blocks: 0 });
    assert_eq!(run(&cdb16(op::VERIFY_16, 0, 0, 1)), Plan::Complete(good()));
}

#[test]
fn lun_addressing_selects_the_unit() {
    let ro = LunMap::new(vec![
        lu(0),
        lu_with(|u| {
            u.lun = 300;
            u.read_only = true;
        }),
    ]);
    let write = cdb10(op::WRITE_10, 0, 0, 1);
    let mut n = NexusState::new();
    assert!(matches!(
        dispatch(&ro, &mut n, 0, &write),
        Plan::Write { .. }
    ));
    let wp = dispatch(&ro, &mut n, encode_lun(300), &write);
    assert_eq!(fixed_sense(&wp), (0x07, 0x27, 0x00));
}

#[test]
fn unknown_lun_inquiry_answers_qualifier_3() {
    let d = good_data(run_lun(encode_lun(9), &[op::INQUIRY, 0, 0, 0, 255, 0]));
    assert_eq!(d[0], 0x7F);
    let vpd = run_lun(encode_lun(9), &[op::INQUIRY, 1, 0x00, 0, 255, 0]);
    assert_eq!(fixed_sense(&vpd), (ILLEGAL, 0x25, 0x00));
}

#[test]
fn unknown_lun_report_luns_and_request_sense_work() {
    let luns = good_data(run_lun(
        encode_lun(9),
        &[op::REPORT_LUNS, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
    ));
    assert_eq!(&luns[..4], &[0, 0, 0, 16]);
    let rs = good_data(run_lun(encode_lun(9), &[op::REQUEST_SENSE, 0, 0, 0, 18, 0]));
    assert_eq!((rs[2], rs[12]), (ILLEGAL, 0x25));
}

#[test]
fn unknown_lun_everything_else_is_lun_not_supported() {
    for cdb in [
        vec![op::TEST_UNIT_READY, 0, 0, 0, 0, 0],
        cdb10(op::READ_10, 0, 0, 1).to_vec(),
        cdb16(op::SERVICE_ACTION_IN_16, 0x10, 0, 32).to_vec(),
        vec![0xFF; 16],
    ] {
        assert_eq!(
            fixed_sense(&run_lun(encode_lun(9), &cdb)),
            (ILLEGAL, 0x25, 0x00)
        );
    }
}

#[test]
fn undecodable_lun_is_treated_as_unknown() {
    let second_level = 0x0000_0001_0000_0000;
    assert_eq!(
        fixed_sense(&run_lun(second_level, &[0; 6])),
        (ILLEGAL, 0x25, 0x00)
    );
    let flat_zero = 0x4000_0000_0000_0000;
    assert_eq!(run_lun(flat_zero, &[0; 6]), Plan::Complete(good()));
}

#[test]
fn descriptor_sense_after_mode_select_d_sense() {
    let luns = map();
    let mut n = NexusState::new();
    // Read the control page, set D_SENSE, send it back.
    let ms = [op::MODE_SENSE_6, 0x08, 0x0A, 0, 255, 0];
    let Plan::Complete(c) = dispatch(&luns, &mut n, 0, &ms) else {
        panic!()
    };
    let mut params = c.data.clone();
    params[0] = 0;
    params[6] |= 0x04;
    let sel = [op::MODE_SELECT_6, 0x10, 0, 0, params.len() as u8, 0];
    assert_eq!(
        dispatch(&luns, &mut n, 0, &sel),
        Plan::ReceiveParams { len: 16 }
    );
    assert_eq!(execute_params(&luns, &mut n, 0, &sel, &params), good());
    // libiscsi ModeSense6.Control-D_SENSE: the failing READ16 now carries descriptor sense.
    let oob = dispatch(&luns, &mut n, 0, &cdb16(op::READ_16, 0, u64::MAX, 1));
    let Plan::Complete(c) = oob else { panic!() };
    assert_eq!(c.sense, [0x72, 0x05, 0x21, 0x00, 0, 0, 0, 0]);
    let Plan::Complete(c) = dispatch(&luns, &mut n, 0, &ms) else {
        panic!()
    };
    assert_eq!(c.data[6] & 0x04, 0x04);
}

#[test]
fn execute_params_refuses_other_opcodes_and_unknown_luns() {
    let luns = map();
    let mut n = NexusState::new();
    let read = cdb10(op::READ_10, 0, 0, 1);
    assert_eq!(
        execute_params(&luns, &mut n, 0, &read, &[]),
        check_condition(&n, Sense::invalid_opcode())
    );
    let sel = [op::MODE_SELECT_6, 0x10, 0, 0, 4, 0];
    let r = execute_params(&luns, &mut n, encode_lun(9), &sel, &[0; 4]);
    assert_eq!(r, check_condition(&n, Sense::lun_not_supported()));
    assert_eq!(
        execute_params(&luns, &mut n, 0, &sel[..3], &[0; 4]).status,
        ScsiStatus::CHECK_CONDITION
    );
}

#[test]
fn io_error_sense_follows_nexus_format() {
    let mut n = NexusState::new();
    let read = io_error(&n, false, 42);
    assert_eq!(read.status, ScsiStatus::CHECK_CONDITION);
    assert!(read.data.is_empty());
    assert_eq!(
        read.sense,
        Sense::unrecovered_read_error()
            .with_info(42)
            .encode(SenseFormat::Fixed)
    );
    assert_eq!(
        (read.sense[2], read.sense[12], read.sense[13]),
        (0x03, 0x11, 0x00)
    );
    n.set_descriptor_sense(true);
    let write = io_error(&n, true, 1 << 40);
    assert_eq!(&write.sense[..4], &[0x72, 0x03, 0x0C, 0x00]);
    assert_eq!(
        &write.sense[8..20],
        &[0, 0x0A, 0x80, 0, 0, 0, 0x01, 0, 0, 0, 0, 0]
    );
}

#[test]
fn good_and_check_condition_shapes() {
    assert_eq!(
        good(),
        Completion {
            status: ScsiStatus::GOOD,
            data: vec![],
            sense: vec![]
        }
    );
    let n = NexusState::new();
    let cc = check_condition(&n, Sense::invalid_field_in_cdb());
    assert_eq!(cc.status, ScsiStatus(0x02));
    assert_eq!(cc.sense.len(), 18);
}

#[test]
fn status_codes_match_sam5() {
    assert_eq!(ScsiStatus::GOOD.0, 0x00);
    assert_eq!(ScsiStatus::CHECK_CONDITION.0, 0x02);
    assert_eq!(ScsiStatus::BUSY.0, 0x08);
    assert_eq!(ScsiStatus::RESERVATION_CONFLICT.0, 0x18);
    assert_eq!(ScsiStatus::TASK_SET_FULL.0, 0x28);
}

#[test]
fn a_unit_that_cannot_sanitize_refuses_every_sanitize_as_an_unknown_command() {
    let luns = LunMap::new(vec![
        lu(0),
        lu_with(|u| {
            u.lun = 1;
            u.sanitizable = false;
        }),
    ]);
    let mut n = NexusState::new();
    // BLOCK ERASE with IMMED, and EXIT FAILURE MODE: both begin on the unit that can.
    let erase = [op::SANITIZE, 0x80 | 0x02, 0, 0, 0, 0, 0, 0, 0, 0];
    let exit = [op::SANITIZE, 0x1F, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(matches!(dispatch(&luns, &mut n, 0, &erase), Plan::Job(_)));
    for cdb in [erase, exit] {
        let plan = dispatch(&luns, &mut n, encode_lun(1), &cdb);
        assert_eq!(fixed_sense(&plan), (0x05, 0x20, 0x00), "{cdb:02x?}");
    }
    assert!(luns
        .get(1)
        .unwrap()
        .shared
        .medium
        .sanitize_progress()
        .is_none());
    // The rest of its commands are untouched.
    let tur = [op::TEST_UNIT_READY, 0, 0, 0, 0, 0];
    assert!(good_data(dispatch(&luns, &mut n, encode_lun(1), &tur)).is_empty());
}
