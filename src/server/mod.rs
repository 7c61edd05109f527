//! The HTTP/1.1 server: an accept loop that hands each connection to a [`ThreadPool`].
//!
//! * **Admission.** At most `threads + queue_capacity` connections are held at once. One more is
//!   answered `503 Service Unavailable` with `Retry-After: 1` and closed by the accept loop itself,
//!   so overload never queues without bound and never blocks accepting.
//! * **Fairness.** A worker serves one connection at a time (the Rust Book's design). A keep-alive
//!   connection that goes idle gives its worker up as soon as another connection is waiting for one,
//!   and otherwise after the keep-alive timeout.
//! * **Accept errors** (`ECONNABORTED`, `EMFILE`, …) are logged and retried with a short back-off;
//!   none stops the server.
//! * **Shutdown** ([`ShutdownHandle::shutdown`]): the accept loop stops (it is woken by a connection
//!   to itself); idle keep-alive connections close within 100 ms; a request in flight finishes and its
//!   response carries `Connection: close`; the pool then drains within the grace period.

mod config;
mod conn;

pub use config::{
    Config, DEFAULT_BODY_TIMEOUT, DEFAULT_GRACE_PERIOD, DEFAULT_HEADER_TIMEOUT,
    DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_MAX_REQUESTS_PER_CONNECTION, DEFAULT_QUEUE_CAPACITY,
    DEFAULT_WRITE_TIMEOUT,
};

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::handler::Handler;
use crate::http::Limits;
use crate::pool::{BuildError, ThreadPool};

/// State shared by the accept loop, the connections and the shutdown handles.
pub(crate) struct Shared {
    config: Config,
    local_addr: SocketAddr,
    /// Set once by [`ShutdownHandle::shutdown`]; never cleared.
    stopping: AtomicBool,
    /// Connections accepted and not yet closed (admission control).
    open: AtomicUsize,
    /// Connections queued in the pool, not yet picked up by a worker.
    waiting: AtomicUsize,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
    fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
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
}

/// The address a [`ServerBuilder`] binds unless told otherwise.
pub const DEFAULT_BIND: &str = "127.0.0.1:7878";

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            addr: DEFAULT_BIND.to_owned(),
            config: Config::default(),
        }
    }
}

impl ServerBuilder {
    /// The address to listen on. Default is [`DEFAULT_BIND`]; port 0 picks a free port.
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.addr = addr.into();
        self
    }
    /// Worker threads. Default 4.
    pub fn threads(mut self, n: usize) -> Self {
        self.config.threads = n;
        self
    }
    /// Connections that may wait for a worker before new ones get 503. Default
    /// [`DEFAULT_QUEUE_CAPACITY`].
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.config.queue_capacity = n;
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
    /// [`ServerError::Pool`] if the pool cannot start (e.g. zero threads or zero queue capacity).
    pub fn build(self) -> Result<Server, ServerError> {
        let addrs: Vec<SocketAddr> = self
            .addr
            .to_socket_addrs()
            .map_err(|e| ServerError::Bind(self.addr.clone(), e))?
            .collect();
        let listener =
            TcpListener::bind(&addrs[..]).map_err(|e| ServerError::Bind(self.addr.clone(), e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| ServerError::Bind(self.addr.clone(), e))?;
        let pool = ThreadPool::builder()
            .threads(self.config.threads)
            .thread_name("poolserve-http")
            .queue_capacity(Some(self.config.queue_capacity))
            .build()
            .map_err(ServerError::Pool)?;
        let shared = Arc::new(Shared {
            config: self.config,
            local_addr,
            stopping: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
        });
        Ok(Server {
            listener,
            pool,
            shared,
        })
    }
}

/// Why a server could not start or stopped with an error.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// The address (first field) could not be resolved or bound.
    Bind(String, io::Error),
    /// The worker pool could not start.
    Pool(BuildError),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            ServerError::Pool(e) => write!(f, "cannot start the worker pool: {e}"),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Bind(_, e) => Some(e),
            ServerError::Pool(e) => Some(e),
        }
    }
}

/// A bound HTTP/1.1 server. [`serve`](Server::serve) runs it until a [`ShutdownHandle`] stops it.
pub struct Server {
    listener: TcpListener,
    pool: ThreadPool,
    shared: Arc<Shared>,
}

/// What a server did, returned by [`Server::serve`] after shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeReport {
    /// Connections accepted and handed to a worker.
    pub connections: u64,
    /// Connections refused with 503 because the server was at capacity.
    pub rejected: u64,
    /// Connections still being served when the grace period ran out (0 after a clean drain).
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
        if self.shared.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        log::info!("shutdown requested: no longer accepting connections");
        // Wake the accept loop, which is blocked in accept(): connect to ourselves.
        let mut addr = self.shared.local_addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            log::warn!(
                "could not wake the accept loop at {addr}: {e}; it stops at the next connection"
            );
        }
    }

    /// Has shutdown been requested?
    pub fn is_shutting_down(&self) -> bool {
        self.shared.stopping()
    }
}

/// Decrements the open-connection count when a connection's job ends, on every path.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
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
    /// None today: accept errors are logged and retried, never returned. The `Result` leaves room
    /// for fatal listener errors.
    pub fn serve(self, handler: impl Handler) -> io::Result<ServeReport> {
        let Server {
            listener,
            pool,
            shared,
        } = self;
        let handler: Arc<dyn Handler> = Arc::new(handler);
        let capacity = shared.config.threads + shared.config.queue_capacity;
        let (mut connections, mut rejected) = (0u64, 0u64);
        let mut backoff = Duration::from_millis(5);
        while !shared.stopping() {
            let (stream, peer) = match listener.accept() {
                Ok(conn) => {
                    backoff = Duration::from_millis(5);
                    conn
                }
                Err(e) => {
                    // ECONNABORTED, EMFILE, ENFILE, ENOBUFS…: all transient for a server.
                    log::warn!("accept failed: {e}; retrying in {backoff:?}");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            if shared.stopping() {
                break; // the wake-up connection, or a client that raced shutdown: closed unanswered
            }
            if shared.open.fetch_add(1, Ordering::AcqRel) >= capacity {
                shared.open.fetch_sub(1, Ordering::AcqRel);
                rejected += 1;
                refuse(stream, peer);
                continue;
            }
            let guard = OpenGuard(Arc::clone(&shared));
            let handler = Arc::clone(&handler);
            shared.waiting.fetch_add(1, Ordering::AcqRel);
            let job = move || {
                let _guard = guard;
                let shared = &*_guard.0;
                shared.waiting.fetch_sub(1, Ordering::AcqRel);
                conn::Connection::new(stream, peer, shared, &*handler).run();
            };
            // Admission control keeps the queue below its bound, so this never blocks for long.
            match pool.execute(job) {
                Ok(()) => connections += 1,
                Err(e) => {
                    // Only possible if the pool was closed; the job (and its socket) is dropped,
                    // which closes the connection cleanly.
                    shared.waiting.fetch_sub(1, Ordering::AcqRel);
                    log::warn!("{peer}: connection dropped: {e}");
                    drop(e.into_inner());
                }
            }
        }
        drop(listener);
        log::info!(
            "draining: {} connections open",
            shared.open.load(Ordering::Acquire)
        );
        // `unwrap_or_default`: the error (called from a worker) cannot happen, the pool is private.
        let report = pool
            .shutdown_timeout(shared.config.grace_period)
            .unwrap_or_default();
        let unfinished = report.still_running + report.still_queued;
        if unfinished > 0 {
            log::warn!("grace period over: {unfinished} connections still open");
        } else {
            log::info!("drained; shut down");
        }
        Ok(ServeReport {
            connections,
            rejected,
            unfinished,
        })
    }
}

/// Answers a connection over capacity with `503` and closes it (from the accept loop: a short
/// write into an empty socket buffer, bounded by a write timeout).
fn refuse(mut stream: TcpStream, peer: SocketAddr) {
    log::warn!("{peer}: at capacity; answering 503");
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let body = "503 Service Unavailable\n";
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let _ = write!(
        stream,
        "HTTP/1.1 503 Service Unavailable\r\nDate: {date}\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
