//! [`TurnChain`]: the event loop runs as a chain of turn jobs, exactly one at a time, with a
//! fallback runner that repairs a broken chain.

use super::breaks;
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use crate::sync::{Mutex, MutexGuard, lock, try_lock};

/// The event loop's state `S` and the chain of jobs that run its turns.
///
/// Whoever holds the state's lock runs a turn: normally a *turn job* on the pool, which ends its
/// turn by marking the next one queued and submitting it, so that one turn job exists at a time;
/// and, as a fallback, a watcher (the thread in `Server::serve`) that looks once a tick
/// ([`TurnChain::watch`]) and either runs a turn itself (the queued job is starved of workers) or
/// queues a new job (none is queued or running: a turn panicked and broke the chain).
pub struct TurnChain<S> {
    /// The loop's state; the lock is the right to run a turn.
    state: Mutex<S>,
    /// Turns begun so far; the watcher compares it across a tick to notice a stalled loop.
    turns: AtomicU64,
    /// A turn job is queued and has not begun. Set only under the state's lock (by a turn that
    /// ends, or by the watcher), cleared by the turn job that begins, or by a failed submit.
    queued: AtomicBool,
}

/// The right to run one turn, from [`TurnChain::begin`] to [`Turn::end`]. Dropped without `end`
/// (a turn that panicked), it leaves no turn queued: the watcher notices within a tick or two.
pub struct Turn<'a, S> {
    chain: &'a TurnChain<S>,
    state: MutexGuard<'a, S>,
}

/// What the watcher is to do after a tick ([`TurnChain::watch`]).
pub enum Watch<'a, S> {
    /// A turn began during the tick, or one is running: nothing.
    Fine,
    /// No turn began during the tick and the queued job has not started (every worker is busy):
    /// run a turn here with this state (one that blocks and serves nothing).
    RunHere(MutexGuard<'a, S>),
    /// No turn job is queued or running (the chain broke): it has been marked queued; submit a
    /// new turn job (or call [`TurnChain::submit_failed`]).
    Requeue,
}

impl<S> TurnChain<S> {
    /// A chain whose first turn job is about to be submitted (marked queued); if submitting it
    /// fails, call [`TurnChain::submit_failed`].
    pub fn new(state: S) -> TurnChain<S> {
        TurnChain {
            state: Mutex::new(state),
            turns: AtomicU64::new(0),
            queued: AtomicBool::new(true),
        }
    }

    /// A turn job begins: waits for the state, counts the turn, and clears `queued` (this job was
    /// the queued one).
    pub fn begin(&self) -> Turn<'_, S> {
        let state = lock(&self.state);
        self.turns.fetch_add(1, Ordering::Relaxed);
        self.queued.store(false, Ordering::Release);
        Turn { chain: self, state }
    }

    /// The state, outside the chain: for the drain at shutdown, once no turn job is queued any
    /// more (the first turn that saw shutdown ended the chain).
    pub fn lock_state(&self) -> MutexGuard<'_, S> {
        lock(&self.state)
    }

    /// Submitting the job that was marked queued failed (the pool is shutting down): none is.
    pub fn submit_failed(&self) {
        self.queued.store(false, Ordering::Release);
    }

    /// Is a turn job queued (marked, not begun)?
    pub fn is_queued(&self) -> bool {
        self.queued.load(Ordering::Acquire)
    }

    /// The watcher's look, once a tick. `seen` is the turn count it saw at its previous look; it
    /// is updated.
    pub fn watch(&self, seen: &mut u64) -> Watch<'_, S> {
        let turns = self.turns.load(Ordering::Relaxed);
        let stalled = turns == *seen;
        *seen = turns;
        if !stalled {
            return Watch::Fine;
        }
        let Some(state) = try_lock(&self.state) else {
            return Watch::Fine; // a turn is running
        };
        if self.queued.load(Ordering::Acquire) {
            Watch::RunHere(state)
        } else {
            // Marked under the lock, as a turn does, so no turn can see the chain as broken too.
            self.queued.store(true, Ordering::Release);
            drop(state);
            Watch::Requeue
        }
    }
}

impl<S> Turn<'_, S> {
    /// The loop's state, for this turn.
    pub fn state(&mut self) -> &mut S {
        &mut self.state
    }

    /// Ends the turn. With `next`, the next turn job is marked queued *before* the lock is
    /// released (so the watcher, which looks under the lock, never sees a gap between this turn
    /// and the next job and queues a second chain); the caller must then submit it, or call
    /// [`TurnChain::submit_failed`]. Without, the chain ends here (shutdown).
    pub fn end(self, next: bool) {
        let Turn { chain, state } = self;
        if next && breaks::on(breaks::QUEUED_AFTER_UNLOCK) {
            drop(state);
            chain.queued.store(true, Ordering::Release);
            return;
        }
        if next {
            chain.queued.store(true, Ordering::Release);
        }
        drop(state);
    }
}
