//! Every way data moves (RFC 7143 §11.3–§11.8): each write path compared by reading back, Data-In
//! split by the initiator's MaxRecvDataSegmentLength, and residuals.

mod common;

use common::{cdb, Initiator};

/// LBAs far enough apart that tests never overlap.
const LBA: u64 = 2048;

fn read_back(ini: &mut Initiator, lba: u64, want: &[u8], bs: u32) {
    let r = ini.read_blocks(0, lba, want.len() as u32 / bs, bs);
    r.assert_good();
    assert_eq!(r.data.len(), want.len());
    assert!(r.data == want, "readback differs from what was written");
}

#[test]
fn write_with_immediate_data_only_reads_back() {
    let d = common::daemon(&[]);
    let mut ini = common::session(&d, &[("InitialR2T", "Yes"), ("ImmediateData", "Yes")]);
    assert!(ini.params.initial_r2t && ini.params.immediate_data);
    ini.wait_ready(0);
    let (_, bs) = ini.capacity(0);
    let data = cdb::pattern(1, 4096);
    assert!(data.len() <= ini.params.target_mrdsl as usize);
    assert!(data.len() <= ini.params.first_burst as usize);
    let w = ini.write_blocks(0, LBA, &data, bs);
    w.assert_good();
    assert!(
        w.r2ts.is_empty(),
        "all data went with the command: {:?}",
        w.r2ts
    );
    read_back(&mut ini, LBA, &data, bs);
}

#[test]
fn write_with_immediate_and_unsolicited_data_out_reads_back() {
    let d = common::daemon(&[]);
    let keys = [
        ("InitialR2T", "No"),
        ("ImmediateData", "Yes"),
        ("FirstBurstLength", "65536"),
    ];
    let mut ini = common::session(&d, &keys);
    assert!(!ini.params.initial_r2t, "the target accepts InitialR2T=No");
    assert!(ini.params.immediate_data);
    ini.immediate_limit = 4096; // so unsolicited Data-Out must carry the rest of the burst
    ini.wait_ready(0);
    let (_, bs) = ini.capacity(0);
    let first_burst = ini.params.first_burst as usize;
    assert!(first_burst > 4096, "FirstBurstLength {first_burst}");
    // One burst unsolicited, plus 32 KiB that the target must solicit.
    let data = cdb::pattern(2, first_burst + 32 * 1024);
    let w = ini.write_blocks(0, LBA * 2, &data, bs);
    w.assert_good();
    assert!(
        !w.r2ts.is_empty(),
        "the part past FirstBurstLength is solicited"
    );
    assert_eq!(
        w.r2ts[0].buffer_offset as usize, first_burst,
        "R2T starts after the burst"
    );
    read_back(&mut ini, LBA * 2, &data, bs);
}

#[test]
fn write_solicited_by_multiple_r2ts_reads_back() {
    let d = common::daemon(&[]);
    let keys = [
        ("InitialR2T", "Yes"),
        ("ImmediateData", "No"),
        ("MaxBurstLength", "16384"),
        ("MaxOutstandingR2T", "4"),
    ];
    let mut ini = common::session(&d, &keys);
    let p = ini.params.clone();
    assert!(p.initial_r2t && !p.immediate_data);
    assert_eq!(p.max_burst, 16384);
    assert!(
        p.max_outstanding_r2t > 1,
        "MaxOutstandingR2T {}",
        p.max_outstanding_r2t
    );
    ini.wait_ready(0);
    let (_, bs) = ini.capacity(0);
    let data = cdb::pattern(3, 256 * 1024);
    let w = ini.write_blocks(0, LBA * 3, &data, bs);
    w.assert_good();
    assert!(w.r2ts.len() >= data.len() / 16384, "{} R2Ts", w.r2ts.len());
    let solicited: u32 = w.r2ts.iter().map(|r| r.desired_len).sum();
    assert_eq!(
        solicited as usize,
        data.len(),
        "R2Ts cover the transfer exactly once"
    );
    assert!(
        w.max_r2t_batch <= p.max_outstanding_r2t as usize,
        "{} R2Ts outstanding, MaxOutstandingR2T {}",
        w.max_r2t_batch,
        p.max_outstanding_r2t
    );
    read_back(&mut ini, LBA * 3, &data, bs);
}

#[test]
fn read_split_by_small_mrdsl_carries_status_in_last_data_in() {
    let d = common::daemon(&[]);
    let mut ini = common::session(&d, &[("MaxRecvDataSegmentLength", "4096")]);
    ini.wait_ready(0);
    let (_, bs) = ini.capacity(0);
    let data = cdb::pattern(4, 64 * 1024);
    ini.write_blocks(0, LBA * 4, &data, bs).assert_good();
    let r = ini.read_blocks(0, LBA * 4, data.len() as u32 / bs, bs);
    r.assert_good();
    assert!(r.data == data, "readback differs");
    assert!(r.data_in.len() >= 16, "{} Data-In PDUs", r.data_in.len());
    assert!(r.data_in.iter().all(|(_, len)| *len <= 4096));
    assert!(r.status_in_data_in, "status rides in the last Data-In");
}

#[test]
fn read_with_edtl_smaller_than_transfer_reports_overflow() {
    let d = common::daemon(&[]);
    let mut ini = common::session(&d, &[]);
    ini.wait_ready(0);
    let (_, bs) = ini.capacity(0);
    let r = ini.read(0, &cdb::read10(0, 8), 4 * bs);
    r.assert_good();
    assert_eq!(r.data.len(), 4 * bs as usize, "only EDTL bytes are sent");
    assert!(
        r.residual.overflow && !r.residual.underflow,
        "{:?}",
        r.residual
    );
    assert_eq!(r.residual.count, 4 * bs);
}

#[test]
fn read_with_edtl_larger_than_transfer_reports_underflow() {
    let d = common::daemon(&[]);
    let mut ini = common::session(&d, &[]);
    ini.wait_ready(0);
    let (_, bs) = ini.capacity(0);
    let r = ini.read(0, &cdb::read10(0, 1), 8 * bs);
    r.assert_good();
    assert_eq!(r.data.len(), bs as usize);
    assert!(
        r.residual.underflow && !r.residual.overflow,
        "{:?}",
        r.residual
    );
    assert_eq!(r.residual.count, 7 * bs);
}

/// A large Data-Out whose payload trickles in after its header is received straight into the
/// task's buffer (the reactor lends the buffer range to the kernel); the data must still land
/// exactly where its Buffer Offset says. Its header and the first bytes of its payload arrive
/// alone, in a receive-ring buffer: they go from there to the task's buffer, not through the
/// connection's own buffer (`ringtgt_recv_ring_carried_bytes_total`).
#[test]
fn data_out_arriving_in_pieces_lands_in_place() {
    use ringtgt::pdu::frame;
    use ringtgt::pdu::scsi::{DataOut, R2t, ScsiResponse};
    use ringtgt::pdu::Opcode;
    use std::time::Duration;

    let d = common::daemon(&["--metrics", "127.0.0.1:0"]);
    let addr = d.metrics_addr();
    let carried = || metric_sum(&addr, "ringtgt_recv_ring_carried_bytes_total");
    let ring_bytes = || metric_sum(&addr, "ringtgt_recv_ring_bytes_total");
    let keys = [
        ("InitialR2T", "Yes"),
        ("ImmediateData", "No"),
        ("MaxBurstLength", "65536"),
    ];
    let mut ini = common::session(&d, &keys);
    ini.wait_ready(0);
    let (_, bs) = ini.capacity(0);
    let data = cdb::pattern(9, 64 * 1024);
    let lba = LBA * 5;
    let cmd = ini.command_pdu(
        0,
        &cdb::write10(lba as u32, (data.len() as u32 / bs) as u16),
        false,
        true,
        data.len() as u32,
    );
    ini.send_pdu(&cmd.encode(), &[], &[]);
    let (bhs, _) = ini.recv();
    assert_eq!(bhs.opcode(), Opcode::R2T);
    let r2t = R2t::decode(&bhs);
    assert_eq!(r2t.desired_len as usize, data.len());
    let out = DataOut {
        final_bit: true,
        lun: cmd.lun,
        itt: cmd.itt,
        ttt: r2t.ttt,
        exp_stat_sn: ini.exp_stat_sn,
        data_sn: 0,
        buffer_offset: 0,
    };
    let mut wire = Vec::new();
    frame::encode(&mut wire, &out.encode(), &[], &data, ini.conn.digests);
    assert!(common::admin::scrape(&addr).contains("ringtgt_recv_ring_carried_bytes_total"));
    let (carried_before, ring_before) = (carried(), ring_bytes());
    for piece in [&wire[..48 + 100], &wire[48 + 100..30_000], &wire[30_000..]] {
        ini.conn.send_raw(piece).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let (bhs, _) = ini.recv();
    let rsp = ScsiResponse::decode(&bhs);
    assert_eq!((bhs.opcode(), rsp.status), (Opcode::SCSI_RESPONSE, 0));
    assert!(
        ring_bytes() - ring_before >= 148.0,
        "the first piece came in a ring buffer"
    );
    assert_eq!(carried() - carried_before, 0.0, "bytes carried");
    read_back(&mut ini, lba, &data, bs);
}

/// Large writes, as the Linux initiator sends them (immediate data up to FirstBurstLength, the
/// rest solicited, 256 KiB Data-Outs): after the first large payload each next header is
/// received alone, so every payload lands in the buffer it is written from and none is copied
/// (`ringtgt_write_bytes_copied_total`). Only the very first write may have part of its
/// immediate data copied, as it came in a receive-ring buffer behind its header.
#[test]
fn large_writes_land_without_copies() {
    const MIB: usize = 1 << 20;
    let d = common::daemon(&["--metrics", "127.0.0.1:0"]);
    let addr = d.metrics_addr();
    let copied = || metric_sum(&addr, "ringtgt_write_bytes_copied_total");
    let keys = [
        ("InitialR2T", "Yes"),
        ("ImmediateData", "Yes"),
        ("FirstBurstLength", "262144"),
        ("MaxBurstLength", "1048576"),
    ];
    let mut ini = common::session(&d, &keys);
    ini.wait_ready(0);
    let (_, bs) = ini.capacity(0);
    assert_eq!(ini.params.target_mrdsl as usize, MIB / 4);
    let data: Vec<Vec<u8>> = (0..6).map(|i| cdb::pattern(20 + i, MIB)).collect();
    let before = copied();
    for (i, d) in data.iter().enumerate() {
        let w = ini.write_blocks(0, (i * MIB) as u64 / u64::from(bs), d, bs);
        w.assert_good();
        assert_eq!(
            w.r2ts.len(),
            1,
            "the rest after the immediate data is one burst"
        );
    }
    let copied = copied() - before;
    assert!(
        copied < (64 * 1024) as f64,
        "{copied} bytes of 6 MiB of writes copied"
    );
    for (i, d) in data.iter().enumerate() {
        read_back(&mut ini, (i * MIB) as u64 / u64::from(bs), d, bs);
    }
}

/// Buffers are pooled per core: a read from the null LUN must return zeros, never bytes a
/// previous command left in a reused buffer.
#[test]
fn null_lun_reads_zeros_after_buffers_were_reused() {
    let d = common::daemon(&[]);
    let mut ini = common::session(&d, &[]);
    ini.wait_ready(0);
    ini.wait_ready(1);
    let (_, bs) = ini.capacity(0);
    let data = cdb::pattern(11, 32 * 1024);
    for round in 0..4 {
        ini.write_blocks(0, LBA * 6, &data, bs).assert_good();
        read_back(&mut ini, LBA * 6, &data, bs);
        let r = ini.read_blocks(1, 0, data.len() as u32 / bs, bs);
        r.assert_good();
        assert!(
            r.data.iter().all(|&b| b == 0),
            "null LUN returned stale bytes in round {round}"
        );
    }
}

#[test]
fn busy_polling_reactors_move_the_same_data() {
    // --poll-us: an idle reactor reaps by polling before it sleeps; nothing else may change.
    let d = common::daemon(&["--poll-us", "200"]);
    let mut ini = common::session(&d, &[("InitialR2T", "No"), ("ImmediateData", "Yes")]);
    ini.wait_ready(0);
    let (_, bs) = ini.capacity(0);
    for (i, len) in [4096usize, 65536, 1 << 20].into_iter().enumerate() {
        let data = cdb::pattern(40 + i as u64, len);
        let lba = LBA + (i as u64) * 4096;
        ini.write_blocks(0, lba, &data, bs).assert_good();
        read_back(&mut ini, lba, &data, bs);
    }
}

/// Immediate data whose header arrives alone is received straight into a buffer of its own, and
/// the bytes that follow it on the stream (here the next command's header, sent in the same
/// segment as the data) are received in the same call: every write must land where its CDB says
/// and every command be answered.
#[test]
fn immediate_data_after_a_lone_header_lands_and_what_follows_is_kept() {
    use ringtgt::pdu::frame;
    use ringtgt::pdu::scsi::ScsiResponse;
    use ringtgt::pdu::Opcode;
    use std::time::Duration;

    let d = common::daemon(&[]);
    let mut ini = common::session(&d, &[("InitialR2T", "Yes"), ("ImmediateData", "Yes")]);
    ini.wait_ready(0);
    let (_, bs) = ini.capacity(0);
    let writes: Vec<(u64, Vec<u8>, Vec<u8>)> = (0..8u64)
        .map(|i| {
            let data = cdb::pattern(60 + i, 4096 * (1 + i as usize % 3));
            let lba = LBA * 7 + i * 64;
            let blocks = (data.len() as u32 / bs) as u16;
            let cmd = ini.command_pdu(
                0,
                &cdb::write10(lba as u32, blocks),
                false,
                true,
                data.len() as u32,
            );
            let mut wire = Vec::new();
            frame::encode(&mut wire, &cmd.encode(), &[], &data, ini.conn.digests);
            (lba, data, wire)
        })
        .collect();
    // header 0 | data 0 + header 1 | data 1 + header 2 | ... | data 7
    ini.conn.send_raw(&writes[0].2[..48]).unwrap();
    for (i, (_, _, wire)) in writes.iter().enumerate() {
        std::thread::sleep(Duration::from_millis(20));
        let mut piece = wire[48..].to_vec();
        if let Some((_, _, next)) = writes.get(i + 1) {
            piece.extend_from_slice(&next[..48]);
        }
        ini.conn.send_raw(&piece).unwrap();
    }
    for _ in &writes {
        let (bhs, _) = ini.recv();
        let rsp = ScsiResponse::decode(&bhs);
        assert_eq!((bhs.opcode(), rsp.status), (Opcode::SCSI_RESPONSE, 0));
    }
    for (lba, data, _) in &writes {
        read_back(&mut ini, *lba, data, bs);
    }
}

/// A batch of write PDUs that arrives at once is taken in a few large receives, not one per PDU:
/// the payload at the end of one receive goes straight to its buffer, and the receive that
/// finishes it also takes what follows (so receiving in place never shrinks the batches).
#[test]
fn a_batch_of_writes_is_received_in_a_few_receives() {
    use common::admin::{parse_prometheus, scrape};
    use ringtgt::pdu::frame;

    let d = common::daemon(&["--metrics", "127.0.0.1:0"]);
    let addr = d.metrics_addr();
    let submissions = || -> f64 {
        parse_prometheus(&scrape(&addr))
            .iter()
            .filter(|s| s.name == "ringtgt_io_uring_submissions_total")
            .map(|s| s.value)
            .sum()
    };
    let mut ini = common::session(&d, &[("InitialR2T", "Yes"), ("ImmediateData", "Yes")]);
    ini.wait_ready(1);
    const BATCH: usize = 32;
    let mut wire = Vec::new();
    for i in 0..BATCH {
        let cmd = ini.command_pdu(1, &cdb::write10(i as u32 * 8, 8), false, true, 4096);
        frame::encode(
            &mut wire,
            &cmd.encode(),
            &[],
            &cdb::pattern(i as u64, 4096),
            ini.conn.digests,
        );
    }
    let before = submissions();
    ini.conn.send_raw(&wire).unwrap();
    for _ in 0..BATCH {
        let (bhs, _) = ini.recv();
        assert_eq!(ringtgt::pdu::scsi::ScsiResponse::decode(&bhs).status, 0);
    }
    let used = submissions() - before;
    assert!(
        used < (BATCH / 2) as f64,
        "{used} io_uring submissions for {BATCH} writes to a null LUN sent in one go"
    );
}

/// Write data that arrives in the same receive as its header is written from that receive
/// buffer, without a copy (`ringtgt_write_bytes_lent_total`): to a RAM LUN, and to a file
/// opened with `O_DIRECT`, which gets an aligned copy where the device needs more alignment than
/// the stream gave the data (`ringtgt_write_bytes_realigned_total`). Every write reads back.
#[test]
fn writes_received_with_their_headers_are_written_from_the_receive_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lun.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let path = path.to_str().unwrap();
    let d = common::daemon(&["--metrics", "127.0.0.1:0", "--lun", path]);
    let addr = d.metrics_addr();
    let metric = |name: &str| metric_sum(&addr, name);
    let mut ini = common::session(&d, &[("InitialR2T", "Yes"), ("ImmediateData", "Yes")]);
    const BATCH: u64 = 32;
    for (lun, seed) in [(0u16, 100u64), (2, 200)] {
        ini.wait_ready(lun);
        let lent = metric("ringtgt_write_bytes_lent_total");
        write_batch_and_read_back(&mut ini, lun, LBA, BATCH, seed);
        let lent = metric("ringtgt_write_bytes_lent_total") - lent;
        // Receives may cut the batch anywhere; a payload cut from its header lands in place.
        assert!(
            lent >= (BATCH / 2 * 4096) as f64,
            "LUN {lun}: {lent} bytes of {BATCH} 4 KiB writes sent in one go were lent"
        );
    }
    let realigned = metric("ringtgt_write_bytes_realigned_total");
    assert!(realigned <= metric("ringtgt_write_bytes_lent_total"));
}

/// Sends `batch` 4 KiB writes with immediate data to `lun` in one go, from `first_lba` on,
/// checks each completes, and reads every one back.
fn write_batch_and_read_back(ini: &mut Initiator, lun: u16, first_lba: u64, batch: u64, seed: u64) {
    use ringtgt::pdu::frame;
    let (_, bs) = ini.capacity(lun);
    let blocks = 4096 / bs;
    let mut wire = Vec::new();
    for i in 0..batch {
        let lba = first_lba + i * u64::from(blocks);
        let cmd = ini.command_pdu(
            lun,
            &cdb::write10(lba as u32, blocks as u16),
            false,
            true,
            4096,
        );
        frame::encode(
            &mut wire,
            &cmd.encode(),
            &[],
            &cdb::pattern(seed + i, 4096),
            ini.conn.digests,
        );
    }
    ini.conn.send_raw(&wire).unwrap();
    for _ in 0..batch {
        let (bhs, _) = ini.recv();
        assert_eq!(ringtgt::pdu::scsi::ScsiResponse::decode(&bhs).status, 0);
    }
    for i in 0..batch {
        let lba = first_lba + i * u64::from(blocks);
        let r = ini.read_blocks(lun, lba, blocks, bs);
        r.assert_good();
        assert!(
            r.data == cdb::pattern(seed + i, 4096),
            "LUN {lun} write {i} reads back"
        );
    }
}

/// A daemon on one core with a file LUN (LUN 2) in tmpfs, and a metrics reader.
fn tmpfs_lun_daemon(extra: &[&str]) -> (tempfile::TempDir, common::Daemon) {
    file_lun_daemon("/dev/shm", extra)
}

/// A daemon on one core with a file LUN (LUN 2) in a new directory under `parent`, and a metrics
/// reader.
fn file_lun_daemon(parent: &str, extra: &[&str]) -> (tempfile::TempDir, common::Daemon) {
    let dir = tempfile::tempdir_in(parent).unwrap();
    let path = dir.path().join("lun.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let mut args = vec![
        "--metrics",
        "127.0.0.1:0",
        "--cores",
        "1",
        "--lun",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let d = common::daemon(&args);
    (dir, d)
}

fn metric_sum(addr: &str, name: &str) -> f64 {
    use common::admin::{parse_prometheus, scrape};
    parse_prometheus(&scrape(addr))
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

/// Connections receive from the core's receive ring (io_uring provided buffers, registered
/// with the ring): a batch of writes with immediate data is received into ring buffers, its data
/// lent from them (no copy), none of it submitted from unregistered memory, and every buffer is
/// back in the ring once the writes are done. Without the ring (`--recv-ring-buffers 0`) nothing
/// is received into one. (tmpfs does not report its direct-I/O alignment, so ringtgt takes it
/// to be 4096: lent data the stream left elsewhere is realigned into pool buffers, registered
/// too; see `writes_at_the_start_of_a_receive_need_no_aligned_copy` for what is not.)
#[test]
fn writes_received_with_their_headers_are_lent_from_registered_ring_buffers() {
    for (ring, seed) in [(true, 300u64), (false, 400)] {
        let extra: &[&str] = if ring {
            &[]
        } else {
            &["--recv-ring-buffers", "0"]
        };
        let (_dir, d) = tmpfs_lun_daemon(extra);
        let addr = d.metrics_addr();
        let buffers = metric_sum(&addr, "ringtgt_recv_ring_buffers");
        assert_eq!(buffers, if ring { 128.0 } else { 0.0 });
        let mut ini = common::session(&d, &[("InitialR2T", "Yes"), ("ImmediateData", "Yes")]);
        ini.wait_ready(2);
        let lent = metric_sum(&addr, "ringtgt_write_bytes_lent_total");
        let unregistered = metric_sum(&addr, "ringtgt_write_bytes_unregistered_total");
        let received = metric_sum(&addr, "ringtgt_recv_ring_bytes_total");
        // Batches that fit in one ring buffer (a PDU cut by its end takes the connection to its
        // own buffer until a receive ends on a PDU boundary).
        const BATCH: u64 = 12;
        const ROUNDS: u64 = 4;
        for round in 0..ROUNDS {
            let lba = LBA + round * BATCH * 8;
            write_batch_and_read_back(&mut ini, 2, lba, BATCH, seed + round * 100);
        }
        let lent = metric_sum(&addr, "ringtgt_write_bytes_lent_total") - lent;
        let unregistered =
            metric_sum(&addr, "ringtgt_write_bytes_unregistered_total") - unregistered;
        let received = metric_sum(&addr, "ringtgt_recv_ring_bytes_total") - received;
        let written = (ROUNDS * BATCH * 4096) as f64;
        assert!(
            lent >= written / 2.0,
            "ring {ring}: {lent} bytes of {written} in batches of 4 KiB writes were lent"
        );
        if ring {
            // At least each batch's first receive (TCP may deliver a batch in pieces).
            assert!(
                received >= (ROUNDS * (48 + 4096)) as f64,
                "{received} bytes received into ring buffers"
            );
            assert_eq!(unregistered, 0.0, "every write from registered memory");
            assert_eq!(metric_sum(&addr, "ringtgt_recv_ring_in_use"), 0.0);
        } else {
            assert_eq!(received, 0.0);
        }
    }
}

/// A write whose header and data arrive at the start of a receive is written straight from the
/// ring buffer even where direct I/O needs aligned memory (a file on the disk's filesystem, 512
/// bytes here): ring buffers are placed so that such data lies on a page boundary. The same
/// writes through the connection's own buffer (no ring) get an aligned copy each, which shows
/// the filesystem does need the alignment.
#[test]
fn writes_at_the_start_of_a_receive_need_no_aligned_copy() {
    for (ring, seed) in [(true, 500u64), (false, 600)] {
        let extra: &[&str] = if ring {
            &[]
        } else {
            &["--recv-ring-buffers", "0"]
        };
        let (_dir, d) = file_lun_daemon("/var/tmp", extra);
        let addr = d.metrics_addr();
        let mut ini = common::session(&d, &[("InitialR2T", "Yes"), ("ImmediateData", "Yes")]);
        ini.wait_ready(2);
        let realigned = metric_sum(&addr, "ringtgt_write_bytes_realigned_total");
        let unregistered = metric_sum(&addr, "ringtgt_write_bytes_unregistered_total");
        const WRITES: u64 = 16;
        for i in 0..WRITES {
            // One at a time: each is the whole of a receive (or its data lands in place).
            write_batch_and_read_back(&mut ini, 2, LBA + i * 8, 1, seed + i);
        }
        let realigned = metric_sum(&addr, "ringtgt_write_bytes_realigned_total") - realigned;
        let unregistered =
            metric_sum(&addr, "ringtgt_write_bytes_unregistered_total") - unregistered;
        if ring {
            assert_eq!(realigned, 0.0, "bytes copied for alignment");
            assert_eq!(unregistered, 0.0, "bytes written from unregistered memory");
        } else {
            assert!(
                realigned >= (WRITES / 2 * 4096) as f64,
                "{realigned} bytes of {WRITES} 4 KiB writes realigned without the ring"
            );
        }
    }
}

/// With a receive ring of one buffer, connections whose data arrives at the same time find
/// it empty (one of them has it): they then receive into buffers of their own, and every write
/// of every connection still lands where it belongs.
#[test]
fn an_empty_receive_ring_falls_back_to_the_connections_own_buffer() {
    let (_dir, d) = tmpfs_lun_daemon(&["--recv-ring-buffers", "1"]);
    let addr = d.metrics_addr();
    let starved = || metric_sum(&addr, "ringtgt_recv_ring_starved_total");
    let keys = [("InitialR2T", "Yes"), ("ImmediateData", "Yes")];
    let sessions: Vec<Initiator> = (0..3)
        .map(|who| {
            let mut ini = common::session_on_core(&d, 0, who + 1, &keys);
            ini.wait_ready(2);
            ini
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for (n, mut ini) in sessions.into_iter().enumerate() {
            let stop = &stop;
            s.spawn(move || {
                let first_lba = LBA + n as u64 * 4096;
                let mut round = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    write_batch_and_read_back(&mut ini, 2, first_lba, 48, (n as u64) << 32 | round);
                    round += 100;
                }
            });
        }
        while starved() == 0.0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(starved() > 0.0, "no receive found the ring empty in 60 s");
    assert_eq!(metric_sum(&addr, "ringtgt_recv_ring_in_use"), 0.0);
}

/// The receive path under every way TCP may cut the stream: batches of writes (immediate data,
/// then unsolicited Data-Out in pieces of odd and even sizes) and pings are sent as one byte
/// stream cut at random places, with short pauses, so that headers, payloads and what follows
/// them arrive in every combination of receives (a payload landing in place, its prefix already
/// received, the next PDUs behind it). Every command must be answered, every write read back
/// exactly, and nothing may be taken for a header that is not one.
#[test]
fn writes_cut_anywhere_on_the_stream_all_land_where_they_belong() {
    use ringtgt::pdu::frame;
    use ringtgt::pdu::nop::NopOut;
    use ringtgt::pdu::scsi::{DataOut, ScsiResponse};
    use ringtgt::pdu::{Opcode, RESERVED_TAG};
    use std::time::Duration;

    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }
    let d = common::daemon(&["--cores", "1"]);
    let keys = [
        ("InitialR2T", "No"),
        ("ImmediateData", "Yes"),
        ("FirstBurstLength", "65536"),
    ];
    let mut ini = common::session(&d, &keys);
    ini.wait_ready(0);
    let (_, bs) = ini.capacity(0);
    let mrdsl = ini.params.target_mrdsl as usize;
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut written = Vec::new();
    for batch in 0..12u64 {
        let mut wire = Vec::new();
        let mut answers = 0;
        for i in 0..16u64 {
            if rng.below(5) == 0 {
                let ping = NopOut {
                    immediate: false,
                    lun: 0,
                    itt: ini.new_itt(),
                    ttt: RESERVED_TAG,
                    cmd_sn: ini.take_cmd_sn(),
                    exp_stat_sn: ini.exp_stat_sn,
                };
                let data = cdb::pattern(batch * 100 + i, rng.below(3000) as usize);
                frame::encode(&mut wire, &ping.encode(), &[], &data, ini.conn.digests);
                answers += 1;
                continue;
            }
            let blocks = [1u64, 8, 16, 40, 128][rng.below(5) as usize];
            let len = (blocks * u64::from(bs)) as usize;
            let lba = LBA * 8 + (batch * 16 + i) * 128;
            let data = cdb::pattern(1000 + batch * 100 + i, len);
            let imm = (rng.below(len as u64 + 1) as usize).min(mrdsl);
            let mut cmd = ini.command_pdu(
                0,
                &cdb::write10(lba as u32, blocks as u16),
                false,
                true,
                len as u32,
            );
            cmd.final_bit = imm == len;
            frame::encode(
                &mut wire,
                &cmd.encode(),
                &[],
                &data[..imm],
                ini.conn.digests,
            );
            let (mut at, mut data_sn) = (imm, 0);
            while at < len {
                let piece = (1 + rng.below(len as u64) as usize)
                    .min(len - at)
                    .min(mrdsl);
                let out = DataOut {
                    final_bit: at + piece == len,
                    lun: cmd.lun,
                    itt: cmd.itt,
                    ttt: RESERVED_TAG,
                    exp_stat_sn: ini.exp_stat_sn,
                    data_sn,
                    buffer_offset: at as u32,
                };
                frame::encode(
                    &mut wire,
                    &out.encode(),
                    &[],
                    &data[at..at + piece],
                    ini.conn.digests,
                );
                at += piece;
                data_sn += 1;
            }
            written.push((lba, data));
            answers += 1;
        }
        let mut at = 0;
        while at < wire.len() {
            let cut = (1 + rng.below(70_000) as usize).min(wire.len() - at);
            ini.conn.send_raw(&wire[at..at + cut]).unwrap();
            at += cut;
            if rng.below(3) == 0 {
                std::thread::sleep(Duration::from_micros(rng.below(2000)));
            }
        }
        for _ in 0..answers {
            let (bhs, _) = ini.recv();
            match bhs.opcode() {
                Opcode::SCSI_RESPONSE => assert_eq!(ScsiResponse::decode(&bhs).status, 0),
                Opcode::NOP_IN => {}
                op => panic!("batch {batch}: unexpected {op:?}"),
            }
        }
    }
    for (lba, data) in &written {
        read_back(&mut ini, *lba, data, bs);
    }
}
