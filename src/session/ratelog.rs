//! Rate-limited warnings. A peer decides how many bad PDUs it sends, so it must not decide how
//! much we log: each connection gets a small burst of lines, then one per interval, and the next
//! line that is let through says how many were held back.

use std::time::{Duration, Instant};

/// Lines let through at once before the limit applies.
const BURST: u32 = 10;
/// One more line per interval after the burst.
const INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct LogLimiter {
    tokens: u32,
    refilled: Option<Instant>,
    suppressed: u64,
}

impl Default for LogLimiter {
    fn default() -> Self {
        LogLimiter {
            tokens: BURST,
            refilled: None,
            suppressed: 0,
        }
    }
}

impl LogLimiter {
    /// Whether a line may be logged at `now`: `Some(n)` with the number of lines suppressed since
    /// the last one let through, or `None` (the line is counted as suppressed).
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        let last = *self.refilled.get_or_insert(now);
        let elapsed = now.saturating_duration_since(last);
        let earned = (elapsed.as_millis() / INTERVAL.as_millis()) as u32;
        if earned > 0 {
            self.tokens = self.tokens.saturating_add(earned).min(BURST);
            self.refilled = Some(last + INTERVAL * earned);
        }
        if self.tokens == 0 {
            self.suppressed += 1;
            return None;
        }
        self.tokens -= 1;
        Some(std::mem::take(&mut self.suppressed))
    }

    /// Lines suppressed and not yet reported (for a summary when the connection ends).
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

/// Logs a line at `$level` (a `tracing::Level`) through a [`LogLimiter`], adding the count of
/// lines it held back.
#[macro_export]
macro_rules! log_limited {
    ($level:expr, $limiter:expr, $now:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $limiter.admit($now) {
            if suppressed > 0 {
                tracing::event!($level, suppressed, $($arg)+);
            } else {
                tracing::event!($level, $($arg)+);
            }
        }
    };
}

/// Logs a `warn` line through a [`LogLimiter`], adding the count of lines it held back.
#[macro_export]
macro_rules! warn_limited {
    ($limiter:expr, $now:expr, $($arg:tt)+) => {
        $crate::log_limited!(tracing::Level::WARN, $limiter, $now, $($arg)+)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_a_burst_then_one_line_per_interval_with_a_count() {
        let t0 = Instant::now();
        let mut l = LogLimiter::default();
        let let_through = (0..10_000).filter(|_| l.admit(t0).is_some()).count();
        assert_eq!(let_through, BURST as usize);
        assert_eq!(l.admit(t0 + INTERVAL), Some(10_000 - u64::from(BURST)));
        assert_eq!(l.admit(t0 + INTERVAL), None);
        assert_eq!(l.take_suppressed(), 1);
        // A quiet period refills the burst, but never beyond it.
        let later = t0 + INTERVAL * 1000;
        let again = (0..100).filter(|_| l.admit(later).is_some()).count();
        assert_eq!(again, BURST as usize);
    }
}
