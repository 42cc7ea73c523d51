//! Unit attention conditions (SAM-5 §5.14, SPC-4): what an I_T nexus must be told about a
//! logical unit before its next command runs (the unit was powered on or reset, a reservation
//! was preempted, its capacity changed, ...). Each nexus keeps a queue per logical unit.

use super::sense::{Sense, SenseKey};

/// One unit attention: its additional sense code and qualifier (sense key UNIT ATTENTION).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct UnitAttention {
    pub asc: u8,
    pub ascq: u8,
}

impl UnitAttention {
    /// SPC-4 29h/00h POWER ON, RESET, OR BUS DEVICE RESET OCCURRED.
    pub const POWER_ON_RESET: Self = Self::new(0x29, 0x00);
    /// SPC-4 29h/03h BUS DEVICE RESET FUNCTION OCCURRED (LOGICAL UNIT RESET).
    pub const LUN_RESET: Self = Self::new(0x29, 0x03);
    /// SPC-4 29h/07h I_T NEXUS LOSS OCCURRED.
    pub const I_T_NEXUS_LOSS: Self = Self::new(0x29, 0x07);
    /// SPC-4 2Ah/01h MODE PARAMETERS CHANGED.
    pub const MODE_PARAMETERS_CHANGED: Self = Self::new(0x2a, 0x01);
    /// SPC-4 2Ah/03h RESERVATIONS PREEMPTED.
    pub const RESERVATIONS_PREEMPTED: Self = Self::new(0x2a, 0x03);
    /// SPC-4 2Ah/04h RESERVATIONS RELEASED.
    pub const RESERVATIONS_RELEASED: Self = Self::new(0x2a, 0x04);
    /// SPC-4 2Ah/05h REGISTRATIONS PREEMPTED.
    pub const REGISTRATIONS_PREEMPTED: Self = Self::new(0x2a, 0x05);
    /// SPC-4 2Ah/06h ASYMMETRIC ACCESS STATE CHANGED.
    pub const ASYMMETRIC_ACCESS_STATE_CHANGED: Self = Self::new(0x2a, 0x06);
    /// SBC-3 2Ah/09h CAPACITY DATA HAS CHANGED.
    pub const CAPACITY_DATA_HAS_CHANGED: Self = Self::new(0x2a, 0x09);
    /// SPC-4 3Fh/0Eh REPORTED LUNS DATA HAS CHANGED.
    pub const REPORTED_LUNS_DATA_HAS_CHANGED: Self = Self::new(0x3f, 0x0e);
    /// SAM-5 CLEAR TASK SET and SPC-4 PREEMPT AND ABORT with TAS=0, to the nexuses that lost tasks.
    pub const COMMANDS_CLEARED_BY_ANOTHER_INITIATOR: Self = Self::new(0x2f, 0x00);

    pub const fn new(asc: u8, ascq: u8) -> Self {
        UnitAttention { asc, ascq }
    }

    pub fn sense(self) -> Sense {
        Sense::new(SenseKey::UNIT_ATTENTION, self.asc, self.ascq)
    }

    /// SAM-5 §5.14: power-on and reset conditions (29h/xx) take precedence over every other
    /// unit attention; the others are reported in the order they were established.
    fn is_reset(self) -> bool {
        self.asc == 0x29
    }
}

/// Most unit attentions kept per nexus and logical unit; older ones of lower precedence go
/// first when more arrive (a nexus that never sends a command cannot grow this).
const MAX_QUEUED: usize = 8;

/// The unit attentions one I_T nexus has pending, per logical unit.
#[derive(Debug, Default, Clone)]
pub struct UnitAttentions {
    /// (LUN, conditions in reporting order). Small: one entry per LU with something pending.
    pending: Vec<(u16, Vec<UnitAttention>)>,
}

impl UnitAttentions {
    /// Whether nothing is pending for any logical unit (the common, fast case).
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Establishes `ua` for `lun`. A reset condition replaces every pending one (a reset makes
    /// them moot), and nothing queues behind a pending reset but other resets are not repeated.
    pub fn establish(&mut self, lun: u16, ua: UnitAttention) {
        let queue = match self.pending.iter_mut().find(|(l, _)| *l == lun) {
            Some((_, q)) => q,
            None => {
                self.pending.push((lun, Vec::new()));
                &mut self.pending.last_mut().expect("just pushed").1
            }
        };
        if queue.contains(&ua) {
            return;
        }
        if ua.is_reset() {
            queue.retain(|q| q.is_reset());
            queue.insert(0, ua);
        } else {
            queue.push(ua);
        }
        if queue.len() > MAX_QUEUED {
            let drop_at = queue
                .iter()
                .rposition(|q| !q.is_reset())
                .unwrap_or(queue.len() - 1);
            queue.remove(drop_at);
        }
    }

    /// The condition to report next for `lun`, without clearing it.
    pub fn peek(&self, lun: u16) -> Option<UnitAttention> {
        self.pending
            .iter()
            .find(|(l, _)| *l == lun)
            .and_then(|(_, q)| q.first().copied())
    }

    /// Clears and returns the condition to report next for `lun` (it was reported).
    pub fn take(&mut self, lun: u16) -> Option<UnitAttention> {
        let i = self.pending.iter().position(|(l, _)| *l == lun)?;
        let queue = &mut self.pending[i].1;
        let ua = queue.remove(0);
        if queue.is_empty() {
            self.pending.swap_remove(i);
        }
        Some(ua)
    }

    /// Clears one specific condition for `lun` if it is pending (e.g. REPORT LUNS clears
    /// REPORTED LUNS DATA HAS CHANGED).
    pub fn clear(&mut self, lun: u16, ua: UnitAttention) {
        if let Some(i) = self.pending.iter().position(|(l, _)| *l == lun) {
            let queue = &mut self.pending[i].1;
            queue.retain(|q| *q != ua);
            if queue.is_empty() {
                self.pending.swap_remove(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_comes_first_and_the_rest_in_order() {
        let mut u = UnitAttentions::default();
        u.establish(0, UnitAttention::CAPACITY_DATA_HAS_CHANGED);
        u.establish(0, UnitAttention::REPORTED_LUNS_DATA_HAS_CHANGED);
        u.establish(0, UnitAttention::CAPACITY_DATA_HAS_CHANGED);
        assert_eq!(u.take(0), Some(UnitAttention::CAPACITY_DATA_HAS_CHANGED));
        u.establish(0, UnitAttention::RESERVATIONS_PREEMPTED);
        u.establish(0, UnitAttention::POWER_ON_RESET);
        assert_eq!(u.peek(0), Some(UnitAttention::POWER_ON_RESET));
        assert_eq!(u.take(0), Some(UnitAttention::POWER_ON_RESET));
        // The reset made the older conditions moot.
        assert_eq!(u.take(0), None);
        assert!(u.is_empty());
    }

    #[test]
    fn queues_are_per_logical_unit_and_bounded() {
        let mut u = UnitAttentions::default();
        u.establish(1, UnitAttention::POWER_ON_RESET);
        for ascq in 0..20 {
            u.establish(2, UnitAttention::new(0x3f, ascq));
        }
        assert_eq!(u.peek(1), Some(UnitAttention::POWER_ON_RESET));
        assert_eq!(u.peek(3), None);
        let mut n = 0;
        while u.take(2).is_some() {
            n += 1;
        }
        assert_eq!(n, MAX_QUEUED);
        u.clear(1, UnitAttention::POWER_ON_RESET);
        assert!(u.is_empty());
    }
}
