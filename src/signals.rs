//! Process signals. SIGTERM and SIGINT stop the daemon cleanly (one line in the log, exit code
//! 0); SIGHUP and SIGUSR1, which other daemons use to reload or reopen logs, are acknowledged and
//! ignored until there is something to reload. A second SIGTERM or SIGINT while stopping ends the
//! process at once.
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
    /// Serves the signals on their own thread; `stop` runs on the first SIGTERM or SIGINT.
    pub fn serve(self, stop: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let Handlers(mut signals) = self;
        let mut stop = Some(stop);
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    let name = name(signal);
                    match signal {
                        SIGTERM | SIGINT => match stop.take() {
                            Some(stop) => {
                                tracing::info!(signal = name, "stopping");
                                stop();
                            }
                            None => {
                                tracing::warn!(signal = name, "stopping at once");
                                std::process::exit(FORCED_EXIT);
                            }
                        },
                        _ => tracing::info!(signal = name, "reload not supported yet; ignored"),
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
