//! TSIH allocation (RFC 7143 §11.12.6): unique non-zero 16-bit session handles. Freed handles go
//! to the back of the queue, so a handle is reused as late as possible and never leaks.

use std::collections::VecDeque;

pub struct TsihPool {
    free: VecDeque<u16>,
    in_use: Vec<bool>,
}

impl Default for TsihPool {
    fn default() -> Self {
        TsihPool {
            free: (1..=u16::MAX).collect(),
            in_use: vec![false; 1 << 16],
        }
    }
}

impl TsihPool {
    pub fn alloc(&mut self) -> Option<u16> {
        let tsih = self.free.pop_front()?;
        self.in_use[usize::from(tsih)] = true;
        Some(tsih)
    }

    /// Returns a handle to the pool; releasing one that is not allocated is ignored, so a
    /// double release can never hand the same TSIH to two sessions.
    pub fn release(&mut self, tsih: u16) {
        let slot = &mut self.in_use[usize::from(tsih)];
        if !*slot {
            tracing::error!(tsih, "release of a TSIH that is not allocated");
            return;
        }
        *slot = false;
        self.free.push_back(tsih);
    }

    pub fn available(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_logins_do_not_run_out() {
        let mut pool = TsihPool::default();
        for _ in 0..1_000_000 {
            let t = pool.alloc().unwrap();
            assert_ne!(t, 0);
            pool.release(t);
        }
        assert_eq!(pool.available(), 65535);
    }

    #[test]
    fn exhaustion_is_reported_not_wrapped() {
        let mut pool = TsihPool::default();
        let all: Vec<u16> = std::iter::from_fn(|| pool.alloc()).collect();
        assert_eq!(all.len(), 65535);
        assert!(pool.alloc().is_none());
    }

    #[test]
    fn double_release_cannot_duplicate_a_handle() {
        let mut pool = TsihPool::default();
        let a = pool.alloc().unwrap();
        pool.release(a);
        pool.release(a);
        pool.release(0);
        assert_eq!(pool.available(), 65535);
    }

    #[test]
    fn freed_handle_is_reused_last() {
        let mut pool = TsihPool::default();
        let a = pool.alloc().unwrap();
        pool.release(a);
        assert_ne!(pool.alloc().unwrap(), a);
    }
}
