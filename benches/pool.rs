//! Thread-pool benchmarks: poolserve's [`ThreadPool`] against its peers, all in the same run.
//!
//! Peers: the `threadpool` crate, `rayon::ThreadPool::spawn`, a minimal pool on a
//! `crossbeam-channel` (workers loop on a cloned `Receiver`) and the Rust Book's design (workers
//! share an `Arc<Mutex<mpsc::Receiver<Job>>>`). The last two are written below, in this file.
//!
//! Cases (every pool is built once per case, outside the timed loop; each iteration submits a batch
//! and waits on a count-down latch, so neither pool start-up nor shutdown is timed):
//!
//! * `tiny/{w}w-{s}s` — `TINY_JOBS` jobs that each decrement an atomic, from `s` submitting
//!   threads (the jobs are split evenly), on `w` workers.
//! * `headline-1M/2w-1s` — the headline: one million such jobs, 2 workers, 1 submitter.
//! * `latency/{w}w` — one job on an idle pool (workers parked): the time from just before the
//!   submit call until the job's first instruction (timed with `iter_custom`; the pause that lets
//!   the workers park is not timed).
//! * `mixed/{w}w` — `MIXED_JOBS` jobs of busy work, 9 of every 10 about 1 µs, the 10th about 50 µs.
//! * `spawn-join/2w` — `SPAWN_JOIN_JOBS` jobs that each return a number, every result collected
//!   by the submitting thread: poolserve's `spawn` + `JobHandle::join`, `std::thread::spawn` +
//!   `join` (a thread per job), rayon's `spawn` + an `mpsc` channel, and `threadpool` + `mpsc`.
//!   Criterion only (not in the interleaved rounds, nor in `pool_report.py`'s table).
//!
//! Run: `cargo bench --bench pool -- --warm-up-time 1 --measurement-time 3`, then
//! `python3 benches/pool_report.py` for the table of medians and ratios. After the criterion
//! groups the bench also runs the same cases in interleaved rounds (every pool once per case per
//! round; `POOL_BENCH_ROUNDS`, default 15, 0 skips) and prints that table itself: on a shared
//! machine its ratios are the ones to quote, because load drift hits every pool alike.
//! `POOL_BENCH_CRITERION=0` runs the interleaved rounds alone, and `POOL_BENCH_CASES=tiny/2w`
//! only the interleaved cases whose name contains that text; `POOL_BENCH_RAW=1` also prints every
//! interleaved sample in the order it was taken. The latency and headline
//! groups set their own (shorter) timing, because one of their iterations costs far more wall time
//! than it reports (latency) or than criterion's default budget allows (headline).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode};

/// Jobs per iteration in the `tiny` group.
const TINY_JOBS: usize = 200_000;
/// Jobs per iteration in the `headline-1M` group.
const HEADLINE_JOBS: usize = 1_000_000;
/// Jobs per iteration in the `mixed` group.
const MIXED_JOBS: usize = 4_000;
/// Jobs per iteration in the `spawn-join` group.
const SPAWN_JOIN_JOBS: usize = 256;
/// How long the latency case lets the pool sit idle before each submit, so its workers park.
const IDLE_PAUSE: Duration = Duration::from_millis(1);
/// Samples (each one submit on an idle pool) per pool in the latency case.
const LATENCY_SAMPLES: usize = 500;

// ---------------------------------------------------------------------------------------------
// The pools under test, behind one small trait.

/// What the benchmark needs from a pool: submit a `'static` job from any thread.
trait BenchPool: Sync {
    fn spawn<F: FnOnce() + Send + 'static>(&self, job: F);
}

impl BenchPool for poolserve::ThreadPool {
    fn spawn<F: FnOnce() + Send + 'static>(&self, job: F) {
        if self.execute(job).is_err() {
            panic!("poolserve pool refused a job while running");
        }
    }
}

impl BenchPool for threadpool::ThreadPool {
    fn spawn<F: FnOnce() + Send + 'static>(&self, job: F) {
        self.execute(job);
    }
}

impl BenchPool for rayon::ThreadPool {
    fn spawn<F: FnOnce() + Send + 'static>(&self, job: F) {
        rayon::ThreadPool::spawn(self, job);
    }
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A pool on a crossbeam channel: every worker blocks in `recv` on its own clone of the receiver.
struct ChannelPool {
    tx: Option<crossbeam_channel::Sender<Job>>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl ChannelPool {
    fn new(threads: usize) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let workers = (0..threads)
            .map(|_| {
                let rx = rx.clone();
                thread::spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })
            })
            .collect();
        ChannelPool {
            tx: Some(tx),
            workers,
        }
    }
}

impl BenchPool for ChannelPool {
    fn spawn<F: FnOnce() + Send + 'static>(&self, job: F) {
        let tx = self.tx.as_ref().expect("pool is running");
        tx.send(Box::new(job)).expect("workers are alive");
    }
}

impl Drop for ChannelPool {
    fn drop(&mut self) {
        drop(self.tx.take()); // disconnects: every worker's `recv` fails once the queue is empty
        for w in self.workers.drain(..) {
            w.join().expect("worker exited cleanly");
        }
    }
}

/// The Rust Book's design: one `mpsc` receiver behind a mutex that every worker locks to `recv`.
struct BookPool {
    tx: Option<mpsc::Sender<Job>>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl BookPool {
    fn new(threads: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&rx);
                thread::spawn(move || {
                    loop {
                        // The guard is a temporary of this statement: released before the job runs.
                        let next = rx.lock().expect("no job runs under the lock").recv();
                        match next {
                            Ok(job) => job(),
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        BookPool {
            tx: Some(tx),
            workers,
        }
    }
}

impl BenchPool for BookPool {
    fn spawn<F: FnOnce() + Send + 'static>(&self, job: F) {
        let tx = self.tx.as_ref().expect("pool is running");
        tx.send(Box::new(job)).expect("workers are alive");
    }
}

impl Drop for BookPool {
    fn drop(&mut self) {
        drop(self.tx.take());
        for w in self.workers.drain(..) {
            w.join().expect("worker exited cleanly");
        }
    }
}

/// Runs `case` once per pool kind, each on a freshly built pool of `workers` threads that is
/// dropped (and joined) before the next kind is built, so no two pools compete for the CPUs.
fn for_each_pool(workers: usize, mut case: impl FnMut(&str, &dyn Fn(&mut dyn FnMut(&dyn Runner)))) {
    // The indirection through `Runner` keeps `case` free of generics (closures cannot be generic).
    case("poolserve", &|f| {
        f(&Typed(poolserve::ThreadPool::new(workers)))
    });
    case("threadpool", &|f| {
        f(&Typed(threadpool::ThreadPool::new(workers)))
    });
    case("rayon", &|f| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .build()
            .expect("rayon pool builds");
        f(&Typed(pool))
    });
    case("crossbeam", &|f| f(&Typed(ChannelPool::new(workers))));
    case("book", &|f| f(&Typed(BookPool::new(workers))));
}

/// A pool seen through object-safe operations: the three measured workloads.
trait Runner {
    /// Submits `jobs` tiny jobs split over `submitters` threads, then waits until all have run.
    fn tiny_batch(&self, latch: &'static Latch, jobs: usize, submitters: usize);
    /// Submits the mixed workload from this thread, then waits until all have run.
    fn mixed_batch(&self, latch: &'static Latch, jobs: usize);
    /// Submits one job to the (idle) pool and returns how long it took to start.
    fn start_latency(&self, probe: &'static LatencyProbe) -> Duration;
}

struct Typed<P>(P);

impl<P: BenchPool> Runner for Typed<P> {
    fn tiny_batch(&self, latch: &'static Latch, jobs: usize, submitters: usize) {
        let pool = &self.0;
        latch.arm(jobs);
        if submitters == 1 {
            submit_tiny(pool, latch, jobs);
        } else {
            let share = jobs / submitters;
            assert_eq!(share * submitters, jobs, "jobs split evenly");
            thread::scope(|s| {
                for _ in 0..submitters {
                    s.spawn(|| submit_tiny(pool, latch, share));
                }
            });
        }
        latch.wait();
    }

    fn mixed_batch(&self, latch: &'static Latch, jobs: usize) {
        latch.arm(jobs);
        for i in 0..jobs {
            let work = if i % 10 == 9 {
                Duration::from_micros(50)
            } else {
                Duration::from_micros(1)
            };
            self.0.spawn(move || {
                busy_for(work);
                latch.count_down();
            });
        }
        latch.wait();
    }

    fn start_latency(&self, probe: &'static LatencyProbe) -> Duration {
        probe.started_ns.store(0, Ordering::Relaxed);
        let submitted = probe.base.elapsed();
        self.0.spawn(move || {
            let started = probe.base.elapsed().as_nanos() as u64;
            probe.started_ns.store(started.max(1), Ordering::Release);
        });
        let started = loop {
            let ns = probe.started_ns.load(Ordering::Acquire);
            if ns != 0 {
                break ns;
            }
            thread::yield_now();
        };
        Duration::from_nanos(started).saturating_sub(submitted)
    }
}

fn submit_tiny<P: BenchPool>(pool: &P, latch: &'static Latch, jobs: usize) {
    for _ in 0..jobs {
        pool.spawn(move || latch.count_down());
    }
}

/// Spins (without sleeping) for about `d`.
fn busy_for(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        black_box(());
    }
}

// ---------------------------------------------------------------------------------------------
// Completion and latency plumbing shared by every pool (so every pool pays the same for it).

/// A count-down latch: every job decrements the atomic; the one that reaches zero wakes the
/// (blocked, so not CPU-stealing) benchmark thread.
struct Latch {
    remaining: AtomicUsize,
    done: Mutex<bool>,
    cv: Condvar,
}

impl Latch {
    fn leak() -> &'static Latch {
        Box::leak(Box::new(Latch {
            remaining: AtomicUsize::new(0),
            done: Mutex::new(false),
            cv: Condvar::new(),
        }))
    }

    fn arm(&self, n: usize) {
        *self.done.lock().expect("latch lock") = false;
        self.remaining.store(n, Ordering::Relaxed);
    }

    fn count_down(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.done.lock().expect("latch lock") = true;
            self.cv.notify_one();
        }
    }

    fn wait(&self) {
        let mut done = self.done.lock().expect("latch lock");
        while !*done {
            done = self.cv.wait(done).expect("latch lock");
        }
    }
}

/// Where a latency probe job writes the time it started (nanoseconds since `base`; 0 = not yet).
struct LatencyProbe {
    base: Instant,
    started_ns: AtomicU64,
}

// ---------------------------------------------------------------------------------------------
// The cases.

fn tiny(c: &mut Criterion) {
    let latch = Latch::leak();
    for workers in [2, 4] {
        for submitters in [1, 4] {
            let mut group = c.benchmark_group("tiny");
            group.throughput(criterion::Throughput::Elements(TINY_JOBS as u64));
            let param = format!("{workers}w-{submitters}s");
            for_each_pool(workers, |name, with_pool| {
                with_pool(&mut |pool| {
                    group.bench_function(BenchmarkId::new(name, &param), |b| {
                        b.iter(|| pool.tiny_batch(latch, TINY_JOBS, submitters))
                    });
                })
            });
            group.finish();
        }
    }
}

fn headline(c: &mut Criterion) {
    let latch = Latch::leak();
    let mut group = c.benchmark_group("headline-1M");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.throughput(criterion::Throughput::Elements(HEADLINE_JOBS as u64));
    for_each_pool(2, |name, with_pool| {
        with_pool(&mut |pool| {
            group.bench_function(BenchmarkId::new(name, "2w-1s"), |b| {
                b.iter(|| pool.tiny_batch(latch, HEADLINE_JOBS, 1))
            });
        })
    });
    group.finish();
}

fn latency(c: &mut Criterion) {
    let probe: &'static LatencyProbe = Box::leak(Box::new(LatencyProbe {
        base: Instant::now(),
        started_ns: AtomicU64::new(0),
    }));
    for workers in [2, 4] {
        let mut group = c.benchmark_group("latency");
        // One iteration reports a few µs but costs `IDLE_PAUSE` of wall time, and criterion budgets
        // by reported time: budgets this small make every sample a single submit, so the reported
        // median is the median of `LATENCY_SAMPLES` individual start latencies (~1 s per pool).
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(LATENCY_SAMPLES);
        group.warm_up_time(Duration::from_millis(1));
        group.measurement_time(Duration::from_millis(1));
        let param = format!("{workers}w");
        for_each_pool(workers, |name, with_pool| {
            with_pool(&mut |pool| {
                group.bench_function(BenchmarkId::new(name, &param), |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            thread::sleep(IDLE_PAUSE);
                            total += pool.start_latency(probe);
                        }
                        total
                    })
                });
            })
        });
        group.finish();
    }
}

fn mixed(c: &mut Criterion) {
    let latch = Latch::leak();
    for workers in [2, 4] {
        let mut group = c.benchmark_group("mixed");
        group.throughput(criterion::Throughput::Elements(MIXED_JOBS as u64));
        let param = format!("{workers}w");
        for_each_pool(workers, |name, with_pool| {
            with_pool(&mut |pool| {
                group.bench_function(BenchmarkId::new(name, &param), |b| {
                    b.iter(|| pool.mixed_batch(latch, MIXED_JOBS))
                });
            })
        });
        group.finish();
    }
}

/// Results collected per job: each way returns the sum of `i * 3 + 1` over the batch.
fn spawn_join(c: &mut Criterion) {
    let n = SPAWN_JOIN_JOBS;
    let expected: u64 = (0..n as u64).map(|i| i * 3 + 1).sum();
    let mut group = c.benchmark_group("spawn-join");
    group.throughput(criterion::Throughput::Elements(n as u64));
    let param = "2w";

    let pool = poolserve::ThreadPool::new(2);
    group.bench_function(BenchmarkId::new("poolserve", param), |b| {
        b.iter(|| {
            let handles: Vec<_> = (0..n as u64)
                .map(|i| pool.spawn(move || i * 3 + 1).expect("running"))
                .collect();
            let sum: u64 = handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .sum();
            assert_eq!(black_box(sum), expected);
        })
    });
    drop(pool);

    group.bench_function(BenchmarkId::new("std-thread", param), |b| {
        b.iter(|| {
            let handles: Vec<_> = (0..n as u64)
                .map(|i| thread::spawn(move || i * 3 + 1))
                .collect();
            let sum: u64 = handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .sum();
            assert_eq!(black_box(sum), expected);
        })
    });

    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("rayon pool builds");
    group.bench_function(BenchmarkId::new("rayon+mpsc", param), |b| {
        b.iter(|| {
            let (tx, rx) = mpsc::channel();
            for i in 0..n as u64 {
                let tx = tx.clone();
                rayon.spawn(move || tx.send(i * 3 + 1).expect("receiver alive"));
            }
            drop(tx);
            let sum: u64 = rx.iter().sum();
            assert_eq!(black_box(sum), expected);
        })
    });
    drop(rayon);

    let tp = threadpool::ThreadPool::new(2);
    group.bench_function(BenchmarkId::new("threadpool+mpsc", param), |b| {
        b.iter(|| {
            let (tx, rx) = mpsc::channel();
            for i in 0..n as u64 {
                let tx = tx.clone();
                tp.execute(move || tx.send(i * 3 + 1).expect("receiver alive"));
            }
            drop(tx);
            let sum: u64 = rx.iter().sum();
            assert_eq!(black_box(sum), expected);
        })
    });
    drop(tp);
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// Interleaved rounds: the same cases, every pool once per round, rounds repeated.

/// Pause before each pool's turn in the interleaved run, so no pool's spinning workers steal the
/// CPUs from the next one.
const SETTLE_PAUSE: Duration = Duration::from_millis(5);
/// Start-latency samples per pool per round in the interleaved run. Each is its own turn: the
/// pools take turns sample by sample, so a change in how fast this machine wakes an idle thread
/// (it moved between ~20 µs and ~180 µs within minutes here) hits every pool alike.
const LATENCY_SAMPLES_PER_ROUND: usize = 25;

/// Every pool kind with `workers` threads, all built at once (idle pools park their workers).
fn all_pools(workers: usize) -> Vec<(&'static str, Box<dyn Runner>)> {
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .expect("rayon pool builds");
    vec![
        (
            "poolserve",
            Box::new(Typed(poolserve::ThreadPool::new(workers))),
        ),
        (
            "threadpool",
            Box::new(Typed(threadpool::ThreadPool::new(workers))),
        ),
        ("rayon", Box::new(Typed(rayon))),
        ("crossbeam", Box::new(Typed(ChannelPool::new(workers)))),
        ("book", Box::new(Typed(BookPool::new(workers)))),
    ]
}

/// Criterion measures one pool after another, so a change in the shared machine's load between
/// two pools' turns moves their ratio (on the 2-core machine here, one case's ratio moved from
/// 0.9× to 1.4× between runs this way). This runs the same cases in `rounds` rounds, each round
/// timing every pool once per case, back to back, and prints the medians over the rounds and
/// poolserve's ratio to the best peer as a markdown table: drift hits every pool alike.
fn interleaved(rounds: usize) {
    let latch = Latch::leak();
    let probe: &'static LatencyProbe = Box::leak(Box::new(LatencyProbe {
        base: Instant::now(),
        started_ns: AtomicU64::new(0),
    }));
    /// A case's body: runs one batch (or samples) on a pool, returns nanoseconds per sample.
    type Sampler = Box<dyn Fn(&dyn Runner) -> Vec<f64>>;
    /// Name, workers, turns per round (each pool samples once per turn), sampler.
    type Case = (String, usize, usize, Sampler);
    /// One batch on a pool, untimed.
    type Batch = Box<dyn Fn(&dyn Runner)>;
    let timed = |f: Batch| -> Sampler {
        Box::new(move |pool| {
            let start = Instant::now();
            f(pool);
            vec![start.elapsed().as_secs_f64() * 1e9]
        })
    };
    let mut cases: Vec<Case> = vec![(
        "headline-1M/2w-1s".into(),
        2,
        1,
        timed(Box::new(move |p| p.tiny_batch(latch, HEADLINE_JOBS, 1))),
    )];
    for workers in [2, 4] {
        for submitters in [1, 4] {
            cases.push((
                format!("tiny/{workers}w-{submitters}s"),
                workers,
                1,
                timed(Box::new(move |p| {
                    p.tiny_batch(latch, TINY_JOBS, submitters)
                })),
            ));
        }
    }
    for workers in [2, 4] {
        cases.push((
            format!("latency/{workers}w"),
            workers,
            LATENCY_SAMPLES_PER_ROUND,
            // The settle pause before each turn (longer than `IDLE_PAUSE`) leaves the pool idle.
            Box::new(move |p| vec![p.start_latency(probe).as_secs_f64() * 1e9]),
        ));
    }
    for workers in [2, 4] {
        cases.push((
            format!("mixed/{workers}w"),
            workers,
            1,
            timed(Box::new(move |p| p.mixed_batch(latch, MIXED_JOBS))),
        ));
    }
    // POOL_BENCH_CASES: run only the interleaved cases whose name contains this (e.g. `tiny/2w-4s`).
    if let Ok(only) = std::env::var("POOL_BENCH_CASES") {
        cases.retain(|(name, ..)| name.contains(only.as_str()));
    }
    let pools = [(2, all_pools(2)), (4, all_pools(4))];
    let names: Vec<&str> = pools[0].1.iter().map(|(n, _)| *n).collect();
    // samples[case][pool]
    let mut samples = vec![vec![Vec::new(); names.len()]; cases.len()];
    for round in 0..rounds {
        for (ci, (_, workers, turns, run)) in cases.iter().enumerate() {
            let set = &pools
                .iter()
                .find(|(w, _)| w == workers)
                .expect("pool set")
                .1;
            for turn in 0..*turns {
                // Rotate the starting pool each turn so no pool always runs first.
                for k in 0..set.len() {
                    let pi = (k + round + turn) % set.len();
                    // Let the previous pool's workers finish spinning and park before timing.
                    thread::sleep(SETTLE_PAUSE);
                    samples[ci][pi].extend(run(&*set[pi].1));
                }
            }
        }
    }
    // POOL_BENCH_RAW=1: also print every sample, in the order taken, to see drift and modes.
    if std::env::var("POOL_BENCH_RAW").as_deref() == Ok("1") {
        for (ci, (case, ..)) in cases.iter().enumerate() {
            for (pi, name) in names.iter().enumerate() {
                let raw: Vec<String> = samples[ci][pi].iter().map(|&ns| fmt_ns(ns)).collect();
                println!("raw {case} {name}: {}", raw.join(", "));
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!("\n## Interleaved: {rounds} rounds, medians\n");
    println!(
        "| case | {} | best peer | poolserve / best | / crossbeam | / threadpool |",
        names.join(" | ")
    );
    println!("|---|{}---|---|---|---|", "---|".repeat(names.len()));
    for (ci, (case, _, _, _)) in cases.iter().enumerate() {
        let meds: Vec<f64> = samples[ci].iter_mut().map(median).collect();
        let (best_i, best) = meds
            .iter()
            .enumerate()
            .skip(1)
            .min_by(|a, b| a.1.total_cmp(b.1))
            .expect("peers");
        let of = |name: &str| meds[names.iter().position(|n| *n == name).expect("peer")];
        println!(
            "| {case} | {} | {} | {:.2}× | {:.2}× | {:.2}× |",
            meds.iter()
                .map(|&ns| fmt_ns(ns))
                .collect::<Vec<_>>()
                .join(" | "),
            names[best_i],
            meds[0] / best,
            meds[0] / of("crossbeam"),
            meds[0] / of("threadpool"),
        );
    }
}

/// A duration in nanoseconds, in a readable unit.
fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

// Written out instead of `criterion_group!`/`criterion_main!`, whose generated `pub fn` has no docs.
fn main() {
    // POOL_BENCH_ROUNDS: interleaved rounds after the criterion groups (default 15; 0 skips them).
    let rounds = std::env::var("POOL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    // POOL_BENCH_CRITERION=0 skips the criterion groups (the interleaved table alone).
    if std::env::var("POOL_BENCH_CRITERION").as_deref() != Ok("0") {
        let mut c = Criterion::default().configure_from_args();
        headline(&mut c);
        tiny(&mut c);
        latency(&mut c);
        mixed(&mut c);
        spawn_join(&mut c);
        c.final_summary();
    }
    if rounds > 0 {
        interleaved(rounds);
    }
}
