//! Settings shared by every micro-benchmark: short runs, so `cargo bench` stays around a minute.

use std::time::Duration;

use criterion::Criterion;
use ringtgt::scsi::LuInfo;

pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1000))
        .sample_size(30)
}

/// A read-write 1 GiB disk of 512-byte blocks at LUN 0 of `target`, as the daemon builds it.
#[allow(dead_code)] // not every bench needs a logical unit
pub fn disk_lu(target: &str) -> LuInfo {
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
        target_name: target.into(),
        max_transfer_blocks: 2048,
        optimal_transfer_blocks: 128,
        shared: Default::default(),
        removable: false,
        geometry: Default::default(),
        store_compare_and_write: false,
        sanitize_rate: None,
        reads_zeros: false,
        sanitizable: true,
    }
}
