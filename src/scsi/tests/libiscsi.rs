//! The expectations of libiscsi's `iscsi-test-cu` suites (1.19), replayed against `dispatch`:
//! SCSI.TestUnitReady, Inquiry, ReadCapacity10/16, Read6/10/12/16, Write10/12/16, ReadOnly,
//! Mandatory, ModeSense6. Each test names the libiscsi test it mirrors.

use super::dispatch;
use super::execute_params;
use super::*;
use crate::scsi::cdb::op;
use crate::scsi::{LunMap, NexusState};

/// What a libiscsi helper checks: GOOD, or CHECK CONDITION with a key and one of some ASCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Good,
    LbaOob,
    InvalidFieldInCdb,
    WriteProtected,
}

struct Target {
    luns: LunMap,
    nexus: NexusState,
}

impl Target {
    fn new(unit: LuInfo) -> Self {
        Self {
            luns: LunMap::new(vec![unit]),
            nexus: NexusState::new(),
        }
    }

    fn send(&mut self, cdb: &[u8]) -> Plan {
        dispatch(&self.luns, &mut self.nexus, 0, cdb)
    }

    /// Send and check like libiscsi's `check_result`; returns the Data-In of simple commands.
    fn expect(&mut self, cdb: &[u8], want: Expect) -> Vec<u8> {
        let plan = self.send(cdb);
        let (status, data, sense) = match plan {
            Plan::Complete(c) => (c.status, c.data, c.sense),
            Plan::Read { blocks, .. } => (ScsiStatus::GOOD, vec![0; blocks as usize * 512], vec![]),
            Plan::Write { .. }
            | Plan::Flush { .. }
            | Plan::ReceiveParams { .. }
            | Plan::Job(_)
            | Plan::Shared(_) => (ScsiStatus::GOOD, vec![], vec![]),
        };
        let key_asc = if sense.is_empty() {
            None
        } else if sense[0] & 0x7F == 0x72 {
            Some((sense[1] & 0x0F, sense[2], sense[3]))
        } else {
            Some((sense[2] & 0x0F, sense[12], sense[13]))
        };
        let got = match (status, key_asc) {
            (ScsiStatus::GOOD, None) => Expect::Good,
            (ScsiStatus::CHECK_CONDITION, Some((0x05, 0x21, 0x00))) => Expect::LbaOob,
            (ScsiStatus::CHECK_CONDITION, Some((0x05, 0x24 | 0x26, 0x00))) => {
                Expect::InvalidFieldInCdb
            }
            (ScsiStatus::CHECK_CONDITION, Some((0x07, 0x27, 0x00..=0x02))) => {
                Expect::WriteProtected
            }
            other => panic!("{cdb:02x?}: unexpected {other:?}"),
        };
        assert_eq!(got, want, "{cdb:02x?}");
        data
    }
}

fn disk() -> Target {
    Target::new(lu(0))
}

fn inquiry(evpd: bool, page: u8, alloc: u16) -> [u8; 6] {
    let a = alloc.to_be_bytes();
    [op::INQUIRY, u8::from(evpd), page, a[0], a[1], 0]
}

fn rc16(alloc: u32) -> [u8; 16] {
    let mut c = cdb16(op::SERVICE_ACTION_IN_16, 0x10, 0, 0);
    c[10..14].copy_from_slice(&alloc.to_be_bytes());
    c
}

fn modesense6(pc: u8, page: u8, alloc: u8) -> [u8; 6] {
    [op::MODE_SENSE_6, 0, (pc << 6) | page, 0, alloc, 0]
}

const NUM_BLOCKS: u64 = 2048;

#[test]
fn testunitready_simple() {
    disk().expect(&[0; 6], Expect::Good);
}

#[test]
fn inquiry_standard() {
    let d = disk().expect(&inquiry(false, 0, 260), Expect::Good);
    assert!(d.len() >= 36);
    assert_eq!(d[0] >> 5, 0, "qualifier");
    assert!(matches!(d[2], 4..=6));
    assert_eq!(d[3] & 0x0F, 2, "response data format");
    assert_eq!(usize::from(d[4]), d.len() - 5, "additional length");
    assert!(d[8..36]
        .iter()
        .all(|&b| b == 0 || (0x20..=0x7E).contains(&b)));
    assert_eq!(d[3] & 0xC0, 0, "AERC and TRMTSK clear");
}

#[test]
fn inquiry_alloc_length() {
    let mut t = disk();
    let mut last = Vec::new();
    for alloc in 0..256u16 {
        last = t.expect(&inquiry(false, 0, alloc), Expect::Good);
    }
    assert!(last.len() >= 36);
    assert_eq!(last, t.expect(&inquiry(false, 0, 256), Expect::Good));
}

#[test]
fn inquiry_evpd() {
    disk().expect(&inquiry(false, 1, 256), Expect::InvalidFieldInCdb);
}

#[test]
fn inquiry_block_limits() {
    let d = disk().expect(&inquiry(true, 0xB0, 64), Expect::Good);
    assert_eq!(d.len(), usize::from(d[3]) + 4);
    assert_eq!(d[3], 0x3C, "device claims SBC-3");
    // READ CAPACITY (16) LBPME=1, so the test goes on to the unmap limits (it used to skip).
    assert_eq!(disk().expect(&rc16(32), Expect::Good)[14] & 0x80, 0x80);
    let lbp = disk().expect(&inquiry(true, 0xB2, 255), Expect::Good);
    assert_eq!(lbp[5] & 0x80, 0x80, "LBPU, so ...");
    let max_unmap = u32::from_be_bytes([d[20], d[21], d[22], d[23]]);
    let max_descriptors = u32::from_be_bytes([d[24], d[25], d[26], d[27]]);
    let lbppbe = disk().expect(&rc16(32), Expect::Good)[13] & 0x0F;
    assert!(max_unmap != 0 && max_unmap >= 1 << lbppbe);
    assert!(
        max_unmap == u32::MAX || max_unmap <= 1024 * 1024,
        "not insanely big"
    );
    assert!(max_descriptors != 0);
    assert!(max_descriptors == u32::MAX || max_descriptors <= 1024 * 1024);
}

#[test]
fn inquiry_mandatory_vpd_sbc_and_supported_vpd() {
    let mut t = disk();
    t.expect(&inquiry(true, 0x83, 255), Expect::Good);
    let pages = t.expect(&inquiry(true, 0x00, 255), Expect::Good);
    assert!(pages.len() >= 4);
    for &page in &pages[4..] {
        t.expect(&inquiry(true, page, 255), Expect::Good);
    }
}

#[test]
fn inquiry_version_descriptors() {
    let d = disk().expect(&inquiry(false, 0, 255), Expect::Good);
    let descs: Vec<u16> = d[58..74]
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    assert!(descs.contains(&0x0460), "SPC-4");
    assert!(
        descs.contains(&0x04C0),
        "SBC-3 (iscsi-test-cu's sbc3_support)"
    );
}

#[test]
fn inquiry_full_size_reread() {
    // iscsi-test-cu start-up: 64 bytes, then again with additional length + 5.
    let mut t = disk();
    let d = t.expect(&inquiry(false, 0, 64), Expect::Good);
    let full = usize::from(d[4]) + 5;
    assert_eq!(
        t.expect(&inquiry(false, 0, full as u16), Expect::Good)
            .len(),
        full
    );
}

#[test]
fn mandatory_sbc() {
    let mut t = disk();
    t.expect(&inquiry(false, 0, 255), Expect::Good);
    t.expect(&cdb10(op::READ_CAPACITY_10, 0, 0, 0), Expect::Good);
    t.expect(&rc16(15), Expect::Good);
    t.expect(&cdb10(op::READ_10, 0, 0, 1), Expect::Good);
    t.expect(&cdb16(op::READ_16, 0, 0, 1), Expect::Good);
    t.expect(&[0; 6], Expect::Good);
}

#[test]
fn readcapacity10_simple() {
    let d = disk().expect(&cdb10(op::READ_CAPACITY_10, 0, 0, 0), Expect::Good);
    let last = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    assert_eq!(u64::from(last) + 1, NUM_BLOCKS);
    assert_eq!(u32::from_be_bytes([d[4], d[5], d[6], d[7]]), 512);
}

#[test]
fn readcapacity16_simple_alloclen_support_and_protection() {
    let mut t = disk();
    t.expect(&rc16(16), Expect::Good);
    for alloc in 0..16 {
        assert_eq!(t.expect(&rc16(alloc), Expect::Good).len(), alloc as usize);
    }
    let d = t.expect(&rc16(96), Expect::Good);
    assert_eq!(
        u64::from_be_bytes(d[0..8].try_into().unwrap()) + 1,
        NUM_BLOCKS
    );
    assert_eq!(d[12] & 0x0F, 0, "P_TYPE and PROT_EN clear without PROTECT");
    assert_eq!(d[13] >> 4, 0, "P_I_EXPONENT clear");
    assert_eq!(d[13] & 0x0F, 3, "LBPPBE: eight 512-byte blocks per 4 KiB");
    assert_eq!(
        d[14] & 0xC0,
        0xC0,
        "LBPME and LBPRZ: thin, unmapped blocks read zeros"
    );
}

#[test]
fn read6_simple() {
    let mut t = disk();
    for i in 1..=255u8 {
        assert_eq!(
            t.expect(&cdb6(op::READ_6, 0, i), Expect::Good).len(),
            usize::from(i) * 512
        );
        t.expect(
            &cdb6(op::READ_6, NUM_BLOCKS as u32 - u32::from(i), i),
            Expect::Good,
        );
    }
    assert_eq!(
        t.expect(&cdb6(op::READ_6, 0, 0), Expect::Good).len(),
        256 * 512
    );
}

#[test]
fn read6_beyond_eol() {
    let mut t = disk();
    let n = NUM_BLOCKS as u32;
    for i in 1..=255u8 {
        t.expect(&cdb6(op::READ_6, n + 1 - u32::from(i), i), Expect::LbaOob);
        t.expect(&cdb6(op::READ_6, 0x1F_FFFF, i), Expect::LbaOob);
        if i >= 2 {
            t.expect(&cdb6(op::READ_6, n - 1, i), Expect::LbaOob);
        }
    }
}

/// READ10/12/16 and WRITE10/12/16 built the same way for the shared loops.
fn rw(opcode: u8, flags: u8, lba: u64, blocks: u32) -> Vec<u8> {
    match opcode {
        op::READ_10 | op::WRITE_10 => cdb10(opcode, flags, lba as u32, blocks as u16).to_vec(),
        op::READ_12 | op::WRITE_12 => cdb12(opcode, flags, lba as u32, blocks).to_vec(),
        _ => cdb16(opcode, flags, lba, blocks).to_vec(),
    }
}

const READS: [u8; 3] = [op::READ_10, op::READ_12, op::READ_16];
const WRITES: [u8; 3] = [op::WRITE_10, op::WRITE_12, op::WRITE_16];

#[test]
fn read_and_write_simple() {
    let mut t = disk();
    for opcode in READS.into_iter().chain(WRITES) {
        for i in 1..=256u32 {
            t.expect(&rw(opcode, 0, 0, i), Expect::Good);
            t.expect(&rw(opcode, 0, NUM_BLOCKS - u64::from(i), i), Expect::Good);
        }
    }
}

#[test]
fn read_and_write_beyond_eol() {
    let mut t = disk();
    for opcode in READS.into_iter().chain(WRITES) {
        let sixteen = opcode == op::READ_16 || opcode == op::WRITE_16;
        for i in 1..=256u32 {
            let i64_ = u64::from(i);
            t.expect(&rw(opcode, 0, NUM_BLOCKS + 1 - i64_, i), Expect::LbaOob);
            t.expect(&rw(opcode, 0, 0x8000_0000, i), Expect::LbaOob);
            t.expect(&rw(opcode, 0, u64::from(u32::MAX), i), Expect::LbaOob);
            if sixteen {
                t.expect(&rw(opcode, 0, 1 << 63, i), Expect::LbaOob);
                t.expect(&rw(opcode, 0, 1 << (64 - 9), i), Expect::LbaOob);
                t.expect(&rw(opcode, 0, 1 << (63 - 9), i), Expect::LbaOob);
                t.expect(&rw(opcode, 0, u64::MAX, i), Expect::LbaOob);
            }
            if i >= 2 {
                t.expect(&rw(opcode, 0, NUM_BLOCKS - 1, i), Expect::LbaOob);
            }
        }
    }
}

#[test]
fn read_and_write_zero_blocks() {
    let mut t = disk();
    for opcode in READS.into_iter().chain(WRITES) {
        assert!(t.expect(&rw(opcode, 0, 0, 0), Expect::Good).is_empty());
        t.expect(&rw(opcode, 0, NUM_BLOCKS + 1, 0), Expect::LbaOob);
        t.expect(&rw(opcode, 0, 0x8000_0000, 0), Expect::LbaOob);
        t.expect(&rw(opcode, 0, u64::from(u32::MAX), 0), Expect::LbaOob);
    }
    t.expect(&rw(op::READ_16, 0, u64::MAX, 0), Expect::LbaOob);
}

#[test]
fn read_rdprotect_and_write_wrprotect() {
    let mut t = disk();
    for opcode in READS.into_iter().chain(WRITES) {
        for p in 1..8u8 {
            t.expect(&rw(opcode, p << 5, 0, 1), Expect::InvalidFieldInCdb);
        }
    }
}

#[test]
fn read_and_write_dpofua() {
    let mut t = disk();
    let ms = t.expect(&modesense6(0, 0x3F, 255), Expect::Good);
    assert_eq!(ms[2] & 0x10, 0x10, "DPOFUA set: DPO/FUA must be accepted");
    for opcode in READS.into_iter().chain(WRITES) {
        for flags in [0x10, 0x08, 0x18] {
            t.expect(&rw(opcode, flags, 0, 1), Expect::Good);
        }
    }
    // REPORT SUPPORTED OPERATION CODES, one command: CDB USAGE DATA byte 1 has DPO and FUA.
    for opcode in READS.into_iter().chain(WRITES) {
        let rsoc = [0xA3, 0x0C, 0x01, opcode, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0];
        let d = t.expect(&rsoc, Expect::Good);
        assert_eq!(d[1] & 0x07, 0b011, "supported");
        assert_eq!(d[4], opcode);
        assert_eq!(d[5] & 0x18, 0x18, "{opcode:#x}");
    }
}

#[test]
fn readonly_sbc() {
    let mut t = Target::new(lu_with(|u| u.read_only = true));
    let ms = t.expect(&modesense6(0, 0x3F, 255), Expect::Good);
    assert_eq!(
        ms[2] & 0x80,
        0x80,
        "iscsi-test-cu detects read-only from WP"
    );
    for opcode in WRITES.into_iter().chain([
        op::WRITE_AND_VERIFY_10,
        op::WRITE_AND_VERIFY_12,
        op::WRITE_AND_VERIFY_16,
    ]) {
        t.expect(&rw(opcode, 0, 0, 1), Expect::WriteProtected);
    }
    // WRITE SAME (with and without UNMAP), ORWRITE, COMPARE AND WRITE, UNMAP of one physical
    // and of one logical block: DATA PROTECT before any Data-Out is needed.
    let unmap = [op::UNMAP, 0, 0, 0, 0, 0, 0, 0, 24, 0];
    for cdb in [
        cdb10(op::WRITE_SAME_10, 0, 0, 1).to_vec(),
        cdb10(op::WRITE_SAME_10, 0x08, 0, 1).to_vec(),
        cdb16(op::WRITE_SAME_16, 0, 0, 1).to_vec(),
        cdb16(op::WRITE_SAME_16, 0x08, 0, 1).to_vec(),
        cdb16(op::ORWRITE_16, 0, 0, 1).to_vec(),
        cdb16(op::COMPARE_AND_WRITE, 0, 0, 1).to_vec(),
        unmap.to_vec(),
    ] {
        t.expect(&cdb, Expect::WriteProtected);
    }
    t.expect(&cdb10(op::READ_10, 0, 0, 1), Expect::Good);
}

#[test]
fn modesense6_all_pages_and_residuals() {
    let mut t = disk();
    let d = t.expect(&modesense6(0, 0x3F, 255), Expect::Good);
    assert!(d[0] >= 3);
    assert!(usize::from(d[0]) < d.len());
    assert!(
        d.len() < 255,
        "short of the allocation length: the transport reports underflow"
    );
    assert_eq!(t.expect(&modesense6(0, 0x3F, 4), Expect::Good).len(), 4);
}

/// Control page bytes as found by walking the pages like libiscsi's unmarshaller.
fn control_page(d: &[u8]) -> Option<Vec<u8>> {
    let mut at = 4 + usize::from(d[3]);
    while at + 1 < d.len() {
        let end = at + 2 + usize::from(d[at + 1]);
        if d[at] & 0x3F == 0x0A {
            return Some(d[at..end].to_vec());
        }
        at = end;
    }
    None
}

#[test]
fn modesense6_control() {
    let mut t = disk();
    let all = control_page(&t.expect(&modesense6(0, 0x3F, 255), Expect::Good)).unwrap();
    let direct = control_page(&t.expect(&modesense6(0, 0x0A, 255), Expect::Good)).unwrap();
    assert_eq!(all, direct);
    assert!(direct[2] >> 5 <= 1, "TST 0 or 1");
    let qam = direct[3] >> 4;
    assert!(qam <= 1 || qam > 7);
    assert_ne!((direct[3] >> 1) & 3, 2, "QERR");
    assert_ne!((direct[4] >> 4) & 3, 1, "UA_INTLCK_CTRL");
    assert!(direct[5] & 0x07 <= 2, "AUTOLOAD");
}

#[test]
fn modesense6_control_d_sense() {
    let mut t = disk();
    let control = control_page(&t.expect(&modesense6(0, 0x0A, 255), Expect::Good)).unwrap();
    let Plan::Complete(c) = t.send(&cdb16(op::READ_16, 0, u64::MAX, 1)) else {
        panic!()
    };
    let descriptor = c.sense[0] & 0x7F == 0x72;
    assert_eq!(descriptor, control[2] & 0x04 != 0);
}

#[test]
fn modesense6_control_swp() {
    // set_swp(): the changeable control page has SWP, so MODE SELECT (6) sets it in the current
    // page; then reads work and writes are WRITE PROTECTED until clear_swp().
    let mut t = disk();
    let changeable = [op::MODE_SENSE_6, 0x08, 0x40 | 0x0A, 0, 255, 0];
    let control = control_page(&t.expect(&changeable, Expect::Good)).unwrap();
    assert_eq!(control[4] & 0x08, 0x08, "SWP changeable");
    let current = [op::MODE_SENSE_6, 0x08, 0x0A, 0, 255, 0];
    let mut page = control_page(&t.expect(&current, Expect::Good)).unwrap();
    for swp in [true, false] {
        page[4] = if swp { page[4] | 0x08 } else { page[4] & !0x08 };
        let mut params = vec![0, 0, 0, 0];
        params.extend_from_slice(&page);
        let cdb = [op::MODE_SELECT_6, 0x10, 0, 0, params.len() as u8, 0];
        assert!(matches!(t.send(&cdb), Plan::ReceiveParams { .. }));
        let c = execute_params(&t.luns, &mut t.nexus, 0, &cdb, &params);
        assert_eq!(c.status, ScsiStatus::GOOD);
        let now = control_page(&t.expect(&current, Expect::Good)).unwrap();
        assert_eq!(now[4] & 0x08 != 0, swp);
        t.expect(&cdb10(op::READ_10, 0, 0, 1), Expect::Good);
        let want = if swp {
            Expect::WriteProtected
        } else {
            Expect::Good
        };
        t.expect(&cdb10(op::WRITE_10, 0, 0, 1), want);
    }
}
