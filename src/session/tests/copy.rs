//! EXTENDED COPY and GET LBA STATUS through a session: job steps on another unit of the target,
//! the read buffer handed to the write, the destination unit's range locks, store queries.

use super::*;

const KEYS: [(&str, &str); 2] = [("ImmediateData", "Yes"), ("InitialR2T", "No")];

/// A target with LUN 0 and LUN 1, each with its own designator, and a session to it whose
/// LUN 1 store exists too.
fn two_units() -> Pair {
    let mut lu1 = lu();
    lu1.lun = 1;
    lu1.naa_id[15] = 0x61;
    let ctx = context_with(default_offer(), Tuning::default(), vec![lu(), lu1]);
    let mut p = Pair::logged_in_to(ctx, &KEYS);
    p.other_disks.push((1, vec![0; 4096 * BS as usize]));
    p
}

/// An EXTENDED COPY (LID1) parameter list: CSCD identification descriptors for `luns` (by
/// their NAA designator), block to block segments (source index, destination index, blocks,
/// source LBA, destination LBA).
fn copy_list(p: &Pair, luns: &[u16], segments: &[(u16, u16, u16, u64, u64)]) -> Vec<u8> {
    let mut d = vec![0u8; 16];
    d[1] = 0x10; // LIST ID USAGE 10b
    d[2..4].copy_from_slice(&((luns.len() * 32) as u16).to_be_bytes());
    d[8..12].copy_from_slice(&((segments.len() * 28) as u32).to_be_bytes());
    for &lun in luns {
        let lu = p.ctx.targets[0].luns.get(lun).expect("LUN");
        let mut c = [0u8; 32];
        c[0] = 0xE4;
        c[4..8].copy_from_slice(&[0x01, 0x03, 0, 16]);
        c[8..24].copy_from_slice(&lu.naa_id);
        c[29..32].copy_from_slice(&BS.to_be_bytes()[1..]);
        d.extend_from_slice(&c);
    }
    for &(src, dst, blocks, src_lba, dst_lba) in segments {
        let mut s = [0u8; 28];
        s[0] = 0x02;
        s[3] = 0x18;
        s[4..6].copy_from_slice(&src.to_be_bytes());
        s[6..8].copy_from_slice(&dst.to_be_bytes());
        s[10..12].copy_from_slice(&blocks.to_be_bytes());
        s[12..20].copy_from_slice(&src_lba.to_be_bytes());
        s[20..28].copy_from_slice(&dst_lba.to_be_bytes());
        d.extend_from_slice(&s);
    }
    d
}

/// Sends an EXTENDED COPY (LID1) with task tag `itt` and `list` as immediate data.
fn send_copy(p: &mut Pair, itt: u32, list: &[u8]) {
    let mut cdb = vec![0u8; 16];
    cdb[0] = 0x83;
    cdb[10..14].copy_from_slice(&(list.len() as u32).to_be_bytes());
    p.command(itt, &cdb, list.len() as u32, false, true, list);
}

#[test]
fn a_copy_reads_one_unit_and_writes_the_same_buffer_to_the_other() {
    let mut p = two_units();
    let data = pattern(3000 * BS as usize, 11);
    p.disk[..data.len()].copy_from_slice(&data);
    let list = copy_list(&p, &[0, 1], &[(0, 1, 3000, 0, 500)]);
    send_copy(&mut p, 7, &list);
    // Two chunks (1 MiB, then the rest): each a read on LUN 0, then its buffer written on 1.
    for chunk in [2048usize, 952] {
        let io = p.take_io();
        assert_eq!(io.len(), 1);
        let read = io.into_iter().next().unwrap();
        assert_eq!(read.lun, 0);
        let IoOp::Read { ref buf, .. } = read.op else {
            panic!("{:?}", read.op)
        };
        assert_eq!(buf.len(), chunk * BS as usize);
        let at = buf.as_slice().as_ptr();
        p.complete(read, Ok(()));
        let io = p.take_io();
        assert_eq!(io.len(), 1);
        let write = io.into_iter().next().unwrap();
        assert_eq!(write.lun, 1);
        let IoOp::Write { ref buf, .. } = write.op else {
            panic!("{:?}", write.op)
        };
        assert_eq!(
            buf.as_slice().as_ptr(),
            at,
            "the read's own buffer, not a copy"
        );
        p.complete(write, Ok(()));
    }
    let rsp = response(&p.recv());
    assert_eq!((rsp.itt, rsp.status), (7, 0));
    let lun1 = &p.other_disks[0].1;
    assert!(lun1[500 * BS as usize..3500 * BS as usize] == data[..]);
}

#[test]
fn a_copy_waits_for_the_destination_units_range_lock() {
    let mut p = two_units();
    p.disk[..BS as usize].fill(0x5A);
    let ranges = p.ctx.targets[0].luns.get(1).unwrap().shared.ranges.clone();
    let mut elsewhere = ranges.request_exclusive(0, 1 << 20);
    assert!(elsewhere.poll());
    // The same blocks of LUN 0 are not what is held: the read goes ahead.
    let list = copy_list(&p, &[0, 1], &[(0, 1, 1, 0, 10)]);
    send_copy(&mut p, 1, &list);
    assert_eq!(
        p.run_io(),
        1,
        "the read, and the write waits for LUN 1's lock"
    );
    assert!(p.take_io().is_empty());
    assert!(p
        .conn
        .poll_timeout()
        .is_some_and(|t| t <= p.now + RANGE_LOCK_RETRY));
    drop(elsewhere);
    p.now += RANGE_LOCK_RETRY;
    p.conn.handle_timeout(p.now);
    assert_eq!(p.run_io(), 1, "the write");
    assert_eq!(response(&p.recv()).status, 0);
    assert!(p.other_disks[0].1[10 * BS as usize..11 * BS as usize]
        .iter()
        .all(|&b| b == 0x5A));
    assert!(ranges.request_exclusive(0, 1 << 20).poll(), "released");
}

#[test]
fn a_failed_read_aborts_the_copy_with_its_segment() {
    let mut p = two_units();
    let list = copy_list(&p, &[0, 1], &[(0, 1, 4, 0, 0), (0, 1, 4, 4, 4)]);
    send_copy(&mut p, 3, &list);
    for _ in 0..2 {
        // The first segment: its read, then its write.
        let req = p.take_io().pop().expect("a step");
        p.complete(req, Ok(()));
    }
    let read = p.take_io().pop().expect("the second segment's read");
    assert!(matches!(read.op, IoOp::Read { offset: 2048, .. }));
    p.complete(read, Err(libc::EIO));
    let pdus = p.recv();
    let rsp = response(&pdus);
    assert_eq!(rsp.status, 0x02);
    let (_, sense) = pdus
        .iter()
        .find(|(b, _)| b.opcode() == Opcode::SCSI_RESPONSE)
        .unwrap();
    // Data segment: SenseLength (2 bytes), then fixed-format sense.
    assert_eq!(sense[2 + 2] & 0x0F, 0x0A, "COPY ABORTED");
    assert_eq!(&sense[2 + 8..2 + 12], &[0, 0, 0, 1], "segment 1");
    assert_eq!((sense[2 + 12], sense[2 + 13]), (0x11, 0x00));
    assert!(p.take_io().is_empty(), "nothing more is copied");
}

#[test]
fn get_lba_status_asks_the_store() {
    let mut p = two_units();
    p.disk[8 * BS as usize..16 * BS as usize].fill(1);
    let mut cdb = vec![0x9E, 0x12, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 56, 0, 0];
    p.command(9, &cdb, 56, true, false, &[]);
    let io = p.take_io();
    assert!(matches!(io[0].op, IoOp::FindExtent { offset: 2048, .. }));
    for req in io {
        p.complete(req, Ok(()));
    }
    // Up to three descriptors fit: one store query each.
    assert_eq!(p.run_io(), 2);
    let pdus = p.recv();
    let (_, d) = pdus
        .iter()
        .find(|(b, _)| b.opcode() == Opcode::DATA_IN)
        .expect("Data-In");
    assert_eq!(&d[..4], &52u32.to_be_bytes());
    let descriptor = |i: usize| {
        let c = &d[8 + 16 * i..24 + 16 * i];
        (
            u64::from_be_bytes(c[0..8].try_into().unwrap()),
            u32::from_be_bytes(c[8..12].try_into().unwrap()),
            c[12],
        )
    };
    assert_eq!(descriptor(0), (4, 4, 1), "a hole until block 8");
    assert_eq!(descriptor(1), (8, 8, 0), "data");
    assert_eq!(descriptor(2), (16, 4096 - 16, 1));
    // Beyond the end: answered without the store.
    cdb[2..10].copy_from_slice(&4096u64.to_be_bytes());
    p.command(10, &cdb, 56, true, false, &[]);
    assert!(p.take_io().is_empty());
    assert_eq!(response(&p.recv()).status, 0x02);
}
