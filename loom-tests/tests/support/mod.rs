//! Shared helpers for the loom models: the bounded model runner, a per-job run ledger and a latch.
//!
//! Everything here is built from `poolserve::sync`, i.e. from loom's primitives under `--cfg loom`,
//! so the helpers' own synchronisation is modelled too (a job's write is only visible where the
//! pool really creates a happens-before edge).

#![allow(dead_code)] // each test crate uses a different subset

use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use poolserve::ThreadPool;
use poolserve::sync::atomic::{AtomicUsize, Ordering};
use poolserve::sync::{Arc, Condvar, Mutex, lock, wait_while};

/// Runs `model` under loom with preemption bound `default_bound`, which `LOOM_MAX_PREEMPTIONS` may
/// raise (never lower). Prints the bound, the number of interleavings explored and the wall time
/// (visible with `-- --nocapture`).
pub fn check<F>(name: &str, default_bound: usize, model: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    let bound = builder
        .preemption_bound
        .map_or(default_bound, |env| env.max(default_bound));
    builder.preemption_bound = Some(bound);
    // A std counter on purpose: it counts iterations from outside the model and must not add
    // scheduling points of its own.
    let iterations = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&iterations);
    let start = Instant::now();
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        model();
    });
    eprintln!(
        "loom model {name}: preemption bound {bound}, {} interleavings, {:.2?}",
        iterations.load(std::sync::atomic::Ordering::Relaxed),
        start.elapsed()
    );
}

/// Runs a model that is *supposed* to fail and returns loom's failure message. Panics if loom
/// explored every interleaving (within the bound) without finding the bug.
pub fn expect_failure<F>(name: &str, default_bound: usize, model: F) -> String
where
    F: Fn() + Sync + Send + 'static,
{
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| check(name, default_bound, model)));
    match outcome {
        Ok(()) => {
            panic!("negative example {name}: loom found no failure, but the protocol is broken")
        }
        Err(payload) => {
            if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_owned()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else {
                String::from("<non-string panic payload>")
            }
        }
    }
}

/// Counts how many times each of `n` jobs ran. Cloning shares the counters.
#[derive(Clone)]
pub struct Ledger {
    runs: Arc<Vec<AtomicUsize>>,
}

impl Ledger {
    /// A ledger for jobs `0..n`, none run yet.
    pub fn new(n: usize) -> Self {
        Ledger {
            runs: Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect()),
        }
    }

    /// Job number `i`: it records one run of itself.
    pub fn job(&self, i: usize) -> impl FnOnce() + Send + 'static {
        let runs = Arc::clone(&self.runs);
        move || {
            runs[i].fetch_add(1, Ordering::SeqCst);
        }
    }

    /// How many times job `i` has run.
    pub fn runs(&self, i: usize) -> usize {
        self.runs[i].load(Ordering::SeqCst)
    }

    /// Number of jobs in the ledger.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// Asserts that every job ran exactly once.
    pub fn assert_each_ran_once(&self) {
        for i in 0..self.len() {
            assert_eq!(
                self.runs(i),
                1,
                "job {i} ran {} times, expected exactly once",
                self.runs(i)
            );
        }
    }
}

/// A one-shot gate: `wait` blocks until some thread has called `open`.
#[derive(Clone)]
pub struct Latch {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl Latch {
    /// A closed latch.
    pub fn new() -> Self {
        Latch {
            inner: Arc::new((Mutex::new(false), Condvar::new())),
        }
    }

    /// Opens the latch and wakes every waiter.
    pub fn open(&self) {
        let (open, cv) = &*self.inner;
        *lock(open) = true;
        cv.notify_all();
    }

    /// Blocks until the latch is open.
    pub fn wait(&self) {
        let (open, cv) = &*self.inner;
        drop(wait_while(cv, lock(open), |open| !*open));
    }

    /// Has the latch been opened?
    pub fn is_open(&self) -> bool {
        *lock(&self.inner.0)
    }
}

/// Takes the pool back from its `Arc` once every other handle (threads, jobs) has been dropped.
pub fn sole(pool: Arc<ThreadPool>) -> ThreadPool {
    match Arc::try_unwrap(pool) {
        Ok(pool) => pool,
        Err(_) => panic!("another handle to the pool is still alive"),
    }
}

/// Submits `job` behind a gate, to hold one worker: the submitted job opens the first latch
/// returned (`started`), waits for the second (`release`), then runs `job`.
pub fn execute_gated(pool: &ThreadPool, job: impl FnOnce() + Send + 'static) -> (Latch, Latch) {
    let (started, release) = (Latch::new(), Latch::new());
    let (opened, released) = (started.clone(), release.clone());
    pool.execute(move || {
        opened.open();
        released.wait();
        job();
    })
    .expect("accepted");
    (started, release)
}

/// `job`, then opens `done` (so a test can wait until that job has run).
pub fn then_open(
    job: impl FnOnce() + Send + 'static,
    done: &Latch,
) -> impl FnOnce() + Send + 'static {
    let done = done.clone();
    move || {
        job();
        done.open();
    }
}

/// A shared counter (for start/stop hooks).
pub fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// Reads a shared counter.
pub fn get(c: &Arc<AtomicUsize>) -> usize {
    c.load(Ordering::SeqCst)
}

/// Bumps a shared counter.
pub fn bump(c: &Arc<AtomicUsize>) {
    c.fetch_add(1, Ordering::SeqCst);
}

/// Installs (once per test binary) a panic hook that stays silent for panics whose message
/// contains `marker` and defers to the previous hook for every other panic. Deliberate panics run
/// in every explored interleaving; printing each (with a backtrace under `RUST_BACKTRACE=1`) only
/// slows the model down and buries real failures.
pub fn silence_panics_containing(marker: &'static str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            if !message.contains(marker) {
                previous(info);
            }
        }));
    });
}

/// Holds a value that must not be dropped while a loom failure unwinds.
///
/// When loom detects a deadlock it panics with no thread active; dropping a loom object (an `Arc`,
/// say) during that unwind panics again inside loom and aborts the whole test binary ("panic in a
/// destructor during cleanup"). Models that are *expected* to fail keep their loom objects in this
/// wrapper, which leaks them (`mem::forget`) instead of dropping them while the thread panics, so
/// the failure reaches `expect_failure` as an ordinary panic.
pub struct LeakOnUnwind<T>(Option<T>);

impl<T> LeakOnUnwind<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Self {
        LeakOnUnwind(Some(value))
    }
}

impl<T> std::ops::Deref for LeakOnUnwind<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("present until dropped")
    }
}

impl<T> Drop for LeakOnUnwind<T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            std::mem::forget(self.0.take());
        }
    }
}

impl<T> LeakOnUnwind<Arc<T>> {
    /// Another handle to the same `Arc`, also leaked on unwind. Threads that loom cancels after a
    /// deadlock are unwound too, so what they capture must be wrapped as well.
    pub fn share(&self) -> Self {
        LeakOnUnwind::new(Arc::clone(self))
    }
}
