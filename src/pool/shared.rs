//! The state every worker and every handle shares, and the worker loop.
//!
//! See `SHUTDOWN.md` beside this file for the protocol as a whole; this file holds its moving parts.

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};

use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{Condvar, Mutex, MutexGuard, lock, thread, thread_local, wait};

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

/// Everything behind the submit-side lock (`Shared::state`): the inbox and the lifecycle.
pub(crate) struct State {
    /// Accepted jobs not yet moved to the take-side queue ([`Taken::queue`]), oldest first. Every
    /// job here is newer than every job in `Taken::queue`.
    pub(crate) queue: VecDeque<Job>,
    /// Lifecycle phase; see [`Phase`].
    pub(crate) phase: Phase,
    /// Workers blocked in `work_ready.wait`; a submitter notifies only if this is non-zero.
    pub(crate) sleeping: usize,
    /// Workers that have started and not yet exited their loop.
    pub(crate) live_workers: usize,
    /// Submitters blocked in `space_ready.wait` on a full bounded queue.
    pub(crate) blocked_submitters: usize,
    /// Callers blocked in `idle.wait` inside `wait_idle`; a worker that finds the pool idle
    /// notifies only if this is non-zero (a notification is a syscall even with nobody waiting).
    pub(crate) idle_waiters: usize,
}

/// Everything behind the take-side lock (`Shared::taken`): jobs handed over from the inbox and the
/// accounting of running and finished jobs. Only workers (and shutdown/observers) lock it, never a
/// submitter, so a flood of submits and a flood of takes do not contend on one lock.
pub(crate) struct Taken {
    /// Jobs moved out of the inbox in one batch and not yet started, oldest first. Always empty
    /// for a bounded pool (a worker there moves exactly the one job it is about to run), so that a
    /// bounded pool's capacity is counted on the inbox alone.
    pub(crate) queue: VecDeque<Job>,
    /// Jobs taken and not yet finished (running on some worker).
    pub(crate) active: usize,
    /// Jobs that returned normally.
    pub(crate) completed: u64,
    /// Jobs that panicked (the panic was caught; the worker survived).
    pub(crate) panicked: u64,
}

impl Taken {
    /// Is the pool idle: both queues empty and no job running? (Both locks held.)
    fn idle_with(&self, st: &State) -> bool {
        self.queue.is_empty() && st.queue.is_empty() && self.active == 0
    }
}

/// The state shared by the [`ThreadPool`](super::ThreadPool) handle and its workers.
///
/// Lock discipline: two locks, `taken` (take side) and `state` (submit side). Whoever needs both
/// takes `taken` first, then `state`; a submitter takes only `state`. Neither is ever held while a
/// job runs, while a hook runs, or while joining a thread. Each condition variable is used with
/// `state` only, and says what it signals:
pub(crate) struct Shared {
    /// The inbox, the phase and the worker/submitter counters (see [`State`]).
    pub(crate) state: Mutex<State>,
    /// The take-side queue and the job counters (see [`Taken`]).
    pub(crate) taken: Mutex<Taken>,
    /// Signalled when a job is queued (one sleeper) or the phase leaves `Running` (all sleepers).
    /// Workers wait on it.
    pub(crate) work_ready: Condvar,
    /// Signalled when a bounded queue loses a job (one submitter) or the phase leaves `Running`
    /// (all). Blocked submitters wait on it.
    pub(crate) space_ready: Condvar,
    /// Signalled (all) when the pool becomes idle (both queues empty and nothing active; always
    /// detected with both locks held) and when a worker exits. `wait_idle` and `shutdown_timeout` wait on it.
    pub(crate) idle: Condvar,
    /// `None` for an unbounded queue.
    pub(crate) capacity: Option<usize>,
    /// `!state.queue.is_empty()`, written under `state` whenever that changes, read without any
    /// lock only by spinning workers to decide when to look again. Never trusted for a decision:
    /// every decision re-reads the queues under the locks.
    pub(crate) inbox_hint: AtomicBool,
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
                sleeping: 0,
                live_workers: 0,
                blocked_submitters: 0,
                idle_waiters: 0,
            }),
            taken: Mutex::new(Taken {
                queue: VecDeque::new(),
                active: 0,
                completed: 0,
                panicked: 0,
            }),
            work_ready: Condvar::new(),
            space_ready: Condvar::new(),
            idle: Condvar::new(),
            capacity,
            inbox_hint: AtomicBool::new(false),
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

    /// Locks the submit side.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Locks both sides, in the one allowed order (take side first).
    pub(crate) fn lock_both(&self) -> (MutexGuard<'_, Taken>, MutexGuard<'_, State>) {
        let taken = lock(&self.taken);
        (taken, lock(&self.state))
    }

    /// Moves the pool out of `Running` into `to` (first call wins; later calls only upgrade
    /// `Draining` to `Stopping`) and wakes every waiter so each re-checks the phase.
    ///
    /// Guarantee: after this returns, no job is accepted any more, every sleeping worker and every
    /// blocked submitter has been notified, and (for `Stopping`) the jobs that were queued are
    /// returned to the caller and will never run. Idempotent.
    pub(crate) fn begin_shutdown(&self, to: Phase) -> Vec<Job> {
        let (mut taken, mut st) = self.lock_both();
        let from = st.phase;
        let unrun: Vec<Job> = match (from, to) {
            (Phase::Running, Phase::Draining) => {
                st.phase = Phase::Draining;
                Vec::new()
            }
            (Phase::Running | Phase::Draining, Phase::Stopping) => {
                st.phase = Phase::Stopping;
                self.inbox_hint.store(false, Ordering::Relaxed);
                // Oldest first: everything in the take-side queue predates the inbox.
                taken.queue.drain(..).chain(st.queue.drain(..)).collect()
            }
            _ => Vec::new(),
        };
        let became_idle = taken.idle_with(&st);
        drop(taken);
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

/// How many times an idle worker re-checks for work (yielding its CPU in between) before it
/// registers as sleeping and parks. A worker that parks costs the next submitter a wake-up (a
/// syscall on the submitter's critical path plus a context switch), so under a flood of small jobs
/// a brief spin is much cheaper; it is short enough that an idle pool still goes to sleep within a
/// few microseconds. Under loom one round suffices to cover the "spin then park" path.
#[cfg(not(loom))]
const SPIN_ROUNDS: u32 = 16;
#[cfg(loom)]
const SPIN_ROUNDS: u32 = 1;

/// Guards the accounting of one running job against an *unexpected* unwind (a panic in the pool's
/// own code between taking a job and recording its outcome; a panic in the job itself is caught and
/// recorded normally). On the normal path it is defused and the outcome is recorded by the next
/// [`next_job`] call, in the same critical section that takes the next job.
struct RunningJob<'a> {
    shared: &'a Shared,
    armed: bool,
}

impl Drop for RunningJob<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (mut taken, st) = self.shared.lock_both();
        taken.active -= 1;
        taken.panicked += 1;
        let idle = taken.idle_with(&st);
        drop((taken, st));
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

/// How the previous job of a worker ended, recorded when it comes back for the next one.
#[derive(Clone, Copy)]
enum Outcome {
    Completed,
    Panicked,
}

/// Records `finished` (the outcome of the job this worker ran last, if any), then takes the next
/// job, first spinning briefly and then sleeping while both queues are empty and the pool is
/// `Running`. Returns `None` when the worker should exit: both queues are empty and the pool is
/// shutting down.
///
/// The common case takes only the take-side lock: it pops from [`Taken::queue`]. When that is
/// empty, the worker also locks the submit side and moves the whole inbox over in one swap (an
/// unbounded pool) or moves the one job it is about to run (a bounded pool).
fn next_job(shared: &Shared, finished: Option<Outcome>) -> Option<Job> {
    let mut taken = lock(&shared.taken);
    if let Some(outcome) = finished {
        taken.active -= 1;
        match outcome {
            Outcome::Completed => taken.completed += 1,
            Outcome::Panicked => taken.panicked += 1,
        }
        // Becoming idle is noticed below, with both locks held, once the queues are seen empty.
    }
    let mut spins = SPIN_ROUNDS;
    loop {
        if let Some(job) = taken.queue.pop_front() {
            taken.active += 1;
            return Some(job);
        }
        let mut st = lock(&shared.state);
        if !st.queue.is_empty() {
            if shared.capacity.is_none() {
                std::mem::swap(&mut taken.queue, &mut st.queue);
                shared.inbox_hint.store(false, Ordering::Relaxed);
                continue;
            }
            let job = st.queue.pop_front();
            if st.queue.is_empty() {
                shared.inbox_hint.store(false, Ordering::Relaxed);
            }
            let wake_submitter = st.blocked_submitters > 0;
            drop(st);
            taken.active += 1;
            drop(taken);
            if wake_submitter {
                shared.space_ready.notify_one();
            }
            return job;
        }
        if taken.active == 0 && st.idle_waiters > 0 {
            // Both queues empty, nothing running: idle. Waiters check this and count themselves
            // holding `state`, which we hold too, so none can miss this notification.
            shared.idle.notify_all();
        }
        if st.phase != Phase::Running {
            return None;
        }
        drop(taken);
        if spins > 0 {
            // Spin without either lock (so submitters can get in), watching the hint; whatever
            // the hint says, the queues are re-checked under the locks before anything is decided.
            drop(st);
            while spins > 0 {
                spins -= 1;
                thread::yield_now();
                if shared.inbox_hint.load(Ordering::Relaxed) {
                    break;
                }
            }
        } else {
            // Counting ourselves as sleeping and waiting happen in one step under `state`, which
            // every submitter holds while it pushes and reads `sleeping`: no wake-up is lost.
            st.sleeping += 1;
            st = wait(&shared.work_ready, st);
            st.sleeping -= 1;
            drop(st);
            spins = SPIN_ROUNDS;
        }
        taken = lock(&shared.taken);
    }
}

/// The body of every worker thread.
pub(crate) fn worker_loop(shared: &Shared) {
    CURRENT_POOL.with(|c| c.set(shared.id()));
    // `live_workers` was incremented by the spawner before the thread started, so shutdown can
    // never observe zero live workers while one is still starting.
    let _live = LiveWorker { shared };
    run_hook(shared.on_start.as_ref(), "on_thread_start");
    let mut finished = None;
    while let Some(job) = next_job(shared, finished.take()) {
        let mut running = RunningJob {
            shared,
            armed: true,
        };
        let outcome = match panic::catch_unwind(AssertUnwindSafe(job)) {
            Ok(()) => Outcome::Completed,
            Err(payload) => {
                log::error!("pool: job panicked: {}", panic_message(&*payload));
                // Dropping the payload runs foreign code that may itself panic; contain it too.
                let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
                Outcome::Panicked
            }
        };
        running.armed = false;
        finished = Some(outcome);
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
