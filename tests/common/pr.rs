//! PERSISTENT RESERVE OUT/IN as the tests send them (SPC-4 §6.15, §6.16).

use super::Initiator;

pub const RESERVATION_CONFLICT: u8 = 0x18;
pub const WRITE_EXCLUSIVE: u8 = 0x1;
pub const EXCLUSIVE_ACCESS: u8 = 0x3;

/// PERSISTENT RESERVE OUT service actions.
pub const REGISTER: u8 = 0x00;
pub const RESERVE: u8 = 0x01;
pub const RELEASE: u8 = 0x02;
pub const PREEMPT_AND_ABORT: u8 = 0x05;

pub fn prout_cdb(action: u8, kind: u8) -> Vec<u8> {
    vec![0x5f, action, kind, 0, 0, 0, 0, 0, 24, 0]
}

/// The basic 24-byte PERSISTENT RESERVE OUT parameter list.
pub fn prout_params(key: u64, action_key: u64, aptpl: bool) -> Vec<u8> {
    let mut p = vec![0u8; 24];
    p[..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&action_key.to_be_bytes());
    p[20] = u8::from(aptpl);
    p
}

/// PERSISTENT RESERVE OUT; its status.
pub fn prout(
    ini: &mut Initiator,
    action: u8,
    kind: u8,
    key: u64,
    action_key: u64,
    aptpl: bool,
) -> u8 {
    let r = ini.write(
        0,
        &prout_cdb(action, kind),
        &prout_params(key, action_key, aptpl),
    );
    assert_eq!(r.response, 0, "{r:?}");
    r.status
}

/// READ RESERVATION: (key, type) of the reservation, if one exists.
pub fn read_reservation(ini: &mut Initiator) -> Option<(u64, u8)> {
    let r = ini.read(0, &[0x5e, 0x01, 0, 0, 0, 0, 0, 0, 64, 0], 64);
    r.assert_good();
    let len = u32::from_be_bytes(r.data[4..8].try_into().unwrap());
    (len >= 16).then(|| {
        (
            u64::from_be_bytes(r.data[8..16].try_into().unwrap()),
            r.data[21] & 0x0f,
        )
    })
}

/// READ KEYS: PRgeneration and the registered keys.
pub fn read_keys(ini: &mut Initiator) -> (u32, Vec<u64>) {
    let r = ini.read(0, &[0x5e, 0x00, 0, 0, 0, 0, 0, 0x10, 0, 0], 4096);
    r.assert_good();
    let generation = u32::from_be_bytes(r.data[0..4].try_into().unwrap());
    let len = u32::from_be_bytes(r.data[4..8].try_into().unwrap()) as usize;
    let keys = r.data[8..8 + len]
        .chunks(8)
        .map(|k| u64::from_be_bytes(k.try_into().unwrap()))
        .collect();
    (generation, keys)
}
