#![cfg(not(loom))]
//! Model-based check of the thread pool against a sequential model (quickcheck).
//!
//! quickcheck generates a *program*: a random sequence of pool operations (`execute`,
//! `try_execute`, pause/resume of every worker behind a gate, `wait_idle`, `close`, observe the
//! counters) followed by an ending (`shutdown`, `shutdown_now` or drop). The program is applied to
//! the real pool and, step by step, to a tiny sequential model of what the pool must do; every
//! result the model can predict exactly must agree (which submissions are accepted or refused and
//! why, `queued`/`active`/`completed`/`panicked` at the points where the pool is provably quiet,
//! what the shutdown report says, which jobs ran). Gating all workers makes a bounded queue's
//! `Full` answers and the counters deterministic, so the model can be exact there. quickcheck is
//! used for this independent check because an operation sequence is just a `Vec` of an
//! `Arbitrary` type: generation and shrinking (drop operations, simplify them) come for free and
//! stay independent of the proptest scenario in `pool_props.rs`, which explores the concurrent
//! submission/shutdown races that the model deliberately keeps out. Every program runs on its own
//! thread under a deadline, so a hang fails the test. Set `QUICKCHECK_TESTS` for more programs (CI
//! uses 1000); the local default is small.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use poolserve::{JobHandle, JoinTimeoutError, ThreadPool};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

/// A program that has not finished after this long counts as a hang.
const PROGRAM_DEADLINE: Duration = Duration::from_secs(10);
/// How long a gate (or a wait for workers to reach it) may take before it counts as broken.
const GATE_PATIENCE: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Plain,
    Panic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// `execute` (turned into an expected-`Full` `try_execute` when it would block forever: all
    /// workers gated and the bounded queue full).
    Execute(Kind),
    TryExecute(Kind),
    /// `spawn` (or `try_spawn`, as for `Execute`) of a job that returns its op index; the handle
    /// is joined at the end and must resolve to exactly what happened to the job.
    Spawn(Kind),
    /// Occupy every worker with a gate job and wait until all of them are inside it.
    Pause,
    /// Open the current gate.
    Resume,
    WaitIdle,
    Close,
    /// Compare the live counters with the model.
    Observe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Shutdown,
    /// `shutdown_now`, then the handed-back jobs are run by the test.
    ShutdownNow,
    /// `shutdown_now`, then the handed-back jobs are dropped (their handles say cancelled).
    ShutdownNowDropping,
    Drop,
}

#[derive(Clone, Debug)]
struct Program {
    workers: usize,
    capacity: Option<usize>,
    ops: Vec<Op>,
    end: End,
}

impl Arbitrary for Kind {
    fn arbitrary(g: &mut Gen) -> Self {
        *g.choose(&[Kind::Plain, Kind::Plain, Kind::Panic])
            .expect("non-empty")
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        match self {
            Kind::Panic => Box::new(std::iter::once(Kind::Plain)),
            Kind::Plain => Box::new(std::iter::empty()),
        }
    }
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 16 {
            0..=2 => Op::Execute(Kind::arbitrary(g)),
            3 | 4 => Op::Spawn(Kind::arbitrary(g)),
            5..=8 => Op::TryExecute(Kind::arbitrary(g)),
            9 | 10 => Op::Pause,
            11 | 12 => Op::Resume,
            13 => Op::WaitIdle,
            14 => Op::Close,
            _ => Op::Observe,
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        match *self {
            Op::Execute(k) => Box::new(k.shrink().map(Op::Execute)),
            Op::Spawn(k) => {
                Box::new(std::iter::once(Op::Execute(k)).chain(k.shrink().map(Op::Spawn)))
            }
            Op::TryExecute(k) => {
                Box::new(std::iter::once(Op::Execute(k)).chain(k.shrink().map(Op::TryExecute)))
            }
            _ => Box::new(std::iter::empty()),
        }
    }
}

impl Arbitrary for End {
    fn arbitrary(g: &mut Gen) -> Self {
        *g.choose(&[
            End::Shutdown,
            End::ShutdownNow,
            End::ShutdownNowDropping,
            End::Drop,
        ])
        .expect("non-empty")
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        match self {
            End::Shutdown => Box::new(std::iter::empty()),
            End::ShutdownNowDropping => Box::new(std::iter::once(End::ShutdownNow)),
            _ => Box::new(std::iter::once(End::Shutdown)),
        }
    }
}

impl Arbitrary for Program {
    fn arbitrary(g: &mut Gen) -> Self {
        let workers = 1 + usize::from(u8::arbitrary(g) % 4);
        let capacity = if bool::arbitrary(g) {
            None
        } else {
            Some(1 + usize::from(u8::arbitrary(g) % 4))
        };
        let len = usize::arbitrary(g) % (g.size().min(40) + 1);
        let ops = (0..len).map(|_| Op::arbitrary(g)).collect();
        Program {
            workers,
            capacity,
            ops,
            end: End::arbitrary(g),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let mut simpler = Vec::new();
        if self.workers > 1 {
            simpler.push(Program {
                workers: 1,
                ..self.clone()
            });
            simpler.push(Program {
                workers: self.workers - 1,
                ..self.clone()
            });
        }
        if let Some(c) = self.capacity {
            simpler.push(Program {
                capacity: None,
                ..self.clone()
            });
            if c > 1 {
                simpler.push(Program {
                    capacity: Some(c - 1),
                    ..self.clone()
                });
            }
        }
        let this = self.clone();
        let ends = self.end.shrink().map({
            let this = this.clone();
            move |end| Program {
                end,
                ..this.clone()
            }
        });
        let ops = self.ops.shrink().map(move |ops| Program {
            ops,
            ..this.clone()
        });
        Box::new(simpler.into_iter().chain(ends).chain(ops))
    }
}

thread_local! {
    /// Set by the pool's start hook: is this thread one of the pool's workers?
    static ON_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Per-job slots (one per operation index; gate jobs are not in it).
struct Slots {
    runs: Vec<AtomicU32>,
    returned: Vec<AtomicU32>,
    drops: Vec<AtomicU32>,
}

struct Token {
    i: usize,
    slots: Arc<Slots>,
}

impl Drop for Token {
    fn drop(&mut self) {
        self.slots.drops[self.i].fetch_add(1, Ordering::SeqCst);
    }
}

fn job(i: usize, kind: Kind, slots: &Arc<Slots>) -> impl FnOnce() + Send + 'static {
    let token = Token {
        i,
        slots: Arc::clone(slots),
    };
    move || {
        let token = token;
        if ON_WORKER.with(Cell::get) {
            token.slots.runs[token.i].fetch_add(1, Ordering::SeqCst);
            if kind == Kind::Panic {
                panic!("deliberate panic from op {}", token.i);
            }
        } else {
            token.slots.returned[token.i].fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Like [`job`], for `spawn`: the job returns its op index.
fn spawn_job(i: usize, kind: Kind, slots: &Arc<Slots>) -> impl FnOnce() -> usize + Send + 'static {
    let run = job(i, kind, slots);
    move || {
        run();
        i
    }
}

/// Every worker blocks in one of these until it opens (or, if the test is broken, a timeout).
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    entered: AtomicUsize,
    timed_out: AtomicUsize,
}

impl Gate {
    fn job(self: &Arc<Self>) -> impl FnOnce() + Send + 'static {
        let gate = Arc::clone(self);
        move || {
            gate.entered.fetch_add(1, Ordering::SeqCst);
            let open = gate.open.lock().unwrap();
            let (_open, waited) = gate
                .opened
                .wait_timeout_while(open, GATE_PATIENCE, |open| !*open)
                .unwrap();
            if waited.timed_out() {
                gate.timed_out.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// The sequential model: what the pool must have done, as far as it is predictable.
#[derive(Default)]
struct Model {
    closed: bool,
    /// `Some` while every worker sits in this gate.
    paused: Option<Arc<Gate>>,
    /// Exact queue length while paused.
    queued: usize,
    /// Accepted jobs (gate jobs included) that will complete / panic, in total.
    completed: u64,
    panicked: u64,
    /// Accepted jobs not yet known to have finished (bounds the queue while not paused).
    unsettled: usize,
    /// Every gate ever used (checked for timeouts at the end).
    gates: Vec<Arc<Gate>>,
    accepted: Vec<(usize, Kind)>,
    refused: Vec<usize>,
}

fn expect(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what()) }
}

fn resume(model: &mut Model) {
    if let Some(gate) = model.paused.take() {
        gate.release();
        model.queued = 0;
    }
}

fn run_program(p: &Program) -> Result<(), String> {
    let n = p.ops.len();
    let zeros = || (0..n).map(|_| AtomicU32::new(0)).collect();
    let slots = Arc::new(Slots {
        runs: zeros(),
        returned: zeros(),
        drops: zeros(),
    });
    let starts = Arc::new(AtomicUsize::new(0));
    let stops = Arc::new(AtomicUsize::new(0));
    let pool = {
        let (starts, stops) = (Arc::clone(&starts), Arc::clone(&stops));
        ThreadPool::builder()
            .threads(p.workers)
            .queue_capacity(p.capacity)
            .on_thread_start(move || {
                ON_WORKER.with(|w| w.set(true));
                starts.fetch_add(1, Ordering::SeqCst);
            })
            .on_thread_stop(move || {
                stops.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .map_err(|e| format!("build: {e}"))?
    };
    let mut m = Model::default();
    let mut handles: Vec<(usize, Kind, JobHandle<usize>)> = Vec::new();

    for (i, &op) in p.ops.iter().enumerate() {
        let at = |what: String| format!("op {i} ({op:?}): {what}");
        match op {
            Op::Execute(kind) | Op::TryExecute(kind) | Op::Spawn(kind) => {
                let full_now = m.paused.is_some() && p.capacity.is_some_and(|c| m.queued >= c);
                // A blocking execute on a gated, full queue would wait forever: ask without blocking.
                let blocking = matches!(op, Op::Execute(_) | Op::Spawn(_)) && !full_now;
                // Ok: the handle, for a spawn; Err: (shut down, full), the job dropped with it.
                let result: Result<Option<JobHandle<usize>>, (bool, bool)> = match op {
                    Op::Spawn(_) => if blocking {
                        pool.spawn(spawn_job(i, kind, &slots))
                    } else {
                        pool.try_spawn(spawn_job(i, kind, &slots))
                    }
                    .map(Some)
                    .map_err(|e| (e.is_shut_down(), e.is_full())),
                    _ => if blocking {
                        pool.execute(job(i, kind, &slots))
                    } else {
                        pool.try_execute(job(i, kind, &slots))
                    }
                    .map(|()| None)
                    .map_err(|e| (e.is_shut_down(), e.is_full())),
                };
                match result {
                    Ok(handle) => {
                        handles.extend(handle.map(|h| (i, kind, h)));
                        expect(!m.closed, || at("accepted after close()".into()))?;
                        expect(!full_now, || {
                            at(format!(
                                "accepted with {} queued, capacity {:?}",
                                m.queued, p.capacity
                            ))
                        })?;
                        m.accepted.push((i, kind));
                        m.unsettled += 1;
                        if m.paused.is_some() {
                            m.queued += 1;
                        }
                        match kind {
                            Kind::Plain => m.completed += 1,
                            Kind::Panic => m.panicked += 1,
                        }
                    }
                    Err((shut_down, full)) => {
                        let err = format!("refused (shut down: {shut_down}, full: {full})");
                        if m.closed {
                            expect(shut_down, || at(format!("{err} from a closed pool")))?;
                        } else {
                            // Full is exact while paused; otherwise possible only if enough jobs are
                            // still unfinished to fill the queue.
                            let full_possible = !blocking
                                && p.capacity.is_some_and(|c| {
                                    full_now || (m.paused.is_none() && m.unsettled >= c)
                                });
                            expect(full && full_possible, || {
                                at(format!(
                                    "{err}, model: {} unsettled, {} queued, paused {}",
                                    m.unsettled,
                                    m.queued,
                                    m.paused.is_some()
                                ))
                            })?;
                        }
                        m.refused.push(i);
                    }
                }
            }
            Op::Pause => {
                if m.closed || m.paused.is_some() {
                    continue;
                }
                let gate = Arc::new(Gate::default());
                for _ in 0..p.workers {
                    pool.execute(gate.job())
                        .map_err(|e| at(format!("gate job refused: {e:?}")))?;
                }
                let deadline = Instant::now() + GATE_PATIENCE;
                while gate.entered.load(Ordering::SeqCst) < p.workers {
                    expect(Instant::now() < deadline, || {
                        at(format!(
                            "only {} of {} workers reached the gate",
                            gate.entered.load(Ordering::SeqCst),
                            p.workers
                        ))
                    })?;
                    thread::sleep(Duration::from_micros(50));
                }
                // Every earlier job was taken before the gates (FIFO) and has finished (every
                // worker is in a gate now): the counters are exact.
                let got = (
                    pool.queued(),
                    pool.active(),
                    pool.completed(),
                    pool.panicked(),
                );
                let want = (0, p.workers, m.completed, m.panicked);
                expect(got == want, || {
                    at(format!(
                        "(queued, active, completed, panicked) = {got:?}, model {want:?}"
                    ))
                })?;
                m.completed += p.workers as u64;
                m.unsettled = p.workers;
                m.queued = 0;
                m.gates.push(Arc::clone(&gate));
                m.paused = Some(gate);
            }
            Op::Resume => resume(&mut m),
            Op::WaitIdle => {
                resume(&mut m);
                pool.wait_idle()
                    .map_err(|e| at(format!("wait_idle: {e}")))?;
                let got = (
                    pool.queued(),
                    pool.active(),
                    pool.completed(),
                    pool.panicked(),
                );
                let want = (0, 0, m.completed, m.panicked);
                expect(got == want, || {
                    at(format!(
                        "(queued, active, completed, panicked) = {got:?}, model {want:?}"
                    ))
                })?;
                for &(j, _) in &m.accepted {
                    let runs = slots.runs[j].load(Ordering::SeqCst);
                    expect(runs == 1, || {
                        at(format!(
                            "accepted job of op {j} ran {runs} times before idle"
                        ))
                    })?;
                }
                m.unsettled = 0;
            }
            Op::Close => {
                pool.close();
                m.closed = true;
                expect(pool.is_closed(), || {
                    at("is_closed() false after close()".into())
                })?;
            }
            Op::Observe => {
                expect(pool.is_closed() == m.closed, || {
                    at(format!("is_closed() = {}", pool.is_closed()))
                })?;
                expect(pool.threads() == p.workers, || {
                    at(format!("threads() = {}", pool.threads()))
                })?;
                if m.paused.is_some() {
                    let got = (pool.queued(), pool.active());
                    let want = (m.queued, p.workers);
                    expect(got == want, || {
                        at(format!(
                            "(queued, active) = {got:?} while paused, model {want:?}"
                        ))
                    })?;
                }
                let (done, total) = (pool.completed() + pool.panicked(), m.completed + m.panicked);
                expect(done <= total, || {
                    at(format!("{done} jobs finished, only {total} accepted"))
                })?;
            }
        }
    }

    resume(&mut m);
    let mut returned_plain = 0;
    let mut returned_panic = 0;
    match p.end {
        End::Shutdown => {
            let r = pool.shutdown().map_err(|e| format!("shutdown: {e}"))?;
            let want = (m.completed, m.panicked, 0, 0, p.workers);
            let got = (
                r.completed,
                r.panicked,
                r.still_running,
                r.still_queued,
                r.threads_joined,
            );
            expect(got == want, || {
                format!("shutdown report {r:?}, model {want:?}")
            })?;
        }
        End::ShutdownNow | End::ShutdownNowDropping => {
            let (r, unrun) = pool
                .shutdown_now()
                .map_err(|e| format!("shutdown_now: {e}"))?;
            if p.end == End::ShutdownNow {
                for job in unrun {
                    job();
                }
            } else {
                drop(unrun);
            }
            // Every worker is joined: a job that did not run on one was handed back.
            for &(j, kind) in &m.accepted {
                if slots.runs[j].load(Ordering::SeqCst) == 0 {
                    match kind {
                        Kind::Plain => returned_plain += 1,
                        Kind::Panic => returned_panic += 1,
                    }
                }
            }
            let want = (
                m.completed - returned_plain,
                m.panicked - returned_panic,
                0,
                0,
                p.workers,
            );
            let got = (
                r.completed,
                r.panicked,
                r.still_running,
                r.still_queued,
                r.threads_joined,
            );
            expect(got == want, || {
                format!("shutdown_now report {r:?}, model {want:?}")
            })?;
        }
        End::Drop => drop(pool),
    }

    let hooks = (starts.load(Ordering::SeqCst), stops.load(Ordering::SeqCst));
    expect(hooks == (p.workers, p.workers), || {
        format!("(started, stopped) = {hooks:?}, {} workers", p.workers)
    })?;
    for gate in &m.gates {
        let late = gate.timed_out.load(Ordering::SeqCst);
        expect(late == 0, || {
            format!("{late} gate jobs were never released")
        })?;
    }
    for &(j, _) in &m.accepted {
        let (runs, returned) = (
            slots.runs[j].load(Ordering::SeqCst),
            slots.returned[j].load(Ordering::SeqCst),
        );
        let fine = (runs, returned) == (1, 0)
            || (p.end == End::ShutdownNow && (runs, returned) == (0, 1))
            || (p.end == End::ShutdownNowDropping && (runs, returned) == (0, 0));
        expect(fine, || {
            format!("accepted job of op {j}: ran {runs}, handed back by shutdown_now {returned}")
        })?;
    }
    // Every handle resolves, exactly to what happened to its job.
    for (j, kind, handle) in handles {
        let ran = slots.runs[j].load(Ordering::SeqCst) == 1;
        let handed_back_and_run = !ran && p.end == End::ShutdownNow;
        match handle.join_timeout(GATE_PATIENCE) {
            Ok(v) => expect(
                v == j && ((ran && kind == Kind::Plain) || handed_back_and_run),
                || format!("handle of op {j} gave {v} (ran on a worker: {ran}, {kind:?})"),
            )?,
            Err(JoinTimeoutError::Failed(e)) if e.is_cancelled() => {
                expect(!ran && p.end == End::ShutdownNowDropping, || {
                    format!("handle of op {j} says cancelled (ran on a worker: {ran})")
                })?;
            }
            Err(JoinTimeoutError::Failed(e)) => {
                let text = e
                    .try_into_panic()
                    .map(|p| panic_text(&*p))
                    .unwrap_or_default();
                expect(
                    ran && kind == Kind::Panic
                        && text.contains(&format!("deliberate panic from op {j}")),
                    || {
                        format!(
                            "handle of op {j} says panicked with {text:?} (ran: {ran}, {kind:?})"
                        )
                    },
                )?;
            }
            Err(JoinTimeoutError::TimedOut(_)) => {
                return Err(format!(
                    "handle of op {j} did not resolve in {GATE_PATIENCE:?}"
                ));
            }
        }
    }
    for &j in &m.refused {
        let (runs, returned) = (
            slots.runs[j].load(Ordering::SeqCst),
            slots.returned[j].load(Ordering::SeqCst),
        );
        expect((runs, returned) == (0, 0), || {
            format!("refused job of op {j}: ran {runs}, returned {returned}")
        })?;
    }
    for (j, drops) in slots.drops.iter().enumerate() {
        let drops = drops.load(Ordering::SeqCst);
        let submitted = matches!(p.ops[j], Op::Execute(_) | Op::TryExecute(_) | Op::Spawn(_));
        expect(drops == u32::from(submitted), || {
            format!("job of op {j} destroyed {drops} times")
        })?;
    }
    Ok(())
}

/// The message of a panic payload, when it is a string.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string payload>".to_owned())
}

/// Runs the program on its own thread; one that overruns [`PROGRAM_DEADLINE`] fails as a hang.
fn run_bounded(p: &Program) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let owned = p.clone();
    thread::spawn(move || {
        let result = std::panic::catch_unwind(|| run_program(&owned)).unwrap_or_else(|payload| {
            Err(format!(
                "the program itself panicked: {}",
                panic_text(&*payload)
            ))
        });
        let _ = tx.send(result);
    });
    match rx.recv_timeout(PROGRAM_DEADLINE) {
        Ok(result) => result,
        Err(_) => Err(format!(
            "hang: the program did not finish within {PROGRAM_DEADLINE:?}"
        )),
    }
}

fn pool_agrees_with_model(p: Program) -> TestResult {
    match run_bounded(&p) {
        Ok(()) => TestResult::passed(),
        Err(msg) => TestResult::error(msg),
    }
}

/// Programs to run: `QUICKCHECK_TESTS` (CI: 1000), else a small local default.
fn tests() -> u64 {
    std::env::var("QUICKCHECK_TESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}

#[test_log::test]
fn pool_agrees_with_sequential_model() {
    let n = tests();
    QuickCheck::new()
        .tests(n)
        .max_tests(n.saturating_mul(10))
        .quickcheck(pool_agrees_with_model as fn(Program) -> TestResult);
}
