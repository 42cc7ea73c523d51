use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use ringtgt::cli::{Cli, Command, LogFormat, ServeArgs};
use ringtgt::config::{Backing, Config};
use ringtgt::control::LogControl;

/// Size of the sparse image `--demo` creates when none exists.
const DEMO_IMAGE_SIZE: u64 = 1 << 30;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Ctl(args) => match ringtgt::ctl::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::CheckConfig { file } => check_config(&file),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "ringtgt",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Man => {
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Validates `file` as `serve --config` would and prints the configuration it makes.
fn check_config(file: &std::path::Path) -> ExitCode {
    let (config, warnings) = match Config::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    match config.to_toml_string() {
        Ok(text) => {
            println!(
                "# {}: valid; the configuration it makes, defaults included:",
                file.display()
            );
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    let log = init_logging(args.log.as_deref(), args.log_format);
    let config = match args.to_config() {
        Ok((config, warnings)) => {
            for w in &warnings {
                tracing::warn!("{w}");
            }
            config
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.demo {
        if let Err(e) = prepare_demo(&config) {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    }
    let signals = match ringtgt::signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let daemon = match ringtgt::daemon::start_with(&config, Some(log)) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let stop = daemon.stopper();
    let stop = move || {
        // systemd shows the unit as deactivating while connections drain.
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        stop();
    };
    if let Err(e) = signals.serve(stop) {
        tracing::warn!(error = %e, "cannot serve signals; SIGTERM will not stop the daemon cleanly");
    }
    if args.demo {
        print_demo_help(&config);
    }
    // Every portal listens (the listeners were bound before start returned): tell systemd
    // (Type=notify). Outside systemd there is no NOTIFY_SOCKET and this does nothing.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "cannot tell systemd that the target is ready");
    }
    daemon.wait();
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Installs the log subscriber; the returned handle changes its filter at run time.
fn init_logging(filter: Option<&str>, format: LogFormat) -> LogControl {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{fmt, reload, EnvFilter};
    let filter = match filter {
        Some(f) => EnvFilter::new(f),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let layer = fmt::layer().with_ansi(ansi).with_writer(std::io::stderr);
            registry.with(layer).init();
        }
        LogFormat::Json => {
            // Each event carries its spans' fields: a connection's peer, core, initiator,
            // ISID, TSIH and CID.
            let layer = fmt::layer()
                .json()
                .with_current_span(false)
                .with_span_list(true)
                .with_writer(std::io::stderr);
            registry.with(layer).init();
        }
    }
    Box::new(move |directives: &str| {
        let filter = EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    })
}

/// Creates the demo LUN's sparse image unless it already exists.
fn prepare_demo(config: &Config) -> anyhow::Result<()> {
    use anyhow::Context;
    for lun in config.targets.iter().flat_map(|t| &t.luns) {
        if let Backing::Path(path) = &lun.backing {
            if !path.exists() {
                let f = std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?;
                f.set_len(DEMO_IMAGE_SIZE)
                    .with_context(|| format!("sizing {}", path.display()))?;
            }
        }
    }
    Ok(())
}

fn print_demo_help(config: &Config) {
    let Some(target) = config.targets.first() else {
        return;
    };
    let portal = config
        .portals
        .first()
        .map(|p| p.to_string())
        .unwrap_or_default();
    println!("ringtgt demo target is up.");
    println!("  target: {}", target.name);
    println!("  portal: {portal}");
    for lun in &target.luns {
        println!("  LUN {}: {}", lun.id, lun.backing);
    }
    println!("Connect with libiscsi:");
    println!("  iscsi-ls -s iscsi://{portal}");
    println!("  iscsi-inq iscsi://{portal}/{}/0", target.name);
    println!("or with the Linux initiator:");
    println!("  iscsiadm -m discovery -t sendtargets -p {portal}");
    println!("  iscsiadm -m node -T {} -p {portal} --login", target.name);
    println!("Stop with Ctrl-C.");
}
