//! CRC32C digest throughput (RFC 7143 header and data digests) on a header-sized, a typical
//! data-segment-sized and a maximum-burst-sized buffer.

use std::hint::black_box;

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringtgt::pdu::digest::crc32c;

fn crc(c: &mut Criterion) {
    let mut g = c.benchmark_group("crc32c");
    for (name, len) in [("48B", 48usize), ("8KiB", 8 * 1024), ("256KiB", 256 * 1024)] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(name, |b| b.iter(|| crc32c(black_box(&data))));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = crc
}
criterion_main!(benches);
