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
    let (cdb, list) = overwrite(immed, pattern);
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
