//! Per-session I/O counters, kept by the session that does the I/O and read by its reactor when
//! the control thread asks for a report (metrics, `ringtgt ctl sessions`, `ctl top`).
//!
//! Recording costs a few additions on memory the session owns: no allocation (a unit's slot is
//! made the first time the session addresses it), no atomics, no cache line shared with another
//! core. Times come from the `now` the transport hands in, like every other time in this layer.

use std::time::Duration;

/// What a SCSI command is, for counters split by operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    Read,
    Write,
    Other,
}

impl OpClass {
    pub const ALL: [OpClass; 3] = [OpClass::Read, OpClass::Write, OpClass::Other];

    /// READ (6/10/12/16) are reads; WRITE (6/10/12/16) and WRITE AND VERIFY (10/12/16) are
    /// writes (SBC-3 operation codes); everything else is other.
    pub fn of_opcode(opcode: u8) -> OpClass {
        match opcode {
            0x08 | 0x28 | 0xA8 | 0x88 => OpClass::Read,
            0x0A | 0x2A | 0xAA | 0x8A | 0x2E | 0xAE | 0x8E => OpClass::Write,
            _ => OpClass::Other,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OpClass::Read => "read",
            OpClass::Write => "write",
            OpClass::Other => "other",
        }
    }
}

/// Buckets of [`Histogram`]: bucket `i < BUCKETS - 1` counts latencies below
/// `2^(FIRST_SHIFT + i)` ns (16.4 µs, 32.8 µs, … 17.2 s); the last one counts the rest.
pub const BUCKETS: usize = 22;
const FIRST_SHIFT: u32 = 14;

/// A latency histogram with power-of-two bucket bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Histogram {
    pub buckets: [u64; BUCKETS],
    pub sum_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: [0; BUCKETS],
            sum_ns: 0,
        }
    }
}

impl Histogram {
    /// Upper bound of bucket `i` in seconds (`None` for the last, unbounded one).
    pub fn bound_secs(i: usize) -> Option<f64> {
        (i + 1 < BUCKETS).then(|| (1u64 << (FIRST_SHIFT as usize + i)) as f64 * 1e-9)
    }

    pub fn observe(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let i = (u64::BITS - (ns >> FIRST_SHIFT).leading_zeros()) as usize;
        self.buckets[i.min(BUCKETS - 1)] += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    pub fn add(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }
}

/// Counters of one kind of operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpStats {
    pub commands: u64,
    pub bytes: u64,
    /// Commands that ended with a status other than GOOD or CONDITION MET.
    pub errors: u64,
    pub latency: Histogram,
}

impl OpStats {
    pub fn add(&mut self, other: &OpStats) {
        self.commands += other.commands;
        self.bytes += other.bytes;
        self.errors += other.errors;
        self.latency.add(&other.latency);
    }
}

/// Counters of one logical unit, by [`OpClass`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LunStats {
    pub ops: [OpStats; 3],
}

impl LunStats {
    pub fn add(&mut self, other: &LunStats) {
        for (a, b) in self.ops.iter_mut().zip(&other.ops) {
            a.add(b);
        }
    }

    pub fn op(&self, class: OpClass) -> &OpStats {
        &self.ops[class.index()]
    }
}

/// One session's counters, by LUN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Sorted by LUN.
    luns: Vec<(u16, LunStats)>,
}

impl SessionStats {
    /// Counts one finished command.
    pub fn record(&mut self, lun: u16, class: OpClass, bytes: u64, ok: bool, latency: Duration) {
        let i = match self.luns.binary_search_by_key(&lun, |(l, _)| *l) {
            Ok(i) => i,
            Err(i) => {
                self.luns.insert(i, (lun, LunStats::default()));
                i
            }
        };
        let op = &mut self.luns[i].1.ops[class.index()];
        op.commands += 1;
        op.bytes += bytes;
        op.errors += u64::from(!ok);
        op.latency.observe(latency);
    }

    /// Counters per LUN, in LUN order.
    pub fn luns(&self) -> &[(u16, LunStats)] {
        &self.luns
    }

    /// Every LUN's counters together.
    pub fn total(&self) -> LunStats {
        let mut t = LunStats::default();
        for (_, l) in &self.luns {
            t.add(l);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_power_of_two_buckets() {
        let mut h = Histogram::default();
        h.observe(Duration::from_nanos(100));
        h.observe(Duration::from_nanos(16_383));
        h.observe(Duration::from_nanos(16_384));
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_secs(3600));
        assert_eq!(h.buckets[0], 2);
        assert_eq!(h.buckets[1], 1);
        // 100 µs is below 2^17 ns = 131 µs: bucket 3.
        assert_eq!(h.buckets[3], 1);
        assert_eq!(h.buckets[BUCKETS - 1], 1);
        assert_eq!(h.count(), 5);
        assert_eq!(Histogram::bound_secs(0), Some(16_384e-9));
        assert_eq!(Histogram::bound_secs(BUCKETS - 1), None);
    }

    #[test]
    fn commands_are_counted_per_lun_and_operation() {
        let mut s = SessionStats::default();
        let ms = Duration::from_millis(1);
        s.record(3, OpClass::Read, 4096, true, ms);
        s.record(0, OpClass::Write, 512, true, ms);
        s.record(3, OpClass::Read, 4096, false, ms);
        s.record(3, OpClass::Other, 36, true, ms);
        let luns: Vec<u16> = s.luns().iter().map(|(l, _)| *l).collect();
        assert_eq!(luns, [0, 3]);
        let three = &s.luns()[1].1;
        assert_eq!(three.op(OpClass::Read).commands, 2);
        assert_eq!(three.op(OpClass::Read).bytes, 8192);
        assert_eq!(three.op(OpClass::Read).errors, 1);
        let total = s.total();
        assert_eq!(total.op(OpClass::Write).bytes, 512);
        assert_eq!(total.ops.iter().map(|o| o.commands).sum::<u64>(), 4);
    }

    #[test]
    fn opcodes_are_classified() {
        assert_eq!(OpClass::of_opcode(0x28), OpClass::Read);
        assert_eq!(OpClass::of_opcode(0x8A), OpClass::Write);
        assert_eq!(OpClass::of_opcode(0x12), OpClass::Other);
    }
}
