//! COMPARE AND WRITE (VMware ATS) is atomic across sessions on different cores: two initiators
//! increment one counter block with read + COMPARE AND WRITE, retrying on MISCOMPARE, and no
//! increment is lost; and plain WRITEs from a third session that cover the same block never land
//! between a COMPARE AND WRITE's compare and its write.

mod common;

use std::collections::HashMap;
use std::thread;

use common::{cdb, Initiator};

const ROUNDS: u64 = 400;
const BS: usize = 512;
const KEYS: &[(&str, &str)] = &[("ImmediateData", "Yes"), ("InitialR2T", "No")];

fn caw16(lba: u64, blocks: u8) -> Vec<u8> {
    let mut c = vec![0u8; 16];
    c[0] = 0x89;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[13] = blocks;
    c
}

fn counter_block(value: u64, who: u8) -> Vec<u8> {
    let mut b = vec![who; BS];
    b[..8].copy_from_slice(&value.to_le_bytes());
    b
}

/// Increments the counter in block 0 `ROUNDS` times; returns how many MISCOMPAREs it took.
fn increment(mut ini: Initiator) -> u64 {
    let mut miscompares = 0;
    let mut done = 0;
    while done < ROUNDS {
        let old = ini.read(0, &cdb::read10(0, 1), BS as u32);
        old.assert_good();
        let value = u64::from_le_bytes(old.data[..8].try_into().unwrap());
        let mut data = old.data.clone();
        data.extend_from_slice(&counter_block(value + 1, ini.isid[5]));
        let r = ini.write(0, &caw16(0, 1), &data);
        if r.status == 0 {
            done += 1;
        } else {
            // Another initiator got there between the read and the compare.
            r.assert_sense(0x0e, 0x1d);
            miscompares += 1;
        }
    }
    miscompares
}

#[test]
fn concurrent_compare_and_write_from_two_cores_loses_no_increment() {
    let d = common::daemon(&["--cores", "2"]);
    let mut setup = common::session(&d, &[]);
    setup
        .write(0, &cdb::write10(0, 1), &counter_block(0, 0))
        .assert_good();
    let (a, b) = (
        common::session_on_core(&d, 0, 0x11, KEYS),
        common::session_on_core(&d, 1, 0x12, KEYS),
    );
    let miscompares: u64 = thread::scope(|s| {
        let a = s.spawn(|| increment(a));
        let b = s.spawn(|| increment(b));
        a.join().unwrap() + b.join().unwrap()
    });
    let r = setup.read(0, &cdb::read10(0, 1), BS as u32);
    r.assert_good();
    let value = u64::from_le_bytes(r.data[..8].try_into().unwrap());
    assert_eq!(value, 2 * ROUNDS, "{miscompares} miscompares along the way");
}

/// Block 0 whose first 8 bytes name the write that produced it.
fn tagged_block(tag: u64) -> Vec<u8> {
    counter_block(tag, (tag >> 56) as u8)
}

fn tag_of(block: &[u8]) -> u64 {
    u64::from_le_bytes(block[..8].try_into().unwrap())
}

/// Replaces block 0 by a new tagged block with COMPARE AND WRITE `ROUNDS` times; returns
/// (new tag → the tag it compared against) for each success.
fn swap_tags(mut ini: Initiator, writer: u64) -> HashMap<u64, u64> {
    let mut swaps = HashMap::new();
    for seq in 1..=ROUNDS {
        let old = ini.read(0, &cdb::read10(0, 1), BS as u32);
        old.assert_good();
        let new = writer << 56 | seq;
        let mut data = old.data.clone();
        data.extend_from_slice(&tagged_block(new));
        let r = ini.write(0, &caw16(0, 1), &data);
        if r.status == 0 {
            swaps.insert(new, tag_of(&old.data));
        } else {
            r.assert_sense(0x0e, 0x1d);
        }
    }
    swaps
}

/// Writes blocks 0..8 with plain WRITE(10), block 0 tagged, and reads block 0 back after each;
/// returns (tag written, tag read back).
fn plain_writes(mut ini: Initiator, writer: u64) -> Vec<(u64, u64)> {
    (1..=ROUNDS)
        .map(|seq| {
            let tag = writer << 56 | seq;
            let mut data = tagged_block(tag);
            data.resize(8 * BS, 0x5a);
            ini.write(0, &cdb::write10(0, 8), &data).assert_good();
            let back = ini.read(0, &cdb::read10(0, 1), BS as u32);
            back.assert_good();
            (tag, tag_of(&back.data))
        })
        .collect()
}

#[test]
fn plain_writes_never_land_inside_a_compare_and_write_on_another_core() {
    let d = common::daemon(&["--cores", "2"]);
    let mut setup = common::session(&d, &[]);
    setup
        .write(0, &cdb::write10(0, 1), &tagged_block(0))
        .assert_good();
    let caw0 = common::session_on_core(&d, 0, 0x21, KEYS);
    let caw1 = common::session_on_core(&d, 1, 0x22, KEYS);
    let plain = common::session_on_core(&d, 1, 0x23, KEYS);
    let (swaps, writes) = thread::scope(|s| {
        let a = s.spawn(|| swap_tags(caw0, 1));
        let b = s.spawn(|| swap_tags(caw1, 2));
        let p = s.spawn(|| plain_writes(plain, 3));
        let mut swaps = a.join().unwrap();
        swaps.extend(b.join().unwrap());
        (swaps, p.join().unwrap())
    });
    // After plain write P is acknowledged, block 0 holds P or what successful COMPARE AND
    // WRITEs made of it, one after the other. A plain write that landed between a compare and
    // its write was overwritten by a swap that never compared against it: following the
    // swaps back from what was read then misses P.
    for (written, read) in writes {
        let mut tag = read;
        let mut steps = 0;
        while tag != written {
            tag = *swaps.get(&tag).unwrap_or_else(|| {
                panic!("plain write {written:#x} was lost: read {read:#x} does not derive from it")
            });
            steps += 1;
            assert!(steps <= 2 * ROUNDS, "swap chain loops");
        }
    }
}
