//! SANITIZE as SBC-4 §4.11 has it: the operation belongs to the logical unit, not to its
//! command. It goes on when the command is aborted, the unit reset or the connection lost;
//! meanwhile every nexus, on every core, is refused the medium with NOT READY, SANITIZE IN
//! PROGRESS and the progress, except for INQUIRY, REPORT LUNS and REQUEST SENSE. The unit is
//! paced (`sanitize_rate`) so that the operation lasts long enough to watch.

mod common;

use std::time::{Duration, Instant};

use common::scsi::ScsiResult;
use common::{cdb, Daemon, Initiator};
use ringtgt::pdu::tmf::{TmfFunction, TmfResponseCode};

const NOT_READY: u8 = 0x02;
const UNIT_ATTENTION: u8 = 0x06;
/// LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS.
const SANITIZING: (u8, u8) = (0x04, 0x1B);
const BLOCK: u32 = 512;

/// LUN 0: 8 MiB paced at 2 MiB/s (about 4 s to sanitize); LUN 1: an unpaced neighbour.
fn paced_daemon() -> Daemon {
    Daemon::start_config(|port| {
        format!(
            "portals = [\"127.0.0.1:{port}\"]\ncores = 2\n\
             [[target]]\nname = \"{}\"\n\
             [[target.lun]]\npath = \"ram:8MiB\"\nsanitize_rate = \"2MiB\"\n\
             [[target.lun]]\npath = \"ram:1MiB\"\n",
            common::TARGET
        )
    })
}

/// SANITIZE OVERWRITE, one pass of `pattern` (4 bytes), IMMED as given: CDB and parameter list.
fn overwrite(immed: bool, pattern: [u8; 4]) -> (Vec<u8>, Vec<u8>) {
    let cdb = vec![
        0x48,
        0x01 | if immed { 0x80 } else { 0 },
        0,
        0,
        0,
        0,
        0,
        0,
        8,
        0,
    ];
    let mut list = vec![0x01, 0, 0, 4];
    list.extend_from_slice(&pattern);
    (cdb, list)
}

/// Sends the SANITIZE with its parameter list as immediate data; returns its ITT.
fn send_sanitize(ini: &mut Initiator, immed: bool, pattern: [u8; 4]) -> (u32, u32) {
    send_overwrite(ini, overwrite(immed, pattern))
}

/// Sends a SANITIZE OVERWRITE (CDB and parameter list); returns its ITT and CmdSN.
fn send_overwrite(ini: &mut Initiator, (cdb, list): (Vec<u8>, Vec<u8>)) -> (u32, u32) {
    let cmd = ini.command_pdu(0, &cdb, false, true, list.len() as u32);
    ini.send_pdu(&cmd.encode(), &[], &list);
    (cmd.itt, cmd.cmd_sn)
}

/// The PROGRESS INDICATION of fixed-format NOT READY, SANITIZE IN PROGRESS sense data.
fn progress(sense: &[u8]) -> u16 {
    assert_eq!(sense[15] & 0x80, 0x80, "SKSV in {sense:02x?}");
    u16::from_be_bytes([sense[16], sense[17]])
}

fn assert_sanitizing(r: &ScsiResult) -> u16 {
    let s = r.sense().unwrap_or_else(|| panic!("no sense in {r:?}"));
    assert_eq!(
        (s.key, s.asc, s.ascq),
        (NOT_READY, SANITIZING.0, SANITIZING.1),
        "{r:?}"
    );
    progress(&r.sense)
}

/// TEST UNIT READY past unit attentions (a reset, a new nexus): the first other answer.
fn tur_past_attentions(ini: &mut Initiator, lun: u16) -> ScsiResult {
    for _ in 0..8 {
        let r = ini.test_unit_ready(lun);
        if r.sense().is_none_or(|s| s.key != UNIT_ATTENTION) {
            return r;
        }
    }
    panic!("unit attentions without end on LUN {lun}");
}

/// Logs in as `name` (ISID byte 5 = `who`) without expecting the medium to be ready.
fn login(d: &Daemon, name: &str, who: u8) -> Initiator {
    let mut ini = Initiator::connect(d.port());
    ini.initiator_name = name.into();
    ini.isid[5] = who;
    ini.login(Some(common::TARGET), &[]);
    ini
}

/// Polls until LUN 0 is ready again, checking that the progress never goes back.
fn wait_sanitized(ini: &mut Initiator, limit: Duration) {
    let end = Instant::now() + limit;
    let mut last = 0;
    loop {
        let r = tur_past_attentions(ini, 0);
        if r.status == cdb::GOOD {
            return;
        }
        let p = assert_sanitizing(&r);
        assert!(p >= last, "progress went back from {last} to {p}");
        last = p;
        assert!(Instant::now() < end, "still sanitizing after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_overwritten(ini: &mut Initiator, pattern: [u8; 4]) {
    let blocks = 8 << 20 >> 9;
    for lba in [0, blocks / 2, blocks - 1] {
        let r = ini.read_blocks(0, lba, 1, BLOCK);
        r.assert_good();
        assert!(
            r.data.chunks(4).all(|c| c == pattern),
            "block {lba} not overwritten"
        );
    }
}

#[test]
fn sanitize_outlives_abort_resets_and_its_connection_and_every_nexus_sees_it() {
    let d = paced_daemon();
    let mut a = login(&d, "iqn.2026-12.test:a", 1);
    a.clear_unit_attentions();
    a.write_blocks(0, 0, &cdb::pattern(7, BLOCK as usize), BLOCK)
        .assert_good();
    let mut b = login(&d, "iqn.2026-12.test:b", 2);
    b.clear_unit_attentions();

    let pattern = *b"SNTZ";
    let (itt, cmd_sn) = send_sanitize(&mut a, false, pattern);
    // Another initiator is refused the medium, with progress, but may still ask about it.
    let first = loop {
        let r = b.test_unit_ready(0);
        if r.status != cdb::GOOD {
            break assert_sanitizing(&r);
        }
    };
    assert_sanitizing(&b.read_blocks(0, 0, 1, BLOCK));
    assert_eq!(b.inquiry(0)[0] & 0x1f, 0, "INQUIRY answers");
    assert_eq!(b.report_luns(), vec![0, 1]);
    let sense = b.read(0, &[0x03, 0, 0, 0, 252, 0], 252);
    sense.assert_good();
    let s = cdb::Sense::parse(&sense.data).expect("REQUEST SENSE data");
    assert_eq!((s.key, s.asc, s.ascq), (NOT_READY, 0x04, 0x1B));
    assert!(progress(&sense.data) >= first);
    // The unpaced neighbour is not affected.
    b.test_unit_ready(1).assert_good();

    // Aborting the command and resetting the unit end neither the operation nor any TMF's
    // wait: each answers at once.
    let started = Instant::now();
    assert_eq!(
        a.task_management(TmfFunction::ABORT_TASK, 0, itt, cmd_sn),
        TmfResponseCode::COMPLETE
    );
    assert_eq!(
        a.task_management(TmfFunction::ABORT_TASK_SET, 0, 0, 0),
        TmfResponseCode::COMPLETE
    );
    assert_eq!(
        a.task_management(TmfFunction::LOGICAL_UNIT_RESET, 0, 0, 0),
        TmfResponseCode::COMPLETE
    );
    assert!(started.elapsed() < Duration::from_secs(2), "TMFs waited");
    assert_sanitizing(&tur_past_attentions(&mut a, 0));
    // The aborted command's ITT is free again: a new command with it is answered.
    let cmd = a.command_pdu(0, &cdb::inquiry(false, 0, 36), true, false, 36);
    let reuse = ringtgt::pdu::scsi::ScsiCommand { itt, ..cmd };
    a.send_pdu(&reuse.encode(), &[], &[]);
    a.collect(itt).assert_good();

    // The connection goes away; the operation goes on, and a new nexus sees it.
    drop(a);
    assert_sanitizing(&tur_past_attentions(&mut b, 0));
    let mut again = login(&d, "iqn.2026-12.test:a", 1);
    assert_sanitizing(&tur_past_attentions(&mut again, 0));

    wait_sanitized(&mut again, Duration::from_secs(30));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "8 MiB at 2 MiB/s took {:?}",
        started.elapsed()
    );
    assert_overwritten(&mut b, pattern);
    tur_past_attentions(&mut b, 0).assert_good();
    assert!(d.log().contains("sanitize completed"), "{}", d.log());
}

#[test]
fn sanitize_with_immed_answers_once_started_and_runs_in_the_background() {
    let d = paced_daemon();
    let mut a = login(&d, "iqn.2026-12.test:a", 1);
    a.clear_unit_attentions();
    let pattern = *b"IMMD";
    let (itt, _) = send_sanitize(&mut a, true, pattern);
    a.collect(itt).assert_good();
    assert_sanitizing(&a.test_unit_ready(0));
    // A second SANITIZE meanwhile is refused like any other media command.
    let (itt, _) = send_sanitize(&mut a, true, *b"2ND!");
    assert_sanitizing(&a.collect(itt));
    // Logging out does not wait for it.
    a.logout();
    let mut b = login(&d, "iqn.2026-12.test:b", 2);
    wait_sanitized(&mut b, Duration::from_secs(30));
    assert_overwritten(&mut b, pattern);
}

#[test]
fn removing_the_lun_interrupts_its_sanitize_and_answers_the_command() {
    let d = paced_daemon();
    let mut a = login(&d, "iqn.2026-12.test:a", 1);
    a.clear_unit_attentions();
    let (itt, _) = send_sanitize(&mut a, false, *b"GONE");
    assert_sanitizing(&a.test_unit_ready(0));
    let started = Instant::now();
    d.ctl_ok(&["lun", "remove", "--target", common::TARGET, "--id", "0"]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the removal waited {:?} for the sanitize",
        started.elapsed()
    );
    // The command is told its unit is gone (LOGICAL UNIT NOT SUPPORTED).
    a.collect(itt).assert_sense(0x05, 0x25);
    assert!(
        d.log()
            .contains("the LUN was removed: sanitize interrupted"),
        "{}",
        d.log()
    );
}

#[test]
fn a_stopping_daemon_interrupts_a_sanitize_and_says_so() {
    let mut d = Daemon::start_config(|port| {
        format!(
            "portals = [\"127.0.0.1:{port}\"]\n\
             [[target]]\nname = \"{}\"\n\
             [[target.lun]]\npath = \"ram:64MiB\"\nsanitize_rate = \"1MiB\"\n",
            common::TARGET
        )
    });
    let mut a = login(&d, "iqn.2026-12.test:a", 1);
    a.clear_unit_attentions();
    let (itt, _) = send_sanitize(&mut a, true, *b"STOP");
    a.collect(itt).assert_good();
    d.signal("TERM");
    // 64 s of work left; the daemon stops within its drain time instead.
    assert_eq!(d.wait_exit(Duration::from_secs(15)), Some(0), "{}", d.log());
    assert!(d.log().contains("sanitize interrupted"), "{}", d.log());
}

/// LUN 0: a 4 MiB file of `old` data in `dir`, sanitized at 1 MiB/s (about 4 s).
fn paced_file_daemon(dir: &std::path::Path, old: &[u8]) -> (Daemon, std::path::PathBuf) {
    file_daemon(dir, old, "sanitize_rate = \"1MiB\"\n")
}

/// A daemon whose LUN 0 is a file in `dir` holding `old`, with `lun_settings` for that LUN.
fn file_daemon(
    dir: &std::path::Path,
    old: &[u8],
    lun_settings: &str,
) -> (Daemon, std::path::PathBuf) {
    let file = dir.join("disk.img");
    std::fs::write(&file, old).unwrap();
    let d = Daemon::start_config(|port| {
        format!(
            "portals = [\"127.0.0.1:{port}\"]\n\
             [[target]]\nname = \"{}\"\n\
             [[target.lun]]\npath = \"{}\"\n{lun_settings}",
            common::TARGET,
            file.display()
        )
    });
    (d, file)
}

/// Sends SANITIZE OVERWRITE `command` (with IMMED) to LUN 0 from a new nexus and checks that
/// the operation runs.
fn start_sanitize(d: &Daemon, command: (Vec<u8>, Vec<u8>)) {
    let mut a = login(d, "iqn.2026-12.test:a", 1);
    a.clear_unit_attentions();
    let (itt, _) = send_overwrite(&mut a, command);
    a.collect(itt).assert_good();
    assert_sanitizing(&a.test_unit_ready(0));
}

/// LUN 0's medium as `ringtgt ctl luns` shows it.
fn medium(d: &Daemon) -> String {
    let luns = d.ctl_json(&["luns"]);
    let lun0 = luns
        .as_array()
        .and_then(|l| l.iter().find(|l| l["id"] == 0));
    lun0.and_then(|l| l["medium"].as_str())
        .unwrap_or_else(|| panic!("no medium for LUN 0 in {luns}"))
        .to_owned()
}

/// MEDIUM ERROR, SANITIZE COMMAND FAILED.
fn assert_sanitize_failed(r: &ScsiResult) {
    let s = r.sense().unwrap_or_else(|| panic!("no sense in {r:?}"));
    assert_eq!((s.key, s.asc, s.ascq), (0x03, 0x31, 0x03), "{r:?}");
}

/// LUN 0 serves its medium as an operation cut short left it: the first block overwritten with
/// `pattern`, the last one still `old`'s.
fn assert_partly_sanitized(a: &mut Initiator, pattern: &[u8; 4], old: &[u8]) {
    a.test_unit_ready(0).assert_good();
    let first = a.read_blocks(0, 0, 1, BLOCK);
    first.assert_good();
    assert!(first.data.chunks(4).all(|c| c == pattern), "sanitized");
    let last = a.read_blocks(0, 8191, 1, BLOCK);
    last.assert_good();
    assert!(last.data == old[8191 * 512..], "not reached before the cut");
}

const EXIT_FAILURE_MODE: [u8; 10] = [0x48, 0x1F, 0, 0, 0, 0, 0, 0, 0, 0];

/// SBC-4 §4.11: once a sanitize has started, the user data is no longer available, even when
/// the operation is cut short. A daemon killed in the middle of one starts again with the
/// medium failed (its state directory remembers), until a sanitize completes; the command had
/// no AUSE, so EXIT FAILURE MODE is no way out.
#[test]
fn a_sanitize_cut_short_by_a_kill_leaves_the_medium_failed_across_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = cdb::pattern(99, 4 << 20);
    let (mut d, file) = paced_file_daemon(dir.path(), &old);
    start_sanitize(&d, overwrite(true, *b"WIPE"));
    assert!(medium(&d).starts_with("sanitizing "), "{}", medium(&d));
    d.kill_and_restart();
    assert_eq!(medium(&d), "sanitize failed");

    let mut a = login(&d, "iqn.2026-12.test:a", 1);
    assert_sanitize_failed(&tur_past_attentions(&mut a, 0));
    assert_sanitize_failed(&a.read_blocks(0, 1000, 8, BLOCK));
    assert_sanitize_failed(&a.write_blocks(0, 0, &cdb::pattern(1, 512), BLOCK));
    let sense = a.read(0, &[0x03, 0, 0, 0, 252, 0], 252);
    sense.assert_good();
    let s = cdb::Sense::parse(&sense.data).expect("REQUEST SENSE data");
    assert_eq!((s.key, s.asc, s.ascq), (0x03, 0x31, 0x03));
    assert_eq!(
        a.capacity(0),
        ((4 << 20) / 512, 512),
        "READ CAPACITY answers"
    );
    a.non_data(0, &EXIT_FAILURE_MODE).assert_sense(0x05, 0x24);
    assert!(d.log().contains("never completed"), "{}", d.log());

    // A sanitize that completes is the way out.
    let (itt, _) = send_sanitize(&mut a, true, *b"DONE");
    a.collect(itt).assert_good();
    wait_sanitized(&mut a, Duration::from_secs(30));
    let r = a.read_blocks(0, 8191, 1, BLOCK);
    r.assert_good();
    assert!(r.data.chunks(4).all(|c| c == b"DONE"));
    assert_eq!(medium(&d), "ready");
    let on_disk = std::fs::read(&file).unwrap();
    assert!(on_disk.chunks(4).all(|c| c == b"DONE"), "the file itself");
    assert_records_go(&d);
}

/// An initiator told GOOD for a sanitize never finds the medium failed afterwards: the GOOD
/// goes once the operation's record is durably removed, so a kill right after it restarts
/// with the medium served. (The order itself is pinned by the session test
/// `without_immed_a_completed_operation_answers_good_once_its_end_is_journaled`, whose
/// journal writes only when told; here the writer thread on a fast disk usually wins the race
/// either way.)
#[test]
fn a_kill_right_after_a_sanitize_answered_good_restarts_with_the_medium_served() {
    let dir = tempfile::tempdir().unwrap();
    let (mut d, file) = file_daemon(dir.path(), &cdb::pattern(7, 1 << 20), "");
    let mut a = login(&d, "iqn.2026-12.test:a", 1);
    a.clear_unit_attentions();
    let (itt, _) = send_sanitize(&mut a, false, *b"GONE");
    a.collect(itt).assert_good();
    let records = walk(&d.dir().join("state").join("sanitize"));
    assert!(
        records.is_empty(),
        "records left when GOOD came: {records:?}"
    );
    d.kill_and_restart();
    assert_eq!(medium(&d), "ready");
    let mut a = login(&d, "iqn.2026-12.test:a", 1);
    tur_past_attentions(&mut a, 0).assert_good();
    let r = a.read_blocks(0, 0, 8, BLOCK);
    r.assert_good();
    assert!(r.data.chunks(4).all(|c| c == b"GONE"));
    assert!(std::fs::read(&file)
        .unwrap()
        .chunks(4)
        .all(|c| c == b"GONE"));
}

/// The daemon's sanitize records are all removed soon (their writer is another thread).
fn assert_records_go(d: &Daemon) {
    let records = d.dir().join("state").join("sanitize");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = walk(&records);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "records left: {left:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Files under `dir` (none if it does not exist).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| match e.file_type().map(|t| t.is_dir()) {
            Ok(true) => walk(&e.path()),
            _ => vec![e.path()],
        })
        .collect()
}

/// With AUSE the initiator allowed a failure to be left with EXIT FAILURE MODE: after a stop
/// in the middle of the operation, it finds the medium failed, exits the failure, and reads
/// what is there (the start sanitized, the end not).
#[test]
fn an_interrupted_sanitize_with_ause_is_left_with_exit_failure_mode() {
    let dir = tempfile::tempdir().unwrap();
    let old = cdb::pattern(98, 4 << 20);
    let (mut d, _) = paced_file_daemon(dir.path(), &old);
    let (mut cdb, list) = overwrite(true, *b"AUSE");
    cdb[1] |= 0x20;
    start_sanitize(&d, (cdb, list));
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(15)), Some(0), "{}", d.log());
    d.kill_and_restart();

    assert_eq!(medium(&d), "sanitize failed, exit allowed");
    let mut a = login(&d, "iqn.2026-12.test:a", 1);
    assert_sanitize_failed(&tur_past_attentions(&mut a, 0));
    a.non_data(0, &EXIT_FAILURE_MODE).assert_good();
    assert_partly_sanitized(&mut a, b"AUSE", &old);
    // Nothing is left for the next start.
    assert_records_go(&d);
    d.kill_and_restart();
    let mut a = login(&d, "iqn.2026-12.test:a", 1);
    tur_past_attentions(&mut a, 0).assert_good();
}

/// A SANITIZE refused for its parameter list never started an operation: the medium is left as
/// it was (libiscsi's SANITIZE tests log in again after such commands).
#[test]
fn a_sanitize_refused_for_its_parameter_list_leaves_no_failure_behind() {
    let d = paced_daemon();
    let mut a = login(&d, "iqn.2026-12.test:a", 1);
    a.clear_unit_attentions();
    let (cdb, mut list) = overwrite(false, *b"ZERO");
    // INITIALIZATION PATTERN LENGTH zero.
    list[2..4].copy_from_slice(&[0, 0]);
    let (itt, _) = send_overwrite(&mut a, (cdb, list));
    a.collect(itt).assert_sense(0x05, 0x26);
    a.test_unit_ready(0).assert_good();
    a.read_blocks(0, 0, 1, BLOCK).assert_good();
}

/// A failure without AUSE is ended only by a sanitize that completes; an operator who accepts
/// the medium as the cut-short operation left it says so with `ctl lun accept-medium`, live,
/// and the record goes with it. Not while an operation runs, whose record must stay.
#[test]
fn an_operator_accepts_the_medium_a_failed_sanitize_left() {
    let dir = tempfile::tempdir().unwrap();
    let old = cdb::pattern(97, 4 << 20);
    let (mut d, _) = paced_file_daemon(dir.path(), &old);
    let accept = [
        "lun",
        "accept-medium",
        "--target",
        common::TARGET,
        "--id",
        "0",
    ];
    start_sanitize(&d, overwrite(true, *b"WIPE"));
    let (code, _, err) = d.ctl(&accept);
    assert_ne!(code, Some(0));
    assert!(err.contains("is being sanitized"), "{err}");
    // Some blocks are overwritten before the kill, so the accepted medium is a mixed one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while medium(&d) == "sanitizing 0%" {
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    d.kill_and_restart();
    assert_eq!(medium(&d), "sanitize failed");

    let mut a = login(&d, "iqn.2026-12.test:a", 1);
    assert_sanitize_failed(&tur_past_attentions(&mut a, 0));
    let out = d.ctl_ok(&accept);
    assert!(
        out.contains("served again") && !out.contains("not removed"),
        "{out}"
    );
    // The answer waited for the record to go: a restart from now on finds the medium ready.
    let records = walk(&d.dir().join("state").join("sanitize"));
    assert!(
        records.is_empty(),
        "records left when accepted: {records:?}"
    );
    assert_eq!(medium(&d), "ready");
    // The same session is served at once: the start sanitized, the end as it was.
    assert_partly_sanitized(&mut a, b"WIPE", &old);
    let (code, _, err) = d.ctl(&accept);
    assert_ne!(code, Some(0));
    assert!(err.contains("no failed sanitize"), "{err}");

    d.kill_and_restart();
    assert_eq!(medium(&d), "ready");
    let mut a = login(&d, "iqn.2026-12.test:a", 1);
    tur_past_attentions(&mut a, 0).assert_good();
}
