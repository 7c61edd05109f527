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
//! Ownership is exclusive: a connection is either in its [`Slot`] (parked) or moved into exactly one
//! job (dispatched, or kept by a turn), never both. The slots live behind one lock shared by the
//! turns and the jobs, so a worker parks its connection itself. Readiness that arrives while a
//! connection is dispatched is remembered in `Slot::pending`; the worker checks it under the same
//! lock when it is done and serves the connection again instead of parking it, so no wake-up is
//! lost to the race between a worker's last read and its parking. To stay fair, a worker serves
//! one connection at most [`MAX_ROUNDS`] times in a row; then it queues it for the next turn to
//! dispatch again (`Slots::ready`) and wakes the poller.
//!
//! Deadlines are checked at most [`TICK`] apart: an idle connection past the keep-alive timeout is
//! closed silently; one with part of a head past the header deadline is dispatched once more to be
//! answered `408` and closed.
//!
//! This loop and the sockets are outside the loom models: the pool's protocol below it is
//! model-checked; this layer is tested end to end with real sockets.

use std::collections::HashMap;
use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{self, Conn, Outcome};
use super::{Shared, refuse};
use crate::handler::Handler;
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

/// A connection's place in the loop.
struct Slot {
    /// `Some` while parked here; `None` while a worker has it.
    conn: Option<Conn>,
    /// Readiness arrived while dispatched: serve it again as soon as the worker is done.
    pending: bool,
    /// That readiness said the peer closed its side (see [`EventLoop::on_ready`]).
    peer_closed: bool,
    /// When it was last parked (the keep-alive timeout runs from here).
    parked_at: Instant,
}

/// Every open connection, shared by the loop and the jobs. The lock protects the map and the
/// `ready` list; it is never held while serving a connection or doing I/O.
#[derive(Default)]
struct Slots {
    map: HashMap<usize, Slot>,
    /// Parked connections that need a dispatch without a new readiness event (a worker gave one
    /// back after [`MAX_ROUNDS`]); the loop drains it after every wake-up.
    ready: Vec<usize>,
}

fn lock(slots: &Mutex<Slots>) -> std::sync::MutexGuard<'_, Slots> {
    slots.lock().unwrap_or_else(PoisonError::into_inner)
}

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
    slots: Arc<Mutex<Slots>>,
    waker: Arc<Waker>,
}

impl JobContext {
    /// Serves connection `id` until it is parked, closed, or has had its [`MAX_ROUNDS`].
    fn run(&self, id: usize, mut conn: Conn, mut timed_out: bool) {
        for round in 1..=MAX_ROUNDS {
            let outcome = conn::on_readable(conn, &self.shared, &*self.handler, timed_out);
            timed_out = false;
            let mut slots = lock(&self.slots);
            match outcome {
                Outcome::Closed => {
                    slots.map.remove(&id);
                    return;
                }
                Outcome::Park { conn: back, again } => {
                    let Some(slot) = slots.map.get_mut(&id) else {
                        return;
                    }; // closed at shutdown
                    let again = std::mem::take(&mut slot.pending) || again;
                    let mut back = back;
                    back.peer_closed |= std::mem::take(&mut slot.peer_closed);
                    if !again {
                        slot.parked_at = Instant::now();
                        slot.conn = Some(back);
                        return;
                    }
                    if round == MAX_ROUNDS {
                        slot.conn = Some(back);
                        slots.ready.push(id);
                        drop(slots);
                        if let Err(e) = self.waker.wake() {
                            log::error!("cannot wake the event loop: {e}");
                        }
                        return;
                    }
                    conn = back;
                }
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
    slots: Arc<Mutex<Slots>>,
    counts: Counts,
    next_id: usize,
    /// `accept` failed with something other than WouldBlock (e.g. EMFILE): retry after a back-off,
    /// since an edge-triggered listener will not report the waiting connections again.
    accept_retry_at: Option<Instant>,
    backoff: Duration,
    last_tick: Instant,
}

/// The event loop and what its runners share.
struct Loop {
    /// The event loop. The lock is the right to run a turn; a turn job holds it for one turn
    /// (including a wait of at most [`TICK`] in `epoll_wait` when nothing else is queued).
    state: Mutex<EventLoop>,
    /// Turns started so far; `serve`'s thread reads it to notice a starved loop.
    turns: AtomicU64,
    /// A turn job is queued and has not started yet. If neither that nor a running turn exists
    /// (the chain was broken, e.g. by a panic inside a turn), `serve`'s thread queues a new one.
    queued: AtomicBool,
}

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
    let slots = Arc::new(Mutex::new(Slots::default()));
    let event_loop = Arc::new(Loop {
        state: Mutex::new(EventLoop {
            poll,
            events: Events::with_capacity(1024),
            listener: Some(listener),
            shared: Arc::clone(&shared),
            spawner: pool.spawner(),
            jobs: Arc::new(JobContext {
                shared: Arc::clone(&shared),
                handler,
                slots: Arc::clone(&slots),
                waker,
            }),
            slots: Arc::clone(&slots),
            counts: Counts::default(),
            next_id: 0,
            accept_retry_at: None,
            backoff: Duration::from_millis(5),
            last_tick: Instant::now(),
        }),
        turns: AtomicU64::new(0),
        queued: AtomicBool::new(true),
    });
    let first = Arc::clone(&event_loop);
    if let Err(e) = pool.try_execute(move || turn_job(first)) {
        return Err(io::Error::other(format!(
            "cannot start the event loop: {e}"
        )));
    }
    let mut seen = 0;
    while !shared.wait_until_stopping(TICK) {
        let turns = event_loop.turns.load(Ordering::Relaxed);
        // No turn started during a whole tick, and none is running: every worker is busy and the
        // turn job is queued behind them. Run one turn here, without blocking and without serving.
        if turns == seen
            && let Some(mut state) = try_lock_state(&event_loop)
        {
            if event_loop.queued.load(Ordering::Acquire) {
                log::debug!("event loop starved of workers; running a turn on the serving thread");
                let _ = state.turn(Duration::ZERO, false);
            } else {
                // Marked under the lock, as a turn does, so no turn can see the chain as broken too.
                event_loop.queued.store(true, Ordering::Release);
                drop(state);
                log::error!("no event-loop turn running or queued; queueing one");
                let next = Arc::clone(&event_loop);
                if let Err(e) = pool.try_execute(move || turn_job(next)) {
                    event_loop.queued.store(false, Ordering::Release);
                    log::error!("cannot queue an event-loop turn: {e}");
                }
            }
        }
        seen = turns;
    }
    // The next turn closes the listener and the parked connections; in-flight connections see
    // `stopping`, answer with `Connection: close` and close.
    let report = pool
        .shutdown_timeout(shared.config.grace_period)
        .unwrap_or_default();
    let mut state = event_loop
        .state
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    // Idempotent: closes the listener and whatever was parked after the last turn, if any.
    state.finish();
    let counts = std::mem::take(&mut state.counts);
    drop(state);
    let unfinished = report.still_running + report.still_queued;
    if unfinished > 0 {
        log::warn!("grace period over: {unfinished} connections still being served");
    } else {
        log::info!("drained; shut down");
    }
    if let Some(e) = shared.take_loop_error() {
        return Err(e);
    }
    Ok((counts, unfinished))
}

/// The event loop's lock if it is free. A turn that panicked while holding it leaves the loop
/// usable: at worst the connection it was dispatching was dropped (closed), and its slot stays
/// counted until shutdown.
fn try_lock_state(event_loop: &Loop) -> Option<std::sync::MutexGuard<'_, EventLoop>> {
    match event_loop.state.try_lock() {
        Ok(state) => Some(state),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// A turn as a pool job: runs one turn, queues the next turn's job unless shutting down, then
/// serves the connection the turn kept for this worker, if any. (Serving it here rather than
/// handing it to an idle worker keeps the hand-off off the request's path: measured at one
/// connection, the alternative of polling on while sleepers serve cut context switches from 13.4
/// to 3.3 per request with 4 workers but lowered requests/s from 52k to 41k.)
fn turn_job(event_loop: Arc<Loop>) {
    let mut state = event_loop
        .state
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    event_loop.turns.fetch_add(1, Ordering::Relaxed);
    event_loop.queued.store(false, Ordering::Release);
    #[cfg(test)]
    if PANIC_IN_NEXT_TURN.swap(false, Ordering::Relaxed) {
        panic!("injected fault: an event-loop turn panicked");
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
    } else {
        // Under the lock: `serve`'s thread, which reads it under the lock, never sees a gap
        // between this turn and the next one's job and queues a second chain.
        event_loop.queued.store(true, Ordering::Release);
    }
    let (spawner, jobs) = (state.spawner.clone(), Arc::clone(&state.jobs));
    drop(state);
    if !stopping {
        let next = Arc::clone(&event_loop);
        match spawner.try_execute(move || turn_job(next)) {
            Ok(()) => {}
            // Refused only once shutdown is under way (`serve` closes the pool after `stopping`
            // is set; its queue has room for every connection plus this job): `serve` finishes.
            Err(ExecuteError::ShutDown(_)) => event_loop.queued.store(false, Ordering::Release),
            Err(e) => {
                log::error!("cannot queue the next event-loop turn ({e}); running it here");
                e.into_inner()();
            }
        }
    }
    if let Some((id, conn)) = kept {
        jobs.run(id, conn, false);
    }
}

impl EventLoop {
    /// One turn: waits at most `timeout` for readiness, accepts, dispatches ready connections as
    /// jobs, and checks deadlines. With `keep_one`, the first ready connection is not dispatched
    /// but returned, for the calling worker to serve itself (one hand-off fewer per turn). Once
    /// shutdown has been requested it instead closes the listener and the parked connections.
    fn turn(&mut self, timeout: Duration, keep_one: bool) -> Option<(usize, Conn)> {
        if self.shared.stopping() {
            self.finish();
            return None;
        }
        let mut kept: Option<(usize, Conn)> = None;
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {
                // Moved out while it is iterated (the handlers below need `&mut self`); an empty
                // `Events` allocates nothing, and the real one goes back after the loop.
                let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
                for event in &events {
                    let closed = event.is_read_closed() || event.is_error();
                    match event.token() {
                        LISTENER => self.accept_all(),
                        WAKER => {}
                        Token(id) => {
                            let Some(ready) = self.on_ready(id, closed) else {
                                continue;
                            };
                            if keep_one && kept.is_none() {
                                kept = Some(ready);
                            } else {
                                self.dispatch(ready.0, ready.1, false);
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
        self.dispatch_ready();
        if self.accept_retry_at.is_some_and(|t| Instant::now() >= t) {
            self.accept_all();
        }
        if self.last_tick.elapsed() >= TICK {
            self.last_tick = Instant::now();
            self.expire(self.last_tick);
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
                    if lock(&self.slots).map.len() >= self.shared.config.max_connections {
                        self.counts.rejected += 1;
                        refuse(stream, peer);
                        continue;
                    }
                    if let Err(e) = stream
                        .set_nonblocking(true)
                        .and_then(|()| stream.set_nodelay(true))
                    {
                        log::debug!("{peer}: cannot configure socket: {e}");
                        continue;
                    }
                    let id = self.next_id;
                    self.next_id = self.next_id.wrapping_add(1) % (usize::MAX - 2);
                    // Insert before registering: the first readiness event must find the slot.
                    let slot = Slot {
                        conn: Some(Conn::new(stream, peer)),
                        pending: false,
                        peer_closed: false,
                        parked_at: Instant::now(),
                    };
                    let mut slots = lock(&self.slots);
                    let fd = slot.conn.as_ref().map(|c| c.stream.as_raw_fd());
                    slots.map.insert(id, slot);
                    drop(slots);
                    let registered = fd.map(|fd| {
                        self.poll.registry().register(
                            &mut SourceFd(&fd),
                            Token(id),
                            Interest::READABLE,
                        )
                    });
                    if let Some(Err(e)) = registered {
                        log::warn!("{peer}: cannot register connection: {e}");
                        lock(&self.slots).map.remove(&id);
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

    /// A readiness event: returns the connection, taken out of its slot, if it is parked; else
    /// notes the event for the worker that has it. `closed`: the peer has shut down its side (or
    /// the socket failed). With edge-triggered readiness this is said once, possibly together with
    /// the last data, so it is carried to the worker, which then reads on to the end instead of
    /// stopping at a short read.
    fn on_ready(&mut self, id: usize, closed: bool) -> Option<(usize, Conn)> {
        let mut slots = lock(&self.slots);
        let slot = slots.map.get_mut(&id)?;
        match slot.conn.take() {
            Some(mut conn) => {
                conn.peer_closed |= closed;
                Some((id, conn))
            }
            None => {
                slot.pending = true;
                slot.peer_closed |= closed;
                None
            }
        }
    }

    /// Dispatches the connections that workers handed back after their [`MAX_ROUNDS`].
    fn dispatch_ready(&mut self) {
        let ready = std::mem::take(&mut lock(&self.slots).ready);
        self.dispatch_parked(ready, false);
    }

    /// Dispatches those of `ids` that are still parked (a worker may have taken one meanwhile).
    fn dispatch_parked(&mut self, ids: Vec<usize>, timed_out: bool) {
        if ids.is_empty() {
            return;
        }
        let mut slots = lock(&self.slots);
        let conns: Vec<(usize, Conn)> = ids
            .into_iter()
            .filter_map(|id| Some((id, slots.map.get_mut(&id)?.conn.take()?)))
            .collect();
        drop(slots);
        for (id, conn) in conns {
            self.dispatch(id, conn, timed_out);
        }
    }

    /// Hands a connection to the pool. Never blocks: the pool's queue holds `max_connections` jobs
    /// plus the next turn, and each connection is in it at most once.
    fn dispatch(&mut self, id: usize, conn: Conn, timed_out: bool) {
        let jobs = Arc::clone(&self.jobs);
        if let Err(e) = self
            .spawner
            .try_execute(move || jobs.run(id, conn, timed_out))
        {
            // Only at shutdown (or if the bound were wrong): the job, and the socket in it, is
            // dropped, which closes the connection.
            log::warn!("connection dropped: {e}");
            drop(e.into_inner());
            lock(&self.slots).map.remove(&id);
        }
    }

    /// Closes idle connections past the keep-alive timeout; dispatches those past the header
    /// deadline for a 408.
    fn expire(&mut self, now: Instant) {
        let cfg = &self.shared.config;
        let mut late = Vec::new();
        let mut slots = lock(&self.slots);
        slots.map.retain(|&id, slot| {
            let Some(conn) = &slot.conn else { return true };
            match conn.first_byte {
                Some(first) if conn.has_partial() => {
                    if now >= first + cfg.header_timeout {
                        late.push(id);
                    }
                    true
                }
                _ => now < slot.parked_at + cfg.keep_alive_timeout,
            }
        });
        drop(slots);
        self.dispatch_parked(late, true);
    }

    /// Once shutdown is requested: stops accepting (closes the listener) and closes every parked
    /// connection, which has no request in flight. Idempotent.
    fn finish(&mut self) {
        let Some(listener) = self.listener.take() else {
            // Already done; close whatever a worker parked since (it saw `stopping` too late).
            lock(&self.slots).map.retain(|_, s| s.conn.is_none());
            return;
        };
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&listener.as_raw_fd()));
        drop(listener);
        let mut slots = lock(&self.slots);
        let parked = slots.map.values().filter(|s| s.conn.is_some()).count();
        slots.map.retain(|_, s| s.conn.is_none());
        let in_flight = slots.map.len();
        drop(slots);
        log::info!("draining: closed {parked} idle connections, {in_flight} in flight");
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
