//! The one place where the pool gets its synchronisation primitives.
//!
//! Under `--cfg loom` every name here comes from [`loom`](https://docs.rs/loom), so the loom models in
//! `loom-tests/` explore every interleaving of the *real* pool code; otherwise the same names come
//! from `std`. Nothing under `src/pool/` may name `std::sync` or `std::thread` directly: a primitive
//! that bypassed this module would be invisible to loom, and the models would prove nothing about it.
//!
//! The helpers smooth over the few places where loom and std differ, and encode two rules of the pool:
//!
//! * **Poisoning is ignored.** Jobs run outside every lock, so a lock can only be poisoned by a panic in
//!   the pool's own short critical sections; the protected state is still consistent there (each
//!   critical section updates it in one step), so recovering the guard is sound and keeps one panic
//!   from cascading into every later caller.
//! * **Waits are always in a loop** ([`wait_while`]), because condition variables wake spuriously and
//!   a notification can be consumed by another waiter.
//!
//! This module is public only so that the loom models (a separate crate) can build their deliberately
//! broken negative examples from the same primitives; it is not part of the supported API.

#[cfg(loom)]
pub use loom::sync::{Arc, Condvar, Mutex, MutexGuard, atomic};
#[cfg(loom)]
pub use loom::thread;
#[cfg(loom)]
pub(crate) use loom::{lazy_static, thread_local};

#[cfg(not(loom))]
pub use std::sync::{Arc, Condvar, Mutex, MutexGuard, atomic};
#[cfg(not(loom))]
pub use std::thread;
#[cfg(not(loom))]
pub(crate) use std::thread_local;

use std::sync::PoisonError;
use std::time::Instant;

/// Locks `mutex`, recovering the guard if a previous holder panicked (see the module docs).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Locks `mutex` if it is free, recovering the guard if a previous holder panicked (see the module
/// docs); `None` if it is held.
pub fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Locks `mutex` like [`lock`], but if it is held, first yields the CPU once (then blocks as usual).
///
/// For a lock that several threads take once per short job: blocking at once makes the waiter spin
/// and then sleep on the holder's cache line, and two threads taking turns that way can stay in
/// lockstep for a whole run; yielding lets another runnable thread (a submitter, when the machine
/// has fewer cores than busy threads) use the CPU meanwhile. Timing only: the lock is then taken
/// exactly as by [`lock`], so under loom this *is* [`lock`] (a failed `try_lock` changes nothing,
/// and exploring it would only add interleavings to every model).
pub fn lock_or_yield<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(not(loom))]
    match mutex.try_lock() {
        Ok(guard) => return guard,
        Err(std::sync::TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => thread::yield_now(),
    }
    lock(mutex)
}

/// Blocks once on `condvar` (the caller re-checks its condition in a loop).
pub fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar.wait(guard).unwrap_or_else(PoisonError::into_inner)
}

/// Blocks on `condvar` until `condition` returns `false`, re-checking after every wake-up.
pub fn wait_while<'a, T>(
    condvar: &Condvar,
    mut guard: MutexGuard<'a, T>,
    mut condition: impl FnMut(&mut T) -> bool,
) -> MutexGuard<'a, T> {
    while condition(&mut guard) {
        guard = wait(condvar, guard);
    }
    guard
}

/// Like [`wait_while`], but gives up at `deadline`. Returns the guard and `true` if the condition
/// still held when the deadline passed.
///
/// Under loom, `Condvar::wait_timeout` never times out, so this waits exactly like [`wait_while`]:
/// the models check the protocol, and the timeout path is tested with real threads instead.
pub fn wait_while_until<'a, T>(
    condvar: &Condvar,
    mut guard: MutexGuard<'a, T>,
    deadline: Instant,
    mut condition: impl FnMut(&mut T) -> bool,
) -> (MutexGuard<'a, T>, bool) {
    while condition(&mut guard) {
        let now = Instant::now();
        if now >= deadline {
            return (guard, true);
        }
        guard = condvar
            .wait_timeout(guard, deadline - now)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    (guard, false)
}
