//! Write data received in place: a command's immediate data lands in a buffer of its own that
//! the write then takes as it is (no copy), and every path the ordinary framing takes (CmdSN
//! gaps, refusals, errors) still holds for a landed command.

use super::*;

const IMMEDIATE: [(&str, &str); 2] = [("ImmediateData", "Yes"), ("InitialR2T", "Yes")];

/// The wire bytes of `cmd` with `data` as its immediate data.
fn wire_of(p: &Pair, cmd: &ScsiCommand, data: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    frame::encode(&mut wire, &cmd.encode(), &[], data, p.digests);
    wire
}

/// Offers the first `head` bytes of `wire` to the connection, as a receive that stopped there
/// would, then fills the lent range with the rest and hands the buffer back.
fn land(p: &mut Pair, wire: &[u8], head: usize) -> *const u8 {
    let mut l = p.conn.landing(&wire[..head]).expect("the payload lands");
    assert_eq!(l.range, head - 48..wire.len() - 48);
    let at = l.range.start;
    l.buf.as_mut_slice()[at..].copy_from_slice(&wire[48 + at..]);
    l.range.start = l.range.end;
    let ptr = l.buf.as_slice().as_ptr();
    p.conn.handle_landed(l, p.now);
    ptr
}

#[test]
fn immediate_data_received_in_place_is_written_from_that_buffer() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &IMMEDIATE);
    let data = pattern(4096, 21);
    let cmd = p.command_pdu(0, 5, &rw10(0x2a, 16, 8), 4096, false, true);
    let wire = wire_of(&p, &cmd, &data);
    // The header came alone, as libiscsi sends it.
    let landed_at = land(&mut p, &wire, 48);
    let io = p.take_io();
    assert_eq!(io.len(), 1);
    match &io[0].op {
        IoOp::Write { buf, offset, .. } => {
            assert_eq!(*offset, 16 * 512);
            assert_eq!(
                buf.as_slice().as_ptr(),
                landed_at,
                "the write goes out from the buffer the data was received into"
            );
        }
        op => panic!("expected a write, got {op:?}"),
    }
    for req in io {
        p.complete(req, Ok(()));
    }
    assert_eq!(response(&p.recv()).status, 0);
    assert_eq!(&p.disk[16 * 512..16 * 512 + 4096], &data[..]);
    assert_eq!(p.conn.buffered_bytes(), 0);
}

#[test]
fn immediate_data_partly_received_with_its_header_lands_in_order() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &IMMEDIATE);
    let data = pattern(8192, 22);
    let cmd = p.command_pdu(0, 6, &rw10(0x2a, 40, 16), 8192, false, true);
    let wire = wire_of(&p, &cmd, &data);
    land(&mut p, &wire, 48 + 1000);
    assert_eq!(p.run_io(), 1);
    assert_eq!(response(&p.recv()).status, 0);
    assert_eq!(&p.disk[40 * 512..40 * 512 + 8192], &data[..]);
}

#[test]
fn a_landed_command_behind_a_cmdsn_gap_waits_with_its_data() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &IMMEDIATE);
    let data = pattern(4096, 23);
    let base = p.cmd_sn;
    p.cmd_sn = base + 1;
    let cmd = p.command_pdu(0, 7, &rw10(0x2a, 64, 8), 4096, false, true);
    let wire = wire_of(&p, &cmd, &data);
    land(&mut p, &wire, 48);
    assert!(p.take_io().is_empty(), "waits for CmdSN {base}");
    p.cmd_sn = base;
    p.command(8, &[0u8; 6], 0, false, false, &[]);
    assert_eq!(p.run_io(), 1);
    let itts: Vec<u32> = p.recv().iter().map(|(b, _)| b.itt()).collect();
    assert_eq!(itts, vec![8, 7]);
    assert_eq!(&p.disk[64 * 512..64 * 512 + 4096], &data[..]);
}

#[test]
fn a_landed_command_that_is_refused_gives_its_buffer_back() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &IMMEDIATE);
    let data = pattern(4096, 24);
    // LUN 9 does not exist: CHECK CONDITION, and the landed data goes nowhere.
    let cmd = p.command_pdu(9, 9, &rw10(0x2a, 0, 8), 4096, false, true);
    let wire = wire_of(&p, &cmd, &data);
    land(&mut p, &wire, 48);
    assert!(p.take_io().is_empty());
    let rsp = response(&p.recv());
    assert_eq!((rsp.itt, rsp.status), (9, 2));
    assert_eq!(p.conn.buffered_bytes(), 0);
    assert!(p.disk.iter().all(|&b| b == 0));
}

#[test]
fn immediate_data_the_ordinary_path_refuses_is_not_landed() {
    // ImmediateData=No: the command must be refused with its data, not given a buffer.
    let keys = [("ImmediateData", "No"), ("InitialR2T", "Yes")];
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &keys);
    let cmd = p.command_pdu(0, 10, &rw10(0x2a, 0, 8), 4096, false, true);
    let wire = wire_of(&p, &cmd, &pattern(4096, 25));
    assert!(p.conn.landing(&wire[..48]).is_none());

    // More immediate data than the command's expected length, or than FirstBurstLength.
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &IMMEDIATE);
    let cmd = p.command_pdu(0, 11, &rw10(0x2a, 0, 8), 2048, false, true);
    let wire = wire_of(&p, &cmd, &pattern(4096, 26));
    assert!(p.conn.landing(&wire[..48]).is_none());
    let cmd = p.command_pdu(0, 12, &rw10(0x2a, 0, 256), 128 * 1024, false, true);
    let wire = wire_of(&p, &cmd, &pattern(128 * 1024, 27));
    assert!(
        p.conn.landing(&wire[..48]).is_none(),
        "past FirstBurstLength"
    );

    // A read carrying data.
    let cmd = p.command_pdu(0, 13, &rw10(0x28, 0, 8), 4096, true, false);
    let wire = wire_of(&p, &cmd, &pattern(4096, 28));
    assert!(p.conn.landing(&wire[..48]).is_none());
    assert_eq!(p.conn.buffered_bytes(), 0);
}

/// Puts `wire` in a receive buffer, as a receive would, and offers it whole to the connection.
fn receive(p: &mut Pair, wire: &[u8]) -> RecvBuf {
    let mut rx = RecvBuf::new(wire.len() + 4096);
    rx.spare_mut().unwrap()[..wire.len()].copy_from_slice(wire);
    assert_eq!(p.conn.handle_received(&rx, wire.len(), p.now), wire.len());
    rx
}

#[test]
fn immediate_data_received_with_its_header_is_written_from_the_receive_buffer() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &IMMEDIATE);
    let first = pattern(4096, 31);
    let second = pattern(8192, 32);
    let mut wire = Vec::new();
    let cmd = p.command_pdu(0, 20, &rw10(0x2a, 16, 8), 4096, false, true);
    wire.extend(wire_of(&p, &cmd, &first));
    let cmd = p.command_pdu(0, 21, &rw10(0x2a, 64, 16), 8192, false, true);
    wire.extend(wire_of(&p, &cmd, &second));
    let rx = receive(&mut p, &wire);
    let io = p.take_io();
    assert_eq!(io.len(), 2);
    let at = [48, 48 + 4096 + 48];
    for (req, at) in io.iter().zip(at) {
        match &req.op {
            IoOp::Write { buf, .. } => assert_eq!(
                buf.as_slice().as_ptr(),
                rx.as_slice()[at..].as_ptr(),
                "the write goes out from where its data was received"
            ),
            op => panic!("expected a write, got {op:?}"),
        }
    }
    assert!(rx.is_lent());
    for req in io {
        p.complete(req, Ok(()));
    }
    assert_eq!(p.recv().len(), 2);
    assert_eq!(&p.disk[16 * 512..16 * 512 + 4096], &first[..]);
    assert_eq!(&p.disk[64 * 512..64 * 512 + 8192], &second[..]);
    assert!(!rx.is_lent(), "the views went with the writes");
    assert_eq!(p.conn.buffered_bytes(), 0);
}

#[test]
fn received_data_is_lent_only_to_a_write_that_keeps_it() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &IMMEDIATE);
    // Behind a CmdSN gap: the command waits with a copy of its data.
    let base = p.cmd_sn;
    p.cmd_sn = base + 1;
    let cmd = p.command_pdu(0, 30, &rw10(0x2a, 8, 8), 4096, false, true);
    let data = pattern(4096, 33);
    let wire = wire_of(&p, &cmd, &data);
    let rx = receive(&mut p, &wire);
    assert!(!rx.is_lent());
    drop(rx);
    // Refused (more immediate data than the expected length): dropped, never lent.
    p.cmd_sn = base;
    let cmd = p.command_pdu(0, 32, &rw10(0x2a, 0, 8), 2048, false, true);
    let wire = wire_of(&p, &cmd, &pattern(4096, 35));
    let rx = receive(&mut p, &wire);
    assert!(!rx.is_lent());
    p.run_io();
    assert_eq!(
        &p.disk[8 * 512..8 * 512 + 4096],
        &data[..],
        "the waiting write ran"
    );
    let statuses: Vec<(u32, u8)> = p
        .recv()
        .iter()
        .filter(|(b, _)| b.opcode() == Opcode::SCSI_RESPONSE)
        .map(|(b, _)| ScsiResponse::decode(b))
        .map(|r| (r.itt, r.status))
        .collect();
    assert_eq!(statuses, vec![(30, 0)]);
    assert_eq!(p.conn.buffered_bytes(), 0);
}

#[test]
fn a_data_out_that_fills_its_burst_is_written_from_the_receive_buffer() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &IMMEDIATE);
    let data = pattern(8192, 41);
    p.command(40, &rw10(0x2a, 128, 16), 8192, false, true, &[]);
    let pdus = p.recv();
    let r = R2t::decode(&pdus[0].0);
    assert_eq!((r.buffer_offset, r.desired_len), (0, 8192));
    let d = DataOut {
        final_bit: true,
        lun: 0,
        itt: 40,
        ttt: r.ttt,
        exp_stat_sn: 0,
        data_sn: 0,
        buffer_offset: 0,
    };
    let mut wire = Vec::new();
    frame::encode(&mut wire, &d.encode(), &[], &data, p.digests);
    let rx = receive(&mut p, &wire);
    let io = p.take_io();
    assert_eq!(io.len(), 1);
    match &io[0].op {
        IoOp::Write { buf, .. } => assert_eq!(
            buf.as_slice().as_ptr(),
            rx.as_slice()[48..].as_ptr(),
            "the burst goes out from where it was received"
        ),
        op => panic!("expected a write, got {op:?}"),
    }
    for req in io {
        p.complete(req, Ok(()));
    }
    assert_eq!(response(&p.recv()).status, 0);
    assert_eq!(&p.disk[128 * 512..128 * 512 + 8192], &data[..]);
    assert!(!rx.is_lent());
    assert_eq!(p.conn.buffered_bytes(), 0);
}

/// After a large write payload the next header is received alone, so that its payload lands
/// where it is written; after a small PDU the transport receives as much as there is again.
#[test]
fn the_header_after_a_large_write_payload_is_received_alone() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &IMMEDIATE);
    assert_eq!(p.conn.header_alone(0), None, "nothing large seen yet");
    let data = pattern(64 * 1024, 31);
    let cmd = p.command_pdu(0, 20, &rw10(0x2a, 0, 128), 64 * 1024, false, true);
    let wire = wire_of(&p, &cmd, &data);
    land(&mut p, &wire, 48 + 100);
    assert_eq!(p.conn.header_alone(0), Some(48));
    assert_eq!(
        p.conn.header_alone(20),
        Some(28),
        "the rest of a cut header"
    );
    assert_eq!(p.conn.header_alone(48), None, "the header is in");
    assert_eq!(p.run_io(), 1);
    assert_eq!(response(&p.recv()).status, 0);

    // A small PDU ends the run.
    p.command(21, &[0u8; 6], 0, false, false, &[]);
    assert_eq!(p.conn.header_alone(0), None);

    // A large payload that came whole with its header counts as well.
    let cmd = p.command_pdu(0, 22, &rw10(0x2a, 128, 128), 64 * 1024, false, true);
    let wire = wire_of(&p, &cmd, &data);
    let _rx = receive(&mut p, &wire);
    assert_eq!(p.conn.header_alone(0), Some(48));

    // A small landed payload ends it too.
    let cmd = p.command_pdu(0, 23, &rw10(0x2a, 256, 8), 4096, false, true);
    let wire = wire_of(&p, &cmd, &pattern(4096, 32));
    land(&mut p, &wire, 48);
    assert_eq!(p.conn.header_alone(0), None);
    assert_eq!(p.run_io(), 2);
}

/// With header digests the header is not 48 bytes and nothing lands in place: never asked for.
#[test]
fn no_header_alone_with_digests() {
    let keys = [
        ("ImmediateData", "Yes"),
        ("InitialR2T", "Yes"),
        ("HeaderDigest", "CRC32C"),
    ];
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &keys);
    let data = pattern(64 * 1024, 33);
    let cmd = p.command_pdu(0, 30, &rw10(0x2a, 0, 128), 64 * 1024, false, true);
    let wire = wire_of(&p, &cmd, &data);
    let _rx = receive(&mut p, &wire);
    assert_eq!(p.run_io(), 1);
    assert_eq!(p.conn.header_alone(0), None);
}
