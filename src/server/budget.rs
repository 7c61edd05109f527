//! The server-wide cap on request-body bytes held in memory ([`Config::max_buffered_body`]).
//!
//! A request reads its body only once it holds a reservation for the whole of it: its
//! `Content-Length`, or the body limit for a chunked body, whose length is not known. A request
//! that cannot get one does not start reading (the client's bytes wait in the kernel, and TCP flow
//! control slows the client) and tries again at the next tick, until other requests have finished
//! and released theirs. So 10,000 concurrent uploads cost at most the cap, not 10,000 × the body
//! limit; and since a request either holds all it needs or nothing, uploads can never each hold a
//! part and wait for one another for ever.
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

    /// Reserves `n` more bytes if the cap allows all of them; else reserves nothing. Returns
    /// whether it did.
    pub(crate) fn grow_exact(&mut self, n: u64) -> bool {
        let b = &self.budget;
        let mut used = b.used.load(Ordering::Relaxed);
        loop {
            if used.saturating_add(n) > b.cap {
                return false;
            }
            match b
                .used
                .compare_exchange_weak(used, used + n, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.bytes += n;
                    return true;
                }
                Err(now) => used = now,
            }
        }
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
    fn reservations_are_all_or_nothing_and_come_back_when_dropped() {
        let budget = BodyBudget::new(100);
        let mut a = Reservation::new(&budget);
        let mut b = Reservation::new(&budget);
        assert!(a.grow_exact(70));
        assert!(!b.grow_exact(40), "all or nothing: 30 are left");
        assert_eq!(budget.used(), 70, "a refused reservation holds nothing");
        assert!(b.grow_exact(30));
        drop(a);
        assert!(b.grow_exact(70));
        drop(b);
        assert_eq!(budget.used(), 0, "every reserved byte is released");
    }
}
