//! State of a logical unit's medium that every core shares: whether a removable medium is
//! loaded, how many I_T nexuses prevent its removal (SPC-4 PREVENT ALLOW MEDIUM REMOVAL),
//! whether the whole medium is known to be deallocated (after SANITIZE BLOCK ERASE), the
//! control mode page's software write protect (SWP), which MODE SELECT from any nexus sets, and
//! whether a sanitize operation is running (SBC-4 §4.11: every nexus on every core is refused
//! the medium meanwhile, and it outlives the command, the nexus and resets), and whether the
//! last one failed (the medium is then refused until a sanitize completes, or, if the failed
//! one allowed it (AUSE), until EXIT FAILURE MODE).
//!
//! A unit whose medium outlives the daemon (a file, a block device, an RBD image) has a
//! [`SanitizeJournal`]: an operation is written down when it starts and crossed out when it
//! completes or its failure is exited, so that a daemon stopped or killed in the middle of one
//! finds its medium failed, not readable half-sanitized, when it starts again.
//!
//! `LuInfo` is cloned into every core's LUN map; its `Arc<MediumState>` keeps one state per LU.
//! Each I_T nexus keeps its own prevent flags in [`Prevents`] (inside `NexusState`), which
//! gives its prevention back when the nexus goes away.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use super::LuInfo;

/// Shared medium state of one logical unit.
pub struct MediumState {
    /// A removable medium is loaded (always true for a fixed medium).
    present: AtomicBool,
    /// Prevention generation (high 32 bits) and the number of I_T nexuses preventing medium
    /// removal (low 32 bits), in one word so a reset and a PREVENT never interleave. A logical
    /// unit reset starts a new generation with no preventing nexus: the nexuses' flags of the
    /// older generation are void from then on.
    prevention: AtomicU64,
    /// Every block is deallocated (SANITIZE BLOCK ERASE) and nothing was written since.
    deallocated: AtomicBool,
    /// SPC-4 control mode page SWP: writes are refused as if the LU were read-only.
    software_write_protect: AtomicBool,
    /// [`SANITIZING`] while a sanitize operation runs, with its progress in the low 16 bits
    /// (SPC-4 PROGRESS INDICATION, in 65536ths); 0 when none runs.
    sanitize: AtomicU32,
    /// The last sanitize operation failed: [`NOT_FAILED`], [`FAILED_RESTRICTED`] or
    /// [`FAILED_UNRESTRICTED`].
    sanitize_failed: AtomicU8,
    /// Where sanitize operations are written down, for a medium that outlives the daemon.
    journal: OnceLock<Arc<dyn SanitizeJournal>>,
}

const SANITIZING: u32 = 1 << 16;

const NOT_FAILED: u8 = 0;
const FAILED_RESTRICTED: u8 = 1;
const FAILED_UNRESTRICTED: u8 = 2;

/// How a failed sanitize operation may be left (SBC-4 §4.11.3: its command's AUSE bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanitizeFailure {
    /// AUSE was zero: only another sanitize that completes ends it.
    Restricted,
    /// AUSE was one: SANITIZE EXIT FAILURE MODE ends it too.
    Unrestricted,
}

/// A sanitize operation runs on the medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SanitizeRunning;

/// The medium of a failed sanitize, accepted by an operator.
#[derive(Debug)]
pub struct Accepted {
    /// The failure it ended.
    pub failure: SanitizeFailure,
    /// The journal's note of the record's removal (none without a journal): until it is
    /// finished, a restart would find the failure again.
    pub removal: Option<JournalNote>,
}

/// Durable notes of a unit's sanitize operations (kept by the control layer under the state
/// directory). Called on a reactor (and by the control thread), so neither call may wait for a
/// disk: the journal writes elsewhere, in the order of the calls.
pub trait SanitizeJournal: Send + Sync {
    /// An operation with this AUSE bit starts: to be written down before its first step, which
    /// waits for the returned note (as does the GOOD of a command with IMMED).
    fn started(&self, ause: bool) -> JournalNote;
    /// It completed, or its failure was exited: to be crossed out. A completed operation's
    /// command answers GOOD once the returned note is finished, so that an initiator told GOOD
    /// never finds the medium failed after a restart; a daemon that stops before it is durable
    /// starts with the medium failed, which refuses the medium but never serves it
    /// half-sanitized.
    fn ended(&self) -> JournalNote;
}

/// Whether a journal's note is durable yet; shared between the journal's writer, which marks
/// it, and the operation that waits for it.
#[derive(Debug, Clone, Default)]
pub struct JournalNote(Arc<AtomicBool>);

impl JournalNote {
    /// A note the writer has yet to make durable.
    pub fn pending() -> Self {
        Self::default()
    }

    /// A note already durable.
    pub fn written() -> Self {
        let note = Self::default();
        note.finish();
        note
    }

    /// The writer is done with the note: durable, or given up on (and said so in the log: the
    /// operation goes on, only a restart in its middle would not know of it).
    pub fn finish(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_finished(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

const COUNT_MASK: u64 = 0xFFFF_FFFF;

fn split(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, (word & COUNT_MASK) as u32)
}

fn join(generation: u32, count: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(count)
}

impl MediumState {
    pub fn new() -> Self {
        Self {
            present: AtomicBool::new(true),
            prevention: AtomicU64::new(0),
            deallocated: AtomicBool::new(false),
            software_write_protect: AtomicBool::new(false),
            sanitize: AtomicU32::new(0),
            sanitize_failed: AtomicU8::new(NOT_FAILED),
            journal: OnceLock::new(),
        }
    }

    /// Gives the medium its journal (once; later calls are ignored) and the failure the journal
    /// found left over from an earlier run, if any.
    pub fn attach_journal(&self, journal: Arc<dyn SanitizeJournal>, left: Option<SanitizeFailure>) {
        if self.journal.set(journal).is_ok() {
            if let Some(f) = left {
                self.set_failed(Some(f));
            }
        }
    }

    /// Whether the medium has a journal.
    pub fn has_journal(&self) -> bool {
        self.journal.get().is_some()
    }

    /// The failure the last sanitize operation left, if it failed.
    pub fn sanitize_failure(&self) -> Option<SanitizeFailure> {
        match self.sanitize_failed.load(Ordering::Acquire) {
            FAILED_RESTRICTED => Some(SanitizeFailure::Restricted),
            FAILED_UNRESTRICTED => Some(SanitizeFailure::Unrestricted),
            _ => None,
        }
    }

    fn set_failed(&self, f: Option<SanitizeFailure>) {
        let code = match f {
            None => NOT_FAILED,
            Some(SanitizeFailure::Restricted) => FAILED_RESTRICTED,
            Some(SanitizeFailure::Unrestricted) => FAILED_UNRESTRICTED,
        };
        self.sanitize_failed.store(code, Ordering::Release);
    }

    /// SANITIZE EXIT FAILURE MODE: ends an unrestricted failure (or finds none); `false` for a
    /// restricted one, which only a completed sanitize ends.
    pub fn exit_failure_mode(&self) -> bool {
        match self.sanitize_failure() {
            Some(SanitizeFailure::Restricted) => false,
            Some(SanitizeFailure::Unrestricted) => {
                self.set_failed(None);
                if let Some(j) = self.journal.get() {
                    j.ended();
                }
                true
            }
            None => true,
        }
    }

    /// An operator accepts the medium a failed sanitize operation left (`ringtgt ctl lun
    /// accept-medium`): the failure mode ends, restricted or not, and its record is crossed
    /// out. `Ok(None)` if there was no failure; refused while an operation runs, whose record
    /// must stay until it ends.
    pub fn accept_failed(&self) -> Result<Option<Accepted>, SanitizeRunning> {
        // Taking the running flag for the moment keeps an operation from starting meanwhile,
        // whose record this would cross out.
        self.sanitize
            .compare_exchange(0, SANITIZING, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| SanitizeRunning)?;
        let accepted = self.sanitize_failure().map(|failure| {
            self.set_failed(None);
            Accepted {
                failure,
                removal: self.journal.get().map(|j| j.ended()),
            }
        });
        self.sanitize.store(0, Ordering::Release);
        Ok(accepted)
    }

    /// The progress of the sanitize operation running on the medium (SPC-4 PROGRESS
    /// INDICATION), or `None` when none runs.
    pub fn sanitize_progress(&self) -> Option<u16> {
        let word = self.sanitize.load(Ordering::Acquire);
        (word & SANITIZING != 0).then_some(word as u16)
    }

    /// Starts a sanitize operation (its command's AUSE bit: how a failure of it may be left),
    /// unless one already runs: it runs until the guard is dropped, whatever becomes of the
    /// command or the nexus that started it, and fails unless [`SanitizeGuard::completed`]
    /// says otherwise first.
    pub fn begin_sanitize(self: &Arc<Self>, ause: bool) -> Option<SanitizeGuard> {
        self.sanitize
            .compare_exchange(0, SANITIZING, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        let note = self.journal.get().map(|j| j.started(ause));
        Some(SanitizeGuard {
            medium: Arc::clone(self),
            ause,
            note,
            completed: false,
        })
    }

    /// The control mode page's SWP bit.
    pub fn is_software_write_protected(&self) -> bool {
        self.software_write_protect.load(Ordering::Acquire)
    }

    pub(super) fn set_software_write_protect(&self, on: bool) {
        self.software_write_protect.store(on, Ordering::Release);
    }

    /// Whether the medium is loaded.
    pub fn is_present(&self) -> bool {
        self.present.load(Ordering::Acquire)
    }

    /// Whether any I_T nexus prevents medium removal.
    pub fn is_prevented(&self) -> bool {
        split(self.prevention.load(Ordering::Acquire)).1 > 0
    }

    /// Number of I_T nexuses preventing medium removal.
    pub fn preventing_nexuses(&self) -> u32 {
        split(self.prevention.load(Ordering::Acquire)).1
    }

    /// Loads (`true`) or ejects (`false`) the medium.
    pub(super) fn set_present(&self, present: bool) {
        self.present.store(present, Ordering::Release);
    }

    /// Whether every block is known to be deallocated.
    pub fn is_deallocated(&self) -> bool {
        self.deallocated.load(Ordering::Relaxed)
    }

    /// The whole medium was deallocated (SANITIZE BLOCK ERASE completed).
    pub(super) fn set_deallocated(&self) {
        self.deallocated.store(true, Ordering::Relaxed);
    }

    /// Some blocks are about to be written: they are no longer known to be deallocated.
    /// A load first, so the common case writes nothing to the shared line.
    pub(super) fn note_write(&self) {
        if self.deallocated.load(Ordering::Relaxed) {
            self.deallocated.store(false, Ordering::Relaxed);
        }
    }

    /// SPC-4 PREVENT ALLOW MEDIUM REMOVAL: the state is cleared by a logical unit reset (and so
    /// by a target reset): no nexus prevents removal afterwards.
    pub fn reset_prevention(&self) {
        let _ = self
            .prevention
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some(join(split(w).0.wrapping_add(1), 0))
            });
    }

    /// One more nexus prevents removal; returns the generation it prevents in.
    fn add_preventer(&self) -> u32 {
        let old = self
            .prevention
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let (generation, count) = split(w);
                Some(join(generation, count.saturating_add(1)))
            })
            .unwrap_or_else(|w| w);
        split(old).0
    }

    /// A nexus that prevented removal in `generation` stops; nothing if a reset came since.
    fn remove_preventer(&self, generation: u32) {
        let _ = self
            .prevention
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let (current, count) = split(w);
                (current == generation).then(|| join(current, count.saturating_sub(1)))
            });
    }

    /// Whether a nexus flag of `generation` still counts.
    fn is_current(&self, generation: u32) -> bool {
        split(self.prevention.load(Ordering::Acquire)).0 == generation
    }
}

/// A running sanitize operation (see [`MediumState::begin_sanitize`]): the medium is refused to
/// every nexus until it is dropped.
pub struct SanitizeGuard {
    medium: Arc<MediumState>,
    ause: bool,
    /// The journal's note of the start, for a medium that has a journal.
    note: Option<JournalNote>,
    completed: bool,
}

impl SanitizeGuard {
    /// Whether the journal holds the operation as it stands (or the medium has none): its
    /// start, which its first step waits for, so that a restart never finds a medium
    /// half-sanitized by an operation it has no record of; once it completed, its end, which
    /// its GOOD waits for, so that a restart never finds failed a medium whose initiator was
    /// told the operation completed.
    pub fn is_journaled(&self) -> bool {
        self.note.as_ref().is_none_or(JournalNote::is_finished)
    }

    /// The operation completed without error: the medium leaves any failure mode, and the
    /// journal is told. The medium stays refused (SANITIZE IN PROGRESS) until the guard is
    /// dropped.
    pub fn completed(&mut self) {
        if std::mem::replace(&mut self.completed, true) {
            return;
        }
        self.medium.set_failed(None);
        self.note = self.medium.journal.get().map(|j| j.ended());
    }

    /// `done` of `total` units of work are done.
    pub fn set_progress(&self, done: u64, total: u64) {
        let fraction = match total {
            0 => 0,
            _ => (u128::from(done.min(total)) * 65536 / u128::from(total)).min(65535) as u32,
        };
        self.medium
            .sanitize
            .store(SANITIZING | fraction, Ordering::Release);
    }
}

impl Drop for SanitizeGuard {
    fn drop(&mut self) {
        if !self.completed {
            // Failed, or interrupted (the unit removed, the daemon stopping): the journal
            // keeps the operation written down, as a restart must find it.
            self.medium.set_failed(Some(if self.ause {
                SanitizeFailure::Unrestricted
            } else {
                SanitizeFailure::Restricted
            }));
        }
        self.medium.sanitize.store(0, Ordering::Release);
    }
}

impl fmt::Debug for SanitizeGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SanitizeGuard")
            .field("progress", &self.medium.sanitize_progress())
            .finish()
    }
}

impl Default for MediumState {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MediumState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediumState")
            .field("present", &self.is_present())
            .field("preventing_nexuses", &self.preventing_nexuses())
            .field("deallocated", &self.is_deallocated())
            .field("swp", &self.is_software_write_protected())
            .field("sanitize_failure", &self.sanitize_failure())
            .finish()
    }
}

impl LuInfo {
    /// Whether writes are refused with DATA PROTECT, WRITE PROTECTED: exported read-only, or
    /// software write protected (control mode page SWP).
    pub fn is_write_protected(&self) -> bool {
        self.read_only || self.shared.medium.is_software_write_protected()
    }
}

/// The logical units one I_T nexus prevents medium removal on. Dropping it (the nexus is
/// gone: logout, connection loss, session reinstatement) gives every prevention back.
#[derive(Debug, Default)]
pub struct Prevents {
    /// (LUN, its medium, prevention generation when this nexus prevented).
    held: Vec<(u16, Arc<MediumState>, u32)>,
}

impl Prevents {
    /// Whether this nexus prevents removal of `lun`'s medium (and no reset voided that).
    pub fn is_preventing(&self, lun: u16) -> bool {
        self.held
            .iter()
            .any(|(l, m, g)| *l == lun && m.is_current(*g))
    }

    /// PREVENT = 01b from this nexus (idempotent).
    pub(super) fn prevent(&mut self, lun: u16, medium: &Arc<MediumState>) {
        if self.is_preventing(lun) {
            return;
        }
        self.held.retain(|(l, _, _)| *l != lun);
        let generation = medium.add_preventer();
        self.held.push((lun, Arc::clone(medium), generation));
    }

    /// PREVENT = 00b from this nexus.
    pub(super) fn allow(&mut self, lun: u16) {
        self.held.retain(|(l, m, g)| {
            if *l == lun {
                m.remove_preventer(*g);
            }
            *l != lun
        });
    }

    /// Gives every prevention back (I_T nexus loss).
    pub(super) fn release_all(&mut self) {
        for (_, m, g) in self.held.drain(..) {
            m.remove_preventer(g);
        }
    }
}

/// A copy of a nexus state prevents what the original prevents (each copy gives its own
/// prevention back when dropped).
impl Clone for Prevents {
    fn clone(&self) -> Self {
        let held = self
            .held
            .iter()
            .filter(|(_, m, g)| m.is_current(*g))
            .map(|(l, m, _)| (*l, Arc::clone(m), m.add_preventer()))
            .collect();
        Self { held }
    }
}

impl Drop for Prevents {
    fn drop(&mut self) {
        self.release_all();
    }
}

/// A journal whose notes become durable only when its owner says (`write_all`), as the daemon's
/// writer thread makes them durable some time after they are given: for the session's tests and
/// the `connection` fuzz target, which drive time themselves.
#[derive(Default)]
pub struct HeldJournal(std::sync::Mutex<Vec<JournalNote>>);

impl SanitizeJournal for HeldJournal {
    fn started(&self, _ause: bool) -> JournalNote {
        let note = JournalNote::pending();
        self.notes().push(note.clone());
        note
    }
    fn ended(&self) -> JournalNote {
        let note = JournalNote::pending();
        self.notes().push(note.clone());
        note
    }
}

impl HeldJournal {
    /// Every note given so far is durable.
    pub fn write_all(&self) {
        self.notes().drain(..).for_each(|n| n.finish());
    }

    fn notes(&self) -> std::sync::MutexGuard<'_, Vec<JournalNote>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sanitize_at_a_time_with_progress_until_its_guard_is_dropped() {
        let m = Arc::new(MediumState::new());
        assert_eq!(m.sanitize_progress(), None);
        let guard = m.begin_sanitize(false).expect("idle medium");
        assert_eq!(m.sanitize_progress(), Some(0));
        assert!(
            m.begin_sanitize(false).is_none(),
            "a second sanitize while one runs"
        );
        guard.set_progress(1, 4);
        assert_eq!(m.sanitize_progress(), Some(16384));
        guard.set_progress(9, 4);
        assert_eq!(m.sanitize_progress(), Some(65535));
        guard.set_progress(5, 0);
        assert_eq!(m.sanitize_progress(), Some(0));
        let mut guard = guard;
        guard.completed();
        assert_eq!(
            m.sanitize_progress(),
            Some(0),
            "refused until the guard goes"
        );
        drop(guard);
        assert_eq!(m.sanitize_progress(), None);
        assert_eq!(m.sanitize_failure(), None);
        assert!(m.begin_sanitize(false).is_some());
    }

    /// What a journal was told.
    #[derive(Default)]
    struct Notes(std::sync::Mutex<Vec<String>>);

    impl SanitizeJournal for Notes {
        fn started(&self, ause: bool) -> JournalNote {
            self.0.lock().unwrap().push(format!("started ause={ause}"));
            JournalNote::written()
        }
        fn ended(&self) -> JournalNote {
            self.0.lock().unwrap().push("ended".into());
            JournalNote::written()
        }
    }

    #[test]
    fn a_sanitize_that_does_not_complete_leaves_the_failure_its_ause_bit_allows_to_exit() {
        let m = Arc::new(MediumState::new());
        let notes = Arc::new(Notes::default());
        m.attach_journal(notes.clone(), None);
        assert_eq!(m.sanitize_failure(), None);
        assert!(m.exit_failure_mode(), "nothing to exit");

        drop(m.begin_sanitize(false).unwrap());
        assert_eq!(m.sanitize_failure(), Some(SanitizeFailure::Restricted));
        assert!(!m.exit_failure_mode(), "AUSE was zero");
        assert_eq!(m.sanitize_failure(), Some(SanitizeFailure::Restricted));

        drop(m.begin_sanitize(true).unwrap());
        assert_eq!(m.sanitize_failure(), Some(SanitizeFailure::Unrestricted));
        assert!(m.exit_failure_mode());
        assert_eq!(m.sanitize_failure(), None);

        drop(m.begin_sanitize(true).unwrap());
        m.begin_sanitize(false).unwrap().completed();
        assert_eq!(
            m.sanitize_failure(),
            None,
            "a completed sanitize ends a failure"
        );
        assert_eq!(
            *notes.0.lock().unwrap(),
            [
                "started ause=false",
                "started ause=true",
                "ended",
                "started ause=true",
                "started ause=false",
                "ended"
            ]
        );
    }

    fn accepted(m: &MediumState) -> Result<Option<SanitizeFailure>, SanitizeRunning> {
        m.accept_failed().map(|a| a.map(|a| a.failure))
    }

    #[test]
    fn an_accepted_medium_hands_over_the_note_of_its_record_removal() {
        let m = Arc::new(MediumState::new());
        let held = Arc::new(HeldJournal::default());
        m.attach_journal(held.clone(), Some(SanitizeFailure::Unrestricted));
        let a = m.accept_failed().unwrap().expect("a failure to accept");
        assert_eq!(a.failure, SanitizeFailure::Unrestricted);
        let removal = a.removal.expect("a journal");
        assert!(!removal.is_finished());
        held.write_all();
        assert!(removal.is_finished());
    }

    #[test]
    fn an_operator_accepts_a_failed_medium_but_not_while_an_operation_runs() {
        let m = Arc::new(MediumState::new());
        let notes = Arc::new(Notes::default());
        m.attach_journal(notes.clone(), Some(SanitizeFailure::Restricted));
        let running = m.begin_sanitize(false).unwrap();
        assert_eq!(accepted(&m), Err(SanitizeRunning));
        drop(running);
        assert_eq!(m.sanitize_failure(), Some(SanitizeFailure::Restricted));
        // Restricted or not: EXIT FAILURE MODE would not end this one.
        assert_eq!(accepted(&m), Ok(Some(SanitizeFailure::Restricted)));
        assert_eq!(m.sanitize_failure(), None);
        assert_eq!(
            m.sanitize_progress(),
            None,
            "the operation flag is given back"
        );
        assert_eq!(accepted(&m), Ok(None), "nothing left to accept");
        assert!(
            m.begin_sanitize(false).is_some(),
            "a sanitize may start again"
        );
        assert_eq!(
            *notes.0.lock().unwrap(),
            ["started ause=false", "ended", "started ause=false"]
        );
    }

    #[test]
    fn an_operation_is_journaled_once_its_journal_note_is_finished() {
        let bare = Arc::new(MediumState::new());
        assert!(
            bare.begin_sanitize(false).unwrap().is_journaled(),
            "nothing to write down"
        );
        let m = Arc::new(MediumState::new());
        let held = Arc::new(HeldJournal::default());
        m.attach_journal(held.clone(), None);
        let mut guard = m.begin_sanitize(true).unwrap();
        assert!(!guard.is_journaled());
        held.write_all();
        assert!(guard.is_journaled());
        // Its end, once it completed: the medium stays refused until the guard goes.
        guard.completed();
        assert!(!guard.is_journaled(), "the end is not durable yet");
        assert_eq!(m.sanitize_failure(), None);
        held.write_all();
        assert!(guard.is_journaled());
        assert!(m.sanitize_progress().is_some());
        drop(guard);
        assert_eq!((m.sanitize_progress(), m.sanitize_failure()), (None, None));
    }

    #[test]
    fn a_journal_brings_the_failure_a_restart_found_and_is_attached_once() {
        let m = MediumState::new();
        m.attach_journal(
            Arc::new(Notes::default()),
            Some(SanitizeFailure::Unrestricted),
        );
        assert!(m.has_journal());
        assert_eq!(m.sanitize_failure(), Some(SanitizeFailure::Unrestricted));
        m.attach_journal(
            Arc::new(Notes::default()),
            Some(SanitizeFailure::Restricted),
        );
        assert_eq!(m.sanitize_failure(), Some(SanitizeFailure::Unrestricted));
    }

    #[test]
    fn prevention_counts_nexuses_and_is_idempotent_per_nexus() {
        let m = Arc::new(MediumState::new());
        let (mut a, mut b) = (Prevents::default(), Prevents::default());
        a.prevent(0, &m);
        a.prevent(0, &m);
        assert_eq!(m.preventing_nexuses(), 1);
        b.prevent(0, &m);
        assert_eq!(m.preventing_nexuses(), 2);
        a.allow(0);
        assert!(m.is_prevented());
        assert!(!a.is_preventing(0) && b.is_preventing(0));
        drop(b);
        assert!(!m.is_prevented());
    }

    #[test]
    fn reset_voids_every_nexus_flag_and_later_releases_do_not_underflow() {
        let m = Arc::new(MediumState::new());
        let (mut a, mut b) = (Prevents::default(), Prevents::default());
        a.prevent(3, &m);
        b.prevent(3, &m);
        m.reset_prevention();
        assert!(!m.is_prevented());
        assert!(!a.is_preventing(3));
        a.prevent(3, &m);
        assert_eq!(m.preventing_nexuses(), 1);
        drop(b);
        assert_eq!(
            m.preventing_nexuses(),
            1,
            "b's stale flag gives nothing back"
        );
        a.allow(3);
        assert_eq!(m.preventing_nexuses(), 0);
    }

    #[test]
    fn clones_count_as_their_own_nexus() {
        let m = Arc::new(MediumState::new());
        let mut a = Prevents::default();
        a.prevent(1, &m);
        let c = a.clone();
        assert_eq!(m.preventing_nexuses(), 2);
        drop(a);
        drop(c);
        assert_eq!(m.preventing_nexuses(), 0);
    }

    #[test]
    fn deallocated_until_written() {
        let m = MediumState::new();
        assert!(!m.is_deallocated() && m.is_present());
        m.set_deallocated();
        assert!(m.is_deallocated());
        m.note_write();
        assert!(!m.is_deallocated());
    }
}
