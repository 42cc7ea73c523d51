//! PDU codec micro-benchmarks: BHS decode/encode of the hot PDU families and whole-PDU framing
//! (parse / encode, with and without CRC32C digests). No network, no daemon.

use std::hint::black_box;

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringtgt::pdu::frame::{self, Digests};
use ringtgt::pdu::scsi::{DataIn, DataOut, Residual, ScsiCommand};
use ringtgt::pdu::Bhs;

const NO_DIGESTS: Digests = Digests {
    header: false,
    data: false,
};
const BOTH_DIGESTS: Digests = Digests {
    header: true,
    data: true,
};
const MAX_DATA: usize = 256 * 1024;

/// READ(10) of 8 blocks at LBA 0x1234, as an initiator sends it.
fn read10_command() -> ScsiCommand {
    let mut cdb = [0u8; 16];
    cdb[..10].copy_from_slice(&[0x28, 0, 0, 0, 0x12, 0x34, 0, 0, 8, 0]);
    ScsiCommand {
        immediate: false,
        final_bit: true,
        read: true,
        write: false,
        attr: 1,
        lun: 0,
        itt: 0x1000_0001,
        expected_data_len: 4096,
        cmd_sn: 42,
        exp_stat_sn: 7,
        cdb,
    }
}

fn data_in_with_status() -> DataIn {
    DataIn {
        final_bit: true,
        ack: false,
        status: Some(0),
        residual: Residual::default(),
        lun: 0,
        itt: 0x1000_0001,
        ttt: 0xffff_ffff,
        stat_sn: 8,
        exp_cmd_sn: 43,
        max_cmd_sn: 170,
        data_sn: 0,
        buffer_offset: 0,
    }
}

fn data_out() -> DataOut {
    DataOut {
        final_bit: true,
        lun: 0,
        itt: 0x1000_0002,
        ttt: 0x0000_0010,
        exp_stat_sn: 8,
        data_sn: 0,
        buffer_offset: 0,
    }
}

/// One wire PDU: `bhs` with `data` as its data segment, framed with `digests`.
fn wire(bhs: &Bhs, data: &[u8], digests: Digests) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(&mut out, bhs, &[], data, digests);
    out
}

fn bhs_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("bhs");
    let cmd = read10_command();
    let cmd_bhs = cmd.encode();
    g.bench_function("scsi_command_decode", |b| {
        b.iter(|| ScsiCommand::decode(black_box(&cmd_bhs)))
    });
    g.bench_function("scsi_command_encode", |b| {
        b.iter(|| black_box(&cmd).encode())
    });
    let din = data_in_with_status();
    let din_bhs = din.encode();
    g.bench_function("data_in_encode", |b| b.iter(|| black_box(&din).encode()));
    g.bench_function("data_in_decode", |b| {
        b.iter(|| DataIn::decode(black_box(&din_bhs)))
    });
    let dout_bhs = data_out().encode();
    g.bench_function("data_out_decode", |b| {
        b.iter(|| DataOut::decode(black_box(&dout_bhs)))
    });
    g.bench_function("bhs_from_slice", |b| {
        b.iter(|| Bhs::from_slice(black_box(&cmd_bhs.0[..])))
    });
    g.finish();
}

fn frame_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_parse");
    let cmd_bhs = read10_command().encode();
    for (name, digests) in [("none", NO_DIGESTS), ("crc32c", BOTH_DIGESTS)] {
        let pdu = wire(&cmd_bhs, &[], digests);
        g.throughput(Throughput::Bytes(pdu.len() as u64));
        g.bench_function(format!("scsi_command/{name}"), |b| {
            b.iter(|| frame::parse(black_box(&pdu), digests, MAX_DATA))
        });

        let payload = vec![0x5au8; 4096];
        let pdu = wire(&data_out().encode(), &payload, digests);
        g.throughput(Throughput::Bytes(pdu.len() as u64));
        g.bench_function(format!("data_out_4k/{name}"), |b| {
            b.iter(|| frame::parse(black_box(&pdu), digests, MAX_DATA))
        });

        // A receive buffer holding 32 back-to-back commands (one QD32 burst), parsed in order.
        let one = wire(&cmd_bhs, &[], digests);
        let burst: Vec<u8> = one.iter().copied().cycle().take(one.len() * 32).collect();
        g.throughput(Throughput::Elements(32));
        g.bench_function(format!("burst_32_commands/{name}"), |b| {
            b.iter(|| {
                let mut buf = black_box(&burst[..]);
                let mut n = 0u32;
                while let Ok(Some((f, used))) = frame::parse(buf, digests, MAX_DATA) {
                    n = n.wrapping_add(f.bhs.itt());
                    buf = &buf[used..];
                }
                n
            })
        });
    }
    g.finish();
}

fn frame_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_encode");
    let din_bhs = data_in_with_status().encode();
    let payload = vec![0xa5u8; 4096];
    for (name, digests) in [("none", NO_DIGESTS), ("crc32c", BOTH_DIGESTS)] {
        let mut out = Vec::with_capacity(8192);
        g.throughput(Throughput::Bytes(4096 + 48));
        g.bench_function(format!("data_in_4k/{name}"), |b| {
            b.iter(|| {
                out.clear();
                frame::encode(
                    &mut out,
                    black_box(&din_bhs),
                    &[],
                    black_box(&payload),
                    digests,
                );
                out.len()
            })
        });
        g.throughput(Throughput::Bytes(48));
        g.bench_function(format!("data_in_header_only/{name}"), |b| {
            b.iter(|| {
                out.clear();
                frame::encode_header(&mut out, black_box(&din_bhs), &[], 4096, digests);
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bhs_codec, frame_parse, frame_encode
}
criterion_main!(benches);
