//! SIGHUP and `ringtgt ctl reload`: the daemon reads its configuration file again and applies
//! the difference with the same live edits `ringtgt ctl` makes; sessions the change does not
//! touch keep their connection and their I/O; a file that does not load changes nothing.

mod common;

use std::time::{Duration, Instant};

use common::initiator::INITIATOR_NAME;
use common::{cdb, session_to, unit_attentions, Daemon, Initiator, TARGET};
use ringtgt::pdu::logout::LogoutResponseCode;
use ringtgt::pdu::reject::AsyncEvent;

const OTHER: &str = "iqn.2026-11.io.ringtgt:other";
const FRESH: &str = "iqn.2026-11.io.ringtgt:fresh";
/// REPORTED LUNS DATA HAS CHANGED (ASC, ASCQ).
const LUNS_CHANGED: (u8, u8) = (0x3f, 0x0e);
const POWER_ON: (u8, u8) = (0x29, 0x00);
const LIMIT: Duration = Duration::from_secs(20);

/// A `[[target]]` table with these LUN paths (ids 0, 1, ... unless given as "ID=PATH").
fn target(name: &str, luns: &[&str], extra: &str) -> String {
    let mut out = format!("[[target]]\nname = \"{name}\"\n{extra}\n");
    for (i, l) in luns.iter().enumerate() {
        let (id, path) = l.split_once('=').unwrap_or(("", l));
        let id = if id.is_empty() {
            i.to_string()
        } else {
            id.into()
        };
        out.push_str(&format!("[[target.lun]]\nid = {id}\npath = \"{path}\"\n"));
    }
    out
}

fn file(port: u16, body: &str) -> String {
    format!("portals = [\"127.0.0.1:{port}\"]\ncores = 1\n{body}")
}

fn start(body: impl Fn(u16) -> String) -> Daemon {
    Daemon::start_config(|port| file(port, &body(port)))
}

/// Writes the daemon's configuration file anew (the portal stays).
fn rewrite(d: &Daemon, body: &str) {
    std::fs::write(d.dir().join("ringtgt.toml"), file(d.port(), body)).unwrap();
}

/// The `nth` (from 1) log line with `needle`, once there is one.
fn wait_for_log(d: &Daemon, needle: &str, nth: usize) -> String {
    let deadline = Instant::now() + LIMIT;
    loop {
        let log = d.log();
        if let Some(line) = log.lines().filter(|l| l.contains(needle)).nth(nth - 1) {
            return line.to_string();
        }
        assert!(Instant::now() < deadline, "no {needle:?} in: {log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_and_read(ini: &mut Initiator, round: u64) {
    let data = cdb::pattern(round, 4096);
    ini.write_blocks(0, 64, &data, 512).assert_good();
    let back = ini.read_blocks(0, 64, 8, 512);
    back.assert_good();
    assert_eq!(back.data, data);
}

#[test]
fn sighup_applies_the_changed_file_without_dropping_an_unaffected_session() {
    let d = start(|_| {
        target(TARGET, &["ram:16MiB", "ram:8MiB"], "") + &target(OTHER, &["ram:4MiB"], "")
    });
    let mut kept = session_to(&d, TARGET, 1);
    write_and_read(&mut kept, 1);
    let mut gone = session_to(&d, OTHER, 2);

    rewrite(
        &d,
        &(target(TARGET, &["ram:16MiB", "2=ram:8MiB"], "") + &target(FRESH, &["null:1GiB"], "")),
    );
    d.signal("HUP");
    // The removed target's session is asked to log out, as by `ctl target remove --force`.
    let message = gone.async_message(LIMIT);
    assert_eq!(message.event, AsyncEvent::LOGOUT_REQUESTED);
    assert_eq!(gone.logout().response, LogoutResponseCode::SUCCESS);
    let done = wait_for_log(&d, "admin change done", 1);
    for change in [
        &format!("target {OTHER} removed"),
        &format!("LUN 1 removed from {TARGET}"),
        &format!("LUN 2 (ram:8MiB) added to {TARGET}"),
        &format!("target {FRESH} added"),
    ] {
        assert!(done.contains(change.as_str()), "{change}: {done}");
    }

    // Same connection: it learns of the new inventory, and its I/O goes on.
    assert_eq!(unit_attentions(&mut kept, 0), [LUNS_CHANGED]);
    assert_eq!(kept.report_luns(), [0, 2]);
    assert_eq!(unit_attentions(&mut kept, 2), [POWER_ON, LUNS_CHANGED]);
    assert_eq!(kept.capacity(2), (8 << 20 >> 9, 512));
    write_and_read(&mut kept, 2);

    let mut fresh = session_to(&d, FRESH, 3);
    fresh.read_blocks(0, 0, 1, 512).assert_good();
    let refused = Initiator::connect(d.port())
        .try_login(Some(OTHER), &[])
        .unwrap_err();
    assert_eq!((refused.status.class, refused.status.detail), (2, 3));
    fresh.logout();
    kept.logout();
}

/// Another store under a unit's id is a new logical unit: a session that stays hears of it as
/// powered on (its reservations, its data: nothing of the old unit), before anything else.
#[test]
fn a_unit_replaced_by_another_store_is_powered_on_for_the_sessions_that_stay() {
    let d = start(|_| target(TARGET, &["ram:16MiB", "ram:8MiB"], ""));
    let mut kept = session_to(&d, TARGET, 1);
    let data = cdb::pattern(5, 4096);
    kept.write_blocks(1, 0, &data, 512).assert_good();
    rewrite(&d, &target(TARGET, &["ram:16MiB", "null:8MiB"], ""));
    d.signal("HUP");
    let done = wait_for_log(&d, "admin change done", 1);
    assert!(
        done.contains(&format!("LUN 1 (null:8MiB) added to {TARGET}")),
        "{done}"
    );
    let seen = unit_attentions(&mut kept, 1);
    assert_eq!(seen.first(), Some(&POWER_ON), "{seen:?}");
    let r = kept.read_blocks(1, 0, 8, 512);
    r.assert_good();
    assert!(r.data.iter().all(|&b| b == 0), "the new unit's blocks");
    // The unit that stayed is told of nothing but the inventory.
    assert_eq!(unit_attentions(&mut kept, 0), [LUNS_CHANGED]);
    kept.logout();
}

#[test]
fn who_may_log_in_changes_for_new_logins_only() {
    let allowed = |who: &str| format!("allowed_initiators = [\"{who}\"]");
    let d = start(|_| target(TARGET, &["ram:4MiB"], &allowed(INITIATOR_NAME)));
    let mut kept = session_to(&d, TARGET, 1);
    rewrite(
        &d,
        &target(
            TARGET,
            &["ram:4MiB"],
            &allowed("iqn.2026-11.io.ringtgt:someone-else"),
        ),
    );
    let out = d.ctl_ok(&["reload"]);
    assert!(
        out.contains(&format!("target {TARGET} attributes applied")),
        "{out}"
    );
    write_and_read(&mut kept, 3);
    let mut late = Initiator::connect(d.port());
    late.isid[5] = 2;
    let refused = late.try_login(Some(TARGET), &[]).unwrap_err();
    assert_eq!(refused.status.class, 2, "{:?}", refused.status);
    kept.logout();
}

#[test]
fn a_file_that_does_not_load_changes_nothing_and_ctl_reload_says_why() {
    let d = start(|_| target(TARGET, &["ram:4MiB"], "") + &target(OTHER, &["ram:4MiB"], ""));
    let mut kept = session_to(&d, TARGET, 1);
    let before = d.ctl_ok(&["save"]);

    // Invalid: the whole file is refused, the removal of OTHER too.
    rewrite(
        &d,
        &(target(TARGET, &["ram:4MiB"], "")
            + "[[target.lun]]\nid = 1\npath = \"ram:1MiB\"\nblock_size = 1000\n"),
    );
    let (code, _, err) = d.ctl(&["reload"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("reload refused, nothing changed"), "{err}");
    assert!(err.contains("target[0].lun[1].block_size"), "{err}");

    // Valid, but a new unit's store cannot be opened: refused before anything changes.
    let missing = d.dir().join("missing.img");
    rewrite(
        &d,
        &target(TARGET, &["ram:4MiB", missing.to_str().unwrap()], ""),
    );
    let (code, _, err) = d.ctl(&["reload"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("missing.img"), "{err}");

    // SIGHUP with the same file: a log line (after the two of `ctl reload`), nothing changed.
    d.signal("HUP");
    let refused = wait_for_log(&d, "admin change refused", 3);
    assert!(refused.contains("missing.img"), "{refused}");
    assert_eq!(d.ctl_ok(&["save"]), before);
    assert_eq!(unit_attentions(&mut kept, 0), []);
    write_and_read(&mut kept, 4);
    kept.logout();
}

#[test]
fn settings_that_need_a_restart_are_named_and_left_as_they_are() {
    let d = start(|_| target(TARGET, &["ram:4MiB"], ""));
    rewrite(
        &d,
        &format!(
            "shutdown_grace_secs = 3\n[iscsi]\nqueue_depth = 64\n{}",
            target(TARGET, &["ram:4MiB"], "")
        ),
    );
    let out = d.ctl_ok(&["reload"]);
    assert!(out.contains("shutdown_grace_secs = 3"), "{out}");
    assert!(out.contains("needs a restart"), "{out}");
    assert!(out.contains("[iscsi]"), "{out}");
    let saved = d.ctl_ok(&["save"]);
    assert!(saved.contains("shutdown_grace_secs = 3"), "{saved}");
    assert!(saved.contains("queue_depth = 128"), "{saved}");
    assert!(d.log().contains("these settings need a restart"));
}

#[test]
fn a_daemon_started_from_flags_has_no_file_to_reload() {
    let d = common::daemon(&[]);
    let (code, _, err) = d.ctl(&["reload"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("started without --config"), "{err}");
}
