use super::*;
use crate::scsi::tests::{lu, lu_with, ok_data};
use crate::scsi::SenseFormat;

fn ms6(dbd: bool, pc: u8, page: u8, sub: u8, alloc: u8) -> [u8; 6] {
    [
        op::MODE_SENSE_6,
        if dbd { 0x08 } else { 0 },
        (pc << 6) | page,
        sub,
        alloc,
        0,
    ]
}

fn ms10(llbaa: bool, dbd: bool, pc: u8, page: u8, alloc: u16) -> [u8; 10] {
    let flags = if llbaa { 0x10 } else { 0 } | if dbd { 0x08 } else { 0 };
    let a = alloc.to_be_bytes();
    [
        op::MODE_SENSE_10,
        flags,
        (pc << 6) | page,
        0,
        0,
        0,
        0,
        a[0],
        a[1],
        0,
    ]
}

fn sense(lu: &LuInfo, nexus: &NexusState, cdb: &[u8]) -> Result<Vec<u8>, Sense> {
    mode_sense(lu, nexus, Cdb::new(cdb)).map(|p| ok_data(Ok(p)))
}

/// Split MODE SENSE (6) data the way libiscsi's unmarshaller does: (header, descriptor, pages).
fn parse6(d: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<Vec<u8>>) {
    assert!(
        usize::from(d[0]) < d.len(),
        "mode data length fits the data"
    );
    let bd_end = 4 + usize::from(d[3]);
    let mut pages = Vec::new();
    let mut at = bd_end;
    while at < d.len() {
        let end = at + 2 + usize::from(d[at + 1]);
        pages.push(d[at..end].to_vec());
        at = end;
    }
    assert_eq!(at, d.len(), "pages end exactly at the end of the data");
    (d[..4].to_vec(), d[4..bd_end].to_vec(), pages)
}

fn codes(pages: &[Vec<u8>]) -> Vec<u8> {
    pages.iter().map(|p| p[0] & 0x3F).collect()
}

#[test]
fn all_pages_current_six_byte_layout() {
    let d = sense(&lu(0), &NexusState::new(), &ms6(false, 0, 0x3F, 0, 255)).unwrap();
    let (header, bd, pages) = parse6(&d);
    assert_eq!(usize::from(header[0]), d.len() - 1);
    assert_eq!(header[1], 0, "medium type");
    assert_eq!(header[2], 0x10, "DPOFUA set, WP clear");
    assert_eq!(
        bd,
        [0, 0, 0x08, 0x00, 0, 0, 0x02, 0x00],
        "2048 blocks of 512"
    );
    assert_eq!(codes(&pages), [0x01, 0x08, 0x0A, 0x1C]);
    let lens: Vec<usize> = pages.iter().map(|p| p.len()).collect();
    assert_eq!(lens, [12, 20, 12, 12]);
}

#[test]
fn subpage_ff_of_all_pages_equals_subpage_0() {
    let n = NexusState::new();
    let all = sense(&lu(0), &n, &ms6(false, 0, 0x3F, 0xFF, 255)).unwrap();
    assert_eq!(
        all,
        sense(&lu(0), &n, &ms6(false, 0, 0x3F, 0, 255)).unwrap()
    );
    let control = sense(&lu(0), &n, &ms6(true, 0, 0x0A, 0xFF, 255)).unwrap();
    assert_eq!(codes(&parse6(&control).2), [0x0A]);
}

#[test]
fn other_subpages_are_invalid_field_at_byte_3() {
    let err = sense(&lu(0), &NexusState::new(), &ms6(false, 0, 0x3F, 0x01, 255)).unwrap_err();
    assert_eq!(err, Sense::invalid_field_in_cdb().at_cdb(3, None));
}

#[test]
fn unknown_page_is_invalid_field_at_byte_2() {
    for page in [0x00, 0x02, 0x19, 0x3E] {
        let err = sense(&lu(0), &NexusState::new(), &ms6(false, 0, page, 0, 255)).unwrap_err();
        assert_eq!(
            err,
            Sense::invalid_field_in_cdb().at_cdb(2, Some(5)),
            "page {page:#x}"
        );
    }
}

#[test]
fn saved_values_are_not_supported() {
    let err = sense(&lu(0), &NexusState::new(), &ms6(false, 3, 0x3F, 0, 255)).unwrap_err();
    assert_eq!(err, Sense::saving_params_unsupported().at_cdb(2, Some(7)));
}

#[test]
fn dbd_drops_the_block_descriptor() {
    let d = sense(&lu(0), &NexusState::new(), &ms6(true, 0, 0x08, 0, 255)).unwrap();
    assert_eq!(d.len(), 4 + 20);
    assert_eq!(d[3], 0);
}

#[test]
fn caching_page_reports_wce() {
    let on = sense(&lu(0), &NexusState::new(), &ms6(true, 0, 0x08, 0, 255)).unwrap();
    assert_eq!(&on[4..7], &[0x08, 0x12, 0x04]);
    let lu_off = lu_with(|u| u.write_cache = false);
    let off = sense(&lu_off, &NexusState::new(), &ms6(true, 0, 0x08, 0, 255)).unwrap();
    assert_eq!(off[6], 0x00);
}

#[test]
fn control_page_current_values() {
    let mut n = NexusState::new();
    let d = sense(&lu(0), &n, &ms6(true, 0, 0x0A, 0, 255)).unwrap();
    let p = &d[4..];
    assert_eq!(p.len(), 12);
    assert_eq!(&p[..2], &[0x0A, 0x0A]);
    assert_eq!(p[2] >> 5, 0, "TST 0");
    assert_eq!(p[2] & 0x04, 0, "D_SENSE clear");
    assert_eq!(p[3] >> 4, 1, "queue algorithm modifier 1");
    assert_eq!((p[3] >> 1) & 0x03, 0, "QERR 0");
    assert_eq!(p[4] & 0x08, 0, "SWP clear");
    n.set_descriptor_sense(true);
    let d = sense(&lu(0), &n, &ms6(true, 0, 0x0A, 0, 255)).unwrap();
    assert_eq!(d[6] & 0x04, 0x04, "D_SENSE follows the nexus");
}

#[test]
fn changeable_values_allow_only_d_sense_and_swp() {
    let d = sense(&lu(0), &NexusState::new(), &ms6(false, 1, 0x3F, 0, 255)).unwrap();
    let (_, bd, pages) = parse6(&d);
    assert_eq!(bd, [0; 8], "block descriptor not changeable");
    for p in &pages {
        let control = p[0] == 0x0A;
        assert_eq!(p[2], if control { 0x04 } else { 0 }, "page {:#x}", p[0]);
        assert_eq!(p[4], if control { 0x08 } else { 0 }, "page {:#x}", p[0]);
        assert!(
            p[3] == 0 && p[5..].iter().all(|&b| b == 0),
            "page {:#x}",
            p[0]
        );
    }
}

#[test]
fn default_values_have_d_sense_clear() {
    let mut n = NexusState::new();
    n.set_descriptor_sense(true);
    let d = sense(&lu(0), &n, &ms6(true, 2, 0x0A, 0, 255)).unwrap();
    assert_eq!(d[6] & 0x04, 0);
}

#[test]
fn write_protect_bit_follows_read_only() {
    let ro = lu_with(|u| u.read_only = true);
    let d = sense(&ro, &NexusState::new(), &ms6(false, 0, 0x3F, 0, 4)).unwrap();
    assert_eq!(d.len(), 4);
    assert_eq!(d[2], 0x90);
}

#[test]
fn short_block_descriptor_saturates_block_count() {
    let big = lu_with(|u| u.num_blocks = 1 << 33);
    let d = sense(&big, &NexusState::new(), &ms6(false, 0, 0x0A, 0, 255)).unwrap();
    assert_eq!(&d[4..12], &[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x02, 0x00]);
}

#[test]
fn mode_sense_10_header_and_short_descriptor() {
    let d = sense(
        &lu(0),
        &NexusState::new(),
        &ms10(false, false, 0, 0x0A, 1024),
    )
    .unwrap();
    assert_eq!(d.len(), 8 + 8 + 12);
    assert_eq!(&d[..8], &[0, 26, 0, 0x10, 0, 0, 0, 8]);
    assert_eq!(&d[8..16], &[0, 0, 0x08, 0x00, 0, 0, 0x02, 0x00]);
    assert_eq!(d[16], 0x0A);
}

#[test]
fn mode_sense_10_llbaa_gives_long_descriptor() {
    let big = lu_with(|u| {
        u.num_blocks = 0x1_0000_0002;
        u.block_size = 4096;
    });
    let d = sense(&big, &NexusState::new(), &ms10(true, false, 0, 0x0A, 1024)).unwrap();
    assert_eq!(&d[..8], &[0, 34, 0, 0x10, 0x01, 0, 0, 16]);
    assert_eq!(
        &d[8..24],
        &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0x10, 0]
    );
}

#[test]
fn mode_sense_10_dbd_wins_over_llbaa() {
    let d = sense(&lu(0), &NexusState::new(), &ms10(true, true, 0, 0x1C, 1024)).unwrap();
    assert_eq!(&d[..8], &[0, 18, 0, 0x10, 0x01, 0, 0, 0]);
    assert_eq!(&d[8..12], &[0x1C, 0x0A, 0x08, 0]);
}

#[test]
fn allocation_length_truncates_but_keeps_mode_data_length() {
    let n = NexusState::new();
    let full = sense(&lu(0), &n, &ms6(false, 0, 0x3F, 0, 255)).unwrap();
    let cut = sense(&lu(0), &n, &ms6(false, 0, 0x3F, 0, 10)).unwrap();
    assert_eq!(cut, full[..10]);
    let ten = sense(&lu(0), &n, &ms10(false, false, 0, 0x3F, 3)).unwrap();
    assert_eq!(ten.len(), 3);
}

// ---- MODE SELECT ----

fn sel6(sp: bool, len: u8) -> [u8; 6] {
    [op::MODE_SELECT_6, 0x10 | u8::from(sp), 0, 0, len, 0]
}

fn sel10(len: u16) -> [u8; 10] {
    let l = len.to_be_bytes();
    [op::MODE_SELECT_10, 0x10, 0, 0, 0, 0, 0, l[0], l[1], 0]
}

/// Parameter list: MODE SENSE (6)-style header, optional descriptor, then `pages`.
fn list6(descriptor: &[u8], pages: &[&[u8]]) -> Vec<u8> {
    let mut d = vec![0, 0, 0, descriptor.len() as u8];
    d.extend_from_slice(descriptor);
    for p in pages {
        d.extend_from_slice(p);
    }
    d
}

fn current_page(code: u8, d_sense: bool) -> Vec<u8> {
    page(&lu(0), d_sense, PageControl::Current, code).unwrap()
}

fn select(nexus: &mut NexusState, cdb: &[u8], params: &[u8]) -> Result<(), Sense> {
    apply_mode_select(&lu(0), nexus, Cdb::new(cdb), params)
}

#[test]
fn mode_select_asks_for_the_parameter_list() {
    assert_eq!(
        mode_select(Cdb::new(&sel6(false, 24))),
        Ok(Plan::ReceiveParams { len: 24 })
    );
    assert_eq!(
        mode_select(Cdb::new(&sel10(300))),
        Ok(Plan::ReceiveParams { len: 300 })
    );
    assert_eq!(mode_select(Cdb::new(&sel6(false, 0))), Ok(done()));
}

#[test]
fn mode_select_save_pages_is_invalid_field() {
    let err = mode_select(Cdb::new(&sel6(true, 24))).unwrap_err();
    assert_eq!(err, Sense::invalid_field_in_cdb().at_cdb(1, Some(0)));
}

#[test]
fn mode_select_sets_and_clears_d_sense() {
    let mut n = NexusState::new();
    let mut control = current_page(0x0A, false);
    control[2] |= 0x04;
    let params = list6(&[], &[&control]);
    assert_eq!(
        select(&mut n, &sel6(false, params.len() as u8), &params),
        Ok(())
    );
    assert_eq!(n.sense_format(), SenseFormat::Descriptor);
    let params = list6(&[], &[&current_page(0x0A, false)]);
    assert_eq!(
        select(&mut n, &sel6(false, params.len() as u8), &params),
        Ok(())
    );
    assert_eq!(n.sense_format(), SenseFormat::Fixed);
}

#[test]
fn mode_select_10_with_block_descriptor_restating_capacity() {
    let mut n = NexusState::new();
    let mut control = current_page(0x0A, false);
    control[2] |= 0x04;
    let mut params = vec![0, 0, 0, 0, 0, 0, 0, 8];
    params.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x02, 0x00]); // zero count = unchanged
    params.extend_from_slice(&control);
    assert_eq!(select(&mut n, &sel10(params.len() as u16), &params), Ok(()));
    assert!(n.descriptor_sense());
}

#[test]
fn mode_select_refuses_block_size_change() {
    let mut n = NexusState::new();
    let params = list6(&[0, 0, 0, 0, 0, 0, 0x10, 0x00], &[]);
    let err = select(&mut n, &sel6(false, params.len() as u8), &params).unwrap_err();
    assert_eq!(err, Sense::invalid_field_in_param_list().at_param(10, None));
}

#[test]
fn mode_select_refuses_unchangeable_bits_and_changes_nothing() {
    let mut n = NexusState::new();
    let mut control = current_page(0x0A, false);
    control[2] |= 0x04; // allowed ...
    let mut caching = current_page(0x08, false);
    caching[2] &= !0x04; // ... but WCE is not changeable
    let params = list6(&[], &[&control, &caching]);
    let err = select(&mut n, &sel6(false, params.len() as u8), &params).unwrap_err();
    assert_eq!(
        err,
        Sense::invalid_field_in_param_list().at_param(4 + 12 + 2, Some(2))
    );
    assert!(!n.descriptor_sense(), "nothing applied from a refused list");
}

#[test]
fn mode_select_swp_write_protects_the_unit_for_every_nexus() {
    let unit = lu(0);
    let (mut a, b) = (NexusState::new(), NexusState::new());
    let mut control = current_page(0x0A, false);
    control[4] |= 0x08;
    let params = list6(&[], &[&control]);
    let cdb = sel6(false, params.len() as u8);
    assert_eq!(
        apply_mode_select(&unit, &mut a, Cdb::new(&cdb), &params),
        Ok(())
    );
    assert!(unit.is_write_protected() && !unit.read_only);
    let d = sense(&unit, &b, &ms6(true, 0, 0x0A, 0, 255)).unwrap();
    assert_eq!(
        (d[2], d[4 + 4] & 0x08),
        (0x90, 0x08),
        "WP and SWP on the other nexus"
    );
    let params = list6(&[], &[&current_page(0x0A, false)]);
    assert_eq!(
        apply_mode_select(&unit, &mut a, Cdb::new(&cdb), &params),
        Ok(())
    );
    assert!(!unit.is_write_protected());
}

#[test]
fn mode_select_refuses_ps_spf_unknown_page_and_wrong_length() {
    let mut n = NexusState::new();
    let mut ps = current_page(0x0A, false);
    ps[0] |= 0x80;
    let mut spf = current_page(0x0A, false);
    spf[0] |= 0x40;
    let unknown = [0x19u8, 0x02, 0, 0];
    let short = [0x0Au8, 0x02, 0, 0];
    let cases: [(&[u8], Sense); 4] = [
        (
            &ps,
            Sense::invalid_field_in_param_list().at_param(4, Some(7)),
        ),
        (
            &spf,
            Sense::invalid_field_in_param_list().at_param(4, Some(6)),
        ),
        (
            &unknown,
            Sense::invalid_field_in_param_list().at_param(4, Some(5)),
        ),
        (
            &short,
            Sense::invalid_field_in_param_list().at_param(5, None),
        ),
    ];
    for (page, expected) in cases {
        let params = list6(&[], &[page]);
        assert_eq!(
            select(&mut n, &sel6(false, params.len() as u8), &params),
            Err(expected)
        );
    }
}

#[test]
fn mode_select_truncated_lists_are_length_errors() {
    let mut n = NexusState::new();
    let control = current_page(0x0A, false);
    let full = list6(&[], &[&control]);
    for cut in [2, 5, 10] {
        let params = &full[..cut];
        let err = select(&mut n, &sel6(false, cut as u8), params).unwrap_err();
        assert_eq!(err, Sense::parameter_list_length_error(), "cut {cut}");
    }
    let bd_missing = [0, 0, 0, 8, 0, 0];
    assert_eq!(
        select(&mut n, &sel6(false, 6), &bd_missing),
        Err(Sense::parameter_list_length_error())
    );
}

#[test]
fn mode_select_bad_descriptor_length_is_invalid_field() {
    let mut n = NexusState::new();
    let params = [0, 0, 0, 4, 0, 0, 0, 0];
    let err = select(&mut n, &sel6(false, 8), &params).unwrap_err();
    assert_eq!(err, Sense::invalid_field_in_param_list().at_param(3, None));
}

#[test]
fn mode_select_uses_only_the_declared_length() {
    let mut n = NexusState::new();
    let mut control = current_page(0x0A, false);
    control[2] |= 0x04;
    let params = list6(&[], &[&control]);
    // Declared length covers just the header: the page that follows is ignored.
    assert_eq!(select(&mut n, &sel6(false, 4), &params), Ok(()));
    assert!(!n.descriptor_sense());
}
