//! Jobs that return a value: [`ThreadPool::spawn`](super::ThreadPool::spawn) and its
//! [`JobHandle`].
//!
//! A spawned job is the caller's closure wrapped with the sending side of a one-shot completion
//! slot (a `Mutex` and a `Condvar` from `crate::sync`, so the loom models in
//! `loom-tests/tests/handles.rs` check it). The slot is resolved exactly once, by whichever comes
//! first of:
//!
//! * **H1 — the job returns:** the wrapper stores `Ok(value)` under the lock, then notifies.
//! * **H2 — the job panics:** the wrapper catches the panic, stores `Err(JoinError::Panicked)` with
//!   the payload, then re-raises a panic carrying the message, so that the pool still counts and
//!   logs the panic like any other job's.
//! * **H3 — the job is dropped un-run** (handed back by `shutdown_now` and then dropped, or dropped
//!   by whoever holds it on any other path): the wrapper's `Drop` stores
//!   `Err(JoinError::Cancelled)`, then notifies.
//!
//! **H4 — no lost wake-up:** every resolution stores under the slot's lock and notifies after
//! storing; `join` checks and waits under that same lock, so it cannot miss the resolution.
//! Each of H1–H4 has a loom model and a break in `loom-tests/catalog/` that the model catches.

use std::any::Any;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::shared::{Job, panic_message};
use crate::sync::{Arc, Condvar, Mutex, lock, wait_while, wait_while_until};

/// The completion slot shared by a spawned job's wrapper and its [`JobHandle`].
struct Slot<T> {
    /// `None` until the job is resolved; then its outcome, until `join` takes it.
    outcome: Mutex<Option<Result<T, JoinError>>>,
    /// Notified (all) once `outcome` is set.
    resolved: Condvar,
}

/// A handle on a job submitted with [`ThreadPool::spawn`](super::ThreadPool::spawn) or
/// [`try_spawn`](super::ThreadPool::try_spawn): wait for its value with [`join`](Self::join) or
/// [`join_timeout`](Self::join_timeout).
///
/// The handle always resolves, whatever happens to the job: to its value, to
/// [`JoinError::Panicked`] with the panic's payload, or to [`JoinError::Cancelled`] when the job is
/// dropped without having run (its [`shutdown_now`](super::ThreadPool::shutdown_now) hands it back
/// and the caller drops it). A job that `shutdown_now` hands back and the caller then runs resolves
/// its handle to its value as usual; until it is either run or dropped, `join` waits.
///
/// Dropping the handle detaches the job: it still runs, and its value is dropped.
///
/// ```
/// use poolserve::ThreadPool;
///
/// let pool = ThreadPool::new(2);
/// let handle = pool.spawn(|| 6 * 7).expect("the pool is running");
/// assert_eq!(handle.join().expect("the job neither panicked nor was cancelled"), 42);
/// ```
///
/// A result that cannot be sent to another thread does not compile (E0277, "`Rc<i32>` cannot be
/// sent between threads safely"):
///
/// ```compile_fail,E0277
/// use std::rc::Rc;
/// use poolserve::ThreadPool;
///
/// let pool = ThreadPool::new(1);
/// let handle = pool.spawn(|| Rc::new(1));
/// ```
///
/// `join` consumes the handle, so a job's value is taken once (E0382, "use of moved value:
/// `handle`"):
///
/// ```compile_fail,E0382
/// use poolserve::ThreadPool;
///
/// let pool = ThreadPool::new(1);
/// let handle = pool.spawn(|| 1).unwrap();
/// let first = handle.join();
/// let second = handle.join();
/// ```
#[must_use = "dropping a JobHandle detaches the job; call join() to get its value"]
pub struct JobHandle<T> {
    slot: Arc<Slot<T>>,
}

impl<T> JobHandle<T> {
    /// Blocks until the job is resolved, and returns its value.
    ///
    /// Called from one of the pool's own workers, this can deadlock if every other worker is
    /// blocked too (as any wait on a job can, see [`ThreadPool::execute`](super::ThreadPool::execute)).
    ///
    /// # Errors
    ///
    /// [`JoinError::Panicked`] with the payload if the job panicked, [`JoinError::Cancelled`] if it
    /// was dropped without running.
    ///
    /// ```
    /// use poolserve::{JoinError, ThreadPool};
    ///
    /// let pool = ThreadPool::new(1);
    /// let handle = pool.spawn(|| -> u8 { panic!("boom") }).unwrap();
    /// match handle.join() {
    ///     Err(JoinError::Panicked(payload)) => assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom")),
    ///     other => panic!("unexpected: {other:?}"),
    /// }
    /// ```
    pub fn join(self) -> Result<T, JoinError> {
        let outcome = wait_while(&self.slot.resolved, lock(&self.slot.outcome), |o| {
            o.is_none()
        })
        .take();
        outcome.expect("the wait ends only once the outcome is set, and only join takes it")
    }

    /// Like [`join`](Self::join), but waits at most `timeout`. On timeout the handle comes back
    /// inside [`JoinTimeoutError::TimedOut`], to wait again or drop (detach).
    ///
    /// # Errors
    ///
    /// [`JoinTimeoutError::TimedOut`] with the handle if the job was not resolved in time;
    /// [`JoinTimeoutError::Failed`] with the [`JoinError`] if it panicked or was cancelled.
    ///
    /// ```
    /// use std::time::Duration;
    /// use poolserve::{JoinTimeoutError, ThreadPool};
    ///
    /// let pool = ThreadPool::new(1);
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let handle = pool.spawn(move || { let _ = rx.recv(); 5 }).unwrap();
    /// let handle = match handle.join_timeout(Duration::from_millis(10)) {
    ///     Err(JoinTimeoutError::TimedOut(handle)) => handle, // still waiting for `tx`
    ///     other => panic!("unexpected: {other:?}"),
    /// };
    /// drop(tx);
    /// assert_eq!(handle.join_timeout(Duration::from_secs(10)).unwrap(), 5);
    /// ```
    pub fn join_timeout(self, timeout: Duration) -> Result<T, JoinTimeoutError<T>> {
        let deadline = Instant::now() + timeout;
        let guard = lock(&self.slot.outcome);
        let (mut guard, timed_out) =
            wait_while_until(&self.slot.resolved, guard, deadline, |o| o.is_none());
        if timed_out {
            drop(guard);
            return Err(JoinTimeoutError::TimedOut(self));
        }
        let outcome = guard.take();
        drop(guard);
        outcome
            .expect("the wait ends only once the outcome is set, and only join takes it")
            .map_err(JoinTimeoutError::Failed)
    }

    /// Has the job been resolved (run to completion, panicked or cancelled)? If so, `join` returns
    /// without blocking.
    ///
    /// ```
    /// use poolserve::ThreadPool;
    ///
    /// let pool = ThreadPool::new(1);
    /// let handle = pool.spawn(|| 1).unwrap();
    /// pool.wait_idle().unwrap();
    /// assert!(handle.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        lock(&self.slot.outcome).is_some()
    }
}

impl<T> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a spawned job produced no value: returned by [`JobHandle::join`].
///
/// ```
/// use poolserve::{JoinError, ThreadPool};
///
/// let pool = ThreadPool::new(1);
/// let err = pool.spawn(|| -> () { panic!("boom") }).unwrap().join().unwrap_err();
/// assert!(err.is_panicked());
/// assert_eq!(err.to_string(), "the job panicked: boom");
/// ```
#[non_exhaustive]
pub enum JoinError {
    /// The job panicked; this is the panic's payload, as `std::thread::JoinHandle::join` gives it.
    /// The pool also counted the panic in [`ThreadPool::panicked`](super::ThreadPool::panicked).
    Panicked(Box<dyn Any + Send + 'static>),
    /// The job was dropped without running: [`ThreadPool::shutdown_now`](super::ThreadPool::shutdown_now)
    /// handed it back and it was dropped, or it was discarded on some other path.
    Cancelled,
}

impl JoinError {
    /// Did the job panic?
    ///
    /// ```
    /// # use poolserve::ThreadPool;
    /// let pool = ThreadPool::new(1);
    /// assert!(pool.spawn(|| panic!()).unwrap().join().unwrap_err().is_panicked());
    /// ```
    pub fn is_panicked(&self) -> bool {
        matches!(self, JoinError::Panicked(_))
    }

    /// Was the job dropped without running?
    ///
    /// ```
    /// use poolserve::ThreadPool;
    ///
    /// let pool = ThreadPool::new(1);
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// pool.execute(move || { let _ = rx.recv(); }).unwrap(); // occupies the only worker
    /// while pool.active() == 0 { std::thread::yield_now(); }
    /// let handle = pool.spawn(|| 1).unwrap();                 // queued behind it
    /// drop(tx);
    /// let (_report, unrun) = pool.shutdown_now().unwrap();
    /// drop(unrun); // the spawned job, if it had not started yet
    /// match handle.join() {
    ///     Ok(v) => assert_eq!(v, 1), // the worker took it before shutdown_now
    ///     Err(e) => assert!(e.is_cancelled()),
    /// }
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JoinError::Cancelled)
    }

    /// The panic's payload, or the error back if the job was cancelled.
    ///
    /// ```
    /// # use poolserve::ThreadPool;
    /// let pool = ThreadPool::new(1);
    /// let err = pool.spawn(|| -> u8 { std::panic::panic_any(7_u32) }).unwrap().join().unwrap_err();
    /// assert_eq!(err.try_into_panic().ok().and_then(|p| p.downcast::<u32>().ok()), Some(Box::new(7)));
    /// ```
    ///
    /// # Errors
    ///
    /// `self` if it is [`JoinError::Cancelled`].
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self {
            JoinError::Panicked(payload) => Ok(payload),
            other => Err(other),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(payload) => f
                .debug_tuple("Panicked")
                .field(&panic_message(&**payload))
                .finish(),
            JoinError::Cancelled => f.write_str("Cancelled"),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(payload) => {
                write!(f, "the job panicked: {}", panic_message(&**payload))
            }
            JoinError::Cancelled => f.write_str("the job was dropped without running (cancelled)"),
        }
    }
}

impl std::error::Error for JoinError {}

/// Why [`JobHandle::join_timeout`] returned no value.
///
/// ```
/// use std::time::Duration;
/// use poolserve::{JoinTimeoutError, ThreadPool};
///
/// let pool = ThreadPool::new(1);
/// let handle = pool.spawn(|| -> u8 { panic!("boom") }).unwrap();
/// match handle.join_timeout(Duration::from_secs(10)) {
///     Err(JoinTimeoutError::Failed(e)) => assert!(e.is_panicked()),
///     other => panic!("unexpected: {other:?}"),
/// }
/// ```
pub enum JoinTimeoutError<T> {
    /// The job was not resolved in time; here is its handle back.
    TimedOut(JobHandle<T>),
    /// The job was resolved without a value.
    Failed(JoinError),
}

impl<T> fmt::Debug for JoinTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinTimeoutError::TimedOut(_) => f.write_str("TimedOut(..)"),
            JoinTimeoutError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

impl<T> fmt::Display for JoinTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinTimeoutError::TimedOut(_) => {
                f.write_str("timed out waiting for the job; handle handed back")
            }
            JoinTimeoutError::Failed(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<T> std::error::Error for JoinTimeoutError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JoinTimeoutError::Failed(e) => Some(e),
            JoinTimeoutError::TimedOut(_) => None,
        }
    }
}

/// The sending side of a slot, owned by the job's wrapper. Resolves the slot exactly once: by
/// [`resolve`](Self::resolve), or as cancelled when dropped unresolved (H3).
struct Completer<T> {
    slot: Option<Arc<Slot<T>>>,
}

impl<T> Completer<T> {
    /// Stores `outcome` under the lock, then wakes every joiner (H1, H2, H4).
    fn resolve(mut self, outcome: Result<T, JoinError>) {
        if let Some(slot) = self.slot.take() {
            store(&slot, outcome);
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            store(&slot, Err(JoinError::Cancelled));
        }
    }
}

/// Resolves `slot`: the outcome is stored with the lock held, and the joiners are notified after
/// that (H4).
fn store<T>(slot: &Slot<T>, outcome: Result<T, JoinError>) {
    let mut guard = lock(&slot.outcome);
    *guard = Some(outcome);
    drop(guard);
    slot.resolved.notify_all();
}

/// A spawned job before it is accepted: the caller's closure and the completion slot's sending
/// side. A refused one is taken apart again ([`into_inner`](Self::into_inner)), so that the caller
/// gets its own closure back.
pub(crate) struct Spawned<F, T> {
    f: F,
    completer: Completer<T>,
}

impl<F, T> Spawned<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    /// Wraps `f` with a fresh slot; returns it and the handle on that slot.
    pub(crate) fn new(f: F) -> (Self, JobHandle<T>) {
        let slot = Arc::new(Slot {
            outcome: Mutex::new(None),
            resolved: Condvar::new(),
        });
        let handle = JobHandle {
            slot: Arc::clone(&slot),
        };
        let spawned = Spawned {
            f,
            completer: Completer { slot: Some(slot) },
        };
        (spawned, handle)
    }

    /// The caller's closure back, the slot disarmed (nobody holds its handle: it was never given
    /// out).
    pub(crate) fn into_inner(self) -> F {
        let Spawned { f, mut completer } = self;
        completer.slot = None;
        f
    }

    /// The queue's [`Job`] for an accepted spawned job (`submit`'s `into_job`).
    pub(crate) fn into_job(spawned: Box<Self>) -> Job {
        Box::new(move || (*spawned).run())
    }

    /// Runs the job and resolves the slot (H1), or on a panic stores the payload and re-raises the
    /// panic for the pool to count and log (H2).
    fn run(self) {
        let Spawned { f, completer } = self;
        match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(value) => completer.resolve(Ok(value)),
            Err(payload) => {
                let message = panic_message(&*payload).to_owned();
                completer.resolve(Err(JoinError::Panicked(payload)));
                // `resume_unwind` does not run the panic hook again (it ran for the original).
                panic::resume_unwind(Box::new(message));
            }
        }
    }
}
