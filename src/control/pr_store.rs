//! Persistent reservations that must survive a power loss (SPC-4 APTPL): one TOML file per
//! logical unit under the state directory, replaced atomically (write a temporary file, fsync,
//! rename over the old one, fsync the directory) before the command that changed them
//! completes, and read back when the daemon starts.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::scsi::PrState;

/// The state directory's reservation files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrStore {
    dir: PathBuf,
}

impl PrStore {
    /// Files under `state_dir/reservations`; nothing is created until something is saved.
    pub fn new(state_dir: &Path) -> Self {
        PrStore {
            dir: state_dir.join("reservations"),
        }
    }

    /// Where the state of LUN `lun` of `target` lives. iSCSI names hold no `/` (RFC 7143
    /// §4.2.7.2 allows only ASCII letters, digits, `.`, `-` and `:`), so a target name is a
    /// safe directory name.
    pub fn path(&self, target: &str, lun: u16) -> PathBuf {
        unit_file(&self.dir, target, lun)
    }

    /// What the unit had when the daemon stopped, as it is after a power on (SPC-4: only
    /// what APTPL kept, PRgeneration zero); `None` when nothing was saved.
    pub fn load(&self, target: &str, lun: u16) -> Result<Option<PrState>, String> {
        let path = self.path(target, lun);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let state: PrState =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Some(state.after_power_on()))
    }

    /// Saves `state` if APTPL is active, else removes what an earlier APTPL saved. Returns once
    /// the change is durable.
    pub fn save(&self, target: &str, lun: u16, state: &PrState) -> io::Result<()> {
        let path = self.path(target, lun);
        if !state.aptpl() {
            return remove_durably(&path);
        }
        let text = toml::to_string(state).map_err(io::Error::other)?;
        let header = "# ringtgt persistent reservations (APTPL); rewritten by the daemon.\n";
        write_durably(&path, &format!("{header}{text}"))
    }
}

/// The file of LUN `lun` of `target` under `dir`: `dir/<target, lowercase>/lun-<lun>.toml`.
pub(super) fn unit_file(dir: &Path, target: &str, lun: u16) -> PathBuf {
    dir.join(target.to_ascii_lowercase())
        .join(format!("lun-{lun}.toml"))
}

/// Replaces the file at `path` (creating its folders) with `text`, atomically: a temporary
/// file, fsync, rename over the old one, fsync of the folder. Returns once it is durable.
pub(super) fn write_durably(path: &Path, text: &str) -> io::Result<()> {
    let dir = path.parent().expect("a file under a folder");
    fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Removes the file at `path`, if there is one, durably.
pub(super) fn remove_durably(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().expect("a file under a folder")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::pr::{apply_out, parse_out, InitiatorPort, ItNexus};

    fn registered_with_aptpl(aptpl: bool) -> PrState {
        let mut state = PrState::default();
        let nexus = ItNexus {
            initiator: InitiatorPort::new("iqn.a", [0x40, 0, 0, 0, 0, 1]),
            relative_port: 1,
        };
        // REGISTER with SERVICE ACTION RESERVATION KEY 0x1234 and APTPL as asked.
        let cdb = [0x5f, 0x00, 0, 0, 0, 0, 0, 0, 24, 0];
        let mut params = vec![0u8; 24];
        params[8..16].copy_from_slice(&0x1234u64.to_be_bytes());
        params[20] = u8::from(aptpl);
        let request = parse_out(&cdb, &params).unwrap();
        apply_out(&mut state, &nexus, &request, &[1]).unwrap();
        state
    }

    #[test]
    fn aptpl_state_round_trips_and_turning_it_off_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = PrStore::new(dir.path());
        assert_eq!(store.load("iqn.t", 0).unwrap(), None);
        let state = registered_with_aptpl(true);
        store.save("iqn.t", 0, &state).unwrap();
        let back = store.load("iqn.t", 0).unwrap().unwrap();
        assert_eq!(back, state.after_power_on());
        assert_eq!(back.registrations().len(), 1);
        store
            .save("iqn.t", 0, &registered_with_aptpl(false))
            .unwrap();
        assert!(!store.path("iqn.t", 0).exists());
        assert_eq!(store.load("iqn.t", 0).unwrap(), None);
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = PrStore::new(dir.path());
        let path = store.path("iqn.t", 3);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "registrations = 7").unwrap();
        let err = store.load("iqn.t", 3).unwrap_err();
        assert!(err.contains("lun-3.toml"), "{err}");
    }
}
