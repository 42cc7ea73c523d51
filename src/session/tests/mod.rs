//! The connection driven through whole exchanges with no socket and a virtual clock: login, the
//! three write paths, Data-In segmentation, residuals, CmdSN ordering, keepalive and digests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::backstore::{IoBuf, RecvBuf};
use crate::login::{DigestPolicy, TargetEntry, TargetOffer};
use crate::pdu::login::{LoginRequest, LoginResponse, Stage};
use crate::pdu::nop::NopOut;
use crate::pdu::reject::Reject;
use crate::pdu::scsi::{DataIn, DataOut, R2t, ScsiCommand, ScsiResponse};
use crate::pdu::{frame, Bhs, Digests, Opcode, RESERVED_TAG};
use crate::scsi::{LuInfo, LunMap};

const TARGET: &str = "iqn.2026-11.io.ringtgt:unit";
const BS: u32 = 512;

fn lu() -> LuInfo {
    LuInfo {
        lun: 0,
        block_size: BS,
        num_blocks: 4096,
        read_only: false,
        write_cache: true,
        non_rotational: true,
        serial: "UNIT0".into(),
        vendor: "RINGTGT".into(),
        product: "VIRTUAL-DISK".into(),
        revision: "0001".into(),
        naa_id: [0x60; 16],
        target_name: TARGET.into(),
        max_transfer_blocks: 2048,
        optimal_transfer_blocks: 256,
        shared: Default::default(),
        removable: false,
        geometry: Default::default(),
        store_compare_and_write: false,
        sanitize_rate: None,
        reads_zeros: false,
        sanitizable: true,
    }
}

fn context(offer: TargetOffer, tuning: Tuning) -> Arc<PortalContext> {
    context_with(offer, tuning, vec![lu()])
}

/// The default context with these units.
fn context_with(offer: TargetOffer, tuning: Tuning, luns: Vec<LuInfo>) -> Arc<PortalContext> {
    Arc::new(PortalContext {
        targets: vec![TargetRuntime::new(TARGET.into(), LunMap::new(luns))],
        login_targets: vec![TargetEntry {
            name: TARGET.into(),
            alias: None,
            allowed_initiators: vec![],
            allowed_networks: vec![],
            chap: None,
            portal_groups: vec![],
        }],
        portals: vec!["127.0.0.1:3260".parse().unwrap()],
        portal_group_tag: 1,
        offer,
        tuning,
        discovery_chap: None,
    })
}

struct Pair {
    conn: Connection,
    now: Instant,
    digests: Digests,
    cmd_sn: u32,
    /// The backing store of LUN 0: a plain byte array that `run_io` reads and writes.
    disk: Vec<u8>,
    /// The stores of the target's other LUNs, when it has more than one.
    other_disks: Vec<(u16, Vec<u8>)>,
    /// Write commands announce unsolicited Data-Out (F=0) when data remains after immediate data.
    announce_unsolicited: bool,
    ctx: Arc<PortalContext>,
}

impl Pair {
    fn with_context(ctx: Arc<PortalContext>) -> Pair {
        let now = Instant::now();
        let conn = Connection::new(ctx.clone(), None, None, now);
        Pair {
            conn,
            now,
            digests: Digests::default(),
            cmd_sn: 100,
            disk: vec![0; 4096 * BS as usize],
            other_disks: Vec::new(),
            announce_unsolicited: false,
            ctx,
        }
    }

    /// Logs in with one operational-stage PDU offering `keys`, and accepts the session.
    fn logged_in(offer: TargetOffer, tuning: Tuning, keys: &[(&str, &str)]) -> Pair {
        Pair::logged_in_to(context(offer, tuning), keys)
    }

    fn logged_in_to(ctx: Arc<PortalContext>, keys: &[(&str, &str)]) -> Pair {
        Pair::logged_in_as(ctx, "iqn.2026-11.test:init", keys)
    }

    /// Logged in with initiator name `initiator` (another I_T nexus than the default one).
    fn logged_in_as(ctx: Arc<PortalContext>, initiator: &str, keys: &[(&str, &str)]) -> Pair {
        let mut p = Pair::with_context(ctx);
        let mut text =
            format!("InitiatorName={initiator}\0TargetName={TARGET}\0SessionType=Normal\0");
        for (k, v) in keys {
            text.push_str(&format!("{k}={v}\0"));
        }
        let req = LoginRequest {
            immediate: true,
            transit: true,
            cont: false,
            csg: Stage::OPERATIONAL,
            nsg: Stage::FULL_FEATURE,
            version_max: 0,
            version_min: 0,
            isid: [0x40, 0, 0, 0, 0, 1],
            tsih: 0,
            itt: 1,
            cid: 0,
            cmd_sn: p.cmd_sn,
            exp_stat_sn: 0,
        };
        p.send(&req.encode(), text.as_bytes());
        let reg = p.conn.poll_control().expect("registration requested");
        assert!(matches!(
            reg,
            ControlRequest::Register(Registration { tsih: 0, .. })
        ));
        p.conn.handle_registration(Ok(7), p.now);
        let rsp = p.recv();
        assert_eq!(rsp.len(), 1);
        let lr = LoginResponse::decode(&rsp[0].0);
        assert!(
            lr.status.is_success(),
            "{:?} {}",
            lr.status,
            String::from_utf8_lossy(&rsp[0].1)
        );
        assert_eq!(lr.tsih, 7);
        assert!(lr.transit && lr.nsg == Stage::FULL_FEATURE);
        let answers = String::from_utf8_lossy(&rsp[0].1).to_string();
        p.digests = Digests {
            header: answers.contains("HeaderDigest=CRC32C"),
            data: answers.contains("DataDigest=CRC32C"),
        };
        p.clear_unit_attentions();
        p
    }

    /// Raises `ua` for every nexus of LUN `lun` of the target, as the control thread would.
    fn publish_ua(&self, lun: u16, ua: crate::scsi::UnitAttention) {
        let lu = self.ctx.targets[0].luns.get(lun).expect("LUN");
        let now = lu.shared.snapshot();
        let scope = crate::scsi::shared::UaScope::All;
        lu.shared
            .publish(now.successor(now.pr.clone(), vec![(scope, ua)]));
    }

    /// Takes the power-on unit attention each logical unit reports first (LUNs 0 and 1).
    fn clear_unit_attentions(&mut self) {
        for lun in 0..2 {
            self.scsi_command(
                lun,
                0xfff0 + u32::from(lun),
                &[0u8; 6],
                0,
                false,
                false,
                &[],
            );
            let answers = self.recv();
            assert_eq!(answers.len(), 1, "one answer to TEST UNIT READY");
        }
    }

    fn send(&mut self, bhs: &Bhs, data: &[u8]) {
        let mut wire = Vec::new();
        frame::encode(&mut wire, bhs, &[], data, self.digests);
        let used = self.conn.handle_input(&wire, self.now);
        assert_eq!(used, wire.len(), "whole PDU consumed");
    }

    fn recv(&mut self) -> Vec<(Bhs, Vec<u8>)> {
        let out = self.conn.output().to_wire();
        self.conn.output().clear();
        let mut pdus = Vec::new();
        let mut rest = &out[..];
        while !rest.is_empty() {
            let (f, n) = frame::parse(rest, self.digests, 1 << 24)
                .unwrap()
                .expect("complete PDU");
            pdus.push((f.bhs, f.data.to_vec()));
            rest = &rest[n..];
        }
        pdus
    }

    /// Sends ABORT TASK (immediate) for the task with ITT `referenced`, last issued command.
    fn send_abort_task(&mut self, itt: u32, referenced: u32) {
        let tmf = crate::pdu::tmf::TmfRequest {
            immediate: true,
            function: crate::pdu::tmf::TmfFunction::ABORT_TASK,
            lun: 0,
            itt,
            referenced_task_tag: referenced,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: 0,
            ref_cmd_sn: self.cmd_sn - 1,
            exp_data_sn: 0,
        };
        self.send(&tmf.encode(), &[]);
    }

    fn next_cmd_sn(&mut self) -> u32 {
        let sn = self.cmd_sn;
        self.cmd_sn = self.cmd_sn.wrapping_add(1);
        sn
    }

    fn command(&mut self, itt: u32, cdb: &[u8], edtl: u32, read: bool, write: bool, imm: &[u8]) {
        self.scsi_command(0, itt, cdb, edtl, read, write, imm);
    }

    #[allow(clippy::too_many_arguments)]
    fn scsi_command(
        &mut self,
        lun: u16,
        itt: u32,
        cdb: &[u8],
        edtl: u32,
        read: bool,
        write: bool,
        imm: &[u8],
    ) {
        // RFC 7143 §11.3.1: F=0 announces unsolicited Data-Out after the immediate data.
        let unsolicited = self.announce_unsolicited && write && imm.len() < edtl as usize;
        let mut cmd = self.command_pdu(lun, itt, cdb, edtl, read, write);
        cmd.final_bit = !unsolicited;
        self.send(&cmd.encode(), imm);
    }

    /// A SCSI Command PDU (F set) for the next CmdSN, not sent.
    fn command_pdu(
        &mut self,
        lun: u16,
        itt: u32,
        cdb: &[u8],
        edtl: u32,
        read: bool,
        write: bool,
    ) -> ScsiCommand {
        let mut c = [0u8; 16];
        c[..cdb.len()].copy_from_slice(cdb);
        ScsiCommand {
            immediate: false,
            final_bit: true,
            read,
            write,
            attr: 1,
            lun: crate::scsi::encode_lun(lun),
            itt,
            expected_data_len: edtl,
            cmd_sn: self.next_cmd_sn(),
            exp_stat_sn: 0,
            cdb: c,
        }
    }

    /// Performs every pending backing-store request against `disk`.
    fn run_io(&mut self) -> usize {
        let mut n = 0;
        while let Some(req) = self.conn.poll_io() {
            n += 1;
            self.complete(req, Ok(()));
        }
        n
    }

    /// Backing-store requests issued so far, not yet performed.
    fn take_io(&mut self) -> Vec<IoRequest> {
        std::iter::from_fn(|| self.conn.poll_io()).collect()
    }

    /// The store of `lun`.
    fn disk_of(&mut self, lun: u16) -> &mut Vec<u8> {
        if lun == 0 {
            return &mut self.disk;
        }
        let at = self.other_disks.iter().position(|(l, _)| *l == lun);
        let Some(at) = at else {
            panic!("I/O for LUN {lun}, which has no store")
        };
        &mut self.other_disks[at].1
    }

    /// Performs one request against the store of its LUN (unless `result` is an error) and
    /// reports it done. The stores keep no zeroed blocks: a block of zeros is a hole.
    fn complete(&mut self, req: IoRequest, mut result: Result<(), i32>) {
        let ok = result.is_ok();
        let disk = self.disk_of(req.lun);
        let mut extent = None;
        let buf = match req.op {
            IoOp::Read { offset, mut buf } => {
                let o = offset as usize;
                let len = buf.len();
                buf.as_mut_slice().copy_from_slice(&disk[o..o + len]);
                Some(buf)
            }
            IoOp::Write { offset, buf, .. } => {
                let o = offset as usize;
                if ok {
                    disk[o..o + buf.len()].copy_from_slice(buf.as_slice());
                }
                Some(buf)
            }
            IoOp::Flush => None,
            IoOp::Discard { offset, len } => {
                disk[offset as usize..(offset + len) as usize].fill(0);
                None
            }
            IoOp::FindExtent { offset, len } => {
                let blocks = disk[offset as usize..(offset + len) as usize].chunks(BS as usize);
                let holds = |b: &[u8]| b.iter().any(|&x| x != 0);
                let mut blocks = blocks.map(holds).peekable();
                let allocated = blocks.peek().copied().unwrap_or(false);
                let n = blocks.take_while(|&h| h == allocated).count() as u64;
                extent = Some(crate::backstore::Extent {
                    allocated,
                    len: n * u64::from(BS),
                });
                None
            }
            IoOp::CompareAndWrite { offset, buf, .. } => {
                let (o, half) = (offset as usize, buf.len() / 2);
                let (compare, write) = buf.as_slice().split_at(half);
                if disk[o..o + half] != *compare {
                    result = result.and(Err(libc::EILSEQ));
                } else if ok {
                    disk[o..o + half].copy_from_slice(write);
                }
                Some(buf)
            }
        };
        let c = IoCompletion {
            token: req.token,
            result,
            buf,
            lock: req.lock,
            extent,
        };
        self.conn.handle_io_completion(c, self.now);
    }
}

fn rw10(op: u8, lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = vec![op, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn response(pdus: &[(Bhs, Vec<u8>)]) -> ScsiResponse {
    let (b, _) = pdus
        .iter()
        .find(|(b, _)| b.opcode() == Opcode::SCSI_RESPONSE)
        .expect("SCSI Response");
    ScsiResponse::decode(b)
}

/// Sense key, ASC and ASCQ of the fixed-format sense in a SCSI Response's data segment.
fn sense_of(pdus: &[(Bhs, Vec<u8>)]) -> (u8, u8, u8) {
    let (_, data) = pdus
        .iter()
        .find(|(b, _)| b.opcode() == Opcode::SCSI_RESPONSE)
        .expect("SCSI Response");
    let s = &data[2..];
    (s[2] & 0x0f, s[12], s[13])
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn default_offer() -> TargetOffer {
    TargetOffer::default()
}

#[test]
fn immediate_data_write_reaches_disk_and_reads_back_split_by_mrdsl() {
    let keys = [
        ("MaxRecvDataSegmentLength", "4096"),
        ("ImmediateData", "Yes"),
        ("InitialR2T", "No"),
    ];
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &keys);
    let data = pattern(4096, 3);
    p.command(10, &rw10(0x2a, 8, 8), 4096, false, true, &data);
    assert_eq!(p.run_io(), 1);
    let rsp = response(&p.recv());
    assert_eq!((rsp.itt, rsp.status), (10, 0));
    assert_eq!(&p.disk[8 * 512..8 * 512 + 4096], &data[..]);

    p.command(11, &rw10(0x28, 8, 16), 8192, true, false, &[]);
    p.run_io();
    let pdus = p.recv();
    let ins: Vec<DataIn> = pdus.iter().map(|(b, _)| DataIn::decode(b)).collect();
    assert_eq!(
        pdus.len(),
        2,
        "8 KiB in 4 KiB Data-In PDUs, status collapsed into the last"
    );
    assert!(pdus
        .iter()
        .all(|(b, d)| b.opcode() == Opcode::DATA_IN && d.len() == 4096));
    assert_eq!((ins[0].data_sn, ins[1].data_sn), (0, 1));
    assert_eq!(ins[1].buffer_offset, 4096);
    assert_eq!(ins[1].status, Some(0));
    assert!(ins[0].status.is_none());
    assert_eq!(&pdus[0].1[..], &data[..]);
}

#[test]
fn unsolicited_data_out_completes_the_first_burst() {
    let keys = [
        ("ImmediateData", "Yes"),
        ("InitialR2T", "No"),
        ("FirstBurstLength", "65536"),
    ];
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &keys);
    p.announce_unsolicited = true;
    let data = pattern(8192, 9);
    p.command(20, &rw10(0x2a, 0, 16), 8192, false, true, &data[..2048]);
    assert_eq!(p.run_io(), 0, "waits for the unsolicited Data-Out");
    for (i, chunk) in data[2048..].chunks(2048).enumerate() {
        let d = DataOut {
            final_bit: i == 2,
            lun: 0,
            itt: 20,
            ttt: RESERVED_TAG,
            exp_stat_sn: 0,
            data_sn: i as u32,
            buffer_offset: 2048 + 2048 * i as u32,
        };
        p.send(&d.encode(), chunk);
    }
    assert_eq!(p.run_io(), 1);
    assert_eq!(response(&p.recv()).status, 0);
    assert_eq!(&p.disk[..8192], &data[..]);
}

#[test]
fn final_bit_without_unsolicited_data_gets_everything_solicited() {
    let keys = [("ImmediateData", "Yes"), ("InitialR2T", "No")];
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &keys);
    let data = pattern(8192, 4);
    // F=1 with 2 KiB of immediate data: nothing unsolicited follows, so the rest is solicited.
    p.command(21, &rw10(0x2a, 0, 16), 8192, false, true, &data[..2048]);
    let pdus = p.recv();
    let r = R2t::decode(&pdus[0].0);
    assert_eq!((r.buffer_offset, r.desired_len), (2048, 6144));
    let d = DataOut {
        final_bit: true,
        lun: 0,
        itt: 21,
        ttt: r.ttt,
        exp_stat_sn: 0,
        data_sn: 0,
        buffer_offset: 2048,
    };
    p.send(&d.encode(), &data[2048..]);
    p.run_io();
    assert_eq!(response(&p.recv()).status, 0);
    assert_eq!(&p.disk[..8192], &data[..]);
}

#[test]
fn solicited_write_uses_several_outstanding_r2ts_within_max_burst() {
    let keys = [
        ("ImmediateData", "No"),
        ("InitialR2T", "Yes"),
        ("MaxBurstLength", "4096"),
        ("MaxOutstandingR2T", "2"),
    ];
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &keys);
    let data = pattern(16384, 5);
    p.command(30, &rw10(0x2a, 100, 32), 16384, false, true, &[]);
    let mut r2ts: Vec<R2t> = p.recv().iter().map(|(b, _)| R2t::decode(b)).collect();
    assert_eq!(r2ts.len(), 2, "MaxOutstandingR2T=2");
    let mut seen = Vec::new();
    while let Some(r) = r2ts.pop() {
        assert!(r.desired_len <= 4096);
        seen.push(r.r2t_sn);
        let off = r.buffer_offset as usize;
        let d = DataOut {
            final_bit: true,
            lun: 0,
            itt: 30,
            ttt: r.ttt,
            exp_stat_sn: 0,
            data_sn: 0,
            buffer_offset: r.buffer_offset,
        };
        p.send(&d.encode(), &data[off..off + r.desired_len as usize]);
        r2ts.extend(
            p.recv()
                .iter()
                .filter(|(b, _)| b.opcode() == Opcode::R2T)
                .map(|(b, _)| R2t::decode(b)),
        );
    }
    seen.sort();
    assert_eq!(seen, vec![0, 1, 2, 3]);
    // Each burst has its own buffer and is written as soon as all of it is in.
    assert_eq!(p.run_io(), 4);
    let rsp = response(&p.recv());
    assert_eq!(rsp.exp_data_sn, 4, "ExpDataSN counts the R2Ts");
    assert_eq!(&p.disk[100 * 512..100 * 512 + 16384], &data[..]);
}

#[test]
fn wrong_data_sn_is_rejected_and_ends_the_task() {
    let keys = [("ImmediateData", "No"), ("InitialR2T", "Yes")];
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &keys);
    p.command(40, &rw10(0x2a, 0, 1), 512, false, true, &[]);
    let r = R2t::decode(&p.recv()[0].0);
    let d = DataOut {
        final_bit: true,
        lun: 0,
        itt: 40,
        ttt: r.ttt,
        exp_stat_sn: 0,
        data_sn: 27,
        buffer_offset: 0,
    };
    p.send(&d.encode(), &[0u8; 512]);
    let pdus = p.recv();
    assert_eq!(pdus[0].0.opcode(), Opcode::REJECT);
    let echoed = Bhs::from_slice(&pdus[0].1).unwrap();
    assert_eq!(
        (echoed.opcode(), echoed.itt(), echoed.u32_at(36)),
        (Opcode::DATA_OUT, 40, 27)
    );
    assert_eq!(p.run_io(), 0, "nothing written");
}

#[test]
fn a_read_of_a_store_that_keeps_nothing_is_zeros_without_a_buffer_or_io() {
    let mut null = lu();
    null.reads_zeros = true;
    let ctx = context_with(default_offer(), Tuning::default(), vec![null]);
    let mut p = Pair::logged_in_to(ctx, &[("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C")]);
    // 300 blocks: several Data-In PDUs, each longer than one piece of the shared zeros.
    p.command(60, &rw10(0x28, 0, 300), 300 * BS, true, false, &[]);
    assert!(p.take_io().is_empty(), "no backing-store operation");
    assert!(p.conn.output().bufs.is_empty(), "no buffer held");
    let pdus = p.recv();
    let data: Vec<u8> = pdus
        .iter()
        .filter(|(b, _)| b.opcode() == Opcode::DATA_IN)
        .flat_map(|(_, d)| d.iter().copied())
        .collect();
    assert_eq!(data, vec![0u8; 300 * BS as usize]);
    let (last, _) = pdus.last().unwrap();
    assert_eq!(
        DataIn::decode(last).status,
        Some(0),
        "GOOD with the last Data-In"
    );
}

#[test]
fn a_peer_that_reads_no_zeros_stops_being_read_within_the_output_bound() {
    let mut null = lu();
    null.reads_zeros = true;
    let ctx = context_with(default_offer(), Tuning::default(), vec![null]);
    let keys = [("MaxRecvDataSegmentLength", "16777215")];
    let mut p = Pair::logged_in_to(ctx, &keys);
    // 1 MiB reads (the unit's transfer limit): few headers each, but many pieces of zeros.
    let mut wire = Vec::new();
    for itt in 0..3000u32 {
        let cmd = p.command_pdu(0, itt, &rw10(0x28, 0, 2048), 1 << 20, true, false);
        frame::encode(&mut wire, &cmd.encode(), &[], &[], p.digests);
    }
    let used = p.conn.handle_input(&wire, p.now);
    assert!(
        used < wire.len(),
        "every command taken while nothing was read"
    );
    let held = p.conn.output().held_bytes();
    assert!(held <= MAX_STAGED_OUTPUT + 4096, "{held} bytes held");
}

#[test]
fn read_residuals_match_what_initiators_expect() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &[]);
    // (EDTL, blocks, bytes sent, overflow, underflow, count)
    let cases = [
        (0u32, 1u16, 0usize, true, false, 512u32),
        (10000, 1, 512, false, true, 9488),
        (200, 1, 200, true, false, 312),
        (512, 2, 512, true, false, 512),
    ];
    for (i, (edtl, blocks, sent, over, under, count)) in cases.into_iter().enumerate() {
        p.command(
            50 + i as u32,
            &rw10(0x28, 0, blocks),
            edtl,
            true,
            false,
            &[],
        );
        p.run_io();
        let pdus = p.recv();
        let bytes: usize = pdus
            .iter()
            .filter(|(b, _)| b.opcode() == Opcode::DATA_IN)
            .map(|(_, d)| d.len())
            .sum();
        assert_eq!(bytes, sent, "case {i}");
        let (last, _) = pdus.last().unwrap();
        let (o, u, c) = if last.opcode() == Opcode::DATA_IN {
            let d = DataIn::decode(last);
            (d.residual.overflow, d.residual.underflow, d.residual.count)
        } else {
            let r = ScsiResponse::decode(last);
            (r.residual.overflow, r.residual.underflow, r.residual.count)
        };
        assert_eq!((o, u, c), (over, under, count), "case {i}");
    }
}

#[test]
fn write_residuals_write_only_what_the_edtl_covers() {
    let mut p = Pair::logged_in(
        default_offer(),
        Tuning::default(),
        &[("ImmediateData", "Yes"), ("InitialR2T", "No")],
    );
    p.disk[..1024].fill(b'a');
    // One block asked for, two sent: block 1 must stay untouched, underflow of one block.
    p.command(60, &rw10(0x2a, 0, 1), 1024, false, true, &[b'b'; 1024]);
    p.run_io();
    let r = response(&p.recv());
    assert_eq!(
        (r.status, r.residual.underflow, r.residual.count),
        (0, true, 512)
    );
    assert!(
        p.disk[..512].iter().all(|&b| b == b'b') && p.disk[512..1024].iter().all(|&b| b == b'a')
    );
    // Two blocks asked for, one sent: only block 0 written, overflow of one block.
    p.disk[..1024].fill(b'a');
    p.command(61, &rw10(0x2a, 0, 2), 512, false, true, &[b'b'; 512]);
    p.run_io();
    let r = response(&p.recv());
    assert_eq!(
        (r.status, r.residual.overflow, r.residual.count),
        (0, true, 512)
    );
    assert!(p.disk[512..1024].iter().all(|&b| b == b'a'));
    // EDTL ending inside a block: refused with INVALID FIELD IN INFORMATION UNIT.
    p.command(62, &rw10(0x2a, 0, 1), 200, false, true, &[b'c'; 200]);
    assert_eq!(p.run_io(), 0);
    let pdus = p.recv();
    let r = response(&pdus);
    assert_eq!(
        (r.status, r.residual.overflow, r.residual.count),
        (2, true, 312)
    );
    let sense = &pdus.last().unwrap().1;
    assert_eq!(
        (sense[2 + 2] & 0x0f, sense[2 + 12], sense[2 + 13]),
        (5, 0x0e, 0x03)
    );
}

#[test]
fn commands_outside_the_window_are_ignored_and_gaps_wait() {
    let mut p = Pair::logged_in(
        default_offer(),
        Tuning {
            queue_depth: 8,
            ..Tuning::default()
        },
        &[],
    );
    let tur = [0u8; 6];
    let base = p.cmd_sn;
    p.cmd_sn = base + 8; // beyond MaxCmdSN
    p.command(70, &tur, 0, false, false, &[]);
    p.cmd_sn = base.wrapping_sub(1); // already used
    p.command(71, &tur, 0, false, false, &[]);
    assert!(p.recv().is_empty(), "out-of-window commands get no answer");
    p.cmd_sn = base + 1; // after a gap: waits
    p.command(72, &tur, 0, false, false, &[]);
    assert!(p.recv().is_empty());
    p.cmd_sn = base; // fills the gap: both run, in order
    p.command(73, &tur, 0, false, false, &[]);
    let pdus = p.recv();
    let itts: Vec<u32> = pdus.iter().map(|(b, _)| b.itt()).collect();
    assert_eq!(itts, vec![73, 72]);
    // Each response acknowledges its own command: ExpCmdSN is already past it.
    let acks: Vec<u32> = pdus
        .iter()
        .map(|(b, _)| ScsiResponse::decode(b).exp_cmd_sn)
        .collect();
    assert_eq!(acks, vec![base + 1, base + 2]);
}

/// A command carrying `exp_stat_sn`, answered at once (TEST UNIT READY).
fn test_unit_ready_acknowledging(p: &mut Pair, itt: u32, exp_stat_sn: u32) {
    let mut cmd = p.command_pdu(0, itt, &[0; 6], 0, false, false);
    cmd.exp_stat_sn = exp_stat_sn;
    p.send(&cmd.encode(), &[]);
}

#[test]
fn requests_outstanding_at_the_initiator_are_held_tasks_and_answers_it_has_not_seen() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &[]);
    p.clear_unit_attentions();
    test_unit_ready_acknowledging(&mut p, 1, 0);
    let next = response(&p.recv()).stat_sn.wrapping_add(1);
    test_unit_ready_acknowledging(&mut p, 2, next.wrapping_add(1));
    let _ = p.recv();
    assert_eq!(
        p.conn.initiator_outstanding(),
        0,
        "every answer seen, nothing held"
    );
    let next = next.wrapping_add(1);
    for itt in 10..14u32 {
        let mut cmd = p.command_pdu(0, itt, &rw10(0x28, itt * 8, 8), 4096, true, false);
        cmd.exp_stat_sn = next;
        p.send(&cmd.encode(), &[]);
    }
    assert_eq!(p.conn.initiator_outstanding(), 4, "four reads held");
    assert_eq!(p.run_io(), 4);
    assert_eq!(p.recv().len(), 4, "four answers");
    assert_eq!(
        p.conn.initiator_outstanding(),
        4,
        "answered, but the initiator has not said it saw them"
    );
    // It saw two of the reads' answers; this command's own answer is one more it has not seen.
    test_unit_ready_acknowledging(&mut p, 20, next.wrapping_add(2));
    assert_eq!(p.conn.initiator_outstanding(), 3);
    let seen_all = next.wrapping_add(5);
    // An ExpStatSN ahead of every answer sent, or further behind than the queue depth, is bogus:
    // it counts as nothing unseen, never as billions.
    for bogus in [seen_all.wrapping_add(1000), seen_all.wrapping_sub(1000)] {
        test_unit_ready_acknowledging(&mut p, 21, bogus);
        assert_eq!(p.conn.initiator_outstanding(), 0, "ExpStatSN {bogus}");
        let _ = p.recv();
    }
}

#[test]
fn nop_out_is_echoed_and_keepalive_ends_a_silent_peer() {
    let tuning = Tuning {
        nop_interval: Some(Duration::from_secs(1)),
        nop_timeout: Duration::from_secs(2),
        ..Tuning::default()
    };
    let mut p = Pair::logged_in(default_offer(), tuning, &[]);
    let nop = NopOut {
        immediate: true,
        lun: 0,
        itt: 80,
        ttt: RESERVED_TAG,
        cmd_sn: p.cmd_sn,
        exp_stat_sn: 0,
    };
    p.send(&nop.encode(), b"ping data");
    let pdus = p.recv();
    assert_eq!(
        (pdus[0].0.opcode(), pdus[0].0.itt(), &pdus[0].1[..]),
        (Opcode::NOP_IN, 80, &b"ping data"[..])
    );

    p.now += Duration::from_secs(1);
    p.conn.handle_timeout(p.now);
    let ping = p.recv();
    assert_eq!(ping[0].0.opcode(), Opcode::NOP_IN);
    assert_eq!(ping[0].0.itt(), RESERVED_TAG);
    p.now += Duration::from_secs(2);
    p.conn.handle_timeout(p.now);
    assert_eq!(p.conn.close_reason(), Some(&CloseReason::KeepaliveTimeout));
}

#[test]
fn answered_ping_keeps_the_connection() {
    let tuning = Tuning {
        nop_interval: Some(Duration::from_secs(1)),
        nop_timeout: Duration::from_secs(2),
        ..Tuning::default()
    };
    let mut p = Pair::logged_in(default_offer(), tuning, &[]);
    p.now += Duration::from_secs(1);
    p.conn.handle_timeout(p.now);
    let ttt = p.recv()[0].0.u32_at(20);
    let answer = NopOut {
        immediate: true,
        lun: 0,
        itt: RESERVED_TAG,
        ttt,
        cmd_sn: p.cmd_sn,
        exp_stat_sn: 0,
    };
    p.send(&answer.encode(), &[]);
    assert!(p.recv().is_empty(), "a ping answer gets no reply");
    p.now += Duration::from_millis(1500);
    p.conn.handle_timeout(p.now);
    assert!(p.conn.close_reason().is_none());
}

#[test]
fn data_digest_error_is_rejected_and_the_session_goes_on() {
    let offer = TargetOffer {
        data_digest: DigestPolicy::Require,
        header_digest: DigestPolicy::Require,
        ..default_offer()
    };
    let mut p = Pair::logged_in(
        offer,
        Tuning::default(),
        &[("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C")],
    );
    assert!(p.digests.header && p.digests.data);
    let nop = NopOut {
        immediate: true,
        lun: 0,
        itt: 90,
        ttt: RESERVED_TAG,
        cmd_sn: p.cmd_sn,
        exp_stat_sn: 0,
    };
    let mut wire = Vec::new();
    frame::encode(&mut wire, &nop.encode(), &[], b"abcd", p.digests);
    let last = wire.len() - 1;
    wire[last] ^= 0xff;
    assert_eq!(p.conn.handle_input(&wire, p.now), wire.len());
    let pdus = p.recv();
    assert_eq!(pdus[0].0.opcode(), Opcode::REJECT);
    assert_eq!(
        Reject::decode(&pdus[0].0).reason,
        crate::pdu::reject::RejectReason::DATA_DIGEST_ERROR
    );
    p.send(&nop.encode(), b"abcd");
    assert_eq!(p.recv()[0].0.opcode(), Opcode::NOP_IN);
}

#[test]
fn unknown_opcode_gets_a_reject_with_the_header() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &[]);
    let mut b = Bhs::new(Opcode(0x1f));
    b.set_itt(5);
    p.send(&b, &[]);
    let pdus = p.recv();
    assert_eq!(pdus[0].0.opcode(), Opcode::REJECT);
    assert_eq!(
        Reject::decode(&pdus[0].0).reason,
        crate::pdu::reject::RejectReason::COMMAND_NOT_SUPPORTED
    );
    assert_eq!(&pdus[0].1[..], &b.0[..]);
}

#[test]
fn garbage_never_panics() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &[]);
    let mut seed = 0x1234_5678u32;
    for _ in 0..2000 {
        let mut b = [0u8; 48];
        for x in b.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *x = seed as u8;
        }
        b[4] = 0;
        b[5] = 0;
        b[6] &= 0x0f;
        let mut wire = b.to_vec();
        wire.resize(48 + frame::pad4(Bhs(b).data_segment_len()), 0);
        p.conn.handle_input(&wire, p.now);
        p.run_io();
        p.conn.output().clear();
        if p.conn.close_reason().is_some() {
            p = Pair::logged_in(default_offer(), Tuning::default(), &[]);
        }
    }
    let _ = IoBuf::zeroed(0);
}

mod bounds;
mod copy;
mod landing;
mod masking;
mod range_locks;
mod reservations;
mod sanitize;
mod text;
mod tmf;
