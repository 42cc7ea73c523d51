//! Data-Out a hostile initiator crafts must never put another initiator's bytes on its blocks:
//! repeated or overlapping ranges are refused and nothing of the task is written, while the
//! daemon's pooled buffers still hold an earlier session's data.

mod common;

use common::cdb;
use ringtgt::pdu::reject::{Reject, RejectReason};
use ringtgt::pdu::scsi::{DataOut, R2t};
use ringtgt::pdu::Opcode;

const BLOCK: u32 = 512;
/// 1 MiB: one buffer of the pool's large class, so the victim's read and the attacker's write
/// meet in the same pooled memory.
const LEN: usize = 1 << 20;

fn solicited_only() -> [(&'static str, &'static str); 4] {
    [
        ("ImmediateData", "No"),
        ("InitialR2T", "Yes"),
        ("MaxBurstLength", "1048576"),
        ("MaxRecvDataSegmentLength", "262144"),
    ]
}

#[test]
fn repeated_data_out_never_writes_another_initiators_bytes() {
    // One core: both sessions share one reactor and its buffer pool.
    let d = common::daemon(&["--cores", "1"]);
    let secret = cdb::pattern(0x5ec2e7, LEN);
    for round in 0..4u64 {
        let mut victim = common::session(&d, &[]);
        victim.wait_ready(0);
        let victim_lba = 8192;
        victim
            .write_blocks(0, victim_lba, &secret, BLOCK)
            .assert_good();
        // Reading it back leaves the secret in a pooled buffer once the Data-In is sent.
        let back = victim.read_blocks(0, victim_lba, LEN as u32 / BLOCK, BLOCK);
        back.assert_good();
        assert!(back.data == secret);

        let mut attacker = common::Initiator::connect(d.port());
        attacker.initiator_name = format!("iqn.2026-11.test:attacker{round}");
        attacker.isid[5] = 0x40 + round as u8;
        attacker.login(Some(common::TARGET), &solicited_only());
        attacker.wait_ready(0);
        let blocks = LEN as u32 / BLOCK;
        let cmd = attacker.command_pdu(0, &cdb::write16(0, blocks), false, true, LEN as u32);
        attacker.send_pdu(&cmd.encode(), &[], &[]);
        let (bhs, _) = attacker.recv();
        assert_eq!(bhs.opcode(), Opcode::R2T);
        let r2t = R2t::decode(&bhs);
        assert_eq!(r2t.desired_len as usize, LEN);
        // The first half, twice (in MaxRecvDataSegmentLength pieces): 1 MiB "received", the
        // second half never sent.
        let piece = vec![0x41u8; LEN / 4];
        for data_sn in 0..4u32 {
            let out = DataOut {
                final_bit: data_sn == 3,
                lun: cmd.lun,
                itt: cmd.itt,
                ttt: r2t.ttt,
                exp_stat_sn: attacker.exp_stat_sn,
                data_sn,
                buffer_offset: (data_sn % 2) * (LEN as u32 / 4),
            };
            attacker.send_pdu(&out.encode(), &[], &piece);
        }
        let (bhs, _) = attacker.recv();
        assert_eq!(bhs.opcode(), Opcode::REJECT, "got {bhs:?}");
        assert_eq!(Reject::decode(&bhs).reason, RejectReason::PROTOCOL_ERROR);
        let ended = attacker.collect(cmd.itt);
        assert_eq!(
            ended.status,
            cdb::CHECK_CONDITION,
            "the task ends with an error"
        );
        // The fourth PDU belongs to a task that has ended: dropped without an answer.
        assert!(attacker
            .recv_within(std::time::Duration::from_millis(200))
            .is_none());

        let mine = attacker.read_blocks(0, 0, blocks, BLOCK);
        mine.assert_good();
        assert!(
            !mine
                .data
                .windows(64)
                .any(|w| secret.windows(64).next() == Some(w)),
            "round {round}: the victim's data reached the attacker's blocks"
        );
        assert!(mine.data.iter().all(|&b| b == 0), "nothing was written");
        attacker.logout();
        victim.logout();
    }
}

/// Each UNMAP range on a null LUN completes without the kernel; thousands of them must be
/// handled one after another by the reactor loop, not by a recursion as deep as the list.
#[test]
fn unmap_of_thousands_of_ranges_on_a_null_lun_completes() {
    let d = common::daemon(&["--cores", "1"]);
    let mut ini = common::session(&d, &[]);
    ini.wait_ready(1);
    let ranges = 4000usize;
    let len = 8 + 16 * ranges;
    let mut params = vec![0u8; len];
    params[0..2].copy_from_slice(&((len - 2) as u16).to_be_bytes());
    params[2..4].copy_from_slice(&((16 * ranges) as u16).to_be_bytes());
    for (i, desc) in params[8..].chunks_mut(16).enumerate() {
        desc[0..8].copy_from_slice(&(2 * i as u64).to_be_bytes());
        desc[8..12].copy_from_slice(&1u32.to_be_bytes());
    }
    let mut unmap = vec![0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    unmap[7..9].copy_from_slice(&(len as u16).to_be_bytes());
    for _ in 0..3 {
        ini.write(1, &unmap, &params).assert_good();
    }
    assert_eq!(ini.nop_out(b"alive"), b"alive");
}

/// Thousands of commands in one burst: one loop turn prepares more submissions than the
/// submission queue holds (1024); the excess waits in the reactor's backlog and goes in as the
/// queue drains, and every command is answered.
#[test]
fn a_burst_larger_than_the_ring_completes() {
    let d = common::daemon(&["--cores", "1", "--queue-depth", "4096"]);
    let mut ini = common::session(&d, &[]);
    ini.wait_ready(0);
    let count = 4000u32;
    let mut wire = Vec::new();
    let mut itts = std::collections::HashSet::new();
    for i in 0..count {
        let cmd = ini.command_pdu(0, &cdb::read10(i, 1), true, false, BLOCK);
        itts.insert(cmd.itt);
        ringtgt::pdu::frame::encode(&mut wire, &cmd.encode(), &[], &[], Default::default());
    }
    ini.conn.send_raw(&wire).unwrap();
    while !itts.is_empty() {
        let (bhs, _) = ini.recv();
        let di = ringtgt::pdu::scsi::DataIn::decode(&bhs);
        assert_eq!(bhs.opcode(), Opcode::DATA_IN, "{bhs:?}");
        assert_eq!(di.status, Some(cdb::GOOD));
        assert!(itts.remove(&di.itt));
    }
    assert_eq!(ini.nop_out(b"done"), b"done");
}
