//! EXTENDED COPY and GET LBA STATUS against the real daemon: a copy between two RAM units named
//! by the designators their VPD 83h pages report, read back through the target; a copy status
//! retrieved afterwards; and GET LBA STATUS reporting the holes of a sparse file unit.

mod common;

use common::{cdb, Daemon, Initiator, TARGET};

const BS: usize = 512;
const KEYS: [(&str, &str); 2] = [("ImmediateData", "Yes"), ("InitialR2T", "No")];

fn session(d: &Daemon) -> Initiator {
    common::session(d, &KEYS)
}

/// The logical unit NAA designator of `lun`'s Device Identification VPD page, as a CSCD
/// identification descriptor (E4h) for a block device of 512-byte blocks.
fn cscd(ini: &mut Initiator, lun: u16) -> Vec<u8> {
    let r = ini.read(lun, &cdb::inquiry(true, 0x83, 512), 512);
    r.assert_good();
    let page = &r.data;
    let mut at = 4;
    let naa = loop {
        assert!(at + 4 <= page.len(), "no NAA designator for LUN {lun}");
        let len = usize::from(page[at + 3]);
        if page[at + 1] & 0x3F == 0x03 {
            break page[at..at + 4 + len].to_vec();
        }
        at += 4 + len;
    };
    let mut d = vec![0u8; 32];
    d[0] = 0xE4;
    d[4..4 + naa.len()].copy_from_slice(&naa);
    d[29..32].copy_from_slice(&(BS as u32).to_be_bytes()[1..]);
    d
}

/// A parameter list with LIST IDENTIFIER `list_id` held for COPY STATUS, the CSCDs given and
/// one block to block segment from CSCD 0 to CSCD 1.
fn copy_list(list_id: u8, cscds: &[Vec<u8>], blocks: u16, src_lba: u64, dst_lba: u64) -> Vec<u8> {
    let mut d = vec![0u8; 16];
    d[0] = list_id;
    d[2..4].copy_from_slice(&((cscds.len() * 32) as u16).to_be_bytes());
    d[8..12].copy_from_slice(&28u32.to_be_bytes());
    for c in cscds {
        d.extend_from_slice(c);
    }
    let mut s = vec![0x02, 0, 0, 0x18, 0, 0, 0, 1, 0, 0];
    s.extend_from_slice(&blocks.to_be_bytes());
    s.extend_from_slice(&src_lba.to_be_bytes());
    s.extend_from_slice(&dst_lba.to_be_bytes());
    d.extend_from_slice(&s);
    d
}

fn xcopy(len: usize) -> Vec<u8> {
    let mut c = vec![0u8; 16];
    c[0] = 0x83;
    c[10..14].copy_from_slice(&(len as u32).to_be_bytes());
    c
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i >> 9) as u8).collect()
}

#[test]
fn a_copy_between_two_units_reads_back_from_the_destination() {
    let d = Daemon::start(&[
        "--target",
        TARGET,
        "--lun",
        "ram:64MiB",
        "--lun",
        "ram:64MiB",
    ]);
    let mut ini = session(&d);
    // 3 MiB: several bounded steps, the last one partial.
    let blocks = 6000u16;
    let data = pattern(usize::from(blocks) * BS);
    for (i, chunk) in data.chunks(1 << 20).enumerate() {
        ini.write_blocks(0, 100 + i as u64 * 2048, chunk, BS as u32)
            .assert_good();
    }
    let cscds = [cscd(&mut ini, 0), cscd(&mut ini, 1)];
    let list = copy_list(7, &cscds, blocks, 100, 5000);
    // Sent to the destination unit, as QEMU and ESXi do.
    ini.write(1, &xcopy(list.len()), &list).assert_good();
    let mut back = Vec::new();
    for lba in (5000..5000 + u64::from(blocks)).step_by(2048) {
        let n = (5000 + u64::from(blocks) - lba).min(2048) as u32;
        let r = ini.read_blocks(1, lba, n, BS as u32);
        r.assert_good();
        back.extend_from_slice(&r.data);
    }
    assert!(back == data, "LUN 1 holds what LUN 0 held");
    // RECEIVE COPY RESULTS, COPY STATUS of list 7 on the unit it was sent to.
    let mut rcr = vec![0x84, 0x00, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0];
    let r = ini.read(1, &rcr, 1024);
    r.assert_good();
    assert_eq!(r.data[4], 0x01, "completed");
    assert_eq!(&r.data[8..12], &(data.len() as u32).to_be_bytes());
    rcr[2] = 8;
    ini.read(1, &rcr, 1024).assert_sense(0x05, 0x24);
}

#[test]
fn a_copy_to_a_unit_beyond_its_end_copies_nothing() {
    let d = Daemon::start(&["--target", TARGET, "--lun", "ram:4MiB", "--lun", "ram:4MiB"]);
    let mut ini = session(&d);
    ini.write_blocks(0, 0, &vec![0xAB; 8 * BS], BS as u32)
        .assert_good();
    let cscds = [cscd(&mut ini, 0), cscd(&mut ini, 1)];
    let last = 4 * 2048 - 4;
    let list = copy_list(1, &cscds, 8, 0, last);
    ini.write(0, &xcopy(list.len()), &list)
        .assert_sense(0x0A, 0x00);
    let r = ini.read_blocks(1, last, 4, BS as u32);
    r.assert_good();
    assert!(r.data.iter().all(|&b| b == 0), "nothing written");
}

/// GET LBA STATUS at `lba` with room for `n` descriptors: (LBA, blocks, status) each.
fn lba_status(ini: &mut Initiator, lun: u16, lba: u64, n: u32) -> Vec<(u64, u32, u8)> {
    let alloc = 8 + 16 * n;
    let mut c = vec![0x9E, 0x12];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&alloc.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    let r = ini.read(lun, &c, alloc);
    r.assert_good();
    r.data[8..]
        .chunks(16)
        .map(|d| {
            (
                u64::from_be_bytes(d[0..8].try_into().unwrap()),
                u32::from_be_bytes(d[8..12].try_into().unwrap()),
                d[12] & 0x0F,
            )
        })
        .collect()
}

#[test]
fn get_lba_status_reports_the_holes_of_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sparse.img");
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(16 << 20))
        .expect("sparse file");
    let lun = path.display().to_string();
    let d = Daemon::start(&["--target", TARGET, "--lun", &lun, "--lun", "null:16MiB"]);
    let mut ini = session(&d);
    let blocks = 16 * 2048;
    // A new sparse file holds nothing: 1 = deallocated.
    assert_eq!(lba_status(&mut ini, 0, 0, 4), [(0, blocks, 1)]);
    // Write 1 MiB at 4 MiB, then unmap its second half.
    ini.write_blocks(0, 8192, &vec![1; 1 << 20], BS as u32)
        .assert_good();
    let mut unmap = vec![0u8; 24];
    unmap[0..2].copy_from_slice(&22u16.to_be_bytes());
    unmap[2..4].copy_from_slice(&16u16.to_be_bytes());
    unmap[8..16].copy_from_slice(&(8192u64 + 1024).to_be_bytes());
    unmap[16..20].copy_from_slice(&1024u32.to_be_bytes());
    ini.write(0, &[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &unmap)
        .assert_good();
    let got = lba_status(&mut ini, 0, 100, 8);
    // Filesystems keep data in blocks of their own (4 KiB and up): the edges follow them, so
    // only the shape is certain.
    assert_eq!(got[0].0, 100);
    assert_eq!(got.iter().map(|g| g.2).collect::<Vec<_>>(), [1, 0, 1]);
    let mapped = got[1];
    assert!(mapped.0 <= 8192 && mapped.0 + u64::from(mapped.1) >= 9216);
    assert!(
        mapped.0 + u64::from(mapped.1) < 8192 + 2048,
        "the unmapped half is a hole"
    );
    // The null unit holds nothing at all.
    assert_eq!(lba_status(&mut ini, 1, 7, 4), [(7, blocks - 7, 1)]);
}
