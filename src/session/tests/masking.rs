//! LUN masking: an initiator with an ACL sees only its logical units.

use super::*;

/// The initiator name `Pair::logged_in_to` logs in with.
const INITIATOR: &str = "iqn.2026-11.test:init";

fn two_luns(mask: Option<&[u16]>) -> Arc<PortalContext> {
    let mut lu1 = lu();
    lu1.lun = 1;
    let mut target = TargetRuntime::new(TARGET.into(), LunMap::new(vec![lu(), lu1]));
    if let Some(luns) = mask {
        target.mask(&INITIATOR.to_ascii_uppercase(), luns);
        target.mask("iqn.2026-11.test:someone-else", &[0]);
    }
    let ctx = context(default_offer(), Tuning::default());
    Arc::new(PortalContext {
        targets: vec![target],
        login_targets: ctx.login_targets.clone(),
        portals: ctx.portals.clone(),
        portal_group_tag: 1,
        offer: ctx.offer.clone(),
        tuning: ctx.tuning.clone(),
        discovery_chap: None,
    })
}

fn report_luns(p: &mut Pair) -> Vec<u16> {
    let cdb = [0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0];
    p.command(1, &cdb, 4096, true, false, &[]);
    let pdus = p.recv();
    let data = &pdus[0].1;
    let len = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
    data[8..8 + len]
        .chunks(8)
        .map(|e| u16::from_be_bytes([e[0] & 0x3f, e[1]]))
        .collect()
}

fn test_unit_ready(p: &mut Pair, lun: u16) -> (u8, Vec<u8>) {
    let cmd = ScsiCommand {
        immediate: false,
        final_bit: true,
        read: false,
        write: false,
        attr: 1,
        lun: crate::scsi::encode_lun(lun),
        itt: 2,
        expected_data_len: 0,
        cmd_sn: p.next_cmd_sn(),
        exp_stat_sn: 0,
        cdb: [0; 16],
    };
    p.send(&cmd.encode(), &[]);
    let pdus = p.recv();
    (ScsiResponse::decode(&pdus[0].0).status, pdus[0].1.clone())
}

#[test]
fn masked_initiator_sees_only_its_luns() {
    let mut p = Pair::logged_in_to(two_luns(Some(&[1])), &[]);
    assert_eq!(report_luns(&mut p), vec![1]);
    assert_eq!(test_unit_ready(&mut p, 1).0, 0);
    let (status, sense) = test_unit_ready(&mut p, 0);
    assert_eq!(status, 2);
    // ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED (25h/00h).
    assert_eq!(
        (sense[2 + 2] & 0x0f, sense[2 + 12], sense[2 + 13]),
        (5, 0x25, 0)
    );
}

#[test]
fn initiator_without_acl_sees_every_lun() {
    let mut p = Pair::logged_in_to(two_luns(None), &[]);
    assert_eq!(report_luns(&mut p), vec![0, 1]);
}
