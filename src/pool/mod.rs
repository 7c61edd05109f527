//! A fixed-size thread pool with a drain-on-shutdown protocol that is model-checked with loom.
//!
//! The pool knows nothing of HTTP. It takes `FnOnce() + Send + 'static` jobs and promises:
//!
//! * **Accepted ⇒ runs exactly once.** A job for which [`execute`](ThreadPool::execute) or
//!   [`try_execute`](ThreadPool::try_execute) returned `Ok` runs exactly once, unless
//!   [`shutdown_now`](ThreadPool::shutdown_now) hands it back un-run (then it never runs).
//! * **Refused ⇒ handed back.** A job refused because the pool is shutting down or its bounded
//!   queue is full comes back inside the [`ExecuteError`]; nothing is silently dropped.
//! * **A spawned job's handle always resolves.** [`spawn`](ThreadPool::spawn) returns a
//!   [`JobHandle`] that resolves exactly once: to the job's value, to [`JoinError::Panicked`], or to
//!   [`JoinError::Cancelled`] if the job is dropped without running (claims H1–H4 in `handle.rs`).
//! * **Panics are contained.** A panicking job is caught, counted in [`panicked`](ThreadPool::panicked)
//!   and logged; its worker goes on serving.
//! * **Drop drains and joins.** Dropping the pool runs every queued job and joins every worker; it never
//!   panics.
//!
//! The protocol (phases, the locks — one inbox per submitting thread, the take-side queue, the
//! lifecycle state — and their order, what each condition variable signals, and
//! why the promises hold) is written down in `SHUTDOWN.md` beside this file; each claim there names
//! the loom model in `loom-tests/` that checks it.
//!
//! All synchronisation goes through `crate::sync` (`src/sync.rs`), so the same code runs under loom.

mod builder;
mod error;
mod handle;
mod shared;

use std::time::{Duration, Instant};

pub use builder::{Builder, DEFAULT_THREAD_NAME, DEFAULT_THREADS};
pub use error::{BuildError, ExecuteError, PoolError};
pub use handle::{JobHandle, JoinError, JoinTimeoutError};
pub use shared::Job;

use handle::Spawned;
use shared::{Phase, Shared};

use crate::sync::atomic::Ordering;
use crate::sync::{Arc, lock, thread, wait, wait_while_until};

/// A pool of worker threads that run submitted jobs. See the [module docs](self) for its guarantees.
///
/// ```
/// use poolserve::ThreadPool;
///
/// let pool = ThreadPool::new(4);
/// for i in 0..100 {
///     pool.execute(move || assert!(i < 100)).expect("pool is running");
/// }
/// let report = pool.shutdown().expect("not called from a worker");
/// assert_eq!((report.completed, report.panicked), (100, 0));
/// ```
pub struct ThreadPool {
    shared: Arc<Shared>,
    /// Join handles of workers not yet joined; empty once shut down (which makes `Drop` a no-op).
    handles: Vec<thread::JoinHandle<()>>,
}

/// What a shutdown observed. Returned by [`ThreadPool::shutdown`], [`ThreadPool::shutdown_now`] and
/// [`ThreadPool::shutdown_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Jobs that ran to completion over the pool's life.
    pub completed: u64,
    /// Jobs that panicked over the pool's life (each panic was caught; the worker survived).
    pub panicked: u64,
    /// Jobs still running when the call returned (non-zero only after a `shutdown_timeout` that
    /// timed out). They will finish on their detached workers.
    pub still_running: usize,
    /// Jobs still queued when the call returned (non-zero only after a `shutdown_timeout` that timed
    /// out). They will still run on the detached workers.
    pub still_queued: usize,
    /// Worker threads joined by this call.
    pub threads_joined: usize,
}

impl ThreadPool {
    /// Starts a pool of `threads` workers with an unbounded queue.
    ///
    /// # Panics
    ///
    /// If `threads` is zero or the OS refuses to start a thread. Use [`ThreadPool::builder`] to get
    /// these as a [`BuildError`] instead.
    pub fn new(threads: usize) -> ThreadPool {
        match Builder::new().threads(threads).build() {
            Ok(pool) => pool,
            Err(e) => panic!("ThreadPool::new({threads}): {e}"),
        }
    }

    /// A [`Builder`] for configuring threads, names, stack size, queue bound and hooks.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Submits a job. Blocks while a bounded queue is full.
    ///
    /// Jobs submitted from one thread are taken by the workers in the order they were submitted, so
    /// a one-worker pool runs them in that order; with several workers, a job can start before an
    /// earlier one that another worker took first but has not started yet. Jobs from different
    /// threads have no order between them (each submitting thread has its own inbox, so that
    /// submitters do not contend on one lock).
    ///
    /// A job may block until a later job has run, as long as some worker is free to run that one:
    /// no accepted job waits while a worker sleeps. A job that blocks on another job while every
    /// worker is blocked the same way deadlocks, as in any pool with a fixed number of threads.
    ///
    /// # Errors
    ///
    /// [`ExecuteError::ShutDown`] with the job if shutdown has begun (also if it begins while this
    /// call is blocked on a full queue). Never [`ExecuteError::Full`].
    pub fn execute<F>(&self, job: F) -> Result<(), ExecuteError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        submit(&self.shared, job, true, boxed)
    }

    /// Submits a job without blocking.
    ///
    /// # Errors
    ///
    /// [`ExecuteError::Full`] with the job if the bounded queue is full, [`ExecuteError::ShutDown`]
    /// with the job if shutdown has begun.
    pub fn try_execute<F>(&self, job: F) -> Result<(), ExecuteError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        submit(&self.shared, job, false, boxed)
    }

    /// Submits a job that returns a value, and returns a [`JobHandle`] to [`join`](JobHandle::join)
    /// for it. Blocks while a bounded queue is full, like [`execute`](Self::execute), and orders
    /// and runs the job exactly as `execute` does.
    ///
    /// The handle resolves whatever happens to the job: to its value, to
    /// [`JoinError::Panicked`] (the pool also counts the panic in [`panicked`](Self::panicked)), or
    /// to [`JoinError::Cancelled`] if the job is dropped without running (after
    /// [`shutdown_now`](Self::shutdown_now) hands it back). Dropping the handle detaches the job.
    ///
    /// ```
    /// use poolserve::ThreadPool;
    ///
    /// let pool = ThreadPool::new(4);
    /// let handles: Vec<_> = (1..=10_u64)
    ///     .map(|i| pool.spawn(move || i * i).expect("the pool is running"))
    ///     .collect();
    /// let sum: u64 = handles.into_iter().map(|h| h.join().expect("no job panics")).sum();
    /// assert_eq!(sum, 385);
    /// ```
    ///
    /// # Errors
    ///
    /// [`ExecuteError::ShutDown`] with the caller's own closure `f` (not a wrapper) if shutdown has
    /// begun. Never [`ExecuteError::Full`].
    pub fn spawn<F, T>(&self, f: F) -> Result<JobHandle<T>, ExecuteError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn(&self.shared, f, true)
    }

    /// [`spawn`](Self::spawn) without blocking.
    ///
    /// ```
    /// use poolserve::{ExecuteError, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().threads(1).queue_capacity(Some(1)).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// pool.execute(move || { let _ = rx.recv(); }).unwrap(); // the worker is busy…
    /// while pool.active() == 0 { std::thread::yield_now(); }
    /// let queued = pool.try_spawn(|| 1).unwrap();           // …one job waits…
    /// match pool.try_spawn(|| 2) {                          // …and the queue is full:
    ///     Err(ExecuteError::Full(f)) => assert_eq!(f(), 2), // our own closure comes back
    ///     other => panic!("unexpected: {other:?}"),
    /// }
    /// drop(tx);
    /// assert_eq!(queued.join().unwrap(), 1);
    /// ```
    ///
    /// # Errors
    ///
    /// [`ExecuteError::Full`] with `f` if the bounded queue is full, [`ExecuteError::ShutDown`]
    /// with `f` if shutdown has begun.
    pub fn try_spawn<F, T>(&self, f: F) -> Result<JobHandle<T>, ExecuteError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn(&self.shared, f, false)
    }

    /// A submit-only handle on this pool, for the crate's own use: it lets a job submit further
    /// jobs (the server's event loop resubmits itself from a worker) without owning the pool.
    #[cfg(not(loom))] // only the server uses it, and the server is not built under loom
    pub(crate) fn spawner(&self) -> Spawner {
        Spawner {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stops accepting jobs without waiting: every later `execute` hands its job back. Jobs already
    /// accepted still run. Idempotent, callable from anywhere (a worker included). Use
    /// [`shutdown`](Self::shutdown) (or drop the pool) afterwards to wait for them.
    pub fn close(&self) {
        self.shared.begin_shutdown(Phase::Draining);
    }

    /// Blocks until the queue is empty and no job is running. Jobs submitted meanwhile are waited
    /// for too.
    ///
    /// # Errors
    ///
    /// [`PoolError::CalledFromWorker`] when called from one of this pool's workers (it would wait
    /// for itself). The pool is left as it was.
    pub fn wait_idle(&self) -> Result<(), PoolError> {
        self.refuse_from_worker()?;
        loop {
            let (taken, st) = self.shared.lock_both();
            if self.shared.idle_with(&taken) {
                return Ok(());
            }
            // Keep `state` from the check to the wait: every transition to idle is noticed with
            // `state` held (a worker in `next_job`, the `RunningJob` guard, `begin_shutdown`) and
            // notified whenever `idle_waiters > 0`, so it cannot slip in between (SHUTDOWN.md [C6]).
            drop(taken);
            let mut st = st;
            st.idle_waiters += 1;
            st = wait(&self.shared.idle, st);
            st.idle_waiters -= 1;
            drop(st);
        }
    }

    /// Graceful shutdown: stops accepting, runs every queued job, joins every worker.
    ///
    /// # Errors
    ///
    /// [`PoolError::CalledFromWorker`] when called from one of this pool's workers. The pool still
    /// stops accepting and its workers drain the queue and exit, but nobody waits for them.
    pub fn shutdown(mut self) -> Result<ShutdownReport, PoolError> {
        self.refuse_shutdown_from_worker()?;
        self.shared.begin_shutdown(Phase::Draining);
        Ok(self.join_all())
    }

    /// Immediate shutdown: stops accepting, takes every queued job out of the queue and hands them
    /// back un-run (each submitting thread's jobs oldest first), waits for the jobs already
    /// running, joins every worker.
    ///
    /// # Errors
    ///
    /// [`PoolError::CalledFromWorker`] when called from one of this pool's workers. The pool then
    /// stops accepting as with [`close`](Self::close): the queued jobs cannot be handed back
    /// through the error, so they still run, and nobody waits for them.
    pub fn shutdown_now(mut self) -> Result<(ShutdownReport, Vec<Job>), PoolError> {
        self.refuse_shutdown_from_worker()?;
        let unrun = self.shared.begin_shutdown(Phase::Stopping);
        Ok((self.join_all(), unrun))
    }

    /// Graceful shutdown with a deadline: like [`shutdown`](Self::shutdown), but returns after at
    /// most `timeout`. If jobs are still queued or running then, the report says how many
    /// (`still_queued`, `still_running`); the workers are detached and finish them on their own.
    ///
    /// # Errors
    ///
    /// [`PoolError::CalledFromWorker`] as for [`shutdown`](Self::shutdown).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Result<ShutdownReport, PoolError> {
        self.refuse_shutdown_from_worker()?;
        self.shared.begin_shutdown(Phase::Draining);
        let deadline = Instant::now() + timeout;
        let st = self.shared.lock();
        let (st, timed_out) =
            wait_while_until(&self.shared.idle, st, deadline, |st| st.live_workers > 0);
        if !timed_out {
            drop(st);
            return Ok(self.join_all());
        }
        drop(st);
        let (taken, st) = self.shared.lock_both();
        let report = ShutdownReport {
            completed: taken.completed,
            panicked: taken.panicked,
            still_running: taken.active,
            still_queued: taken.queue.len() + self.shared.inboxed(),
            threads_joined: 0,
        };
        drop((taken, st));
        log::warn!(
            "pool: shutdown timed out after {timeout:?}: {} running, {} queued; detaching {} workers",
            report.still_running,
            report.still_queued,
            self.handles.len()
        );
        self.handles.clear(); // detach: dropping a JoinHandle does not stop the thread
        Ok(report)
    }

    /// Jobs accepted and waiting for a worker.
    pub fn queued(&self) -> usize {
        let (taken, _st) = self.shared.lock_both();
        taken.queue.len() + self.shared.inboxed()
    }

    /// Jobs running right now.
    pub fn active(&self) -> usize {
        lock(&self.shared.taken).active
    }

    /// Jobs that have run to completion so far.
    pub fn completed(&self) -> u64 {
        lock(&self.shared.taken).completed
    }

    /// Jobs that have panicked so far (each panic was caught and logged).
    pub fn panicked(&self) -> u64 {
        lock(&self.shared.taken).panicked
    }

    /// The number of worker threads the pool was built with.
    pub fn threads(&self) -> usize {
        self.handles.len()
    }

    /// Is shutdown under way (or done)? Once `true`, every `execute` hands its job back.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().phase != Phase::Running
    }

    /// Refuses to wait on one of this pool's own workers (it would wait for itself).
    fn refuse_from_worker(&self) -> Result<(), PoolError> {
        if self.shared.is_current_worker() {
            log::warn!("pool: wait requested from one of its own workers; refused");
            return Err(PoolError::CalledFromWorker);
        }
        Ok(())
    }

    /// For the shutdown calls: on one of this pool's own workers, still stop accepting (so the pool
    /// winds down), but refuse to wait.
    fn refuse_shutdown_from_worker(&self) -> Result<(), PoolError> {
        let refused = self.refuse_from_worker();
        if refused.is_err() {
            self.shared.begin_shutdown(Phase::Draining);
        }
        refused
    }

    /// Joins every worker (shutdown must have begun) and reports. Never panics: a worker thread that
    /// panicked outside a job is logged.
    fn join_all(&mut self) -> ShutdownReport {
        let mut joined = 0;
        for handle in self.handles.drain(..) {
            if handle.join().is_err() {
                log::error!("pool: a worker thread panicked outside a job");
            }
            joined += 1;
        }
        let (taken, st) = self.shared.lock_both();
        let report = ShutdownReport {
            completed: taken.completed,
            panicked: taken.panicked,
            still_running: taken.active,
            still_queued: taken.queue.len() + self.shared.inboxed(),
            threads_joined: joined,
        };
        drop((taken, st));
        log::debug!("pool: shut down: {report:?}");
        report
    }
}

/// The submit path shared by [`ThreadPool`], [`Spawner`] and [`ThreadPool::spawn`]: pushes `job`
/// into the calling thread's inbox (waiting for room in a full bounded queue if `block`), then wakes
/// a sleeping worker.
///
/// `into_job` turns the accepted `job` into the queue's [`Job`]; it runs only once the job is
/// accepted, so that a refused job comes back as the caller's own `J`. For a plain closure it is
/// [`boxed`] (an unsizing coercion, no allocation); for [`ThreadPool::spawn`] it wraps the job with
/// its completion slot (one small allocation, inside the inbox's critical section).
fn submit<J>(
    shared: &Shared,
    job: J,
    block: bool,
    into_job: impl FnOnce(Box<J>) -> Job,
) -> Result<(), ExecuteError<J>>
where
    J: Send + 'static,
{
    // Allocated before the lock, so the inbox's critical section holds no `malloc`; a refused
    // job is unboxed again and handed back as the caller's own `F`.
    let job = Box::new(job);
    let slot = shared.inbox_for_this_thread();
    let mut inbox = lock(&slot.inbox);
    loop {
        if !inbox.open {
            return Err(ExecuteError::ShutDown(*job));
        }
        match shared.capacity {
            Some(cap) if inbox.queue.len() >= cap => {
                if !block {
                    return Err(ExecuteError::Full(*job));
                }
                // A bounded pool has one inbox, the one `space_ready` is used with.
                inbox.blocked_submitters += 1;
                inbox = wait(&shared.space_ready, inbox);
                inbox.blocked_submitters -= 1;
            }
            _ => break,
        }
    }
    let job = into_job(job);
    if inbox.queue.is_empty() {
        slot.nonempty.store(true, Ordering::Relaxed);
    }
    inbox.queue.push_back(job);
    drop(inbox);
    // After releasing the inbox: a worker that looked at this inbox before our push had registered
    // in `sleeping` before that look, so the read in here sees it unless another submitter has
    // already claimed its wake-up (SHUTDOWN.md §4 I6).
    shared.wake_a_sleeper();
    Ok(())
}

/// The submit path of [`ThreadPool::spawn`] and [`ThreadPool::try_spawn`]: wraps `f` with a
/// completion slot and submits it; a refused job is unwrapped again, so the error carries `f`.
fn spawn<F, T>(shared: &Shared, f: F, block: bool) -> Result<JobHandle<T>, ExecuteError<F>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (spawned, handle) = Spawned::new(f);
    match submit(shared, spawned, block, Spawned::into_job) {
        Ok(()) => Ok(handle),
        Err(refused) => Err(refused.map(Spawned::into_inner)),
    }
}

/// The `into_job` of a plain closure for [`submit`]: the box, type-erased.
fn boxed<F: FnOnce() + Send + 'static>(job: Box<F>) -> Job {
    job
}

/// A submit-only handle on a [`ThreadPool`] (crate-internal; see [`ThreadPool::spawner`]). It holds
/// the pool's shared state, not its workers: it cannot shut the pool down, and once the pool is
/// shutting down every submit through it is refused (and handed back) like any other.
#[cfg(not(loom))]
#[derive(Clone)]
pub(crate) struct Spawner {
    shared: Arc<Shared>,
}

#[cfg(not(loom))]
impl Spawner {
    /// As [`ThreadPool::try_execute`].
    pub(crate) fn try_execute<F>(&self, job: F) -> Result<(), ExecuteError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        submit(&self.shared, job, false, boxed)
    }

    /// "Some accepted job may be waiting for a worker": a lock-free hint (the inboxes' `nonempty`
    /// flags), for a job deciding whether it may block for a while. Never a guarantee either way.
    pub(crate) fn jobs_may_be_waiting(&self) -> bool {
        self.shared.any_inbox_flagged()
    }
}

impl Drop for ThreadPool {
    /// Same as [`shutdown`](ThreadPool::shutdown): every queued job runs, every worker is joined.
    /// Never panics. Dropped on one of its own workers, it stops accepting and lets the workers drain
    /// and exit on their own (joining there would deadlock).
    fn drop(&mut self) {
        if self.handles.is_empty() {
            return;
        }
        self.shared.begin_shutdown(Phase::Draining);
        if self.shared.is_current_worker() {
            log::warn!("pool: dropped on one of its own workers; detaching instead of joining");
            self.handles.clear();
            return;
        }
        self.join_all();
    }
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (taken, st) = self.shared.lock_both();
        f.debug_struct("ThreadPool")
            .field("threads", &self.handles.len())
            .field("phase", &st.phase)
            .field("queued", &(taken.queue.len() + self.shared.inboxed()))
            .field("active", &taken.active)
            .field("completed", &taken.completed)
            .field("panicked", &taken.panicked)
            .finish()
    }
}
