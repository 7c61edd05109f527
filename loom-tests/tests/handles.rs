//! loom models of the completion slot behind `ThreadPool::spawn`'s `JobHandle` (claims H1–H4 in
//! the module docs of `src/pool/handle.rs`), run against the real pool and the real slot.
//!
//! Bounds: every model runs at 3, the suite's default. Each has one worker and at most one more
//! thread besides main, and one or two spawned jobs besides a gate, so at 3 the most expensive
//! explores 2.3k interleavings in under half a second, and at 4 (`LOOM_MAX_PREEMPTIONS=4`) 10k in
//! 3 s, also passing (counts in `loom-tests/README.md`). Every break of the slot in `catalog/`
//! (`handle-*.patch`) is caught at these bounds.
#![cfg(loom)]

mod support;

use poolserve::sync::atomic::{AtomicUsize, Ordering};
use poolserve::sync::{Arc, thread};
use poolserve::{JoinError, ThreadPool};
use support::{check, execute_gated, silence_panics_containing};

/// The suite's default; each model stays within ~2.3k interleavings at it (see the module docs).
const BOUND: usize = 3;

/// [H1] A spawned job that returns: its handle is finished once the pool has shut down, and
/// `join` gets exactly the value the job returned; the pool counts it as completed.
#[test]
fn spawned_job_runs_and_join_gets_its_value() {
    check("spawned_job_runs_and_join_gets_its_value", BOUND, || {
        let pool = ThreadPool::new(1);
        let handle = pool.spawn(|| 42_u32).expect("accepted");
        let report = pool.shutdown().expect("not on a worker");
        assert_eq!(report.completed, 1);
        assert!(
            handle.is_finished(),
            "the job ran but its handle is not finished"
        );
        match handle.join() {
            Ok(v) => assert_eq!(v, 42),
            Err(e) => panic!("the job returned 42, join got {e:?}"),
        }
    });
}

/// [H2] A spawned job that panics: `join` gets `Panicked` with the panic's own payload (not
/// `Cancelled`, not a hang), and the pool counts the panic and its worker survives.
#[test]
fn spawned_job_panics_and_join_gets_the_payload() {
    const MARKER: &str = "deliberate spawned-job panic (loom model)";
    silence_panics_containing(MARKER);
    check(
        "spawned_job_panics_and_join_gets_the_payload",
        BOUND,
        || {
            let pool = ThreadPool::new(1);
            let handle = pool
                .spawn(|| -> u32 { panic!("deliberate spawned-job panic (loom model)") })
                .expect("accepted");
            match handle.join() {
                Err(JoinError::Panicked(payload)) => {
                    assert_eq!(payload.downcast_ref::<&str>(), Some(&MARKER));
                }
                other => panic!("the job panicked, join got {other:?}"),
            }
            let after = pool.spawn(|| 7_u32).expect("accepted");
            assert_eq!(after.join().expect("the worker survived the panic"), 7);
            let report = pool.shutdown().expect("not on a worker");
            assert_eq!((report.panicked, report.completed), (1, 1));
        },
    );
}

/// Executions of `shutdown_now_cancels_a_queued_job_and_join_returns` in which `shutdown_now`
/// handed the spawned job back (counted outside the model: std atomic, no scheduling points).
static HANDED_BACK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// [H3] A spawned job that `shutdown_now` hands back and the caller drops resolves its handle as
/// `Cancelled`, and a thread already blocked in `join` returns (no hang).
///
/// The gated job holds the only worker while the spawned job queues; a joiner thread waits on the
/// handle; main releases the gate and calls `shutdown_now`. Nothing outside the pool can hold the
/// worker until shutdown has begun, so in some executions the worker runs the spawned job first:
/// each execution checks that the handle resolved to the value exactly when the job was not handed
/// back, and to `Cancelled` exactly when it was; over all executions the model checks that some
/// handed it back (so the cancel path was explored).
#[test]
fn shutdown_now_cancels_a_queued_job_and_join_returns() {
    use std::sync::atomic::Ordering::SeqCst;
    HANDED_BACK.store(0, SeqCst);
    check(
        "shutdown_now_cancels_a_queued_job_and_join_returns",
        BOUND,
        || {
            let pool = ThreadPool::new(1);
            let (started, release) = execute_gated(&pool, || {});
            started.wait();
            let handle = pool.spawn(|| 7_u32).expect("accepted");
            let joiner = thread::spawn(move || handle.join());
            release.open();
            let (report, unrun) = pool.shutdown_now().expect("not on a worker");
            let handed_back = unrun.len();
            drop(unrun);
            let outcome = joiner.join().expect("the joiner does not panic");
            match (handed_back, outcome) {
                (1, Err(JoinError::Cancelled)) => {
                    assert_eq!(report.completed, 1);
                    HANDED_BACK.fetch_add(1, SeqCst);
                }
                (0, Ok(7)) => assert_eq!(report.completed, 2),
                (n, outcome) => {
                    panic!("{n} job(s) handed back and dropped, but join got {outcome:?}")
                }
            }
        },
    );
    assert!(
        HANDED_BACK.load(SeqCst) > 0,
        "in no explored execution did shutdown_now hand back the spawned job"
    );
}

/// [H4] `join` on another thread races the job's completion and the pool's shutdown: it returns
/// the value (no lost wake-up, whether it starts waiting before or after the job stores its value),
/// and a job whose handle was dropped (detached) still runs exactly once.
#[test]
fn join_races_completion_without_a_lost_wakeup() {
    check("join_races_completion_without_a_lost_wakeup", BOUND, || {
        let detached_runs = Arc::new(AtomicUsize::new(0));
        let pool = ThreadPool::new(1);
        let handle = pool.spawn(|| 1_u32).expect("accepted");
        let runs = Arc::clone(&detached_runs);
        drop(
            pool.spawn(move || runs.fetch_add(1, Ordering::SeqCst))
                .expect("accepted"),
        );
        let joiner = thread::spawn(move || handle.join());
        let report = pool.shutdown().expect("not on a worker");
        let outcome = joiner.join().expect("the joiner does not panic");
        assert!(matches!(outcome, Ok(1)), "join got {outcome:?}");
        assert_eq!(report.completed, 2);
        assert_eq!(detached_runs.load(Ordering::SeqCst), 1);
    });
}
