//! `ringtgt ctl`: the admin client. It sends one request line to the daemon's admin socket
//! (protocol in `control::admin::protocol`, README "Admin socket") and prints the answer as a
//! table, or as JSON with `--json`; `ctl top` keeps asking and draws a live view.

mod table;
pub mod top;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};

use crate::config::default_admin_socket;
use crate::control::admin::protocol::{
    Connections, Done, LunInfo, Request, Saved, Sessions, Status, TargetInfo,
};
use crate::control::admin::request;

/// Flags of `ringtgt ctl`.
#[derive(Debug, Clone, Args)]
pub struct CtlArgs {
    /// The daemon's admin socket.
    #[arg(long, value_name = "PATH", default_value_os_t = default_admin_socket())]
    pub socket: PathBuf,

    /// Print the daemon's answer as JSON (for scripts) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum CtlCommand {
    /// Version, uptime, cores, portals and totals.
    Status,
    /// The targets, with their LUN and session counts.
    Targets,
    /// The logical units (of one target with --target).
    Luns {
        #[arg(long, value_name = "IQN")]
        target: Option<String>,
    },
    /// Sessions: initiator, ISID, TSIH, core, address, negotiated keys, digests, CmdSN window,
    /// tasks in flight.
    Sessions,
    /// TCP connections in any phase.
    Connections,
    /// Every core's raw counters (JSON; what `top` and /metrics are made from).
    Stats,
    /// Add or remove a target.
    #[command(subcommand)]
    Target(TargetCommand),
    /// Add, remove or resize a logical unit.
    #[command(subcommand)]
    Lun(LunCommand),
    /// Act on a session.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Change a target port group's ALUA state.
    #[command(subcommand)]
    Alua(AluaCommand),
    /// Change the log filter at run time (a level, or directives like info,ringtgt::login=debug).
    LogLevel { level: String },
    /// Write the running configuration as TOML that `serve --config` reads (stdout without FILE).
    Save { file: Option<PathBuf> },
    /// Read the daemon's configuration file again and apply the difference, as SIGHUP does:
    /// targets and LUNs added, removed or resized, target attributes (ACLs, CHAP, allowed
    /// initiators) for new logins; settings that need a restart are named and left as they are.
    Reload,
    /// Live view of IOPS, bandwidth, latency and queue depth per LUN and session, and each
    /// core's busy share (q or Ctrl-C quits).
    Top {
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0, value_name = "SECS")]
        interval: f64,
        /// Stop after this many refreshes.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum TargetCommand {
    /// Add a target (it has no LUN until `lun add`).
    Add {
        name: String,
        #[arg(long)]
        alias: Option<String>,
        /// Only let this initiator log in; repeat for more.
        #[arg(long = "allow-initiator", value_name = "IQN")]
        allow_initiators: Vec<String>,
    },
    /// Remove a target; refused while it has sessions unless --force, which asks them to log
    /// out (RFC 7143 Async Message) and waits for them.
    Remove {
        name: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum LunCommand {
    /// Add a logical unit: SPEC as `serve --lun` takes it (path, ram:SIZE, null:SIZE,
    /// rbd:POOL/IMAGE with a build that has the `rbd` feature).
    Add {
        #[arg(long, value_name = "IQN")]
        target: String,
        /// LUN id (default: the lowest free one).
        #[arg(long)]
        id: Option<u16>,
        spec: String,
        #[arg(long)]
        read_only: bool,
        /// 512 (default) or 4096.
        #[arg(long, value_name = "BYTES")]
        block_size: Option<u32>,
    },
    /// Remove a logical unit once its running commands finish.
    Remove {
        #[arg(long, value_name = "IQN")]
        target: String,
        #[arg(long)]
        id: u16,
    },
    /// Grow a file or RAM unit to SIZE, set a null unit's size, or (without SIZE) read a file
    /// or block device's size again; initiators get CAPACITY DATA HAS CHANGED.
    Resize {
        #[arg(long, value_name = "IQN")]
        target: String,
        #[arg(long)]
        id: u16,
        size: Option<String>,
    },
    /// Serve the medium a failed SANITIZE left (partly overwritten or erased) instead of
    /// answering MEDIUM ERROR, SANITIZE COMMAND FAILED: for a unit whose initiators cannot end
    /// the failure themselves (a read-only unit, or a failure without AUSE that no sanitize
    /// will follow). Refused while a sanitize runs.
    AcceptMedium {
        #[arg(long, value_name = "IQN")]
        target: String,
        #[arg(long)]
        id: u16,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum AluaCommand {
    /// Set the asymmetric access state of port group GROUP of a target (e.g. standby before
    /// a portal's maintenance, so that multipath moves I/O to the other groups first); every
    /// initiator gets ASYMMETRIC ACCESS STATE CHANGED. Not for gateway targets, whose states
    /// follow the RBD locks.
    Set {
        #[arg(long, value_name = "IQN")]
        target: String,
        #[arg(long)]
        group: u16,
        /// active-optimized, active-non-optimized, standby or unavailable.
        state: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum SessionCommand {
    /// Reset the session's connection: the session ends.
    Drop { tsih: u16 },
}

/// Runs `ringtgt ctl`; the error is printed by `main`.
pub fn run(args: &CtlArgs) -> anyhow::Result<()> {
    if let CtlCommand::Top { interval, count } = &args.command {
        if !(*interval > 0.0 && interval.is_finite()) {
            bail!("--interval must be a positive number of seconds");
        }
        let stream = connect(&args.socket)?;
        return top::run(
            stream,
            std::time::Duration::from_secs_f64(*interval),
            *count,
        );
    }
    let req = to_request(&args.command);
    let mut stream = connect(&args.socket)?;
    let answer = request(&mut stream, req).context("admin request failed")?;
    if !answer.ok {
        bail!("{}", answer.error.unwrap_or_else(|| "refused".into()));
    }
    let result = answer.result.unwrap_or(serde_json::Value::Null);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    print_human(&args.command, result)
}

fn connect(path: &Path) -> anyhow::Result<UnixStream> {
    UnixStream::connect(path).with_context(|| {
        format!(
            "cannot reach ringtgt at {} (is the daemon running? give its socket with --socket PATH)",
            path.display()
        )
    })
}

fn to_request(c: &CtlCommand) -> Request {
    match c.clone() {
        CtlCommand::Status => Request::Status,
        CtlCommand::Targets => Request::Targets,
        CtlCommand::Luns { target } => Request::Luns { target },
        CtlCommand::Sessions => Request::Sessions,
        CtlCommand::Connections => Request::Connections,
        CtlCommand::Stats | CtlCommand::Top { .. } => Request::Stats,
        CtlCommand::Target(TargetCommand::Add {
            name,
            alias,
            allow_initiators,
        }) => Request::TargetAdd {
            name,
            alias,
            allowed_initiators: allow_initiators,
        },
        CtlCommand::Target(TargetCommand::Remove { name, force }) => {
            Request::TargetRemove { name, force }
        }
        CtlCommand::Lun(LunCommand::Add {
            target,
            id,
            spec,
            read_only,
            block_size,
        }) => Request::LunAdd {
            target,
            id,
            spec,
            read_only,
            block_size,
        },
        CtlCommand::Lun(LunCommand::Remove { target, id }) => Request::LunRemove { target, id },
        CtlCommand::Lun(LunCommand::Resize { target, id, size }) => {
            Request::LunResize { target, id, size }
        }
        CtlCommand::Lun(LunCommand::AcceptMedium { target, id }) => {
            Request::LunAcceptMedium { target, id }
        }
        CtlCommand::Session(SessionCommand::Drop { tsih }) => Request::SessionDrop { tsih },
        CtlCommand::Alua(AluaCommand::Set {
            target,
            group,
            state,
        }) => Request::AluaSet {
            target,
            group,
            state,
        },
        CtlCommand::LogLevel { level } => Request::LogLevel { level },
        CtlCommand::Save { .. } => Request::Save,
        CtlCommand::Reload => Request::Reload,
    }
}

fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> anyhow::Result<T> {
    serde_json::from_value(v).map_err(|e| anyhow!("unexpected answer from the daemon: {e}"))
}

fn print_human(c: &CtlCommand, result: serde_json::Value) -> anyhow::Result<()> {
    let text = match c {
        CtlCommand::Status => table::status(&decode::<Status>(result)?),
        CtlCommand::Targets => table::targets(&decode::<Vec<TargetInfo>>(result)?),
        CtlCommand::Luns { .. } => table::luns(&decode::<Vec<LunInfo>>(result)?),
        CtlCommand::Sessions => table::sessions(&decode::<Sessions>(result)?),
        CtlCommand::Connections => table::connections(&decode::<Connections>(result)?),
        CtlCommand::Stats | CtlCommand::Top { .. } => serde_json::to_string_pretty(&result)?,
        CtlCommand::Save { file } => {
            let saved = decode::<Saved>(result)?;
            match file {
                Some(path) => {
                    write_atomically(path, &saved.toml)?;
                    format!("configuration written to {}", path.display())
                }
                None => saved.toml.trim_end().to_string(),
            }
        }
        _ => decode::<Done>(result)?.message,
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// Writes `text` to `path` through a temporary file in the same directory, so a reader never
/// sees half a configuration. The file is 0600: it may hold CHAP secrets.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
