//! The state every worker and every handle shares, and the worker loop.
//!
//! See `SHUTDOWN.md` beside this file for the protocol as a whole; this file holds its moving parts.

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};

use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::{Condvar, Mutex, MutexGuard, lock, lock_or_yield, thread, thread_local, wait};

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

/// Everything behind one inbox lock (`Shared::inboxes[i]`): the jobs submitted to that inbox.
pub(crate) struct Inbox {
    /// Accepted jobs not yet moved to the take-side queue ([`Taken::queue`]), oldest first. Every
    /// job here is newer than every job that the same submitting thread put into `Taken::queue`.
    pub(crate) queue: VecDeque<Job>,
    /// `true` while the phase is `Running`: the copy of [`State::phase`] that a submitter checks
    /// under this lock alone. Cleared in every inbox by `begin_shutdown`, which holds every lock.
    pub(crate) open: bool,
    /// Submitters blocked in `space_ready.wait` on a full bounded queue (a bounded pool has one
    /// inbox, and `space_ready` is used with its lock only).
    pub(crate) blocked_submitters: usize,
}

/// One inbox and its lock-free "non-empty" hint, together on one cache line.
pub(crate) struct InboxSlot {
    /// The inbox itself.
    pub(crate) inbox: Mutex<Inbox>,
    /// "This inbox may hold jobs": set by the submit that makes it non-empty and cleared by the
    /// worker (or `shutdown_now`) that empties it, always under `inbox`'s lock. Read with no lock
    /// by workers: to stop spinning, and to skip empty inboxes when moving jobs (`SHUTDOWN.md` §1
    /// and I5 say why skipping on a stale read loses nothing).
    pub(crate) nonempty: AtomicBool,
}

/// Everything behind the lifecycle lock (`Shared::state`).
pub(crate) struct State {
    /// Lifecycle phase; see [`Phase`].
    pub(crate) phase: Phase,
    /// Workers that have started and not yet exited their loop.
    pub(crate) live_workers: usize,
    /// Callers blocked in `idle.wait` inside `wait_idle`; a worker that finds the pool idle
    /// notifies only if this is non-zero (a notification is a syscall even with nobody waiting).
    pub(crate) idle_waiters: usize,
    /// Wake-ups claimed and not yet consumed by a worker: whoever wakes a sleeper (a submitter, or
    /// a worker that left jobs in the take-side queue) moves it from [`Shared::sleeping`] to here
    /// (and then calls `notify_one`), and each registered worker, as it stops sleeping, takes one
    /// back from here if any, else from `sleeping` (`SHUTDOWN.md` §4 I6). So `sleeping + wakes_claimed` is always the number of
    /// registered workers, and a flood of submits pays for one wake-up per sleeper, not one each.
    pub(crate) wakes_claimed: usize,
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

/// How many inboxes an unbounded pool has. Each submitting thread always uses the same one (see
/// [`Shared::inbox_for_this_thread`]), so up to this many threads submit without contending on a
/// lock. A worker that looks for work locks each of them once per look, so more is not free.
/// Under loom two inboxes are enough to cover "the job is in an inbox the worker has not locked
/// yet" and keep the models small.
#[cfg(not(loom))]
const INBOXES: usize = 8;
#[cfg(loom)]
const INBOXES: usize = 2;

/// The state shared by the [`ThreadPool`](super::ThreadPool) handle and its workers.
///
/// Lock discipline (`SHUTDOWN.md` §1): `taken`, then `state`, then the inboxes in index order.
/// Whoever holds several took them in that order; a submitter takes only its own inbox (and
/// `state` alone, after releasing the inbox, to wake a sleeper). No lock is ever held while a job
/// runs, while a hook runs, or while joining a thread. Each condition variable says what it
/// signals and which lock it is used with:
pub(crate) struct Shared {
    /// The phase and the worker/waiter counters (see [`State`]).
    pub(crate) state: Mutex<State>,
    /// The take-side queue and the job counters (see [`Taken`]).
    pub(crate) taken: Padded<Mutex<Taken>>,
    /// The submit side: [`INBOXES`] inboxes in an unbounded pool, exactly one in a bounded pool
    /// (so that its capacity is counted on one queue).
    pub(crate) inboxes: Box<[Padded<InboxSlot>]>,
    /// Workers registered as about to sleep or sleeping on `work_ready` whose wake-up nobody
    /// has claimed yet (see [`State::wakes_claimed`]). Changed only with `state` held (a worker
    /// registers holding `taken` too); read with no lock by [`Shared::wake_a_sleeper`], after a
    /// submitter releases its inbox or a worker that left jobs in the take-side queue releases
    /// `taken` (`SHUTDOWN.md` §4 I6 says why that read cannot miss a sleeper that nobody is already
    /// waking).
    pub(crate) sleeping: Padded<AtomicUsize>,
    /// Used with `state`. Signalled when a job is queued while a worker sleeps (one sleeper) or the
    /// phase leaves `Running` (all sleepers). Workers wait on it.
    pub(crate) work_ready: Condvar,
    /// Used with `inboxes[0]` (a bounded pool's only inbox). Signalled when a bounded queue loses
    /// a job (one submitter) or the phase leaves `Running` (all). Blocked submitters wait on it.
    pub(crate) space_ready: Condvar,
    /// Used with `state`. Signalled (all) when the pool becomes idle (every queue empty and nothing
    /// active; always detected holding `taken` and `state`) and when a worker exits. `wait_idle`
    /// and `shutdown_timeout` wait on it.
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
    /// This thread's [`submitter_number`], once computed.
    static SUBMITTER_NUMBER: Cell<Option<usize>> = const { Cell::new(None) };
}
#[cfg(loom)]
thread_local! {
    /// Same, in loom's form (loom's macro does not accept a `const { }` initialiser).
    static CURRENT_POOL: Cell<usize> = Cell::new(0);
    /// Same, in loom's form.
    static SUBMITTER_NUMBER: Cell<Option<usize>> = Cell::new(None);
}

impl Shared {
    pub(crate) fn new(
        capacity: Option<usize>,
        on_start: Option<Hook>,
        on_stop: Option<Hook>,
    ) -> Self {
        Shared {
            state: Mutex::new(State {
                phase: Phase::Running,
                live_workers: 0,
                idle_waiters: 0,
                wakes_claimed: 0,
            }),
            taken: Padded(Mutex::new(Taken {
                queue: VecDeque::new(),
                active: 0,
                completed: 0,
                panicked: 0,
            })),
            inboxes: (0..if capacity.is_some() { 1 } else { INBOXES })
                .map(|_| {
                    Padded(InboxSlot {
                        inbox: Mutex::new(Inbox {
                            queue: VecDeque::new(),
                            open: true,
                            blocked_submitters: 0,
                        }),
                        nonempty: AtomicBool::new(false),
                    })
                })
                .collect(),
            sleeping: Padded(AtomicUsize::new(0)),
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

    /// Locks the lifecycle state.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Locks `taken` and `state`, in the one allowed order.
    pub(crate) fn lock_both(&self) -> (MutexGuard<'_, Taken>, MutexGuard<'_, State>) {
        let taken = lock(&self.taken);
        (taken, lock(&self.state))
    }

    /// The inbox this thread submits to: always the same one for a given thread (so one thread's
    /// jobs stay in submit order), spread over the inboxes by thread identity.
    pub(crate) fn inbox_for_this_thread(&self) -> &InboxSlot {
        &self.inboxes[submitter_number() % self.inboxes.len()]
    }

    /// "Some inbox may hold jobs": its `nonempty` flag, read with no lock. A hint for timing (a
    /// spinning worker, the server's event loop), never for a decision. Not under loom, where
    /// nothing reads it.
    #[cfg(not(loom))]
    pub(crate) fn any_inbox_flagged(&self) -> bool {
        self.inboxes
            .iter()
            .any(|slot| slot.nonempty.load(Ordering::Relaxed))
    }

    /// Jobs waiting in the inboxes, each inbox locked in turn (the caller may hold `taken` and
    /// `state`, which come first in the lock order).
    pub(crate) fn inboxed(&self) -> usize {
        self.inboxes
            .iter()
            .map(|slot| lock(&slot.inbox).queue.len())
            .sum()
    }

    /// Is the pool idle: every queue empty and no job running? The caller holds `taken` (passed in)
    /// and `state`, so no worker can take or finish a job meanwhile; a submit racing with this
    /// look is ordered after it when it lands in an inbox already looked at.
    pub(crate) fn idle_with(&self, taken: &Taken) -> bool {
        taken.active == 0 && taken.queue.is_empty() && self.inboxed() == 0
    }

    /// Wakes one sleeping worker, if a worker is registered as sleeping and no wake-up is claimed
    /// for it yet (`SHUTDOWN.md` §4 I6). Called with no lock held, after a job was made available
    /// where a sleeping worker would not look again by itself: pushed into an inbox, or left in the
    /// take-side queue behind the job a worker just took.
    ///
    /// The read of `sleeping` sees every worker that registered before the job was made available
    /// and has not been claimed since: a worker registers holding `taken` (and jobs are left in
    /// the take-side queue only under `taken`), and it looks at the inboxes once more after
    /// registering. Under `state`, which such a worker holds until it has really started to wait,
    /// claim one sleeper's wake-up: take it off `sleeping`, so that the calls that follow skip all
    /// of this until some worker registers again, instead of each paying for a lock and a futex
    /// wake while the woken worker is still on its way.
    pub(crate) fn wake_a_sleeper(&self) {
        if self.sleeping.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut st = self.lock();
        if self.sleeping.load(Ordering::Relaxed) == 0 {
            return; // every registered worker is being woken already (I6)
        }
        self.sleeping.fetch_sub(1, Ordering::Relaxed);
        st.wakes_claimed += 1;
        drop(st);
        self.work_ready.notify_one();
    }

    /// Moves the pool out of `Running` into `to` (first call wins; later calls only upgrade
    /// `Draining` to `Stopping`) and wakes every waiter so each re-checks the phase.
    ///
    /// Guarantee: after this returns, no job is accepted any more (every inbox is closed, under
    /// its lock), every sleeping worker and every blocked submitter has been notified, and (for
    /// `Stopping`) the jobs that were queued are returned to the caller and will never run.
    /// Idempotent.
    pub(crate) fn begin_shutdown(&self, to: Phase) -> Vec<Job> {
        let (mut taken, mut st) = self.lock_both();
        let from = st.phase;
        let stop = matches!(
            (from, to),
            (Phase::Running | Phase::Draining, Phase::Stopping)
        );
        let mut unrun: Vec<Job> = Vec::new();
        if from == Phase::Running || stop {
            st.phase = to;
            // Each submitting thread's jobs, oldest first: its older jobs may already be in the
            // take-side queue, never the other way round.
            if stop {
                unrun.extend(taken.queue.drain(..));
            }
            // Every inbox under its own lock, `taken` and `state` still held: no submit can land
            // between closing one inbox and the next and still be accepted after we return.
            for slot in self.inboxes.iter() {
                let mut inbox = lock(&slot.inbox);
                inbox.open = false;
                if stop {
                    unrun.extend(inbox.queue.drain(..));
                    slot.nonempty.store(false, Ordering::Relaxed);
                }
            }
        }
        let became_idle = self.idle_with(&taken);
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

    /// Moves waiting jobs out of the inboxes, with `taken` (passed in) held. An unbounded pool
    /// skips the inboxes whose `nonempty` flag reads false, moves every other inbox's jobs to the
    /// back of the take-side queue (in inbox order; each thread's jobs keep their order) and
    /// returns `Moved::Batch` if it moved any. A bounded pool moves exactly the one job it is about
    /// to run, out of its one inbox, and says whether a blocked submitter must be woken.
    fn move_inboxes(&self, taken: &mut Taken) -> Moved {
        if self.capacity.is_some() {
            let slot = &self.inboxes[0];
            let mut inbox = lock(&slot.inbox);
            let Some(job) = inbox.queue.pop_front() else {
                return Moved::Nothing;
            };
            if inbox.queue.is_empty() {
                slot.nonempty.store(false, Ordering::Relaxed);
            }
            return Moved::One(job, inbox.blocked_submitters > 0);
        }
        let mut moved = false;
        for slot in self.inboxes.iter() {
            if !slot.nonempty.load(Ordering::Relaxed) {
                continue;
            }
            let mut inbox = lock(&slot.inbox);
            slot.nonempty.store(false, Ordering::Relaxed);
            if inbox.queue.is_empty() {
                continue;
            }
            moved = true;
            if taken.queue.is_empty() {
                std::mem::swap(&mut taken.queue, &mut inbox.queue);
            } else {
                taken.queue.append(&mut inbox.queue);
            }
        }
        if moved { Moved::Batch } else { Moved::Nothing }
    }
}

/// `T` alone on its cache line(s): 128 bytes, as adjacent-line prefetching on x86-64 pairs lines
/// (crossbeam's `CachePadded` uses the same figure). Each lock that one side of the pool hammers
/// (`taken` by workers, each inbox by its submitters) and each flag read on every submit sits in
/// one of these, so a write on one side does not evict what the other side is reading.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// What [`Shared::move_inboxes`] found.
enum Moved {
    /// Every inbox was empty.
    Nothing,
    /// Jobs were moved to the take-side queue (unbounded pool).
    Batch,
    /// The one job to run now, and whether a blocked submitter must be woken (bounded pool).
    One(Job, bool),
}

/// A number for the calling thread, fixed for its life: the next value of a process-wide counter,
/// taken the first time the thread submits to any pool. Consecutive submitting threads get
/// consecutive numbers, hence different inboxes.
fn submitter_number() -> usize {
    SUBMITTER_NUMBER.with(|n| {
        if let Some(known) = n.get() {
            return known;
        }
        let number = NEXT_SUBMITTER_NUMBER.fetch_add(1, Ordering::Relaxed);
        n.set(Some(number));
        number
    })
}

/// The counter behind [`submitter_number`]. Only its uniqueness matters, not any ordering.
#[cfg(not(loom))]
static NEXT_SUBMITTER_NUMBER: AtomicUsize = AtomicUsize::new(0);
#[cfg(loom)]
crate::sync::lazy_static! {
    /// Same, in loom's form: a loom atomic must be created inside the model, and a model's
    /// iterations must all start from the same state (loom resets its lazy statics each iteration).
    static ref NEXT_SUBMITTER_NUMBER: AtomicUsize = AtomicUsize::new(0);
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
        let idle = self.shared.idle_with(&taken);
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
/// empty, the worker also locks the inboxes flagged non-empty and moves each whole (an unbounded
/// pool) or moves the one job it is about to run (a bounded pool); only if that finds nothing does
/// it take `state`, to check idleness and the phase and to spin or sleep.
fn next_job(shared: &Shared, finished: Option<Outcome>) -> Option<Job> {
    // Every worker takes `taken` once per job; one that finds it held yields once before it waits
    // (see `lock_or_yield`): measured, it keeps two workers from taking turns on the lock in
    // lockstep under a flood of tiny jobs.
    let mut taken = lock_or_yield(&shared.taken);
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
            let left_some = !taken.queue.is_empty();
            drop(taken);
            if left_some {
                // The jobs behind this one wait for a worker; if one sleeps, wake it, or they wait
                // for however long this job runs (SHUTDOWN.md §4 I6, [C19]).
                shared.wake_a_sleeper();
            }
            return Some(job);
        }
        match shared.move_inboxes(&mut taken) {
            Moved::Batch => continue,
            Moved::One(job, wake_submitter) => {
                taken.active += 1;
                drop(taken);
                if wake_submitter {
                    shared.space_ready.notify_one();
                }
                return Some(job);
            }
            Moved::Nothing => {}
        }
        let mut st = lock(&shared.state);
        if taken.active == 0 && st.idle_waiters > 0 {
            // Both queues empty, nothing running: idle. Waiters check this and count themselves
            // holding `state`, which we hold too, so none can miss this notification.
            shared.idle.notify_all();
        }
        if st.phase != Phase::Running {
            return None;
        }
        if spins == 0 {
            // Register as sleeping while still holding `taken` (SHUTDOWN.md §4 I6): a worker that
            // later leaves jobs in the take-side queue does so under `taken`, after this
            // increment, so it sees us and wakes us.
            shared.sleeping.fetch_add(1, Ordering::Relaxed);
        }
        drop(taken);
        if spins > 0 {
            // Spin without either lock (so submitters can get in), watching the inboxes' flags;
            // whatever they say, the queues are re-checked under the locks before anything is
            // decided.
            drop(st);
            while spins > 0 {
                spins -= 1;
                thread::yield_now();
                // The early exit is timing only (every decision re-reads the queues under the
                // locks), so loom, which runs one spin round, skips reading the flags here: those
                // reads would only add interleavings to every model.
                #[cfg(not(loom))]
                if shared.any_inbox_flagged() {
                    // One more yield before moving: the submitter gets to add to the batch, and a
                    // move (which pulls the inbox's cache line away from the submitter) happens
                    // about half as often under a flood of jobs.
                    thread::yield_now();
                    break;
                }
            }
        } else {
            // Registered (above) *before* this last look at the inboxes, and `state` kept from
            // there to the wait (SHUTDOWN.md §4 I6): a submit that this look misses pushed after
            // it, so it reads `sleeping` after our increment and then takes `state`, which it can
            // only get once we are waiting; there it claims a wake-up or finds every sleeper
            // claimed already, with a `notify_one` still to come. No wake-up is lost.
            if shared.inboxed() == 0 {
                st = wait(&shared.work_ready, st);
            }
            // Stop counting as registered: consume a claimed wake-up if there is one (ours, or one
            // whose `notify_one` will wake some other registered worker or none), else leave
            // `sleeping`. Either keeps `sleeping + wakes_claimed` equal to the registered workers.
            if st.wakes_claimed > 0 {
                st.wakes_claimed -= 1;
            } else {
                shared.sleeping.fetch_sub(1, Ordering::Relaxed);
            }
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
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "<non-string panic payload>"
    }
}

/// Unit tests of the shared state's single-threaded steps (no worker threads): the phase
/// transitions of `begin_shutdown`, the claim accounting of `wake_a_sleeper`, and the moves out of
/// the inboxes. The concurrent behaviour is checked by the loom models and the tests in `tests/`.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::Arc;

    /// Pushes into inbox `i` the job that records `id` in `log`, as `submit` does (flag included).
    fn push(shared: &Shared, i: usize, id: usize, log: &Arc<Mutex<Vec<usize>>>) {
        let slot = &shared.inboxes[i];
        let mut inbox = lock(&slot.inbox);
        slot.nonempty.store(true, Ordering::Relaxed);
        let log = Arc::clone(log);
        inbox
            .queue
            .push_back(Box::new(move || log.lock().expect("log").push(id)));
    }

    fn run_all(jobs: impl IntoIterator<Item = Job>) {
        for job in jobs {
            job();
        }
    }

    #[test]
    fn begin_shutdown_moves_forward_only_and_hands_back_only_when_stopping() {
        let shared = Shared::new(None, None, None);
        let log = Arc::new(Mutex::new(Vec::new()));
        push(&shared, 0, 0, &log);
        push(&shared, 1, 1, &log);
        assert!(shared.begin_shutdown(Phase::Draining).is_empty());
        assert_eq!(shared.lock().phase, Phase::Draining);
        assert!(shared.inboxes.iter().all(|s| !lock(&s.inbox).open));
        assert_eq!(
            shared.inboxed(),
            2,
            "draining keeps the queued jobs for the workers"
        );
        // A second Draining changes nothing; Stopping then hands back every queued job.
        assert!(shared.begin_shutdown(Phase::Draining).is_empty());
        let unrun = shared.begin_shutdown(Phase::Stopping);
        assert_eq!(unrun.len(), 2);
        run_all(unrun);
        assert_eq!(*log.lock().expect("log"), [0, 1], "inbox order");
        assert_eq!(shared.inboxed(), 0);
        assert!(
            shared
                .inboxes
                .iter()
                .all(|s| !s.nonempty.load(Ordering::Relaxed))
        );
        // Nothing moves the phase back.
        assert!(shared.begin_shutdown(Phase::Draining).is_empty());
        assert_eq!(shared.lock().phase, Phase::Stopping);
    }

    #[test]
    fn shutdown_now_hands_back_the_take_side_queue_before_the_inboxes() {
        let shared = Shared::new(None, None, None);
        let log = Arc::new(Mutex::new(Vec::new()));
        push(&shared, 0, 0, &log);
        push(&shared, 0, 1, &log);
        let mut taken = lock(&shared.taken);
        assert!(matches!(shared.move_inboxes(&mut taken), Moved::Batch));
        assert_eq!(taken.queue.len(), 2);
        drop(taken);
        push(&shared, 0, 2, &log);
        let unrun = shared.begin_shutdown(Phase::Stopping);
        run_all(unrun);
        assert_eq!(*log.lock().expect("log"), [0, 1, 2]);
        assert!(lock(&shared.taken).queue.is_empty());
    }

    #[test]
    fn moves_take_every_inbox_in_order_and_clear_the_flags() {
        let shared = Shared::new(None, None, None);
        let log = Arc::new(Mutex::new(Vec::new()));
        push(&shared, 1, 10, &log);
        push(&shared, 0, 0, &log);
        push(&shared, 1, 11, &log);
        let mut taken = lock(&shared.taken);
        assert!(matches!(shared.move_inboxes(&mut taken), Moved::Batch));
        assert!(matches!(shared.move_inboxes(&mut taken), Moved::Nothing));
        let jobs: Vec<Job> = taken.queue.drain(..).collect();
        drop(taken);
        run_all(jobs);
        assert_eq!(
            *log.lock().expect("log"),
            [0, 10, 11],
            "inbox by inbox, each in order"
        );
        assert!(
            shared
                .inboxes
                .iter()
                .all(|s| !s.nonempty.load(Ordering::Relaxed))
        );
    }

    #[test]
    fn a_bounded_pool_moves_exactly_one_job_and_says_whether_to_wake_a_submitter() {
        let shared = Shared::new(Some(2), None, None);
        assert_eq!(shared.inboxes.len(), 1);
        let log = Arc::new(Mutex::new(Vec::new()));
        push(&shared, 0, 0, &log);
        push(&shared, 0, 1, &log);
        lock(&shared.inboxes[0].inbox).blocked_submitters = 1;
        let mut taken = lock(&shared.taken);
        match shared.move_inboxes(&mut taken) {
            Moved::One(job, wake) => {
                assert!(wake, "a submitter is blocked on the full queue");
                job();
            }
            _ => panic!("a bounded pool moves the one job it runs"),
        }
        assert!(
            taken.queue.is_empty(),
            "never parks jobs in the take-side queue"
        );
        drop(taken);
        assert_eq!(shared.inboxed(), 1);
        assert_eq!(*log.lock().expect("log"), [0]);
    }

    #[test]
    fn wake_a_sleeper_claims_one_registered_sleeper_per_call() {
        let shared = Shared::new(None, None, None);
        shared.wake_a_sleeper(); // nobody registered: nothing to claim
        assert_eq!(shared.lock().wakes_claimed, 0);
        shared.sleeping.fetch_add(2, Ordering::Relaxed);
        for claimed in 1..=3 {
            shared.wake_a_sleeper();
            let expected = claimed.min(2);
            assert_eq!(shared.lock().wakes_claimed, expected);
            assert_eq!(
                shared.sleeping.load(Ordering::Relaxed) + shared.lock().wakes_claimed,
                2,
                "sleeping + wakes_claimed is the number of registered workers"
            );
        }
    }

    #[test]
    fn submitter_numbers_are_distinct_per_thread_and_fixed_for_a_thread() {
        let first = submitter_number();
        assert_eq!(submitter_number(), first);
        let seen = Arc::new(AtomicUsize::new(usize::MAX));
        let other = {
            let seen = Arc::clone(&seen);
            thread::spawn(move || seen.store(submitter_number(), Ordering::SeqCst))
        };
        other.join().expect("thread");
        assert_ne!(seen.load(Ordering::SeqCst), first);
    }
}
