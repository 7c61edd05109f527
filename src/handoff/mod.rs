//! The server's concurrency protocol, free of sockets and of `mio`: which job owns each
//! connection ([`table`]) and how the event loop runs as a chain of pool jobs ([`turns`]).
//!
//! `PROTOCOL.md` beside this file states the protocol: vocabulary, each operation as ordered
//! steps, the invariants, and the claims with the loom model that checks each. Like the pool, it
//! takes every primitive from [`crate::sync`], so under `--cfg loom` the models in `loom-tests/`
//! (`handoff.rs`) explore the very code the server runs; `src/server/` drives it with real
//! sockets. Public only for those models; not part of the supported API.

pub mod table;
pub mod turns;

/// Fault points for the negative loom models: plausible one-line breaks of this module, compiled
/// in only under `--cfg loom` and off unless a model turns one on, so that a model can be shown to
/// fail on the break of the *real* code it exists to catch. Without loom, [`breaks::on`] is a
/// constant `false` and the branches vanish.
pub mod breaks {
    /// [`ConnTable::park`](super::table::ConnTable::park) forgets the readiness that arrived while
    /// the connection was dispatched (as if `pending` were cleared before it is checked).
    pub const PARK_IGNORES_PENDING: &str = "park_ignores_pending";
    /// [`Turn::end`](super::turns::Turn::end) marks the next turn queued only after releasing the
    /// state's lock.
    pub const QUEUED_AFTER_UNLOCK: &str = "queued_after_unlock";

    /// Every break, in the order of `ACTIVE`'s numbering (0 is none).
    #[cfg(loom)]
    const ALL: [&str; 2] = [PARK_IGNORES_PENDING, QUEUED_AFTER_UNLOCK];

    /// The break that is on: 1 + its index in `ALL`, or 0. A `core` atomic on purpose: it is
    /// set outside the model and must add no scheduling point of its own.
    #[cfg(loom)]
    static ACTIVE: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

    /// Turns `name` on (or every break off, with `None`). For the negative models only.
    ///
    /// # Panics
    ///
    /// If `name` is not one of the breaks above.
    #[cfg(loom)]
    pub fn set(name: Option<&'static str>) {
        let index = name.map_or(0, |n| {
            1 + ALL
                .iter()
                .position(|b| *b == n)
                .unwrap_or_else(|| panic!("no break named {n}"))
        });
        ACTIVE.store(index, core::sync::atomic::Ordering::SeqCst);
    }

    /// Is break `name` on?
    #[cfg(loom)]
    pub fn on(name: &str) -> bool {
        match ACTIVE.load(core::sync::atomic::Ordering::SeqCst) {
            0 => false,
            i => ALL[i - 1] == name,
        }
    }

    /// Is break `name` on? Never, outside loom.
    #[cfg(not(loom))]
    #[inline(always)]
    pub fn on(_name: &str) -> bool {
        false
    }
}
