//! NEGATIVE EXAMPLES: deliberately broken mini-protocols, each a classic pool mistake, built from
//! the same `poolserve::sync` primitives the real pool uses. Each test passes only if loom FINDS
//! the bug (and fails with the expected message). They prove the suite has teeth: a checker that
//! cannot catch these could not vouch for the real protocol either.
//!
//! None of this code is the pool's; the real protocol is modelled in `pool.rs`.
#![cfg(loom)]

mod support;

use poolserve::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use poolserve::sync::{Arc, Condvar, Mutex, lock, thread, wait, wait_while};
use support::{LeakOnUnwind, expect_failure, silence_panics_containing};

/// Default preemption bound for the negative examples: small, since each bug shows up within one
/// or two preemptions and loom stops at the first failing interleaving.
const BOUND: usize = 2;

/// The mini-pool's state: a count of pending (unit) jobs and a shutdown flag, behind one lock.
#[derive(Default)]
struct MiniState {
    jobs: usize,
    shutdown: bool,
}

/// One lock and one condition variable ("a job was queued or shutdown began").
#[derive(Default)]
struct Mini {
    state: Mutex<MiniState>,
    work: Condvar,
}

impl Mini {
    /// A shared mini-pool, leaked instead of dropped if loom fails (see [`LeakOnUnwind`]).
    fn new() -> LeakOnUnwind<Arc<Self>> {
        LeakOnUnwind::new(Arc::new(Mini::default()))
    }

    /// A *correct* worker: sleeps in a loop, under the lock, until a job or shutdown.
    fn correct_worker(&self) {
        loop {
            let mut st = wait_while(&self.work, lock(&self.state), |st| {
                st.jobs == 0 && !st.shutdown
            });
            if st.jobs == 0 {
                return; // shutting down and drained
            }
            st.jobs -= 1;
        }
    }

    fn submit(&self) {
        lock(&self.state).jobs += 1;
        self.work.notify_one();
    }
}

/// NEGATIVE EXAMPLE 1 (the Rust Book's warning): a pool whose `Drop` joins its workers *before*
/// signalling shutdown. A worker waiting for work is never told to stop, so the join waits forever.
#[test]
fn negative_join_before_signal_deadlocks() {
    let msg = expect_failure("negative_join_before_signal_deadlocks", BOUND, || {
        let mini = Mini::new();
        let worker = thread::spawn({
            let mini = mini.share();
            move || mini.correct_worker()
        });
        mini.submit();
        // BUG: join first...
        worker.join().expect("worker");
        // ...signal second (never reached).
        lock(&mini.state).shutdown = true;
        mini.work.notify_all();
    });
    assert!(
        msg.contains("deadlock"),
        "loom failed for another reason: {msg}"
    );
}

/// NEGATIVE EXAMPLE 2: shutdown wakes *one* sleeper (`notify_one`) where every sleeper must
/// re-check the phase (`notify_all`). With two idle workers, one sleeps on and its join hangs.
#[test]
fn negative_notify_one_at_shutdown_strands_a_worker() {
    let msg = expect_failure(
        "negative_notify_one_at_shutdown_strands_a_worker",
        BOUND,
        || {
            let mini = Mini::new();
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let mini = mini.share();
                    thread::spawn(move || mini.correct_worker())
                })
                .collect();
            lock(&mini.state).shutdown = true;
            mini.work.notify_one(); // BUG: must be notify_all
            for w in workers {
                w.join().expect("worker");
            }
        },
    );
    assert!(
        msg.contains("deadlock"),
        "loom failed for another reason: {msg}"
    );
}

/// NEGATIVE EXAMPLE 3: a worker that waits with `if` instead of `while`. Shutdown and a new job
/// share one condition variable and the submitter wakes everyone; a worker woken for a job another
/// worker already took proceeds as if the job were there.
#[test]
fn negative_wait_not_in_loop_wakes_without_a_job() {
    const MARKER: &str = "woken without a job and not shutting down";
    silence_panics_containing(MARKER);
    let msg = expect_failure(
        "negative_wait_not_in_loop_wakes_without_a_job",
        BOUND,
        || {
            let mini = Mini::new();
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let mini = mini.share();
                    thread::spawn(move || {
                        loop {
                            let mut st = lock(&mini.state);
                            if st.jobs == 0 && !st.shutdown {
                                st = wait(&mini.work, st); // BUG: `if`, not a loop
                            }
                            if st.jobs == 0 {
                                assert!(st.shutdown, "{MARKER}");
                                return;
                            }
                            st.jobs -= 1;
                        }
                    })
                })
                .collect();
            lock(&mini.state).jobs += 1;
            mini.work.notify_all();
            lock(&mini.state).shutdown = true;
            mini.work.notify_all();
            for w in workers {
                w.join().expect("worker");
            }
        },
    );
    assert!(
        msg.contains(MARKER),
        "loom failed for another reason: {msg}"
    );
}

/// NEGATIVE EXAMPLE 4: the stop flag lives outside the lock (an atomic) and is checked before
/// locking; the stopper sets it and notifies without taking the lock. The notification can land
/// between the worker's check and its wait: a lost wake-up, and the join hangs.
#[test]
fn negative_flag_checked_outside_lock_loses_wakeup() {
    let msg = expect_failure(
        "negative_flag_checked_outside_lock_loses_wakeup",
        BOUND,
        || {
            let stop = LeakOnUnwind::new(Arc::new(AtomicBool::new(false)));
            let pair = LeakOnUnwind::new(Arc::new((Mutex::new(0_usize), Condvar::new())));
            let worker = {
                let (stop, pair) = (stop.share(), pair.share());
                thread::spawn(move || {
                    let (jobs, cv) = &**pair;
                    loop {
                        if stop.load(Ordering::SeqCst) {
                            return; // BUG: checked outside the lock...
                        }
                        let mut n = lock(jobs);
                        if *n > 0 {
                            *n -= 1;
                            continue;
                        }
                        drop(wait(cv, n)); // ...so a stop signalled in between is missed
                    }
                })
            };
            stop.store(true, Ordering::SeqCst);
            pair.1.notify_all(); // without the lock
            worker.join().expect("worker");
        },
    );
    assert!(
        msg.contains("deadlock"),
        "loom failed for another reason: {msg}"
    );
}

/// NEGATIVE EXAMPLE 5 (the twin of the real pool's park step, `SHUTDOWN.md` [C10]/[C11]): a worker
/// that finds no job registers itself as sleeping in one critical section, lets go of the lock (as
/// if to spin), and then waits in a *second* critical section without looking at the queue again.
/// A submitter that pushes in between sees `sleeping > 0` and notifies, but nobody is waiting yet:
/// the wake-up is lost, the worker sleeps on a queued job and the join hangs.
#[test]
fn negative_sleep_registered_apart_from_wait_loses_wakeup() {
    #[derive(Default)]
    struct Sleepy {
        jobs: usize,
        sleeping: usize,
    }
    let msg = expect_failure(
        "negative_sleep_registered_apart_from_wait_loses_wakeup",
        BOUND,
        || {
            let pair = LeakOnUnwind::new(Arc::new((Mutex::new(Sleepy::default()), Condvar::new())));
            let worker = {
                let pair = pair.share();
                thread::spawn(move || {
                    let (state, work) = &**pair;
                    // Runs exactly one job, then exits.
                    loop {
                        let mut st = lock(state);
                        if st.jobs > 0 {
                            st.jobs -= 1;
                            return;
                        }
                        st.sleeping += 1; // critical section 1: "queue empty, I am going to sleep"
                        drop(st);
                        let st = lock(state); // BUG: critical section 2 waits without re-checking
                        let mut st = wait(work, st);
                        st.sleeping -= 1;
                    }
                })
            };
            let wake = {
                let mut st = lock(&pair.0);
                st.jobs += 1;
                st.sleeping > 0
            };
            if wake {
                pair.1.notify_one();
            }
            worker.join().expect("worker");
        },
    );
    assert!(
        msg.contains("deadlock"),
        "loom failed for another reason: {msg}"
    );
}

/// NEGATIVE EXAMPLE 6 (the twin of the real pool's flag-skipping move, `SHUTDOWN.md` I5): the
/// submitter sets its inbox's "non-empty" flag *after* releasing the inbox lock instead of under
/// it. A worker that skips inboxes whose flag reads false, and exits once it sees shutdown under
/// the lock that shutdown holds while closing the inboxes, can then read the flag before the store:
/// it skips an inbox holding an accepted job and exits. The job is stranded (accepted, never run).
#[test]
fn negative_flag_set_after_unlock_strands_accepted_job() {
    struct Inbox {
        jobs: usize,
        open: bool,
    }
    struct Taken {
        draining: bool,
        ran: usize,
    }
    let msg = expect_failure(
        "negative_flag_set_after_unlock_strands_accepted_job",
        BOUND,
        || {
            let inbox = LeakOnUnwind::new(Arc::new((
                Mutex::new(Inbox {
                    jobs: 0,
                    open: true,
                }),
                AtomicBool::new(false),
            )));
            let taken = LeakOnUnwind::new(Arc::new(Mutex::new(Taken {
                draining: false,
                ran: 0,
            })));
            let submitter = {
                let inbox = inbox.share();
                thread::spawn(move || {
                    let accepted = {
                        let mut ib = lock(&inbox.0);
                        if ib.open {
                            ib.jobs += 1;
                        }
                        ib.open
                    };
                    if accepted {
                        inbox.1.store(true, Ordering::Relaxed); // BUG: after the unlock
                    }
                    accepted
                })
            };
            let worker = {
                let (inbox, taken) = (inbox.share(), taken.share());
                thread::spawn(move || {
                    loop {
                        let mut t = lock(&taken);
                        if inbox.1.load(Ordering::Relaxed) {
                            let mut ib = lock(&inbox.0);
                            inbox.1.store(false, Ordering::Relaxed);
                            t.ran += std::mem::take(&mut ib.jobs);
                            continue;
                        }
                        if t.draining {
                            return; // the flag said "empty", shutdown is done: exit
                        }
                        drop(t);
                        thread::yield_now();
                    }
                })
            };
            {
                // Shutdown, in the real pool's order: `taken`, then the inbox.
                let mut t = lock(&taken);
                lock(&inbox.0).open = false;
                t.draining = true;
            }
            let accepted = submitter.join().expect("submitter");
            worker.join().expect("worker");
            let ran = lock(&taken).ran;
            assert_eq!(ran, usize::from(accepted), "an accepted job was stranded");
        },
    );
    assert!(
        msg.contains("stranded"),
        "loom failed for another reason: {msg}"
    );
}

/// NEGATIVE EXAMPLE 7 (the twin of the real pool's claimed wake-ups, `SHUTDOWN.md` I6 and [C18]):
/// a submitter claims a sleeper's wake-up lock-free, with a compare-and-swap on the sleeper count,
/// and notifies without taking the lock that the worker holds from registering to waiting. The
/// worker registers, looks at the inbox (empty), and before it waits the submitter pushes, claims
/// it and notifies nobody: the worker then sleeps on a queued job with `sleeping == 0`, so no later
/// submit would wake it either, and the join hangs. (The real pool claims under `state`.)
#[test]
fn negative_sleeper_claimed_lock_free_loses_wakeup() {
    struct Claims {
        inbox: Mutex<usize>,
        state: Mutex<usize>, // wake-ups claimed and not yet consumed
        sleeping: AtomicUsize,
        work: Condvar,
    }
    let msg = expect_failure(
        "negative_sleeper_claimed_lock_free_loses_wakeup",
        BOUND,
        || {
            let pool = LeakOnUnwind::new(Arc::new(Claims {
                inbox: Mutex::new(0),
                state: Mutex::new(0),
                sleeping: AtomicUsize::new(0),
                work: Condvar::new(),
            }));
            let worker = {
                let pool = pool.share();
                thread::spawn(move || {
                    // Runs exactly one job, then exits.
                    loop {
                        let mut claimed = lock(&pool.state);
                        pool.sleeping.fetch_add(1, Ordering::Relaxed);
                        let found = {
                            let mut jobs = lock(&pool.inbox);
                            let found = *jobs > 0;
                            if found {
                                *jobs -= 1;
                            }
                            found
                        };
                        if !found {
                            claimed = wait(&pool.work, claimed);
                        }
                        if *claimed > 0 {
                            *claimed -= 1;
                        } else {
                            pool.sleeping.fetch_sub(1, Ordering::Relaxed);
                        }
                        if found {
                            return;
                        }
                    }
                })
            };
            *lock(&pool.inbox) += 1;
            let sleepers = pool.sleeping.load(Ordering::Relaxed);
            if sleepers > 0
                && pool
                    .sleeping
                    .compare_exchange(sleepers, sleepers - 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                // BUG: the claim and the notification skip the lock the worker holds until it
                // waits, so both can fall between its look and its wait.
                pool.work.notify_one();
                *lock(&pool.state) += 1;
            }
            worker.join().expect("worker");
        },
    );
    assert!(
        msg.contains("deadlock"),
        "loom failed for another reason: {msg}"
    );
}
