//! A sanitize operation and its journal: nothing of the medium is touched, and a command with
//! IMMED is not answered, until the operation is written down; the writer is another thread,
//! so the session looks again on its timer.

use super::*;
use crate::scsi::HeldJournal;

const IMMEDIATE: [(&str, &str); 2] = [("ImmediateData", "Yes"), ("InitialR2T", "Yes")];

/// SANITIZE OVERWRITE of the whole unit with a 4-byte pattern, one pass; its parameter list.
fn overwrite(immed: bool) -> (Vec<u8>, Vec<u8>) {
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
    (cdb, vec![0x01, 0, 0, 4, b'W', b'I', b'P', b'E'])
}

/// A logged-in pair whose unit has a journal that writes nothing until told.
fn with_held_journal() -> (Pair, Arc<HeldJournal>) {
    let p = Pair::logged_in(default_offer(), Tuning::default(), &IMMEDIATE);
    let journal = Arc::new(HeldJournal::default());
    let lu = p.ctx.targets[0].luns.get(0).expect("LUN 0");
    lu.shared.medium.attach_journal(journal.clone(), None);
    (p, journal)
}

/// Lets the session's timer run `times` times, a retry period apart.
fn tick(p: &mut Pair, times: usize) {
    for _ in 0..times {
        p.now += Duration::from_millis(1);
        p.conn.handle_timeout(p.now);
    }
}

/// Sends the SANITIZE (ITT 9) and lets time pass: nothing may reach the medium meanwhile.
fn sanitize_unwritten(immed: bool) -> (Pair, Arc<HeldJournal>) {
    let (mut p, journal) = with_held_journal();
    let (cdb, list) = overwrite(immed);
    p.command(9, &cdb, list.len() as u32, false, true, &list);
    tick(&mut p, 5);
    assert!(p.take_io().is_empty(), "the medium is untouched");
    (p, journal)
}

#[test]
fn no_step_goes_out_and_no_immed_answer_before_the_operation_is_written_down() {
    let (mut p, journal) = sanitize_unwritten(true);
    assert!(p.recv().is_empty(), "no GOOD before the note is durable");
    assert!(
        p.conn
            .poll_timeout()
            .is_some_and(|t| t <= p.now + Duration::from_millis(1)),
        "the session looks again soon"
    );

    journal.write_all();
    tick(&mut p, 1);
    let answers = p.recv();
    assert_eq!(answers.len(), 1, "{answers:?}");
    let rsp = response(&answers);
    assert_eq!((rsp.itt, rsp.status), (9, 0), "GOOD once written down");
    assert!(p.run_io() > 0, "the steps go out");
}

/// Without IMMED the first step waits for the start's note (as `sanitize_unwritten` checks), and
/// the GOOD for the end's.
#[test]
fn without_immed_a_completed_operation_answers_good_once_its_end_is_journaled() {
    let (mut p, journal) = sanitize_unwritten(false);
    journal.write_all();
    tick(&mut p, 1);
    assert!(
        run_every_step(&mut p).is_empty(),
        "no GOOD before the end is journaled"
    );
    assert!(p.disk.chunks(4).all(|c| c == b"WIPE"), "every step done");
    assert!(
        p.conn
            .poll_timeout()
            .is_some_and(|t| t <= p.now + Duration::from_millis(1)),
        "the session looks again soon"
    );
    // A restart now would find the operation failed: the medium is refused meanwhile, as
    // while it ran.
    let tur = [0u8; 6];
    p.command(10, &tur, 0, false, false, &[]);
    let pdus = p.recv();
    let rsp = response(&pdus);
    assert_eq!((rsp.itt, rsp.status), (10, 2), "CHECK CONDITION");
    assert_eq!(sense_of(&pdus), (0x02, 0x04, 0x1B), "SANITIZE IN PROGRESS");

    journal.write_all();
    tick(&mut p, 1);
    let rsp = response(&p.recv());
    assert_eq!((rsp.itt, rsp.status), (9, 0), "GOOD once crossed out");
    p.command(11, &tur, 0, false, false, &[]);
    let rsp = response(&p.recv());
    assert_eq!((rsp.itt, rsp.status), (11, 0), "the medium is served again");
}

/// Drives the operation's steps until none is left and its timer has run a few times: what
/// the session sent meanwhile.
fn run_every_step(p: &mut Pair) -> Vec<(Bhs, Vec<u8>)> {
    let mut answers = Vec::new();
    let mut idle = 0;
    for _ in 0..10_000 {
        if p.run_io() == 0 {
            idle += 1;
            tick(p, 1);
        } else {
            idle = 0;
        }
        answers.extend(p.recv());
        if idle > 5 || !answers.is_empty() {
            break;
        }
    }
    answers
}
