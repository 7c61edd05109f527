//! Server settings and their defaults.

use std::time::Duration;

use crate::http::Limits;

/// Default for [`Config::header_timeout`]: 10 s from a request's first byte to its complete head.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`Config::body_timeout`]: 30 s without a byte of request body.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`Config::body_total_timeout`]: 60 s from a complete head to the body's last byte
/// (so a client sending one byte every few seconds cannot keep a request open for hours).
pub const DEFAULT_BODY_TOTAL_TIMEOUT: Duration = Duration::from_secs(60);
/// Default for [`Config::max_buffered_body`]: 64 MiB of request bodies held in memory at once,
/// server-wide.
pub const DEFAULT_MAX_BUFFERED_BODY: u64 = 64 * 1024 * 1024;
/// Default for [`Config::keep_alive_timeout`]: 5 s idle between requests.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for [`Config::write_timeout`]: 30 s for a response to make progress to a client that
/// is not reading (nginx's `send_timeout` is 60 s).
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`Config::grace_period`]: 10 s for in-flight requests at shutdown.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(10);
/// Default for [`Config::max_requests_per_connection`].
pub const DEFAULT_MAX_REQUESTS_PER_CONNECTION: usize = 1000;
/// Default for [`Config::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Everything the server can be told, with the defaults named above.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Worker threads. Default 4.
    pub threads: usize,
    /// Connections held open at once (idle or busy); one more is answered `503` with
    /// `Retry-After` and closed. Default [`DEFAULT_MAX_CONNECTIONS`]. Keep it below the process's
    /// open-file limit (`ulimit -n`).
    pub max_connections: usize,
    /// Parser limits (request line, head, header count, body). Default [`Limits::default`].
    pub limits: Limits,
    /// From a request's first byte to its complete head; then `408` and close.
    pub header_timeout: Duration,
    /// Longest wait for the next byte of a request body; then `408` and close.
    pub body_timeout: Duration,
    /// Longest time from a complete head to the last byte of its body, however steadily the
    /// bytes come; then `408` and close.
    pub body_total_timeout: Duration,
    /// Request-body bytes held in memory at once by all connections together. A connection
    /// reading a body when this is reached stops reading (its client is slowed by TCP flow
    /// control) until other requests finish; the wait counts against
    /// [`body_total_timeout`](Config::body_total_timeout). Raised to the body limit
    /// ([`Limits::max_body`]) if set below it, so that one request can always complete.
    pub max_buffered_body: u64,
    /// Longest idle time between requests on a keep-alive connection; then a silent close.
    pub keep_alive_timeout: Duration,
    /// Longest a response may make no progress because the client is not reading (nginx's
    /// `send_timeout`); then the connection is closed. The wait holds no worker.
    pub write_timeout: Duration,
    /// Requests served on one connection before it is closed (`Connection: close` on the last).
    pub max_requests_per_connection: usize,
    /// At shutdown, how long in-flight requests get to finish.
    pub grace_period: Duration,
    /// Log one line per request (target `poolserve::access`, level info). Default on.
    pub access_log: bool,
}

/// The longest timeout or grace period accepted: deadlines are instants computed by adding these
/// to the current time, which must not overflow.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

impl Config {
    /// Checks the ranges [`ServerBuilder::build`](super::ServerBuilder::build) relies on.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.max_connections == 0 || self.max_connections > 1 << 30 {
            return Err(format!(
                "max_connections must be 1 to {}, not {}",
                1 << 30,
                self.max_connections
            ));
        }
        if self.max_requests_per_connection == 0 {
            return Err("max_requests_per_connection must be at least 1".into());
        }
        for (name, d) in [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("body_total_timeout", self.body_total_timeout),
            ("keep_alive_timeout", self.keep_alive_timeout),
            ("write_timeout", self.write_timeout),
            ("grace_period", self.grace_period),
        ] {
            if d > MAX_DURATION {
                return Err(format!("{name} must be at most a year, not {d:?}"));
            }
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            threads: crate::pool::DEFAULT_THREADS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            limits: Limits::default(),
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            body_total_timeout: DEFAULT_BODY_TOTAL_TIMEOUT,
            max_buffered_body: DEFAULT_MAX_BUFFERED_BODY,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_requests_per_connection: DEFAULT_MAX_REQUESTS_PER_CONNECTION,
            grace_period: DEFAULT_GRACE_PERIOD,
            access_log: true,
        }
    }
}
