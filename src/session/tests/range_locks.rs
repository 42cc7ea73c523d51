//! COMPARE AND WRITE against writers in other sessions (possibly on other cores): the unit's
//! range locks make the compare and the write one atomic step.

use super::*;

const KEYS: [(&str, &str); 2] = [("ImmediateData", "Yes"), ("InitialR2T", "No")];

fn caw16(lba: u64, blocks: u8) -> Vec<u8> {
    let mut c = vec![0u8; 16];
    c[0] = 0x89;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[13] = blocks;
    c
}

#[test]
fn a_write_waits_while_another_session_holds_its_blocks() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &KEYS);
    let ranges = p.ctx.targets[0].luns.get(0).unwrap().shared.ranges.clone();
    let mut elsewhere = ranges.request_exclusive(8 * 512, 9 * 512);
    assert!(elsewhere.poll());

    let data = pattern(4096, 5);
    p.command(1, &rw10(0x2a, 4, 8), 4096, false, true, &data);
    assert!(
        p.take_io().is_empty(),
        "blocks 4..12 overlap the held block 8"
    );
    let retry = p.conn.poll_timeout().expect("a prompt retry is scheduled");
    assert!(retry <= p.now + RANGE_LOCK_RETRY);
    // A write elsewhere on the unit is not held up.
    p.command(2, &rw10(0x2a, 100, 8), 4096, false, true, &data);
    assert_eq!(p.run_io(), 1);
    assert_eq!(response(&p.recv()).itt, 2);

    p.now += RANGE_LOCK_RETRY;
    p.conn.handle_timeout(p.now);
    assert!(p.take_io().is_empty(), "still held");
    drop(elsewhere);
    p.now += RANGE_LOCK_RETRY;
    p.conn.handle_timeout(p.now);
    assert_eq!(p.run_io(), 1);
    let rsp = response(&p.recv());
    assert_eq!((rsp.itt, rsp.status), (1, 0));
    assert_eq!(&p.disk[4 * 512..12 * 512], &data[..]);
    assert!(
        ranges.request_exclusive(0, 1 << 20).poll(),
        "every write released what it took"
    );
}

#[test]
fn compare_and_write_waits_for_a_write_in_flight_in_another_session() {
    let ctx = context(default_offer(), Tuning::default());
    let mut writer = Pair::logged_in_to(ctx.clone(), &KEYS);
    let mut caw = Pair::logged_in_to(ctx, &KEYS);

    let new = pattern(512, 9);
    writer.command(1, &rw10(0x2a, 0, 1), 512, false, true, &new);
    let in_flight = writer.take_io();
    assert_eq!(in_flight.len(), 1);

    // Compare with zeroes (the block before that write), write 0xAB.
    let mut data = vec![0u8; 512];
    data.extend_from_slice(&[0xab; 512]);
    caw.command(2, &caw16(0, 1), 1024, false, true, &data);
    assert!(
        caw.take_io().is_empty(),
        "the compare must not read while a write to the block is in flight"
    );

    for req in in_flight {
        writer.complete(req, Ok(()));
    }
    assert_eq!(response(&writer.recv()).status, 0);
    // The CAW session sees the block the writer left, as a real shared disk would.
    caw.disk[..512].copy_from_slice(&writer.disk[..512]);
    caw.now += RANGE_LOCK_RETRY;
    caw.conn.handle_timeout(caw.now);
    caw.run_io();
    let rsp = response(&caw.recv());
    assert_eq!(rsp.status, 2, "the block changed: MISCOMPARE");
    assert_eq!(&caw.disk[..512], &new[..], "a miscompare writes nothing");
}

#[test]
fn a_held_compare_and_write_keeps_other_writers_out_until_it_ends() {
    let ctx = context(default_offer(), Tuning::default());
    let mut caw = Pair::logged_in_to(ctx.clone(), &KEYS);
    let mut writer = Pair::logged_in_to(ctx, &KEYS);

    let mut data = vec![0u8; 512];
    data.extend_from_slice(&[0xab; 512]);
    caw.command(1, &caw16(3, 1), 1024, false, true, &data);
    let read = caw.take_io();
    assert_eq!(read.len(), 1, "the compare's read");

    writer.command(2, &rw10(0x2a, 0, 8), 4096, false, true, &pattern(4096, 1));
    assert!(writer.take_io().is_empty(), "block 3 is being compared");

    for req in read {
        caw.complete(req, Ok(()));
    }
    caw.run_io();
    let rsp = response(&caw.recv());
    assert_eq!(rsp.status, 0);
    assert_eq!(&caw.disk[3 * 512..4 * 512], &[0xab; 512]);

    writer.now += RANGE_LOCK_RETRY;
    writer.conn.handle_timeout(writer.now);
    assert_eq!(writer.run_io(), 1);
    assert_eq!(response(&writer.recv()).status, 0);
}

#[test]
fn aborting_a_write_that_waits_for_a_lock_drops_it_unwritten() {
    use crate::pdu::tmf::{TmfResponse, TmfResponseCode};
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &KEYS);
    let ranges = p.ctx.targets[0].luns.get(0).unwrap().shared.ranges.clone();
    let mut elsewhere = ranges.request_exclusive(0, 512);
    assert!(elsewhere.poll());
    p.command(1, &rw10(0x2a, 0, 1), 512, false, true, &[0xee; 512]);
    assert!(p.take_io().is_empty());

    p.send_abort_task(0x7001, 1);
    let pdus = p.recv();
    assert_eq!(
        pdus.len(),
        1,
        "the TMF answer, and nothing for the aborted write"
    );
    assert_eq!(
        TmfResponse::decode(&pdus[0].0).response,
        TmfResponseCode::COMPLETE
    );
    assert!(!p.conn.wants_prompt_retry());
    drop(elsewhere);
    p.now += RANGE_LOCK_RETRY;
    p.conn.handle_timeout(p.now);
    assert!(
        p.take_io().is_empty(),
        "the aborted write never reaches the store"
    );
    assert_eq!(&p.disk[..512], &[0; 512]);
}
