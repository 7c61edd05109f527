//! A thread pool whose shutdown protocol is model-checked with [loom], and a strict HTTP/1.1
//! static-file server built on it.
//!
//! # Guarantees, and what checks each
//!
//! | guarantee | checked by |
//! |---|---|
//! | A job accepted by [`ThreadPool::execute`] / [`try_execute`](ThreadPool::try_execute) runs exactly once (or, after [`shutdown_now`](ThreadPool::shutdown_now), is handed back un-run exactly once) | loom: `concurrent_submitters_each_job_once`, `execute_races_shutdown_job_runs_or_is_returned`, `shutdown_now_returns_exactly_the_unrun_jobs`; proptest: `every_accepted_job_runs_exactly_once`; quickcheck: `pool_agrees_with_sequential_model` |
//! | A refused job is handed back in the [`ExecuteError`], never dropped | loom: `execute_races_shutdown_job_runs_or_is_returned`, `bounded_queue_full_blocks_then_unblocks`; proptest: `every_accepted_job_runs_exactly_once`; test: `execute_after_close_hands_the_job_back` |
//! | A job submitted with [`ThreadPool::spawn`] / [`try_spawn`](ThreadPool::try_spawn) resolves its [`JobHandle`] exactly once, whatever happens to it: to the value it returned, to [`JoinError::Panicked`] with its own payload, or to [`JoinError::Cancelled`] when it is dropped un-run (after `shutdown_now`); `join` never misses the resolution, so it never hangs on a job that has ended; a refused spawn hands back the caller's own closure | loom: `spawned_job_runs_and_join_gets_its_value`, `spawned_job_panics_and_join_gets_the_payload`, `shutdown_now_cancels_a_queued_job_and_join_returns`, `join_races_completion_without_a_lost_wakeup`, each failing on its break in the catalog (`handle-*`); proptest: `every_accepted_job_runs_exactly_once` (spawn, try_spawn; fails on three of those breaks); doctest: `ThreadPool::try_spawn` |
//! | `Drop` runs every queued job and joins every worker; it never panics | loom: `drop_runs_every_queued_job_then_joins`; test: `drop_runs_every_job_and_joins_every_worker` |
//! | A panicking job never kills its worker; it is counted | loom: `panicking_job_does_not_kill_worker`; test: `a_panicking_job_does_not_kill_its_worker` |
//! | Shutdown is idempotent; no wake-up is lost | loom: `double_shutdown_is_idempotent`, `wait_idle_has_no_lost_wakeup`, `wait_idle_two_waiters_two_workers_no_lost_wakeup`, `submit_wakes_sleeping_worker_no_lost_wakeup`, `spin_then_park_has_no_lost_wakeup`, `job_in_other_inbox_wakes_worker_that_looked_there_already`, `submit_finding_sleeper_claimed_still_gets_its_job_run` |
//! | The fast path (sharded inboxes, take-side queue) keeps every job exactly once and each submitting thread's jobs in order | loom: `swap_versus_pop_two_submitters_each_job_once`, `shutdown_now_versus_swapped_batch_ran_xor_returned_in_order`, `drain_runs_jobs_in_take_side_queue`, `bounded_capacity_exact_while_try_execute_races_move` |
//! | Waiting from inside a worker is an error, not a deadlock | loom: `wait_idle_from_worker_returns_called_from_worker`; test: `wait_idle_from_a_worker_is_refused` |
//! | The loom suite can find the bugs it guards against | loom negative examples: the Book's join-before-signal deadlock, `notify_one` at shutdown, a wait outside a loop, a flag checked outside the lock, sleeping registered apart from the wait, an inbox's non-empty flag set after its lock is released, a sleeper's wake-up claimed without the lock |
//! | Every malformed request gets a 4xx/5xx with a precise status, never a panic or a hang | `tests/parser_cases.rs` (the adversarial catalog as data), fuzz targets `parse_request`, `parse_request_split`, `chunked_decode`, `diff_httparse` (replayed by `tests/fuzz_corpus.rs`); e2e: `malformed_requests_get_4xx_and_the_server_lives_on` |
//! | No path outside the root is ever served | unit tests in `files::resolve`, fuzz target `resolve_path`; e2e: `traversal_never_serves_a_file_outside_the_root` (symlinks included) |
//! | Idle and slow clients hold sockets, not workers: no worker ever waits on a client (slow bodies, slow readers, lingering) | e2e: `sixty_four_idle_keep_alive_connections_do_not_delay_a_new_client`, `slowloris_clients_hold_sockets_not_workers`, `slow_header_gets_408_at_the_deadline`, and with one worker `clients_trickling_bodies_do_not_hold_the_worker`, `clients_not_reading_a_large_response_do_not_hold_the_worker`, `clients_sending_garbage_and_holding_the_socket_do_not_hold_the_worker` (`tests/slow_clients.rs`) |
//! | The event loop and the workers hand connections over without losing readiness, owning one twice, closing one twice, or breaking or doubling the chain of turns | loom (`src/handoff/PROTOCOL.md`): `readiness_during_a_workers_last_read_is_never_lost`, `a_connection_is_closed_exactly_once_by_worker_deadline_or_shutdown`, `shutdown_closes_idle_connections_and_drains_writers_exactly_once`, `the_turn_chain_never_doubles`, `a_panicking_turn_is_requeued_by_the_watcher_and_never_doubled`, with negative twins; the mutant catalog (`loom-tests/catalog/`) |
//! | A connection's responses come out complete and in order, nothing is answered after a framing error or to a smuggled request, and its buffers stay bounded, whatever the socket does | fuzz target `conn` (scripted in-memory socket: chunk boundaries, `WouldBlock`, EOF, errors, partial writes, deadlines, shutdown; replayed by `tests/fuzz_corpus.rs`); the catalog over TCP against a static and a body-reading handler (`tests/server_catalog.rs`) |
//! | Shutdown finishes every accepted request, also while slow readers hold downloads | e2e: `shutdown_finishes_in_flight_requests_with_connection_close`, `requests_fully_sent_before_shutdown_are_answered_while_slow_readers_download`, `shutdown_finishes_responses_to_slow_readers_and_counts_the_ones_that_never_read`; binary: `sigterm_under_load_completes_every_accepted_request` |
//!
//! # Hello, pool
//!
//! ```
//! use poolserve::ThreadPool;
//!
//! let pool = ThreadPool::new(4);
//! pool.execute(|| println!("hello from a worker")).expect("the pool is running");
//! let report = pool.shutdown().expect("not called from a worker"); // runs the job, joins the workers
//! assert_eq!(report.completed, 1);
//! ```
//!
//! # What a job may capture
//!
//! A job runs later, on another thread, so it must be `Send + 'static`: it owns what it uses, and
//! what it shares is shared through thread-safe types. The compiler enforces this.
//!
//! A job that captures an `Rc` does not compile — `Rc` cannot be sent between threads safely
//! (E0277, "`Rc<i32>` cannot be sent between threads safely"):
//!
//! ```compile_fail,E0277
//! use std::rc::Rc;
//! use poolserve::ThreadPool;
//!
//! let pool = ThreadPool::new(2);
//! let shared = Rc::new(5);
//! pool.execute(move || println!("{shared}")).ok();
//! ```
//!
//! With `Arc` it does:
//!
//! ```
//! use std::sync::Arc;
//! use poolserve::ThreadPool;
//!
//! let pool = ThreadPool::new(2);
//! let shared = Arc::new(5);
//! pool.execute(move || println!("{shared}")).ok();
//! ```
//!
//! A job that borrows a local does not compile — the job may outlive the local (E0373, "closure may
//! outlive the current function, but it borrows `name`"):
//!
//! ```compile_fail,E0373
//! use poolserve::ThreadPool;
//!
//! let pool = ThreadPool::new(2);
//! let name = String::from("world");
//! pool.execute(|| println!("hello, {name}")).ok();
//! ```
//!
//! Moving the value in does:
//!
//! ```
//! use poolserve::ThreadPool;
//!
//! let pool = ThreadPool::new(2);
//! let name = String::from("world");
//! pool.execute(move || println!("hello, {name}")).ok();
//! ```
//!
//! # Sharing the pool
//!
//! Submitting takes `&self`, so a pool can be shared by reference (scoped threads) or through an
//! `Arc`. Shutting down takes `self`: once shut down, a pool cannot be used — or shut down twice, or
//! have its threads joined twice — by construction (E0382, "borrow of moved value: `pool`"):
//!
//! ```compile_fail,E0382
//! use poolserve::ThreadPool;
//!
//! let pool = ThreadPool::new(2);
//! let report = pool.shutdown();
//! pool.execute(|| {}).ok();
//! ```
//!
//! Where several owners may stop the pool, use [`ThreadPool::close`] (takes `&self`, idempotent):
//! every later `execute` hands its job back, and dropping the last owner joins the workers.
//!
//! ```
//! use std::sync::Arc;
//! use poolserve::ThreadPool;
//!
//! let pool = Arc::new(ThreadPool::new(2));
//! let other = Arc::clone(&pool);
//! std::thread::spawn(move || other.close()).join().unwrap();
//! assert!(pool.execute(|| {}).is_err_and(|e| e.is_shut_down()));
//! ```
//!
//! # Shutting down
//!
//! | call | stops accepting | queued jobs | running jobs | joins workers |
//! |---|---|---|---|---|
//! | [`close`](ThreadPool::close) | yes | still run | finish | no (returns at once) |
//! | [`shutdown`](ThreadPool::shutdown), `Drop` | yes | run | finish | yes |
//! | [`shutdown_now`](ThreadPool::shutdown_now) | yes | **handed back** un-run | finish | yes |
//! | [`shutdown_timeout`](ThreadPool::shutdown_timeout) | yes | run | finish | yes if done in time; else reported and detached |
//!
//! ```
//! use poolserve::ThreadPool;
//!
//! let pool = ThreadPool::new(1);
//! let (tx, rx) = std::sync::mpsc::channel::<()>();
//! pool.execute(move || { let _ = rx.recv(); }).ok(); // occupies the only worker
//! pool.execute(|| unreachable!("never runs")).ok();   // waits in the queue
//! drop(tx);                                           // lets the first job finish
//! let (report, unrun) = pool.shutdown_now().unwrap();
//! // The queued job came back un-run (unless the worker had already taken it).
//! assert_eq!(report.completed as usize + unrun.len(), 2);
//! ```
//!
//! A refused job is never silently lost, and ignoring the error is flagged — `ExecuteError` is
//! `#[must_use]` ("unused `Result` that must be used"):
//!
//! ```compile_fail
//! #![deny(unused_must_use)]
//! use poolserve::ThreadPool;
//!
//! let pool = ThreadPool::new(1);
//! pool.execute(|| {}); // error: unused `Result` that must be used
//! ```
//!
//! # Panics
//!
//! A job that panics is caught inside its worker, logged (target `poolserve::pool`, level error) and
//! counted in [`ThreadPool::panicked`]; the worker goes on with the next job.
//!
//! ```
//! use poolserve::ThreadPool;
//!
//! let pool = ThreadPool::new(1);
//! pool.execute(|| panic!("boom")).ok();
//! pool.execute(|| {}).ok();
//! let report = pool.shutdown().unwrap();
//! assert_eq!((report.panicked, report.completed), (1, 1));
//! ```
//!
//! # Bounded queues
//!
//! With [`Builder::queue_capacity`], `execute` blocks while the queue is full (back-pressure) and
//! `try_execute` hands the job back in [`ExecuteError::Full`]:
//!
//! ```
//! use poolserve::{ExecuteError, ThreadPool};
//!
//! let pool = ThreadPool::builder().threads(1).queue_capacity(Some(1)).build().unwrap();
//! let (tx, rx) = std::sync::mpsc::channel::<()>();
//! pool.execute(move || { let _ = rx.recv(); }).ok(); // the worker is busy…
//! while pool.active() == 0 { std::thread::yield_now(); }
//! pool.execute(|| {}).ok();                          // …one job waits…
//! let refused = pool.try_execute(|| {});             // …and the queue is full.
//! assert!(matches!(refused, Err(ExecuteError::Full(_))));
//! drop(tx);
//! ```
//!
//! # The server
//!
//! [`Server`] runs a [`Handler`] — any `Fn(&Request) -> Response + Send + Sync + 'static` — on a
//! pool. [`files::StaticFiles`] is the handler the `poolserve` binary uses:
//!
//! ```no_run
//! use poolserve::files::StaticFiles;
//! use poolserve::Server;
//!
//! let server = Server::builder().bind("127.0.0.1:7878").threads(4).build()?;
//! let handle = server.shutdown_handle(); // handle.shutdown() drains and stops it, from any thread
//! server.serve(StaticFiles::new("public")?)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A handler runs on several workers at once, so the state it shares must be `Sync`. State behind a
//! `RefCell` does not compile (E0277, "`RefCell<u64>` cannot be shared between threads safely"):
//!
//! ```compile_fail,E0277
//! use std::cell::RefCell;
//! use poolserve::http::{Request, Response};
//! use poolserve::Server;
//!
//! let hits = RefCell::new(0u64);
//! let server = Server::builder().build().unwrap();
//! server.serve(move |_: &Request<'_, '_>| { *hits.borrow_mut() += 1; Response::new(204) }).ok();
//! ```
//!
//! An atomic (or a `Mutex`) does:
//!
//! ```no_run
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use poolserve::http::{Request, Response};
//! use poolserve::Server;
//!
//! let hits = AtomicU64::new(0);
//! let server = Server::builder().build().unwrap();
//! server.serve(move |_: &Request<'_, '_>| { hits.fetch_add(1, Ordering::Relaxed); Response::new(204) }).ok();
//! ```
//!
//! # Modules
//!
//! * [`pool`] — the thread pool and its shutdown protocol (`src/pool/SHUTDOWN.md`).
//! * [`http`] — the pure request parser, framing, chunked decoder, and the response writer.
//! * [`files`] — path resolution and the static-file handler.
//! * [`server`] — the event loop, connections, timeouts, admission control, graceful shutdown.
//! * `sync` — the loom/std shim (hidden: not API; used by the loom models).
//!
//! [loom]: https://docs.rs/loom
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[doc(hidden)]
pub mod sync;

pub mod pool;

#[doc(hidden)]
pub mod handoff;

pub use pool::{
    BuildError, Builder, ExecuteError, Job, JobHandle, JoinError, JoinTimeoutError, PoolError,
    ShutdownReport, ThreadPool,
};

#[cfg(not(loom))]
pub mod http;

#[cfg(not(loom))]
pub mod files;

#[cfg(not(loom))]
mod handler;
#[cfg(not(loom))]
pub use handler::Handler;

#[cfg(not(loom))]
pub mod server;
#[cfg(not(loom))]
pub use server::{Config, ServeReport, Server, ServerBuilder, ServerError, ShutdownHandle};

/// Not part of the API: the checks behind the fuzz targets, compiled only with the `fuzzing`
/// feature (which `fuzz/` and this crate's own tests enable). It may change or go away in any
/// release.
#[cfg(all(not(loom), feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz_support;

/// The README's examples, compiled and run as doctests so the front page cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
