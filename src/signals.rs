//! Process signals. SIGTERM and SIGINT stop the daemon gracefully (sessions are asked to log
//! out, exit code 0); a second SIGTERM or SIGINT while stopping ends the process at once. SIGHUP
//! reloads the configuration file; SIGUSR1, which other daemons use to reopen their log files,
//! is acknowledged and ignored (the log goes to stderr: there is nothing to reopen).
//!
//! The handlers are installed before the daemon starts (a signal that arrives during start-up is
//! held, not fatal) and served by one thread once it runs.

use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

/// Exit code when a second stop signal cuts the clean stop short (128 + SIGINT, as shells do).
const FORCED_EXIT: i32 = 130;

/// Installed handlers, not served yet.
pub struct Handlers(Signals);

/// Installs the handlers: from here on these signals no longer end the process.
pub fn install() -> std::io::Result<Handlers> {
    Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1]).map(Handlers)
}

impl Handlers {
    /// Serves the signals on their own thread; `stop` runs on the first SIGTERM or SIGINT (with
    /// the signal's name), `reload` on each SIGHUP.
    pub fn serve(
        self,
        stop: impl FnOnce(&'static str) + Send + 'static,
        reload: impl Fn() + Send + 'static,
    ) -> std::io::Result<()> {
        let Handlers(mut signals) = self;
        let mut stop = Some(stop);
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    let name = name(signal);
                    match signal {
                        SIGTERM | SIGINT => match stop.take() {
                            // The control thread says it, with what the stop will wait for.
                            Some(stop) => stop(name),
                            None => {
                                tracing::warn!(signal = name, "stopping at once");
                                std::process::exit(FORCED_EXIT);
                            }
                        },
                        SIGHUP => {
                            tracing::info!(signal = name, "reloading the configuration");
                            reload();
                        }
                        _ => tracing::info!(signal = name, "nothing to do on this signal; ignored"),
                    }
                }
            })
            .map(drop)
    }
}

fn name(signal: i32) -> &'static str {
    match signal {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        SIGHUP => "SIGHUP",
        SIGUSR1 => "SIGUSR1",
        _ => "signal",
    }
}
