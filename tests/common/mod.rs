//! The integration tests' harness: the real daemon on a free 127.0.0.1 port (`daemon`) and a small
//! blocking iSCSI initiator built on `ringtgt::pdu` (`conn`, `initiator`, `login`, `scsi`), so
//! protocol edge cases can be driven PDU by PDU against the real binary.
//!
//! Each test file includes this module and uses a different part of it.
#![allow(dead_code)]

pub mod admin;
pub mod cdb;
pub mod ceph;
pub mod conn;
pub mod daemon;
pub mod initiator;
pub mod keys;
pub mod login;
pub mod pr;
pub mod scsi;

pub use daemon::Daemon;
pub use initiator::Initiator;

/// The target name every test daemon serves.
pub const TARGET: &str = "iqn.2026-11.io.ringtgt:test";

/// A daemon with a 64 MiB RAM LUN 0 and a 1 GiB null LUN 1, plus `extra` flags.
pub fn daemon(extra: &[&str]) -> Daemon {
    let mut args = vec![
        "--target",
        TARGET,
        "--lun",
        "ram:64MiB",
        "--lun",
        "null:1GiB",
    ];
    args.extend_from_slice(extra);
    Daemon::start(&args)
}

/// A connected initiator logged in to `TARGET` with `keys` on top of the defaults.
pub fn session(d: &Daemon, keys: &[(&str, &str)]) -> Initiator {
    let mut ini = Initiator::connect(d.port());
    ini.login(Some(TARGET), keys);
    ini.clear_unit_attentions();
    ini
}

/// A session of `target` with ISID byte 5 = `who` (so several can coexist), its unit
/// attentions cleared.
pub fn session_to(d: &Daemon, target: &str, who: u8) -> Initiator {
    let mut ini = Initiator::connect(d.port());
    ini.isid[5] = who;
    ini.login(Some(target), &[]);
    ini.clear_unit_attentions();
    ini
}

/// Unit attentions a nexus has pending on `lun` (ASC, ASCQ), taken with TEST UNIT READY until
/// GOOD.
pub fn unit_attentions(ini: &mut Initiator, lun: u16) -> Vec<(u8, u8)> {
    let mut seen = Vec::new();
    for _ in 0..8 {
        let r = ini.test_unit_ready(lun);
        if r.status == cdb::GOOD {
            return seen;
        }
        let s = r.sense().expect("sense");
        assert_eq!(s.key, cdb::UNIT_ATTENTION, "{r:?}");
        seen.push((s.asc, s.ascq));
    }
    panic!("unit attentions without end on LUN {lun}: {seen:?}");
}

/// A session of `TARGET` with ISID byte 5 = `who` (so several can coexist) on a connection
/// placed on reactor `core`; `keys` on top of the defaults.
pub fn session_on_core(d: &Daemon, core: usize, who: u8, keys: &[(&str, &str)]) -> Initiator {
    session_on_core_as(d, core, initiator::INITIATOR_NAME, who, keys)
}

/// [`session_on_core`] with initiator name `name`.
pub fn session_on_core_as(
    d: &Daemon,
    core: usize,
    name: &str,
    who: u8,
    keys: &[(&str, &str)],
) -> Initiator {
    // Each new connection goes to the least-loaded reactor: one placed elsewhere is held open
    // (without logging in) so that the next goes to another reactor, and closed at the end.
    let mut elsewhere = Vec::new();
    for _ in 0..16 {
        let mut ini = Initiator::connect(d.port());
        if d.wait_core_of(ini.conn.local_port()) != core {
            elsewhere.push(ini);
            continue;
        }
        ini.initiator_name = name.to_string();
        ini.isid[5] = who;
        ini.login(Some(TARGET), keys);
        ini.clear_unit_attentions();
        return ini;
    }
    panic!("no connection was placed on core {core} in 16 tries");
}
