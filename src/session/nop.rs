//! NOP-Out/NOP-In (RFC 7143 §11.18, §11.19) and the target's keepalive pings.

use std::time::{Duration, Instant};

use super::full::Session;
use super::output::Output;
use crate::pdu::nop::{NopIn, NopOut};
use crate::pdu::{Bhs, RESERVED_TAG};

/// Target-initiated NOP-In pings (RFC 7143 §11.19): after `interval` without traffic the target
/// pings; a ping unanswered for `timeout` means the connection is dead.
pub struct Keepalive {
    interval: Option<Duration>,
    timeout: Duration,
    last_rx: Instant,
    outstanding: Option<(u32, Instant)>,
}

impl Keepalive {
    pub fn new(interval: Option<Duration>, timeout: Duration, now: Instant) -> Self {
        Keepalive {
            interval,
            timeout,
            last_rx: now,
            outstanding: None,
        }
    }

    pub fn received(&mut self, now: Instant) {
        self.last_rx = now;
    }

    pub fn answered(&mut self, ttt: u32) -> bool {
        match self.outstanding {
            Some((t, _)) if t == ttt => {
                self.outstanding = None;
                true
            }
            _ => false,
        }
    }

    /// `Ok(Some(ttt))`: send a ping with this tag; `Err`: the connection is dead.
    pub fn on_timer(&mut self, now: Instant, next_ttt: &mut u32) -> Result<Option<u32>, ()> {
        let Some(interval) = self.interval else {
            return Ok(None);
        };
        if let Some((_, deadline)) = self.outstanding {
            return if now >= deadline { Err(()) } else { Ok(None) };
        }
        if now.duration_since(self.last_rx) < interval {
            return Ok(None);
        }
        let ttt = alloc_ttt(next_ttt);
        self.outstanding = Some((ttt, now + self.timeout));
        Ok(Some(ttt))
    }

    pub fn deadline(&self) -> Option<Instant> {
        let interval = self.interval?;
        Some(match self.outstanding {
            Some((_, deadline)) => deadline,
            None => self.last_rx + interval,
        })
    }
}

/// Target Transfer Tags are never the reserved value (RFC 7143 §11.8.3).
pub(super) fn alloc_ttt(next: &mut u32) -> u32 {
    let ttt = *next;
    *next = next.wrapping_add(1);
    if *next == RESERVED_TAG {
        *next = 1;
    }
    ttt
}

impl Session {
    pub(super) fn handle_nop_out(&mut self, bhs: &Bhs, data: &[u8], out: &mut Output) {
        let nop = NopOut::decode(bhs);
        if nop.itt == RESERVED_TAG {
            // The answer to our ping; it wants no reply (RFC 7143 §11.18.3).
            if !self.keepalive.answered(nop.ttt) {
                tracing::debug!(ttt = nop.ttt, "NOP-Out for an unknown ping");
            }
            return;
        }
        let mrdsl = self.params.initiator_mrdsl as usize;
        let echo = &data[..data.len().min(mrdsl)];
        let rsp = NopIn {
            lun: nop.lun,
            itt: nop.itt,
            ttt: RESERVED_TAG,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
        };
        out.pdu(&rsp.encode(), echo);
    }

    pub(super) fn send_ping(&mut self, ttt: u32, out: &mut Output) {
        let ping = NopIn {
            lun: 0,
            itt: RESERVED_TAG,
            ttt,
            stat_sn: self.current_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
        };
        out.pdu(&ping.encode(), &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_pings_after_idle_and_fails_after_timeout() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(Some(Duration::from_secs(5)), Duration::from_secs(10), t0);
        let mut next = 7;
        assert_eq!(k.on_timer(t0 + Duration::from_secs(4), &mut next), Ok(None));
        let ttt = k
            .on_timer(t0 + Duration::from_secs(5), &mut next)
            .unwrap()
            .unwrap();
        assert_eq!(ttt, 7);
        assert_eq!(
            k.on_timer(t0 + Duration::from_secs(14), &mut next),
            Ok(None)
        );
        assert_eq!(k.on_timer(t0 + Duration::from_secs(15), &mut next), Err(()));
    }

    #[test]
    fn answered_ping_rearms() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(Some(Duration::from_secs(1)), Duration::from_secs(1), t0);
        let mut next = 1;
        let ttt = k
            .on_timer(t0 + Duration::from_secs(1), &mut next)
            .unwrap()
            .unwrap();
        assert!(!k.answered(ttt + 1));
        assert!(k.answered(ttt));
        k.received(t0 + Duration::from_secs(2));
        assert_eq!(k.deadline(), Some(t0 + Duration::from_secs(3)));
    }

    #[test]
    fn ttt_skips_reserved_value() {
        let mut next = RESERVED_TAG - 1;
        assert_eq!(alloc_ttt(&mut next), RESERVED_TAG - 1);
        assert_eq!(next, 1);
    }
}
