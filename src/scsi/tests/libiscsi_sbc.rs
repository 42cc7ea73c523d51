//! The expectations of libiscsi's `iscsi-test-cu` (1.19) suites that need multi-step commands
//! and logical block provisioning, replayed against `dispatch` and an in-memory disk that
//! drives `Job`s like the session: SCSI.ReportSupportedOpcodes, *.DpoFua, Inquiry.BlockLimits,
//! WriteSame10/16, Unmap, CompareAndWrite, OrWrite, Verify10/12/16, GetLBAStatus. Each test
//! names the libiscsi test it mirrors; CDBs are built the way libiscsi's `scsi_cdb_*` do.

use super::disk::{field_pointer, sense_of, OneLu};
use super::dispatch;
use super::*;
use crate::scsi::cdb::op;
use crate::scsi::{LunMap, NexusState};

/// What libiscsi's `check_result` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Good,
    LbaOob,
    /// INVALID FIELD IN CDB or INVALID FIELD IN PARAMETER LIST.
    InvalidField,
    WriteProtected,
    Miscompare,
    /// Any ILLEGAL REQUEST (EXPECT_STATUS_GENERIC_BAD).
    IllegalRequest,
}

const BS: usize = 512;
const NUM_BLOCKS: u64 = 2048;

type T = OneLu;

impl OneLu {
    /// Send with Data-Out `data` and check like `check_result`; returns the Data-In.
    fn check(&mut self, cdb: &[u8], data: &[u8], want: Expect) -> Vec<u8> {
        let c = self.run(cdb, data);
        let got = match sense_of(&c) {
            None => Expect::Good,
            Some((0x05, 0x20, 0x00)) => panic!("{cdb:02x?}: libiscsi would skip (invalid opcode)"),
            Some((0x05, 0x21, 0x00)) => Expect::LbaOob,
            Some((0x05, 0x24 | 0x26, 0x00)) if want != Expect::IllegalRequest => {
                Expect::InvalidField
            }
            Some((0x05, _, _)) => Expect::IllegalRequest,
            Some((0x07, 0x27, 0x00..=0x02)) => Expect::WriteProtected,
            Some((0x0E, 0x1D, 0x00)) => Expect::Miscompare,
            other => panic!("{cdb:02x?}: unexpected {other:?}"),
        };
        assert_eq!(got, want, "{cdb:02x?}");
        c.data
    }
}

fn rsoc(rctd: bool, options: u8, opcode: u8, sa: u16, alloc: u32) -> [u8; 12] {
    let (s, a) = (sa.to_be_bytes(), alloc.to_be_bytes());
    let byte2 = options | if rctd { 0x80 } else { 0 };
    [
        op::MAINTENANCE_IN,
        0x0C,
        byte2,
        opcode,
        s[0],
        s[1],
        a[0],
        a[1],
        a[2],
        a[3],
        0,
        0,
    ]
}

fn ws10(lba: u32, blocks: u16, anchor: bool, unmap: bool) -> [u8; 10] {
    let flags = if anchor { 0x10 } else { 0 } | if unmap { 0x08 } else { 0 };
    cdb10(op::WRITE_SAME_10, flags, lba, blocks)
}

/// libiscsi sets NDOB when it sends no data.
fn ws16(lba: u64, blocks: u32, anchor: bool, unmap: bool, datalen: usize) -> [u8; 16] {
    let flags = if anchor { 0x10 } else { 0 }
        | if unmap { 0x08 } else { 0 }
        | if datalen == 0 { 0x01 } else { 0 };
    cdb16(op::WRITE_SAME_16, flags, lba, blocks)
}

fn unmap(list: &[(u64, u32)]) -> ([u8; 10], Vec<u8>) {
    let len = 8 + 16 * list.len();
    let mut d = vec![0u8; len];
    d[0..2].copy_from_slice(&((len - 2) as u16).to_be_bytes());
    d[2..4].copy_from_slice(&((len - 8) as u16).to_be_bytes());
    for (i, (lba, n)) in list.iter().enumerate() {
        d[8 + 16 * i..16 + 16 * i].copy_from_slice(&lba.to_be_bytes());
        d[16 + 16 * i..20 + 16 * i].copy_from_slice(&n.to_be_bytes());
    }
    (cdb10(op::UNMAP, 0, 0, len as u16), d)
}

/// NUMBER OF LOGICAL BLOCKS = xferlen / block size / 2, truncated to a byte.
fn caw(lba: u64, xferlen: usize, flags: u8) -> [u8; 16] {
    cdb16(
        op::COMPARE_AND_WRITE,
        flags,
        lba,
        u32::from((xferlen / BS / 2) as u8),
    )
}

fn orwrite(lba: u64, xferlen: usize, flags: u8) -> [u8; 16] {
    cdb16(op::ORWRITE_16, flags, lba, (xferlen / BS) as u32)
}

fn verify(opcode: u8, lba: u64, blocks: u32, flags: u8) -> Vec<u8> {
    match opcode {
        op::VERIFY_10 => cdb10(opcode, flags, lba as u32, blocks as u16).to_vec(),
        op::VERIFY_12 => cdb12(opcode, flags, lba as u32, blocks).to_vec(),
        _ => cdb16(opcode, flags, lba, blocks).to_vec(),
    }
}

fn read(t: &mut T, lba: u64, blocks: u32) -> Vec<u8> {
    t.check(&cdb16(op::READ_16, 0, lba, blocks), &[], Expect::Good)
}

fn write(t: &mut T, lba: u64, data: &[u8]) {
    let blocks = (data.len() / BS) as u32;
    t.check(&cdb16(op::WRITE_16, 0, lba, blocks), data, Expect::Good);
}

/// A command descriptor of the all_commands format, as libiscsi unmarshalls it.
#[derive(Debug)]
struct Descriptor {
    opcode: u8,
    sa: u16,
    ctdp: bool,
    servactv: bool,
    timeout_len: Option<u16>,
}

fn all_commands(d: &[u8]) -> Vec<Descriptor> {
    let mut len = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
    assert_eq!(len, d.len() - 4);
    let (mut i, mut out) = (4, Vec::new());
    while len >= 8 {
        let ctdp = d[i + 5] & 0x02 != 0;
        let mut desc = Descriptor {
            opcode: d[i],
            sa: u16::from_be_bytes([d[i + 2], d[i + 3]]),
            ctdp,
            servactv: d[i + 5] & 0x01 != 0,
            timeout_len: None,
        };
        assert_ne!(u16::from_be_bytes([d[i + 6], d[i + 7]]), 0, "CDB LENGTH");
        len -= 8;
        i += 8;
        if ctdp {
            let tl = u16::from_be_bytes([d[i], d[i + 1]]);
            desc.timeout_len = Some(tl);
            len -= usize::from(tl) + 2;
            i += usize::from(tl) + 2;
        }
        out.push(desc);
    }
    out
}

#[test]
fn reportsupportedopcodes_simple_servactv_and_rctd() {
    let mut t = T::new();
    t.check(&rsoc(false, 0, 0, 0, 1024), &[], Expect::Good);
    let plain = all_commands(&t.check(&rsoc(false, 0, 0, 0, 65535), &[], Expect::Good));
    assert!(plain.len() > 30);
    for d in &plain {
        assert!(!d.ctdp, "RCTD clear: no timeouts");
        assert!(
            d.servactv || d.sa == 0,
            "SERVACTV clear => service action 0"
        );
    }
    let timed = all_commands(&t.check(&rsoc(true, 0, 0, 0, 65535), &[], Expect::Good));
    assert_eq!(timed.len(), plain.len());
    for d in &timed {
        assert!(d.ctdp);
        assert_eq!(d.timeout_len, Some(0x0A));
    }
}

#[test]
fn reportsupportedopcodes_onecommand() {
    let mut t = T::new();
    let all = all_commands(&t.check(&rsoc(false, 0, 0, 0, 65535), &[], Expect::Good));
    for d in &all {
        let (good_opt, bad_opt) = if d.servactv { (2, 1) } else { (1, 2) };
        let c = t.run(&rsoc(false, bad_opt, d.opcode, d.sa, 65535), &[]);
        assert_eq!(sense_of(&c), Some((0x05, 0x24, 0x00)), "{:#04x}", d.opcode);
        // A pointer at byte 1 would read as "not implemented" to libiscsi.
        assert_eq!(field_pointer(&c), Some((true, 2)));
        let one = t.check(
            &rsoc(false, good_opt, d.opcode, d.sa, 65535),
            &[],
            Expect::Good,
        );
        assert_eq!(one[1] & 0x07, 0b011, "supported");
        let cdb_len = usize::from(u16::from_be_bytes([one[2], one[3]]));
        assert_ne!(cdb_len, 0);
        assert_eq!(one.len(), 4 + cdb_len);
        assert_eq!(one[4], d.opcode, "CDB USAGE DATA[0]");
        if d.servactv {
            assert_eq!(u16::from(one[5] & 0x1F), d.sa);
        }
        let timed = t.check(
            &rsoc(true, good_opt, d.opcode, d.sa, 65535),
            &[],
            Expect::Good,
        );
        assert_eq!(timed[1] & 0x80, 0x80, "CTDP");
        assert_eq!(&timed[4 + cdb_len..4 + cdb_len + 2], &[0, 0x0A]);
    }
}

#[test]
fn reportsupportedopcodes_other_forms() {
    let mut t = T::new();
    // Unsupported opcode: GOOD, SUPPORT 001b, no usage data.
    assert_eq!(
        t.check(&rsoc(false, 1, 0x3B, 0, 64), &[], Expect::Good),
        [0, 1, 0, 0]
    );
    assert_eq!(
        t.check(&rsoc(false, 2, 0x9E, 0x13, 64), &[], Expect::Good),
        [0, 1, 0, 0]
    );
    // Reporting options 011b: with or without a service action.
    let rc16 = t.check(&rsoc(false, 3, 0x9E, 0x10, 64), &[], Expect::Good);
    assert_eq!((rc16[1], rc16[4], rc16[5]), (0x03, 0x9E, 0x10));
    let read10 = t.check(&rsoc(false, 3, op::READ_10, 0, 64), &[], Expect::Good);
    assert_eq!((read10[1], read10[3], read10[4]), (0x03, 10, op::READ_10));
    let odd = t.check(&rsoc(false, 3, op::READ_10, 1, 64), &[], Expect::Good);
    assert_eq!(odd, [0, 1, 0, 0]);
    // Reserved reporting options.
    for options in 4..8 {
        t.check(&rsoc(false, options, 0, 0, 64), &[], Expect::InvalidField);
    }
    // Allocation length cuts, never fails.
    assert_eq!(
        t.check(&rsoc(false, 0, 0, 0, 3), &[], Expect::Good).len(),
        3
    );
}

/// libiscsi *.DpoFua: MODE SENSE says DPOFUA, so DPO/FUA are accepted and RSOC reports them.
#[test]
fn dpofua_for_reads_writes_compareandwrite_orwrite_and_verify() {
    let mut t = T::new();
    let ms = t.check(&[op::MODE_SENSE_6, 0, 0x3F, 0, 255, 0], &[], Expect::Good);
    assert_eq!(ms[2] & 0x10, 0x10);
    let block = vec![0u8; BS];
    for flags in [0x10, 0x08, 0x18] {
        t.check(&cdb10(op::READ_10, flags, 0, 1), &[], Expect::Good);
        t.check(&cdb16(op::WRITE_16, flags, 0, 1), &block, Expect::Good);
        // COMPAREANDWRITE(sd, 0, buf, block_size, ...): zero blocks, one block of Data-Out.
        t.check(&caw(0, BS, flags), &block, Expect::Good);
        t.check(&orwrite(0, BS, flags), &block, Expect::Good);
    }
    t.check(&verify(op::VERIFY_10, 0, 1, 0x10), &[], Expect::Good);
    for (opcode, mask) in [
        (op::READ_10, 0x18),
        (op::READ_12, 0x18),
        (op::READ_16, 0x18),
        (op::WRITE_10, 0x18),
        (op::WRITE_12, 0x18),
        (op::WRITE_16, 0x18),
        (op::COMPARE_AND_WRITE, 0x18),
        (op::ORWRITE_16, 0x18),
        (op::VERIFY_10, 0x10),
        (op::VERIFY_12, 0x10),
        (op::VERIFY_16, 0x10),
    ] {
        let one = t.check(&rsoc(false, 1, opcode, 0, 65535), &[], Expect::Good);
        assert_eq!(one[5] & mask, mask, "{opcode:#04x}");
    }
}

#[test]
fn writesame_simple_and_check() {
    // WriteSame10/16.Simple and .Check: 1-256 blocks at the start and the end.
    let mut t = T::new();
    for i in 1..=256u32 {
        let pattern = vec![i as u8; BS];
        t.check(&ws10(0, i as u16, false, false), &pattern, Expect::Good);
        assert!(read(&mut t, 0, i).iter().all(|&b| b == i as u8));
        let lba = NUM_BLOCKS - u64::from(i);
        t.check(&ws16(lba, i, false, false, BS), &pattern, Expect::Good);
        assert!(read(&mut t, lba, i).iter().all(|&b| b == i as u8));
    }
}

#[test]
fn writesame_beyond_eol() {
    let mut t = T::new();
    let block = vec![0u8; BS];
    for i in 1..=256u32 {
        let n = NUM_BLOCKS as u32;
        t.check(
            &ws10(n - i + 1, i as u16, false, false),
            &block,
            Expect::LbaOob,
        );
        t.check(
            &ws10(0x8000_0000, i as u16, false, false),
            &block,
            Expect::LbaOob,
        );
        t.check(
            &ws10(u32::MAX, i as u16, false, false),
            &block,
            Expect::LbaOob,
        );
        let n = NUM_BLOCKS;
        t.check(
            &ws16(n - u64::from(i) + 1, i, false, false, BS),
            &block,
            Expect::LbaOob,
        );
        t.check(&ws16(1 << 63, i, false, false, BS), &block, Expect::LbaOob);
        t.check(&ws16(u64::MAX, i, false, false, BS), &block, Expect::LbaOob);
        if i >= 2 {
            t.check(
                &ws10(n as u32 - 1, i as u16, false, false),
                &block,
                Expect::LbaOob,
            );
            t.check(&ws16(n - 1, i, false, false, BS), &block, Expect::LbaOob);
        }
    }
}

#[test]
fn writesame_zero_blocks() {
    let mut t = T::new();
    let block = vec![0u8; BS];
    // WSNZ=0. The LU (2048 blocks) is larger than MAXIMUM WRITE SAME LENGTH (1024): to the
    // end from LBA 0 is INVALID FIELD IN CDB, from MAXIMUM WRITE SAME LENGTH (- 1) blocks
    // before the end it is GOOD, from one block more it is refused.
    let bl = t.check(&[op::INQUIRY, 1, 0xB0, 0, 255, 0], &[], Expect::Good);
    assert_eq!(bl[4] & 1, 0);
    let max = u64::from_be_bytes(bl[36..44].try_into().unwrap());
    assert!(max > 0 && NUM_BLOCKS > max);
    t.check(&ws10(0, 0, false, false), &block, Expect::InvalidField);
    t.check(&ws16(0, 0, false, false, BS), &block, Expect::InvalidField);
    let n = NUM_BLOCKS;
    t.check(
        &ws10((n - (max + 1)) as u32, 0, false, false),
        &block,
        Expect::InvalidField,
    );
    t.check(
        &ws16(n - (max + 1), 0, false, false, BS),
        &block,
        Expect::InvalidField,
    );
    for lba in [n - max, n - (max - 1)] {
        t.check(&ws10(lba as u32, 0, false, false), &block, Expect::Good);
        t.check(&ws16(lba, 0, false, false, BS), &block, Expect::Good);
    }
    for lba in [NUM_BLOCKS + 1, 0x8000_0000, u64::from(u32::MAX)] {
        t.check(&ws10(lba as u32, 0, false, false), &block, Expect::LbaOob);
    }
    for lba in [NUM_BLOCKS + 1, 1 << 63, u64::MAX] {
        t.check(&ws16(lba, 0, false, false, BS), &block, Expect::LbaOob);
    }
}

#[test]
fn writesame_zero_blocks_against_maximum_write_same_length() {
    // An LU larger than MAXIMUM WRITE SAME LENGTH (one transfer: 1024 blocks).
    let unit = lu_with(|u| u.num_blocks = 3 << 20);
    let bl = T::with(lu(0)).check(&[op::INQUIRY, 1, 0xB0, 0, 255, 0], &[], Expect::Good);
    let max = u64::from_be_bytes(bl[36..44].try_into().unwrap());
    assert_eq!(max, 1024);
    let luns = LunMap::new(vec![unit.clone()]);
    let send = |cdb: &[u8]| dispatch(&luns, &mut NexusState::new(), 0, cdb);
    let n = unit.num_blocks;
    for cdb in [
        ws10(0, 0, false, false).to_vec(),
        ws16(0, 0, false, false, BS).to_vec(),
    ] {
        let Plan::Complete(c) = send(&cdb) else {
            panic!()
        };
        assert_eq!(sense_of(&c), Some((0x05, 0x24, 0x00)));
    }
    let Plan::Complete(c) = send(&ws16(n - (max + 1), 0, false, false, BS)) else {
        panic!()
    };
    assert_eq!(sense_of(&c), Some((0x05, 0x24, 0x00)));
    for lba in [n - max, n - (max - 1)] {
        let Plan::Job(job) = send(&ws16(lba, 0, false, false, BS)) else {
            panic!()
        };
        assert_eq!(job.data_out_len(), 512);
    }
}

#[test]
fn writesame16_unmap_of_65536_blocks_follows_maximum_write_same_length() {
    // libiscsi WriteSame16.Unmap: with MAXIMUM WRITE SAME LENGTH below 65536 a 65536-block
    // unmap must fail with INVALID FIELD IN CDB (at or above it, the test writes and reads
    // 65536 blocks with single commands, beyond MAXIMUM TRANSFER LENGTH).
    let unit = lu_with(|u| {
        u.num_blocks = 1 << 17;
        u.max_transfer_blocks = 16384;
    });
    let luns = LunMap::new(vec![unit]);
    let send = |cdb: &[u8]| dispatch(&luns, &mut NexusState::new(), 0, cdb);
    let Plan::Complete(c) = send(&ws16(0, 65536, false, true, BS)) else {
        panic!()
    };
    assert_eq!(sense_of(&c), Some((0x05, 0x24, 0x00)));
    assert!(matches!(send(&ws16(0, 256, false, true, BS)), Plan::Job(_)));
}

#[test]
fn writesame_wrprotect() {
    let mut t = T::new();
    let block = vec![0u8; BS];
    for p in 1..8u8 {
        let mut c10 = ws10(0, 1, false, false);
        c10[1] |= p << 5;
        t.check(&c10, &block, Expect::InvalidField);
        let mut c16 = ws16(0, 1, false, false, BS);
        c16[1] |= p << 5;
        t.check(&c16, &block, Expect::InvalidField);
    }
}

#[test]
fn writesame_unmap_and_until_end() {
    let mut t = T::new();
    let zero = vec![0u8; BS];
    for i in 1..=256u32 {
        let ff = vec![0xFF; i as usize * BS];
        write(&mut t, 0, &ff);
        t.check(&ws10(0, i as u16, false, true), &zero, Expect::Good);
        assert!(read(&mut t, 0, i).iter().all(|&b| b == 0), "LBPRZ");
        let lba = NUM_BLOCKS - u64::from(i);
        write(&mut t, lba, &ff);
        t.check(&ws16(lba, i, false, true, BS), &zero, Expect::Good);
        assert!(read(&mut t, lba, i).iter().all(|&b| b == 0));
        // UnmapUntilEnd.
        write(&mut t, lba, &ff);
        t.check(&ws10(lba as u32, 0, false, true), &zero, Expect::Good);
        assert!(read(&mut t, lba, i).iter().all(|&b| b == 0));
    }
    // No ANC_SUP: ANCHOR is refused with and without UNMAP.
    for unmap in [false, true] {
        t.check(&ws10(0, 1, true, unmap), &zero, Expect::InvalidField);
        t.check(&ws16(0, 1, true, unmap, BS), &zero, Expect::InvalidField);
    }
}

#[test]
fn writesame_unmap_unaligned_vpd_and_invalid_dataout_size() {
    let mut t = T::new();
    let rc16 = t.check(
        &cdb16(op::SERVICE_ACTION_IN_16, 0x10, 0, 32),
        &[],
        Expect::Good,
    );
    let lbppb = 1u32 << (rc16[13] & 0x0F);
    assert_eq!(lbppb, 8, "CHECK_FOR_LBPPB_GT_1 lets these run");
    let lbp = t.check(&[op::INQUIRY, 1, 0xB2, 0, 255, 0], &[], Expect::Good);
    assert_eq!(lbp[5] & 0x60, 0x60, "LBPWS and LBPWS10");
    let a6 = vec![0xA6; BS];
    for i in 1..lbppb {
        t.check(&ws10(i, (lbppb - i) as u16, false, true), &a6, Expect::Good);
        t.check(
            &ws16(u64::from(i), lbppb - i, false, true, BS),
            &a6,
            Expect::Good,
        );
    }
    t.check(&ws10(0, 1, false, true), &vec![0; BS], Expect::Good);
    for size in [BS / 2, BS * 2] {
        let data = vec![0xA6; size];
        t.check(&ws10(0, 1, false, true), &data, Expect::IllegalRequest);
        t.check(
            &ws16(0, 1, false, true, size),
            &data,
            Expect::IllegalRequest,
        );
    }
}

#[test]
fn unmap_simple_vpd_and_zero_blocks() {
    let mut t = T::new();
    write(&mut t, 0, &vec![b'a'; 256 * BS]);
    for i in 1..=256u32 {
        let (cdb, params) = unmap(&[(0, i)]);
        t.check(&cdb, &params, Expect::Good);
        assert!(read(&mut t, 0, i).iter().all(|&b| b == 0));
    }
    write(&mut t, 0, &vec![b'a'; 257 * BS]);
    let mut list = Vec::new();
    for i in 0..256u64 {
        list.push((i, 1));
        let (cdb, params) = unmap(&list);
        t.check(&cdb, &params, Expect::Good);
        assert!(read(&mut t, 0, i as u32 + 1).iter().all(|&b| b == 0));
    }
    assert!(read(&mut t, 256, 1).iter().all(|&b| b == b'a'));
    // Unmap.ZeroBlocks.
    for i in 0..256u64 {
        let (cdb, params) = unmap(&[(i, 0)]);
        t.check(&cdb, &params, Expect::Good);
        let (cdb, params) = unmap(&vec![(i, 0); i as usize]);
        t.check(&cdb, &params, Expect::Good);
    }
    let (cdb, params) = unmap(&[(NUM_BLOCKS, 0)]);
    t.check(&cdb, &params, Expect::Good);
    let overlapping: Vec<(u64, u32)> = (0..256).map(|i| (i / 2, 0)).collect();
    let (cdb, params) = unmap(&overlapping);
    t.check(&cdb, &params, Expect::Good);
    let (cdb, params) = unmap(&[]);
    t.check(&cdb, &params, Expect::Good);
    // Unmap.VPD: UNMAP works, so LBPME and LBPU are set.
    let rc16 = t.check(
        &cdb16(op::SERVICE_ACTION_IN_16, 0x10, 0, 32),
        &[],
        Expect::Good,
    );
    assert_eq!(rc16[14] & 0x80, 0x80);
    let lbp = t.check(&[op::INQUIRY, 1, 0xB2, 0, 255, 0], &[], Expect::Good);
    assert_eq!(lbp[5] & 0x80, 0x80);
}

#[test]
fn compareandwrite_simple() {
    // maxbl = MAXIMUM COMPARE AND WRITE LENGTH (255); i = 256 wraps to 0 in the CDB and
    // must still be refused.
    let mut t = T::new();
    let bl = t.check(&[op::INQUIRY, 1, 0xB0, 0, 255, 0], &[], Expect::Good);
    let maxbl = usize::from(bl[5]);
    assert_eq!(maxbl, 255);
    for start in [true, false] {
        for i in 1..=256usize {
            let lba = if start { 0 } else { NUM_BLOCKS - i as u64 };
            let mut scratch = vec![b'A'; 2 * i * BS];
            write(&mut t, lba, &scratch[..i * BS]);
            if i > maxbl {
                t.check(&caw(lba, 2 * i * BS, 0), &scratch, Expect::InvalidField);
                continue;
            }
            scratch[i * BS..].fill(b'B');
            t.check(&caw(lba, 2 * i * BS, 0), &scratch, Expect::Good);
            assert!(read(&mut t, lba, i as u32).iter().all(|&b| b == b'B'));
        }
    }
}

#[test]
fn compareandwrite_miscompare_and_unwritten() {
    let mut t = T::new();
    for start in [true, false] {
        for i in 1..256usize {
            let lba = if start { 0 } else { NUM_BLOCKS - i as u64 };
            let mut buf = vec![b'A'; 2 * i * BS];
            write(&mut t, lba, &buf[..i * BS]);
            buf[i * BS - 27] = b'C';
            buf[i * BS..].fill(b'B');
            t.check(&caw(lba, 2 * i * BS, 0), &buf, Expect::Miscompare);
            assert!(read(&mut t, lba, i as u32).iter().all(|&b| b == b'A'));
        }
    }
    // CompareAndWrite.Unwritten: '%' never matches what is there.
    for i in 1..256u64 {
        let data = [vec![b'%'; BS], vec![b'B'; BS]].concat();
        t.check(&caw(i, 2 * BS, 0), &data, Expect::Miscompare);
        assert_ne!(read(&mut t, i, 1), vec![b'%'; BS]);
    }
}

#[test]
fn compareandwrite_invalid_dataout_size() {
    // Four blocks of Data-Out with TL rewritten to 1 and to 3.
    let mut t = T::new();
    let data = vec![0xA6; 4 * BS];
    for tl in [1, 3] {
        let cdb = cdb16(op::COMPARE_AND_WRITE, 0, 0, tl);
        t.check(&cdb, &data, Expect::IllegalRequest);
    }
}

#[test]
fn orwrite_simple_beyond_eol_zero_blocks_protect_and_verify() {
    let mut t = T::new();
    let a6 = vec![0xA6; 256 * BS];
    for i in 1..=256usize {
        t.check(&orwrite(0, i * BS, 0), &a6[..i * BS], Expect::Good);
        let lba = NUM_BLOCKS - i as u64;
        t.check(&orwrite(lba, i * BS, 0), &a6[..i * BS], Expect::Good);
        t.check(&orwrite(lba + 1, i * BS, 0), &a6[..i * BS], Expect::LbaOob);
        t.check(&orwrite(1 << 63, i * BS, 0), &a6[..i * BS], Expect::LbaOob);
        t.check(&orwrite(u64::MAX, i * BS, 0), &a6[..i * BS], Expect::LbaOob);
    }
    t.check(&orwrite(0, 0, 0), &[], Expect::Good);
    for lba in [NUM_BLOCKS + 1, 1 << 63, u64::MAX] {
        t.check(&orwrite(lba, 0, 0), &[], Expect::LbaOob);
    }
    for p in 1..8u8 {
        t.check(&orwrite(0, BS, p << 5), &a6[..BS], Expect::InvalidField);
    }
    // OrWrite.Verify.
    for i in 1..=256usize {
        write(&mut t, 0, &vec![0; i * BS]);
        t.check(&orwrite(0, i * BS, 0), &vec![0xA5; i * BS], Expect::Good);
        assert!(read(&mut t, 0, i as u32).iter().all(|&b| b == 0xA5));
        t.check(&orwrite(0, i * BS, 0), &vec![0x5A; i * BS], Expect::Good);
        assert!(read(&mut t, 0, i as u32).iter().all(|&b| b == 0xFF));
    }
}

const VERIFIES: [u8; 3] = [op::VERIFY_10, op::VERIFY_12, op::VERIFY_16];

#[test]
fn verify_simple_mismatch_and_mismatch_no_cmp() {
    let mut t = T::new();
    let mut seed = 0x1234_5678u32;
    for (i, b) in t.disk.bytes.iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    for opcode in VERIFIES {
        for i in 1..=256u32 {
            for lba in [0, NUM_BLOCKS - u64::from(i)] {
                let mut buf = read(&mut t, lba, i);
                t.check(&verify(opcode, lba, i, 0x02), &buf, Expect::Good);
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let offset = seed as usize % buf.len();
                buf[offset] ^= b'X';
                let c = t.run(&verify(opcode, lba, i, 0x02), &buf);
                assert_eq!(sense_of(&c), Some((0x0E, 0x1D, 0x00)));
                assert_eq!(super::disk::information(&c), Some(offset as u32));
                // BYTCHK=0: no Data-Out, the medium verifies.
                t.check(&verify(opcode, lba, i, 0), &[], Expect::Good);
            }
        }
    }
}

#[test]
fn verify_beyond_eol_zero_blocks_protect_flags_and_dpo() {
    let mut t = T::new();
    for opcode in VERIFIES {
        for i in 1..=256u32 {
            let data = vec![0u8; i as usize * BS];
            let n = NUM_BLOCKS;
            t.check(
                &verify(opcode, n + 1 - u64::from(i), i, 0x02),
                &data,
                Expect::LbaOob,
            );
            t.check(&verify(opcode, 0x8000_0000, i, 0x02), &data, Expect::LbaOob);
            if i >= 2 {
                t.check(&verify(opcode, n - 1, i, 0x02), &data, Expect::LbaOob);
            }
        }
        t.check(&verify(opcode, 0, 0, 0x02), &[], Expect::Good);
        t.check(
            &verify(opcode, NUM_BLOCKS + 1, 0, 0x02),
            &[],
            Expect::LbaOob,
        );
        for p in 1..8u8 {
            let block = vec![0u8; BS];
            t.check(
                &verify(opcode, 0, 1, (p << 5) | 0x02),
                &block,
                Expect::InvalidField,
            );
        }
        let block = read(&mut t, 0, 1);
        t.check(&verify(opcode, 0, 1, 0x10), &[], Expect::Good);
        t.check(&verify(opcode, 0, 1, 0x12), &block, Expect::Good);
    }
}

fn get_lba_status(lba: u64, alloc: u32) -> [u8; 16] {
    cdb16(op::SERVICE_ACTION_IN_16, 0x12, lba, alloc)
}

#[test]
fn getlbastatus_simple_and_beyond_eol() {
    let mut t = T::new();
    for i in 1..=256u64 {
        for lba in [i, NUM_BLOCKS - i] {
            let d = t.check(&get_lba_status(lba, 24), &[], Expect::Good);
            assert_eq!(d.len(), 24);
            assert_eq!(u32::from_be_bytes([d[0], d[1], d[2], d[3]]), 20);
            assert_eq!(u64::from_be_bytes(d[8..16].try_into().unwrap()), lba);
            assert_eq!(
                u64::from(u32::from_be_bytes([d[16], d[17], d[18], d[19]])),
                NUM_BLOCKS - lba
            );
            assert_eq!(d[20] & 0x0F, 0, "mapped");
        }
    }
    for lba in [NUM_BLOCKS + 1, 1 << 63, u64::MAX, NUM_BLOCKS] {
        t.check(&get_lba_status(lba, 24), &[], Expect::LbaOob);
    }
}

#[test]
fn getlbastatus_unmap_single_holds_with_one_block_per_physical_block() {
    // libiscsi GetLBAStatus.UnmapSingle expects the descriptor for LBA i+1 to start at
    // i + LBPPB, which only a unit with one logical block per physical block satisfies.
    let mut t = T::with(lu_with(|u| u.block_size = 4096));
    let rc16 = t.check(
        &cdb16(op::SERVICE_ACTION_IN_16, 0x10, 0, 32),
        &[],
        Expect::Good,
    );
    let lbppb = 1u64 << (rc16[13] & 0x0F);
    assert_eq!(lbppb, 1);
    for i in 1..256u64 {
        let (cdb, params) = unmap(&[(0, i as u32)]);
        t.check(&cdb, &params, Expect::Good);
        let d = t.check(&get_lba_status(i + 1, 24), &[], Expect::Good);
        assert_eq!(u64::from_be_bytes(d[8..16].try_into().unwrap()), i + lbppb);
        assert_eq!(d[20] & 0x0F, 0);
    }
}
