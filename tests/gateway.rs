//! Two gateways, one disk (`failover = "rbd-lock"`): two daemons export the same RBD image
//! under one target name, each with its own ALUA port group, and the group of the gateway that
//! holds the image's exclusive lock is the active/optimized one. A write through the other
//! gateway takes the lock over and fences the old owner in the cluster, so that none of the
//! old owner's writes can land afterwards.
#![cfg(feature = "rbd")]

mod common;

use std::time::{Duration, Instant};

use common::ceph::{cluster, Cluster};
use common::daemon::{run, Launch, BIN};
use common::pr::*;
use common::scsi::ScsiResult;
use common::{cdb, Daemon, Initiator, TARGET};

const BS: usize = 512;
const POOL: &str = "rbd";
const AO: u8 = 0x0;
const ANO: u8 = 0x1;
const UNAVAILABLE: u8 = 0x3;
const NOT_READY: u8 = 0x02;
const UNIT_ATTENTION: u8 = 0x06;

/// A gateway of `image`: its own port group `local` (active/optimized = preferred owner) and
/// the other gateway's group `remote`.
fn gateway(c: &Cluster, image: &str, local: u16, remote: u16, preferred: bool) -> Daemon {
    gateway_with(c, image, local, remote, preferred, &Launch::default())
}

fn gateway_with(
    c: &Cluster,
    image: &str,
    local: u16,
    remote: u16,
    preferred: bool,
    launch: &Launch,
) -> Daemon {
    Daemon::start_config_with(
        |port| gateway_config(c, image, port, local, remote, preferred),
        launch,
    )
}

fn gateway_config(
    c: &Cluster,
    image: &str,
    port: u16,
    local: u16,
    remote: u16,
    preferred: bool,
) -> String {
    let state = if preferred {
        "active-optimized"
    } else {
        "active-non-optimized"
    };
    let conf = c.conf_str();
    format!(
        "portals = [\"127.0.0.1:{port}\"]\n\
         [[target]]\nname = \"{TARGET}\"\nfailover = \"rbd-lock\"\n\
         [[target.lun]]\npath = \"rbd:{POOL}/{image}\"\nceph_conf = \"{conf}\"\n\
         serial = \"GW-{image}\"\n\
         [[target.port_group]]\nid = {local}\nportals = [\"127.0.0.1:{port}\"]\nstate = \"{state}\"\n\
         [[target.port_group]]\nid = {remote}\nremote = true\n"
    )
}

/// Gateway A (group 1, preferred owner) and then B (group 2).
fn two_gateways(c: &Cluster, what: &str) -> (String, Daemon, Daemon) {
    let image = c.create_image(POOL, what, 16);
    let a = gateway(c, &image, 1, 2, true);
    let b = gateway(c, &image, 2, 1, false);
    (image, a, b)
}

fn session(d: &Daemon, isid: u8) -> Initiator {
    session_as(d, common::initiator::INITIATOR_NAME, isid)
}

fn session_as(d: &Daemon, name: &str, isid: u8) -> Initiator {
    let mut ini = Initiator::connect(d.port());
    ini.initiator_name = name.to_owned();
    ini.isid[5] = isid;
    ini.login(Some(TARGET), &[]);
    ini.clear_unit_attentions();
    ini
}

/// REPORT TARGET PORT GROUPS: (group id, state), sorted by id; unit attentions (the state
/// changes themselves) are taken and the command repeated.
fn port_groups(ini: &mut Initiator) -> Vec<(u16, u8)> {
    for _ in 0..8 {
        let r = ini.read(0, &[0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], 256);
        if r.sense().is_some_and(|s| s.key == UNIT_ATTENTION) {
            continue;
        }
        r.assert_good();
        let mut groups: Vec<_> = r.data[4..]
            .chunks(12)
            .map(|g| (u16::from_be_bytes([g[2], g[3]]), g[0] & 0x0f))
            .collect();
        groups.sort_unstable();
        return groups;
    }
    panic!("REPORT TARGET PORT GROUPS kept getting unit attentions");
}

fn sense_of(r: &ScsiResult) -> Option<(u8, u8, u8)> {
    r.sense().map(|s| (s.key, s.asc, s.ascq))
}

/// Writes `data` at `lba` the way an initiator does after a path failover: NOT READY,
/// ASYMMETRIC ACCESS STATE TRANSITION and the unit attentions of the state change are
/// retried; anything else fails the test. Returns how many answers were retried.
fn write_retrying(ini: &mut Initiator, lba: u64, data: &[u8], limit: Duration) -> usize {
    let start = Instant::now();
    let mut retried = 0;
    loop {
        let r = ini.write_blocks(0, lba, data, BS as u32);
        if r.status == 0 {
            return retried;
        }
        match sense_of(&r) {
            Some((NOT_READY, 0x04, 0x0a)) | Some((UNIT_ATTENTION, _, _)) => retried += 1,
            other => panic!(
                "write through the new owner: status {} sense {other:?}",
                r.status
            ),
        }
        assert!(
            start.elapsed() < limit,
            "no takeover within {limit:?} ({retried} retries)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_for_groups(ini: &mut Initiator, want: &[(u16, u8)], limit: Duration) {
    let start = Instant::now();
    loop {
        let now = port_groups(ini);
        if now == want {
            return;
        }
        assert!(start.elapsed() < limit, "groups {now:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_write_through_the_follower_takes_over_and_the_old_owner_cannot_write_after_it() {
    let c = cluster();
    let (image, a, b) = two_gateways(c, "gw-fence");
    let mut via_a = session(&a, 1);
    let mut via_b = session(&b, 2);
    let mut idle_b = session(&b, 3);

    // Nothing waits in a gateway's cache, where a killed gateway would lose it: no volatile
    // write cache (caching mode page, WCE = 0), librbd's cache off.
    let r = via_a.read(0, &cdb::mode_sense6(0x08, 255), 255);
    r.assert_good();
    let page = 4 + usize::from(r.data[3]);
    assert_eq!(r.data[page] & 0x3f, 0x08);
    assert_eq!(r.data[page + 2] & 0x04, 0, "WCE");

    // One owner, and both gateways say which.
    assert_eq!(port_groups(&mut via_a), vec![(1, AO), (2, ANO)]);
    assert_eq!(port_groups(&mut via_b), vec![(1, AO), (2, ANO)]);
    let first = cdb::pattern(1, 8 * BS);
    via_a.write_blocks(0, 0, &first, BS as u32).assert_good();
    // The follower reads without the lock, and never from a stale cache: what the owner
    // wrote after the follower's first read is what the follower reads next.
    assert_eq!(via_b.read_blocks(0, 0, 8, BS as u32).data, first);
    let second = cdb::pattern(11, 8 * BS);
    via_a.write_blocks(0, 0, &second, BS as u32).assert_good();
    assert_eq!(via_b.read_blocks(0, 0, 8, BS as u32).data, second);

    // A hangs (as if partitioned) with a write in its socket that it has not read yet.
    a.signal("STOP");
    let stale = cdb::pattern(2, 8 * BS);
    let cmd = via_a.command_pdu(0, &cdb::write16(0, 8), false, true, stale.len() as u32);
    via_a.send_pdu(&cmd.encode(), &[], &stale);

    // The initiator gives up on A's path and writes through B: B takes the lock over.
    let newer = cdb::pattern(3, 8 * BS);
    let retried = write_retrying(&mut via_b, 0, &newer, Duration::from_secs(30));
    assert!(
        retried >= 1,
        "the first write through the follower is retried"
    );
    wait_for_groups(&mut via_b, &[(1, ANO), (2, AO)], Duration::from_secs(5));
    // Every nexus hears of the change (SPC-4 ASYMMETRIC ACCESS STATE CHANGED).
    let r = idle_b.non_data(0, &cdb::test_unit_ready());
    assert_eq!(sense_of(&r), Some((UNIT_ATTENTION, 0x2a, 0x06)));

    // A wakes up and handles the write it had queued: the cluster refuses it.
    a.signal("CONT");
    let r = via_a.collect(cmd.itt);
    assert_ne!(r.status, 0, "the fenced gateway's queued write was refused");
    assert_eq!(
        r.sense().map(|s| s.key),
        Some(NOT_READY),
        "{:?}",
        sense_of(&r)
    );
    // A finds out it lost the lock: its group is unavailable, B's optimized.
    wait_for_groups(
        &mut via_a,
        &[(1, UNAVAILABLE), (2, AO)],
        Duration::from_secs(10),
    );

    // What the cluster holds is B's write, through B and through another client.
    assert_eq!(via_b.read_blocks(0, 0, 8, BS as u32).data, newer);
    assert_eq!(&c.export(POOL, &image)[..8 * BS], &newer[..]);
    assert!(
        a.log().contains("another gateway took the lock over"),
        "A's log says it lost the lock"
    );
}

#[test]
fn a_killed_owner_is_taken_over_and_every_acknowledged_write_is_kept() {
    let c = cluster();
    let (_image, mut a, b) = two_gateways(c, "gw-kill");
    let mut via_a = session(&a, 1);
    let mut via_b = session(&b, 2);

    let acked: Vec<(u64, Vec<u8>)> = (0..16u64)
        .map(|i| {
            let data = cdb::pattern(100 + i, 4 * BS);
            via_a.write_blocks(0, i * 8, &data, BS as u32).assert_good();
            (i * 8, data)
        })
        .collect();
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(10));

    let after = cdb::pattern(999, 4 * BS);
    write_retrying(&mut via_b, 200, &after, Duration::from_secs(60));
    wait_for_groups(&mut via_b, &[(1, ANO), (2, AO)], Duration::from_secs(5));
    for (lba, data) in &acked {
        assert_eq!(
            &via_b.read_blocks(0, *lba, 4, BS as u32).data,
            data,
            "LBA {lba}"
        );
    }
    assert_eq!(via_b.read_blocks(0, 200, 4, BS as u32).data, after);
}

/// Linux flushes every path device of a multipath map (multipath-tools' udev rules run
/// `partx -d` on each): a flush through the follower is answered and takes nothing over. And a
/// flush turns librbd's cache from write-through to its configured policy: a gateway opens its
/// images without the cache, so that what the owner acknowledged is in the cluster when it
/// dies, even where the configuration asks for a write-back cache that would keep it for ten
/// minutes.
#[test]
fn a_follower_answers_a_flush_and_a_killed_owner_had_flushed_nothing_it_acknowledged() {
    let c = cluster();
    let image = c.create_image(POOL, "gw-flush", 16);
    let write_back = Launch {
        wrapper: vec![
            "env".into(),
            "CEPH_ARGS=--rbd_cache_policy=writeback --rbd_cache_max_dirty_age=600".into(),
        ],
        ..Default::default()
    };
    let mut a = gateway_with(c, &image, 1, 2, true, &write_back);
    let b = gateway(c, &image, 2, 1, false);
    let mut via_a = session(&a, 1);
    let mut via_b = session(&b, 2);
    let sync_cache = [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    via_b.non_data(0, &sync_cache).assert_good();
    via_a.non_data(0, &sync_cache).assert_good();
    assert_eq!(port_groups(&mut via_b), vec![(1, AO), (2, ANO)]);
    assert!(!b.log().contains("locks over"), "{}", b.log());

    let data = cdb::pattern(5, 8 * BS);
    via_a.write_blocks(0, 64, &data, BS as u32).assert_good();
    let exported = c.export(POOL, &image);
    assert!(
        exported[64 * BS..72 * BS] == data[..],
        "an acknowledged write is not in the cluster: the owner's librbd caches it"
    );
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(10));
    write_retrying(&mut via_b, 200, &data, Duration::from_secs(60));
    assert_eq!(via_b.read_blocks(0, 64, 8, BS as u32).data, data);
}

#[test]
fn a_gateway_that_stops_hands_its_lock_over_and_a_restarted_one_follows() {
    let c = cluster();
    let (image, mut a, b) = two_gateways(c, "gw-stop");
    let mut via_b = session(&b, 2);
    a.signal("TERM");
    assert_eq!(a.wait_exit(Duration::from_secs(30)), Some(0));

    // The lock was released: B takes it without breaking anyone's.
    let data = cdb::pattern(7, 8 * BS);
    write_retrying(&mut via_b, 0, &data, Duration::from_secs(15));
    assert!(
        !b.log().contains("broke the lock"),
        "no fencing after a clean stop:\n{}",
        b.log()
    );

    // The images whose locks a gateway holds are fixed while it runs.
    let (code, _, err) = b.ctl(&["lun", "remove", "--target", TARGET, "--id", "0"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("keeps the LUNs it started with"), "{err}");
    let (code, _, err) = b.ctl(&["target", "remove", "--force", TARGET]);
    assert_ne!(code, Some(0));
    assert!(err.contains("keeps the LUNs it started with"), "{err}");
    via_b.read_blocks(0, 0, 1, BS as u32).assert_good();
    let (code, _, err) = b.ctl(&["alua", "set", "--target", TARGET, "--group", "2", "standby"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("follow its images' locks"), "{err}");

    // A comes back preferring the lock, finds B holding it and follows.
    let a2 = gateway(c, &image, 1, 2, true);
    let mut via_a2 = session(&a2, 1);
    assert_eq!(port_groups(&mut via_a2), vec![(1, ANO), (2, AO)]);
    assert_eq!(via_a2.read_blocks(0, 0, 8, BS as u32).data, data);
}

#[test]
fn a_reservation_taken_through_one_gateway_is_enforced_by_the_other() {
    let c = cluster();
    let (_image, a, b) = two_gateways(c, "gw-pr");
    let mut host1 = session_as(&a, "iqn.2026-12.test:host1", 1);
    let mut host2 = session_as(&b, "iqn.2026-12.test:host2", 2);

    // host1 registers and reserves (Exclusive Access) through gateway A.
    assert_eq!(prout(&mut host1, REGISTER, 0, 0, 0x1111, false), 0);
    assert_eq!(
        prout(&mut host1, RESERVE, EXCLUSIVE_ACCESS, 0x1111, 0, false),
        0
    );
    // Gateway B knows it as soon as A has answered.
    assert_eq!(
        read_reservation(&mut host2),
        Some((0x1111, EXCLUSIVE_ACCESS))
    );
    assert_eq!(read_keys(&mut host2).1, vec![0x1111]);
    // And enforces it: host2 may neither read nor write, and its write does not move the lock.
    assert_eq!(
        host2.read(0, &cdb::read10(0, 1), 512).status,
        RESERVATION_CONFLICT
    );
    let w = host2.write(0, &cdb::write10(0, 1), &[0x42; 512]);
    assert_eq!(w.status, RESERVATION_CONFLICT, "{:?}", sense_of(&w));
    assert_eq!(port_groups(&mut host2), vec![(1, AO), (2, ANO)]);
    host1
        .write_blocks(0, 0, &[0x11; 512], BS as u32)
        .assert_good();

    // A change through B reaches A the same way.
    assert_eq!(prout(&mut host2, REGISTER, 0, 0, 0x2222, false), 0);
    let (generation, mut keys) = read_keys(&mut host1);
    keys.sort_unstable();
    assert_eq!(keys, vec![0x1111, 0x2222]);
    assert_eq!(generation, 2, "one PRgeneration across gateways");
    // host2 preempts host1 through B: A's holder loses the reservation.
    assert_eq!(
        prout(
            &mut host2,
            PREEMPT_AND_ABORT,
            EXCLUSIVE_ACCESS,
            0x2222,
            0x1111,
            false
        ),
        0
    );
    // SPC-4: the preempted registrant is told, on its own gateway too.
    let r = host1.non_data(0, &cdb::test_unit_ready());
    assert_eq!(sense_of(&r), Some((UNIT_ATTENTION, 0x2a, 0x05)));
    assert_eq!(
        read_reservation(&mut host1),
        Some((0x2222, EXCLUSIVE_ACCESS))
    );
    assert_eq!(
        host1.read(0, &cdb::read10(0, 1), 512).status,
        RESERVATION_CONFLICT
    );
}

#[test]
fn neither_gateway_sanitizes_an_image_whose_state_would_be_one_gateways() {
    let c = cluster();
    let (_image, a, b) = two_gateways(c, "gw-sanitize");
    let mut owner = session(&a, 1);
    let mut follower = session(&b, 2);
    let data = [0x5a; BS];
    owner.write_blocks(0, 0, &data, BS as u32).assert_good();

    const SANITIZE: u8 = 0x48;
    let block_erase = [SANITIZE, 0x02, 0, 0, 0, 0, 0, 0, 0, 0];
    let exit_failure_mode = [SANITIZE, 0x1F, 0, 0, 0, 0, 0, 0, 0, 0];
    // OVERWRITE, one pass of a 4-byte pattern.
    let overwrite = [SANITIZE, 0x01, 0, 0, 0, 0, 0, 0, 8, 0];
    let pattern = [0x01, 0, 0, 4, b'W', b'I', b'P', b'E'];
    for ini in [&mut owner, &mut follower] {
        for cdb in [block_erase, exit_failure_mode] {
            let r = ini.non_data(0, &cdb);
            assert_eq!(sense_of(&r), Some((0x05, 0x20, 0x00)), "{cdb:02x?}");
        }
        let r = ini.write(0, &overwrite, &pattern);
        assert_eq!(sense_of(&r), Some((0x05, 0x20, 0x00)), "OVERWRITE");
        // REPORT SUPPORTED OPERATION CODES agrees: SANITIZE (BLOCK ERASE) is not supported.
        let rsoc = [0xa3, 0x0c, 0x02, SANITIZE, 0, 0x02, 0, 0, 1, 0, 0, 0];
        let r = ini.read(0, &rsoc, 256);
        r.assert_good();
        assert_eq!(r.data[1] & 0x07, 0b001, "SUPPORT: not supported");
        // Nor does the Block Device Characteristics page say what reads after one return.
        let r = ini.read(0, &[0x12, 0x01, 0xb1, 0, 64, 0], 64);
        r.assert_good();
        assert_eq!(r.data[7] & 0xc0, 0, "WABEREQ not specified");
    }
    // Nothing was erased, and the follower's refusals did not move the locks.
    let r = follower.read(0, &cdb::read10(0, 1), BS as u32);
    r.assert_good();
    assert_eq!(r.data, data);
    assert_eq!(port_groups(&mut follower), vec![(1, AO), (2, ANO)]);
}

/// A reload does not add or remove a gateway target's LUNs or port groups (its failover
/// thread and shared reservations were set up for the ones it started with): it says they
/// need a restart and serves on as before.
#[test]
fn a_reload_leaves_a_gateway_targets_luns_to_a_restart() {
    let c = cluster();
    let image = c.create_image(POOL, "gw-reload", 16);
    let other = c.create_image(POOL, "gw-reload-2", 16);
    let a = gateway(c, &image, 1, 2, true);
    let mut ini = session(&a, 1);
    let conf = a.dir().join("ringtgt.toml");
    let running = std::fs::read_to_string(&conf).unwrap();
    let with_two = running.replacen(
        "[[target.port_group]]",
        &format!(
            "[[target.lun]]\npath = \"rbd:{POOL}/{other}\"\nceph_conf = \"{}\"\n\
             serial = \"GW-{other}\"\n[[target.port_group]]",
            c.conf_str()
        ),
        1,
    );
    assert_ne!(with_two, running);
    std::fs::write(&conf, &with_two).unwrap();
    let out = a.ctl_ok(&["reload"]);
    assert!(out.contains("needs a restart"), "{out}");
    assert!(out.contains("rbd-lock"), "{out}");
    let luns = a.ctl_json(&["luns"]);
    assert_eq!(luns.as_array().map(Vec::len), Some(1), "{luns}");
    ini.write_blocks(0, 0, &[0x42; BS], BS as u32).assert_good();
    assert_eq!(port_groups(&mut ini), vec![(1, AO), (2, ANO)]);
}

#[test]
fn a_gateway_refuses_to_start_on_an_image_without_the_exclusive_lock() {
    let c = cluster();
    let image = format!("gw-nolock-{}", std::process::id());
    let spec = format!("{POOL}/{image}");
    c.cli(
        "rbd",
        &[
            "create",
            "--size",
            "16M",
            "--image-feature",
            "layering",
            &spec,
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ringtgt.toml");
    let port = common::daemon::free_port();
    std::fs::write(&cfg, gateway_config(c, &image, port, 1, 2, true)).unwrap();
    let (code, out, err) = run(
        BIN,
        &["serve", "--config", cfg.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("has no exclusive-lock feature"),
        "the reason is given:\n{out}{err}"
    );
}
