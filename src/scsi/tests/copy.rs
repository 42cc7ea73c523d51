//! EXTENDED COPY (LID1) and RECEIVE COPY RESULTS against in-memory disks: libiscsi's (1.19)
//! SCSI.ExtendedCopy and SCSI.ReceiveCopyResults suites replayed with the parameter lists its
//! `populate_*` helpers build, then copies between units, the bounds and the failures.

use super::disk::{field_pointer, sense_of, Disk, OneLu};
use super::*;
use crate::scsi::cdb::op;
use crate::scsi::job::STEP_BYTES;
use crate::scsi::{IoOutcome, JobIo, JobOp, LunMap, NexusState, Step};

const GOOD: Option<(u8, u8, u8)> = None;
const COPY_ABORTED: u8 = 0x0A;
const ILLEGAL: u8 = 0x05;
const PARAMETER_LIST_LENGTH_ERROR: Option<(u8, u8, u8)> = Some((ILLEGAL, 0x1A, 0x00));
const TOO_MANY_TARGETS: Option<(u8, u8, u8)> = Some((ILLEGAL, 0x26, 0x06));
const TOO_MANY_SEGMENTS: Option<(u8, u8, u8)> = Some((ILLEGAL, 0x26, 0x08));
const UNSUPPORTED_TARGET_TYPE: Option<(u8, u8, u8)> = Some((ILLEGAL, 0x26, 0x07));
const UNSUPPORTED_SEGMENT_TYPE: Option<(u8, u8, u8)> = Some((ILLEGAL, 0x26, 0x09));
const INVALID_CDB: Option<(u8, u8, u8)> = Some((ILLEGAL, 0x24, 0x00));
const UNREACHABLE: Option<(u8, u8, u8)> = Some((COPY_ABORTED, 0x08, 0x04));
/// libiscsi's EXPECT_COPY_ABORTED: COPY ABORTED with one of these ASC/ASCQs.
const COPY_ABORTED_ASCQS: [(u8, u8); 3] = [(0x00, 0x00), (0x08, 0x04), (0x0D, 0x02)];

/// LIST ID USAGE (header byte 1 bits 4..3) as libiscsi names them.
const HOLD: u8 = 0;
const DISCARD: u8 = 2;
const NO_LIST_ID: u8 = 3;

/// The CSCD identification descriptor libiscsi's `populate_tgt_desc` builds for `lu`: its VPD
/// 83h NAA designator (the designator type it prefers), DISK BLOCK LENGTH its block size.
fn cscd(lu: &LuInfo) -> [u8; 32] {
    let mut d = [0u8; 32];
    d[0] = 0xE4;
    d[4..8].copy_from_slice(&[0x01, 0x03, 0, 16]);
    d[8..24].copy_from_slice(&lu.naa_id);
    d[29..32].copy_from_slice(&lu.block_size.to_be_bytes()[1..]);
    d
}

/// `populate_seg_desc_b2b`: block device to block device, CSCD indexes `src` and `dst`.
fn segment(src: u16, dst: u16, blocks: u16, src_lba: u64, dst_lba: u64) -> [u8; 28] {
    let mut d = [0u8; 28];
    d[0] = 0x02;
    d[2..4].copy_from_slice(&0x18u16.to_be_bytes());
    d[4..6].copy_from_slice(&src.to_be_bytes());
    d[6..8].copy_from_slice(&dst.to_be_bytes());
    d[10..12].copy_from_slice(&blocks.to_be_bytes());
    d[12..20].copy_from_slice(&src_lba.to_be_bytes());
    d[20..28].copy_from_slice(&dst_lba.to_be_bytes());
    d
}

/// `populate_param_header` followed by the descriptors.
fn params(list_id: u8, usage: u8, cscds: &[[u8; 32]], segments: &[[u8; 28]]) -> Vec<u8> {
    let mut d = vec![0u8; 16];
    d[0] = list_id;
    d[1] = usage << 3;
    d[2..4].copy_from_slice(&((cscds.len() * 32) as u16).to_be_bytes());
    d[8..12].copy_from_slice(&((segments.len() * 28) as u32).to_be_bytes());
    for c in cscds {
        d.extend_from_slice(c);
    }
    for s in segments {
        d.extend_from_slice(s);
    }
    d
}

/// `scsi_cdb_extended_copy`: LID1, PARAMETER LIST LENGTH.
fn xcopy(len: usize) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op::EXTENDED_COPY;
    c[10..14].copy_from_slice(&(len as u32).to_be_bytes());
    c
}

/// `scsi_cdb_receive_copy_results` with libiscsi's 1024-byte allocation length.
fn rcr(service_action: u8, list_id: u8) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op::RECEIVE_COPY_RESULTS;
    c[1] = service_action;
    c[2] = list_id;
    c[10..14].copy_from_slice(&1024u32.to_be_bytes());
    c
}

impl OneLu {
    /// Sends an EXTENDED COPY with `list`, EDTL its length; returns the sense (None: GOOD).
    fn xcopy(&mut self, list: &[u8]) -> Option<(u8, u8, u8)> {
        sense_of(&self.run(&xcopy(list.len()), list))
    }

    fn good(&mut self, cdb: &[u8]) -> Vec<u8> {
        let c = self.run(cdb, &[]);
        assert_eq!(sense_of(&c), GOOD, "{cdb:02x?}");
        c.data
    }
}

fn fill(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

/// libiscsi's EXPECT_COPY_ABORTED.
fn assert_copy_aborted(sense: Option<(u8, u8, u8)>) {
    let (key, asc, ascq) = sense.expect("CHECK CONDITION");
    assert_eq!(key, COPY_ABORTED);
    assert!(
        COPY_ABORTED_ASCQS.contains(&(asc, ascq)),
        "{asc:#x}/{ascq:#x}"
    );
}

#[test]
fn extendedcopy_simple_copies_the_start_of_the_unit_to_its_end() {
    let mut t = OneLu::new();
    let blocks = 1024u64; // libiscsi: num_blocks / 2, at most 2048
    let a = vec![b'A'; blocks as usize * 512];
    t.disk.fill(0, &a);
    let lu = t.lu().clone();
    let list = params(
        1,
        DISCARD,
        &[cscd(&lu)],
        &[segment(0, 0, 1024, 0, 2048 - blocks)],
    );
    assert_eq!(t.xcopy(&list), GOOD);
    assert!(t.disk.blocks(2048 - blocks, blocks) == &a[..]);
    assert!(t.disk.trace.largest_buffer <= STEP_BYTES as usize);
}

#[test]
fn extendedcopy_param_hdr_truncated_lists_and_an_empty_one() {
    let mut t = OneLu::new();
    let lu = t.lu().clone();
    let list = params(1, HOLD, &[cscd(&lu)], &[segment(0, 0, 1024, 0, 1024)]);
    assert_eq!(t.xcopy(&list[..16 + 32 - 1]), PARAMETER_LIST_LENGTH_ERROR);
    assert_eq!(
        t.xcopy(&list[..list.len() - 1]),
        PARAMETER_LIST_LENGTH_ERROR
    );
    assert_eq!(t.xcopy(&[]), GOOD, "PARAMETER LIST LENGTH 0: nothing to do");
    for len in 1..16 {
        assert_eq!(t.xcopy(&list[..len]), PARAMETER_LIST_LENGTH_ERROR);
    }
    assert_eq!(t.disk.trace.writes, 0);
}

#[test]
fn extendedcopy_descr_limits_follow_the_operating_parameters() {
    let mut t = OneLu::new();
    let lu = t.lu().clone();
    let op = t.good(&rcr(0x03, 0));
    let max_targets = usize::from(u16::from_be_bytes([op[8], op[9]]));
    let max_segments = usize::from(u16::from_be_bytes([op[10], op[11]]));
    let max_list = u32::from_be_bytes(op[12..16].try_into().unwrap()) as usize;
    let seg = segment(0, 0, 1, 0, 1024);
    let list = params(1, HOLD, &vec![cscd(&lu); max_targets + 1], &[seg]);
    assert_eq!(t.xcopy(&list), TOO_MANY_TARGETS);
    let list = params(2, HOLD, &[cscd(&lu)], &vec![seg; max_segments + 1]);
    assert_eq!(t.xcopy(&list), TOO_MANY_SEGMENTS);
    let list = params(
        3,
        HOLD,
        &vec![cscd(&lu); max_targets + 1],
        &vec![seg; max_segments + 1],
    );
    assert!(list.len() - 16 > max_list, "libiscsi runs the third case");
    assert_eq!(t.xcopy(&list), PARAMETER_LIST_LENGTH_ERROR);
    // The maxima themselves are fine.
    let list = params(
        4,
        HOLD,
        &vec![cscd(&lu); max_targets],
        &vec![seg; max_segments],
    );
    assert!(list.len() - 16 <= max_list);
    assert_eq!(t.xcopy(&list), GOOD);
}

#[test]
fn extendedcopy_descr_type_unsupported_descriptors() {
    let mut t = OneLu::new();
    let lu = t.lu().clone();
    let mut fc = cscd(&lu);
    fc[0] = 0xE0; // Fibre Channel N_Port_Name
    let list = params(1, HOLD, &[fc], &[segment(0, 0, 2048, 0, 0)]);
    assert_eq!(t.xcopy(&list), UNSUPPORTED_TARGET_TYPE);
    // populate_seg_desc_hdr of a stream-to-stream (03h) descriptor: 20 bytes.
    let mut stream = vec![0x03, 0, 0, 0x10];
    stream.resize(20, 0);
    let mut list = params(1, HOLD, &[cscd(&lu)], &[]);
    list[8..12].copy_from_slice(&20u32.to_be_bytes());
    list.extend_from_slice(&stream);
    assert_eq!(t.xcopy(&list), UNSUPPORTED_SEGMENT_TYPE);
}

#[test]
fn extendedcopy_valid_tgt_descr_ignores_the_obsolete_lu_id_type_and_nul() {
    // SPC-4 (INQUIRY VERSION 6): libiscsi expects the reserved LU ID TYPE to be ignored and
    // skips its NUL bit test; the NUL bit is ignored too.
    let mut t = OneLu::new();
    let lu = t.lu().clone();
    assert_eq!(t.good(&[op::INQUIRY, 0, 0, 0, 96, 0])[2], 6);
    for byte1 in [0x80, 0xC0, 0x20] {
        let mut c = cscd(&lu);
        c[1] = byte1;
        let list = params(1, HOLD, &[c], &[segment(0, 0, 16, 0, 2048 - 16)]);
        assert_eq!(t.xcopy(&list), GOOD, "{byte1:#x}");
    }
}

#[test]
fn extendedcopy_valid_seg_descr_unreachable_index_and_beyond_the_end() {
    let mut t = OneLu::new();
    let lu = t.lu().clone();
    let list = params(1, HOLD, &[cscd(&lu)], &[segment(0, 1, 1024, 0, 1024)]);
    let sense = t.xcopy(&list);
    assert_copy_aborted(sense);
    assert_eq!(sense, UNREACHABLE);
    let list = params(1, HOLD, &[cscd(&lu)], &[segment(0, 0, 1024, 0, 2048 - 1)]);
    assert_copy_aborted(t.xcopy(&list));
    assert_eq!(t.disk.trace.writes, 0, "nothing copied");
}

#[test]
fn segment_errors_name_the_segment_and_the_field() {
    let mut t = OneLu::new();
    let lu = t.lu().clone();
    let ok = segment(0, 0, 8, 0, 8);
    let beyond = segment(0, 0, 8, 2048 - 4, 0);
    let list = params(1, HOLD, &[cscd(&lu)], &[ok, ok, beyond]);
    let c = t.run(&xcopy(list.len()), &list);
    assert_eq!(sense_of(&c), Some((COPY_ABORTED, 0, 0)));
    assert_eq!(
        &c.sense[8..12],
        &[0, 0, 0, 2],
        "COMMAND-SPECIFIC INFORMATION: segment 2"
    );
    assert_eq!(
        &c.sense[15..18],
        &[0xA0, 0, 12],
        "SD, SOURCE LBA of the segment"
    );
    assert_eq!(t.disk.trace.writes, 0, "checked before any block moves");
}

#[test]
fn list_form_errors_point_into_the_parameter_list() {
    let mut t = OneLu::new();
    let lu = t.lu().clone();
    let seg = segment(0, 0, 1, 0, 1);
    let mut list = params(1, HOLD, &[cscd(&lu)], &[seg]);
    list[1] = 0x08; // LIST ID USAGE 01b: reserved
    let c = t.run(&xcopy(list.len()), &list);
    assert_eq!(sense_of(&c), Some((ILLEGAL, 0x26, 0x00)));
    assert_eq!(field_pointer(&c), Some((false, 1)));
    let mut list = params(1, HOLD, &[cscd(&lu)], &[seg]);
    list[15] = 4; // INLINE DATA LENGTH
    list.extend_from_slice(&[0; 4]);
    let c = t.run(&xcopy(list.len()), &list);
    assert_eq!(field_pointer(&c), Some((false, 12)));
    let mut list = params(1, HOLD, &[cscd(&lu)], &[seg]);
    list[16 + 32 + 3] = 0x14; // DESCRIPTOR LENGTH of a 02h descriptor must be 18h
    let c = t.run(&xcopy(list.len()), &list);
    assert_eq!(field_pointer(&c), Some((false, 16 + 32 + 2)));
    let mut list = params(1, HOLD, &[cscd(&lu)], &[]);
    list[3] = 31; // a CSCD descriptor cut short
    list.truncate(16 + 31);
    let c = t.run(&xcopy(list.len()), &list);
    assert_eq!(field_pointer(&c), Some((false, 2)));
}

#[test]
fn receive_copy_results_op_params_report_the_bounds() {
    let mut t = OneLu::new();
    let d = t.good(&rcr(0x03, 0));
    assert_eq!(u32::from_be_bytes(d[0..4].try_into().unwrap()), 42);
    assert_eq!(d.len(), 46);
    assert_eq!(d[4] & 0x01, 1, "SNLID");
    assert_eq!(
        &d[8..12],
        &[0, 8, 0, 8],
        "CSCD and segment descriptor counts"
    );
    assert_eq!(
        &d[12..16],
        &512u32.to_be_bytes(),
        "MAXIMUM DESCRIPTOR LIST LENGTH"
    );
    assert_eq!(
        &d[16..20],
        &(256u32 << 20).to_be_bytes(),
        "MAXIMUM SEGMENT LENGTH"
    );
    assert_eq!(&d[20..32], &[0; 12], "no inline data, held data, streams");
    assert_eq!((d[34], d[35], d[36]), (0, 4, 4), "concurrent copies");
    assert_eq!(d[37], 9, "DATA SEGMENT GRANULARITY: 2^9");
    assert_eq!((d[43], d[44], d[45]), (2, 0x02, 0xE4));
    let mut short = rcr(0x03, 0);
    short[10..14].copy_from_slice(&10u32.to_be_bytes());
    assert_eq!(t.good(&short).len(), 10, "ALLOCATION LENGTH");
}

#[test]
fn receive_copy_results_copy_status_of_a_held_list_identifier() {
    let mut t = OneLu::new();
    let lu = t.lu().clone();
    // "No copy in progress".
    let c = t.run(&rcr(0x00, 1), &[]);
    assert_eq!(sense_of(&c), INVALID_CDB);
    assert_eq!(field_pointer(&c), Some((true, 2)));
    let list = params(
        1,
        HOLD,
        &[cscd(&lu)],
        &[segment(0, 0, 2048 / 2, 0, 2048 / 2)],
    );
    assert_eq!(t.xcopy(&list), GOOD);
    let d = t.good(&rcr(0x00, 1));
    assert_eq!(d.len(), 12);
    assert_eq!(u32::from_be_bytes(d[0..4].try_into().unwrap()), 8);
    assert_eq!(d[4], 0x01, "completed, HDD clear");
    assert_eq!(&d[5..7], &[0, 1], "segments processed");
    assert_eq!(d[7], 0, "bytes");
    assert_eq!(&d[8..12], &(1024u32 * 512).to_be_bytes());
    // Another unit's list 1, or list 2, were never identified here.
    assert_eq!(sense_of(&t.run(&rcr(0x00, 2), &[])), INVALID_CDB);
}

#[test]
fn copy_status_is_kept_only_for_list_id_usage_hold() {
    let mut t = OneLu::new();
    let lu = t.lu().clone();
    let seg = segment(0, 0, 1, 0, 1);
    assert_eq!(t.xcopy(&params(5, DISCARD, &[cscd(&lu)], &[seg])), GOOD);
    assert_eq!(sense_of(&t.run(&rcr(0x00, 5), &[])), INVALID_CDB);
    assert_eq!(t.xcopy(&params(6, NO_LIST_ID, &[cscd(&lu)], &[seg])), GOOD);
    assert_eq!(sense_of(&t.run(&rcr(0x00, 6), &[])), INVALID_CDB);
    // Failed copies are held too, with the segments done before the failure.
    let bad = segment(0, 0, 1, 4096, 0);
    let list = params(7, HOLD, &[cscd(&lu)], &[seg, bad]);
    assert_copy_aborted(t.xcopy(&list));
    // Checked before the copy started: nothing was registered.
    assert_eq!(sense_of(&t.run(&rcr(0x00, 7), &[])), INVALID_CDB);
    t.disk.fail_io = Some(3);
    let list = params(8, HOLD, &[cscd(&lu)], &[seg, seg, seg]);
    let c = t.run(&xcopy(list.len()), &list);
    assert_eq!(
        sense_of(&c),
        Some((COPY_ABORTED, 0x0C, 0x00)),
        "the second write"
    );
    assert_eq!(&c.sense[8..12], &[0, 0, 0, 1]);
    let d = t.good(&rcr(0x00, 8));
    assert_eq!((d[4], d[6]), (0x02, 1), "failed after one segment");
}

/// Two units of one target, LUN 0 (the copy manager) and LUN 1, each with its designator.
fn two_units(second: impl FnOnce(&mut LuInfo)) -> OneLu {
    let first = lu(0);
    let mut other = lu(1);
    other.naa_id[15] ^= 0xFF;
    second(&mut other);
    let mut t = OneLu::with(first.clone());
    t.disk.add(&other, 0);
    t.luns = LunMap::new(vec![first, other]);
    t
}

#[test]
fn copies_between_units_read_one_and_write_the_other_in_bounded_steps() {
    let mut t = two_units(|u| u.num_blocks = 8192);
    let (src, dst) = (
        t.luns.get(0).unwrap().clone(),
        t.luns.get(1).unwrap().clone(),
    );
    let data = fill(2048 * 512, 7);
    t.disk.fill(0, &data);
    let list = params(
        1,
        HOLD,
        &[cscd(&src), cscd(&dst)],
        &[segment(0, 1, 2048, 0, 100), segment(1, 1, 50, 100, 5000)],
    );
    assert_eq!(t.xcopy(&list), GOOD);
    let other = &t.disk.others[0].bytes;
    assert!(other[100 * 512..2148 * 512] == data[..]);
    assert!(
        other[5000 * 512..5050 * 512] == data[..50 * 512],
        "dst to dst"
    );
    assert!(t.disk.trace.largest_buffer <= STEP_BYTES as usize);
    let units: Vec<u16> = t.disk.trace.accesses.iter().map(|a| a.0).collect();
    assert_eq!(units, [0, 1, 1, 1], "read there, write here");
    // CSCD DESCRIPTOR ID FFFFh: the copy manager's own unit.
    let list = params(2, HOLD, &[cscd(&dst)], &[segment(0, 0xFFFF, 10, 100, 2000)]);
    assert_eq!(t.xcopy(&list), GOOD);
    assert!(t.disk.blocks(2000, 10) == &data[..10 * 512]);
}

#[test]
fn units_the_nexus_cannot_see_are_unreachable() {
    let mut t = two_units(|_| {});
    let hidden = t.luns.get(1).unwrap().clone();
    // LUN masking: the initiator's map holds only LUN 0.
    t.luns = LunMap::new(vec![t.lu().clone()]);
    let own = t.lu().clone();
    let list = params(
        1,
        HOLD,
        &[cscd(&own), cscd(&hidden)],
        &[segment(0, 1, 1, 0, 0)],
    );
    let c = t.run(&xcopy(list.len()), &list);
    assert_eq!(sense_of(&c), UNREACHABLE);
    assert_eq!(
        &c.sense[15..18],
        &[0xA0, 0, 6],
        "DESTINATION CSCD DESCRIPTOR ID"
    );
    // The NAA designator's bytes under another designator type, or of another length.
    let mut t10 = cscd(&own);
    t10[5] = 0x01;
    let mut short = cscd(&own);
    short[7] = 8;
    for c in [t10, short] {
        let list = params(1, HOLD, &[c], &[segment(0, 0, 1, 0, 0)]);
        assert_eq!(t.xcopy(&list), UNREACHABLE);
    }
}

/// The CSCD descriptor naming a unit by the designator of `kind` that its Device
/// Identification page reports with LU association, as an initiator builds it from the page.
fn cscd_from_vpd(lu: &LuInfo, kind: u8) -> [u8; 32] {
    let page = crate::scsi::vpd::page(lu, 1, 0x83).expect("Device Identification page");
    let mut at = 4;
    let desc = loop {
        let len = usize::from(page[at + 3]);
        if page[at + 1] & 0x3F == kind {
            break page[at..at + 4 + len].to_vec();
        }
        at += 4 + len;
    };
    let mut d = [0u8; 32];
    d[0] = 0xE4;
    d[4..4 + desc.len()].copy_from_slice(&desc);
    d[29..32].copy_from_slice(&512u32.to_be_bytes()[1..]);
    d
}

#[test]
fn units_are_named_by_their_naa_or_t10_vendor_id_designator() {
    let mut t = two_units(|_| {});
    let data = fill(64 * 512, 3);
    t.disk.fill(0, &data);
    let (first, second) = (
        t.luns.get(0).unwrap().clone(),
        t.luns.get(1).unwrap().clone(),
    );
    let (src, dst) = (cscd_from_vpd(&first, 0x01), cscd_from_vpd(&second, 0x01));
    assert_eq!(src[7], 20, "the longest designator a CSCD holds");
    assert_ne!(src, dst, "each unit its own");
    let list = params(1, HOLD, &[src, dst], &[segment(0, 1, 64, 0, 10)]);
    assert_eq!(t.xcopy(&list), GOOD);
    assert!(t.disk.others[0].bytes[10 * 512..74 * 512] == data[..]);
    let naa = cscd_from_vpd(&second, 0x03);
    let list = params(2, HOLD, &[naa, src], &[segment(0, 1, 4, 10, 100)]);
    assert_eq!(t.xcopy(&list), GOOD);
    assert!(t.disk.blocks(100, 4) == &data[..4 * 512]);
}

#[test]
fn copy_targets_refuse_what_they_would_refuse_to_a_command() {
    let ro = {
        let mut t = two_units(|u| u.read_only = true);
        let (a, b) = (
            t.luns.get(0).unwrap().clone(),
            t.luns.get(1).unwrap().clone(),
        );
        t.xcopy(&params(
            1,
            HOLD,
            &[cscd(&a), cscd(&b)],
            &[segment(0, 1, 1, 0, 0)],
        ))
    };
    assert_eq!(ro, Some((COPY_ABORTED, 0x27, 0x00)), "write protected");
    let mut t = two_units(|u| u.block_size = 4096);
    let (a, b) = (
        t.luns.get(0).unwrap().clone(),
        t.luns.get(1).unwrap().clone(),
    );
    let list = params(1, HOLD, &[cscd(&a), cscd(&b)], &[segment(0, 1, 8, 0, 0)]);
    assert_eq!(
        t.xcopy(&list),
        Some((COPY_ABORTED, 0x26, 0x0C)),
        "block lengths differ"
    );
    let mut wrong = cscd(&a);
    wrong[30] = 0x04; // DISK BLOCK LENGTH 1024, the unit's is 512
    let list = params(1, HOLD, &[wrong], &[segment(0, 0, 8, 0, 8)]);
    assert_eq!(t.xcopy(&list), Some((COPY_ABORTED, 0x26, 0x0C)));
    let mut tape = cscd(&a);
    tape[1] = 0x01;
    let list = params(1, HOLD, &[tape], &[segment(0, 0, 8, 0, 8)]);
    assert_eq!(t.xcopy(&list), Some((COPY_ABORTED, 0x0D, 0x03)));
    assert_eq!(t.disk.trace.writes, 0);
}

#[test]
fn overlapping_copies_within_a_unit_move_like_memmove() {
    let lu = lu_with(|u| u.num_blocks = 8192);
    let mut t = OneLu::with(lu.clone());
    let data = fill(8192 * 512, 3);
    t.disk.fill(0, &data);
    // 5000 blocks are three 1 MiB chunks; copied 100 blocks further on, a forward copy would
    // overwrite source blocks before reading them.
    let list = params(1, HOLD, &[cscd(&lu)], &[segment(0, 0, 5000, 0, 100)]);
    assert_eq!(t.xcopy(&list), GOOD);
    assert!(t.disk.blocks(100, 5000) == &data[..5000 * 512]);
    assert!(t.disk.blocks(0, 100) == &data[..100 * 512], "untouched");
    assert_eq!(
        t.disk.trace.accesses[0],
        (0, 5000 - 2048),
        "the last chunk first"
    );
    // The destination before the source: forwards.
    t.disk.fill(0, &data);
    let list = params(2, HOLD, &[cscd(&lu)], &[segment(0, 0, 5000, 100, 0)]);
    assert_eq!(t.xcopy(&list), GOOD);
    assert!(t.disk.blocks(0, 5000) == &data[100 * 512..5100 * 512]);
}

#[test]
fn a_parameter_list_longer_than_the_largest_list_is_received_only_that_far() {
    let mut t = OneLu::new();
    let lu = t.lu().clone();
    let mut list = params(1, HOLD, &[cscd(&lu)], &[segment(0, 0, 4, 0, 4)]);
    list.resize(1 << 20, 0xEE);
    let Plan::Job(job) = dispatch(&t.luns, &mut t.nexus, 0, &xcopy(list.len())) else {
        panic!("a job")
    };
    assert_eq!(job.data_out_len(), 16 + 512);
    assert_eq!(
        t.xcopy(&list),
        GOOD,
        "bytes beyond what the header describes are ignored"
    );
}

/// Drives a copy by hand to its first Read.
fn started(t: &mut OneLu, list: &[u8]) -> (Box<crate::scsi::Job>, Step) {
    let Plan::Job(mut job) = dispatch(&t.luns, &mut t.nexus, 0, &xcopy(list.len())) else {
        panic!("a job")
    };
    let lu = t.lu().clone();
    let step = job.start(&mut t.nexus, &t.luns, &lu, list);
    (job, step)
}

#[test]
fn a_running_list_identifier_is_busy_and_copy_status_shows_its_progress() {
    let mut t = OneLu::new();
    let lu = t.lu().clone();
    let list = params(9, HOLD, &[cscd(&lu)], &[segment(0, 0, 4, 0, 8)]);
    let (mut job, step) = started(&mut t, &list);
    assert!(matches!(
        step,
        Step::Io(JobIo {
            lun: 0,
            op: JobOp::Read { lba: 0, blocks: 4 }
        })
    ));
    assert_eq!(
        t.xcopy(&list),
        Some((ILLEGAL, 0x00, 0x16)),
        "OPERATION IN PROGRESS"
    );
    let d = t.good(&rcr(0x00, 9));
    assert_eq!((d[4], d[6]), (0x00, 0), "in progress");
    let step = job.resume(&t.nexus, &lu, Ok(IoOutcome::Data(&[0; 4 * 512])));
    assert!(matches!(
        step,
        Step::Io(JobIo {
            lun: 0,
            op: JobOp::WriteLastRead {
                lba: 8,
                blocks: 4,
                ..
            }
        })
    ));
    let Step::Done(c) = job.resume(&t.nexus, &lu, Ok(IoOutcome::Done)) else {
        panic!()
    };
    assert_eq!(sense_of(&c), GOOD);
    let d = t.good(&rcr(0x00, 9));
    assert_eq!((d[4], d[6]), (0x01, 1), "completed, one segment");
}

#[test]
fn an_aborted_copy_frees_its_list_identifier_and_reports_failure() {
    let mut t = OneLu::new();
    let lu = t.lu().clone();
    let list = params(4, HOLD, &[cscd(&lu)], &[segment(0, 0, 4, 0, 8)]);
    let (job, _) = started(&mut t, &list);
    drop(job); // what the session does with a task ended by ABORT TASK
    let d = t.good(&rcr(0x00, 4));
    assert_eq!(d[4], 0x02, "completed with errors");
    assert_eq!(t.xcopy(&list), GOOD, "the identifier is free again");
}

#[test]
fn copies_of_one_nexus_with_list_identifiers_are_bounded() {
    let mut t = OneLu::new();
    let lu = t.lu().clone();
    let mut running = Vec::new();
    for id in 0..4 {
        let list = params(id, DISCARD, &[cscd(&lu)], &[segment(0, 0, 1, 0, 1)]);
        running.push(started(&mut t, &list).0);
    }
    let list = params(100, HOLD, &[cscd(&lu)], &[segment(0, 0, 1, 0, 1)]);
    assert_eq!(
        t.xcopy(&list),
        Some((ILLEGAL, 0x55, 0x03)),
        "INSUFFICIENT RESOURCES"
    );
    let list = params(100, NO_LIST_ID, &[cscd(&lu)], &[segment(0, 0, 1, 0, 1)]);
    assert_eq!(
        t.xcopy(&list),
        GOOD,
        "copies without an identifier are not counted"
    );
    // Another I_T nexus has its own.
    let mut other = NexusState::new();
    let list = params(100, HOLD, &[cscd(&lu)], &[segment(0, 0, 1, 0, 1)]);
    assert_eq!(
        sense_of(&t.run_on(&mut other, &xcopy(list.len()), &list)),
        GOOD
    );
    drop(running);
}

#[test]
fn the_largest_copy_moves_in_steps_of_at_most_one_mebibyte() {
    // 8 segments of 65535 4096-byte blocks: 2 GiB, the most one command copies. No disk
    // behind it: the steps are driven by hand.
    let big = lu_with(|u| {
        u.block_size = 4096;
        u.num_blocks = 1 << 20;
    });
    let mut t = OneLu::with(lu_with(|u| u.num_blocks = 1));
    t.luns = LunMap::new(vec![big.clone()]);
    let segs: Vec<_> = (0..8u64)
        .map(|i| segment(0, 0, 0xFFFF, 0, i * 0x1_0000))
        .collect();
    let list = params(1, HOLD, &[cscd(&big)], &segs);
    let Plan::Job(mut job) = dispatch(&t.luns, &mut t.nexus, 0, &xcopy(list.len())) else {
        panic!("a job")
    };
    let mut step = job.start(&mut t.nexus, &t.luns, &big, &list);
    let (mut bytes, mut steps) = (0u64, 0);
    let buf = vec![0u8; STEP_BYTES as usize];
    while let Step::Io(io) = step {
        steps += 1;
        step = match io.op {
            JobOp::Read { blocks, .. } => {
                let len = blocks as usize * 4096;
                assert!(len <= STEP_BYTES as usize);
                job.resume(&t.nexus, &big, Ok(IoOutcome::Data(&buf[..len])))
            }
            JobOp::WriteLastRead { blocks, .. } => {
                bytes += u64::from(blocks) * 4096;
                job.resume(&t.nexus, &big, Ok(IoOutcome::Done))
            }
            other => panic!("{other:?}"),
        };
    }
    assert_eq!(step, Step::Done(crate::scsi::good()));
    assert_eq!(bytes, 8 * 0xFFFF * 4096);
    assert_eq!(steps, 8 * 2 * 0xFFFF_usize.div_ceil(256));
}

#[test]
fn extended_copy_is_a_write_and_copy_results_a_read_for_reservations() {
    let c = crate::scsi::commands::find(op::EXTENDED_COPY, Some(0)).expect("listed");
    assert_eq!(c.access, crate::scsi::Access::Write);
    for sa in [0x00, 0x03] {
        let c = crate::scsi::commands::find(op::RECEIVE_COPY_RESULTS, Some(sa)).expect("listed");
        assert_eq!(c.access, crate::scsi::Access::Read);
    }
}

#[test]
fn third_party_copy_vpd_page_has_the_descriptors_spc4_requires() {
    let mut t = OneLu::new();
    let d = t.good(&[op::INQUIRY, 1, 0x8F, 4, 0, 0]);
    assert_eq!(
        (d[1], usize::from(u16::from_be_bytes([d[2], d[3]]))),
        (0x8F, d.len() - 4)
    );
    let mut found = Vec::new();
    let mut at = 4;
    while at < d.len() {
        let kind = u16::from_be_bytes([d[at], d[at + 1]]);
        let len = usize::from(u16::from_be_bytes([d[at + 2], d[at + 3]]));
        assert_eq!(len % 4, 0, "descriptor {kind:#x} padded");
        found.push((kind, d[at + 4..at + 4 + len].to_vec()));
        at += 4 + len;
    }
    assert_eq!(at, d.len());
    let kinds: Vec<u16> = found.iter().map(|f| f.0).collect();
    assert_eq!(kinds, [0x0001, 0x0004, 0x0008, 0x000C, 0x8001]);
    assert_eq!(
        &found[0].1[..8],
        &[7, 0x83, 1, 0x00, 0x84, 2, 0x00, 0x03],
        "EXTENDED COPY (LID1), RECEIVE COPY RESULTS COPY STATUS and OPERATING PARAMETERS"
    );
    assert_eq!(&found[1].1[4..12], &[0, 8, 0, 8, 0, 0, 2, 0]);
    assert_eq!(&found[2].1[..3], &[2, 0x02, 0xE4]);
    assert_eq!(&found[3].1[..4], &[0, 2, 0xFF, 0xFF]);
    assert_eq!(
        &found[4].1[8..13],
        &[0x10, 0, 0, 0, 9],
        "256 MiB segments, 512-byte grain"
    );
    // REPORT SUPPORTED OPERATION CODES lists the same service actions.
    let all = t.good(&[op::MAINTENANCE_IN, 0x0C, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0]);
    let listed: Vec<(u8, u16)> = all[4..]
        .chunks(8)
        .filter(|c| c[0] == op::EXTENDED_COPY || c[0] == op::RECEIVE_COPY_RESULTS)
        .map(|c| (c[0], u16::from_be_bytes([c[2], c[3]])))
        .collect();
    assert_eq!(listed, [(0x83, 0), (0x84, 0), (0x84, 3)]);
}

#[test]
fn standalone_disk_trace_counts_copy_writes() {
    // The harness's own check: a WriteLastRead writes exactly the buffer read before it.
    let unit = lu(0);
    let mut disk = Disk::new(&unit, 0);
    disk.fill(3, &[9; 512]);
    let luns = LunMap::new(vec![unit.clone()]);
    let mut job = match dispatch(&luns, &mut NexusState::new(), 0, &xcopy(76)) {
        Plan::Job(j) => j,
        other => panic!("{other:?}"),
    };
    let list = params(1, HOLD, &[cscd(&unit)], &[segment(0, 0, 1, 3, 4)]);
    let c = disk.run_job_with(&mut job, &mut NexusState::new(), &luns, &unit, &list);
    assert_eq!(sense_of(&c), GOOD);
    assert_eq!(disk.blocks(4, 1), &[9; 512]);
    assert_eq!((disk.trace.reads, disk.trace.writes), (1, 1));
}

/// A unit the copy names besides the copy manager's own is read or written for the I_T nexus
/// that sent the EXTENDED COPY: another initiator's reservation on it ends the copy before any
/// block moves, and a reservation that lets reads through lets it be the source.
#[test]
fn a_copy_into_a_unit_another_initiator_reserved_is_aborted() {
    let mut t = two_units(|_| {});
    let (own, other) = (
        t.luns.get(0).unwrap().clone(),
        t.luns.get(1).unwrap().clone(),
    );
    // Another initiator holds LUN 1 with RESERVE(6) (SPC-2: nothing but INQUIRY-like commands
    // for anyone else).
    let mut pr = crate::scsi::PrState::new();
    let holder = it_nexus("iqn.2024-01.org.example:holder");
    let plan = crate::scsi::dispatch(
        &t.luns,
        &mut NexusState::new(),
        crate::scsi::LuContext {
            pr: &pr.clone(),
            it_nexus: &holder,
            port_groups: &crate::scsi::alua::PortGroups::single(1),
        },
        1 << 48,
        &[0x16, 0, 0, 0, 0, 0],
    );
    let Plan::Shared(op) = plan else {
        panic!("RESERVE(6) is a shared operation: {plan:?}");
    };
    let (c, _) = crate::scsi::apply_shared(&mut pr, &holder, &op, &[1]);
    assert_eq!(c.status, ScsiStatus::GOOD);
    let now = other.shared.snapshot();
    other.shared.publish(now.successor(pr, Vec::new()));

    let data = fill(16 * 512, 3);
    t.disk.fill(0, &data);
    let into_other = params(
        1,
        HOLD,
        &[cscd(&own), cscd(&other)],
        &[segment(0, 1, 16, 0, 0)],
    );
    let c = t.run(&xcopy(into_other.len()), &into_other);
    assert_eq!(sense_of(&c), Some((COPY_ABORTED, 0x0D, 0x00)));
    assert!(t.disk.trace.accesses.is_empty(), "nothing moved");
    assert!(t.disk.others[0].bytes[..16 * 512].iter().all(|&b| b == 0));
    let from_other = params(
        2,
        HOLD,
        &[cscd(&other), cscd(&own)],
        &[segment(0, 1, 16, 0, 0)],
    );
    let c = t.run(&xcopy(from_other.len()), &from_other);
    assert_eq!(
        sense_of(&c),
        Some((COPY_ABORTED, 0x0D, 0x00)),
        "SPC-2 also refuses reads"
    );
    // Within the copy manager's own unit, nothing else is consulted.
    let within = params(3, HOLD, &[cscd(&own)], &[segment(0, 0, 16, 0, 100)]);
    assert_eq!(t.xcopy(&within), GOOD);
    assert!(t.disk.blocks(100, 16) == &data[..]);
}
