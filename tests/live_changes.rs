//! Targets and LUNs added, resized and removed while initiators do I/O: sessions of the target
//! learn of it through unit attentions, I/O of every session keeps working (writes read back
//! intact, no command fails), and a removed unit's running commands finish first.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::cdb::{self, pattern, GOOD, UNIT_ATTENTION};
use common::{session_to as login, unit_attentions as attentions, Daemon, Initiator, TARGET};

const OTHER: &str = "iqn.2026-11.io.ringtgt:other";
/// REPORTED LUNS DATA HAS CHANGED and CAPACITY DATA HAS CHANGED (ASC, ASCQ).
const LUNS_CHANGED: (u8, u8) = (0x3f, 0x0e);
const POWER_ON: (u8, u8) = (0x29, 0x00);
const CAPACITY_CHANGED: (u8, u8) = (0x2a, 0x09);
/// LOGICAL UNIT NOT SUPPORTED.
const ASC_LUN_NOT_SUPPORTED: u8 = 0x25;

fn two_targets() -> Daemon {
    Daemon::start_config(|port| {
        format!(
            r#"portals = ["127.0.0.1:{port}"]
[[target]]
name = "{TARGET}"
[[target.lun]]
path = "ram:32MiB"
[[target]]
name = "{OTHER}"
[[target.lun]]
path = "ram:32MiB"
"#
        )
    })
}

/// What a writer saw: commands completed, unit attentions (retried), anything else.
#[derive(Debug, Default)]
struct Tally {
    ios: u64,
    unit_attentions: Vec<(u8, u8)>,
    failures: Vec<String>,
}

/// Writes a pattern to LUN `lun` (its 512 blocks from `base`) and reads it back, over and over
/// until `stop`, retrying a command that reports a unit attention as initiators do.
fn writer(
    mut ini: Initiator,
    lun: u16,
    base: u64,
    stop: Arc<AtomicBool>,
) -> JoinHandle<(Initiator, Tally)> {
    std::thread::spawn(move || {
        let mut t = Tally::default();
        let mut round = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let lba = base + (round % 64) * 8;
            let data = pattern(round, 4096);
            let mut retry =
                |ini: &mut Initiator, op: &dyn Fn(&mut Initiator) -> common::scsi::ScsiResult| {
                    for _ in 0..4 {
                        let r = op(ini);
                        match (r.status, r.sense()) {
                            (GOOD, _) => return Some(r),
                            (_, Some(s)) if s.key == UNIT_ATTENTION => {
                                t.unit_attentions.push((s.asc, s.ascq))
                            }
                            (status, sense) => {
                                let sense = sense.map(|s| (s.key, s.asc));
                                t.failures.push(format!("status {status} sense {sense:?}"));
                                return None;
                            }
                        }
                    }
                    t.failures.push("unit attentions without end".into());
                    None
                };
            if retry(&mut ini, &|i| i.write_blocks(lun, lba, &data, 512)).is_none() {
                break;
            }
            let Some(back) = retry(&mut ini, &|i| i.read_blocks(lun, lba, 8, 512)) else {
                break;
            };
            if back.data != data {
                t.failures
                    .push(format!("round {round}: read back other data"));
                break;
            }
            t.ios += 2;
            round += 1;
        }
        (ini, t)
    })
}

#[test]
fn luns_added_resized_and_removed_under_load() {
    let d = two_targets();
    let stop = Arc::new(AtomicBool::new(false));
    // I/O on the target that changes, and on another one that must not notice anything.
    let same = writer(login(&d, TARGET, 1), 0, 0, stop.clone());
    let other = writer(login(&d, OTHER, 2), 0, 0, stop.clone());
    let mut watcher = login(&d, TARGET, 3);
    // libiscsi's iscsi-perf reads the other target at queue depth 32 all through the changes:
    // it stops at the first failed command, and reports its IOPS every second.
    let perf_url = format!("iscsi://127.0.0.1:{}/{OTHER}/0", d.port());
    let perf = std::thread::spawn(move || {
        common::daemon::run(
            "iscsi-perf",
            &["-t", "4", "-m", "32", "-r", &perf_url],
            Duration::from_secs(60),
        )
    });
    std::thread::sleep(Duration::from_millis(200));

    d.ctl_ok(&["lun", "add", "--target", TARGET, "--id", "4", "ram:8MiB"]);
    assert_eq!(attentions(&mut watcher, 0), [LUNS_CHANGED]);
    // REPORT LUNS clears the attention of the unit it was sent to (LUN 0), not of the others.
    assert_eq!(watcher.report_luns(), [0, 4]);
    // A unit new to the nexus is powered on for it.
    assert_eq!(attentions(&mut watcher, 4), [POWER_ON, LUNS_CHANGED]);
    assert_eq!(watcher.capacity(4), (8 << 20 >> 9, 512));
    // The new unit takes I/O at once.
    let mut added = writer(login(&d, TARGET, 4), 4, 0, stop.clone());
    std::thread::sleep(Duration::from_millis(200));

    d.ctl_ok(&["lun", "resize", "--target", TARGET, "--id", "4", "16MiB"]);
    assert_eq!(attentions(&mut watcher, 4), [CAPACITY_CHANGED]);
    assert_eq!(
        attentions(&mut watcher, 0),
        [],
        "only the resized unit changed"
    );
    assert_eq!(watcher.capacity(4), (16 << 20 >> 9, 512));
    let (code, _, err) = d.ctl(&["lun", "resize", "--target", TARGET, "--id", "4", "4MiB"]);
    assert_eq!(code, Some(1), "shrinking is refused");
    assert!(err.contains("cannot shrink"), "{err}");

    // Removed while its writer runs: its commands finish, then it is gone.
    d.ctl_ok(&["lun", "remove", "--target", TARGET, "--id", "4"]);
    assert_eq!(attentions(&mut watcher, 0), [LUNS_CHANGED]);
    assert_eq!(watcher.report_luns(), [0]);
    watcher
        .test_unit_ready(4)
        .assert_sense(cdb::ILLEGAL_REQUEST, ASC_LUN_NOT_SUPPORTED);
    let (_, removed) = added.join().unwrap();
    assert!(removed.ios > 0);
    // Its writer stops at LOGICAL UNIT NOT SUPPORTED, never at anything else.
    let not_supported = format!("status 2 sense Some((5, {ASC_LUN_NOT_SUPPORTED}))");
    assert!(
        removed.failures.iter().all(|f| *f == not_supported),
        "{removed:?}"
    );
    added = writer(login(&d, TARGET, 5), 0, 1024, stop.clone());
    std::thread::sleep(Duration::from_millis(200));

    let (code, out, err) = perf.join().unwrap();
    let per_second = common::daemon::iscsi_perf_iops(&out);
    assert_eq!(code, Some(0), "iscsi-perf failed: {out}\n{err}");
    assert!(
        per_second.len() >= 3 && per_second.iter().all(|&iops| iops > 0),
        "iscsi-perf on the other target stalled: per-second IOPS {per_second:?}\n{out}"
    );

    stop.store(true, Ordering::Relaxed);
    for (name, handle) in [
        ("same target", same),
        ("other target", other),
        ("late", added),
    ] {
        let (mut ini, tally) = handle.join().unwrap();
        assert!(tally.failures.is_empty(), "{name}: {tally:?}");
        assert!(tally.ios > 0, "{name}: {tally:?}");
        if name == "other target" {
            assert!(tally.unit_attentions.is_empty(), "{name}: {tally:?}");
        } else {
            assert!(
                tally.unit_attentions.iter().all(|ua| *ua == LUNS_CHANGED),
                "{name}: {tally:?}"
            );
        }
        ini.logout();
    }
    watcher.logout();
}

/// A daemon serving TARGET with no LUN, and a 4 MiB file in its directory to add as one.
fn target_without_luns_and_an_image() -> (Daemon, std::path::PathBuf) {
    let d = Daemon::start_config(|port| {
        format!("portals = [\"127.0.0.1:{port}\"]\n[[target]]\nname = \"{TARGET}\"\n")
    });
    let image = d.dir().join("disk.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(4 << 20)
        .unwrap();
    (d, image)
}

#[test]
fn a_live_lun_on_a_medium_in_use_is_refused_unless_both_are_read_only() {
    let (d, image) = target_without_luns_and_an_image();
    let alias = d.dir().join("alias.img");
    std::os::unix::fs::symlink(&image, &alias).unwrap();
    let (image, alias) = (image.to_str().unwrap(), alias.to_str().unwrap());

    d.ctl_ok(&["lun", "add", "--target", TARGET, "--id", "0", image]);
    // The same file under another name, writable or not, while a writable unit uses it.
    for extra in [&[][..], &["--read-only"][..]] {
        let mut args = vec!["lun", "add", "--target", TARGET, "--id", "1", alias];
        args.extend_from_slice(extra);
        let (code, _, err) = d.ctl(&args);
        assert_ne!(code, Some(0), "{args:?} was accepted");
        assert!(err.contains("only if both are read-only"), "{err}");
    }
    assert!(!d.ctl_ok(&["luns", "--target", TARGET]).contains(" 1 "));

    // Read-only twice is allowed.
    d.ctl_ok(&["lun", "remove", "--target", TARGET, "--id", "0"]);
    for (id, path) in [("2", image), ("3", alias)] {
        d.ctl_ok(&[
            "lun",
            "add",
            "--target",
            TARGET,
            "--id",
            id,
            "--read-only",
            path,
        ]);
    }
}

#[test]
fn a_block_device_or_file_is_read_again_after_it_grew() {
    let (d, image) = target_without_luns_and_an_image();
    d.ctl_ok(&["lun", "add", "--target", TARGET, image.to_str().unwrap()]);
    let mut ini = login(&d, TARGET, 1);
    assert_eq!(ini.capacity(0).0, 4 << 20 >> 9);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap()
        .set_len(6 << 20)
        .unwrap();
    let out = d.ctl_ok(&["lun", "resize", "--target", TARGET, "--id", "0"]);
    assert!(out.contains("6MiB"), "{out}");
    assert_eq!(attentions(&mut ini, 0), [CAPACITY_CHANGED]);
    assert_eq!(ini.capacity(0).0, 6 << 20 >> 9);
    ini.logout();
}

#[test]
fn targets_come_and_go_and_removal_waits_for_logouts() {
    let d = two_targets();
    let stop = Arc::new(AtomicBool::new(false));
    let other = writer(login(&d, OTHER, 1), 0, 0, stop.clone());

    let fresh = "iqn.2026-11.io.ringtgt:fresh";
    d.ctl_ok(&["target", "add", fresh, "--alias", "new one"]);
    d.ctl_ok(&["lun", "add", "--target", fresh, "null:64MiB"]);
    let mut ini = login(&d, fresh, 2);
    ini.write_blocks(0, 0, &[1; 512], 512).assert_good();

    let (code, _, err) = d.ctl(&["target", "remove", fresh]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--force"), "{err}");

    // --force asks the initiator to log out (Async Message, AsyncEvent 1) and waits for it.
    let socket = d.admin_socket();
    let remover = std::thread::spawn(move || {
        common::daemon::run(
            common::daemon::BIN,
            &[
                "ctl",
                "--socket",
                socket.to_str().unwrap(),
                "target",
                "remove",
                "--force",
                fresh,
            ],
            Duration::from_secs(60),
        )
    });
    let message = ini.async_message(Duration::from_secs(10));
    assert_eq!(
        message.event,
        ringtgt::pdu::reject::AsyncEvent::LOGOUT_REQUESTED
    );
    assert!(message.parameter3 > 0, "time to log out: {message:?}");
    assert!(
        !remover.is_finished(),
        "removal did not wait for the logout"
    );
    ini.logout();
    let (code, out, err) = remover.join().unwrap();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!d.ctl_ok(&["targets"]).contains(fresh));

    // Gone for new logins; the same name can come back.
    let mut late = Initiator::connect(d.port());
    let refused = late.try_login(Some(fresh), &[]).unwrap_err();
    assert_eq!(
        (refused.status.class, refused.status.detail),
        (2, 3),
        "NOT FOUND"
    );
    d.ctl_ok(&["target", "add", fresh]);
    d.ctl_ok(&["lun", "add", "--target", fresh, "ram:1MiB"]);
    let mut back = login(&d, fresh, 3);
    back.read_blocks(0, 0, 1, 512).assert_good();
    back.logout();

    stop.store(true, Ordering::Relaxed);
    let (mut o, tally) = other.join().unwrap();
    assert!(
        tally.failures.is_empty() && tally.unit_attentions.is_empty(),
        "{tally:?}"
    );
    o.logout();
}

#[test]
fn an_initiator_that_ignores_the_logout_request_is_dropped() {
    let d = two_targets();
    let mut ini = login(&d, OTHER, 1);
    // Not answering pings or messages: the target drops it after Parameter3 seconds.
    ini.answer_nop_in = false;
    let started = std::time::Instant::now();
    d.ctl_ok(&["target", "remove", "--force", OTHER]);
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(ini.conn.wait_closed(Duration::from_secs(5)));
}
