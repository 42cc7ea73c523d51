//! Start-up: open the backing stores, build the shared context, bind the portals, start the
//! control thread and one pinned reactor per core.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::backstore::{RbdSpec, Store, StoreError, StoreKind, StoreSpec};
use crate::config::{
    self, Backing, ChapConfig, Config, CoreSpec, DigestPolicy as ConfDigest, IscsiTuning, Limits,
    LunConfig, TargetConfig,
};
use crate::control::SessionLimits;
use crate::login::{
    ChapAlgorithm as LoginChapAlgorithm, ChapCredentials, ChapPolicy, DigestPolicy, TargetEntry,
    TargetOffer,
};
use crate::reactor::{self, ConnLimits, ReactorSetup, StoreTable, WakeFd};
use crate::scsi::{LuInfo, LunMap};
use crate::session::{PortalContext, TargetRuntime, Tuning};

/// The preferred transfer size advertised in the Block Limits VPD page.
const OPTIMAL_TRANSFER_BYTES: u32 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("target[{target}].lun[{lun}]: {source}")]
    Store {
        target: usize,
        lun: usize,
        source: StoreError,
    },
    #[error("--cores: {0}")]
    Cores(String),
    #[error("portal {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start reactor: {0}")]
    Reactor(std::io::Error),
}

impl StartError {
    /// Configuration problems exit with 2 (like bad flags); runtime failures with 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            // A cluster that cannot be reached is a runtime failure, not a configuration one.
            StartError::Store { source, .. } if source.is_unavailable() => 1,
            StartError::Store { .. } | StartError::Cores(_) => 2,
            StartError::Bind { .. } | StartError::Reactor(_) => 1,
        }
    }
}

pub struct Daemon {
    reactors: Vec<JoinHandle<()>>,
    control: JoinHandle<()>,
}

impl Daemon {
    pub fn wait(self) {
        for r in self.reactors {
            let _ = r.join();
        }
        let _ = self.control.join();
    }
}

pub fn start(config: &Config) -> Result<Daemon, StartError> {
    let stores = open_stores(config)?;
    let ctx = Arc::new(build_context(config, &stores));
    let cpus = resolve_cores(&config.cores)?;
    let table = Arc::new(StoreTable { targets: stores });

    for &addr in &config.portals {
        reactor::ensure_free(addr).map_err(|source| StartError::Bind { addr, source })?;
    }
    let mut listeners = Vec::new();
    for _ in &cpus {
        let mut mine = Vec::new();
        for &addr in &config.portals {
            mine.push(reactor::bind(addr).map_err(|source| StartError::Bind { addr, source })?);
        }
        listeners.push(mine);
    }

    let session_limits = SessionLimits {
        max_sessions: config.limits.max_sessions as usize,
        max_sessions_per_initiator: config.limits.max_sessions_per_initiator as usize,
    };
    let (to_control, control_rx) = crossbeam_channel::unbounded();
    #[cfg(feature = "rbd")]
    watch_resizes(config, &table, &to_control);
    let mut links = Vec::new();
    let mut setups = Vec::new();
    for (index, (cpu, listeners)) in cpus.iter().zip(listeners).enumerate() {
        let (tx, inbox) = crossbeam_channel::unbounded();
        let wake = WakeFd::new().map_err(StartError::Reactor)?;
        links.push(crate::control::ReactorLink {
            tx,
            wake: wake.waker(),
        });
        setups.push(ReactorSetup {
            index,
            cpu: Some(*cpu),
            listeners,
            ctx: ctx.clone(),
            stores: table.clone(),
            to_control: to_control.clone(),
            inbox,
            wake,
            limits: ConnLimits::share(
                config.limits.max_connections as usize,
                config.limits.max_login_connections as usize,
                cpus.len(),
            ),
        });
    }
    let control = std::thread::Builder::new()
        .name("control".into())
        .spawn({
            let ctx = ctx.clone();
            move || crate::control::run(control_rx, links, session_limits, ctx)
        })
        .map_err(StartError::Reactor)?;
    let mut reactors = Vec::new();
    for s in setups {
        reactors.push(reactor::spawn(s).map_err(StartError::Reactor)?);
    }
    for p in &config.portals {
        tracing::info!(portal = %p, cores = ?cpus, "listening");
    }
    Ok(Daemon { reactors, control })
}

/// Has each RBD image report its resizes to the control thread, which publishes the new
/// capacity (and CAPACITY DATA HAS CHANGED) to every session.
#[cfg(feature = "rbd")]
fn watch_resizes(
    config: &Config,
    table: &StoreTable,
    to_control: &crossbeam_channel::Sender<crate::control::ToControl>,
) {
    for (target, (t, stores)) in config.targets.iter().zip(&table.targets).enumerate() {
        for l in &t.luns {
            let Some(image) = stores.get(&l.id).and_then(|s| s.rbd_image()) else {
                continue;
            };
            let (lun, bs, tx) = (l.id, u64::from(l.block_size), to_control.clone());
            let hook = move |bytes: u64| {
                let msg = crate::control::ToControl::Resized {
                    target,
                    lun,
                    blocks: bytes / bs,
                };
                // Gone only while the daemon stops.
                let _ = tx.send(msg);
            };
            if let Err(e) = image.watch_size(hook) {
                tracing::warn!(target = %t.name, lun, error = %e, "resizes of this image will not be seen until restart");
            }
        }
    }
}

fn open_stores(config: &Config) -> Result<Vec<HashMap<u16, Arc<Store>>>, StartError> {
    let mut all = Vec::new();
    for (ti, t) in config.targets.iter().enumerate() {
        let mut luns = HashMap::new();
        for (li, l) in t.luns.iter().enumerate() {
            let spec = match &l.backing {
                Backing::Path(p) => StoreSpec::Path(p.clone()),
                Backing::Null { size } => StoreSpec::Null { size: *size },
                Backing::Ram { size } => StoreSpec::Ram { size: *size },
                Backing::Rbd(r) => StoreSpec::Rbd(RbdSpec {
                    pool: r.pool.clone(),
                    image: r.image.clone(),
                    conf: r.conf.clone(),
                    user: r.user.clone(),
                    keyring: r.keyring.clone(),
                }),
            };
            let store = Store::open(&spec, l.read_only, l.block_size).map_err(|source| {
                StartError::Store {
                    target: ti,
                    lun: li,
                    source,
                }
            })?;
            if store.kind() == StoreKind::File && !store.is_direct() {
                tracing::warn!(
                    lun = l.id,
                    path = store.label(),
                    "LUN served through the page cache"
                );
            }
            luns.insert(l.id, Arc::new(store));
        }
        all.push(luns);
    }
    Ok(all)
}

fn build_context(config: &Config, stores: &[HashMap<u16, Arc<Store>>]) -> PortalContext {
    let tpg = config.portal_group_tag;
    let targets = config
        .targets
        .iter()
        .zip(stores)
        .map(|(t, s)| target_runtime(t, s, tpg, &config.iscsi))
        .collect();
    let login_targets = config
        .targets
        .iter()
        .map(|t| TargetEntry {
            name: t.name.clone(),
            alias: t.alias.clone(),
            allowed_initiators: t.allowed_initiators.clone(),
            allowed_networks: t.allowed_networks.clone(),
            chap: t.chap.as_ref().map(|c| Arc::new(chap_policy(c))),
        })
        .collect();
    PortalContext {
        targets,
        login_targets,
        portals: config.portals.clone(),
        portal_group_tag: tpg,
        offer: offer(&config.iscsi),
        tuning: tuning(&config.iscsi, &config.limits),
        discovery_chap: config.discovery_chap.as_ref().map(chap_policy),
    }
}

fn target_runtime(
    t: &TargetConfig,
    stores: &HashMap<u16, Arc<Store>>,
    tpg: u16,
    iscsi: &IscsiTuning,
) -> TargetRuntime {
    let mut runtime = TargetRuntime::new(t.name.clone(), lun_map(t, stores, tpg, iscsi));
    for acl in &t.acls {
        runtime.mask(&acl.initiator, &acl.luns);
    }
    runtime
}

/// The login layer's view of a CHAP configuration (validated when the config was loaded).
fn chap_policy(c: &ChapConfig) -> ChapPolicy {
    let algorithms = c.algorithms.iter().map(|a| chap_algorithm(*a)).collect();
    let credentials = |user: &str, secret: &config::ChapSecret| {
        ChapCredentials::new(user, secret.value.expose().to_vec())
    };
    let mut policy = ChapPolicy::new(credentials(&c.user, &c.secret));
    if let Some(m) = &c.mutual {
        policy = policy.with_mutual(credentials(&m.user, &m.secret));
    }
    policy.algorithms = algorithms;
    policy
}

fn chap_algorithm(a: config::ChapAlgorithm) -> LoginChapAlgorithm {
    match a {
        config::ChapAlgorithm::Md5 => LoginChapAlgorithm::Md5,
        config::ChapAlgorithm::Sha1 => LoginChapAlgorithm::Sha1,
        config::ChapAlgorithm::Sha256 => LoginChapAlgorithm::Sha256,
        config::ChapAlgorithm::Sha3_256 => LoginChapAlgorithm::Sha3_256,
    }
}

fn lun_map(
    t: &TargetConfig,
    stores: &HashMap<u16, Arc<Store>>,
    tpg: u16,
    iscsi: &IscsiTuning,
) -> LunMap {
    let units = t
        .luns
        .iter()
        .filter_map(|l| stores.get(&l.id).map(|s| lu_info(t, l, s, tpg, iscsi)))
        .collect();
    LunMap::new(units)
}

fn lu_info(
    t: &TargetConfig,
    l: &LunConfig,
    store: &Store,
    tpg: u16,
    iscsi: &IscsiTuning,
) -> LuInfo {
    let bs = l.block_size;
    LuInfo {
        lun: l.id,
        block_size: bs,
        num_blocks: store.size() / u64::from(bs),
        read_only: l.read_only,
        write_cache: l.write_cache,
        non_rotational: true,
        serial: l
            .serial
            .clone()
            .unwrap_or_else(|| derived_serial(&t.name, l.id)),
        vendor: "RINGTGT".into(),
        product: "VIRTUAL-DISK".into(),
        revision: "0001".into(),
        naa_id: naa_id(&t.name, l.id),
        target_name: t.name.clone(),
        relative_port_id: 1,
        tpg,
        max_transfer_blocks: iscsi.max_transfer_bytes / bs,
        optimal_transfer_blocks: OPTIMAL_TRANSFER_BYTES.min(iscsi.max_transfer_bytes) / bs,
        shared: Default::default(),
        removable: l.removable,
        store_compare_and_write: store.kind() == StoreKind::Rbd,
    }
}

/// A stable serial for a LUN without one: the same target name and LUN id always give the same
/// serial, so initiators see the same disk across restarts.
fn derived_serial(target: &str, lun: u16) -> String {
    format!("{:08x}{:04x}", crc32c::crc32c(target.as_bytes()), lun)
}

/// NAA IEEE Registered Extended designator (NAA=6, SPC-4 §7.8.6.6.5), derived stably from the
/// target name and LUN.
fn naa_id(target: &str, lun: u16) -> [u8; 16] {
    let mut id = [0u8; 16];
    for (i, chunk) in id.chunks_mut(4).enumerate() {
        let mut seed = target.as_bytes().to_vec();
        seed.extend_from_slice(&lun.to_be_bytes());
        seed.push(i as u8);
        chunk.copy_from_slice(&crc32c::crc32c(&seed).to_be_bytes());
    }
    id[0] = 0x60 | (id[0] & 0x0f);
    id
}

fn digest(p: ConfDigest) -> DigestPolicy {
    match p {
        ConfDigest::Never => DigestPolicy::Never,
        ConfDigest::Allow => DigestPolicy::Allow,
        ConfDigest::Require => DigestPolicy::Require,
    }
}

fn offer(c: &IscsiTuning) -> TargetOffer {
    TargetOffer {
        max_recv_data_segment_length: c.max_recv_data_segment_length,
        max_burst_length: c.max_burst_length,
        first_burst_length: c.first_burst_length,
        max_outstanding_r2t: c.max_outstanding_r2t,
        initial_r2t: c.initial_r2t,
        immediate_data: c.immediate_data,
        header_digest: digest(c.header_digest),
        data_digest: digest(c.data_digest),
        default_time2wait: c.default_time2wait,
        default_time2retain: c.default_time2retain,
        max_connections: 1,
        error_recovery_level: 0,
    }
}

fn tuning(c: &IscsiTuning, limits: &Limits) -> Tuning {
    use std::time::Duration;
    Tuning {
        queue_depth: c.queue_depth,
        nop_interval: (c.nop_in_interval_secs > 0)
            .then(|| Duration::from_secs(c.nop_in_interval_secs.into())),
        nop_timeout: Duration::from_secs(c.nop_in_timeout_secs.into()),
        login_timeout: Duration::from_secs(c.login_timeout_secs.into()),
        connection_buffer_bytes: usize::try_from(limits.connection_buffer_bytes)
            .unwrap_or(usize::MAX),
    }
}

/// The CPUs to pin reactors to: the first N, or the listed ids, all of which must exist.
fn resolve_cores(spec: &CoreSpec) -> Result<Vec<usize>, StartError> {
    let available: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let describe = || {
        format!(
            "this machine has {} cores ({:?})",
            available.len(),
            available
        )
    };
    match spec {
        CoreSpec::Count(n) => {
            if *n == 0 || *n > available.len() {
                return Err(StartError::Cores(format!(
                    "cannot run {n} reactors: {}",
                    describe()
                )));
            }
            Ok(available[..*n].to_vec())
        }
        CoreSpec::List(ids) => {
            if let Some(bad) = ids.iter().find(|id| !available.contains(id)) {
                return Err(StartError::Cores(format!(
                    "core {bad} is not available: {}",
                    describe()
                )));
            }
            Ok(ids.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naa_designator_has_type_6_and_is_stable() {
        let a = naa_id("iqn.2026-11.io.ringtgt:a", 0);
        assert_eq!(a[0] >> 4, 6);
        assert_eq!(a, naa_id("iqn.2026-11.io.ringtgt:a", 0));
        assert_ne!(a, naa_id("iqn.2026-11.io.ringtgt:a", 1));
    }

    #[test]
    fn too_many_cores_is_a_config_error() {
        let err = resolve_cores(&CoreSpec::Count(100_000)).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().starts_with("--cores:"), "{err}");
        assert!(resolve_cores(&CoreSpec::List(vec![99_999])).is_err());
    }
}
