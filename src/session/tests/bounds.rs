//! What a hostile or buggy initiator cannot do: write bytes it did not send, grow memory past
//! the connection's budget, or hold more tasks than the queue depth.

use super::*;
use crate::pdu::reject::RejectReason;
use std::time::Duration;

fn solicited_only() -> [(&'static str, &'static str); 4] {
    [
        ("ImmediateData", "No"),
        ("InitialR2T", "Yes"),
        ("MaxBurstLength", "8192"),
        ("MaxOutstandingR2T", "2"),
    ]
}

/// Commands answered by a Data-In carrying status (the S bit).
fn statuses_in_data_in(pdus: &[(Bhs, Vec<u8>)]) -> Vec<(u32, u8)> {
    pdus.iter()
        .filter(|(b, _)| b.opcode() == Opcode::DATA_IN)
        .filter_map(|(b, _)| {
            let d = DataIn::decode(b);
            d.status.map(|s| (d.itt, s))
        })
        .collect()
}

fn data_out(itt: u32, ttt: u32, data_sn: u32, offset: u32) -> Bhs {
    DataOut {
        final_bit: false,
        lun: 0,
        itt,
        ttt,
        exp_stat_sn: 0,
        data_sn,
        buffer_offset: offset,
    }
    .encode()
}

fn r2ts(pdus: &[(Bhs, Vec<u8>)]) -> Vec<R2t> {
    pdus.iter()
        .filter(|(b, _)| b.opcode() == Opcode::R2T)
        .map(|(b, _)| R2t::decode(b))
        .collect()
}

fn rejects(pdus: &[(Bhs, Vec<u8>)]) -> Vec<RejectReason> {
    pdus.iter()
        .filter(|(b, _)| b.opcode() == Opcode::REJECT)
        .map(|(b, _)| Reject::decode(b).reason)
        .collect()
}

#[test]
fn repeated_data_out_range_is_rejected_and_nothing_is_written() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &solicited_only());
    p.disk[..8192].fill(0xaa);
    p.command(1, &rw10(0x2a, 0, 16), 8192, false, true, &[]);
    let r = r2ts(&p.recv())[0];
    assert_eq!((r.buffer_offset, r.desired_len), (0, 8192));
    // The first half, twice: counted by bytes this would "complete" the burst with the second
    // half never received.
    p.send(&data_out(1, r.ttt, 0, 0), &[0x11; 4096]);
    p.send(&data_out(1, r.ttt, 1, 0), &[0x22; 4096]);
    let pdus = p.recv();
    assert_eq!(rejects(&pdus), vec![RejectReason::PROTOCOL_ERROR]);
    let rsp = response(&pdus);
    assert_eq!(
        (rsp.itt, rsp.status),
        (1, 2),
        "the task ends with CHECK CONDITION"
    );
    assert_eq!(sense_of(&pdus), (0x0b, 0x0c, 0x0d));
    assert_eq!(p.run_io(), 0, "nothing reaches the disk");
    assert!(p.disk[..8192].iter().all(|&b| b == 0xaa));
}

#[test]
fn overlapping_and_skipping_data_out_are_rejected() {
    for (offset, len) in [(2048, 4096), (4608, 512), (0, 512)] {
        let mut p = Pair::logged_in(default_offer(), Tuning::default(), &solicited_only());
        p.command(1, &rw10(0x2a, 0, 16), 8192, false, true, &[]);
        let r = r2ts(&p.recv())[0];
        p.send(&data_out(1, r.ttt, 0, 0), &[0x11; 4096]);
        // Overlaps the first PDU, skips a gap, or starts over.
        p.send(&data_out(1, r.ttt, 1, offset), &vec![0x22; len]);
        let pdus = p.recv();
        assert_eq!(
            rejects(&pdus),
            vec![RejectReason::PROTOCOL_ERROR],
            "{offset}"
        );
        assert_eq!(response(&pdus).status, 2);
        assert_eq!(p.run_io(), 0);
    }
}

#[test]
fn repeated_unsolicited_data_is_rejected_with_unexpected_unsolicited_data() {
    let keys = [
        ("ImmediateData", "Yes"),
        ("InitialR2T", "No"),
        ("FirstBurstLength", "8192"),
    ];
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &keys);
    p.announce_unsolicited = true;
    p.command(1, &rw10(0x2a, 0, 16), 8192, false, true, &[0x11; 4096]);
    // Restates the immediate data instead of continuing after it.
    p.send(&data_out(1, RESERVED_TAG, 0, 0), &[0x22; 4096]);
    let pdus = p.recv();
    assert_eq!(rejects(&pdus), vec![RejectReason::PROTOCOL_ERROR]);
    assert_eq!(sense_of(&pdus), (0x0b, 0x0c, 0x0c));
    assert_eq!(p.run_io(), 0);
}

#[test]
fn data_digest_error_on_data_out_ends_its_task_with_crc_sense() {
    let mut p = Pair::logged_in(
        default_offer(),
        Tuning::default(),
        &[
            ("DataDigest", "CRC32C"),
            ("ImmediateData", "No"),
            ("InitialR2T", "Yes"),
        ],
    );
    p.command(1, &rw10(0x2a, 0, 1), 512, false, true, &[]);
    let r = r2ts(&p.recv())[0];
    let mut wire = Vec::new();
    frame::encode(
        &mut wire,
        &data_out(1, r.ttt, 0, 0),
        &[],
        &[7; 512],
        p.digests,
    );
    let n = wire.len();
    wire[n - 1] ^= 0xff;
    p.conn.handle_input(&wire, p.now);
    let pdus = p.recv();
    assert_eq!(rejects(&pdus), vec![RejectReason::DATA_DIGEST_ERROR]);
    assert_eq!(sense_of(&pdus), (0x0b, 0x47, 0x05));
    assert_eq!(p.run_io(), 0);
}

#[test]
fn max_cmd_sn_advances_when_tasks_end_not_when_commands_arrive() {
    let tuning = Tuning {
        queue_depth: 4,
        ..Tuning::default()
    };
    let mut p = Pair::logged_in(default_offer(), tuning, &solicited_only());
    let first = p.cmd_sn;
    // Four writes whose data never comes: each holds a task.
    for itt in 1..=4 {
        p.command(itt, &rw10(0x2a, itt, 1), 512, false, true, &[]);
    }
    let pdus = p.recv();
    let last = R2t::decode(&pdus.last().unwrap().0);
    assert_eq!(last.exp_cmd_sn, first + 4);
    assert_eq!(last.max_cmd_sn, first + 3, "the window is closed");
    // A fifth command is outside the window: ignored, no task.
    p.command(5, &rw10(0x2a, 5, 1), 512, false, true, &[]);
    assert!(p.recv().is_empty());
    // One write completes: the window opens by exactly one.
    let r = R2t::decode(&pdus[0].0);
    p.send(&data_out(r.itt, r.ttt, 0, 0), &[1; 512]);
    p.run_io();
    let rsp = response(&p.recv());
    assert_eq!(rsp.max_cmd_sn, first + 4);
    p.cmd_sn = first + 4;
    p.command(6, &rw10(0x2a, 6, 1), 512, false, true, &[]);
    assert_eq!(r2ts(&p.recv()).len(), 1, "the new command got its task");
}

#[test]
fn immediate_commands_beyond_the_queue_depth_get_task_set_full() {
    let tuning = Tuning {
        queue_depth: 2,
        ..Tuning::default()
    };
    let mut p = Pair::logged_in(default_offer(), tuning, &solicited_only());
    for itt in 1..=2 {
        p.command(itt, &rw10(0x2a, itt, 1), 512, false, true, &[]);
    }
    p.recv();
    let cmd = ScsiCommand {
        immediate: true,
        final_bit: true,
        read: false,
        write: true,
        attr: 1,
        lun: 0,
        itt: 3,
        expected_data_len: 512,
        cmd_sn: p.cmd_sn,
        exp_stat_sn: 0,
        cdb: {
            let mut c = [0u8; 16];
            c[..10].copy_from_slice(&rw10(0x2a, 3, 1));
            c
        },
    };
    p.send(&cmd.encode(), &[]);
    let pdus = p.recv();
    assert!(r2ts(&pdus).is_empty(), "no task, no buffer, no R2T");
    let rsp = response(&pdus);
    assert_eq!((rsp.itt, rsp.status), (3, 0x28));
}

#[test]
fn r2ts_wait_for_the_buffer_budget_and_resume_as_bursts_are_written() {
    let tuning = Tuning {
        connection_buffer_bytes: 16384,
        ..Tuning::default()
    };
    let mut p = Pair::logged_in(default_offer(), tuning, &solicited_only());
    // Three 8 KiB writes whose data has not come: two bursts fit the 16 KiB budget.
    for itt in 1..=3 {
        p.command(itt, &rw10(0x2a, 16 * itt, 16), 8192, false, true, &[]);
    }
    let first = r2ts(&p.recv());
    assert_eq!(first.iter().map(|r| r.itt).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(p.conn.buffered_bytes(), 16384);
    // Write 1's data arrives; its burst goes to disk; only when the write completes is the
    // buffer released and the third R2T sent.
    p.send(&data_out(1, first[0].ttt, 0, 0), &[1; 8192]);
    let io = p.take_io();
    assert_eq!(io.len(), 1);
    assert!(r2ts(&p.recv()).is_empty());
    for req in io {
        p.complete(req, Ok(()));
    }
    let pdus = p.recv();
    assert_eq!(response(&pdus).itt, 1);
    assert_eq!(
        r2ts(&pdus).iter().map(|r| r.itt).collect::<Vec<_>>(),
        vec![3]
    );
    assert_eq!(p.conn.buffered_bytes(), 16384);
}

#[test]
fn reads_wait_for_the_budget_until_earlier_data_in_is_sent() {
    let tuning = Tuning {
        connection_buffer_bytes: 65536,
        ..Tuning::default()
    };
    let mut p = Pair::logged_in(default_offer(), tuning, &[]);
    for itt in 1..=3 {
        p.command(itt, &rw10(0x28, 0, 64), 32768, true, false, &[]);
    }
    assert_eq!(p.run_io(), 2, "two 32 KiB reads fit a 64 KiB budget");
    // Their Data-In waits in the output, holding the buffers: the third read waits too.
    assert_eq!(p.run_io(), 0);
    assert_eq!(p.conn.buffered_bytes(), 65536);
    let sent = p.recv();
    assert_eq!(statuses_in_data_in(&sent), vec![(1, 0), (2, 0)]);
    p.conn.handle_sent(p.now);
    assert_eq!(p.run_io(), 1, "sending released the budget");
}

#[test]
fn a_transfer_larger_than_the_whole_budget_still_progresses() {
    let tuning = Tuning {
        connection_buffer_bytes: 4096,
        ..Tuning::default()
    };
    let mut p = Pair::logged_in(default_offer(), tuning, &[]);
    p.command(1, &rw10(0x28, 0, 64), 32768, true, false, &[]);
    assert_eq!(p.run_io(), 1);
    assert_eq!(statuses_in_data_in(&p.recv()), vec![(1, 0)]);
}

/// A multi-step command keeps its parameter data charged to the budget; that charge must not
/// keep its own steps waiting. With the budget at the configuration's minimum (1 MiB) and steps
/// of up to 1 MiB, WRITE SAME of 1 MiB (the unit's longest) and SANITIZE of the 2 MiB unit run
/// to their end.
#[test]
fn steps_as_large_as_the_budget_go_out_beside_the_commands_own_data() {
    let tuning = Tuning {
        connection_buffer_bytes: 1 << 20,
        ..Tuning::default()
    };
    let keys = [("ImmediateData", "Yes"), ("InitialR2T", "Yes")];
    let mut p = Pair::logged_in(default_offer(), tuning, &keys);
    let mut write_same = vec![0x93, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    write_same[10..14].copy_from_slice(&2048u32.to_be_bytes());
    p.command(1, &write_same, BS, false, true, &[0xAB; BS as usize]);
    let rsp = response(&run_until_answered(&mut p));
    assert_eq!((rsp.itt, rsp.status), (1, 0), "WRITE SAME");
    assert!(p.disk[..1 << 20].iter().all(|&b| b == 0xAB));

    let sanitize = [0x48, 0x01, 0, 0, 0, 0, 0, 0, 8, 0];
    p.command(
        2,
        &sanitize,
        8,
        false,
        true,
        &[0x01, 0, 0, 4, b'W', b'I', b'P', b'E'],
    );
    let rsp = response(&run_until_answered(&mut p));
    assert_eq!((rsp.itt, rsp.status), (2, 0), "SANITIZE");
    assert!(p.disk.chunks(4).all(|c| c == b"WIPE"));
}

/// Performs the backing-store requests as they come until the session answers something, or
/// has nothing left to do (then returns nothing).
fn run_until_answered(p: &mut Pair) -> Vec<(Bhs, Vec<u8>)> {
    let mut answers = p.recv();
    while answers.is_empty() && p.run_io() > 0 {
        answers = p.recv();
    }
    answers
}

#[test]
fn aborted_write_waits_for_its_burst_writes_before_the_tmf_answers() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &solicited_only());
    p.command(1, &rw10(0x2a, 0, 32), 16384, false, true, &[]);
    let rs = r2ts(&p.recv());
    p.send(&data_out(1, rs[0].ttt, 0, 0), &[1; 8192]);
    let io = p.take_io();
    assert_eq!(io.len(), 1, "the first burst is being written");
    p.send_abort_task(99, 1);
    assert!(
        p.recv().is_empty(),
        "the TMF answers once the write is done"
    );
    for req in io {
        p.complete(req, Ok(()));
    }
    let pdus = p.recv();
    assert_eq!(pdus.len(), 1);
    assert_eq!(pdus[0].0.opcode(), Opcode::TASK_MGMT_RESPONSE);
    assert_eq!(p.conn.buffered_bytes(), 0);
}

#[test]
fn failed_burst_write_ends_the_write_with_an_error_after_all_data() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &solicited_only());
    p.command(1, &rw10(0x2a, 0, 32), 16384, false, true, &[]);
    let rs = r2ts(&p.recv());
    p.send(&data_out(1, rs[0].ttt, 0, 0), &[1; 8192]);
    for req in p.take_io() {
        p.complete(req, Err(libc::EIO));
    }
    assert!(p
        .recv()
        .iter()
        .all(|(b, _)| b.opcode() != Opcode::SCSI_RESPONSE));
    p.send(&data_out(1, rs[1].ttt, 0, 8192), &[2; 8192]);
    assert_eq!(p.run_io(), 0, "nothing more is written after a failure");
    let pdus = p.recv();
    assert_eq!(response(&pdus).status, 2);
    assert_eq!(sense_of(&pdus).0, 0x03, "MEDIUM ERROR");
}

#[test]
fn command_behind_a_gap_with_oversized_data_is_refused_in_its_turn() {
    let keys = [("ImmediateData", "Yes"), ("FirstBurstLength", "4096")];
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &keys);
    let base = p.cmd_sn;
    p.cmd_sn = base + 1;
    // More immediate data than FirstBurstLength, held behind the gap at base.
    p.command(2, &rw10(0x2a, 0, 16), 8192, false, true, &[3; 8192]);
    p.cmd_sn = base;
    p.command(1, &[0u8; 6], 0, false, false, &[]);
    let pdus = p.recv();
    assert_eq!(pdus[0].0.itt(), 1);
    assert_eq!(rejects(&pdus), vec![RejectReason::PROTOCOL_ERROR]);
    // The window went on past both.
    p.cmd_sn = base + 2;
    p.command(3, &[0u8; 6], 0, false, false, &[]);
    assert_eq!(response(&p.recv()).itt, 3);
}

#[test]
fn input_waits_while_answers_pile_up_unread() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &[]);
    let mut wire = Vec::new();
    for itt in 1..=400u32 {
        let nop = NopOut {
            lun: 0,
            itt,
            ttt: RESERVED_TAG,
            cmd_sn: p.cmd_sn,
            exp_stat_sn: 0,
            immediate: true,
        };
        frame::encode(&mut wire, &nop.encode(), &[], &[9; 8192], p.digests);
    }
    let used = p.conn.handle_input(&wire, p.now);
    assert!(
        used < wire.len(),
        "stops taking requests while 3 MiB of answers wait"
    );
    let staged = p.conn.output().staged.len();
    assert!(staged <= MAX_STAGED_OUTPUT + 8192 + 48, "{staged}");
    // Once the answers are sent, the rest is taken.
    p.recv();
    let more = p.conn.handle_input(&wire[used..], p.now);
    assert!(more > 0);
}

#[test]
fn a_long_in_place_receive_keeps_the_connection_alive() {
    let tuning = Tuning {
        nop_interval: Some(Duration::from_secs(1)),
        nop_timeout: Duration::from_secs(1),
        ..Tuning::default()
    };
    let keys = [
        ("ImmediateData", "No"),
        ("InitialR2T", "Yes"),
        ("MaxBurstLength", "65536"),
    ];
    let mut p = Pair::logged_in(default_offer(), tuning, &keys);
    p.command(1, &rw10(0x2a, 0, 128), 65536, false, true, &[]);
    let r = r2ts(&p.recv())[0];
    let data = pattern(65536, 7);
    let mut pending = Vec::new();
    let mut d = data_out(1, r.ttt, 0, 0);
    d.set_flags(0x80);
    frame::encode(&mut pending, &d, &[], &data, p.digests);
    pending.truncate(48 + 100);
    let mut landing = p
        .conn
        .landing(&pending)
        .expect("the payload lands in place");
    assert_eq!(landing.range.len(), 65536 - 100);
    // The payload trickles in for 3 s, longer than the keepalive allows for silence.
    for step in 0..6 {
        p.now += Duration::from_millis(500);
        let at = landing.range.start;
        let n = landing.range.len() / (6 - step);
        landing.buf.as_mut_slice()[at..at + n].copy_from_slice(&data[at..at + n]);
        landing.range.start += n;
        p.conn.note_received(p.now);
        p.conn.handle_timeout(p.now);
    }
    assert!(p.conn.close_reason().is_none());
    assert!(p.recv().is_empty(), "no ping while data keeps arriving");
    p.conn.handle_landed(landing, p.now);
    assert_eq!(p.run_io(), 1);
    assert_eq!(response(&p.recv()).status, 0);
    assert_eq!(&p.disk[..65536], &data[..]);
}
