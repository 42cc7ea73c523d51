//! Command line (clap derive) and the translation of `ringtgt serve` flags into a [`Config`].
//!
//! Single-value checks (addresses, core lists, iSCSI names, number ranges, digest policies) are
//! done by clap while parsing, so a bad value is reported as clap's usage error. Everything that
//! depends on several flags, and the `--lun` specs, is checked by [`ServeArgs::to_config`], whose
//! errors name the flag (`--lun "foo:12": unknown store kind "foo"`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    default_portal, parse_backing, parse_cores, parse_portal, validate_iscsi_name, Config,
    ConfigError, CoreSpec, DigestPolicy, IscsiTuning, LunConfig, TargetConfig, MAX_LUN_ID,
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
    Serve(ServeArgs),
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
    /// --portal, --cores, --header-digest, --data-digest, --queue-depth, --nop-interval and
    /// --nop-timeout override the file; the target and LUN flags (--target, --lun, --alias,
    /// --block-size, --read-only, --allow-initiator) cannot be combined with it.
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
    /// contain ':'), null:SIZE (reads zeros, discards writes) or ram:SIZE (lost on exit).
    /// SIZE is like 4096, 512MiB, 10G (= GiB) or 1TB (= 10^12 bytes).
    #[arg(long = "lun", value_name = "SPEC")]
    pub luns: Vec<String>,

    /// Logical block size of every --lun: 512 (default) or 4096.
    #[arg(long, value_name = "BYTES", value_parser = parse_block_size)]
    pub block_size: Option<u32>,

    /// Export every --lun write-protected.
    #[arg(long)]
    pub read_only: bool,

    /// Only let this initiator log in; repeat for more. Default: any initiator may log in.
    #[arg(long = "allow-initiator", value_name = "IQN", value_parser = parse_iscsi_name)]
    pub allowed_initiators: Vec<String>,

    /// Cores to run on: a count (4) or a list of CPU ids to pin to (0-3,8; 5-5 for CPU 5 alone).
    ///
    /// Default: every core available to the process.
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

    /// Export a demo target iqn.2026-11.io.ringtgt:demo with one LUN backed by an image file.
    ///
    /// The image is --demo-image or ringtgt-demo.img in the temporary directory. --portal,
    /// --cores and the tuning flags still apply.
    #[arg(long)]
    pub demo: bool,

    /// Image file of the --demo LUN (default: ringtgt-demo.img in the temporary directory).
    #[arg(long, value_name = "PATH")]
    pub demo_image: Option<PathBuf>,

    /// Log filter: a level (error, warn, info, debug, trace) or directives such as
    /// info,ringtgt::login=debug. Default: $RUST_LOG, else info.
    #[arg(long, value_name = "LEVEL_OR_FILTER")]
    pub log: Option<String>,
}

fn parse_iscsi_name(s: &str) -> Result<String, String> {
    validate_iscsi_name(s).map(|()| s.to_string())
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
    /// Builds and validates the configuration these flags describe.
    pub fn to_config(&self) -> Result<Config, ConfigError> {
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
            Config::load(path)?
        } else if self.demo {
            self.reject_target_flags("--demo")?;
            Config::demo(self.demo_image.clone().unwrap_or_else(default_demo_image))
        } else {
            self.config_from_flags()?
        };
        self.apply_overrides(&mut config);
        config.validate().map_err(|e| self.blame_flag(e))?;
        Ok(config)
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

    fn config_from_flags(&self) -> Result<Config, ConfigError> {
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
            lun.block_size = self.block_size.unwrap_or(512);
            lun.read_only = self.read_only;
            luns.push(lun);
        }
        Ok(Config {
            portals: vec![default_portal()],
            targets: vec![TargetConfig {
                name: name.clone(),
                alias: self.alias.clone(),
                luns,
                allowed_initiators: self.allowed_initiators.clone(),
            }],
            iscsi: IscsiTuning::default(),
            cores: CoreSpec::default(),
            portal_group_tag: 1,
        })
    }

    fn apply_overrides(&self, config: &mut Config) {
        if !self.portals.is_empty() {
            config.portals = self.portals.clone();
        }
        if let Some(cores) = &self.cores {
            config.cores = cores.clone();
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
        let lun = field.strip_prefix("target[0].lun[")?.split_once(']')?.0;
        let spec = self.luns.get(lun.parse::<usize>().ok()?)?;
        Some(format!("--lun {spec:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Backing, DEMO_TARGET};

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let argv = ["ringtgt", "serve"].iter().chain(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Serve(a) => a,
        })
    }

    fn config(args: &[&str]) -> Result<Config, String> {
        let a = parse(args).map_err(|e| format!("clap: {e}"))?;
        a.to_config().map_err(|e| e.to_string())
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
            .all(|l| l.block_size == 4096 && l.read_only && l.write_cache));
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
    }

    #[test]
    fn bad_lun_spec_names_the_flag_and_value() {
        assert_eq!(
            config_err(&["--target", T, "--lun", "foo:12"]),
            "--lun \"foo:12\": unknown store kind \"foo\" (use null:SIZE, ram:SIZE, file:PATH or a path)"
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
        let cases: [(&[&str], &str); 6] = [
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
        for flag in [
            "--config",
            "--portal",
            "--target",
            "--alias",
            "--lun",
            "--block-size",
            "--read-only",
            "--allow-initiator",
            "--cores",
            "--header-digest",
            "--data-digest",
            "--queue-depth",
            "--nop-interval",
            "--nop-timeout",
            "--demo",
            "--demo-image",
            "--log",
        ] {
            assert!(
                e.contains(&format!("{flag} ")) || e.contains(&format!("{flag}\n")),
                "{flag}"
            );
        }
        assert!(e.contains("Examples:"));
        assert!(e.contains("ringtgt serve --config /etc/ringtgt.toml"));
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let serve = Cli::command();
        let serve = serve.find_subcommand("serve").unwrap();
        for arg in serve.get_arguments() {
            if arg.get_id() != "help" && arg.get_id() != "version" {
                assert!(arg.get_help().is_some(), "{} has no help", arg.get_id());
            }
        }
    }
}
