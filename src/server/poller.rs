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
//! job (dispatched), never both. Readiness that arrives while it is dispatched is remembered in
//! `Slot::pending` and acted on when it comes back, so no wake-up is lost to the race between a
//! worker's last read and its return.
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

/// A connection's place in the loop.
struct Slot {
    /// `Some` while parked here; `None` while a worker has it.
    conn: Option<Conn>,
    /// Readiness arrived while dispatched: dispatch again as soon as it comes back.
    pending: bool,
    /// When it was last parked (the keep-alive timeout runs from here).
    parked_at: Instant,
}

/// What a worker sends back: the slot id and what became of the connection.
type Returned = (usize, Outcome);

/// Counts of what the loop did, for [`ServeReport`](super::ServeReport).
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) connections: u64,
    pub(crate) rejected: u64,
}

pub(crate) struct EventLoop {
    poll: Poll,
    listener: TcpListener,
    shared: Arc<Shared>,
    pool: ThreadPool,
    handler: Arc<dyn Handler>,
    slots: HashMap<usize, Slot>,
    next_id: usize,
    /// Connections handed back by workers, read after every wake-up.
    returned: Arc<Mutex<Vec<Returned>>>,
    waker: Arc<Waker>,
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
        Ok(EventLoop {
            poll,
            listener,
            shared,
            pool,
            handler,
            slots: HashMap::new(),
            next_id: 0,
            returned: Arc::new(Mutex::new(Vec::new())),
            waker,
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
                    Token(id) => self.on_ready(id),
                }
            }
            self.take_returned();
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
                    if self.slots.len() >= self.shared.config.max_connections {
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
                    let fd = stream.as_raw_fd();
                    if let Err(e) = self.poll.registry().register(
                        &mut SourceFd(&fd),
                        Token(id),
                        Interest::READABLE,
                    ) {
                        log::warn!("{peer}: cannot register connection: {e}");
                        continue;
                    }
                    self.counts.connections += 1;
                    let now = Instant::now();
                    self.slots.insert(
                        id,
                        Slot {
                            conn: Some(Conn::new(stream, peer)),
                            pending: false,
                            parked_at: now,
                        },
                    );
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

    fn on_ready(&mut self, id: usize) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        match slot.conn.take() {
            Some(conn) => self.dispatch(id, conn, false),
            None => slot.pending = true,
        }
    }

    /// Hands a connection to the pool. Never blocks: the pool's queue holds `max_connections`
    /// jobs and each connection is in it at most once.
    fn dispatch(&mut self, id: usize, conn: Conn, timed_out: bool) {
        let shared = Arc::clone(&self.shared);
        let handler = Arc::clone(&self.handler);
        let returned = Arc::clone(&self.returned);
        let waker = Arc::clone(&self.waker);
        let job = move || {
            let outcome = conn::on_readable(conn, &shared, &*handler, timed_out);
            returned
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((id, outcome));
            if let Err(e) = waker.wake() {
                log::error!("cannot wake the event loop: {e}");
            }
        };
        if let Err(e) = self.pool.try_execute(job) {
            // Only at shutdown (or if the bound were wrong): the job, and the socket in it, is
            // dropped, which closes the connection.
            log::warn!("connection dropped: {e}");
            drop(e.into_inner());
            self.slots.remove(&id);
        }
    }

    fn take_returned(&mut self) {
        let returned =
            std::mem::take(&mut *self.returned.lock().unwrap_or_else(PoisonError::into_inner));
        for (id, outcome) in returned {
            match outcome {
                Outcome::Closed => {
                    self.slots.remove(&id);
                }
                Outcome::Park { conn, again } => {
                    let Some(slot) = self.slots.get_mut(&id) else {
                        continue;
                    };
                    if again || std::mem::take(&mut slot.pending) {
                        self.dispatch(id, conn, false);
                    } else {
                        slot.parked_at = Instant::now();
                        slot.conn = Some(conn);
                    }
                }
            }
        }
    }

    /// Closes idle connections past the keep-alive timeout; dispatches those past the header
    /// deadline for a 408.
    fn expire(&mut self, now: Instant) {
        let cfg = &self.shared.config;
        let mut late = Vec::new();
        self.slots.retain(|&id, slot| {
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
        for id in late {
            if let Some(conn) = self.slots.get_mut(&id).and_then(|s| s.conn.take()) {
                self.dispatch(id, conn, true);
            }
        }
    }

    fn shut_down(mut self) -> io::Result<(Counts, usize)> {
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&self.listener.as_raw_fd()));
        drop(self.listener);
        // Parked connections have no request in flight: close them now.
        let parked = self.slots.values().filter(|s| s.conn.is_some()).count();
        self.slots.retain(|_, s| s.conn.is_none());
        log::info!(
            "draining: closed {parked} idle connections, {} in flight",
            self.slots.len()
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
