//! Command line (clap derive) and the translation of `ringtgt serve` flags into a [`Config`].
//!
//! Single-value checks (addresses, networks, core lists, iSCSI names, number ranges, sizes,
//! digest policies) are done by clap while parsing, so a bad value is reported as clap's usage
//! error. Everything that depends on several flags, the `--lun` specs and the secret files is
//! checked by [`ServeArgs::to_config`], whose errors name the flag
//! (`--lun "foo:12": unknown store kind "foo"`).
//!
//! CHAP secrets are only taken from files: a secret on the command line would be visible to
//! every user through the process list and shell history.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::config::{
    default_portal, format_size, parse_backing, parse_cores, parse_network, parse_portal,
    parse_size, read_secret_file, validate_iscsi_name, ChapConfig, ChapSecret, Config, ConfigError,
    ConfigWarning, CoreSpec, DigestPolicy, IscsiTuning, Limits, LunConfig, MutualChap,
    TargetConfig, MAX_LUN_ID,
};

/// ringtgt: a thread-per-core io_uring iSCSI target.
#[derive(Debug, Parser)]
#[command(name = "ringtgt", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the iSCSI target daemon (from a config file, from flags, or as a demo).
    Serve(Box<ServeArgs>),
    /// Ask a running daemon, or change it, through its admin socket.
    Ctl(crate::ctl::CtlArgs),
    /// Check a configuration file and print the configuration it makes, every default
    /// explicit; exits with 2 when the file is not valid.
    CheckConfig {
        /// The TOML file `ringtgt serve --config` would read.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print a shell completion script (e.g. `ringtgt completions bash >
    /// /usr/share/bash-completion/completions/ringtgt`).
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the man page in roff (e.g. `ringtgt man > /usr/share/man/man8/ringtgt.8`).
    Man,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, with the fields of its spans (connection: peer, core,
    /// initiator, ISID, TSIH, CID).
    Json,
}

const SERVE_EXAMPLES: &str = "\
Examples:
  # Export an image file and a 512 MiB RAM disk on one IPv4 and one IPv6 address:
  ringtgt serve --portal 10.0.0.5:3260 --portal '[fd00::5]:3260' \\
      --target iqn.2026-11.io.ringtgt:disk1 \\
      --lun /var/lib/ringtgt/disk1.img --lun ram:512MiB

  # Run from a config file on CPUs 0-3, insisting on CRC32C digests:
  ringtgt serve --config /etc/ringtgt.toml --cores 0-3 \\
      --header-digest require --data-digest require";

const PORTAL_HELP: &str = "\
Listen on this address; repeat for several portals.

IPv4 as 10.0.0.5:3260, IPv6 as [fd00::5]:3260; without a port, 3260 is used. \
Default 127.0.0.1:3260. Given with --config, replaces the file's portals.";

/// Flags of `ringtgt serve`.
#[derive(Debug, Clone, Default, Args)]
#[command(after_help = SERVE_EXAMPLES)]
pub struct ServeArgs {
    /// Read portals, targets, LUNs and tuning from this TOML file.
    ///
    /// --portal, --cores, the tuning flags (--header-digest, --data-digest, --queue-depth,
    /// --nop-interval, --nop-timeout), --shutdown-grace, the limit flags (--max-sessions,
    /// --max-sessions-per-initiator, --max-connections, --max-login-connections,
    /// --connection-buffer) and --discovery-chap-user/--discovery-chap-secret-file override the
    /// file; the target and LUN flags (--target, --lun, --alias, --block-size, --read-only,
    /// --allow-initiator, --allow-network, --chap-user, --chap-secret-file, --mutual-chap-user,
    /// --mutual-chap-secret-file) cannot be combined with it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Listen on this address; repeat for several portals.
    #[arg(long = "portal", value_name = "ADDR", value_parser = parse_portal, long_help = PORTAL_HELP)]
    pub portals: Vec<SocketAddr>,

    /// iSCSI name of the target to export, e.g. iqn.2026-11.io.ringtgt:disk1.
    ///
    /// Also accepted: eui. + 16 hex digits, naa. + 16 or 32 hex digits. Needs at least one --lun.
    #[arg(long, value_name = "IQN", value_parser = parse_iscsi_name)]
    pub target: Option<String>,

    /// Human-readable alias of the target (TargetAlias), shown by initiators.
    #[arg(long, value_name = "TEXT")]
    pub alias: Option<String>,

    /// Add a LUN to the target; repeat for more. LUNs are numbered 0, 1, … in the order given.
    ///
    /// SPEC is a file or block-device path (/dev/nvme0n1, disk.img, file:PATH for paths that
    /// contain ':'), an NVMe generic device (/dev/ng0n1: NVMe passthrough), null:SIZE (reads zeros, discards writes), ram:SIZE (lost on exit) or
    /// rbd:POOL/IMAGE (a Ceph RBD image, reached as client.admin through $CEPH_CONF or
    /// /etc/ceph/ceph.conf; other clients need a config file). SIZE is like 4096, 512MiB,
    /// 10G (= GiB) or 1TB (= 10^12 bytes).
    #[arg(long = "lun", value_name = "SPEC")]
    pub luns: Vec<String>,

    /// Logical block size of every --lun: 512 or 4096 (default: the store's own, 512 for RAM,
    /// null and most files).
    #[arg(long, value_name = "BYTES", value_parser = parse_block_size)]
    pub block_size: Option<u32>,

    /// Export every --lun write-protected.
    #[arg(long)]
    pub read_only: bool,

    /// Only let this initiator log in; repeat for more. Default: any initiator may log in.
    #[arg(long = "allow-initiator", value_name = "IQN", value_parser = parse_iscsi_name)]
    pub allowed_initiators: Vec<String>,

    /// Only accept logins from this source network (CIDR, e.g. 10.0.0.0/24 or fd00::/64); repeat
    /// for more. Default: any address.
    #[arg(long = "allow-network", value_name = "CIDR", value_parser = parse_network)]
    pub allowed_networks: Vec<IpNet>,

    /// Require initiators to log in to the --target with CHAP as this user; needs
    /// --chap-secret-file.
    #[arg(long, value_name = "USER")]
    pub chap_user: Option<String>,

    /// File holding the CHAP secret of --chap-user: 12..=255 bytes, one trailing newline ignored.
    ///
    /// Secrets are only read from files, never taken on the command line. A file that group or
    /// others can access is logged as a warning.
    #[arg(long, value_name = "FILE")]
    pub chap_secret_file: Option<PathBuf>,

    /// Mutual CHAP: the --target proves itself to initiators as this user; needs --chap-user and
    /// --mutual-chap-secret-file.
    #[arg(long, value_name = "USER")]
    pub mutual_chap_user: Option<String>,

    /// File holding the target's secret for --mutual-chap-user (must differ from the
    /// --chap-secret-file secret).
    #[arg(long, value_name = "FILE")]
    pub mutual_chap_secret_file: Option<PathBuf>,

    /// Require discovery sessions to log in with CHAP as this user; needs
    /// --discovery-chap-secret-file.
    #[arg(long, value_name = "USER")]
    pub discovery_chap_user: Option<String>,

    /// File holding the CHAP secret of --discovery-chap-user.
    #[arg(long, value_name = "FILE")]
    pub discovery_chap_secret_file: Option<PathBuf>,

    /// Cores to run on: a count (4), a list of CPU ids to pin to (0-3,8; 5-5 for CPU 5 alone) or
    /// auto.
    ///
    /// Default (auto): on a machine with several NUMA nodes, the cores of the node that holds the
    /// most exported block devices; otherwise every core available to the process. A count
    /// takes that node's cores first, then the others.
    #[arg(long, value_name = "SPEC", value_parser = parse_cores)]
    pub cores: Option<CoreSpec>,

    /// Header digest policy (default allow).
    #[arg(long, value_name = "POLICY", value_enum)]
    pub header_digest: Option<DigestPolicy>,

    /// Data digest policy (default allow).
    #[arg(long, value_name = "POLICY", value_enum)]
    pub data_digest: Option<DigestPolicy>,

    /// Commands an initiator may have in flight per session, 1..=4096 (default 128).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub queue_depth: Option<u32>,

    /// Send a NOP-In ping after this many idle seconds; 0 turns keepalive off (default 5).
    #[arg(long = "nop-interval", value_name = "SECS")]
    pub nop_interval: Option<u32>,

    /// Drop a connection whose NOP-In ping is not answered within this many seconds (default 15).
    #[arg(long = "nop-timeout", value_name = "SECS", value_parser = clap::value_parser!(u32).range(1..))]
    pub nop_timeout: Option<u32>,

    /// On SIGTERM/SIGINT, give initiators this many seconds to log out before their
    /// connections are closed, 0..=3600; 0 closes them at once (default 10). Given with
    /// --config, replaces the file's shutdown_grace_secs.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub shutdown_grace: Option<u32>,

    /// Microseconds an idle reactor polls its ring before it sleeps, 0..=1000 (default 0: sleep
    /// at once). For nodes whose cores belong to the target. Given with --config, replaces the
    /// file's poll_us.
    #[arg(long = "poll-us", value_name = "US", value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub poll_us: Option<u32>,

    /// Microseconds a reactor's wait may gather completions, 0..=1000 (default 0: never), after a
    /// turn of small receives from initiators keeping 8 or more requests outstanding: fewer
    /// wake-ups and fuller sends for initiators that send each PDU on its own (libiscsi), at
    /// most this much latency added to a turn. Given with --config, replaces the file's
    /// coalesce_us.
    #[arg(long = "coalesce-us", value_name = "US", value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub coalesce_us: Option<u32>,

    /// Buffers of 64 KiB in each reactor's receive ring, 0..=4096 (default 128; 0 = none).
    /// Connections waiting for a PDU hold no buffer; the kernel picks one from the ring when
    /// data arrives. Given with --config, replaces the file's recv_ring_buffers.
    #[arg(long = "recv-ring-buffers", value_name = "N", value_parser = clap::value_parser!(u16).range(0..=4096))]
    pub recv_ring_buffers: Option<u16>,

    /// Most sessions at once, normal and discovery together, 1..=65535 (default 1024).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub max_sessions: Option<u32>,

    /// Most sessions at once of one initiator, 1..=65535 and at most --max-sessions (default 64).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub max_sessions_per_initiator: Option<u32>,

    /// Most TCP connections at once, in any phase, 1..=1000000 (default 4096).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: Option<u32>,

    /// Most connections in the login phase at once, 1..=--max-connections (default 256).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_login_connections: Option<u32>,

    /// Per-connection budget of buffered data, e.g. 32MiB (the default).
    ///
    /// Counts read data waiting to be sent and write data not yet on disk. At least 1MiB and at
    /// least the MaxBurstLength (iscsi.max_burst_length), so that one burst always fits.
    #[arg(long = "connection-buffer", value_name = "SIZE", value_parser = parse_size)]
    pub connection_buffer: Option<u64>,

    /// Export a demo target iqn.2026-11.io.ringtgt:demo with one LUN backed by an image file.
    ///
    /// The image is --demo-image or ringtgt-demo.img in the temporary directory. --portal,
    /// --cores and the tuning flags still apply.
    #[arg(long)]
    pub demo: bool,

    /// Image file of the --demo LUN (default: ringtgt-demo.img in the temporary directory).
    #[arg(long, value_name = "PATH")]
    pub demo_image: Option<PathBuf>,

    /// Directory for state that survives a restart (persistent reservations with APTPL).
    /// Default /var/lib/ringtgt. Given with --config, replaces the file's state_dir.
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Log filter: a level (error, warn, info, debug, trace) or directives such as
    /// info,ringtgt::login=debug. Default: $RUST_LOG, else info. `ringtgt ctl log-level`
    /// changes it while the daemon runs.
    #[arg(long, value_name = "LEVEL_OR_FILTER", value_parser = parse_log_filter)]
    pub log: Option<String>,

    /// Log lines as text (default) or JSON objects.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,

    /// Unix socket for `ringtgt ctl` (default /run/ringtgt/ctl.sock). Given with --config,
    /// replaces the file's admin_socket.
    #[arg(long, value_name = "PATH")]
    pub admin_socket: Option<PathBuf>,

    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9830). Given with
    /// --config, replaces the file's metrics_addr.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}

fn parse_iscsi_name(s: &str) -> Result<String, String> {
    validate_iscsi_name(s).map(|()| s.to_string())
}

/// Levels a log directive may name (`tracing` also takes `off`).
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Checks a `--log` filter. `tracing` reads a bare word that is not a level as a target name,
/// so `--log warning` would silently log nothing; here a directive without `=` must be a level,
/// and a target names its level (`ringtgt::login=debug`).
fn parse_log_filter(s: &str) -> Result<String, String> {
    let levels = LOG_LEVELS.join(", ");
    for directive in s.split(',').map(str::trim) {
        let level = match directive.rsplit_once('=') {
            Some((_, level)) => level,
            None => directive,
        };
        if !LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{directive:?} is not a log level ({levels}) or TARGET=LEVEL directive"
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

fn parse_block_size(s: &str) -> Result<u32, String> {
    match s.trim() {
        "512" => Ok(512),
        "4096" => Ok(4096),
        _ => Err(format!("must be 512 or 4096, got {s:?}")),
    }
}

/// Image file used by `--demo` when `--demo-image` is not given.
pub fn default_demo_image() -> PathBuf {
    std::env::temp_dir().join("ringtgt-demo.img")
}

impl ServeArgs {
    /// Builds and validates the configuration these flags describe, reading the config file and
    /// the secret files they name. Also returns the warnings found on the way (e.g. a secret file
    /// that group or others can read) for the caller to log.
    pub fn to_config(&self) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
        let mut warnings = Vec::new();
        if self.demo_image.is_some() && !self.demo {
            return Err(ConfigError::Flag {
                flag: "--demo-image".into(),
                problem: "only used with --demo".into(),
            });
        }
        let mut config = if let Some(path) = &self.config {
            if self.demo {
                return Err(ConfigError::Conflict {
                    flag: "--demo",
                    other: "--config",
                });
            }
            self.reject_target_flags("--config")?;
            let (config, file_warnings) = Config::load(path)?;
            warnings.extend(file_warnings);
            config
        } else if self.demo {
            self.reject_target_flags("--demo")?;
            Config::demo(self.demo_image.clone().unwrap_or_else(default_demo_image))
        } else {
            self.config_from_flags(&mut warnings)?
        };
        self.apply_overrides(&mut config, &mut warnings)?;
        config.validate().map_err(|e| self.blame_flag(e))?;
        Ok((config, warnings))
    }

    /// Names of the given flags that describe the target and its LUNs.
    fn target_flags(&self) -> Vec<&'static str> {
        let given = [
            ("--target", self.target.is_some()),
            ("--lun", !self.luns.is_empty()),
            ("--alias", self.alias.is_some()),
            ("--block-size", self.block_size.is_some()),
            ("--read-only", self.read_only),
            ("--allow-initiator", !self.allowed_initiators.is_empty()),
            ("--allow-network", !self.allowed_networks.is_empty()),
            ("--chap-user", self.chap_user.is_some()),
            ("--chap-secret-file", self.chap_secret_file.is_some()),
            ("--mutual-chap-user", self.mutual_chap_user.is_some()),
            (
                "--mutual-chap-secret-file",
                self.mutual_chap_secret_file.is_some(),
            ),
        ];
        given
            .into_iter()
            .filter_map(|(name, on)| on.then_some(name))
            .collect()
    }

    fn reject_target_flags(&self, other: &'static str) -> Result<(), ConfigError> {
        match self.target_flags().first() {
            Some(flag) => Err(ConfigError::Conflict { flag, other }),
            None => Ok(()),
        }
    }

    fn config_from_flags(&self, warnings: &mut Vec<ConfigWarning>) -> Result<Config, ConfigError> {
        let Some(name) = &self.target else {
            let problem = if self.luns.is_empty() {
                "required: give --target and --lun, or --config FILE, or --demo"
            } else {
                "required with --lun"
            };
            return Err(ConfigError::Flag {
                flag: "--target".into(),
                problem: problem.into(),
            });
        };
        if self.luns.is_empty() {
            return Err(ConfigError::Flag {
                flag: "--lun".into(),
                problem: "at least one is required with --target".into(),
            });
        }
        let mut luns = Vec::with_capacity(self.luns.len());
        for (i, spec) in self.luns.iter().enumerate() {
            let flag = || format!("--lun {spec:?}");
            let backing = parse_backing(spec).map_err(|problem| ConfigError::Flag {
                flag: flag(),
                problem,
            })?;
            let id = u16::try_from(i)
                .ok()
                .filter(|id| *id <= MAX_LUN_ID)
                .ok_or_else(|| ConfigError::Flag {
                    flag: flag(),
                    problem: format!("too many LUNs, at most {}", u32::from(MAX_LUN_ID) + 1),
                })?;
            let mut lun = LunConfig::new(id, backing);
            lun.block_size = self.block_size;
            lun.read_only = self.read_only;
            luns.push(lun);
        }
        Ok(Config {
            portals: vec![default_portal()],
            targets: vec![TargetConfig {
                alias: self.alias.clone(),
                allowed_initiators: self.allowed_initiators.clone(),
                allowed_networks: self.allowed_networks.clone(),
                chap: self.target_chap(warnings)?,
                ..TargetConfig::new(name.clone(), luns)
            }],
            iscsi: IscsiTuning::default(),
            cores: CoreSpec::default(),
            portal_group_tag: 1,
            discovery_chap: None,
            limits: Limits::default(),
            state_dir: crate::config::default_state_dir(),
            admin_socket: crate::config::default_admin_socket(),
            metrics_addr: None,
            shutdown_grace_secs: crate::config::DEFAULT_SHUTDOWN_GRACE_SECS,
            poll_us: 0,
            coalesce_us: crate::config::DEFAULT_COALESCE_US,
            recv_ring_buffers: crate::config::DEFAULT_RECV_RING_BUFFERS,
        })
    }

    /// CHAP of the --target from --chap-user and --mutual-chap-user and their secret files.
    fn target_chap(
        &self,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<Option<ChapConfig>, ConfigError> {
        let mutual = credential(
            ("--mutual-chap-user", self.mutual_chap_user.as_ref()),
            (
                "--mutual-chap-secret-file",
                self.mutual_chap_secret_file.as_ref(),
            ),
            warnings,
        )?;
        let chap = credential(
            ("--chap-user", self.chap_user.as_ref()),
            ("--chap-secret-file", self.chap_secret_file.as_ref()),
            warnings,
        )?;
        match (chap, mutual) {
            (None, Some(_)) => Err(ConfigError::Flag {
                flag: "--mutual-chap-user".into(),
                problem: "requires --chap-user".into(),
            }),
            (None, None) => Ok(None),
            (Some((user, secret)), mutual) => Ok(Some(ChapConfig {
                mutual: mutual.map(|(user, secret)| MutualChap { user, secret }),
                ..ChapConfig::new(user, secret)
            })),
        }
    }

    fn apply_overrides(
        &self,
        config: &mut Config,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<(), ConfigError> {
        if !self.portals.is_empty() {
            config.portals = self.portals.clone();
        }
        if let Some(dir) = &self.state_dir {
            config.state_dir = std::path::absolute(dir).map_err(|e| ConfigError::Flag {
                flag: format!("--state-dir {}", dir.display()),
                problem: e.to_string(),
            })?;
        }
        if let Some(path) = &self.admin_socket {
            config.admin_socket = std::path::absolute(path).map_err(|e| ConfigError::Flag {
                flag: format!("--admin-socket {}", path.display()),
                problem: e.to_string(),
            })?;
        }
        if let Some(addr) = self.metrics {
            config.metrics_addr = Some(addr);
        }
        if let Some(cores) = &self.cores {
            config.cores = cores.clone();
        }
        if let Some(secs) = self.shutdown_grace {
            config.shutdown_grace_secs = secs;
        }
        if let Some(us) = self.poll_us {
            config.poll_us = us;
        }
        if let Some(us) = self.coalesce_us {
            config.coalesce_us = us;
        }
        if let Some(n) = self.recv_ring_buffers {
            config.recv_ring_buffers = n;
        }
        let t = &mut config.iscsi;
        if let Some(d) = self.header_digest {
            t.header_digest = d;
        }
        if let Some(d) = self.data_digest {
            t.data_digest = d;
        }
        if let Some(n) = self.queue_depth {
            t.queue_depth = n;
        }
        if let Some(n) = self.nop_interval {
            t.nop_in_interval_secs = n;
        }
        if let Some(n) = self.nop_timeout {
            t.nop_in_timeout_secs = n;
        }
        let l = &mut config.limits;
        if let Some(n) = self.max_sessions {
            l.max_sessions = n;
        }
        if let Some(n) = self.max_sessions_per_initiator {
            l.max_sessions_per_initiator = n;
        }
        if let Some(n) = self.max_connections {
            l.max_connections = n;
        }
        if let Some(n) = self.max_login_connections {
            l.max_login_connections = n;
        }
        if let Some(n) = self.connection_buffer {
            l.connection_buffer_bytes = n;
        }
        let discovery = credential(
            ("--discovery-chap-user", self.discovery_chap_user.as_ref()),
            (
                "--discovery-chap-secret-file",
                self.discovery_chap_secret_file.as_ref(),
            ),
            warnings,
        )?;
        if let Some((user, secret)) = discovery {
            config.discovery_chap = Some(ChapConfig::new(user, secret));
        }
        Ok(())
    }

    /// Re-labels a validation error with the flag that supplied the offending value, when a
    /// flag did (a value from the config file keeps its field path).
    fn blame_flag(&self, err: ConfigError) -> ConfigError {
        let ConfigError::Invalid { field, problem } = err else {
            return err;
        };
        match self.flag_for_field(&field) {
            Some(flag) => ConfigError::Flag { flag, problem },
            None => ConfigError::Invalid { field, problem },
        }
    }

    fn flag_for_field(&self, field: &str) -> Option<String> {
        let index = |prefix: &str| -> Option<usize> {
            field.strip_prefix(prefix)?.strip_suffix(']')?.parse().ok()
        };
        if let Some(i) = index("portals[") {
            return self.portals.get(i).map(|p| format!("--portal {p}"));
        }
        if field == "cores" {
            return self.cores.as_ref().map(|c| format!("--cores {c}"));
        }
        // Flags that override a config file too. A secret file flag is named without its
        // value: the problem already names the path.
        let overriding = [
            (
                "limits.max_sessions",
                self.max_sessions.map(|n| format!("--max-sessions {n}")),
            ),
            (
                "limits.max_sessions_per_initiator",
                self.max_sessions_per_initiator
                    .map(|n| format!("--max-sessions-per-initiator {n}")),
            ),
            (
                "limits.max_connections",
                self.max_connections
                    .map(|n| format!("--max-connections {n}")),
            ),
            (
                "limits.max_login_connections",
                self.max_login_connections
                    .map(|n| format!("--max-login-connections {n}")),
            ),
            (
                "limits.connection_buffer_bytes",
                self.connection_buffer
                    .map(|n| format!("--connection-buffer {}", format_size(n))),
            ),
            (
                "discovery.chap.user",
                self.discovery_chap_user
                    .as_ref()
                    .map(|u| format!("--discovery-chap-user {u:?}")),
            ),
            (
                "discovery.chap.secret_file",
                self.discovery_chap_secret_file
                    .as_ref()
                    .map(|_| "--discovery-chap-secret-file".to_string()),
            ),
        ];
        if let Some((_, flag)) = overriding.into_iter().find(|(f, _)| *f == field) {
            return flag;
        }
        if self.config.is_some() {
            return None;
        }
        if self.demo {
            return (field == "target[0].lun[0].path").then(|| "--demo-image".to_string());
        }
        if field == "target[0].name" {
            return self.target.as_ref().map(|t| format!("--target {t:?}"));
        }
        if field == "target[0].alias" {
            return self.alias.as_ref().map(|a| format!("--alias {a:?}"));
        }
        if let Some(i) = index("target[0].allowed_initiators[") {
            let name = self.allowed_initiators.get(i)?;
            return Some(format!("--allow-initiator {name:?}"));
        }
        if let Some(i) = index("target[0].allowed_networks[") {
            let net = self.allowed_networks.get(i)?;
            return Some(format!("--allow-network {net}"));
        }
        if let Some(key) = field.strip_prefix("target[0].chap.") {
            return match key {
                "user" => self
                    .chap_user
                    .as_ref()
                    .map(|u| format!("--chap-user {u:?}")),
                "mutual_user" => self
                    .mutual_chap_user
                    .as_ref()
                    .map(|u| format!("--mutual-chap-user {u:?}")),
                "secret_file" => Some("--chap-secret-file".into()),
                "mutual_secret_file" => Some("--mutual-chap-secret-file".into()),
                _ => None,
            };
        }
        let lun = field.strip_prefix("target[0].lun[")?.split_once(']')?.0;
        let spec = self.luns.get(lun.parse::<usize>().ok()?)?;
        Some(format!("--lun {spec:?}"))
    }
}

/// A user flag and its secret-file flag, given both or neither; reads the secret file.
fn credential(
    (user_flag, user): (&'static str, Option<&String>),
    (file_flag, file): (&'static str, Option<&PathBuf>),
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Option<(String, ChapSecret)>, ConfigError> {
    let requires = |flag: &str, other: &str| ConfigError::Flag {
        flag: flag.into(),
        problem: format!("requires {other}"),
    };
    match (user, file) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(requires(user_flag, file_flag)),
        (None, Some(_)) => Err(requires(file_flag, user_flag)),
        (Some(user), Some(path)) => {
            let (secret, warning) =
                read_secret_file(path).map_err(|problem| ConfigError::Flag {
                    flag: file_flag.into(),
                    problem,
                })?;
            if let Some(problem) = warning {
                warnings.push(ConfigWarning {
                    field: file_flag.into(),
                    problem,
                });
            }
            Ok(Some((user.clone(), secret)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Backing, DEMO_TARGET};

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let argv = ["ringtgt", "serve"].iter().chain(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Serve(a) => *a,
            _ => unreachable!("serve was given"),
        })
    }

    fn config(args: &[&str]) -> Result<Config, String> {
        let a = parse(args).map_err(|e| format!("clap: {e}"))?;
        a.to_config().map(|(c, _)| c).map_err(|e| e.to_string())
    }

    fn config_err(args: &[&str]) -> String {
        match config(args) {
            Ok(c) => panic!("expected an error for {args:?}, got {c:#?}"),
            Err(e) => e,
        }
    }

    fn clap_err(args: &[&str]) -> String {
        match parse(args) {
            Ok(a) => panic!("expected a clap error for {args:?}, got {a:#?}"),
            Err(e) => e.to_string(),
        }
    }

    const T: &str = "iqn.2026-11.io.ringtgt:disk1";

    #[test]
    fn flags_build_one_target_with_numbered_luns() {
        let c = config(&[
            "--target",
            T,
            "--alias",
            "disk one",
            "--lun",
            "/dev/sdb",
            "--lun",
            "ram:512MiB",
            "--lun",
            "null:1G",
            "--block-size",
            "4096",
            "--read-only",
            "--allow-initiator",
            "iqn.1993-08.org.debian:01:abcdef",
        ])
        .unwrap();
        assert_eq!(c.portals, vec!["127.0.0.1:3260".parse().unwrap()]);
        assert_eq!(c.targets.len(), 1);
        let t = &c.targets[0];
        assert_eq!(t.name, T);
        assert_eq!(t.alias.as_deref(), Some("disk one"));
        assert_eq!(
            t.allowed_initiators,
            vec!["iqn.1993-08.org.debian:01:abcdef"]
        );
        let ids: Vec<u16> = t.luns.iter().map(|l| l.id).collect();
        assert_eq!(ids, [0, 1, 2]);
        assert_eq!(t.luns[0].backing, Backing::Path("/dev/sdb".into()));
        assert_eq!(t.luns[1].backing, Backing::Ram { size: 512 << 20 });
        assert_eq!(t.luns[2].backing, Backing::Null { size: 1 << 30 });
        assert!(t
            .luns
            .iter()
            .all(|l| l.block_size == Some(4096) && l.read_only && l.write_cache.is_none()));
        assert_eq!(c.iscsi, crate::config::IscsiTuning::default());
    }

    #[test]
    fn tuning_flags_apply() {
        let c = config(&[
            "--target",
            T,
            "--lun",
            "null:1G",
            "--portal",
            "[::1]:3261",
            "--portal",
            "10.0.0.5",
            "--cores",
            "0-3,8",
            "--header-digest",
            "require",
            "--data-digest",
            "never",
            "--queue-depth",
            "64",
            "--nop-interval",
            "0",
            "--nop-timeout",
            "30",
            "--log",
            "info,ringtgt::login=debug",
        ])
        .unwrap();
        assert_eq!(
            c.portals,
            vec![
                "[::1]:3261".parse().unwrap(),
                "10.0.0.5:3260".parse().unwrap()
            ]
        );
        assert_eq!(c.cores, CoreSpec::List(vec![0, 1, 2, 3, 8]));
        assert_eq!(c.iscsi.header_digest, DigestPolicy::Require);
        assert_eq!(c.iscsi.data_digest, DigestPolicy::Never);
        assert_eq!(c.iscsi.queue_depth, 64);
        assert_eq!(c.iscsi.nop_in_interval_secs, 0);
        assert_eq!(c.iscsi.nop_in_timeout_secs, 30);
    }

    #[test]
    fn log_filter_is_kept_for_main() {
        let a = parse(&["--demo", "--log", "debug"]).unwrap();
        assert_eq!(a.log.as_deref(), Some("debug"));
        assert_eq!(parse(&["--demo"]).unwrap().log, None);
        for good in ["WARN", "info,ringtgt::login=debug", "ringtgt=trace", "off"] {
            assert!(parse(&["--demo", "--log", good]).is_ok(), "{good}");
        }
        for bad in ["warning", "info,verbose", "ringtgt=loud", "", "info,"] {
            let e = clap_err(&["--demo", "--log", bad]);
            assert!(e.contains("--log <LEVEL_OR_FILTER>"), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_lun_spec_names_the_flag_and_value() {
        assert_eq!(
            config_err(&["--target", T, "--lun", "foo:12"]),
            "--lun \"foo:12\": unknown store kind \"foo\" (use null:SIZE, ram:SIZE, rbd:POOL/IMAGE, file:PATH or a path)"
        );
        let e = config_err(&["--target", T, "--lun", "/x", "--lun", "null:1000"]);
        assert_eq!(
            e,
            "--lun \"null:1000\": size 1000 is not a multiple of block_size 512"
        );
        let e = config_err(&["--target", T, "--lun", "ram:12Q"]);
        assert!(e.starts_with("--lun \"ram:12Q\": unknown size unit"), "{e}");
        let e = config_err(&["--target", T, "--lun", "/x", "--lun", "/x"]);
        assert!(
            e.starts_with("--lun \"/x\": /x is already used by target[0].lun[0]"),
            "{e}"
        );
    }

    #[test]
    fn target_and_lun_are_required_without_config_or_demo() {
        assert!(config_err(&[]).starts_with("--target: required"));
        assert_eq!(
            config_err(&["--lun", "/x"]),
            "--target: required with --lun"
        );
        assert_eq!(
            config_err(&["--target", T]),
            "--lun: at least one is required with --target"
        );
    }

    #[test]
    fn flag_values_are_checked_by_clap() {
        let cases: [(&[&str], &str); 10] = [
            (&["--target", "disk1"], "--target <IQN>"),
            (&["--allow-initiator", "IQN.X"], "--allow-initiator <IQN>"),
            (&["--portal", "localhost:3260"], "--portal <ADDR>"),
            (&["--cores", "3-1"], "reversed range"),
            (&["--cores", "0"], "at least 1"),
            (&["--block-size", "1000"], "must be 512 or 4096"),
            (&["--queue-depth", "0"], "--queue-depth <N>"),
            (&["--queue-depth", "4097"], "--queue-depth <N>"),
            (&["--nop-timeout", "0"], "--nop-timeout <SECS>"),
            (&["--header-digest", "crc32c"], "--header-digest <POLICY>"),
        ];
        for (args, want) in cases {
            let e = clap_err(args);
            assert!(e.contains(want), "{args:?}: {e}");
        }
        assert!(clap_err(&["--bogus"]).contains("--bogus"));
    }

    #[test]
    fn config_file_with_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ringtgt.toml");
        std::fs::write(
            &file,
            format!(
                "portals = [\"10.0.0.1:3260\"]\ncores = 2\n[iscsi]\nqueue_depth = 32\nheader_digest = \"never\"\n\
                 [[target]]\nname = \"{T}\"\n[[target.lun]]\npath = \"ram:1GiB\"\n"
            ),
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let plain = config(&["--config", f]).unwrap();
        assert_eq!(plain.portals, vec!["10.0.0.1:3260".parse().unwrap()]);
        assert_eq!(plain.cores, CoreSpec::Count(2));
        assert_eq!(plain.iscsi.queue_depth, 32);
        assert_eq!(plain.iscsi.header_digest, DigestPolicy::Never);

        let c = config(&[
            "--config",
            f,
            "--portal",
            "[::]:3260",
            "--portal",
            "0.0.0.0:3260",
            "--cores",
            "1-2",
            "--header-digest",
            "require",
            "--data-digest",
            "require",
            "--queue-depth",
            "512",
            "--nop-interval",
            "9",
            "--nop-timeout",
            "99",
        ])
        .unwrap();
        assert_eq!(
            c.portals,
            vec![
                "[::]:3260".parse().unwrap(),
                "0.0.0.0:3260".parse().unwrap()
            ]
        );
        assert_eq!(c.cores, CoreSpec::List(vec![1, 2]));
        assert_eq!(c.iscsi.header_digest, DigestPolicy::Require);
        assert_eq!(c.iscsi.data_digest, DigestPolicy::Require);
        assert_eq!(c.iscsi.queue_depth, 512);
        assert_eq!(c.iscsi.nop_in_interval_secs, 9);
        assert_eq!(c.iscsi.nop_in_timeout_secs, 99);
        assert_eq!(c.targets, plain.targets);

        let e = config_err(&[
            "--config",
            f,
            "--portal",
            "1.2.3.4:5",
            "--portal",
            "1.2.3.4:5",
        ]);
        assert_eq!(e, "--portal 1.2.3.4:5: 1.2.3.4:5 is listed twice");
    }

    #[test]
    fn config_file_excludes_target_flags() {
        let cases: [(&[&str], &str); 11] = [
            (&["--lun", "/x"], "--lun cannot be combined with --config"),
            (
                &["--target", T],
                "--target cannot be combined with --config",
            ),
            (
                &["--alias", "a"],
                "--alias cannot be combined with --config",
            ),
            (
                &["--block-size", "4096"],
                "--block-size cannot be combined with --config",
            ),
            (
                &["--read-only"],
                "--read-only cannot be combined with --config",
            ),
            (
                &["--allow-initiator", T],
                "--allow-initiator cannot be combined with --config",
            ),
            (
                &["--allow-network", "10.0.0.0/8"],
                "--allow-network cannot be combined with --config",
            ),
            (
                &["--chap-user", "alice"],
                "--chap-user cannot be combined with --config",
            ),
            (
                &["--chap-secret-file", "/s"],
                "--chap-secret-file cannot be combined with --config",
            ),
            (
                &["--mutual-chap-user", "t"],
                "--mutual-chap-user cannot be combined with --config",
            ),
            (
                &["--mutual-chap-secret-file", "/s"],
                "--mutual-chap-secret-file cannot be combined with --config",
            ),
        ];
        for (extra, want) in cases {
            let mut args = vec!["--config", "/nonexistent/ringtgt.toml"];
            args.extend_from_slice(extra);
            assert_eq!(config_err(&args), want);
        }
        assert_eq!(
            config_err(&["--config", "/x.toml", "--demo"]),
            "--demo cannot be combined with --config"
        );
    }

    #[test]
    fn config_file_errors_pass_through() {
        let e = config_err(&["--config", "/nonexistent/ringtgt.toml"]);
        assert!(
            e.starts_with("/nonexistent/ringtgt.toml: cannot read config file: "),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(
            &file,
            "[[target]]\nname = \"x\"\n[[target.lun]]\npath = \"/x\"\n",
        )
        .unwrap();
        let e = config_err(&["--config", file.to_str().unwrap()]);
        assert!(e.starts_with("target[0].name: "), "{e}");
    }

    #[test]
    fn demo_uses_the_default_image_and_honours_portal_and_cores() {
        let c = config(&["--demo"]).unwrap();
        assert_eq!(c, {
            let mut d = Config::demo(default_demo_image());
            d.cores = c.cores.clone();
            d
        });
        assert_eq!(c.targets[0].name, DEMO_TARGET);
        assert_eq!(
            c.targets[0].luns[0].backing,
            Backing::Path(std::env::temp_dir().join("ringtgt-demo.img"))
        );

        let c = config(&[
            "--demo",
            "--demo-image",
            "/srv/demo.img",
            "--portal",
            "[::1]:3260",
            "--cores",
            "1",
        ])
        .unwrap();
        assert_eq!(
            c.targets[0].luns[0].backing,
            Backing::Path("/srv/demo.img".into())
        );
        assert_eq!(c.portals, vec!["[::1]:3260".parse().unwrap()]);
        assert_eq!(c.cores, CoreSpec::Count(1));
    }

    #[test]
    fn demo_rules() {
        assert_eq!(
            config_err(&["--demo", "--lun", "/x"]),
            "--lun cannot be combined with --demo"
        );
        assert_eq!(
            config_err(&["--demo", "--target", T]),
            "--target cannot be combined with --demo"
        );
        assert_eq!(
            config_err(&["--demo-image", "/x"]),
            "--demo-image: only used with --demo"
        );
        assert!(clap_err(&["--demo", "--demo-image", ""]).contains("--demo-image"));
        let args = ServeArgs {
            demo: true,
            demo_image: Some(PathBuf::new()),
            ..ServeArgs::default()
        };
        let e = args.to_config().unwrap_err().to_string();
        assert_eq!(e, "--demo-image: path must not be empty");
    }

    #[test]
    fn help_explains_every_flag_and_shows_examples() {
        let e = clap_err(&["--help"]);
        assert!(e.contains("Examples:"));
        assert!(e.contains("ringtgt serve --config /etc/ringtgt.toml"));
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let serve = Cli::command();
        let serve = serve.find_subcommand("serve").unwrap();
        // tests/cli.rs checks the binary's help against a written-out list of the flags.
        for arg in serve.get_arguments() {
            if arg.get_id() != "help" && arg.get_id() != "version" {
                assert!(arg.get_help().is_some(), "{} has no help", arg.get_id());
                let flag = format!("--{}", arg.get_long().unwrap());
                assert!(
                    e.contains(&format!("{flag} ")) || e.contains(&format!("{flag}\n")),
                    "{flag}"
                );
            }
        }
    }

    /// Writes a secret file with `mode` into `dir` and returns its path as a string.
    fn secret_file(dir: &std::path::Path, name: &str, contents: &str, mode: u32) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.to_str().unwrap().to_string()
    }

    #[test]
    fn access_flags_build_the_target_chap_and_networks() {
        let dir = tempfile::tempdir().unwrap();
        let alice = secret_file(dir.path(), "alice", "alice-secret-1\n", 0o600);
        let disk = secret_file(dir.path(), "disk", "disk1-secret-22\r\n", 0o600);
        let (c, warnings) = parse(&[
            "--target",
            T,
            "--lun",
            "null:1G",
            "--allow-network",
            "10.0.0.0/24",
            "--allow-network",
            "fd00::/64",
            "--chap-user",
            "alice",
            "--chap-secret-file",
            &alice,
            "--mutual-chap-user",
            "disk1",
            "--mutual-chap-secret-file",
            &disk,
        ])
        .unwrap()
        .to_config()
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let t = &c.targets[0];
        let nets: Vec<String> = t.allowed_networks.iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["10.0.0.0/24", "fd00::/64"]);
        let chap = t.chap.as_ref().unwrap();
        assert_eq!(chap.user, "alice");
        assert_eq!(chap.secret.value.expose(), b"alice-secret-1");
        assert_eq!(
            chap.secret.source,
            crate::config::SecretSource::File(alice.into())
        );
        let mutual = chap.mutual.as_ref().unwrap();
        assert_eq!(mutual.user, "disk1");
        assert_eq!(mutual.secret.value.expose(), b"disk1-secret-22");
        assert_eq!(chap.algorithms, ChapConfig::DEFAULT_ALGORITHMS);
        assert_eq!(c.discovery_chap, None);
        assert_eq!(c.limits, Limits::default());
    }

    #[test]
    fn chap_flags_come_in_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let s = secret_file(dir.path(), "s", "alice-secret-1", 0o600);
        let t = ["--target", T, "--lun", "null:1G"];
        let cases: [(&[&str], &str); 7] = [
            (
                &["--chap-user", "a"],
                "--chap-user: requires --chap-secret-file",
            ),
            (
                &["--chap-secret-file", &s],
                "--chap-secret-file: requires --chap-user",
            ),
            (
                &[
                    "--chap-user",
                    "a",
                    "--chap-secret-file",
                    &s,
                    "--mutual-chap-user",
                    "t",
                ],
                "--mutual-chap-user: requires --mutual-chap-secret-file",
            ),
            (
                &[
                    "--chap-user",
                    "a",
                    "--chap-secret-file",
                    &s,
                    "--mutual-chap-secret-file",
                    &s,
                ],
                "--mutual-chap-secret-file: requires --mutual-chap-user",
            ),
            (
                &["--mutual-chap-user", "t", "--mutual-chap-secret-file", &s],
                "--mutual-chap-user: requires --chap-user",
            ),
            (
                &["--discovery-chap-user", "d"],
                "--discovery-chap-user: requires --discovery-chap-secret-file",
            ),
            (
                &["--discovery-chap-secret-file", &s],
                "--discovery-chap-secret-file: requires --discovery-chap-user",
            ),
        ];
        for (extra, want) in cases {
            let mut args = t.to_vec();
            args.extend_from_slice(extra);
            assert_eq!(config_err(&args), want, "{extra:?}");
        }
    }

    #[test]
    fn secret_file_problems_name_the_flag_but_never_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let good = secret_file(d, "good", "alice-secret-1\n", 0o600);
        let short = secret_file(d, "short", "tiny-secret\n", 0o600);
        let missing = d.join("missing").to_str().unwrap().to_string();
        let base = ["--target", T, "--lun", "null:1G"];
        let run = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            let e = config_err(&args);
            assert!(
                !e.contains("alice-secret-1") && !e.contains("tiny-secret"),
                "{e}"
            );
            e
        };
        let e = run(&["--chap-user", "a", "--chap-secret-file", &missing]);
        assert!(
            e.starts_with(&format!(
                "--chap-secret-file: cannot read secret file {missing}: "
            )),
            "{e}"
        );
        assert_eq!(
            run(&["--chap-user", "a", "--chap-secret-file", &short]),
            format!("--chap-secret-file: the secret in {short} is 11 bytes long; CHAP secrets must be 12..=255 bytes (RFC 7143 §12.1.3 asks for at least 96 bits)")
        );
        let e = run(&[
            "--chap-user",
            "a",
            "--chap-secret-file",
            &good,
            "--mutual-chap-user",
            "t",
            "--mutual-chap-secret-file",
            &good,
        ]);
        assert!(
            e.starts_with("--mutual-chap-secret-file: must differ from the initiator's secret"),
            "{e}"
        );
        assert_eq!(
            run(&["--chap-user", "a\u{7}", "--chap-secret-file", &good]),
            "--chap-user \"a\\u{7}\": must not contain control characters"
        );
        let e = run(&[
            "--discovery-chap-user",
            "d",
            "--discovery-chap-secret-file",
            &short,
        ]);
        assert!(
            e.starts_with("--discovery-chap-secret-file: the secret in "),
            "{e}"
        );
        assert_eq!(
            run(&["--allow-network", "10.0.0.5/24"]),
            "--allow-network 10.0.0.5/24: 10.0.0.5/24 has host bits set; write the network 10.0.0.0/24 (or 10.0.0.5/32 for one host)"
        );
        assert!(run(&["--allow-network", "::/0", "--allow-network", "::/0"])
            .starts_with("--allow-network ::/0: duplicate of allowed_networks[0]"));
    }

    #[test]
    fn loose_secret_file_flag_gives_a_warning_naming_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let loose = secret_file(dir.path(), "loose", "alice-secret-1\n", 0o640);
        let (c, warnings) = parse(&[
            "--demo",
            "--discovery-chap-user",
            "d",
            "--discovery-chap-secret-file",
            &loose,
        ])
        .unwrap()
        .to_config()
        .unwrap();
        assert_eq!(c.discovery_chap.unwrap().user, "d");
        let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [format!("--discovery-chap-secret-file: secret file {loose} can be accessed by group or others (mode 0640); chmod 600 it")]
        );
    }

    #[test]
    fn limit_flags_apply() {
        let c = config(&[
            "--target",
            T,
            "--lun",
            "null:1G",
            "--max-sessions",
            "100",
            "--max-sessions-per-initiator",
            "100",
            "--max-connections",
            "1000000",
            "--max-login-connections",
            "7",
            "--connection-buffer",
            "1MiB",
        ])
        .unwrap();
        assert_eq!(
            c.limits,
            Limits {
                max_sessions: 100,
                max_sessions_per_initiator: 100,
                max_connections: 1_000_000,
                max_login_connections: 7,
                connection_buffer_bytes: 1 << 20,
            }
        );
    }

    #[test]
    fn limit_and_discovery_flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file_secret = secret_file(dir.path(), "file", "file-secret-4444", 0o600);
        let flag_secret = secret_file(dir.path(), "flag", "flag-secret-5555", 0o600);
        let file = dir.path().join("ringtgt.toml");
        std::fs::write(
            &file,
            format!(
                "[limits]\nmax_sessions = 10\nmax_sessions_per_initiator = 2\nconnection_buffer_bytes = \"4MiB\"\n\
                 [discovery.chap]\nuser = \"from-file\"\nsecret_file = {file_secret:?}\n\
                 [[target]]\nname = \"{T}\"\n[[target.lun]]\npath = \"ram:1GiB\"\n"
            ),
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let plain = config(&["--config", f]).unwrap();
        assert_eq!(plain.limits.max_sessions, 10);
        assert_eq!(plain.discovery_chap.as_ref().unwrap().user, "from-file");

        let c = config(&[
            "--config",
            f,
            "--max-sessions",
            "20",
            "--connection-buffer",
            "8MiB",
            "--discovery-chap-user",
            "from-flag",
            "--discovery-chap-secret-file",
            &flag_secret,
        ])
        .unwrap();
        assert_eq!(c.limits.max_sessions, 20);
        assert_eq!(c.limits.max_sessions_per_initiator, 2);
        assert_eq!(c.limits.connection_buffer_bytes, 8 << 20);
        let d = c.discovery_chap.unwrap();
        assert_eq!(d.user, "from-flag");
        assert_eq!(d.secret.value.expose(), b"flag-secret-5555");

        assert_eq!(
            config_err(&["--config", f, "--max-sessions", "1"]),
            "limits.max_sessions_per_initiator: must not exceed max_sessions (1), got 2"
        );
    }

    #[test]
    fn limit_flag_rules_name_the_flag() {
        let t = ["--target", T, "--lun", "null:1G"];
        let cases: [(&[&str], &str); 3] = [
            (
                &["--max-sessions", "10", "--max-sessions-per-initiator", "20"],
                "--max-sessions-per-initiator 20: must not exceed max_sessions (10), got 20",
            ),
            (
                &["--max-login-connections", "5000"],
                "--max-login-connections 5000: must not exceed max_connections (4096), got 5000",
            ),
            (
                &["--connection-buffer", "512KiB"],
                "--connection-buffer 512KiB: must be at least 1MiB, got 512KiB",
            ),
        ];
        for (extra, want) in cases {
            let mut args = t.to_vec();
            args.extend_from_slice(extra);
            assert_eq!(config_err(&args), want);
        }
        let cases: [(&[&str], &str); 6] = [
            (&["--max-sessions", "0"], "--max-sessions <N>"),
            (&["--max-sessions", "65536"], "--max-sessions <N>"),
            (
                &["--max-sessions-per-initiator", "0"],
                "--max-sessions-per-initiator <N>",
            ),
            (&["--max-connections", "1000001"], "--max-connections <N>"),
            (&["--connection-buffer", "12Q"], "unknown size unit"),
            (
                &["--allow-network", "10.0.0.0/33"],
                "--allow-network <CIDR>",
            ),
        ];
        for (args, want) in cases {
            let e = clap_err(args);
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn no_flag_takes_a_secret_itself() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").unwrap();
        for arg in serve.get_arguments() {
            let long = arg.get_long().unwrap_or_default();
            if long.contains("secret") {
                assert!(long.ends_with("-secret-file"), "--{long} takes a secret");
            }
        }
    }
}
