//! SCSI CDB dispatch: the per-command decision (`ringtgt::scsi::dispatch`) for the commands on the
//! hot path (READ 10/16, WRITE 10/16) and the common small ones (INQUIRY, TEST UNIT READY).

use std::hint::black_box;

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use ringtgt::scsi::{
    dispatch, encode_lun, pr, InitiatorPort, ItNexus, LuContext, LuInfo, LunMap, NexusState, Plan,
};

/// A read-write 1 GiB disk of 512-byte blocks at LUN 0, as the daemon builds it.
fn lu() -> LuInfo {
    LuInfo {
        lun: 0,
        block_size: 512,
        num_blocks: 2 * 1024 * 1024,
        read_only: false,
        write_cache: true,
        non_rotational: true,
        serial: "0123456789abcdef".into(),
        vendor: "RINGTGT".into(),
        product: "VIRTUAL-DISK".into(),
        revision: "0001".into(),
        naa_id: [
            0x60, 0x01, 0x40, 0x50, 0x00, 0x00, 0x00, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
            0x77, 0x88,
        ],
        target_name: "iqn.2026-11.io.ringtgt:bench".into(),
        max_transfer_blocks: 2048,
        optimal_transfer_blocks: 128,
        shared: Default::default(),
        removable: false,
        geometry: Default::default(),
        store_compare_and_write: false,
    }
}

fn cdb_dispatch(c: &mut Criterion) {
    let luns = LunMap::new(vec![lu()]);
    let lun_raw = encode_lun(0);
    let cases: [(&str, &[u8]); 6] = [
        ("read10_4k", &[0x28, 0, 0, 0, 0x12, 0x34, 0, 0, 8, 0]),
        ("write10_4k", &[0x2a, 0, 0, 0, 0x12, 0x34, 0, 0, 8, 0]),
        (
            "read16_4k",
            &[0x88, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 8, 0, 0],
        ),
        (
            "write16_4k",
            &[0x8a, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 8, 0, 0],
        ),
        ("inquiry_standard", &[0x12, 0, 0, 0, 96, 0]),
        ("test_unit_ready", &[0x00, 0, 0, 0, 0, 0]),
    ];
    let it_nexus = ItNexus {
        initiator: InitiatorPort::new("iqn.2026-11.io.ringtgt:bench-host", [0x40, 0, 0, 0, 0, 1]),
        relative_port: 1,
    };
    // The common case: nothing reserved, so the reservation check is one snapshot read.
    let unit = LuContext {
        pr: &pr::IDLE,
        it_nexus: &it_nexus,
        port_groups: &ringtgt::scsi::alua::PortGroups::single(1),
    };
    let mut g = c.benchmark_group("dispatch");
    for (name, cdb) in cases {
        let mut nexus = NexusState::new();
        // The command must take its normal path, not an error path.
        let plan = dispatch(&luns, &mut nexus, unit, lun_raw, cdb);
        assert!(
            match &plan {
                Plan::Complete(done) => done.sense.is_empty(),
                _ => true,
            },
            "{name}: unexpected {plan:?}"
        );
        g.bench_function(name, |b| {
            b.iter(|| dispatch(black_box(&luns), &mut nexus, unit, lun_raw, black_box(cdb)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = cdb_dispatch
}
criterion_main!(benches);
