//! Opening the backing stores at start-up: each LUN's settings left to the store (block size,
//! write cache) are taken from it, a medium reached by two paths is caught, and each LUN is
//! reported in one line.

use std::collections::HashMap;
use std::sync::Arc;

use crate::backstore::{identify, RbdSpec, Store, StoreError, StoreId, StoreKind, StoreSpec};
use crate::config::{format_size, Backing, Config, Failover, LunConfig};
use crate::daemon::StartError;

/// Each target's stores by LUN id.
pub type Stores = Vec<HashMap<u16, Arc<Store>>>;

/// The first LUN seen on a medium.
struct FirstUse {
    target: usize,
    lun: usize,
    read_only: bool,
    label: String,
    store: Arc<Store>,
}

/// Opens every LUN's store and returns them with `config` completed: every `block_size` and
/// `write_cache` is `Some` (the store's own where the configuration left it out).
pub fn open_stores(config: &Config) -> Result<(Config, Stores), StartError> {
    let mut resolved = config.clone();
    let mut seen: HashMap<StoreId, FirstUse> = HashMap::new();
    let mut all = Vec::new();
    for (ti, t) in resolved.targets.iter_mut().enumerate() {
        let mut luns = HashMap::new();
        for (li, l) in t.luns.iter_mut().enumerate() {
            let spec = store_spec(&l.backing, t.failover == Failover::RbdLock);
            let store_err = |source| StartError::Store {
                target: ti,
                lun: li,
                source,
            };
            let id = identify(&spec);
            let shared = match id.and_then(|id| seen.get(&id)) {
                Some(first) if !(first.read_only && l.read_only) => {
                    return Err(StartError::SharedMedium {
                        target: ti,
                        lun: li,
                        path: l.backing.to_string(),
                        first_target: first.target,
                        first_lun: first.lun,
                        first_path: first.label.clone(),
                    });
                }
                // Read-only twice: one descriptor serves both (a block device opens only once).
                Some(first) => Some(first.store.clone()),
                None => None,
            };
            let store = match shared {
                Some(s) => s,
                None => Arc::new(
                    Store::open_waiting(&spec, l.read_only, crate::retry::DEVICE_WINDOW)
                        .map_err(store_err)?,
                ),
            };
            complete(&t.name, l, &store).map_err(store_err)?;
            if let Some(id) = id {
                seen.entry(id).or_insert_with(|| FirstUse {
                    target: ti,
                    lun: li,
                    read_only: l.read_only,
                    label: store.label().to_string(),
                    store: store.clone(),
                });
            }
            luns.insert(l.id, store);
        }
        all.push(luns);
    }
    Ok((resolved, all))
}

/// Opens the store of a LUN added to a running daemon (`ringtgt ctl lun add`) and completes
/// `l` as [`open_stores`] does. (Never a gateway's: their LUNs change only with a restart.)
pub fn open_lun(target: &str, l: &mut LunConfig) -> Result<Arc<Store>, StoreError> {
    let store = Arc::new(Store::open(&store_spec(&l.backing, false), l.read_only)?);
    complete(target, l, &store)?;
    Ok(store)
}

/// Fills in what the configuration left to the store (block size, write cache) and reports
/// the LUN.
fn complete(target: &str, l: &mut LunConfig, store: &Store) -> Result<(), StoreError> {
    let block_size = store.block_size(l.block_size)?;
    l.block_size = Some(block_size);
    l.write_cache = Some(
        l.write_cache
            .unwrap_or(store.geometry().volatile_cache != Some(false)),
    );
    report(target, l, store, block_size);
    Ok(())
}

/// The store of `backing`; `gateway`: of a `failover = "rbd-lock"` target, whose RBD images
/// are opened without librbd's cache.
pub(crate) fn store_spec(backing: &Backing, gateway: bool) -> StoreSpec {
    match backing {
        Backing::Path(p) => StoreSpec::Path(p.clone()),
        Backing::Null { size } => StoreSpec::Null { size: *size },
        Backing::Ram { size } => StoreSpec::Ram { size: *size },
        Backing::Rbd(r) => StoreSpec::Rbd(RbdSpec {
            pool: r.pool.clone(),
            image: r.image.clone(),
            conf: r.conf.clone(),
            user: r.user.clone(),
            keyring: r.keyring.clone(),
            cache: !gateway,
        }),
    }
}

/// One line per LUN: where it lives, its size and block size, and how I/O reaches it; a warning
/// for a tail shorter than a block, which no initiator can reach.
fn report(target: &str, l: &LunConfig, store: &Store, block_size: u32) {
    let bs = u64::from(block_size);
    let blocks = store.size() / bs;
    let tail = store.size() % bs;
    let io = match store.kind() {
        StoreKind::Null => "none (reads zeros, discards writes)",
        StoreKind::Ram => "memory",
        StoreKind::Rbd => "librbd (asynchronous)",
        _ if store.is_direct() => "direct",
        _ => "buffered (page cache)",
    };
    tracing::info!(
        lun = l.id,
        target = %target,
        path = %l.backing,
        size = %format_size(blocks * bs),
        block_size,
        %io,
        read_only = l.read_only,
        write_cache = l.write_cache.unwrap_or(true),
        "serving LUN"
    );
    if tail > 0 {
        tracing::warn!(
            lun = l.id,
            target = %target,
            path = %store.label(),
            "size {} is not a multiple of the {block_size}-byte block size: the last {tail} bytes are not exported",
            store.size()
        );
    }
}
