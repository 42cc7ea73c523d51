//! The image's exclusive lock (librbd's `exclusive-lock` feature), taken by hand: the gateway
//! that holds it is the one that writes (ALUA active/optimized, `control::failover`).
//!
//! A lock taken with `rbd_lock_acquire` is not handed over on request: a peer's write or
//! acquire fails at once with EROFS while the holder is alive. Taking it from a holder that
//! still runs means breaking it, and librbd then adds the holder to the cluster's blocklist
//! first (`rbd_blocklist_on_break_lock`, on by default): from then on the OSDs refuse every
//! operation of the old holder's client, so its writes still queued anywhere can no longer land
//! after the new holder's. A holder that died is broken the same way.

use std::ffi::{c_char, CStr};

use super::{check, cstring, CephError, Image};

/// Most lock owners read at once (an exclusive lock has one; more would be a cluster oddity).
const MAX_OWNERS: usize = 8;

/// How [`Image::take_lock`] got the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Nobody held it, or librbd broke the lock of a dead holder by itself.
    Free,
    /// A holder was still registered: its lock was broken and its client blocklisted.
    Broken { owners: Vec<String> },
}

impl Image {
    /// Whether the image has the `exclusive-lock` feature (without it there is no lock to
    /// take, and nothing fences a gateway off).
    pub fn has_exclusive_lock(&self) -> Result<bool, CephError> {
        let mut features = 0u64;
        // SAFETY: the image is open and `features` is a valid out-pointer.
        let r = unsafe { rbd_sys::rbd_get_features(self.handle, &mut features) };
        check(r, || format!("{}: reading its features", self.label))?;
        Ok(features & u64::from(rbd_sys::RBD_FEATURE_EXCLUSIVE_LOCK) != 0)
    }

    /// Whether this client holds the image's exclusive lock. A client the cluster has
    /// blocklisted gets an error (ESHUTDOWN), not `false`.
    pub fn is_lock_owner(&self) -> Result<bool, CephError> {
        let mut owner = 0;
        // SAFETY: the image is open and `owner` is a valid out-pointer.
        let r = unsafe { rbd_sys::rbd_is_exclusive_lock_owner(self.handle, &mut owner) };
        check(r, || {
            format!("{}: asking for the exclusive lock's owner", self.label)
        })?;
        Ok(owner != 0)
    }

    /// Takes the exclusive lock if nobody alive holds it; EROFS if a live peer does.
    pub fn acquire_lock(&self) -> Result<(), CephError> {
        // SAFETY: the image is open; librbd blocks this thread (never a reactor's) until the
        // lock is ours or refused.
        let r = unsafe {
            rbd_sys::rbd_lock_acquire(
                self.handle,
                rbd_sys::rbd_lock_mode_t::RBD_LOCK_MODE_EXCLUSIVE,
            )
        };
        check(r, || format!("{}: taking the exclusive lock", self.label))
    }

    /// Gives the lock back (a gateway that stops hands over without being fenced).
    pub fn release_lock(&self) -> Result<(), CephError> {
        // SAFETY: the image is open.
        let r = unsafe { rbd_sys::rbd_lock_release(self.handle) };
        check(r, || {
            format!("{}: releasing the exclusive lock", self.label)
        })
    }

    /// The clients holding the lock, as librbd names them (`ADDR:PORT/NONCE`).
    pub fn lock_owners(&self) -> Result<Vec<String>, CephError> {
        let mut mode = rbd_sys::rbd_lock_mode_t::RBD_LOCK_MODE_EXCLUSIVE;
        let mut names: [*mut c_char; MAX_OWNERS] = [std::ptr::null_mut(); MAX_OWNERS];
        let mut count = MAX_OWNERS;
        // SAFETY: `names` has room for `count` pointers, which librbd fills with strings it
        // allocates and `rbd_lock_get_owners_cleanup` frees.
        let r = unsafe {
            rbd_sys::rbd_lock_get_owners(self.handle, &mut mode, names.as_mut_ptr(), &mut count)
        };
        if r == -libc::ENOENT {
            return Ok(Vec::new());
        }
        check(r, || format!("{}: listing the lock's owners", self.label))?;
        let count = count.min(MAX_OWNERS);
        let owners = names[..count]
            .iter()
            .filter(|p| !p.is_null())
            // SAFETY: librbd set each of the first `count` entries to a NUL-terminated string.
            .map(|&p| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
            .collect();
        // SAFETY: the `count` strings librbd allocated above, freed once.
        unsafe { rbd_sys::rbd_lock_get_owners_cleanup(names.as_mut_ptr(), count) };
        Ok(owners)
    }

    /// Breaks `owner`'s exclusive lock; librbd blocklists `owner` first.
    pub fn break_lock(&self, owner: &str) -> Result<(), CephError> {
        let owner_c = cstring(owner)?;
        // SAFETY: the image is open and `owner_c` is NUL-terminated and outlives the call.
        let r = unsafe {
            rbd_sys::rbd_lock_break(
                self.handle,
                rbd_sys::rbd_lock_mode_t::RBD_LOCK_MODE_EXCLUSIVE,
                owner_c.as_ptr(),
            )
        };
        check(r, || {
            format!("{}: breaking the exclusive lock of {owner}", self.label)
        })
    }

    /// Takes the exclusive lock whoever holds it: a holder still registered has its lock
    /// broken and is fenced off at once. (Asking first would wait, for a holder that hangs,
    /// until the cluster drops its watch: `osd_client_watch_timeout`, 30 s by default.)
    pub fn take_lock(&self) -> Result<Taken, CephError> {
        let owners = self.lock_owners()?;
        if owners.is_empty() {
            return self.acquire_lock().map(|()| Taken::Free);
        }
        for owner in &owners {
            self.break_lock(owner)?;
        }
        self.acquire_lock()?;
        Ok(Taken::Broken { owners })
    }
}
