#![cfg(not(loom))]
//! Property: every job the pool accepts runs exactly once, under random workloads (proptest).
//!
//! proptest generates a whole *scenario* (1–8 workers, an unbounded or 1–16 slot queue, 1–4
//! submitting threads, up to 32 jobs that are plain, panicking or briefly busy, submitted with
//! `execute`, `try_execute`, `spawn` or `try_spawn`, an optional `close()` part-way through
//! submission, and an ending: `shutdown`, `shutdown_now` (whose handed-back jobs are run or, every
//! other one, dropped), `shutdown_timeout`, plain drop, or none), runs it against the real pool with
//! real threads, and checks the pool's promises through a per-job slot table and the start/stop
//! hooks; a spawned job's handle must resolve exactly once, to the value the job returned, to
//! `Panicked` with its payload, or to `Cancelled` when it was dropped un-run. proptest is used here for what it does best: its strategies shrink *structured*
//! values, so a failing scenario comes back as the smallest one that still fails (fewest jobs,
//! fewest workers, plainest job kinds), and its regression file (`pool_props.regressions` beside
//! this file) replays past failures first. The independent, model-based check is in
//! `pool_model_qc.rs` (quickcheck). Each case runs on its own thread under a deadline, so a hang is
//! reported as a failure instead of stalling the suite. Set `PROPTEST_CASES` for more cases (CI
//! uses 1000); the local default is small.
//!
//! One thing no timing-independent property can see is *when* a job started relative to
//! `shutdown_now`: a pool that lets the oldest queued job run instead of handing it back looks
//! exactly like a worker that took that job just before the call. `pool_basics.rs`
//! (`shutdown_now_returns_the_jobs_that_never_ran`) pins that case with a worker held on a channel.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use poolserve::{JobHandle, JoinError, JoinTimeoutError, ShutdownReport, ThreadPool};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// A case that has not finished after this long counts as a hang.
const CASE_DEADLINE: Duration = Duration::from_secs(10);

/// Thread timing decides some outcomes (how much is still queued at `shutdown_now`, say), and
/// proptest stops shrinking at the first simplification that passes. So each case runs its
/// scenario up to this many times and fails on the first failure: a racy bug keeps failing while
/// proptest shrinks it, and the shrunk scenario is a small one that really fails.
const RUNS_PER_CASE: u32 = 3;

/// What a job does once it runs on a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Returns at once.
    Plain,
    /// Panics (the pool must catch it and keep the worker).
    Panic,
    /// Busy-waits for a bounded number of spins (×32).
    Spin(u16),
    /// Sleeps for this many microseconds (at most 1 ms).
    Sleep(u16),
}

/// How a job is submitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Submit {
    /// `execute`: blocks while a bounded queue is full; only ever refused with `ShutDown`.
    Execute,
    /// `try_execute`: may be refused with `Full` (bounded queue) or `ShutDown`.
    Try,
    /// `spawn`: like `execute`, and the job's value comes back through its handle.
    Spawn,
    /// `try_spawn`: like `try_execute`, with a handle.
    TrySpawn,
}

impl Submit {
    /// Does this way of submitting block on a full queue (so it is never refused with `Full`)?
    fn blocks(self) -> bool {
        matches!(self, Submit::Execute | Submit::Spawn)
    }
}

/// How the scenario ends, after every submitter has finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Shutdown,
    ShutdownNow,
    /// `shutdown_timeout` with this many milliseconds; small values often time out.
    ShutdownTimeout(u8),
    Drop,
    /// `wait_idle`, check the live counters, then `shutdown`.
    WaitIdle,
}

#[derive(Clone, Debug)]
struct Scenario {
    workers: usize,
    capacity: Option<usize>,
    submitters: usize,
    /// Job `i` is submitted by submitter `i % submitters`, in index order per submitter.
    jobs: Vec<(Kind, Submit)>,
    /// Call `close()` once this many submissions have returned (mid-submission refusal).
    close_at: Option<usize>,
    /// Microseconds to let the workers run before the ending.
    delay_us: u16,
    ending: Ending,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => Just(Kind::Plain),
        2 => Just(Kind::Panic),
        1 => (0u16..200).prop_map(Kind::Spin),
        1 => (0u16..=1000).prop_map(Kind::Sleep),
    ]
}

fn submit() -> impl Strategy<Value = Submit> {
    prop_oneof![
        Just(Submit::Execute),
        Just(Submit::Try),
        Just(Submit::Spawn),
        Just(Submit::TrySpawn)
    ]
}

fn ending() -> impl Strategy<Value = Ending> {
    prop_oneof![
        Just(Ending::Shutdown),
        Just(Ending::ShutdownNow),
        (0u8..=5).prop_map(Ending::ShutdownTimeout),
        Just(Ending::Drop),
        Just(Ending::WaitIdle),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    // proptest shrinks a tuple field by field, in order, and stops at the first simplification
    // that passes; the job list comes first because dropping jobs is what makes a counterexample
    // readable, and the pool shape last because it matters least.
    (
        prop::collection::vec((kind(), submit()), 0..=32),
        prop_oneof![3 => Just(0u16), 1 => 0u16..=2000],
        prop::option::of(0usize..=32),
        ending(),
        1usize..=8,
        1usize..=4,
        prop::option::of(1usize..=16),
    )
        .prop_map(
            |(jobs, delay_us, close_at, ending, workers, submitters, capacity)| Scenario {
                workers,
                capacity,
                submitters,
                jobs,
                close_at,
                delay_us,
                ending,
            },
        )
}

/// Submission outcome per job.
const NOT_SUBMITTED: u8 = 0;
const ACCEPTED: u8 = 1;
const REFUSED_SHUT_DOWN: u8 = 2;
const REFUSED_FULL: u8 = 3;

/// One slot per job.
struct Table {
    /// Times the job ran on a pool worker.
    runs: Vec<AtomicU32>,
    /// Times the job was run by the test thread after `shutdown_now` handed it back.
    returned: Vec<AtomicU32>,
    /// Times the job came back inside an `ExecuteError`.
    handed_back: Vec<AtomicU32>,
    /// Times the job's closure was destroyed (run or not). Must end at exactly 1.
    drops: Vec<AtomicU32>,
    outcome: Vec<AtomicU8>,
    /// The handles of the accepted spawned jobs.
    handles: Vec<Mutex<Option<JobHandle<u64>>>>,
}

impl Table {
    fn new(n: usize) -> Self {
        let zeros32 = || (0..n).map(|_| AtomicU32::new(0)).collect();
        Table {
            runs: zeros32(),
            returned: zeros32(),
            handed_back: zeros32(),
            drops: zeros32(),
            outcome: (0..n).map(|_| AtomicU8::new(NOT_SUBMITTED)).collect(),
            handles: (0..n).map(|_| Mutex::new(None)).collect(),
        }
    }
}

thread_local! {
    /// Set by the pool's start hook: is this thread one of the pool's workers?
    static ON_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Owned by a job's closure; records the closure's destruction, whichever way it happens.
struct Token {
    i: usize,
    table: Arc<Table>,
}

impl Drop for Token {
    fn drop(&mut self) {
        self.table.drops[self.i].fetch_add(1, Ordering::SeqCst);
    }
}

/// The value job `i` returns (seen only through a spawned job's handle).
fn value(i: usize) -> u64 {
    i as u64 * 1_000_003 + 17
}

fn make_job(i: usize, kind: Kind, table: &Arc<Table>) -> impl FnOnce() -> u64 + Send + 'static {
    let token = Token {
        i,
        table: Arc::clone(table),
    };
    move || {
        let token = token;
        if !ON_WORKER.with(Cell::get) {
            // Handed back by `shutdown_now` and run by the test: record it, do nothing else.
            token.table.returned[token.i].fetch_add(1, Ordering::SeqCst);
            return value(token.i);
        }
        token.table.runs[token.i].fetch_add(1, Ordering::SeqCst);
        match kind {
            Kind::Plain => {}
            Kind::Panic => panic!("deliberate panic from job {}", token.i),
            Kind::Spin(n) => {
                for _ in 0..u32::from(n) * 32 {
                    std::hint::spin_loop();
                }
            }
            Kind::Sleep(us) => thread::sleep(Duration::from_micros(u64::from(us))),
        }
        value(token.i)
    }
}

/// Runs `scenario` against a fresh pool and checks every promise; `Err` describes the first broken
/// one.
fn run_scenario(s: &Scenario) -> Result<(), String> {
    let n = s.jobs.len();
    let table = Arc::new(Table::new(n));
    let starts = Arc::new(AtomicUsize::new(0));
    let stops = Arc::new(AtomicUsize::new(0));
    let pool = {
        let (starts, stops) = (Arc::clone(&starts), Arc::clone(&stops));
        ThreadPool::builder()
            .threads(s.workers)
            .queue_capacity(s.capacity)
            .thread_name("prop")
            .on_thread_start(move || {
                ON_WORKER.with(|w| w.set(true));
                starts.fetch_add(1, Ordering::SeqCst);
            })
            .on_thread_stop(move || {
                stops.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .map_err(|e| format!("build failed: {e}"))?
    };
    if pool.threads() != s.workers {
        return Err(format!(
            "threads() = {}, built with {}",
            pool.threads(),
            s.workers
        ));
    }

    // Submission phase: `submitters` threads, plus this thread closing the pool part-way.
    let submitted = AtomicUsize::new(0);
    let close_requested = AtomicBool::new(false);
    let anomalies = Mutex::new(Vec::<String>::new());
    thread::scope(|scope| {
        for k in 0..s.submitters {
            let (pool, table, submitted, close_requested, anomalies) =
                (&pool, &table, &submitted, &close_requested, &anomalies);
            scope.spawn(move || {
                for i in (k..n).step_by(s.submitters) {
                    let (kind, how) = s.jobs[i];
                    let job = make_job(i, kind, table);
                    let keep = |handle| *table.handles[i].lock().unwrap() = Some(handle);
                    // `None`: accepted; `Some(full)`: refused, the job handed back (and dropped
                    // here with the error).
                    let refused = match how {
                        Submit::Execute => pool
                            .execute(move || {
                                let _ = job();
                            })
                            .err()
                            .map(|e| e.is_full()),
                        Submit::Try => pool
                            .try_execute(move || {
                                let _ = job();
                            })
                            .err()
                            .map(|e| e.is_full()),
                        Submit::Spawn => pool.spawn(job).map(keep).err().map(|e| e.is_full()),
                        Submit::TrySpawn => {
                            pool.try_spawn(job).map(keep).err().map(|e| e.is_full())
                        }
                    };
                    let outcome = match refused {
                        None => ACCEPTED,
                        Some(full) => {
                            if full && (how.blocks() || s.capacity.is_none()) {
                                anomalies.lock().unwrap().push(format!(
                                    "job {i}: Full from {how:?}, capacity {:?}",
                                    s.capacity
                                ));
                            }
                            if !full && !close_requested.load(Ordering::SeqCst) {
                                anomalies
                                    .lock()
                                    .unwrap()
                                    .push(format!("job {i}: ShutDown before close()"));
                            }
                            table.handed_back[i].fetch_add(1, Ordering::SeqCst);
                            if full {
                                REFUSED_FULL
                            } else {
                                REFUSED_SHUT_DOWN
                            }
                        }
                    };
                    table.outcome[i].store(outcome, Ordering::SeqCst);
                    submitted.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        if let Some(at) = s.close_at {
            while submitted.load(Ordering::SeqCst) < at.min(n) {
                thread::yield_now();
            }
            close_requested.store(true, Ordering::SeqCst);
            pool.close();
            if !pool.is_closed() {
                anomalies
                    .lock()
                    .unwrap()
                    .push("is_closed() false after close()".into());
            }
        }
    });
    let anomalies = anomalies.into_inner().unwrap();
    if !anomalies.is_empty() {
        return Err(anomalies.join("; "));
    }
    if s.delay_us > 0 {
        thread::sleep(Duration::from_micros(u64::from(s.delay_us)));
    }

    // Ending.
    let accepted = (0..n)
        .filter(|&i| table.outcome[i].load(Ordering::SeqCst) == ACCEPTED)
        .count() as u64;
    let mut report: Option<ShutdownReport> = None;
    // Jobs `shutdown_now` handed back that were dropped un-run (every other one).
    let mut discarded = 0;
    match s.ending {
        Ending::Shutdown => report = Some(pool.shutdown().map_err(|e| format!("shutdown: {e}"))?),
        Ending::ShutdownNow => {
            let (r, unrun) = pool
                .shutdown_now()
                .map_err(|e| format!("shutdown_now: {e}"))?;
            for (k, job) in unrun.into_iter().enumerate() {
                if k % 2 == 0 {
                    job(); // on this (non-worker) thread: only marks `returned`
                } else {
                    drop(job); // a spawned one's handle must then say `Cancelled`
                    discarded += 1;
                }
            }
            report = Some(r);
        }
        Ending::ShutdownTimeout(ms) => {
            let r = pool
                .shutdown_timeout(Duration::from_millis(u64::from(ms)))
                .map_err(|e| format!("shutdown_timeout: {e}"))?;
            let settled = r.completed + r.panicked + r.still_running as u64 + r.still_queued as u64;
            if settled != accepted {
                return Err(format!(
                    "shutdown_timeout report {r:?} accounts for {settled} jobs, {accepted} accepted"
                ));
            }
            if r.threads_joined == 0 {
                // Timed out: the detached workers finish on their own; wait for them.
                let deadline = Instant::now() + CASE_DEADLINE / 2;
                while stops.load(Ordering::SeqCst) < s.workers {
                    if Instant::now() > deadline {
                        return Err(format!("detached workers did not finish after {r:?}"));
                    }
                    thread::sleep(Duration::from_micros(100));
                }
            } else {
                report = Some(r);
            }
        }
        Ending::Drop => drop(pool),
        Ending::WaitIdle => {
            pool.wait_idle().map_err(|e| format!("wait_idle: {e}"))?;
            let (queued, active) = (pool.queued(), pool.active());
            if (queued, active) != (0, 0) {
                return Err(format!("after wait_idle: queued {queued}, active {active}"));
            }
            let live = (pool.completed(), pool.panicked());
            let r = pool.shutdown().map_err(|e| format!("shutdown: {e}"))?;
            if (r.completed, r.panicked) != live {
                return Err(format!(
                    "counters moved after wait_idle: {live:?} then {r:?}"
                ));
            }
            report = Some(r);
        }
    }

    // Hooks: every worker started and stopped exactly once.
    let (started, stopped) = (starts.load(Ordering::SeqCst), stops.load(Ordering::SeqCst));
    if (started, stopped) != (s.workers, s.workers) {
        return Err(format!(
            "{started} workers started, {stopped} stopped, {} built",
            s.workers
        ));
    }

    // The slot table.
    let (mut ran_ok, mut ran_panicked, mut found_discarded) = (0u64, 0u64, 0);
    let handles_deadline = Instant::now() + CASE_DEADLINE / 4;
    for (i, &(kind, _)) in s.jobs.iter().enumerate() {
        let runs = table.runs[i].load(Ordering::SeqCst);
        let returned = table.returned[i].load(Ordering::SeqCst);
        let handed_back = table.handed_back[i].load(Ordering::SeqCst);
        let drops = table.drops[i].load(Ordering::SeqCst);
        let outcome = table.outcome[i].load(Ordering::SeqCst);
        let slot = format!(
            "job {i} ({kind:?}): outcome {outcome}, runs {runs}, returned {returned}, handed back {handed_back}, drops {drops}"
        );
        if drops != 1 {
            return Err(format!(
                "{slot}: its closure must be destroyed exactly once"
            ));
        }
        let fine = match outcome {
            ACCEPTED if s.ending == Ending::ShutdownNow => {
                if (runs, returned, handed_back) == (0, 0, 0) {
                    found_discarded += 1;
                }
                (runs, returned, handed_back) == (1, 0, 0)
                    || (runs, returned, handed_back) == (0, 1, 0)
                    || (runs, returned, handed_back) == (0, 0, 0)
            }
            ACCEPTED => (runs, returned, handed_back) == (1, 0, 0),
            REFUSED_SHUT_DOWN | REFUSED_FULL => (runs, returned, handed_back) == (0, 0, 1),
            _ => false,
        };
        if !fine {
            return Err(format!("{slot}: broken promise (ending {:?})", s.ending));
        }
        if let Err(msg) = check_handle(i, kind, &table, runs, returned, handles_deadline) {
            return Err(format!("{slot}: {msg}"));
        }
        if runs == 1 {
            if kind == Kind::Panic {
                ran_panicked += 1;
            } else {
                ran_ok += 1;
            }
        }
    }
    if found_discarded != discarded {
        return Err(format!(
            "{discarded} handed-back jobs dropped, but {found_discarded} accepted jobs neither ran nor came back"
        ));
    }
    if let Some(r) = report {
        if (r.completed, r.panicked) != (ran_ok, ran_panicked) {
            return Err(format!(
                "report {r:?}, but {ran_ok} jobs completed and {ran_panicked} panicked"
            ));
        }
        if (r.still_running, r.still_queued, r.threads_joined) != (0, 0, s.workers) {
            return Err(format!(
                "report {r:?} after a full shutdown of {} workers",
                s.workers
            ));
        }
    }
    Ok(())
}

/// Job `i`'s handle, if it was spawned and accepted, must be finished by now (the job ran, was run
/// by the test after `shutdown_now`, or was dropped) and resolve exactly once: to `value(i)` if it
/// returned, to `Panicked` with its own payload if it panicked on a worker, to `Cancelled` if it
/// was dropped un-run. The join is bounded by `deadline`.
fn check_handle(
    i: usize,
    kind: Kind,
    table: &Table,
    runs: u32,
    returned: u32,
    deadline: Instant,
) -> Result<(), String> {
    let Some(handle) = table.handles[i].lock().unwrap().take() else {
        return Ok(());
    };
    if !handle.is_finished() {
        return Err("its handle is not finished after the ending".into());
    }
    let outcome = match handle.join_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(v) => Ok(v),
        Err(JoinTimeoutError::Failed(e)) => Err(e),
        Err(JoinTimeoutError::TimedOut(_)) => return Err("join_timeout timed out".into()),
    };
    let fine = match (&outcome, runs, returned) {
        (Ok(v), 1, 0) if kind != Kind::Panic => *v == value(i),
        (Ok(v), 0, 1) => *v == value(i),
        (Err(JoinError::Panicked(p)), 1, 0) if kind == Kind::Panic => {
            panic_text(&**p) == format!("deliberate panic from job {i}")
        }
        (Err(JoinError::Cancelled), 0, 0) => true,
        _ => false,
    };
    if fine {
        Ok(())
    } else {
        Err(format!("its handle resolved to {outcome:?}"))
    }
}

/// The message of a panic payload, when it is a string.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string payload>".to_owned())
}

/// Runs the scenario on its own thread; a case that overruns [`CASE_DEADLINE`] fails as a hang.
fn run_bounded(s: &Scenario) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let owned = s.clone();
    thread::Builder::new()
        .name("prop-scenario".into())
        .spawn(move || {
            let result =
                std::panic::catch_unwind(|| run_scenario(&owned)).unwrap_or_else(|payload| {
                    Err(format!(
                        "the scenario itself panicked: {}",
                        panic_text(&*payload)
                    ))
                });
            let _ = tx.send(result);
        })
        .map_err(|e| format!("spawn: {e}"))?;
    match rx.recv_timeout(CASE_DEADLINE) {
        Ok(result) => result,
        Err(_) => Err(format!(
            "hang: the scenario did not finish within {CASE_DEADLINE:?}"
        )),
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // `PROPTEST_CASES` overrides this (proptest reads it on top of any config).
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        // Shrinking a hang costs a deadline per step; cap the total.
        max_shrink_time: 120_000,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Accepted ⇒ runs exactly once (or, with `shutdown_now`, handed back once and never run);
    /// refused ⇒ handed back, never run; counters and hooks agree; nothing hangs.
    #[test_log::test]
    fn every_accepted_job_runs_exactly_once(s in scenario()) {
        for run in 1..=RUNS_PER_CASE {
            if let Err(msg) = run_bounded(&s) {
                return Err(TestCaseError::fail(format!("run {run} of {RUNS_PER_CASE}: {msg}")));
            }
        }
    }
}
