//! Errors returned by the pool. Every error that refuses a job carries the job back.

use std::fmt;

/// Why [`ThreadPool::execute`](super::ThreadPool::execute) or
/// [`ThreadPool::try_execute`](super::ThreadPool::try_execute) refused a job.
///
/// The refused job is inside the error, never dropped: take it back with
/// [`into_inner`](ExecuteError::into_inner) to run it elsewhere, retry later or drop it deliberately.
/// A refused [`spawn`](super::ThreadPool::spawn) or [`try_spawn`](super::ThreadPool::try_spawn)
/// hands back the caller's own closure, not a wrapper.
///
/// # One error type for blocking and non-blocking submits
///
/// [`execute`](super::ThreadPool::execute) and [`spawn`](super::ThreadPool::spawn) block on a full
/// queue, so they only ever return `ShutDown`; only [`try_execute`](super::ThreadPool::try_execute)
/// and [`try_spawn`](super::ThreadPool::try_spawn) return `Full`. crossbeam-channel splits the two
/// (`SendError` vs `TrySendError`); this crate keeps one type, deliberately:
///
/// * what a caller does with a refusal is the same on both paths (take the job back with
///   [`into_inner`](Self::into_inner), log, answer 503); the property tests, for one, handle
///   the refusals of all four submit methods with the same code;
/// * switching a call between blocking and non-blocking submission changes no error handling;
/// * splitting would break every caller that names `ExecuteError` for a gain that is one match arm.
///
/// The cost is that an exhaustive `match` on `execute`'s error must name `Full`, which it never
/// sees; [`into_inner`](Self::into_inner) and [`is_shut_down`](Self::is_shut_down) avoid that. Each
/// method's `# Errors` section says which variants it can return.
///
/// ```
/// use poolserve::{ExecuteError, ThreadPool};
///
/// let pool = ThreadPool::new(1);
/// pool.close();
/// match pool.execute(|| println!("never printed")) {
///     Err(ExecuteError::ShutDown(job)) => job(), // we got the job back and ran it ourselves
///     other => panic!("unexpected: {other:?}"),
/// }
/// ```
#[must_use = "a refused job is handed back inside the error; dropping it silently loses the job"]
pub enum ExecuteError<F> {
    /// The pool is shutting down or shut down; it accepts no more jobs.
    ShutDown(F),
    /// The bounded queue is full (only from [`try_execute`](super::ThreadPool::try_execute)).
    Full(F),
}

impl<F> ExecuteError<F> {
    /// Returns the refused job.
    pub fn into_inner(self) -> F {
        match self {
            ExecuteError::ShutDown(job) | ExecuteError::Full(job) => job,
        }
    }

    /// The same refusal, with the job passed through `f` (how `spawn` hands back the caller's
    /// closure rather than its wrapper).
    pub(crate) fn map<G>(self, f: impl FnOnce(F) -> G) -> ExecuteError<G> {
        match self {
            ExecuteError::ShutDown(job) => ExecuteError::ShutDown(f(job)),
            ExecuteError::Full(job) => ExecuteError::Full(f(job)),
        }
    }

    /// Returns `true` if the job was refused because the pool is shutting down.
    pub fn is_shut_down(&self) -> bool {
        matches!(self, ExecuteError::ShutDown(_))
    }

    /// Returns `true` if the job was refused because the bounded queue is full.
    pub fn is_full(&self) -> bool {
        matches!(self, ExecuteError::Full(_))
    }
}

impl<F> fmt::Debug for ExecuteError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecuteError::ShutDown(_) => f.write_str("ShutDown(..)"),
            ExecuteError::Full(_) => f.write_str("Full(..)"),
        }
    }
}

impl<F> fmt::Display for ExecuteError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecuteError::ShutDown(_) => {
                f.write_str("the thread pool is shut down; job handed back")
            }
            ExecuteError::Full(_) => {
                f.write_str("the thread pool's queue is full; job handed back")
            }
        }
    }
}

impl<F> std::error::Error for ExecuteError<F> {}

/// An operation that would wait for the pool was called where waiting cannot end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolError {
    /// Called from one of the pool's own worker threads. Waiting there would deadlock: the worker
    /// would wait for itself. Shutdown requested from a worker still stops the pool from accepting
    /// jobs and lets the workers drain the queue; it just does not wait for them.
    CalledFromWorker,
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::CalledFromWorker => f.write_str(
                "called from one of the pool's own workers, where waiting would deadlock",
            ),
        }
    }
}

impl std::error::Error for PoolError {}

/// Why [`Builder::build`](super::Builder::build) could not start a pool.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// `threads(0)`: a pool needs at least one worker.
    ZeroThreads,
    /// `queue_capacity(Some(0))`: a bounded queue needs room for at least one job.
    ZeroCapacity,
    /// The operating system refused to start a worker thread. Workers already started were shut
    /// down and joined before this was returned.
    Spawn(std::io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroThreads => f.write_str("a thread pool needs at least one thread"),
            BuildError::ZeroCapacity => {
                f.write_str("a bounded queue needs a capacity of at least one")
            }
            BuildError::Spawn(e) => write!(f, "could not start a worker thread: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Spawn(e) => Some(e),
            _ => None,
        }
    }
}
