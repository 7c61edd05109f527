//! loom models of the shutdown paths that the other model files leave out (issue 21):
//! `shutdown_timeout` (its non-timeout path: under loom 0.7 `Condvar::wait_timeout` simply waits),
//! dropping the pool on one of its own workers, and `shutdown_now` against a job that a worker has
//! already moved to the take-side queue, with an oracle that tells "handed back" from "run".
//!
//! Like `pool.rs`, these run the real pool code through `poolserve::sync`; each test's name is its
//! property and each asserts it. The claims are `SHUTDOWN.md` [C20]–[C22]; the breaks that each
//! model was seen to catch are in `loom-tests/catalog/` (bounds and costs: `loom-tests/README.md`).
#![cfg(loom)]

mod support;

use std::time::Duration;

use poolserve::ThreadPool;
use poolserve::sync::atomic::AtomicUsize;
use poolserve::sync::{Arc, Mutex, lock};
use support::{Latch, Ledger, bump, check, execute_gated, get};

/// `shutdown_timeout` with two workers and one job (3 threads): bound 2, as the other two-worker
/// wake-up models in `pool.rs`. At 2 it explores 7.6k interleavings and caught the break recorded
/// for it in the catalog; at 3 it costs 315k (20-50 s) (README).
const TIMEOUT_BOUND: usize = 2;
/// Drop on a worker: main and one worker, sequenced by latches: bound 4 (README cost table).
const DROP_ON_WORKER_BOUND: usize = 4;
/// `shutdown_now` against the take-side queue: main and one worker, bound 4, as the other
/// two-thread `shutdown_now` model (`pool_fast_path.rs`).
const TAKE_SIDE_BOUND: usize = 4;

/// A deadline that loom never reaches (its `wait_timeout` waits until notified), and that a real
/// run of this code would not reach either.
const NEVER: Duration = Duration::from_secs(3600);

/// A pool of `threads` workers whose stop hook counts into the returned counter and, for the
/// last worker to stop, opens the returned latch.
fn pool_with_stop_latch(threads: usize) -> (ThreadPool, Arc<AtomicUsize>, Latch) {
    let stopped = support::counter();
    let all_stopped = Latch::new();
    let (count, latch) = (Arc::clone(&stopped), all_stopped.clone());
    let pool = ThreadPool::builder()
        .threads(threads)
        .on_thread_stop(move || {
            bump(&count);
            if get(&count) == threads {
                latch.open();
            }
        })
        .build()
        .expect("build");
    (pool, stopped, all_stopped)
}

/// [C20] `shutdown_timeout` whose deadline does not pass behaves as `shutdown`: it returns once
/// every worker has exited (each exit is noticed under `state` and notified on `idle`, which
/// `shutdown_timeout` waits on for `live_workers == 0`), then joins them all; the queued job ran.
/// No other path notifies this waiter once the workers are gone, so a lost notification on a
/// worker's exit leaves it waiting for ever: loom reports a deadlock (its `wait_timeout` does not
/// time out).
#[test]
fn shutdown_timeout_not_reached_joins_every_worker() {
    check(
        "shutdown_timeout_not_reached_joins_every_worker",
        TIMEOUT_BOUND,
        || {
            let ledger = Ledger::new(1);
            let (pool, stopped, _) = pool_with_stop_latch(2);
            pool.execute(ledger.job(0)).expect("accepted");
            let report = pool.shutdown_timeout(NEVER).expect("not on a worker");
            ledger.assert_each_ran_once();
            assert_eq!(
                (report.completed, report.threads_joined),
                (1, 2),
                "shutdown_timeout returned without joining: {report:?}"
            );
            assert_eq!((report.still_running, report.still_queued), (0, 0));
            assert_eq!(get(&stopped), 2, "returned before every worker exited");
        },
    );
}

/// [C21] Dropping the last handle of the pool inside one of its own jobs neither joins the worker
/// it runs on (that would wait for itself) nor leaves the pool running: the drop returns, the job
/// finishes normally, the job queued behind it still runs (the drop began a drain), and the
/// worker then exits on its own.
#[test]
fn drop_on_own_worker_returns_and_workers_drain_and_exit() {
    check(
        "drop_on_own_worker_returns_and_workers_drain_and_exit",
        DROP_ON_WORKER_BOUND,
        || {
            let ledger = Ledger::new(1);
            let (pool, stopped, all_stopped) = pool_with_stop_latch(1);
            let slot: Arc<Mutex<Option<ThreadPool>>> = Arc::new(Mutex::new(None));
            let (handed_over, dropped) = (Latch::new(), Latch::new());
            {
                let (slot, handed_over, dropped) =
                    (Arc::clone(&slot), handed_over.clone(), dropped.clone());
                pool.execute(move || {
                    handed_over.wait();
                    let last_handle = lock(&slot).take().expect("handed over");
                    drop(last_handle); // Drop on a worker of this very pool
                    dropped.open();
                })
                .expect("accepted");
            }
            pool.execute(ledger.job(0)).expect("accepted");
            *lock(&slot) = Some(pool);
            handed_over.open();
            // Deadlocks (loom reports it) if Drop joins the worker it runs on.
            dropped.wait();
            // Deadlocks if the worker never learns that the pool is shutting down.
            all_stopped.wait();
            ledger.assert_each_ran_once();
            assert_eq!(get(&stopped), 1);
        },
    );
}

/// Counters kept outside the model (std atomics, no scheduling points) of the executions of
/// `shutdown_now_hands_back_jobs_from_both_queues` in which `shutdown_now` handed back job 2 after
/// the pool ran job 1 (job 2 was then in the take-side queue), and in which it handed back both
/// jobs 1 and 2 (both were then still in the inbox: the worker moves them together).
static HANDED_BACK_FROM_TAKE_SIDE: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);
static HANDED_BACK_FROM_INBOX: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// [C22] `shutdown_now` hands back every job still queued, from the inbox and from the take-side
/// queue alike; it does not let the workers run them. Job 0 holds the only worker while jobs 1
/// and 2 queue in the inbox; once released, the worker moves `[1, 2]` to the take-side queue in
/// one batch and runs job 1. So whenever the pool ran job 1 and not job 2, job 2 sat in the
/// take-side queue, and whenever it ran neither, both sat in the inbox.
///
/// Each execution checks, per job, that it was run by the pool or handed back (never both, never
/// neither), that the pool's runs come first and the handed-back jobs follow, each in submit
/// order, and that the report counts the pool's runs. Those checks also hold for a pool whose
/// `shutdown_now` lets its workers run what is queued before it returns (it just hands back fewer
/// jobs), and nothing outside the pool can hold the worker inside job 1 until shutdown has begun
/// (the caller of `shutdown_now` is blocked joining it). So the model also checks, over all the
/// executions loom explores, that `shutdown_now` handed back job 2 after job 1 ran in some, and
/// jobs 1 and 2 in some: loom explores the executions where `shutdown_now` takes the locks while
/// job 1 runs, and before the worker moves the batch, where a correct pool must hand them back.
#[test]
fn shutdown_now_hands_back_jobs_from_both_queues() {
    use std::sync::atomic::Ordering::SeqCst;
    HANDED_BACK_FROM_TAKE_SIDE.store(0, SeqCst);
    HANDED_BACK_FROM_INBOX.store(0, SeqCst);
    check(
        "shutdown_now_hands_back_jobs_from_both_queues",
        TAKE_SIDE_BOUND,
        || {
            // (job, who ran it), in the order the jobs ran.
            let log: Arc<Mutex<Vec<(usize, &str)>>> = Arc::new(Mutex::new(Vec::new()));
            let job = |i: usize| {
                let log = Arc::clone(&log);
                move || lock(&log).push((i, "pool"))
            };
            let pool = ThreadPool::new(1);
            let (started, release) = execute_gated(&pool, job(0));
            started.wait();
            pool.execute(job(1)).expect("accepted");
            pool.execute(job(2)).expect("accepted");
            release.open();
            let (report, unrun) = pool.shutdown_now().expect("not on a worker");
            let ran = lock(&log).len();
            assert_eq!(report.completed as usize, ran, "report {report:?}");
            for returned in unrun {
                let before = lock(&log).len();
                returned();
                let mut log = lock(&log);
                assert_eq!(log.len(), before + 1, "a handed-back job was not one job");
                log[before].1 = "handed back";
            }
            let outcome = lock(&log).clone();
            let ids: Vec<usize> = outcome.iter().map(|&(i, _)| i).collect();
            assert_eq!(
                ids,
                [0, 1, 2],
                "each job once, the pool's runs then the handed-back jobs, in submit order: \
                 {outcome:?}"
            );
            match (outcome[1].1, outcome[2].1) {
                ("pool", "handed back") => HANDED_BACK_FROM_TAKE_SIDE.fetch_add(1, SeqCst),
                ("handed back", "handed back") => HANDED_BACK_FROM_INBOX.fetch_add(1, SeqCst),
                _ => 0,
            };
        },
    );
    assert!(
        HANDED_BACK_FROM_TAKE_SIDE.load(SeqCst) > 0,
        "in no explored execution did shutdown_now hand back job 2 after the pool ran job 1: \
         the take-side queue was run instead of handed back"
    );
    assert!(
        HANDED_BACK_FROM_INBOX.load(SeqCst) > 0,
        "in no explored execution did shutdown_now hand back jobs 1 and 2: the inbox was run \
         instead of handed back"
    );
}
