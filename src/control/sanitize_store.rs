//! Sanitize operations written down under the state directory (the journal `scsi::medium`
//! describes): one TOML file per logical unit whose medium outlives the daemon, written
//! durably before an operation's first step and removed when it completes or its failure is
//! exited. A file found at start-up means the operation never completed: the unit starts in
//! failure mode (MEDIUM ERROR, SANITIZE COMMAND FAILED) instead of serving a half-sanitized
//! medium.
//!
//! The file names the medium it was written for: a unit whose LUN id now stands for another
//! medium does not inherit it (it is logged and removed).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::pr_store::{remove_durably, unit_file, write_durably};
use crate::backstore::{Store, StoreKind};
use crate::scsi::{SanitizeFailure, SanitizeJournal};
use crate::session::PortalContext;

/// The state directory's sanitize files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanitizeStore {
    dir: PathBuf,
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
        }
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
}

impl SanitizeJournal for FileJournal {
    fn started(&self, ause: bool) {
        let record = Record {
            medium: self.medium.clone(),
            ause,
        };
        let text = toml::to_string(&record).map_err(io::Error::other);
        let header =
            "# ringtgt: a sanitize operation started on this medium and has not completed.\n";
        if let Err(e) = text.and_then(|t| write_durably(&self.path, &format!("{header}{t}"))) {
            // The operation goes on: only a restart in its middle would not know of it.
            tracing::error!(
                file = %self.path.display(),
                error = %e,
                "cannot write down the sanitize operation: a restart before it completes \
                 would serve the medium half-sanitized"
            );
        }
    }

    fn ended(&self) {
        if let Err(e) = remove_durably(&self.path) {
            tracing::error!(
                file = %self.path.display(),
                error = %e,
                "cannot remove the record of a completed sanitize: the next start will refuse \
                 the medium until a sanitize completes"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_is_written_down_until_it_ends_and_read_back_for_its_medium_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = SanitizeStore::new(dir.path());
        let (journal, left) = store.journal("iqn.T", 2, "/srv/disk.img");
        assert_eq!(left, None);
        journal.started(true);
        assert!(store.path("iqn.t", 2).exists());
        let (_, left) = store.journal("iqn.t", 2, "/srv/disk.img");
        assert_eq!(left, Some(SanitizeFailure::Unrestricted));
        journal.started(false);
        let (_, left) = store.journal("iqn.t", 2, "/srv/disk.img");
        assert_eq!(left, Some(SanitizeFailure::Restricted));
        journal.ended();
        assert!(!store.path("iqn.t", 2).exists());
        assert_eq!(store.journal("iqn.t", 2, "/srv/disk.img").1, None);

        // Another medium under the same LUN id neither inherits nor keeps the record.
        journal.started(false);
        assert_eq!(store.journal("iqn.t", 2, "/srv/other.img").1, None);
        assert!(!store.path("iqn.t", 2).exists());
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
