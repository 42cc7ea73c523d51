//! Start-up: open the backing stores, build the shared context, bind the portals, start the
//! control thread and one pinned reactor per core.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::backstore::{Store, StoreError, StoreKind};
use crate::config::{
    self, ChapConfig, Config, CoreSpec, DigestPolicy as ConfDigest, IscsiTuning, Limits, LunConfig,
    TargetConfig,
};
use crate::control::live::Runtime;
use crate::control::pr_store::PrStore;
use crate::control::sanitize_store::SanitizeStore;
use crate::control::{ControlSetup, LogControl, Reloader, SessionLimits};
use crate::login::{
    ChapCredentials, ChapPolicy, DigestPolicy, PortalGroup, TargetEntry, TargetOffer,
};
use crate::reactor::{self, place, ConnLimits, ReactorSetup, StoreTable, WakeFd};
use crate::scsi::alua::{AccessState, PortGroups};
use crate::scsi::{BlockGeometry, LuInfo, LunMap};
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
    #[error(
        "target[{target}].lun[{lun}]: {path} is the same medium as target[{first_target}].lun[{first_lun}] \
         ({first_path}); one file or device may back two LUNs only if both are read-only"
    )]
    SharedMedium {
        target: usize,
        lun: usize,
        path: String,
        first_target: usize,
        first_lun: usize,
        first_path: String,
    },
    #[error("--cores: {0}")]
    Cores(String),
    #[error("portal {addr}: {source}{}", bind_hint(source))]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start reactor: {0}")]
    Reactor(std::io::Error),
    #[error("persistent reservations: {0}")]
    Reservations(String),
    /// A gateway target (`failover = "rbd-lock"`) that could not be set up safely.
    #[error("{0}")]
    Gateway(String),
    #[error("{0}")]
    Admin(#[from] crate::control::admin::AdminError),
    #[error("metrics at {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// What to do about an address that is taken.
fn bind_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        " (another program listens there, or a connection uses it as its local port: choose \
         another address with --portal ADDR, or `portals` in the config file)"
    } else {
        ""
    }
}

impl StartError {
    /// Configuration problems exit with 2 (like bad flags); runtime failures with 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            // A cluster that cannot be reached is a runtime failure, not a configuration one.
            StartError::Store { source, .. } if source.is_unavailable() => 1,
            StartError::Store { .. } | StartError::SharedMedium { .. } | StartError::Cores(_) => 2,
            StartError::Bind { .. }
            | StartError::Reactor(_)
            | StartError::Reservations(_)
            | StartError::Gateway(_)
            | StartError::Admin(_)
            | StartError::Metrics { .. } => 1,
        }
    }
}

pub struct Daemon {
    reactors: Vec<JoinHandle<()>>,
    control: JoinHandle<bool>,
    to_control: crossbeam_channel::Sender<crate::control::ToControl>,
    /// Sanitize records still being written when the daemon stops are waited for.
    journals: SanitizeStore,
}

impl Daemon {
    /// A way to stop the daemon from another thread (a signal handler, which names the
    /// signal): reactors stop listening, sessions are asked to log out within the shutdown
    /// grace, and [`Daemon::wait`] returns once the connections are gone.
    pub fn stopper(&self) -> impl FnOnce(&'static str) + Send + 'static {
        let tx = self.to_control.clone();
        move |signal| {
            let _ = tx.send(crate::control::ToControl::Shutdown { signal });
        }
    }

    /// A way to reload the configuration from another thread (SIGHUP); the outcome is logged.
    pub fn reloader(&self) -> impl Fn() + Send + 'static {
        let tx = self.to_control.clone();
        move || {
            // Nobody waits for the answer: the control thread logs it.
            let (reply, _) = crossbeam_channel::bounded(1);
            let request = crate::control::admin::protocol::Request::Reload;
            let _ = tx.send(crate::control::ToControl::Admin { request, reply });
        }
    }

    /// Waits until the daemon has stopped and its stores are flushed; false if a write cache
    /// could not be flushed (data initiators wrote may be lost).
    pub fn wait(self) -> bool {
        for r in self.reactors {
            let _ = r.join();
        }
        let _ = self.to_control.send(crate::control::ToControl::Exit);
        let flushed = self.control.join().unwrap_or(false);
        if !self.journals.flush(JOURNAL_FLUSH_LIMIT) {
            tracing::error!(
                "sanitize records were still being written at exit: a unit whose sanitize \
                 completed may start failed (ringtgt ctl lun accept-medium ends that)"
            );
        }
        flushed
    }
}

/// How long an exiting daemon waits for the sanitize records it was still writing.
const JOURNAL_FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

pub fn start(config: &Config) -> Result<Daemon, StartError> {
    start_with(config, None, None)
}

/// Starts the daemon; `log` lets `ringtgt ctl log-level` change the log filter, `reload`
/// reads the configuration again for SIGHUP and `ringtgt ctl reload`.
pub fn start_with(
    config: &Config,
    log: Option<LogControl>,
    reload: Option<Reloader>,
) -> Result<Daemon, StartError> {
    reactor::start_heap_trimmer();
    let (config, stores) = crate::startup::open_stores(config)?;
    let config = &config;
    let ctx = Arc::new(build_context(config, &stores));
    let pr_store = PrStore::new(&config.state_dir);
    restore_reservations(&ctx, &pr_store)?;
    let journals = SanitizeStore::new(&config.state_dir);
    journals.attach(&ctx, &stores);
    let devices: Vec<u64> = stores
        .iter()
        .flat_map(|luns| luns.values())
        .filter_map(|s| s.device_number())
        .collect();
    let cpus = resolve_cores(&config.cores, &devices, Path::new(crate::numa::SYSFS))?;
    let table = Arc::new(StoreTable::new(stores.clone()));
    let (to_control, control_rx) = crossbeam_channel::unbounded();
    let runtime = Runtime::new(
        config.clone(),
        stores,
        ctx.clone(),
        table.clone(),
        to_control.clone(),
        journals.clone(),
    )
    .map_err(StartError::Gateway)?;

    // One listener per portal, on the accepting reactor (see `reactor::place`).
    let mut listeners = Vec::new();
    for &addr in &config.portals {
        // A daemon that has just exited may still hold the address for a moment.
        let l = crate::retry::while_errno(libc::EADDRINUSE, crate::retry::WINDOW, || {
            reactor::bind(addr)
        })
        .map_err(|source| StartError::Bind { addr, source })?;
        listeners.push(l);
    }

    let session_limits = SessionLimits {
        max_sessions: config.limits.max_sessions as usize,
        max_sessions_per_initiator: config.limits.max_sessions_per_initiator as usize,
    };
    let mut links = Vec::new();
    let mut handoffs = Vec::new();
    let mut setups = Vec::new();
    let loads = place::Loads::new(cpus.len());
    for (index, cpu) in cpus.iter().enumerate() {
        let (tx, inbox) = crossbeam_channel::unbounded();
        let wake = WakeFd::new().map_err(StartError::Reactor)?;
        links.push(crate::control::ReactorLink {
            tx,
            wake: wake.waker(),
        });
        let (handoff, incoming) = place::handoff(wake.waker());
        handoffs.push(handoff);
        setups.push(ReactorSetup {
            index,
            cpu: Some(*cpu),
            accept: None,
            loads: loads.clone(),
            handoffs: incoming,
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
            poll: std::time::Duration::from_micros(config.poll_us.into()),
            coalesce: std::time::Duration::from_micros(config.coalesce_us.into()),
            recv_ring_buffers: config.recv_ring_buffers,
        });
    }
    // The first reactor accepts for all of them.
    let Some(first) = setups.first_mut() else {
        return Err(StartError::Cores("no core to run a reactor on".into()));
    };
    first.accept = Some((listeners, place::Placer::new(loads, handoffs)));
    start_admin(config, &to_control)?;
    if let Some(addr) = config.metrics_addr {
        crate::control::metrics::serve(addr, to_control.clone())
            .map_err(|source| StartError::Metrics { addr, source })?;
    }
    let setup = ControlSetup {
        limits: session_limits,
        runtime,
        store: pr_store,
        log,
        reload,
    };
    let control = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || crate::control::run(control_rx, links, setup))
        .map_err(StartError::Reactor)?;
    // Every reactor is made before any serves: should one fail, the others end unstarted.
    let mut ready = Vec::new();
    for s in setups {
        ready.push(reactor::spawn(s).map_err(StartError::Reactor)?);
    }
    let reactors = ready.into_iter().map(reactor::Ready::run).collect();
    for p in &config.portals {
        tracing::info!(portal = %p, cores = %CoreSpec::List(cpus.clone()), "listening");
    }
    Ok(Daemon {
        reactors,
        control,
        to_control,
        journals,
    })
}

/// Opens the admin socket. At the default path, a failure (typically an unprivileged user who
/// cannot create `/run/ringtgt`) is reported and the daemon serves iSCSI without the socket:
/// the storage service matters more than its control channel. A path the operator chose must
/// work, or the start fails.
fn start_admin(
    config: &Config,
    to_control: &crossbeam_channel::Sender<crate::control::ToControl>,
) -> Result<(), StartError> {
    match crate::control::admin::serve(&config.admin_socket, to_control.clone()) {
        Ok(()) => Ok(()),
        Err(e) if config.admin_socket == crate::config::default_admin_socket() => {
            tracing::warn!(
                "{e}; running without the admin socket (`ringtgt ctl` cannot reach this daemon: \
                 run as a user who may create it, or give --admin-socket PATH)"
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Gives each logical unit the reservations APTPL kept across the last stop. A file that
/// cannot be read stops the start: running without reservations that initiators were promised
/// would let a fenced-off node write.
fn restore_reservations(ctx: &PortalContext, store: &PrStore) -> Result<(), StartError> {
    for t in &ctx.targets {
        for lu in t.luns.iter() {
            let Some(pr) = store
                .load(&t.name, lu.lun)
                .map_err(StartError::Reservations)?
            else {
                continue;
            };
            tracing::info!(
                target = %t.name,
                lun = lu.lun,
                registrations = pr.registrations().len(),
                reserved = pr.reservation().is_some(),
                "restored persistent reservations (APTPL)"
            );
            let now = lu.shared.snapshot();
            lu.shared.publish(now.successor(pr, Vec::new()));
        }
    }
    Ok(())
}

fn build_context(config: &Config, stores: &[HashMap<u16, Arc<Store>>]) -> PortalContext {
    let tpg = config.portal_group_tag;
    let targets = config
        .targets
        .iter()
        .zip(stores)
        .map(|(t, s)| target_runtime(t, s, tpg, &config.iscsi))
        .collect();
    let login_targets = config.targets.iter().map(login_entry).collect();
    context_of(config, targets, login_targets)
}

/// The portal context of `config` with these targets (by index) and login entries.
pub(crate) fn context_of(
    config: &Config,
    targets: Vec<TargetRuntime>,
    login_targets: Vec<TargetEntry>,
) -> PortalContext {
    PortalContext {
        targets,
        login_targets,
        portals: config.portals.clone(),
        portal_group_tag: config.portal_group_tag,
        offer: offer(&config.iscsi),
        tuning: tuning(&config.iscsi, &config.limits),
        discovery_chap: config.discovery_chap.as_ref().map(chap_policy),
    }
}

/// What the login layer needs of a target.
pub(crate) fn login_entry(t: &TargetConfig) -> TargetEntry {
    TargetEntry {
        name: t.name.clone(),
        alias: t.alias.clone(),
        allowed_initiators: t.allowed_initiators.clone(),
        allowed_networks: t.allowed_networks.clone(),
        chap: t.chap.as_ref().map(|c| Arc::new(chap_policy(c))),
        portal_groups: t
            .port_groups
            .iter()
            .filter(|g| !g.remote)
            .map(|g| PortalGroup {
                tag: g.id,
                portals: g.portals.clone(),
            })
            .collect(),
    }
}

fn target_runtime(
    t: &TargetConfig,
    stores: &HashMap<u16, Arc<Store>>,
    tpg: u16,
    iscsi: &IscsiTuning,
) -> TargetRuntime {
    target_runtime_with(t, stores, tpg, iscsi, &|_| None)
}

/// A target's runtime; `reuse` gives the shared state a unit already has (reservations, unit
/// attentions, medium) when a running daemon rebuilds the target.
pub(crate) fn target_runtime_with(
    t: &TargetConfig,
    stores: &HashMap<u16, Arc<Store>>,
    tpg: u16,
    iscsi: &IscsiTuning,
    reuse: &dyn Fn(u16) -> Option<Arc<crate::scsi::shared::LuShared>>,
) -> TargetRuntime {
    let groups = if t.port_groups.is_empty() {
        PortGroups::single(tpg)
    } else {
        let states: Vec<_> = t
            .port_groups
            .iter()
            .map(|g| (g.id, access_state(g.state)))
            .collect();
        match t.failover {
            config::Failover::None => PortGroups::new(&states),
            config::Failover::RbdLock => PortGroups::gateway(&states),
        }
    };
    let units = t
        .luns
        .iter()
        .filter_map(|l| {
            let store = stores.get(&l.id)?;
            let mut lu = lu_info(t, l, store, iscsi);
            if let Some(shared) = reuse(l.id) {
                lu.shared = shared;
            }
            Some(lu)
        })
        .collect();
    let mut runtime = TargetRuntime::with_port_groups(t.name.clone(), LunMap::new(units), groups);
    for acl in &t.acls {
        runtime.mask(&acl.initiator, &acl.luns);
    }
    runtime
}

/// The login layer's view of a CHAP configuration (validated when the config was loaded).
fn chap_policy(c: &ChapConfig) -> ChapPolicy {
    let algorithms = c.algorithms.clone();
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

pub(crate) fn access_state(s: config::AluaState) -> AccessState {
    match s {
        config::AluaState::ActiveOptimized => AccessState::ActiveOptimized,
        config::AluaState::ActiveNonOptimized => AccessState::ActiveNonOptimized,
        config::AluaState::Standby => AccessState::Standby,
        config::AluaState::Unavailable => AccessState::Unavailable,
    }
}

fn lu_info(t: &TargetConfig, l: &LunConfig, store: &Store, iscsi: &IscsiTuning) -> LuInfo {
    // `startup::open_stores` has set the block size and write cache of every LUN.
    let bs = l.block_size.unwrap_or(crate::backstore::MIN_BLOCK);
    let geometry = store.geometry();
    LuInfo {
        lun: l.id,
        block_size: bs,
        num_blocks: store.size() / u64::from(bs),
        read_only: l.read_only,
        write_cache: l.write_cache.unwrap_or(true),
        non_rotational: geometry.rotational != Some(true),
        serial: l
            .serial
            .clone()
            .unwrap_or_else(|| derived_serial(&t.name, l.id)),
        vendor: "RINGTGT".into(),
        product: "VIRTUAL-DISK".into(),
        revision: "0001".into(),
        naa_id: naa_id(&t.name, l.id),
        target_name: t.name.clone(),
        max_transfer_blocks: iscsi.max_transfer_bytes / bs,
        optimal_transfer_blocks: optimal_transfer_bytes(geometry, iscsi) / bs,
        shared: Default::default(),
        removable: l.removable,
        geometry: BlockGeometry {
            physical_block_size: geometry.physical_block,
            thin: geometry.thin,
            unmap_granularity_bytes: geometry.discard_granularity,
        },
        store_compare_and_write: store.kind() == StoreKind::Rbd,
        sanitize_rate: l.sanitize_rate,
        reads_zeros: store.kind() == StoreKind::Null,
        sanitizable: !matches!(t.failover, config::Failover::RbdLock),
    }
}

/// OPTIMAL TRANSFER LENGTH: the device's optimal I/O size when it gives one, else 1 MiB or
/// the largest request it takes unsplit if smaller; never above MAXIMUM TRANSFER LENGTH.
/// (MAXIMUM TRANSFER LENGTH itself stays `max_transfer_bytes`: the kernel splits requests.)
fn optimal_transfer_bytes(g: &crate::backstore::Geometry, iscsi: &IscsiTuning) -> u32 {
    // An "optimal" size of one block says nothing about transfers (QEMU's NVMe namespaces,
    // and some real ones, give their block size), and Linux caps every request at OPTIMAL
    // TRANSFER LENGTH: it would send nothing larger than a block.
    let optimal = match g.optimal_io {
        o if o <= g.physical_block.max(g.logical_block) => 0,
        o => o,
    };
    let preferred = match (optimal, g.max_io) {
        (0, 0) => OPTIMAL_TRANSFER_BYTES,
        (0, max) => OPTIMAL_TRANSFER_BYTES.min(max),
        (optimal, _) => optimal,
    };
    preferred.min(iscsi.max_transfer_bytes)
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

/// The CPUs to pin reactors to: the first N, or the listed ids, all of which must exist; by
/// default those of the NUMA node nearest the block devices `devices` (read in `sysfs`), else
/// all (`crate::numa`). Says which in one line.
fn resolve_cores(spec: &CoreSpec, devices: &[u64], sysfs: &Path) -> Result<Vec<usize>, StartError> {
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
    let cpus = match spec {
        CoreSpec::Auto => {
            if available.is_empty() {
                return Err(StartError::Cores(
                    "cannot tell which cores this process may run on; give --cores".into(),
                ));
            }
            // A CPU quota (cgroup) may allow fewer cores than the affinity mask lists.
            let limit = std::thread::available_parallelism().map_or(available.len(), |n| n.get());
            let placement = crate::numa::default_cores(sysfs, devices, &available, limit);
            placement.log();
            return Ok(placement.cpus);
        }
        CoreSpec::Count(n) => {
            if *n == 0 || *n > available.len() {
                return Err(StartError::Cores(format!(
                    "cannot run {n} reactors: {}",
                    describe()
                )));
            }
            let placement = crate::numa::counted_cores(sysfs, devices, &available, *n);
            if let Some(node) = placement.nearest_node() {
                let cores = CoreSpec::List(placement.cpus.clone());
                tracing::info!(
                    %cores,
                    "reactor cores: as configured (cores = {spec}), NUMA node {node} first \
                     (nearest the exported block devices)"
                );
                return Ok(placement.cpus);
            }
            placement.cpus
        }
        CoreSpec::List(ids) => {
            if let Some(bad) = ids.iter().find(|id| !available.contains(id)) {
                return Err(StartError::Cores(format!(
                    "core {bad} is not available: {}",
                    describe()
                )));
            }
            ids.clone()
        }
    };
    let cores = CoreSpec::List(cpus.clone());
    tracing::info!(%cores, "reactor cores: as configured (cores = {spec})");
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_optimal_size_of_one_block_is_not_an_optimal_transfer_length() {
        let iscsi = IscsiTuning::default();
        let g = |optimal_io, max_io| crate::backstore::Geometry {
            logical_block: 4096,
            physical_block: 4096,
            optimal_io,
            max_io,
            ..crate::backstore::Geometry::default()
        };
        // QEMU's NVMe namespace: optimal_io_size 4096, max 512 KiB.
        assert_eq!(
            optimal_transfer_bytes(&g(4096, 512 << 10), &iscsi),
            512 << 10
        );
        assert_eq!(
            optimal_transfer_bytes(&g(0, 0), &iscsi),
            OPTIMAL_TRANSFER_BYTES.min(iscsi.max_transfer_bytes)
        );
        // A stripe width is a real preference.
        assert_eq!(
            optimal_transfer_bytes(&g(128 << 10, 512 << 10), &iscsi),
            128 << 10
        );
    }

    #[test]
    fn naa_designator_has_type_6_and_is_stable() {
        let a = naa_id("iqn.2026-11.io.ringtgt:a", 0);
        assert_eq!(a[0] >> 4, 6);
        assert_eq!(a, naa_id("iqn.2026-11.io.ringtgt:a", 0));
        assert_ne!(a, naa_id("iqn.2026-11.io.ringtgt:a", 1));
    }

    #[test]
    fn too_many_cores_is_a_config_error() {
        let sysfs = Path::new(crate::numa::SYSFS);
        let err = resolve_cores(&CoreSpec::Count(100_000), &[], sysfs).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().starts_with("--cores:"), "{err}");
        assert!(resolve_cores(&CoreSpec::List(vec![99_999]), &[], sysfs).is_err());
    }

    #[test]
    fn a_list_of_cores_wins_over_the_numa_default_and_a_count_starts_on_its_node() {
        let available: Vec<usize> = core_affinity::get_core_ids()
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        let (first, last) = (available[0], available[available.len() - 1]);
        // The device is on node 1, whose only core is the last available one.
        let node1 = last.to_string();
        let fake = crate::numa::fake::FakeSysfs::with_nodes("0-1", &["4095", &node1]);
        let dev = fake.nvme(0, "1");
        let resolve = |spec| resolve_cores(&spec, &[dev], fake.root()).unwrap();
        assert_eq!(resolve(CoreSpec::Auto), [last]);
        assert_eq!(resolve(CoreSpec::Count(1)), [last]);
        if available.len() > 1 {
            assert_eq!(resolve(CoreSpec::Count(2)), [last, first]);
        }
        assert_eq!(resolve(CoreSpec::List(vec![first])), [first]);
    }
}
