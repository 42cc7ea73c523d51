//! Shared fixtures, and tests that drive the public API end to end.

mod copy;
pub(crate) mod disk;
mod dispatch;
mod fuzz;
mod jobs;
mod libiscsi;
mod libiscsi_media;
mod libiscsi_sbc;
mod pr;
mod unit_attention;

use super::{
    Completion, InitiatorPort, ItNexus, LuContext, LuInfo, LunMap, NexusState, ParamsOutcome, Plan,
    ScsiStatus, Sense,
};

/// An I_T nexus of initiator `name` (ISID 1) through relative target port 1.
pub(crate) fn it_nexus(name: &str) -> ItNexus {
    ItNexus {
        initiator: InitiatorPort::new(name, [0x40, 0, 0, 0, 0, 1]),
        relative_port: 1,
    }
}

/// `scsi::dispatch` from an I_T nexus of a unit nothing is reserved or registered on.
pub(crate) fn dispatch(luns: &LunMap, nexus: &mut NexusState, lun_raw: u64, cdb: &[u8]) -> Plan {
    let it = it_nexus("iqn.2024-01.org.example:host");
    let unit = LuContext {
        pr: &super::pr::IDLE,
        it_nexus: &it,
        port_groups: &super::alua::PortGroups::single(1),
    };
    super::dispatch(luns, nexus, unit, lun_raw, cdb)
}

/// `scsi::execute_params` of a command that completes without shared state (MODE SELECT).
pub(crate) fn execute_params(
    luns: &LunMap,
    nexus: &mut NexusState,
    lun_raw: u64,
    cdb: &[u8],
    params: &[u8],
) -> Completion {
    match super::execute_params(luns, nexus, lun_raw, cdb, params) {
        ParamsOutcome::Done(c) => c,
        ParamsOutcome::Shared(op) => panic!("unexpected shared operation {op:?}"),
    }
}

/// A read-write 1 MiB disk (2048 x 512) at `lun`.
pub(crate) fn lu(lun: u16) -> LuInfo {
    LuInfo {
        lun,
        block_size: 512,
        num_blocks: 2048,
        read_only: false,
        write_cache: true,
        non_rotational: true,
        serial: format!("SN{lun:06}"),
        vendor: "RINGTGT".into(),
        product: "VIRTUAL-DISK".into(),
        revision: "0001".into(),
        naa_id: [
            0x60, 0x01, 0x40, 0x50, 0x00, 0x00, 0x00, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
            0x77, 0x88,
        ],
        target_name: "iqn.2024-01.org.ringtgt:disk".into(),
        max_transfer_blocks: 1024,
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

pub(crate) fn lu_with(f: impl FnOnce(&mut LuInfo)) -> LuInfo {
    let mut u = lu(0);
    f(&mut u);
    u
}

/// The Data-In of a GOOD completion; panics (failing the test) on anything else.
pub(crate) fn ok_data(r: Result<Plan, Sense>) -> Vec<u8> {
    match r {
        Ok(Plan::Complete(Completion {
            status: ScsiStatus::GOOD,
            data,
            sense,
        })) => {
            assert!(sense.is_empty());
            data
        }
        other => panic!("expected GOOD with data, got {other:?}"),
    }
}

pub(crate) fn cdb6(op: u8, lba: u32, len: u8) -> [u8; 6] {
    let l = lba.to_be_bytes();
    [op, l[1] & 0x1F, l[2], l[3], len, 0]
}

pub(crate) fn cdb10(op: u8, flags: u8, lba: u32, len: u16) -> [u8; 10] {
    let (l, n) = (lba.to_be_bytes(), len.to_be_bytes());
    [op, flags, l[0], l[1], l[2], l[3], 0, n[0], n[1], 0]
}

pub(crate) fn cdb12(op: u8, flags: u8, lba: u32, len: u32) -> [u8; 12] {
    let (l, n) = (lba.to_be_bytes(), len.to_be_bytes());
    [
        op, flags, l[0], l[1], l[2], l[3], n[0], n[1], n[2], n[3], 0, 0,
    ]
}

pub(crate) fn cdb16(op: u8, flags: u8, lba: u64, len: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op;
    c[1] = flags;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&len.to_be_bytes());
    c
}
