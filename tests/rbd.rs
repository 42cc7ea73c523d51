//! Ceph RBD logical units against a real cluster (`tests/common/ceph.rs`: the one scripts/test.sh
//! brought up, or one this process brings up): the daemon serves `rbd:POOL/IMAGE` with librbd,
//! and another client of the cluster (the `rbd` CLI) sees what the initiator wrote.
#![cfg(feature = "rbd")]

mod common;

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use common::ceph::{cluster, Cluster};
use common::daemon::{run, Launch, BIN};
use common::{cdb, Daemon, Initiator, TARGET};

const BS: usize = 512;
const POOL: &str = "rbd";
/// Blocks in one 4 MiB RADOS object of an image (the default object size).
const OBJECT_BLOCKS: u64 = (4 << 20) / BS as u64;

fn write16(lba: u64, blocks: u32, fua: bool) -> Vec<u8> {
    let mut c = cdb::write16(lba, blocks);
    if fua {
        c[1] |= 0x08;
    }
    c
}

fn sync_cache10() -> Vec<u8> {
    vec![0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]
}

fn sync_cache16() -> Vec<u8> {
    vec![0x91, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
}

/// UNMAP with one block descriptor per `(lba, blocks)` (SBC-3 §5.28).
fn unmap(ini: &mut Initiator, lun: u16, ranges: &[(u64, u32)]) -> common::scsi::ScsiResult {
    let mut params = vec![0u8; 8];
    for &(lba, blocks) in ranges {
        params.extend_from_slice(&lba.to_be_bytes());
        params.extend_from_slice(&blocks.to_be_bytes());
        params.extend_from_slice(&[0; 4]);
    }
    let len = params.len() as u16;
    params[0..2].copy_from_slice(&(len - 2).to_be_bytes());
    params[2..4].copy_from_slice(&(len - 8).to_be_bytes());
    let mut c = vec![0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    c[7..9].copy_from_slice(&len.to_be_bytes());
    ini.write(lun, &c, &params)
}

/// WRITE SAME(16) with the UNMAP bit.
fn write_same16_unmap(lba: u64, blocks: u32) -> Vec<u8> {
    let mut c = vec![0u8; 16];
    c[0] = 0x93;
    c[1] = 0x08;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn caw16(lba: u64, blocks: u8) -> Vec<u8> {
    let mut c = vec![0u8; 16];
    c[0] = 0x89;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[13] = blocks;
    c
}

/// The daemon with LUN 0 = `rbd:POOL/image` (client.admin found through $CEPH_CONF) and LUN 1 =
/// a RAM disk; `env` adds variables (CEPH_ARGS).
fn rbd_daemon(c: &Cluster, pool: &str, image: &str, env: &[&str], extra: &[&str]) -> Daemon {
    let mut wrapper = vec!["env".to_string(), format!("CEPH_CONF={}", c.conf_str())];
    wrapper.extend(env.iter().map(|s| s.to_string()));
    let launch = Launch {
        wrapper,
        ..Default::default()
    };
    let spec = format!("rbd:{pool}/{image}");
    let mut args = vec!["--target", TARGET, "--lun", &spec, "--lun", "ram:16MiB"];
    args.extend_from_slice(extra);
    Daemon::start_with(&args, &launch)
}

fn at(image: &[u8], lba: u64, blocks: usize) -> &[u8] {
    let start = lba as usize * BS;
    &image[start..start + blocks * BS]
}

#[test]
fn rbd_lun_serves_the_images_capacity_and_keeps_its_data_in_the_cluster() {
    let c = cluster();
    // 72 MiB: 18 objects, not a power of two.
    let image = c.create_image(POOL, "data", 72);
    let d = rbd_daemon(c, POOL, &image, &[], &[]);
    let mut ini = common::session(&d, &[]);

    assert_eq!(ini.capacity(0), ((72 << 20) / BS as u64, BS as u32));
    let r = ini.read(0, &cdb::read_capacity10(), 8);
    r.assert_good();
    assert_eq!(
        cdb::parse_capacity10(&r.data),
        (((72 << 20) / BS) as u32 - 1, BS as u32)
    );

    let last = (72 << 20) / BS as u64;
    let writes: Vec<(u64, Vec<u8>)> = vec![
        (0, cdb::pattern(1, 8 * BS)),
        // Across the boundary between the first two objects.
        (OBJECT_BLOCKS - 3, cdb::pattern(2, 6 * BS)),
        // 1 MiB in one command.
        (3 * OBJECT_BLOCKS + 17, cdb::pattern(3, 1 << 20)),
        (last - 4, cdb::pattern(4, 4 * BS)),
    ];
    for (lba, data) in &writes {
        ini.write_blocks(0, *lba, data, BS as u32).assert_good();
    }
    for (lba, data) in &writes {
        let blocks = (data.len() / BS) as u32;
        let r = ini.read_blocks(0, *lba, blocks, BS as u32);
        r.assert_good();
        assert!(r.data == *data, "read back at LBA {lba} differs");
    }
    // Never written: the image reads zeros there.
    let r = ini.read_blocks(0, 2 * OBJECT_BLOCKS, 8, BS as u32);
    r.assert_good();
    assert!(r.data.iter().all(|&b| b == 0));

    ini.non_data(0, &sync_cache10()).assert_good();
    let exported = c.export(POOL, &image);
    assert_eq!(exported.len(), 72 << 20);
    for (lba, data) in &writes {
        assert!(
            at(&exported, *lba, data.len() / BS) == &data[..],
            "the cluster's copy differs at LBA {lba}"
        );
    }
    // The RAM LUN beside it still works as before.
    ini.write_blocks(1, 5, &cdb::pattern(9, BS), BS as u32)
        .assert_good();
    ini.logout();
}

#[test]
fn fua_and_synchronize_cache_flush_the_gateways_cache_into_the_cluster() {
    let c = cluster();
    let image = c.create_image(POOL, "fua", 16);
    // A cephx user of its own, named with ceph_user and found through keyring.
    let user = format!("ringtgt-test-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("user.keyring");
    c.cli(
        "ceph",
        &[
            "auth",
            "get-or-create",
            &format!("client.{user}"),
            "mon",
            "profile rbd",
            "osd",
            &format!("profile rbd pool={POOL}"),
            "-o",
            keyring.to_str().unwrap(),
        ],
    );
    let conf = c.conf_str().to_owned();
    let keyring_s = keyring.to_str().unwrap().to_owned();
    // In librbd's write-back cache, dirty data would stay for 10 minutes: only a flush makes it
    // reach the OSDs within this test. (The default policy, write-around, sends writes to the
    // OSDs at once but acknowledges them before the OSDs do: the same contract, less visible.)
    let launch = Launch {
        wrapper: vec![
            "env".into(),
            "CEPH_ARGS=--rbd_cache_policy=writeback --rbd_cache_max_dirty_age=600".into(),
        ],
        ..Default::default()
    };
    let d = Daemon::start_config_with(
        |port| {
            format!(
                "portals = [\"127.0.0.1:{port}\"]\n[[target]]\nname = \"{TARGET}\"\n\
                 [[target.lun]]\npath = \"rbd:{POOL}/{image}\"\nceph_conf = \"{conf}\"\n\
                 ceph_user = \"{user}\"\nkeyring = \"{keyring_s}\"\n"
            )
        },
        &launch,
    );
    let mut ini = common::session(&d, &[]);

    // The first flush turns librbd's cache from write-through to write-back.
    ini.non_data(0, &sync_cache10()).assert_good();
    let (a, b, cc) = (
        cdb::pattern(11, 2 * BS),
        cdb::pattern(12, 2 * BS),
        cdb::pattern(13, 2 * BS),
    );
    ini.write(0, &write16(100, 2, false), &a).assert_good();
    assert!(
        at(&c.export(POOL, &image), 100, 2) != &a[..],
        "a plain write reached the OSDs at once: the cache is not in write-back, the test proves nothing"
    );
    // FUA: durable in the cluster before GOOD (and the earlier write with it).
    ini.write(0, &write16(200, 2, true), &b).assert_good();
    let exported = c.export(POOL, &image);
    assert!(
        at(&exported, 200, 2) == &b[..],
        "FUA write not in the cluster"
    );
    assert!(at(&exported, 100, 2) == &a[..]);

    ini.write(0, &write16(300, 2, false), &cc).assert_good();
    assert!(at(&c.export(POOL, &image), 300, 2) != &cc[..]);
    ini.non_data(0, &sync_cache16()).assert_good();
    assert!(
        at(&c.export(POOL, &image), 300, 2) == &cc[..],
        "SYNCHRONIZE CACHE(16) left the write in the gateway"
    );
    ini.logout();
    c.cli("ceph", &["auth", "del", &format!("client.{user}")]);
}

#[test]
fn unmap_and_write_same_with_unmap_read_back_zeros_and_free_whole_objects() {
    let c = cluster();
    let image = c.create_image(POOL, "unmap", 16);
    let d = rbd_daemon(c, POOL, &image, &[], &[]);
    let mut ini = common::session(&d, &[]);

    let head = cdb::pattern(21, 64 * BS);
    let across = cdb::pattern(22, 16 * BS);
    let object = cdb::pattern(23, 4 << 20);
    ini.write_blocks(0, 0, &head, BS as u32).assert_good();
    ini.write_blocks(0, OBJECT_BLOCKS - 8, &across, BS as u32)
        .assert_good();
    ini.write_blocks(0, 2 * OBJECT_BLOCKS, &object, BS as u32)
        .assert_good();

    // Unaligned ranges, one across two objects, and one whole object.
    unmap(
        &mut ini,
        0,
        &[
            (3, 5),
            (OBJECT_BLOCKS - 2, 7),
            (2 * OBJECT_BLOCKS, OBJECT_BLOCKS as u32),
        ],
    )
    .assert_good();
    ini.write(0, &write_same16_unmap(20, 10), &[0u8; BS])
        .assert_good();

    let mut want = head.clone();
    want[3 * BS..8 * BS].fill(0);
    want[20 * BS..30 * BS].fill(0);
    let r = ini.read_blocks(0, 0, 64, BS as u32);
    r.assert_good();
    assert!(
        r.data == want,
        "unmapped blocks at the start do not read zeros"
    );
    let mut want = across.clone();
    want[6 * BS..13 * BS].fill(0);
    let r = ini.read_blocks(0, OBJECT_BLOCKS - 8, 16, BS as u32);
    r.assert_good();
    assert!(
        r.data == want,
        "unmapped blocks across objects do not read zeros"
    );
    let r = ini.read_blocks(0, 2 * OBJECT_BLOCKS, 2048, BS as u32);
    r.assert_good();
    assert!(r.data.iter().all(|&b| b == 0));

    // The whole object was deallocated, not written with zeros.
    ini.non_data(0, &sync_cache10()).assert_good();
    let diff = c.cli(
        "rbd",
        &["diff", "--whole-object", &format!("{POOL}/{image}")],
    );
    let allocated: Vec<u64> = diff
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        !allocated.contains(&(2 * (4 << 20))),
        "object 2 is still allocated after UNMAP of all of it:\n{diff}"
    );
    assert!(allocated.contains(&0), "object 0 should hold data:\n{diff}");
    ini.logout();
}

#[test]
fn compare_and_write_on_an_rbd_lun_writes_on_match_and_miscompares_otherwise() {
    let c = cluster();
    let image = c.create_image(POOL, "caw", 16);
    let d = rbd_daemon(c, POOL, &image, &[], &[]);
    let mut ini = common::session(&d, &[]);

    let old = cdb::pattern(31, BS);
    let new = cdb::pattern(32, BS);
    ini.write_blocks(0, 7, &old, BS as u32).assert_good();
    let mut wrong = old.clone();
    wrong[100] ^= 0xff;
    let r = ini.write(0, &caw16(7, 1), &[wrong, new.clone()].concat());
    r.assert_sense(0x0e, 0x1d);
    // Fixed sense INFORMATION: the offset of the first differing byte.
    assert_eq!(r.sense[0] & 0x7f, 0x70, "fixed format");
    assert_eq!(u32::from_be_bytes(r.sense[3..7].try_into().unwrap()), 100);
    let r = ini.read_blocks(0, 7, 1, BS as u32);
    r.assert_good();
    assert!(r.data == old, "a miscompare changed the block");

    ini.write(0, &caw16(7, 1), &[old, new.clone()].concat())
        .assert_good();
    ini.non_data(0, &sync_cache10()).assert_good();
    assert!(at(&c.export(POOL, &image), 7, 1) == &new[..]);
    ini.logout();
}

/// Increments the counter in block 0 `rounds` times with read + COMPARE AND WRITE.
fn increment(mut ini: Initiator, rounds: u64) {
    let mut done = 0;
    while done < rounds {
        let old = ini.read(0, &cdb::read10(0, 1), BS as u32);
        old.assert_good();
        let value = u64::from_le_bytes(old.data[..8].try_into().unwrap());
        let mut next = vec![ini.isid[5]; BS];
        next[..8].copy_from_slice(&(value + 1).to_le_bytes());
        let r = ini.write(0, &caw16(0, 1), &[old.data.clone(), next].concat());
        if r.status == 0 {
            done += 1;
        } else {
            r.assert_sense(0x0e, 0x1d);
        }
    }
}

/// Zeroes the counter through `setup`, has `a` and `b` increment it `rounds` times each at
/// the same time, and checks through `setup` that no increment was lost.
fn race_increments(setup: &mut Initiator, a: Initiator, b: Initiator, rounds: u64) {
    setup
        .write(0, &cdb::write10(0, 1), &vec![0u8; BS])
        .assert_good();
    setup.non_data(0, &sync_cache10()).assert_good();
    thread::scope(|s| {
        s.spawn(|| increment(a, rounds));
        s.spawn(|| increment(b, rounds));
    });
    let r = setup.read(0, &cdb::read10(0, 1), BS as u32);
    r.assert_good();
    assert_eq!(
        u64::from_le_bytes(r.data[..8].try_into().unwrap()),
        2 * rounds,
        "an increment was lost"
    );
}

#[test]
fn both_cores_share_one_image_handle_and_compare_and_write_stays_atomic() {
    const ROUNDS: u64 = 60;
    let c = cluster();
    let image = c.create_image(POOL, "cores", 16);
    let d = rbd_daemon(c, POOL, &image, &[], &["--cores", "2"]);
    let mut setup = common::session(&d, &[]);
    let a = common::session_on_core(&d, 0, 0x21, &[]);
    let b = common::session_on_core(&d, 1, 0x22, &[]);
    race_increments(&mut setup, a, b, ROUNDS);
    // Both reactors wrote through one handle: the image has one watcher (a handle per reactor
    // would be one watcher each, passing the exclusive lock between them).
    let status = c.cli("rbd", &["status", &format!("{POOL}/{image}")]);
    assert_eq!(
        status.matches("watcher=").count(),
        1,
        "expected one image handle:\n{status}"
    );
    setup.logout();
}

#[test]
fn compare_and_write_is_atomic_in_the_cluster_across_two_gateways() {
    // Two daemons share nothing but the image: only the cluster's compare-and-write keeps an
    // increment from being lost (each daemon's range locks see only its own sessions).
    const ROUNDS: u64 = 25;
    let c = cluster();
    let image = c.create_image(POOL, "gateways", 16);
    let one = rbd_daemon(c, POOL, &image, &[], &["--cores", "1"]);
    let two = rbd_daemon(c, POOL, &image, &[], &["--cores", "1"]);
    let mut setup = common::session(&one, &[]);
    let (mut a, mut b) = (
        Initiator::connect(one.port()),
        Initiator::connect(two.port()),
    );
    for (ini, who) in [(&mut a, 0x31), (&mut b, 0x32)] {
        ini.isid[5] = who;
        ini.login(Some(TARGET), &[]);
        ini.clear_unit_attentions();
    }
    race_increments(&mut setup, a, b, ROUNDS);
    setup.logout();
}

/// `ctl luns` lists unit `lun` with `bytes`.
fn assert_lun_size(d: &Daemon, lun: u16, bytes: u64) {
    let luns = d.ctl_json(&["luns"]);
    let size = luns
        .as_array()
        .and_then(|l| l.iter().find(|l| l["id"] == lun))
        .map(|l| l["size_bytes"].clone());
    assert_eq!(size, Some(serde_json::json!(bytes)), "{luns}");
}

/// Waits (10 s at most) for CAPACITY DATA HAS CHANGED on `lun`, which an image resized in the
/// cluster brings.
fn await_capacity_changed(ini: &mut Initiator, lun: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = ini.test_unit_ready(lun);
        if r.status != 0 {
            assert_eq!(
                r.sense().map(|s| (s.key, s.asc, s.ascq)),
                Some((0x06, 0x2a, 0x09)),
                "expected CAPACITY DATA HAS CHANGED, got {r:?}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no unit attention after the resize"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn resizing_the_image_in_the_cluster_changes_the_capacity_with_a_unit_attention() {
    let c = cluster();
    let image = c.create_image(POOL, "resize", 16);
    let d = rbd_daemon(c, POOL, &image, &[], &["--cores", "2"]);
    let mut ini = common::session(&d, &[]);
    let old_blocks = (16 << 20) / BS as u64;
    assert_eq!(ini.capacity(0).0, old_blocks);
    // Beyond the end: refused before the resize.
    ini.write_blocks(0, old_blocks, &cdb::pattern(61, BS), BS as u32)
        .assert_sense(0x05, 0x21);

    c.cli(
        "rbd",
        &["resize", "--size", "24M", &format!("{POOL}/{image}")],
    );
    await_capacity_changed(&mut ini, 0);
    let new_blocks = (24 << 20) / BS as u64;
    assert_eq!(ini.capacity(0).0, new_blocks);
    let data = cdb::pattern(62, 8 * BS);
    ini.write_blocks(0, new_blocks - 8, &data, BS as u32)
        .assert_good();
    let r = ini.read_blocks(0, new_blocks - 8, 8, BS as u32);
    r.assert_good();
    assert!(r.data == data);
    // A session that logs in afterwards sees the new size at once.
    let mut late = Initiator::connect(d.port());
    late.isid[5] = 0x44;
    late.login(Some(TARGET), &[]);
    late.clear_unit_attentions();
    assert_eq!(late.capacity(0).0, new_blocks);
    late.logout();
    ini.logout();
}

/// `ringtgt ctl lun add` of an RBD image on a daemon that started without one (its cores open
/// their RBD ports then), whose resizes then take the same path as `ctl lun resize`.
#[test]
fn an_rbd_lun_added_live_serves_and_follows_resizes() {
    let c = cluster();
    let image = c.create_image(POOL, "live", 8);
    let launch = Launch {
        wrapper: vec!["env".into(), format!("CEPH_CONF={}", c.conf_str())],
        ..Default::default()
    };
    let d = Daemon::start_with(
        &["--target", TARGET, "--lun", "ram:16MiB", "--cores", "2"],
        &launch,
    );
    let mut ini = common::session(&d, &[]);
    let spec = format!("rbd:{POOL}/{image}");
    d.ctl_ok(&["lun", "add", "--target", TARGET, "--id", "3", &spec]);
    ini.clear_unit_attentions();
    assert_eq!(ini.report_luns(), [0, 3]);
    assert_eq!(ini.capacity(3), ((8 << 20) / BS as u64, BS as u32));
    let data = cdb::pattern(71, 16 * BS);
    ini.write_blocks(3, 100, &data, BS as u32).assert_good();
    let r = ini.read_blocks(3, 100, 16, BS as u32);
    r.assert_good();
    assert!(r.data == data);
    assert!(at(&c.export(POOL, &image), 100, 16) == data.as_slice());

    // Its size is the cluster's: a size given to the daemon is refused.
    let (code, _, err) = d.ctl(&["lun", "resize", "--target", TARGET, "--id", "3", "64MiB"]);
    assert_eq!(code, Some(1), "a size for an RBD LUN is refused");
    assert!(err.contains("rbd resize"), "{err}");

    // Resized in the cluster: the same change as `ctl lun resize`, with its unit attention.
    c.cli(
        "rbd",
        &["resize", "--size", "12M", &format!("{POOL}/{image}")],
    );
    let new_blocks = (12 << 20) / BS as u64;
    await_capacity_changed(&mut ini, 3);
    assert_eq!(ini.capacity(3).0, new_blocks);
    assert_lun_size(&d, 3, 12 << 20);

    d.ctl_ok(&["lun", "remove", "--target", TARGET, "--id", "3"]);
    ini.clear_unit_attentions();
    assert_eq!(ini.report_luns(), [0]);
    ini.logout();
}

#[test]
fn two_images_of_one_cluster_share_one_connection() {
    let c = cluster();
    let (one, two) = (
        c.create_image(POOL, "share-a", 8),
        c.create_image(POOL, "share-b", 8),
    );
    let launch = Launch {
        wrapper: vec!["env".into(), format!("CEPH_CONF={}", c.conf_str())],
        ..Default::default()
    };
    let (s1, s2) = (format!("rbd:{POOL}/{one}"), format!("rbd:{POOL}/{two}"));
    let d = Daemon::start_with(&["--target", TARGET, "--lun", &s1, "--lun", &s2], &launch);
    let mut ini = common::session(&d, &[]);
    ini.write_blocks(0, 0, &cdb::pattern(41, BS), BS as u32)
        .assert_good();
    ini.write_blocks(1, 0, &cdb::pattern(42, BS), BS as u32)
        .assert_good();
    // The watcher's client id (client.NNNN) names the librados instance that opened the image.
    let client_of = |image: &str| {
        let status = c.cli("rbd", &["status", &format!("{POOL}/{image}")]);
        status
            .split_whitespace()
            .find(|w| w.starts_with("client."))
            .unwrap_or_else(|| panic!("no watcher:\n{status}"))
            .to_owned()
    };
    assert_eq!(client_of(&one), client_of(&two));
    ini.logout();
}

/// Waits until every placement group of the cluster is active (after a pool changed rules).
fn wait_pgs_active(c: &Cluster, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let stat = c.cli("ceph", &["pg", "stat"]);
        // "41 pgs: 41 active+clean; ..."
        let total = stat.split_whitespace().next().unwrap_or("");
        if stat.contains(&format!("{total} pgs: {total} active+clean")) {
            return;
        }
        assert!(Instant::now() < deadline, "PGs not active: {stat}");
        thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn pool_that_stops_answering_gives_not_ready_while_the_reactor_keeps_serving() {
    let c = cluster();
    let tag = format!("outage-{}", std::process::id());
    c.cli("ceph", &["osd", "pool", "create", &tag, "8", "8"]);
    c.cli(
        "ceph",
        &["osd", "pool", "application", "enable", &tag, "rbd"],
    );
    // A CRUSH root without OSDs: a pool placed there has nowhere to keep its data.
    c.cli("ceph", &["osd", "crush", "add-bucket", &tag, "root"]);
    c.cli(
        "ceph",
        &[
            "osd",
            "crush",
            "rule",
            "create-replicated",
            &tag,
            &tag,
            "osd",
        ],
    );
    wait_pgs_active(c, Duration::from_secs(60));
    let image = c.create_image(&tag, "outage", 8);
    let d = rbd_daemon(
        c,
        &tag,
        &image,
        &["CEPH_ARGS=--rados_osd_op_timeout=3"],
        &["--cores", "1"],
    );
    let mut ini = common::session(&d, &[]);
    let data = cdb::pattern(51, 8 * BS);
    ini.write_blocks(0, 0, &data, BS as u32).assert_good();
    ini.non_data(0, &sync_cache10()).assert_good();

    c.cli("ceph", &["osd", "pool", "set", &tag, "crush_rule", &tag]);
    let started = Instant::now();
    let mut other = Initiator::connect(d.port());
    other.isid[5] = 0x33;
    other.login(Some(TARGET), &[]);
    other.clear_unit_attentions();
    let rbd_read = thread::spawn(move || {
        let r = ini.read_blocks(0, 0, 8, BS as u32);
        (ini, r, started.elapsed())
    });
    // The same (only) reactor answers the RAM LUN at once while the RBD read waits.
    thread::sleep(Duration::from_millis(300));
    for lba in 0..20 {
        let t = Instant::now();
        other
            .write_blocks(1, lba, &cdb::pattern(lba, BS), BS as u32)
            .assert_good();
        other.test_unit_ready(0).assert_good();
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "the reactor stalled while the cluster did not answer"
        );
    }
    let (mut ini, r, took) = rbd_read.join().unwrap();
    assert_eq!(
        r.sense().map(|s| (s.key, s.asc, s.ascq)),
        Some((0x02, 0x04, 0x01)),
        "expected NOT READY, BECOMING READY after the OSD op timeout, got {r:?}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // Back on the real OSD: the unit answers again, with its data.
    c.cli(
        "ceph",
        &["osd", "pool", "set", &tag, "crush_rule", "replicated_rule"],
    );
    wait_pgs_active(c, Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = ini.read_blocks(0, 0, 8, BS as u32);
        if r.status == 0 {
            assert!(r.data == data);
            break;
        }
        assert!(Instant::now() < deadline, "the unit did not recover: {r:?}");
        thread::sleep(Duration::from_millis(500));
    }
    ini.logout();
    drop(d);
    c.cli(
        "ceph",
        &[
            "osd",
            "pool",
            "delete",
            &tag,
            &tag,
            "--yes-i-really-really-mean-it",
        ],
    );
    c.cli("ceph", &["osd", "crush", "rule", "rm", &tag]);
    c.cli("ceph", &["osd", "crush", "remove", &tag]);
}

/// A Ceph configuration (with a key for client.admin, `keyring = ` in it) whose "monitor"
/// accepts connections into its backlog and never says a word. Keep the listener and the
/// folder while it is used.
struct SilentMonitor {
    _mon: TcpListener,
    dir: tempfile::TempDir,
}

impl SilentMonitor {
    fn new() -> SilentMonitor {
        let mon = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = mon.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let (code, key, err) = run(
            "ceph-authtool",
            &["--gen-print-key"],
            Duration::from_secs(10),
        );
        assert_eq!(code, Some(0), "ceph-authtool: {err}");
        let keyring = dir.path().join("keyring");
        std::fs::write(
            &keyring,
            format!("[client.admin]\n\tkey = {}\n", key.trim()),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("ceph.conf"),
            format!(
                "[global]\nmon host = 127.0.0.1:{port}\nauth client required = cephx\n\
                 keyring = {}\n",
                keyring.display()
            ),
        )
        .unwrap();
        SilentMonitor { _mon: mon, dir }
    }

    fn conf(&self) -> std::path::PathBuf {
        self.dir.path().join("ceph.conf")
    }

    fn keyring(&self) -> std::path::PathBuf {
        self.dir.path().join("keyring")
    }
}

#[test]
fn daemon_start_gives_up_on_a_monitor_that_never_answers() {
    let mon = SilentMonitor::new();
    let (dir, conf, keyring) = (&mon.dir, mon.conf(), mon.keyring());
    let cfg = dir.path().join("ringtgt.toml");
    let toml = format!(
        "portals = [\"127.0.0.1:{}\"]\n[[target]]\nname = \"{TARGET}\"\n[[target.lun]]\n\
         path = \"rbd:rbd/never\"\nceph_conf = \"{}\"\nkeyring = \"{}\"\n",
        common::daemon::free_port(),
        conf.display(),
        keyring.display()
    );
    std::fs::write(&cfg, toml).unwrap();
    let started = Instant::now();
    let (code, out, err) = run(
        BIN,
        &["serve", "--config", cfg.to_str().unwrap()],
        Duration::from_secs(60),
    );
    let took = started.elapsed();
    let log = format!("{out}{err}");
    assert_eq!(code, Some(1), "exit code; log:\n{log}");
    // client_mount_timeout = 10 s unless the Ceph configuration says otherwise.
    assert!(
        took >= Duration::from_secs(8) && took < Duration::from_secs(30),
        "gave up after {took:?}"
    );
    assert!(
        log.contains("target[0].lun[0]: connecting to the Ceph cluster as client.admin"),
        "{log}"
    );
}

/// A new unit's store opens off the control thread: while `ctl lun add` of an image behind a
/// monitor that never answers waits out `client_mount_timeout` (10 s), the daemon goes on
/// answering listings and logging initiators in; then the add fails and changes nothing.
#[test]
fn an_rbd_lun_slow_to_open_holds_up_neither_logins_nor_listings() {
    let mon = SilentMonitor::new();
    let launch = Launch {
        wrapper: vec!["env".into(), format!("CEPH_CONF={}", mon.conf().display())],
        ..Default::default()
    };
    let d = Daemon::start_with(
        &["--target", TARGET, "--lun", "ram:16MiB", "--cores", "2"],
        &launch,
    );
    let add = [
        "lun",
        "add",
        "--target",
        TARGET,
        "--id",
        "1",
        "rbd:rbd/never",
    ];
    let (d, add) = (&d, &add);
    thread::scope(|s| {
        let started = Instant::now();
        let adding = s.spawn(move || (d.ctl(add), started.elapsed()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !d.log().contains("admin change started") {
            assert!(
                Instant::now() < deadline,
                "the add did not start:\n{}",
                d.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        thread::sleep(Duration::from_millis(500));

        let asked = Instant::now();
        let luns = d.ctl_json(&["luns"]);
        let ids: Vec<_> = luns
            .as_array()
            .expect("a list")
            .iter()
            .map(|l| l["id"].clone())
            .collect();
        assert_eq!(ids, [serde_json::json!(0)], "{luns}");
        let mut ini = common::session(d, &[]);
        assert_eq!(ini.report_luns(), [0]);
        let answered = asked.elapsed();
        assert!(
            !adding.is_finished(),
            "the add ended before the listing and the login were tried: nothing was shown"
        );
        assert!(
            answered < Duration::from_secs(3),
            "a listing and a login took {answered:?} while a store was opening"
        );
        ini.logout();

        let ((code, _, err), took) = adding.join().unwrap();
        assert_eq!(code, Some(1), "the add fails: {err}");
        assert!(took >= Duration::from_secs(8), "gave up after {took:?}");
        assert!(err.contains("connecting to the Ceph cluster"), "{err}");
    });
    assert!(d.log().contains("admin change refused"), "{}", d.log());
    let luns = d.ctl_json(&["luns"]);
    assert_eq!(luns.as_array().map(Vec::len), Some(1), "{luns}");
}

/// `ctl lun resize` of an RBD unit reads the image's size again off the control thread: while
/// the daemon's messages from the OSDs come late (Ceph's own delay injection, up to 4 s each)
/// and the header's refresh after a resize in the cluster waits for them, listings and logins
/// are answered at once.
#[test]
fn an_image_slow_to_say_its_new_size_holds_up_neither_logins_nor_listings() {
    let c = cluster();
    let image = c.create_image(POOL, "slowsize", 8);
    let dir = tempfile::tempdir().unwrap();
    let asok = dir.path().join("client.asok");
    let ceph_args = format!(
        "CEPH_ARGS=--admin_socket={} --ms_inject_delay_type=osd --ms_inject_delay_max=4",
        asok.display()
    );
    let d = rbd_daemon(c, POOL, &image, &[&ceph_args], &["--cores", "1"]);
    // Late from here on (the daemon's librados client takes the setting at once).
    c.cli(
        "ceph",
        &[
            "--admin-daemon",
            asok.to_str().unwrap(),
            "config",
            "set",
            "ms_inject_delay_probability",
            "1",
        ],
    );
    let started = || d.log().matches("admin change started").count();
    assert_eq!(started(), 0);
    // The daemon hears of it (its header's refresh then pending), and reads the new size by
    // itself too: `ctl lun resize` meets that refresh, or waits for one of its own.
    c.cli(
        "rbd",
        &["resize", "--size", "12M", &format!("{POOL}/{image}")],
    );
    let resize = ["lun", "resize", "--target", TARGET, "--id", "0"];
    let (d, resize) = (&d, &resize);
    thread::scope(|s| {
        let resizing = s.spawn(move || d.ctl(resize));
        let mut asked_meanwhile = 0;
        while !resizing.is_finished() {
            let asked = Instant::now();
            let luns = d.ctl_json(&["luns"]);
            assert_eq!(luns.as_array().map(Vec::len), Some(2), "{luns}");
            let mut ini = common::session(d, &[]);
            ini.logout();
            let answered = asked.elapsed();
            if !resizing.is_finished() {
                asked_meanwhile += 1;
            }
            assert!(
                answered < Duration::from_millis(1500),
                "a listing and a login took {answered:?} while the image's size was read"
            );
            thread::sleep(Duration::from_millis(50));
        }
        let (code, out, err) = resizing.join().unwrap();
        assert_eq!(code, Some(0), "{out}{err}");
        assert!(
            asked_meanwhile > 0,
            "the size was read before a listing could be tried: nothing was shown\n{}",
            d.log()
        );
    });
    assert_lun_size(d, 0, 12 << 20);
}

#[test]
fn a_stopping_daemon_flushes_what_librbd_acknowledged_before_it_exits() {
    let c = cluster();
    let image = c.create_image(POOL, "flush", 16);
    let mut d = rbd_daemon(c, POOL, &image, &[], &[]);
    let mut ini = common::session(&d, &[]);
    let data = cdb::pattern(77, 64 * BS);
    ini.write_blocks(0, 100, &data, BS as u32).assert_good();
    drop(ini);
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(60)), Some(0));
    let spec = format!("rbd:{POOL}/{image}");
    assert!(
        d.log()
            .lines()
            .any(|l| l.contains("write cache flushed") && l.contains(&spec)),
        "the RBD LUN was flushed at the stop:\n{}",
        d.log()
    );
    assert_eq!(at(&c.export(POOL, &image), 100, 64), &data[..]);
}
