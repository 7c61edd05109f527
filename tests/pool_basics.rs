#![cfg(not(loom))]
//! Plain, example-based behaviour tests of the thread pool.
//!
//! Each test pins one promise of `poolserve::pool` with a small, hand-written scenario: jobs run,
//! panics are contained, shutdown drains, refused jobs come back, `shutdown_now` hands back what
//! never ran, `Drop` joins every worker, waiting from a worker is refused, `shutdown_timeout`
//! reports what it left behind, a bounded queue says `Full`, and workers really run in parallel.
//! They are the readable specification; the randomised checks live in `pool_props.rs` (proptest)
//! and `pool_model_qc.rs` (quickcheck). Every blocking wait here has a deadline (the helpers in
//! `pool_support`), the drop of every pool included, so a broken pool fails a test, naming what it
//! waited for, instead of hanging the suite.

mod pool_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use pool_support::{DropWithin, PATIENCE, join_within, recv_within, within_patience};
use poolserve::{ExecuteError, JobHandle, JoinError, JoinTimeoutError, PoolError, ThreadPool};

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// A job that bumps `hits` once.
fn bump(hits: &Arc<AtomicUsize>) -> impl FnOnce() + Send + use<> {
    let hits = Arc::clone(hits);
    move || {
        hits.fetch_add(1, Ordering::SeqCst);
    }
}

/// Submits a blocker job and waits until a worker runs it. The worker stays busy until the
/// returned sender is dropped (or [`PATIENCE`] passes); then the job calls `then` and finishes.
fn occupy_a_worker(pool: &ThreadPool, then: impl FnOnce() + Send + 'static) -> mpsc::Sender<()> {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel();
    pool.execute(move || {
        started_tx.send(()).expect("test alive");
        let _ = release_rx.recv_timeout(PATIENCE);
        then();
    })
    .expect("running");
    recv_within(&started_rx, "the worker to pick up the blocker");
    release_tx
}

#[test_log::test]
fn accepted_jobs_all_run() {
    let pool = DropWithin::new("the pool", ThreadPool::new(4));
    let hits = counter();
    for _ in 0..200 {
        pool.execute(bump(&hits)).expect("pool is running");
    }
    let report =
        within_patience("shutdown", move || pool.into_inner().shutdown()).expect("not on a worker");
    assert_eq!(hits.load(Ordering::SeqCst), 200);
    assert_eq!(report.completed, 200);
    assert_eq!(report.panicked, 0);
    assert_eq!(report.threads_joined, 4);
    assert_eq!((report.still_running, report.still_queued), (0, 0));
}

#[test_log::test]
fn a_panicking_job_does_not_kill_its_worker() {
    let pool = DropWithin::new("the pool", ThreadPool::new(1));
    let hits = counter();
    pool.execute(|| panic!("deliberate panic from pool_basics"))
        .expect("running");
    pool.execute(bump(&hits)).expect("running");
    pool.execute(|| std::panic::panic_any(42_u32))
        .expect("running");
    pool.execute(bump(&hits)).expect("running");
    let (pool, idle) = within_patience("wait_idle", move || {
        let idle = pool.wait_idle();
        (pool, idle)
    });
    idle.expect("not on a worker");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "the only worker kept serving after each panic"
    );
    assert_eq!(pool.panicked(), 2);
    assert_eq!(pool.completed(), 2);
    assert_eq!(pool.threads(), 1);
    let report =
        within_patience("shutdown", move || pool.into_inner().shutdown()).expect("not on a worker");
    assert_eq!(
        (report.completed, report.panicked, report.threads_joined),
        (2, 2, 1)
    );
}

#[test_log::test]
fn shutdown_drains_the_queue() {
    let pool = DropWithin::new("the pool", ThreadPool::new(1));
    let hits = counter();
    // The single worker is busy for a moment, so the next 50 jobs are still queued at shutdown.
    pool.execute(|| thread::sleep(Duration::from_millis(20)))
        .expect("running");
    for _ in 0..50 {
        pool.execute(bump(&hits)).expect("running");
    }
    let report =
        within_patience("shutdown", move || pool.into_inner().shutdown()).expect("not on a worker");
    assert_eq!(hits.load(Ordering::SeqCst), 50);
    assert_eq!(report.completed, 51);
    assert_eq!(report.still_queued, 0);
}

#[test_log::test]
fn execute_after_close_hands_the_job_back() {
    let pool = DropWithin::new("the pool", ThreadPool::new(2));
    assert!(!pool.is_closed());
    pool.close();
    pool.close(); // idempotent
    assert!(pool.is_closed());
    let hits = counter();

    let err = pool.execute(bump(&hits)).expect_err("closed pool refuses");
    assert!(err.is_shut_down() && !err.is_full());
    let job = err.into_inner();
    let err = pool
        .try_execute(job)
        .expect_err("closed pool refuses try_execute too");
    assert!(matches!(err, ExecuteError::ShutDown(_)));
    let job = err.into_inner();

    let report =
        within_patience("shutdown", move || pool.into_inner().shutdown()).expect("not on a worker");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a refused job never runs on the pool"
    );
    assert_eq!(report.completed, 0);
    job(); // it is the very job we submitted
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test_log::test]
fn close_wakes_a_submitter_blocked_on_a_full_queue() {
    let pool = Arc::new(DropWithin::new(
        "the pool",
        ThreadPool::builder()
            .threads(1)
            .queue_capacity(Some(1))
            .build()
            .expect("valid"),
    ));
    let release_tx = occupy_a_worker(&pool, || {});
    let hits = counter();
    pool.execute(bump(&hits)).expect("fills the one queue slot");

    let blocked = {
        let (pool, hits) = (Arc::clone(&pool), Arc::clone(&hits));
        thread::spawn(move || {
            let job = bump(&hits);
            pool.execute(job).map_err(ExecuteError::into_inner)
        })
    };
    // Give the submitter time to block; the outcome does not depend on whether it did.
    thread::sleep(Duration::from_millis(20));
    pool.close();
    let refused = join_within(
        "the submitter blocked on a full queue, after close",
        blocked,
    );
    let job = refused.expect_err("close refuses the blocked submitter");
    drop(release_tx);
    let pool = Arc::try_unwrap(pool).unwrap_or_else(|_| panic!("the submitter's handle is gone"));
    let report =
        within_patience("shutdown", move || pool.into_inner().shutdown()).expect("not on a worker");
    assert_eq!(report.completed, 2, "the blocker and the queued job ran");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    job();
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[test_log::test]
fn shutdown_now_returns_the_jobs_that_never_ran() {
    let pool = DropWithin::new("the pool", ThreadPool::new(1));
    let release_tx = occupy_a_worker(&pool, || {});
    let hits = counter();
    for _ in 0..5 {
        pool.execute(bump(&hits)).expect("running");
    }
    assert_eq!(pool.queued(), 5);
    assert_eq!(pool.active(), 1);

    // `shutdown_now` must return while the blocker still runs, so release it a little later. (If
    // this thread stalled for the whole delay, the worker could legitimately take a queued job
    // first; the delay is long enough that this does not happen in practice.)
    let releaser = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        drop(release_tx);
    });
    let (report, unrun) = within_patience("shutdown_now", move || pool.into_inner().shutdown_now())
        .expect("not on a worker");
    join_within("the releaser thread", releaser);
    assert_eq!(unrun.len(), 5, "every queued job is handed back");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no handed-back job ran");
    assert_eq!(report.completed, 1, "only the blocker ran");
    assert_eq!(
        (
            report.still_running,
            report.still_queued,
            report.threads_joined
        ),
        (0, 0, 1)
    );
    for job in unrun {
        job();
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        5,
        "the handed-back jobs are the submitted ones"
    );
}

#[test_log::test]
fn drop_runs_every_job_and_joins_every_worker() {
    let started = counter();
    let stopped = counter();
    let names = Arc::new(Mutex::new(Vec::new()));
    let pool = DropWithin::new("the pool", {
        let (started, stopped, names) = (
            Arc::clone(&started),
            Arc::clone(&stopped),
            Arc::clone(&names),
        );
        ThreadPool::builder()
            .threads(3)
            .thread_name("basics")
            .on_thread_start(move || {
                started.fetch_add(1, Ordering::SeqCst);
                let name = thread::current().name().map(str::to_owned);
                names.lock().expect("not poisoned").push(name);
            })
            .on_thread_stop(move || {
                stopped.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .expect("valid configuration")
    });
    let hits = counter();
    for _ in 0..30 {
        let hits = Arc::clone(&hits);
        pool.execute(move || {
            thread::sleep(Duration::from_micros(200));
            hits.fetch_add(1, Ordering::SeqCst);
        })
        .expect("running");
    }
    within_patience("drop", move || drop(pool.into_inner()));
    assert_eq!(hits.load(Ordering::SeqCst), 30, "drop drained the queue");
    assert_eq!(started.load(Ordering::SeqCst), 3);
    assert_eq!(
        stopped.load(Ordering::SeqCst),
        3,
        "drop joined every worker (each ran its stop hook)"
    );
    let mut names = names.lock().expect("not poisoned").clone();
    names.sort();
    let expected: Vec<_> = (0..3).map(|i| Some(format!("basics-{i}"))).collect();
    assert_eq!(names, expected);
}

#[test_log::test]
fn wait_idle_from_a_worker_is_refused() {
    let pool = Arc::new(DropWithin::new("the pool", ThreadPool::new(2)));
    let (tx, rx) = mpsc::channel();
    let inner = Arc::clone(&pool);
    pool.execute(move || {
        let _ = tx.send(inner.wait_idle());
        // `inner` is dropped here, before the worker counts the job as finished.
    })
    .expect("running");
    let result = recv_within(&rx, "the job's wait_idle to answer instead of deadlocking");
    assert_eq!(result, Err(PoolError::CalledFromWorker));
    let waiter = Arc::clone(&pool);
    within_patience("wait_idle", move || waiter.wait_idle())
        .expect("from the test thread it is allowed");
    assert!(
        !pool.is_closed(),
        "a refused wait_idle leaves the pool open"
    );
    pool.execute(|| {}).expect("still accepting");
    let pool = Arc::try_unwrap(pool).unwrap_or_else(|_| panic!("the job's handle is gone"));
    let report =
        within_patience("shutdown", move || pool.into_inner().shutdown()).expect("not on a worker");
    assert_eq!(report.completed, 2);
}

#[test_log::test]
fn shutdown_timeout_reports_a_job_still_running() {
    let pool = DropWithin::new("the pool", ThreadPool::new(2));
    let (done_tx, done_rx) = mpsc::channel();
    let release_tx = occupy_a_worker(&pool, move || {
        let _ = done_tx.send(());
    });

    let t0 = Instant::now();
    let report = within_patience("shutdown_timeout(50 ms)", move || {
        pool.into_inner()
            .shutdown_timeout(Duration::from_millis(50))
    })
    .expect("not on a worker");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(50),
        "returned before the deadline: {waited:?}"
    );
    assert!(
        waited < PATIENCE,
        "did not return near the deadline: {waited:?}"
    );
    assert_eq!(report.still_running, 1);
    assert_eq!(report.still_queued, 0);
    assert_eq!(
        report.threads_joined, 0,
        "the workers were detached, not joined"
    );

    drop(release_tx);
    recv_within(&done_rx, "the detached worker to finish the job");
}

#[test_log::test]
fn shutdown_timeout_returns_early_when_idle() {
    let pool = DropWithin::new("the pool", ThreadPool::new(2));
    let hits = counter();
    for _ in 0..10 {
        pool.execute(bump(&hits)).expect("running");
    }
    let t0 = Instant::now();
    let report = within_patience("shutdown_timeout(30 s) of an idle pool", move || {
        pool.into_inner().shutdown_timeout(Duration::from_secs(30))
    })
    .expect("not on a worker");
    let waited = t0.elapsed();
    assert!(
        waited < PATIENCE,
        "waited {waited:?} although nothing was left to do"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 10);
    assert_eq!(report.completed, 10);
    assert_eq!(
        (
            report.still_running,
            report.still_queued,
            report.threads_joined
        ),
        (0, 0, 2)
    );
}

#[test_log::test]
fn try_execute_says_full_on_a_full_bounded_queue() {
    let pool = DropWithin::new(
        "the pool",
        ThreadPool::builder()
            .threads(1)
            .queue_capacity(Some(2))
            .build()
            .expect("valid"),
    );
    let release_tx = occupy_a_worker(&pool, || {});
    let hits = counter();
    pool.try_execute(bump(&hits)).expect("slot 1 of 2");
    pool.try_execute(bump(&hits)).expect("slot 2 of 2");
    let err = pool
        .try_execute(bump(&hits))
        .expect_err("the queue is full");
    assert!(err.is_full() && !err.is_shut_down());
    assert_eq!(format!("{err:?}"), "Full(..)");
    let refused = err.into_inner();
    assert_eq!((pool.queued(), pool.active()), (2, 1));

    drop(release_tx);
    let report =
        within_patience("shutdown", move || pool.into_inner().shutdown()).expect("not on a worker");
    assert_eq!(hits.load(Ordering::SeqCst), 2, "the refused job never ran");
    assert_eq!(report.completed, 3);
    refused();
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[test_log::test]
fn two_long_jobs_run_at_the_same_time() {
    let pool = DropWithin::new("the pool", ThreadPool::new(2));
    let (a_tx, a_rx) = mpsc::channel();
    let (b_tx, b_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    // Each job announces itself, then waits for the other one: only overlapping jobs can both
    // succeed.
    for (tell, hear) in [(a_tx, b_rx), (b_tx, a_rx)] {
        let done_tx = done_tx.clone();
        pool.execute(move || {
            tell.send(()).expect("other job alive");
            let met = hear.recv_timeout(PATIENCE).is_ok();
            done_tx.send(met).expect("test alive");
        })
        .expect("running");
    }
    for _ in 0..2 {
        assert!(
            recv_within(&done_rx, "a job to finish"),
            "the jobs did not overlap"
        );
    }
    within_patience("shutdown", move || pool.into_inner().shutdown()).expect("not on a worker");
}

#[test_log::test]
fn builder_rejects_zero_threads_and_zero_capacity() {
    assert!(matches!(
        ThreadPool::builder().threads(0).build(),
        Err(poolserve::BuildError::ZeroThreads)
    ));
    assert!(matches!(
        ThreadPool::builder().queue_capacity(Some(0)).build(),
        Err(poolserve::BuildError::ZeroCapacity)
    ));
}

/// Joins `handle` within [`PATIENCE`], failing the test (not hanging it) otherwise.
fn join_handle_within<T>(handle: JobHandle<T>, what: &str) -> Result<T, JoinError> {
    match handle.join_timeout(PATIENCE) {
        Ok(v) => Ok(v),
        Err(JoinTimeoutError::Failed(e)) => Err(e),
        Err(JoinTimeoutError::TimedOut(_)) => panic!("{what}: not resolved within {PATIENCE:?}"),
    }
}

#[test_log::test]
fn spawn_after_close_hands_back_the_callers_own_closure() {
    let pool = DropWithin::new("the pool", ThreadPool::new(1));
    pool.close();
    match pool.spawn(|| 5_u8) {
        // The closure itself (its type is the caller's, so it can be called for its value).
        Err(ExecuteError::ShutDown(f)) => assert_eq!(f(), 5),
        other => panic!("expected ShutDown, got {other:?}"),
    }
}

#[test_log::test]
fn a_spawned_job_dropped_after_shutdown_now_resolves_as_cancelled_and_a_run_one_to_its_value() {
    let pool = DropWithin::new("the pool", ThreadPool::new(1));
    let release_tx = occupy_a_worker(&pool, || {});
    let first = pool.spawn(|| 1_u32).expect("running");
    let second = pool.spawn(|| 2_u32).expect("running");
    assert!(!first.is_finished() && !second.is_finished());
    // Another thread is already waiting on the first handle when its job is dropped.
    let waiter = thread::spawn(move || join_handle_within(first, "the first handle"));
    let releaser = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        drop(release_tx);
    });
    let (_report, unrun) =
        within_patience("shutdown_now", move || pool.into_inner().shutdown_now())
            .expect("not on a worker");
    join_within("the releaser thread", releaser);
    assert_eq!(unrun.len(), 2, "both spawned jobs are handed back");
    let mut unrun = unrun.into_iter();
    drop(unrun.next()); // the first: dropped un-run
    unrun.next().expect("the second")(); // the second: run here, by the caller
    let first = join_within("the waiter", waiter);
    assert!(
        matches!(first, Err(JoinError::Cancelled)),
        "first: {first:?}"
    );
    assert!(second.is_finished());
    assert_eq!(
        join_handle_within(second, "the second handle").ok(),
        Some(2)
    );
}

#[test_log::test]
fn a_dropped_handle_detaches_and_the_job_still_runs() {
    let pool = DropWithin::new("the pool", ThreadPool::new(2));
    let hits = counter();
    let job = bump(&hits);
    drop(pool.spawn(job).expect("running"));
    let report =
        within_patience("shutdown", move || pool.into_inner().shutdown()).expect("not on a worker");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(report.completed, 1);
}
