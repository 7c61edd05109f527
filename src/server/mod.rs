//! The HTTP/1.1 server: an event loop that parks idle connections, and a [`ThreadPool`] that
//! serves the ready ones.
//!
//! * **Parking.** An event loop (`server/poller.rs`) polls the listener and every connection that
//!   is waiting for bytes. It runs as a pool job, one turn at a time, each turn queueing the next
//!   (so polling costs no extra thread and no hand-off from a poller thread), with the thread that
//!   calls [`Server::serve`] as a fallback runner when every worker is busy. A readable connection
//!   is handed to the pool as a job (one per turn is served by the turn's own worker); the worker
//!   answers every complete request it has and gives the connection back. Workers never wait on a
//!   silent socket, so a few workers serve thousands of keep-alive clients.
//! * **Admission.** At most [`Config::max_connections`] connections are held at once; one more is
//!   answered `503 Service Unavailable` with `Retry-After: 1` and closed by the event loop itself.
//! * **No worker waits for a client.** Reading a head or a body, writing a response to a client
//!   that reads slowly, and lingering after an error are states of the connection in which it is
//!   parked with the event loop, not blocking calls on a worker (`server/conn.rs` has the table of
//!   states). Files go out with `sendfile(2)`.
//! * **Deadlines.** Idle keep-alive connections close after [`Config::keep_alive_timeout`]; a head
//!   not complete within [`Config::header_timeout`] of its first byte is answered `408` (so a
//!   slowloris client holds a socket, never a worker); a body is bounded by
//!   [`Config::body_timeout`] between bytes and [`Config::body_total_timeout`] in all; a response
//!   the client does not read is dropped after [`Config::write_timeout`] without progress.
//! * **Bodies.** Handlers get the whole body ([`Request::body`](crate::http::Request::body)),
//!   read by the loop as it arrives, within [`Limits::max_body`] per request and
//!   [`Config::max_buffered_body`] for the whole server.
//! * **Accept errors** (`ECONNABORTED`, `EMFILE`, …) are logged and retried with a back-off; none
//!   stops the server.
//! * **Listening.** [`ServerBuilder::bind`] binds an address, with `SO_REUSEPORT` if
//!   [`ServerBuilder::reuse_port`] is on (so that a new process can listen beside an old one
//!   during a restart); [`ServerBuilder::listener`] takes a socket already listening instead, such
//!   as one passed by systemd's socket activation.
//! * **Shutdown** ([`ShutdownHandle::shutdown`]): the event loop stops accepting and closes the
//!   connections that have no complete request; every request fully received is answered (with
//!   `Connection: close`), and responses still going out to slow readers keep being written, all
//!   within [`Config::grace_period`]; what is left then is closed and counted in
//!   [`ServeReport::unfinished`].

mod access;
mod budget;
mod config;
pub(crate) mod conn;
mod output;
mod poller;

pub use config::{
    Config, DEFAULT_BODY_TIMEOUT, DEFAULT_BODY_TOTAL_TIMEOUT, DEFAULT_GRACE_PERIOD,
    DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_MAX_BUFFERED_BODY,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_REQUESTS_PER_CONNECTION, DEFAULT_WRITE_TIMEOUT,
};

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use mio::{Poll, Waker};
use std::time::Duration;

use crate::handler::Handler;
use crate::http::Limits;
use crate::pool::{BuildError, ThreadPool};

/// State shared by the accept loop, the connections and the shutdown handles.
pub(crate) struct Shared {
    config: Config,
    local_addr: SocketAddr,
    /// Set once by [`Shared::request_stop`]; never cleared. Read lock-free on every request.
    stopping: AtomicBool,
    /// The same fact behind a lock, for `serve`'s thread to sleep on (`stop_requested`).
    stop_lock: Mutex<bool>,
    /// Signalled (all) when `stop_lock` becomes `true`. Used with `stop_lock`.
    stop_requested: Condvar,
    /// The error that stopped the event loop, if one did; `serve` returns it.
    loop_error: Mutex<Option<io::Error>>,
    /// Wakes the event loop's `epoll_wait` (shutdown, connections handed back by workers).
    waker: Arc<Waker>,
    /// Request-body bytes held in memory, against [`Config::max_buffered_body`].
    body_budget: Arc<budget::BodyBudget>,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Requests shutdown: sets `stopping`, wakes `serve`'s thread and the event loop. Returns
    /// `false` if it had already been requested.
    fn request_stop(&self) -> bool {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return false;
        }
        *self
            .stop_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.stop_requested.notify_all();
        if let Err(e) = self.waker.wake() {
            log::error!(
                "cannot wake the event loop: {e}; it stops within {:?}",
                poller::TICK
            );
        }
        true
    }

    /// Blocks until shutdown has been requested or `timeout` has passed; says which.
    fn wait_until_stopping(&self, timeout: Duration) -> bool {
        let guard = self
            .stop_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (stopped, _) = self
            .stop_requested
            .wait_timeout_while(guard, timeout, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
        *stopped
    }

    /// The event loop failed: records `e` for `serve` to return, and shuts the server down.
    fn fail(&self, e: io::Error) {
        self.loop_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(e);
        self.request_stop();
    }

    fn take_loop_error(&self) -> Option<io::Error> {
        self.loop_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Configures and binds a [`Server`].
///
/// ```no_run
/// use std::time::Duration;
/// use poolserve::{files::StaticFiles, Server};
///
/// let server = Server::builder()
///     .bind("127.0.0.1:8080")
///     .threads(8)
///     .keep_alive_timeout(Duration::from_secs(15))
///     .build()?;
/// println!("listening on http://{}", server.local_addr());
/// server.serve(StaticFiles::new("public")?)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a ServerBuilder does nothing until `build` is called"]
pub struct ServerBuilder {
    addr: String,
    config: Config,
    /// Set `SO_REUSEPORT` on the socket `build` binds.
    reuse_port: bool,
    /// A listener to use instead of binding `addr` (shared so that the builder stays `Clone`).
    listener: Option<Arc<TcpListener>>,
}

/// The address a [`ServerBuilder`] binds unless told otherwise.
pub const DEFAULT_BIND: &str = "127.0.0.1:7878";

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            addr: DEFAULT_BIND.to_owned(),
            config: Config::default(),
            reuse_port: false,
            listener: None,
        }
    }
}

impl ServerBuilder {
    /// The address to listen on. Default is [`DEFAULT_BIND`]; port 0 picks a free port.
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.addr = addr.into();
        self
    }
    /// Sets `SO_REUSEPORT` on the socket before binding it, so that several processes (or servers)
    /// can listen on the same address at once and the kernel spreads new connections among them.
    /// That is how a new process takes over from an old one without refusing a connection: start
    /// the new one with this on, then stop the old one (which stops accepting and drains; see
    /// [`ShutdownHandle::shutdown`]). Every socket sharing the port must have it set, and on
    /// Linux belong to the same user. Default off. Unix only: elsewhere [`build`](Self::build)
    /// fails with [`ServerError::Bind`] when it is on. Ignored with [`listener`](Self::listener).
    ///
    /// ```no_run
    /// use poolserve::Server;
    ///
    /// let server = Server::builder().bind("127.0.0.1:8080").reuse_port(true).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }
    /// Serves on `listener`, a socket already bound and listening, instead of binding
    /// [`bind`](Self::bind)'s address: for example one inherited from systemd's socket activation
    /// (`LISTEN_FDS`; see the `listenfd` crate), or one set up with socket options this builder
    /// does not offer. The server puts it in non-blocking mode and closes it at shutdown (a
    /// socket shared with other processes stays open in them).
    ///
    /// ```no_run
    /// use std::net::TcpListener;
    /// use poolserve::Server;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let server = Server::builder().listener(listener).build()?;
    /// assert_eq!(server.local_addr(), addr);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }
    /// Worker threads. Default 4. They also run the event loop, in turns (there is no separate
    /// poller thread; the thread in [`Server::serve`] only steps in when every worker is busy).
    pub fn threads(mut self, n: usize) -> Self {
        self.config.threads = n;
        self
    }
    /// See [`Config::max_connections`]. Default [`DEFAULT_MAX_CONNECTIONS`].
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n;
        self
    }
    /// Parser limits. Default [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }
    /// See [`Config::header_timeout`]. Default [`DEFAULT_HEADER_TIMEOUT`].
    pub fn header_timeout(mut self, d: Duration) -> Self {
        self.config.header_timeout = d;
        self
    }
    /// See [`Config::body_timeout`]. Default [`DEFAULT_BODY_TIMEOUT`].
    pub fn body_timeout(mut self, d: Duration) -> Self {
        self.config.body_timeout = d;
        self
    }
    /// See [`Config::body_total_timeout`]. Default [`DEFAULT_BODY_TOTAL_TIMEOUT`].
    pub fn body_total_timeout(mut self, d: Duration) -> Self {
        self.config.body_total_timeout = d;
        self
    }
    /// See [`Config::max_buffered_body`]. Default [`DEFAULT_MAX_BUFFERED_BODY`].
    pub fn max_buffered_body(mut self, bytes: u64) -> Self {
        self.config.max_buffered_body = bytes;
        self
    }
    /// See [`Config::keep_alive_timeout`]. Default [`DEFAULT_KEEP_ALIVE_TIMEOUT`].
    pub fn keep_alive_timeout(mut self, d: Duration) -> Self {
        self.config.keep_alive_timeout = d;
        self
    }
    /// See [`Config::write_timeout`]. Default [`DEFAULT_WRITE_TIMEOUT`].
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.config.write_timeout = d;
        self
    }
    /// See [`Config::max_requests_per_connection`]. Default
    /// [`DEFAULT_MAX_REQUESTS_PER_CONNECTION`].
    pub fn max_requests_per_connection(mut self, n: usize) -> Self {
        self.config.max_requests_per_connection = n;
        self
    }
    /// See [`Config::grace_period`]. Default [`DEFAULT_GRACE_PERIOD`].
    pub fn grace_period(mut self, d: Duration) -> Self {
        self.config.grace_period = d;
        self
    }
    /// Log one line per request. Default on.
    pub fn access_log(mut self, on: bool) -> Self {
        self.config.access_log = on;
        self
    }
    /// Replaces the whole configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Binds the listener and starts the worker pool.
    ///
    /// # Errors
    ///
    /// [`ServerError::Bind`] if the address cannot be resolved or bound,
    /// [`ServerError::Pool`] if the pool cannot start (e.g. zero threads),
    /// [`ServerError::Config`] if a setting is out of range (zero connections or requests per
    /// connection, more than 2^30 connections, a timeout or grace period over a year).
    pub fn build(self) -> Result<Server, ServerError> {
        self.config.check().map_err(ServerError::Config)?;
        let (listener, name) = match self.listener {
            Some(shared) => {
                // The only holder unless the builder was cloned; a clone's copy is duplicated.
                let listener = Arc::try_unwrap(shared)
                    .or_else(|shared| shared.try_clone())
                    .map_err(|e| ServerError::Bind("the given listener".into(), e))?;
                (listener, "the given listener".to_owned())
            }
            None => {
                let addrs: Vec<SocketAddr> = self
                    .addr
                    .to_socket_addrs()
                    .map_err(|e| ServerError::Bind(self.addr.clone(), e))?
                    .collect();
                let listener = if self.reuse_port {
                    bind_reuse_port(&addrs)
                } else {
                    TcpListener::bind(&addrs[..])
                }
                .map_err(|e| ServerError::Bind(self.addr.clone(), e))?;
                (listener, self.addr)
            }
        };
        let local_addr = listener
            .local_addr()
            .map_err(|e| ServerError::Bind(name, e))?;
        // Each connection is queued at most once, plus the event loop's one turn job, so this
        // bound is never hit: the event loop's hand-off never blocks.
        let pool = ThreadPool::builder()
            .threads(self.config.threads)
            .thread_name("poolserve-http")
            .queue_capacity(Some(self.config.max_connections + 1))
            .build()
            .map_err(ServerError::Pool)?;
        let poll = Poll::new().map_err(ServerError::Poll)?;
        let waker =
            Arc::new(Waker::new(poll.registry(), poller::WAKER).map_err(ServerError::Poll)?);
        let body_cap = self
            .config
            .max_buffered_body
            .max(self.config.limits.max_body);
        let shared = Arc::new(Shared {
            body_budget: budget::BodyBudget::new(body_cap),
            config: self.config,
            local_addr,
            stopping: AtomicBool::new(false),
            stop_lock: Mutex::new(false),
            stop_requested: Condvar::new(),
            loop_error: Mutex::new(None),
            waker,
        });
        Ok(Server {
            listener,
            pool,
            poll,
            shared,
        })
    }
}

/// How many connections may wait in a listener's queue for `accept`.
#[cfg(unix)]
const LISTEN_BACKLOG: i32 = 1024;

/// Binds the first of `addrs` that can be bound with `SO_REUSEADDR` and `SO_REUSEPORT` set, as
/// [`TcpListener::bind`] does without the latter; the last error if none can.
#[cfg(unix)]
fn bind_reuse_port(addrs: &[SocketAddr]) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let mut last = io::Error::new(
        io::ErrorKind::InvalidInput,
        "could not resolve to any address",
    );
    for addr in addrs {
        let attempt = (|| {
            let socket = Socket::new(Domain::for_address(*addr), Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            socket.set_reuse_port(true)?;
            socket.bind(&(*addr).into())?;
            socket.listen(LISTEN_BACKLOG)?;
            Ok(TcpListener::from(socket))
        })();
        match attempt {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// `SO_REUSEPORT` is a Unix option.
#[cfg(not(unix))]
fn bind_reuse_port(_addrs: &[SocketAddr]) -> io::Result<TcpListener> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT is not available on this system",
    ))
}

/// Why a server could not start or stopped with an error.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// The address (first field) could not be resolved or bound, or the listener given to
    /// [`ServerBuilder::listener`] could not be used.
    Bind(String, io::Error),
    /// The worker pool could not start.
    Pool(BuildError),
    /// The readiness poller could not be created.
    Poll(io::Error),
    /// A setting is out of range (the message says which and why).
    Config(String),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            ServerError::Pool(e) => write!(f, "cannot start the worker pool: {e}"),
            ServerError::Poll(e) => write!(f, "cannot create the readiness poller: {e}"),
            ServerError::Config(why) => write!(f, "invalid server configuration: {why}"),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Bind(_, e) | ServerError::Poll(e) => Some(e),
            ServerError::Pool(e) => Some(e),
            ServerError::Config(_) => None,
        }
    }
}

/// A bound HTTP/1.1 server. [`serve`](Server::serve) runs it until a [`ShutdownHandle`] stops it.
pub struct Server {
    listener: TcpListener,
    pool: ThreadPool,
    poll: Poll,
    shared: Arc<Shared>,
}

/// What a server did, returned by [`Server::serve`] after shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeReport {
    /// Connections accepted (not counting refused ones).
    pub connections: u64,
    /// Connections refused with 503 because the server was at capacity.
    pub rejected: u64,
    /// Connections closed unfinished when the grace period ran out: responses still going out to
    /// slow readers, and requests whose handler had not returned (0 after a clean drain).
    pub unfinished: usize,
}

/// Stops a running [`Server`]. Cheap to clone; any clone may stop it, from any thread.
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("addr", &self.shared.local_addr)
            .finish()
    }
}

impl ShutdownHandle {
    /// Begins a graceful shutdown and returns at once: the accept loop stops, idle connections close,
    /// in-flight requests finish with `Connection: close`. [`Server::serve`] returns when the drain is
    /// done or the grace period has passed. Idempotent.
    pub fn shutdown(&self) {
        if self.shared.request_stop() {
            log::info!("shutdown requested: no longer accepting connections");
        }
    }

    /// Has shutdown been requested?
    pub fn is_shutting_down(&self) -> bool {
        self.shared.stopping()
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.shared.local_addr)
            .field("config", &self.shared.config)
            .field("pool", &self.pool)
            .finish()
    }
}

impl Server {
    /// A [`ServerBuilder`] with the defaults.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The address the server listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// A handle that stops this server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Accepts connections and serves them with `handler` until shutdown, then drains.
    ///
    /// # Errors
    ///
    /// If the readiness poller fails (registering the listener, or waiting). Accept errors are
    /// logged and retried, never returned.
    pub fn serve(self, handler: impl Handler) -> io::Result<ServeReport> {
        let Server {
            listener,
            pool,
            poll,
            shared,
        } = self;
        let waker = Arc::clone(&shared.waker);
        let (counts, unfinished) =
            poller::serve(poll, waker, listener, shared, pool, Arc::new(handler))?;
        Ok(ServeReport {
            connections: counts.connections,
            rejected: counts.rejected,
            unfinished,
        })
    }
}

/// Answers a connection over capacity with `503` and closes it, from the event loop: one
/// non-blocking write into the new socket's empty send buffer (it always fits; if it somehow did
/// not, the client sees a close instead).
pub(crate) fn refuse(mut stream: TcpStream, peer: SocketAddr) {
    log::warn!("{peer}: at capacity; answering 503");
    let body = "503 Service Unavailable\n";
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nDate: {date}\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write(reply.as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
