//! loom models of the real `poolserve` pool protocol (see `src/pool/SHUTDOWN.md`).
//!
//! Each test's name is the property it checks, and each checks it with an assertion (plus loom's
//! own oracles: a state where every thread is blocked is a "deadlock", and every thread must have
//! terminated when the model ends). The claim each model backs is named in `SHUTDOWN.md` as
//! `[Cn]`. Bounds: see `loom-tests/README.md`.
#![cfg(loom)]

mod support;

use poolserve::sync::{Arc, thread};
use poolserve::{ExecuteError, PoolError, ThreadPool};
use support::{
    Latch, Ledger, bump, check, counter, execute_gated, get, silence_panics_containing, sole,
    then_open,
};

/// Default preemption bound: every break in `SHUTDOWN.md` §7 is caught at it, and each model takes
/// at most a few seconds (cost table in `loom-tests/README.md`). `LOOM_MAX_PREEMPTIONS` can raise it.
const BOUND: usize = 3;
/// Four threads make bound 3 too costly; with the sharded-inbox pool bound 2 costs ~864k
/// interleavings (about 100 s, README cost table).
const CONCURRENT_SUBMITTERS_BOUND: usize = 2;
/// The spin step (and, since the sharded inboxes, the look at each inbox) multiplies the scheduling
/// points of the worker's park path: already on the two-lock pool, bound 3 needed 4.4M
/// interleavings (330 s) for this model and 700k (126 s) for `wait_idle_has_no_lost_wakeup`, so
/// both run at 2 (now ~519k and ~65k interleavings; README cost table). The spin-then-park race
/// is also checked at bound 3 with one worker by `spin_then_park_has_no_lost_wakeup`
/// (`pool_fast_path.rs`).
const WAKEUP_BOUND: usize = 2;
/// `shutdown_now_returns_exactly_the_unrun_jobs`: ~1.2M interleavings (about 100 s) at bound 3
/// with the sharded inboxes (124k on the two-lock pool), kept.
const SHUTDOWN_NOW_BOUND: usize = 3;

/// A pool of `threads` workers whose start/stop hooks count into the returned counters.
fn counted_pool(
    threads: usize,
) -> (
    ThreadPool,
    Arc<poolserve::sync::atomic::AtomicUsize>,
    Arc<poolserve::sync::atomic::AtomicUsize>,
) {
    let started = counter();
    let stopped = counter();
    let (s, e) = (Arc::clone(&started), Arc::clone(&stopped));
    let pool = ThreadPool::builder()
        .threads(threads)
        .on_thread_start(move || bump(&s))
        .on_thread_stop(move || bump(&e))
        .build()
        .expect("build");
    (pool, started, stopped)
}

/// [C1][C5] Jobs queued before the pool is dropped all run exactly once, and `Drop` returns only
/// after every worker has exited (its stop hook has run).
#[test]
fn drop_runs_every_queued_job_then_joins() {
    check("drop_runs_every_queued_job_then_joins", BOUND, || {
        let ledger = Ledger::new(2);
        let (pool, started, stopped) = counted_pool(2);
        for i in 0..2 {
            pool.execute(ledger.job(i)).expect("running pool accepts");
        }
        drop(pool);
        ledger.assert_each_ran_once();
        assert_eq!(get(&started), 2, "every worker started");
        assert_eq!(get(&stopped), 2, "Drop returned before every worker exited");
    });
}

/// [C2] `execute` racing the start of shutdown: every job is either run exactly once or handed
/// back in `ExecuteError::ShutDown` (never both, never neither), and once one job is refused every
/// later one is too (the phase never goes back to `Running`).
#[test]
fn execute_races_shutdown_job_runs_or_is_returned() {
    check(
        "execute_races_shutdown_job_runs_or_is_returned",
        BOUND,
        || {
            let ledger = Ledger::new(2);
            let pool = Arc::new(ThreadPool::new(1));
            let submitter = {
                let (pool, ledger) = (Arc::clone(&pool), ledger.clone());
                thread::spawn(move || {
                    let mut returned = [false; 2];
                    for (i, slot) in returned.iter_mut().enumerate() {
                        match pool.execute(ledger.job(i)) {
                            Ok(()) => {}
                            Err(ExecuteError::ShutDown(job)) => {
                                *slot = true;
                                drop(job); // handed back: we own it and decide not to run it
                            }
                            Err(ExecuteError::Full(_)) => {
                                panic!("an unbounded queue reported Full")
                            }
                        }
                    }
                    returned
                })
            };
            pool.close(); // the first step of shutdown(): Running -> Draining
            let returned = submitter.join().expect("submitter");
            let pool = sole(pool);
            let report = pool.shutdown().expect("not on a worker");
            let mut accepted = 0;
            for (i, &was_returned) in returned.iter().enumerate() {
                if was_returned {
                    assert_eq!(ledger.runs(i), 0, "job {i} was handed back AND ran");
                } else {
                    assert_eq!(
                        ledger.runs(i),
                        1,
                        "job {i} was accepted but ran {} times",
                        ledger.runs(i)
                    );
                    accepted += 1;
                }
            }
            assert!(
                !returned[0] || returned[1],
                "job 0 refused but the later job 1 accepted"
            );
            assert_eq!(report.completed, accepted);
            assert_eq!(report.threads_joined, 1);
        },
    );
}

/// [C3] A panicking job is caught and counted, and the same (only) worker goes on to run the next
/// job.
#[test]
fn panicking_job_does_not_kill_worker() {
    silence_panics_containing("deliberate job panic");
    check("panicking_job_does_not_kill_worker", BOUND, || {
        let ledger = Ledger::new(1);
        let (pool, _started, stopped) = counted_pool(1);
        pool.execute(|| panic!("deliberate job panic (loom model)"))
            .expect("accepted");
        pool.execute(ledger.job(0)).expect("accepted");
        pool.wait_idle().expect("not on a worker");
        assert_eq!(pool.panicked(), 1);
        assert_eq!(ledger.runs(0), 1, "the job after the panic did not run");
        assert_eq!(get(&stopped), 0, "the worker exited because of the panic");
        let report = pool.shutdown().expect("not on a worker");
        assert_eq!(
            (report.panicked, report.completed, report.threads_joined),
            (1, 1, 1)
        );
    });
}

/// [C6] `wait_idle` returns only once every job submitted before it has finished, and it does
/// return (no lost `idle` notification), with no shutdown to rescue a missed wake-up.
#[test]
fn wait_idle_has_no_lost_wakeup() {
    check("wait_idle_has_no_lost_wakeup", WAKEUP_BOUND, || {
        let ledger = Ledger::new(2);
        let pool = ThreadPool::new(2);
        for i in 0..2 {
            pool.execute(ledger.job(i)).expect("accepted");
        }
        pool.wait_idle().expect("not on a worker");
        ledger.assert_each_ran_once();
        assert_eq!((pool.queued(), pool.active(), pool.completed()), (0, 0, 2));
        assert!(!pool.is_closed());
        drop(pool);
    });
}

/// [C7] With a bounded queue (capacity 1) that is full: `try_execute` hands the job back in
/// `Full`; `execute` blocks until a worker takes a job, then succeeds; every accepted job runs once.
#[test]
fn bounded_queue_full_blocks_then_unblocks() {
    check("bounded_queue_full_blocks_then_unblocks", BOUND, || {
        let ledger = Ledger::new(4);
        let pool = Arc::new(
            ThreadPool::builder()
                .threads(1)
                .queue_capacity(Some(1))
                .build()
                .expect("build"),
        );
        // Job 0 holds the only worker until released.
        let (started, release) = execute_gated(&pool, ledger.job(0));
        started.wait(); // the worker holds job 0, the queue is empty
        pool.execute(ledger.job(1)).expect("room for one"); // queue: [1] (full)
        match pool.try_execute(ledger.job(2)) {
            Err(ExecuteError::Full(job)) => job(), // handed back: we run it ourselves
            other => panic!("expected Full, got {other:?}"),
        }
        assert_eq!(
            ledger.runs(2),
            1,
            "the job handed back in Full was not job 2"
        );
        let blocked = {
            let (pool, ledger) = (Arc::clone(&pool), ledger.clone());
            thread::spawn(move || {
                pool.execute(ledger.job(3))
                    .expect("accepted after blocking");
                // The queue only gets room when the worker takes job 1, after job 0 finished.
                assert_eq!(
                    ledger.runs(0),
                    1,
                    "execute on a full queue returned before there was room"
                );
            })
        };
        release.open();
        blocked.join().expect("blocked submitter");
        let pool = sole(pool);
        let report = pool.shutdown().expect("not on a worker");
        ledger.assert_each_ran_once();
        assert_eq!(
            report.completed, 3,
            "jobs 0, 1 and 3 ran in the pool; 2 was handed back"
        );
    });
}

/// [C4] `shutdown_now` hands back exactly the jobs that did not run: the returned jobs plus the
/// jobs that ran are all the jobs, each exactly once, and the report counts the ones that ran.
#[test]
fn shutdown_now_returns_exactly_the_unrun_jobs() {
    check(
        "shutdown_now_returns_exactly_the_unrun_jobs",
        SHUTDOWN_NOW_BOUND,
        || {
            let ledger = Ledger::new(3);
            let pool = ThreadPool::new(2);
            for i in 0..3 {
                pool.execute(ledger.job(i)).expect("accepted");
            }
            let (report, unrun) = pool.shutdown_now().expect("not on a worker");
            let ran = (0..3).filter(|&i| ledger.runs(i) == 1).count();
            assert!((0..3).all(|i| ledger.runs(i) <= 1), "a job ran twice");
            assert_eq!(
                ran + unrun.len(),
                3,
                "{ran} ran + {} returned != 3 accepted",
                unrun.len()
            );
            assert_eq!(report.completed, ran as u64);
            assert_eq!(report.threads_joined, 2);
            // Running what came back must bring every job to exactly one run: so the returned jobs are
            // exactly the un-run ones (none of them had run, none is missing).
            for job in unrun {
                job();
            }
            ledger.assert_each_ran_once();
        },
    );
}

/// [C8] Shutting down twice is harmless: `close` then `shutdown`; `close` racing `close` (from two
/// threads) then `Drop`; `close` then `shutdown_now`; and `shutdown` (whose pool is then dropped).
/// Every time each accepted job runs exactly once (or is handed back by `shutdown_now`), each
/// worker is joined exactly once, and later submissions are refused.
#[test]
fn double_shutdown_is_idempotent() {
    // close() then shutdown()
    check(
        "double_shutdown_is_idempotent/close_then_shutdown",
        BOUND,
        || {
            let ledger = Ledger::new(1);
            let (pool, _, stopped) = counted_pool(2);
            pool.execute(ledger.job(0)).expect("accepted");
            pool.close();
            assert!(pool.execute(|| {}).is_err_and(|e| e.is_shut_down()));
            let report = pool.shutdown().expect("not on a worker");
            ledger.assert_each_ran_once();
            assert_eq!((report.completed, report.threads_joined), (1, 2));
            assert_eq!(get(&stopped), 2);
        },
    );
    // close() twice, concurrently, then Drop
    check(
        "double_shutdown_is_idempotent/close_twice_then_drop",
        BOUND,
        || {
            let ledger = Ledger::new(1);
            let (pool, _, stopped) = counted_pool(1);
            let pool = Arc::new(pool);
            pool.execute(ledger.job(0)).expect("accepted");
            let other = {
                let pool = Arc::clone(&pool);
                thread::spawn(move || pool.close())
            };
            pool.close();
            other.join().expect("closer");
            assert!(pool.is_closed());
            drop(sole(pool));
            ledger.assert_each_ran_once();
            assert_eq!(get(&stopped), 1);
        },
    );
    // close() then shutdown_now(): Draining -> Stopping still hands back the un-run jobs
    check(
        "double_shutdown_is_idempotent/close_then_shutdown_now",
        BOUND,
        || {
            let ledger = Ledger::new(2);
            let pool = ThreadPool::new(1);
            for i in 0..2 {
                pool.execute(ledger.job(i)).expect("accepted");
            }
            pool.close();
            let (report, unrun) = pool.shutdown_now().expect("not on a worker");
            assert_eq!(report.completed as usize + unrun.len(), 2);
            for job in unrun {
                job();
            }
            ledger.assert_each_ran_once();
        },
    );
    // shutdown() (the consumed pool is dropped inside it: Drop must then be a no-op)
    check(
        "double_shutdown_is_idempotent/shutdown_then_drop",
        BOUND,
        || {
            let ledger = Ledger::new(1);
            let (pool, _, stopped) = counted_pool(2);
            pool.execute(ledger.job(0)).expect("accepted");
            let report = pool.shutdown().expect("not on a worker");
            ledger.assert_each_ran_once();
            assert_eq!((report.completed, report.threads_joined), (1, 2));
            assert_eq!(get(&stopped), 2, "each worker stopped exactly once");
        },
    );
}

/// [C1][C2] Two threads (the main thread and one more) submit at once to two workers; each job
/// runs exactly once. (Four threads: a second spawned submitter would make five, loom's maximum, and
/// cost ~40 s at bound 2 for no extra protocol path: the submit path is the same for any caller.)
#[test]
fn concurrent_submitters_each_job_once() {
    check(
        "concurrent_submitters_each_job_once",
        CONCURRENT_SUBMITTERS_BOUND,
        || {
            let ledger = Ledger::new(2);
            let pool = Arc::new(ThreadPool::new(2));
            let other = {
                let (pool, ledger) = (Arc::clone(&pool), ledger.clone());
                thread::spawn(move || pool.execute(ledger.job(1)).expect("accepted"))
            };
            pool.execute(ledger.job(0)).expect("accepted");
            other.join().expect("submitter");
            let report = sole(pool).shutdown().expect("not on a worker");
            ledger.assert_each_ran_once();
            assert_eq!(report.completed, 2);
        },
    );
}

/// [C9] `wait_idle` called from inside a job returns `Err(CalledFromWorker)` at once instead of
/// waiting for itself; the job and the pool finish normally.
#[test]
fn wait_idle_from_worker_returns_called_from_worker() {
    check(
        "wait_idle_from_worker_returns_called_from_worker",
        BOUND,
        || {
            let pool = Arc::new(ThreadPool::new(1));
            let outcome = Arc::new(poolserve::sync::Mutex::new(None));
            {
                let (inner, outcome) = (Arc::clone(&pool), Arc::clone(&outcome));
                pool.execute(move || {
                    let r = inner.wait_idle();
                    *poolserve::sync::lock(&outcome) = Some(r);
                })
                .expect("accepted");
            }
            pool.wait_idle().expect("the main thread is not a worker");
            assert_eq!(
                *poolserve::sync::lock(&outcome),
                Some(Err(PoolError::CalledFromWorker))
            );
            let report = sole(pool).shutdown();
            assert_eq!(report.expect("main thread").completed, 1);
        },
    );
}

/// [C10] The idle-worker notification path. A submitter notifies `work_ready` only when
/// `sleeping > 0`; a worker counts itself as sleeping and waits in one step under the lock. So the
/// race between a worker finding the queue empty and going to sleep, and a submitter pushing a job,
/// can never strand the job: here each job must run while the pool is still `Running` (nothing but
/// the submit path's notification can wake the worker), with a second job submitted just as the
/// worker that ran the first goes back to sleep.
#[test]
fn submit_wakes_sleeping_worker_no_lost_wakeup() {
    check(
        "submit_wakes_sleeping_worker_no_lost_wakeup",
        WAKEUP_BOUND,
        || {
            let ledger = Ledger::new(2);
            let pool = ThreadPool::new(2);
            for i in 0..2 {
                let done = Latch::new();
                pool.execute(then_open(ledger.job(i), &done))
                    .expect("accepted");
                // Deadlocks (loom reports it) if no worker was woken for this job.
                done.wait();
                assert_eq!(ledger.runs(i), 1);
            }
            assert!(
                !pool.is_closed(),
                "jobs ran without any shutdown notification"
            );
            drop(pool);
        },
    );
}

/// [C9] `wait_idle` from a worker only *reports* the mistake; it does not also close the pool
/// (unlike the shutdown calls, which still stop accepting). A later job is still accepted and runs.
#[test]
fn wait_idle_from_worker_leaves_pool_open() {
    check("wait_idle_from_worker_leaves_pool_open", BOUND, || {
        let pool = Arc::new(ThreadPool::new(1));
        {
            let inner = Arc::clone(&pool);
            pool.execute(move || assert!(inner.wait_idle().is_err()))
                .expect("accepted");
        }
        pool.wait_idle().expect("the main thread is not a worker");
        let closed = pool.is_closed();
        drop(sole(pool));
        assert!(!closed, "a refused wait_idle closed the pool");
    });
}
