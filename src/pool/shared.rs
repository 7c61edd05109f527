//! The state every worker and every handle shares, and the worker loop.
//!
//! See `SHUTDOWN.md` beside this file for the protocol as a whole; this file holds its moving parts.

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};

use crate::sync::{Condvar, Mutex, MutexGuard, lock, thread_local, wait};

/// A queued job: what [`ThreadPool::shutdown_now`](super::ThreadPool::shutdown_now) hands back.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// A hook run on each worker thread as it starts or stops.
pub(crate) type Hook = Box<dyn Fn() + Send + Sync + 'static>;

/// Where the pool is in its life. It only ever moves forward: `Running → Draining → …` or
/// `Running/Draining → Stopping`; no transition goes back to `Running`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Accepting jobs.
    Running,
    /// Refusing new jobs; workers run every job already queued, then exit.
    Draining,
    /// Refusing new jobs; the queue was emptied by `shutdown_now`; workers finish the job they are
    /// running (if any), then exit.
    Stopping,
}

/// Everything behind the pool's one lock.
pub(crate) struct State {
    /// Accepted jobs not yet taken by a worker, oldest first.
    pub(crate) queue: VecDeque<Job>,
    /// Lifecycle phase; see [`Phase`].
    pub(crate) phase: Phase,
    /// Jobs taken from the queue and not yet finished (running on some worker).
    pub(crate) active: usize,
    /// Workers blocked in `work_ready.wait`; a submitter notifies only if this is non-zero.
    pub(crate) sleeping: usize,
    /// Workers that have started and not yet exited their loop.
    pub(crate) live_workers: usize,
    /// Submitters blocked in `space_ready.wait` on a full bounded queue.
    pub(crate) blocked_submitters: usize,
    /// Jobs that returned normally.
    pub(crate) completed: u64,
    /// Jobs that panicked (the panic was caught; the worker survived).
    pub(crate) panicked: u64,
}

/// The state shared by the [`ThreadPool`](super::ThreadPool) handle and its workers.
///
/// Lock discipline: `state` is the only lock. It is never held while a job runs, while a hook runs,
/// or while joining a thread, so no job can block the pool's bookkeeping and no lock-order cycle
/// exists. Each condition variable is used with `state` only, and says what it signals:
pub(crate) struct Shared {
    /// Protects the queue, the phase and every counter (see [`State`]).
    pub(crate) state: Mutex<State>,
    /// Signalled when a job is queued (one sleeper) or the phase leaves `Running` (all sleepers).
    /// Workers wait on it.
    pub(crate) work_ready: Condvar,
    /// Signalled when a bounded queue loses a job (one submitter) or the phase leaves `Running`
    /// (all). Blocked submitters wait on it.
    pub(crate) space_ready: Condvar,
    /// Signalled (all) when the pool becomes idle (queue empty and nothing active) and when a worker
    /// exits. `wait_idle` and `shutdown_timeout` wait on it.
    pub(crate) idle: Condvar,
    /// `None` for an unbounded queue.
    pub(crate) capacity: Option<usize>,
    pub(crate) on_start: Option<Hook>,
    pub(crate) on_stop: Option<Hook>,
}

#[cfg(not(loom))]
thread_local! {
    /// The identity (address of `Shared`) of the pool whose worker this thread is; 0 elsewhere.
    static CURRENT_POOL: Cell<usize> = const { Cell::new(0) };
}
#[cfg(loom)]
thread_local! {
    /// Same, in loom's form (loom's macro does not accept a `const { }` initialiser).
    static CURRENT_POOL: Cell<usize> = Cell::new(0);
}

impl Shared {
    pub(crate) fn new(
        capacity: Option<usize>,
        on_start: Option<Hook>,
        on_stop: Option<Hook>,
    ) -> Self {
        Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                phase: Phase::Running,
                active: 0,
                sleeping: 0,
                live_workers: 0,
                blocked_submitters: 0,
                completed: 0,
                panicked: 0,
            }),
            work_ready: Condvar::new(),
            space_ready: Condvar::new(),
            idle: Condvar::new(),
            capacity,
            on_start,
            on_stop,
        }
    }

    fn id(&self) -> usize {
        self as *const Shared as usize
    }

    /// Is the calling thread one of this pool's workers?
    pub(crate) fn is_current_worker(&self) -> bool {
        CURRENT_POOL.with(|c| c.get()) == self.id()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Moves the pool out of `Running` into `to` (first call wins; later calls only upgrade
    /// `Draining` to `Stopping`) and wakes every waiter so each re-checks the phase.
    ///
    /// Guarantee: after this returns, no job is accepted any more, every sleeping worker and every
    /// blocked submitter has been notified, and (for `Stopping`) the jobs that were queued are
    /// returned to the caller and will never run. Idempotent.
    pub(crate) fn begin_shutdown(&self, to: Phase) -> Vec<Job> {
        let mut st = self.lock();
        let from = st.phase;
        let unrun: Vec<Job> = match (from, to) {
            (Phase::Running, Phase::Draining) => {
                st.phase = Phase::Draining;
                Vec::new()
            }
            (Phase::Running | Phase::Draining, Phase::Stopping) => {
                st.phase = Phase::Stopping;
                st.queue.drain(..).collect()
            }
            _ => Vec::new(),
        };
        let became_idle = st.queue.is_empty() && st.active == 0;
        drop(st);
        if from != to {
            log::debug!(
                "pool: shutdown begun ({from:?} -> {to:?}), {} queued jobs handed back",
                unrun.len()
            );
        }
        // Signal every waiter *before* anyone joins a worker: joining first is the Book's deadlock.
        self.work_ready.notify_all();
        self.space_ready.notify_all();
        if became_idle {
            self.idle.notify_all();
        }
        unrun
    }
}

/// Accounts for one job taken from the queue. Dropping it (on every path, including an unexpected
/// unwind) gives the `active` slot back, counts the outcome and wakes idle-waiters if the pool just
/// became idle.
struct RunningJob<'a> {
    shared: &'a Shared,
    panicked: bool,
}

impl Drop for RunningJob<'_> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.active -= 1;
        if self.panicked {
            st.panicked += 1;
        } else {
            st.completed += 1;
        }
        let idle = st.queue.is_empty() && st.active == 0;
        drop(st);
        if idle {
            self.shared.idle.notify_all();
        }
    }
}

/// Accounts for one worker's life: created when it starts, dropped (on every path) when it exits.
struct LiveWorker<'a> {
    shared: &'a Shared,
}

impl Drop for LiveWorker<'_> {
    fn drop(&mut self) {
        run_hook(self.shared.on_stop.as_ref(), "on_thread_stop");
        CURRENT_POOL.with(|c| c.set(0));
        let mut st = self.shared.lock();
        st.live_workers -= 1;
        drop(st);
        self.shared.idle.notify_all();
    }
}

/// Takes the next job, sleeping while the queue is empty and the pool is `Running`.
/// Returns `None` when the worker should exit: the queue is empty and the pool is shutting down.
fn next_job(shared: &Shared) -> Option<Job> {
    let mut st = shared.lock();
    loop {
        if let Some(job) = st.queue.pop_front() {
            st.active += 1;
            let wake_submitter = st.blocked_submitters > 0;
            drop(st);
            if wake_submitter {
                shared.space_ready.notify_one();
            }
            return Some(job);
        }
        if st.phase != Phase::Running {
            return None;
        }
        st.sleeping += 1;
        st = wait(&shared.work_ready, st);
        st.sleeping -= 1;
    }
}

/// The body of every worker thread.
pub(crate) fn worker_loop(shared: &Shared) {
    CURRENT_POOL.with(|c| c.set(shared.id()));
    // `live_workers` was incremented by the spawner before the thread started, so shutdown can
    // never observe zero live workers while one is still starting.
    let _live = LiveWorker { shared };
    run_hook(shared.on_start.as_ref(), "on_thread_start");
    while let Some(job) = next_job(shared) {
        let mut running = RunningJob {
            shared,
            panicked: true,
        };
        match panic::catch_unwind(AssertUnwindSafe(job)) {
            Ok(()) => running.panicked = false,
            Err(payload) => {
                log::error!("pool: job panicked: {}", panic_message(&*payload));
                // Dropping the payload runs foreign code that may itself panic; contain it too.
                let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
            }
        }
    }
}

/// Runs a start/stop hook, containing (and logging) a panic in it.
fn run_hook(hook: Option<&Hook>, name: &str) {
    if let Some(hook) = hook
        && panic::catch_unwind(AssertUnwindSafe(hook)).is_err()
    {
        log::error!("pool: {name} hook panicked");
    }
}

/// The message of a panic payload, when it is a string.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "<non-string panic payload>"
    }
}
