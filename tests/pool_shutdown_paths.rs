#![cfg(not(loom))]
//! Real-thread tests of the shutdown paths that `pool_basics.rs` left out (issue 21): dropping the
//! pool on one of its own workers (`SHUTDOWN.md` §6 and [C21]), and `shutdown_now` against jobs a
//! worker has already moved to the take-side queue ([C22]). Their loom twins are in
//! `loom-tests/tests/pool_shutdown_paths.rs`; the breaks each test was seen to catch are listed in
//! `loom-tests/catalog/`. Every blocking wait has a deadline (`pool_support`).

mod pool_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use pool_support::{join_within, recv_within, within_patience};
use poolserve::ThreadPool;

/// Dropping the last handle of a pool inside one of its own jobs returns (it must not join the
/// thread it runs on), the job finishes normally, the jobs queued behind it still run, and every
/// worker then exits on its own (each runs its stop hook).
#[test]
fn drop_on_its_own_worker_returns_and_the_pool_drains_and_exits() {
    let (stopped_tx, stopped_rx) = mpsc::channel();
    let stopped_tx = Mutex::new(stopped_tx);
    let pool = ThreadPool::builder()
        .threads(2)
        .on_thread_stop(move || {
            let _ = stopped_tx.lock().expect("not poisoned").send(());
        })
        .build()
        .expect("valid");
    let slot: Arc<Mutex<Option<ThreadPool>>> = Arc::new(Mutex::new(None));
    let (handed_tx, handed_rx) = mpsc::channel::<()>();
    let (dropped_tx, dropped_rx) = mpsc::channel();
    {
        let slot = Arc::clone(&slot);
        pool.execute(move || {
            let _ = handed_rx.recv_timeout(pool_support::PATIENCE);
            let last_handle = slot.lock().expect("not poisoned").take();
            let was_handed = last_handle.is_some();
            drop(last_handle); // Drop on a worker of this very pool
            let _ = dropped_tx.send(was_handed);
        })
        .expect("running");
    }
    let behind = Arc::new(AtomicUsize::new(0));
    for _ in 0..5 {
        let behind = Arc::clone(&behind);
        pool.execute(move || {
            thread::sleep(Duration::from_millis(1));
            behind.fetch_add(1, Ordering::SeqCst);
        })
        .expect("running");
    }
    *slot.lock().expect("not poisoned") = Some(pool);
    handed_tx.send(()).expect("the dropping job is alive");
    assert!(
        recv_within(
            &dropped_rx,
            "the job that drops the pool to return from the drop"
        ),
        "the job did not get the pool"
    );
    for k in 0..2 {
        recv_within(
            &stopped_rx,
            &format!("worker stop hook {} of 2 after a drop on a worker", k + 1),
        );
    }
    assert_eq!(
        behind.load(Ordering::SeqCst),
        5,
        "the jobs queued behind the drop all ran before the workers exited"
    );
}

/// `shutdown_now` hands back a job that a worker has already moved out of the inbox into the
/// take-side queue: one worker runs job 1 with job 2 behind it in that queue (they were moved
/// together) when `shutdown_now` begins; job 2 must come back un-run, not be run before the call
/// returns.
#[test]
fn shutdown_now_hands_back_a_job_already_in_the_take_side_queue() {
    let pool = ThreadPool::new(1);
    // Job 0 holds the worker until jobs 1 and 2 are both queued, so that they are moved together.
    let (release0_tx, release0_rx) = mpsc::channel::<()>();
    let (started0_tx, started0_rx) = mpsc::channel();
    pool.execute(move || {
        started0_tx.send(()).expect("test alive");
        let _ = release0_rx.recv_timeout(pool_support::PATIENCE);
    })
    .expect("running");
    recv_within(&started0_rx, "the worker to start job 0");
    let (release1_tx, release1_rx) = mpsc::channel::<()>();
    let (started1_tx, started1_rx) = mpsc::channel();
    pool.execute(move || {
        started1_tx.send(()).expect("test alive");
        let _ = release1_rx.recv_timeout(pool_support::PATIENCE);
    })
    .expect("running");
    let ran2 = Arc::new(AtomicUsize::new(0));
    {
        let ran2 = Arc::clone(&ran2);
        pool.execute(move || {
            ran2.fetch_add(1, Ordering::SeqCst);
        })
        .expect("running");
    }
    drop(release0_tx);
    recv_within(&started1_rx, "the worker to start job 1");
    assert_eq!(pool.queued(), 1, "job 2 waits behind job 1");
    // Release job 1 a little after `shutdown_now` has begun (as in pool_basics: if this thread
    // stalled for the whole delay, the worker could legitimately run job 2 first).
    let releaser = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        drop(release1_tx);
    });
    let (report, unrun) =
        within_patience("shutdown_now", move || pool.shutdown_now()).expect("not on a worker");
    join_within("the releaser thread", releaser);
    assert_eq!(
        (unrun.len(), ran2.load(Ordering::SeqCst)),
        (1, 0),
        "job 2 (in the take-side queue) is handed back un-run, not run by the pool"
    );
    assert_eq!((report.completed, report.threads_joined), (2, 1));
    for job in unrun {
        job();
    }
    assert_eq!(
        ran2.load(Ordering::SeqCst),
        1,
        "the handed-back job was job 2"
    );
}
