//! The event loop that owns every connection not being served right now.
//!
//! The loop is not a thread of its own. It runs in *turns* as pool jobs: a turn polls (`mio`,
//! edge-triggered) the listener and every *parked* connection — idle between requests, or waiting
//! for the rest of a head — accepts, dispatches each readable connection to the pool as a job,
//! checks deadlines, queues the job for the next turn, and then serves one of the readable
//! connections itself. So exactly one turn job exists at any moment, polling happens on a worker
//! that is running anyway, and a busy server pays no poller-thread wake-up and hand-off per
//! request (measured: 0.89 → 0.49 context switches per request at 16 keep-alive connections). A
//! turn waits in `epoll_wait` (at most [`TICK`]) only when no other job is waiting for a worker.
//! When every worker is busy and the queued turn has not started for a whole [`TICK`], the thread
//! in [`serve`] runs a turn itself (non-blocking, serving nothing), so admission (`503`),
//! deadlines and shutdown never wait longer than that for a free worker. A worker serves what is
//! there and returns the connection ([`Outcome::Park`]) or closes it. So a thousand idle keep-alive
//! clients cost a thousand sockets and small structs, not a thousand workers.
//!
//! Ownership is exclusive: a connection is either parked in its slot or moved into exactly one
//! job (dispatched, or kept by a turn), never both; `src/handoff/` holds those rules
//! ([`ConnTable`]). A worker parks its connection itself, saying what it waits for (readability,
//! writability, or just the next tick) and until when; readiness that arrives while a connection is
//! dispatched is remembered and checked when the worker parks it, so no wake-up is lost. To stay
//! fair, a worker serves one connection at most [`MAX_ROUNDS`] times in a row; then it queues it
//! for the next turn to dispatch again and wakes the poller.
//!
//! Deadlines are checked at most [`TICK`] apart (`ConnTable::expire`): a connection whose wait
//! ran out is closed, or dispatched once more to be answered `408`, as its wait says.
//!
//! **Shutdown.** The first turn that sees `stopping` closes the listener and every parked
//! connection that is not writing a response, and queues no further turn. The thread in [`serve`]
//! then runs the turns itself, so connections still writing to slow readers keep being served,
//! until every connection is done or the grace period is over; then the pool drains and whatever
//! is left is closed and counted.
//!
//! The hand-off rules this loop follows (the table of connections, the chain of turns) are in
//! `src/handoff/` and model-checked with loom (`src/handoff/PROTOCOL.md`); the sockets and `mio`
//! here are tested end to end.

use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{self, Conn, Outcome};
use super::{Shared, refuse};
use crate::handler::Handler;
use crate::handoff::table::{AfterPark, ConnTable, Dispatch, Ready};
use crate::handoff::turns::{TurnChain, Watch};
use crate::pool::{ExecuteError, Spawner, ThreadPool};

/// Longest time between two deadline checks.
pub(crate) const TICK: Duration = Duration::from_millis(100);
const LISTENER: Token = Token(usize::MAX - 1);
pub(crate) const WAKER: Token = Token(usize::MAX);

/// How many times in a row one job serves the same connection before handing it back to the loop.
const MAX_ROUNDS: usize = 8;

/// Fault injection for the unit test below: the next turn panics as soon as it has started, as a
/// bug inside a turn would, which breaks the chain of turn jobs.
#[cfg(test)]
static PANIC_IN_NEXT_TURN: AtomicBool = AtomicBool::new(false);

/// Counts of what the loop did, for [`ServeReport`](super::ServeReport).
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) connections: u64,
    pub(crate) rejected: u64,
}

/// What a job needs besides its connection.
struct JobContext {
    shared: Arc<Shared>,
    handler: Arc<dyn Handler>,
    table: Arc<ConnTable<Conn>>,
    waker: Arc<Waker>,
}

impl JobContext {
    /// Serves a dispatched connection until it is parked, closed, or has had its [`MAX_ROUNDS`].
    fn run(&self, d: Dispatch<Conn>) {
        let Dispatch {
            id,
            mut conn,
            mut peer_closed,
            mut timed_out,
        } = d;
        for round in 1..=MAX_ROUNDS {
            let outcome = conn::serve(conn, &self.shared, &*self.handler, peer_closed, timed_out);
            timed_out = false;
            let (back, wait, again) = match outcome {
                Outcome::Closed => {
                    self.table.remove(id);
                    return;
                }
                Outcome::Park { conn, wait, again } => (conn, wait, again),
            };
            let may_keep = round < MAX_ROUNDS;
            if again && may_keep {
                (conn, peer_closed) = (back, false); // no need for the lock
                continue;
            }
            match self.table.park(id, back, wait, again, may_keep) {
                AfterPark::Parked { requeued } => {
                    if requeued && let Err(e) = self.waker.wake() {
                        log::error!("cannot wake the event loop: {e}");
                    }
                    return;
                }
                AfterPark::Gone(conn) => {
                    drop(conn); // closed at shutdown
                    return;
                }
                AfterPark::Again(back, closed) => (conn, peer_closed) = (back, closed),
            }
        }
    }
}

/// The event loop's state, behind [`Loop::state`]. Whoever holds that lock runs a *turn* (see
/// [`EventLoop::turn`]): normally a pool job, which submits the next turn's job when it is done, so
/// that exactly one turn job exists at any moment until shutdown; and, as a fallback, the thread
/// in [`serve`], when every worker is busy and the queued turn job has not started for a whole
/// [`TICK`] (so admission, `503`s and deadlines never wait for a free worker for longer).
pub(crate) struct EventLoop {
    poll: Poll,
    events: Events,
    /// `None` once shutdown has closed it.
    listener: Option<TcpListener>,
    shared: Arc<Shared>,
    spawner: Spawner,
    jobs: Arc<JobContext>,
    table: Arc<ConnTable<Conn>>,
    counts: Counts,
    next_id: usize,
    /// `accept` failed with something other than WouldBlock (e.g. EMFILE): retry after a back-off,
    /// since an edge-triggered listener will not report the waiting connections again.
    accept_retry_at: Option<Instant>,
    backoff: Duration,
    last_tick: Instant,
}

/// The event loop as a chain of turn jobs (see `src/handoff/turns.rs`).
type Loop = TurnChain<EventLoop>;

/// Starts the event loop on `pool`, waits until shutdown is requested (running a fallback turn
/// whenever the loop has been starved of workers for a [`TICK`]), then drains the pool. Returns
/// the counts and how many connections were still being served after the grace period.
pub(crate) fn serve(
    poll: Poll,
    waker: Arc<Waker>,
    listener: TcpListener,
    shared: Arc<Shared>,
    pool: ThreadPool,
    handler: Arc<dyn Handler>,
) -> io::Result<(Counts, usize)> {
    listener.set_nonblocking(true)?;
    poll.registry().register(
        &mut SourceFd(&listener.as_raw_fd()),
        LISTENER,
        Interest::READABLE,
    )?;
    let table = Arc::new(ConnTable::default());
    let event_loop = Arc::new(TurnChain::new(EventLoop {
        poll,
        events: Events::with_capacity(1024),
        listener: Some(listener),
        shared: Arc::clone(&shared),
        spawner: pool.spawner(),
        jobs: Arc::new(JobContext {
            shared: Arc::clone(&shared),
            handler,
            table: Arc::clone(&table),
            waker,
        }),
        table: Arc::clone(&table),
        counts: Counts::default(),
        next_id: 0,
        accept_retry_at: None,
        backoff: Duration::from_millis(5),
        last_tick: Instant::now(),
    }));
    let first = Arc::clone(&event_loop);
    if let Err(e) = pool.try_execute(move || turn_job(first)) {
        return Err(io::Error::other(format!(
            "cannot start the event loop: {e}"
        )));
    }
    let mut seen = 0;
    while !shared.wait_until_stopping(TICK) {
        match event_loop.watch(&mut seen) {
            Watch::Fine => {}
            Watch::RunHere(mut state) => {
                log::debug!("event loop starved of workers; running a turn on the serving thread");
                let _ = state.turn(Duration::ZERO, false);
            }
            Watch::Requeue => {
                log::error!("no event-loop turn running or queued; queueing one");
                let next = Arc::clone(&event_loop);
                if let Err(e) = pool.try_execute(move || turn_job(next)) {
                    event_loop.submit_failed();
                    log::error!("cannot queue an event-loop turn: {e}");
                }
            }
        }
    }
    // Shutdown. The chain of turn jobs ends at the first turn that sees `stopping` (it closes
    // the listener and the parked connections that are not writing a response). From here this
    // thread runs the turns, so responses still going out to slow readers keep being dispatched
    // to the pool, until every connection is done or the grace period is over.
    let deadline = Instant::now() + shared.config.grace_period;
    loop {
        let mut state = event_loop.lock_state();
        let now = Instant::now();
        if state.table.is_empty() || now >= deadline {
            break;
        }
        let _ = state.turn(TICK.min(deadline - now), false);
    }
    // Jobs still running (a handler that takes its time) get what is left of the grace period.
    let left = deadline.saturating_duration_since(Instant::now());
    let report = pool.shutdown_timeout(left).unwrap_or_default();
    let mut state = event_loop.lock_state();
    state.finish();
    // Whatever is left now was not done in time: parked writers are closed here, and connections
    // in jobs that are still running close when those jobs end.
    let (parked, unfinished) = state.table.clear();
    drop(parked);
    let counts = std::mem::take(&mut state.counts);
    drop(state);
    if unfinished > 0 {
        log::warn!(
            "grace period over: {unfinished} connections closed unfinished ({} jobs still running)",
            report.still_running
        );
    } else {
        log::info!("drained; shut down");
    }
    if let Some(e) = shared.take_loop_error() {
        return Err(e);
    }
    Ok((counts, unfinished))
}

/// A turn as a pool job: runs one turn, queues the next turn's job unless shutting down, then
/// serves the connection the turn kept for this worker, if any. (Serving it here rather than
/// handing it to an idle worker keeps the hand-off off the request's path: measured at one
/// connection, the alternative of polling on while sleepers serve cut context switches from 13.4
/// to 3.3 per request with 4 workers but lowered requests/s from 52k to 41k.)
fn turn_job(event_loop: Arc<Loop>) {
    let mut turn = event_loop.begin();
    #[cfg(test)]
    if PANIC_IN_NEXT_TURN.swap(false, Ordering::Relaxed) {
        panic!("injected fault: an event-loop turn panicked");
    }
    let state = turn.state();
    if state.shared.stopping() {
        // The chain ends here; `serve`'s thread runs the turns of the drain.
        state.finish();
        turn.end(false);
        return;
    }
    let timeout = if state.spawner.jobs_may_be_waiting() {
        Duration::ZERO // never hold a worker in `epoll_wait` ahead of queued work
    } else {
        TICK
    };
    let kept = state.turn(timeout, true);
    let stopping = state.shared.stopping();
    if stopping {
        state.finish(); // shutdown came during this turn: stop accepting now, not after the drain
    }
    let (spawner, jobs) = (state.spawner.clone(), Arc::clone(&state.jobs));
    turn.end(!stopping);
    if !stopping {
        let next = Arc::clone(&event_loop);
        match spawner.try_execute(move || turn_job(next)) {
            Ok(()) => {}
            // Refused only once shutdown is under way: `serve`'s thread runs the turns.
            Err(ExecuteError::ShutDown(_)) => event_loop.submit_failed(),
            Err(e) => {
                log::error!("cannot queue the next event-loop turn ({e}); running it here");
                e.into_inner()();
            }
        }
    }
    if let Some(kept) = kept {
        jobs.run(kept);
    }
}

impl EventLoop {
    /// One turn: waits at most `timeout` for readiness, accepts, dispatches ready connections as
    /// jobs, and checks deadlines. With `keep_one`, the first ready connection is not dispatched
    /// but returned, for the calling worker to serve itself (one hand-off fewer per turn). Once
    /// shutdown has been requested it first closes the listener and the idle connections
    /// ([`EventLoop::finish`]) and then goes on serving the responses still going out.
    fn turn(&mut self, timeout: Duration, keep_one: bool) -> Option<Dispatch<Conn>> {
        if self.shared.stopping() {
            self.finish();
        }
        let mut kept: Option<Dispatch<Conn>> = None;
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {
                // Moved out while it is iterated (the handlers below need `&mut self`); an empty
                // `Events` allocates nothing, and the real one goes back after the loop.
                let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
                for event in &events {
                    match event.token() {
                        LISTENER => self.accept_all(),
                        WAKER => {}
                        Token(id) => {
                            let Some(ready) = self.table.on_ready(id, readiness(event)) else {
                                continue;
                            };
                            if keep_one && kept.is_none() {
                                kept = Some(ready);
                            } else {
                                self.dispatch(ready);
                            }
                        }
                    }
                }
                self.events = events;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::error!("readiness poller failed: {e}; shutting down");
                self.shared.fail(e);
            }
        }
        for d in self.table.take_requeued() {
            self.dispatch(d);
        }
        if self.accept_retry_at.is_some_and(|t| Instant::now() >= t) {
            self.accept_all();
        }
        if self.last_tick.elapsed() >= TICK {
            self.last_tick = Instant::now();
            let (closed, due) = self.table.expire(self.last_tick);
            drop(closed);
            for d in due {
                self.dispatch(d);
            }
        }
        kept
    }

    fn accept_all(&mut self) {
        self.accept_retry_at = None;
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((stream, peer)) => {
                    self.backoff = Duration::from_millis(5);
                    if self.shared.stopping() {
                        return;
                    }
                    if let Err(e) = stream
                        .set_nonblocking(true)
                        .and_then(|()| stream.set_nodelay(true))
                    {
                        log::debug!("{peer}: cannot configure socket: {e}");
                        continue;
                    }
                    if self.table.len() >= self.shared.config.max_connections {
                        self.counts.rejected += 1;
                        refuse(stream, peer);
                        continue;
                    }
                    let id = self.next_id;
                    self.next_id = self.next_id.wrapping_add(1) % (usize::MAX - 2);
                    let fd = stream.as_raw_fd();
                    // Insert before registering: the first readiness event must find the slot.
                    let wait = Conn::first_wait(&self.shared);
                    self.table.insert(id, Conn::new(stream, peer), wait);
                    // Both kinds, once, edge-triggered: a connection is never re-registered.
                    // Writability is reported only after a write came back short, and a slot
                    // ignores the kind it is not waiting for (see `ConnTable::on_ready`).
                    if let Err(e) = self.poll.registry().register(
                        &mut SourceFd(&fd),
                        Token(id),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("{peer}: cannot register connection: {e}");
                        drop(self.table.remove(id));
                        continue;
                    }
                    self.counts.connections += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // ECONNABORTED, EMFILE, ENFILE, ENOBUFS…: all transient for a server.
                    log::warn!("accept failed: {e}; retrying in {:?}", self.backoff);
                    self.accept_retry_at = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(Duration::from_secs(1));
                    return;
                }
            }
        }
    }

    /// Hands a connection to the pool. Never blocks: the pool's queue holds `max_connections` jobs
    /// plus the next turn, and each connection is in it at most once.
    fn dispatch(&mut self, d: Dispatch<Conn>) {
        let jobs = Arc::clone(&self.jobs);
        let id = d.id;
        if let Err(e) = self.spawner.try_execute(move || jobs.run(d)) {
            // Only at shutdown (or if the bound were wrong): the job, and the socket in it, is
            // dropped, which closes the connection.
            log::warn!("connection dropped: {e}");
            drop(e.into_inner());
            self.table.remove(id);
        }
    }

    /// Once shutdown is requested: stops accepting (closes the listener) and closes every parked
    /// connection that is not writing a response. Idempotent; each later call closes what was
    /// parked since (a worker that saw `stopping` too late, a writer that finished).
    fn finish(&mut self) {
        let first = if let Some(listener) = self.listener.take() {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&listener.as_raw_fd()));
            true
        } else {
            false
        };
        let (closed, left) = self.table.close_parked();
        if first {
            log::info!(
                "draining: closed {} idle connections, {left} in flight",
                closed.len()
            );
        }
    }
}

/// What a readiness event means for a connection.
fn readiness(event: &Event) -> Ready {
    let failed = event.is_error();
    Ready {
        read: event.is_readable() || event.is_read_closed() || failed,
        write: event.is_writable() || event.is_write_closed() || failed,
        peer_closed: event.is_read_closed() || failed,
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::atomic::Ordering;
    use std::thread;
    use std::time::{Duration, Instant};

    use super::PANIC_IN_NEXT_TURN;
    use crate::Server;
    use crate::http::{Request, Response};

    /// Sends one `GET /` on a new connection and returns the status line (empty if the server
    /// never answered within the read timeout).
    fn status_line(addr: SocketAddr) -> String {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply); // a timeout leaves `reply` empty
        String::from_utf8_lossy(&reply)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// If a turn panics (the pool catches it), no turn job is queued or running any more. The
    /// thread in `serve` notices within a tick or two and queues a new one, so new connections are
    /// still accepted and answered. With that branch of `serve` disabled, this test fails: the
    /// second request is never answered (checked).
    #[test_log::test]
    fn a_panicking_turn_does_not_stop_the_event_loop() {
        let server = Server::builder()
            .bind("127.0.0.1:0")
            .threads(1)
            .access_log(false)
            .build()
            .expect("bind");
        let addr = server.local_addr();
        let stop = server.shutdown_handle();
        let serving = thread::spawn(move || {
            server.serve(|_: &Request<'_, '_>| Response::new(200).body("ok"))
        });
        assert_eq!(status_line(addr), "HTTP/1.1 200 OK", "before the fault");

        PANIC_IN_NEXT_TURN.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(5);
        while PANIC_IN_NEXT_TURN.load(Ordering::Relaxed) {
            assert!(Instant::now() < deadline, "no turn ran within 5 s");
            thread::sleep(Duration::from_millis(5));
        }
        // The chain is broken now: only `serve`'s guard can get this connection accepted.
        assert_eq!(
            status_line(addr),
            "HTTP/1.1 200 OK",
            "after a turn panicked"
        );

        stop.shutdown();
        let report = serving.join().expect("serve thread").expect("serve");
        assert_eq!(report.connections, 2);
    }
}
