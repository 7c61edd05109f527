//! The event loop that owns every connection not being served right now.
//!
//! One thread (the one that called [`Server::serve`](super::Server::serve)) runs it. It holds the
//! listener and every *parked* connection — idle between requests, or waiting for the rest of a
//! head — registered with a readiness poller (`mio`, edge-triggered). When a parked connection
//! becomes readable, the loop hands it to the pool as a job; the worker serves what is there and
//! returns it here ([`Outcome::Park`]) or closes it. So a thousand idle keep-alive clients cost a
//! thousand sockets and small structs, not a thousand workers.
//!
//! Ownership is exclusive: a connection is either in its [`Slot`] (parked) or moved into exactly one
//! job (dispatched), never both. The slots live behind one lock shared by the loop and the jobs, so a
//! worker parks its connection itself, with no round trip through the loop. Readiness that arrives
//! while a connection is dispatched is remembered in `Slot::pending`; the worker checks it under the
//! same lock when it is done and serves the connection again instead of parking it, so no wake-up
//! is lost to the race between a worker's last read and its parking. To stay fair, a worker serves
//! one connection at most [`MAX_ROUNDS`] times in a row; then it queues it for the loop to dispatch
//! again (`Slots::ready`) and wakes the loop.
//!
//! Deadlines are checked on every tick (at most [`TICK`] apart): an idle connection past the
//! keep-alive timeout is closed silently; one with part of a head past the header deadline is
//! dispatched once more to be answered `408` and closed.
//!
//! This loop and the sockets are outside the loom models: the pool's protocol below it is
//! model-checked; this layer is tested end to end with real sockets.

use std::collections::HashMap;
use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{self, Conn, Outcome};
use super::{Shared, refuse};
use crate::handler::Handler;
use crate::pool::ThreadPool;

/// Longest time between two deadline checks.
pub(crate) const TICK: Duration = Duration::from_millis(100);
const LISTENER: Token = Token(usize::MAX - 1);
pub(crate) const WAKER: Token = Token(usize::MAX);

/// How many times in a row one job serves the same connection before handing it back to the loop.
const MAX_ROUNDS: usize = 8;

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

pub(crate) struct EventLoop {
    poll: Poll,
    listener: TcpListener,
    shared: Arc<Shared>,
    pool: ThreadPool,
    jobs: Arc<JobContext>,
    slots: Arc<Mutex<Slots>>,
    next_id: usize,
    counts: Counts,
    /// `accept` failed with something other than WouldBlock (e.g. EMFILE): retry after a back-off,
    /// since an edge-triggered listener will not report the waiting connections again.
    accept_retry_at: Option<Instant>,
    backoff: Duration,
}

impl EventLoop {
    pub(crate) fn new(
        poll: Poll,
        waker: Arc<Waker>,
        listener: TcpListener,
        shared: Arc<Shared>,
        pool: ThreadPool,
        handler: Arc<dyn Handler>,
    ) -> io::Result<EventLoop> {
        listener.set_nonblocking(true)?;
        poll.registry().register(
            &mut SourceFd(&listener.as_raw_fd()),
            LISTENER,
            Interest::READABLE,
        )?;
        let slots = Arc::new(Mutex::new(Slots::default()));
        let jobs = Arc::new(JobContext {
            shared: Arc::clone(&shared),
            handler,
            slots: Arc::clone(&slots),
            waker,
        });
        Ok(EventLoop {
            poll,
            listener,
            shared,
            pool,
            jobs,
            slots,
            next_id: 0,
            counts: Counts::default(),
            accept_retry_at: None,
            backoff: Duration::from_millis(5),
        })
    }

    /// Runs until shutdown is requested, then closes parked connections and drains the pool.
    /// Returns the counts and how many connections were still being served after the grace period.
    pub(crate) fn run(mut self) -> io::Result<(Counts, usize)> {
        let mut events = Events::with_capacity(1024);
        let mut last_tick = Instant::now();
        while !self.shared.stopping() {
            if let Err(e) = self.poll.poll(&mut events, Some(TICK)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    Token(id) => self.on_ready(id, event.is_read_closed() || event.is_error()),
                }
            }
            self.dispatch_ready();
            if self.accept_retry_at.is_some_and(|t| Instant::now() >= t) {
                self.accept_all();
            }
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                self.expire(last_tick);
            }
        }
        self.shut_down()
    }

    fn accept_all(&mut self) {
        self.accept_retry_at = None;
        loop {
            match self.listener.accept() {
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

    /// A readiness event: dispatch the connection if it is parked, else note it for its worker.
    /// `closed`: the peer has shut down its side (or the socket failed). With edge-triggered
    /// readiness this is said once, possibly together with the last data, so it is carried to the
    /// worker, which then reads on to the end instead of stopping at a short read.
    fn on_ready(&mut self, id: usize, closed: bool) {
        let mut slots = lock(&self.slots);
        let Some(slot) = slots.map.get_mut(&id) else {
            return;
        };
        match slot.conn.take() {
            Some(mut conn) => {
                drop(slots);
                conn.peer_closed |= closed;
                self.dispatch(id, conn, false);
            }
            None => {
                slot.pending = true;
                slot.peer_closed |= closed;
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

    /// Hands a connection to the pool. Never blocks: the pool's queue holds `max_connections`
    /// jobs and each connection is in it at most once.
    fn dispatch(&mut self, id: usize, conn: Conn, timed_out: bool) {
        let jobs = Arc::clone(&self.jobs);
        if let Err(e) = self.pool.try_execute(move || jobs.run(id, conn, timed_out)) {
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

    fn shut_down(self) -> io::Result<(Counts, usize)> {
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&self.listener.as_raw_fd()));
        drop(self.listener);
        // Parked connections have no request in flight: close them now.
        let mut slots = lock(&self.slots);
        let parked = slots.map.values().filter(|s| s.conn.is_some()).count();
        slots.map.retain(|_, s| s.conn.is_none());
        let in_flight = slots.map.len();
        drop(slots);
        log::info!(
            "draining: closed {parked} idle connections, {} in flight",
            in_flight
        );
        // In-flight connections see `stopping`, answer with `Connection: close` and close.
        let report = self
            .pool
            .shutdown_timeout(self.shared.config.grace_period)
            .unwrap_or_default();
        let unfinished = report.still_running + report.still_queued;
        if unfinished > 0 {
            log::warn!("grace period over: {unfinished} connections still being served");
        } else {
            log::info!("drained; shut down");
        }
        Ok((self.counts, unfinished))
    }
}
