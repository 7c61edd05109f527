//! The server-wide cap on request-body bytes held in memory ([`Config::max_buffered_body`]).
//!
//! A connection reads a body only into bytes it has reserved here first; when the cap is reached,
//! it stops reading (the client's bytes wait in the kernel, and TCP flow control slows the client)
//! and is dispatched again at the next tick, until other requests have finished and released
//! theirs. So 10,000 concurrent uploads cost at most the cap, not 10,000 × the body limit.
//!
//! [`Config::max_buffered_body`]: super::Config::max_buffered_body

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes reserved by all requests, against a cap.
#[derive(Debug)]
pub(crate) struct BodyBudget {
    used: AtomicU64,
    cap: u64,
}

impl BodyBudget {
    pub(crate) fn new(cap: u64) -> Arc<BodyBudget> {
        Arc::new(BodyBudget {
            used: AtomicU64::new(0),
            cap,
        })
    }

    /// Bytes reserved now, by all requests.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

/// Bytes one request has reserved; released when it is dropped (the request was answered, or
/// its connection closed, whichever way).
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: u64,
}

impl Reservation {
    pub(crate) fn new(budget: &Arc<BodyBudget>) -> Reservation {
        Reservation {
            budget: Arc::clone(budget),
            bytes: 0,
        }
    }

    /// Reserves up to `want` more bytes, as many as the cap allows; returns how many.
    pub(crate) fn grow_up_to(&mut self, want: u64) -> u64 {
        let b = &self.budget;
        let mut used = b.used.load(Ordering::Relaxed);
        loop {
            let grant = want.min(b.cap.saturating_sub(used));
            if grant == 0 {
                return 0;
            }
            match b.used.compare_exchange_weak(
                used,
                used + grant,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.bytes += grant;
                    return grant;
                }
                Err(now) => used = now,
            }
        }
    }

    /// Reserves `n` bytes that are already in memory, even past the cap (bytes that arrived with
    /// the head, before the body was known to be wanted; at most a read's worth).
    pub(crate) fn force(&mut self, n: u64) {
        self.budget.used.fetch_add(n, Ordering::Relaxed);
        self.bytes += n;
    }

    /// Gives back `n` of the reserved bytes (reserved for a read that brought fewer).
    pub(crate) fn shrink(&mut self, n: u64) {
        let n = n.min(self.bytes);
        self.budget.used.fetch_sub(n, Ordering::Relaxed);
        self.bytes -= n;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_cap_and_come_back_when_dropped() {
        let budget = BodyBudget::new(100);
        let mut a = Reservation::new(&budget);
        let mut b = Reservation::new(&budget);
        assert_eq!(a.grow_up_to(70), 70);
        assert_eq!(b.grow_up_to(70), 30, "only what is left under the cap");
        assert_eq!(b.grow_up_to(1), 0);
        a.shrink(20);
        assert_eq!(b.grow_up_to(50), 20);
        b.force(5);
        assert_eq!(budget.used(), 105);
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0, "every reserved byte is released");
    }
}
