//! Sanitize operations written down under the state directory (the journal `scsi::medium`
//! describes): one TOML file per logical unit whose medium outlives the daemon, written
//! durably before an operation's first step and removed when it completes or its failure is
//! exited. A file found at start-up means the operation never completed: the unit starts in
//! failure mode (MEDIUM ERROR, SANITIZE COMMAND FAILED) instead of serving a half-sanitized
//! medium.
//!
//! The file names the medium it was written for: a unit whose LUN id now stands for another
//! medium does not inherit it (it is logged and removed).
//!
//! Reactors start and end operations, and a durable write is milliseconds of a disk's time
//! that every connection of the core would wait out: the files are written and removed by one
//! writer thread, in the order the notes were given, and an operation's first step waits for
//! its note, as its GOOD waits for the note of its end (see `SanitizeGuard::is_journaled`).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};

use super::pr_store::{remove_durably, unit_file, write_durably};
use crate::backstore::{Store, StoreKind};
use crate::scsi::{JournalNote, SanitizeFailure, SanitizeJournal};
use crate::session::PortalContext;

/// The state directory's sanitize files, and the thread that writes them.
#[derive(Debug, Clone)]
pub struct SanitizeStore {
    dir: PathBuf,
    writer: Writer,
}

/// What a file holds.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Record {
    /// The medium's name (its path, `rbd:POOL/IMAGE`, ...).
    medium: String,
    /// The AUSE bit of the operation's command.
    ause: bool,
}

impl SanitizeStore {
    /// Files under `state_dir/sanitize`; nothing is created until an operation starts.
    pub fn new(state_dir: &Path) -> Self {
        SanitizeStore {
            dir: state_dir.join("sanitize"),
            writer: Writer::default(),
        }
    }

    /// Waits (at most `limit`) until every note given so far is durable, or given up on:
    /// before the daemon exits, so that an operation it saw complete is not found failed by
    /// the next start. False if the writer did not get through them in time.
    pub fn flush(&self, limit: Duration) -> bool {
        self.writer.flush(limit)
    }

    /// Where LUN `lun` of `target` writes its operations down.
    pub fn path(&self, target: &str, lun: u16) -> PathBuf {
        unit_file(&self.dir, target, lun)
    }

    /// The journal of LUN `lun` of `target`, whose medium is `medium`, and the failure an
    /// operation that never completed left on that medium.
    pub fn journal(
        &self,
        target: &str,
        lun: u16,
        medium: &str,
    ) -> (Arc<dyn SanitizeJournal>, Option<SanitizeFailure>) {
        let path = self.path(target, lun);
        let left = match read(&path) {
            Ok(None) => None,
            Ok(Some(r)) if r.medium == medium => {
                tracing::warn!(
                    target,
                    lun,
                    medium,
                    file = %path.display(),
                    "a sanitize operation on this medium never completed: the unit answers \
                     SANITIZE COMMAND FAILED until a sanitize completes{}",
                    if r.ause { " or EXIT FAILURE MODE" } else { "" }
                );
                Some(if r.ause {
                    SanitizeFailure::Unrestricted
                } else {
                    SanitizeFailure::Restricted
                })
            }
            Ok(Some(r)) => {
                tracing::warn!(
                    target,
                    lun,
                    medium,
                    recorded = r.medium,
                    file = %path.display(),
                    "a sanitize record of another medium under this LUN id: removed"
                );
                if let Err(e) = remove_durably(&path) {
                    tracing::error!(file = %path.display(), error = %e, "cannot remove it");
                }
                None
            }
            // Unreadable: the safe reading is that an operation never completed.
            Err(e) => {
                tracing::error!(
                    target,
                    lun,
                    file = %path.display(),
                    error = %e,
                    "a sanitize record that cannot be read: the unit answers SANITIZE COMMAND \
                     FAILED until a sanitize completes"
                );
                Some(SanitizeFailure::Restricted)
            }
        };
        let journal = FileJournal {
            path,
            medium: medium.to_owned(),
            writer: self.writer.clone(),
        };
        (Arc::new(journal), left)
    }
}

impl SanitizeStore {
    /// Gives every unit of `ctx` whose medium outlives the daemon (a file, a block device, an
    /// RBD image, an NVMe namespace) its journal, unless it has one: at start-up, and for the
    /// units a change adds.
    pub fn attach(&self, ctx: &PortalContext, stores: &[HashMap<u16, Arc<Store>>]) {
        for (t, stores) in ctx.targets.iter().zip(stores) {
            for lu in t.luns.iter() {
                let Some(store) = stores.get(&lu.lun) else {
                    continue;
                };
                if lu.shared.medium.has_journal() || !outlives_the_daemon(store.kind()) {
                    continue;
                }
                let (journal, left) = self.journal(&t.name, lu.lun, store.label());
                lu.shared.medium.attach_journal(journal, left);
            }
        }
    }
}

/// RAM and null units start empty: nothing of a sanitize survives them.
fn outlives_the_daemon(kind: StoreKind) -> bool {
    !matches!(kind, StoreKind::Ram | StoreKind::Null)
}

fn read(path: &Path) -> io::Result<Option<Record>> {
    match fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map(Some).map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[derive(Debug)]
struct FileJournal {
    path: PathBuf,
    medium: String,
    writer: Writer,
}

impl SanitizeJournal for FileJournal {
    fn started(&self, ause: bool) -> JournalNote {
        let record = Record {
            medium: self.medium.clone(),
            ause,
        };
        let note = JournalNote::pending();
        let header =
            "# ringtgt: a sanitize operation started on this medium and has not completed.\n";
        match toml::to_string(&record) {
            Ok(text) => self.writer.send(Entry::Write {
                path: self.path.clone(),
                text: format!("{header}{text}"),
                note: note.clone(),
            }),
            Err(e) => {
                note_not_written(&self.path, &io::Error::other(e));
                note.finish();
            }
        }
        note
    }

    fn ended(&self) -> JournalNote {
        let note = JournalNote::pending();
        self.writer.send(Entry::Remove {
            path: self.path.clone(),
            note: note.clone(),
        });
        note
    }
}

/// What the writer thread is given.
enum Entry {
    /// Write `text` to `path` durably, then finish `note`.
    Write {
        path: PathBuf,
        text: String,
        note: JournalNote,
    },
    /// Remove `path` durably, then finish `note`.
    Remove { path: PathBuf, note: JournalNote },
    /// Everything before this is done.
    Flush(Sender<()>),
}

/// The journal writer thread, started with the first note; `None` inside if it could not be
/// started (the notes are then written by whoever gives them, as the last resort).
#[derive(Debug, Clone, Default)]
struct Writer(Arc<OnceLock<Option<Sender<Entry>>>>);

impl Writer {
    fn queue(&self) -> Option<&Sender<Entry>> {
        self.0
            .get_or_init(|| {
                let (tx, rx) = crossbeam_channel::unbounded::<Entry>();
                let started = std::thread::Builder::new()
                    .name("sanitize-notes".into())
                    .spawn(move || rx.into_iter().for_each(apply));
                match started {
                    Ok(_) => Some(tx),
                    Err(e) => {
                        tracing::error!(
                            error = %e,
                            "cannot start the sanitize journal's writer: sanitize records are \
                             written on the thread that starts or ends the operation"
                        );
                        None
                    }
                }
            })
            .as_ref()
    }

    fn send(&self, entry: Entry) {
        match self.queue() {
            Some(tx) => {
                if let Err(e) = tx.send(entry) {
                    apply(e.into_inner());
                }
            }
            None => apply(entry),
        }
    }

    fn flush(&self, limit: Duration) -> bool {
        // A writer never started has nothing to flush.
        let Some(Some(tx)) = self.0.get() else {
            return true;
        };
        let (done, finished) = crossbeam_channel::bounded(1);
        tx.send(Entry::Flush(done)).is_ok() && finished.recv_timeout(limit).is_ok()
    }
}

fn apply(entry: Entry) {
    match entry {
        Entry::Write { path, text, note } => {
            if let Err(e) = write_durably(&path, &text) {
                note_not_written(&path, &e);
            }
            note.finish();
        }
        Entry::Remove { path, note } => {
            if let Err(e) = remove_durably(&path) {
                tracing::error!(
                    file = %path.display(),
                    error = %e,
                    "cannot remove the record of a completed sanitize: the next start will \
                     refuse the medium until a sanitize completes"
                );
            }
            note.finish();
        }
        Entry::Flush(done) => {
            let _ = done.send(());
        }
    }
}

/// The operation goes on: only a restart in its middle would not know of it.
fn note_not_written(path: &Path, e: &io::Error) {
    tracing::error!(
        file = %path.display(),
        error = %e,
        "cannot write down the sanitize operation: a restart before it completes would serve \
         the medium half-sanitized"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    /// Waits for the writer to finish `note`.
    fn written(note: JournalNote) {
        let deadline = std::time::Instant::now() + LIMIT;
        while !note.is_finished() {
            assert!(std::time::Instant::now() < deadline, "note never written");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_operation_is_written_down_until_it_ends_and_read_back_for_its_medium_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = SanitizeStore::new(dir.path());
        let (journal, left) = store.journal("iqn.T", 2, "/srv/disk.img");
        assert_eq!(left, None);
        written(journal.started(true));
        assert!(store.path("iqn.t", 2).exists());
        let (_, left) = store.journal("iqn.t", 2, "/srv/disk.img");
        assert_eq!(left, Some(SanitizeFailure::Unrestricted));
        written(journal.started(false));
        let (_, left) = store.journal("iqn.t", 2, "/srv/disk.img");
        assert_eq!(left, Some(SanitizeFailure::Restricted));
        journal.ended();
        assert!(store.flush(LIMIT));
        assert!(!store.path("iqn.t", 2).exists());
        assert_eq!(store.journal("iqn.t", 2, "/srv/disk.img").1, None);

        // Another medium under the same LUN id neither inherits nor keeps the record.
        written(journal.started(false));
        assert_eq!(store.journal("iqn.t", 2, "/srv/other.img").1, None);
        assert!(!store.path("iqn.t", 2).exists());
    }

    #[test]
    fn notes_are_written_by_the_writer_thread_in_the_order_given() {
        let dir = tempfile::tempdir().unwrap();
        let store = SanitizeStore::new(dir.path());
        assert!(store.flush(LIMIT), "nothing to flush before any note");
        let (journal, _) = store.journal("iqn.t", 0, "/srv/disk.img");
        // An operation that ends and the next one that starts at once: the second record stays.
        for _ in 0..20 {
            journal.started(false);
            journal.ended();
        }
        let last = journal.started(true);
        assert!(store.flush(LIMIT));
        assert!(last.is_finished(), "finished before the flush came back");
        assert_eq!(
            store.journal("iqn.t", 0, "/srv/disk.img").1,
            Some(SanitizeFailure::Unrestricted)
        );
        assert!(
            thread_names().iter().any(|n| n == "sanitize-notes"),
            "written by the writer thread"
        );
    }

    fn thread_names() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .map(|n| n.trim().to_owned())
            .collect()
    }

    #[test]
    fn a_damaged_record_counts_as_an_operation_that_never_completed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SanitizeStore::new(dir.path());
        let path = store.path("iqn.t", 0);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "ause = 7").unwrap();
        assert_eq!(
            store.journal("iqn.t", 0, "/dev/sdb").1,
            Some(SanitizeFailure::Restricted)
        );
    }
}
