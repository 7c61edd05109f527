//! The access log: one line per request that reached the parser, at level `info` on the target
//! `poolserve::access`, in the Combined Log Format (what `goaccess`, `awstats` and most log tools
//! read) followed by the time the request took, and by `aborted` when the response was cut short:
//!
//! ```text
//! 127.0.0.1 - - [06/Dec/2026:05:03:01 +0000] "GET /index.html HTTP/1.1" 200 1234 "-" "curl/8.5.0" 0.412ms
//! 127.0.0.1 - - [06/Dec/2026:05:03:02 +0000] "GET /big.bin HTTP/1.1" 200 65536 "-" "curl/8.5.0" 30012.118ms aborted
//! 127.0.0.1 - - [06/Dec/2026:05:03:09 +0000] "-" 408 24 "-" "-" 10000.501ms
//! ```
//!
//! Fields: client address, `-` (identd), `-` (user), the time the response was done in UTC, the
//! request line (as sent when the head arrived whole but was refused, e.g. `413`; `-` when it
//! never arrived whole or its first line is not a request line), the
//! status, the body bytes actually sent, `Referer`, `User-Agent`, and the duration from the
//! request's first byte. Everything taken from the request is escaped: printable ASCII as is,
//! `"` and `\` backslash-escaped, every other byte as `\xHH`, so a line is always one line.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::http::Request;

/// What the log line says of a request, taken when its head was parsed.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestLine {
    /// `METHOD target VERSION`, escaped; empty when the head did not parse.
    line: String,
    referer: String,
    agent: String,
}

impl RequestLine {
    /// For a request whose head did not parse.
    pub(crate) fn unparsed() -> RequestLine {
        RequestLine::default()
    }

    /// For a head the parser rejected: its first line as sent (escaped), when the whole head
    /// arrived and that line has the request line's three parts (a `413` or `431`, say); else
    /// as [`RequestLine::unparsed`].
    pub(crate) fn of_rejected(buf: &[u8], access_log: bool) -> RequestLine {
        if !access_log || crate::http::head_end(buf, 0).is_none() {
            return RequestLine::default();
        }
        let first = buf.split(|&b| b == b'\n').next().unwrap_or_default();
        let first = first.strip_suffix(b"\r").unwrap_or(first);
        if first.split(|&b| b == b' ').count() != 3 {
            return RequestLine::default();
        }
        RequestLine {
            line: escape(first),
            ..RequestLine::default()
        }
    }

    /// From a parsed head; empty (and allocation-free) when the access log is off.
    pub(crate) fn of(req: &Request<'_, '_>, access_log: bool) -> RequestLine {
        if !access_log {
            return RequestLine::default();
        }
        let field = |name| req.header(name).map(escape).unwrap_or_default();
        RequestLine {
            line: format!(
                "{} {} {}",
                req.method,
                escape(req.target.as_bytes()),
                req.version.as_str()
            ),
            referer: field("referer"),
            agent: field("user-agent"),
        }
    }
}

/// An access-log line waiting for its byte count.
pub(crate) struct Logged {
    pub(crate) peer: SocketAddr,
    pub(crate) request: RequestLine,
    pub(crate) status: u16,
    pub(crate) started: Instant,
}

impl Logged {
    /// Logs the line: `bytes` body bytes sent, `aborted` if the response was cut short.
    pub(crate) fn emit(self, bytes: u64, aborted: bool) {
        let or_dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.to_owned()
            }
        };
        log::info!(
            target: "poolserve::access",
            "{} - - [{}] \"{}\" {} {bytes} \"{}\" \"{}\" {:.3}ms{}",
            self.peer.ip(),
            clf_now(),
            or_dash(&self.request.line),
            self.status,
            or_dash(&self.request.referer),
            or_dash(&self.request.agent),
            self.started.elapsed().as_secs_f64() * 1e3,
            if aborted { " aborted" } else { "" }
        );
    }
}

/// Escapes bytes for a log line: printable ASCII as is, `"` and `\` escaped, everything else `\xHH`.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// Now as the Common Log Format writes it (`06/Dec/2026:05:03:01 +0000`), formatted at most once
/// per second per thread.
fn clf_now() -> String {
    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (secs, clf_time(secs));
        }
        c.1.clone()
    })
}

/// Seconds since the Unix epoch as `DD/Mon/YYYY:HH:MM:SS +0000`.
fn clf_time(secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_dates() {
        assert_eq!(clf_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(clf_time(951_782_400), "29/Feb/2000:00:00:00 +0000");
        assert_eq!(clf_time(1_796_534_581), "06/Dec/2026:05:23:01 +0000");
        assert_eq!(clf_time(4_102_444_799), "31/Dec/2099:23:59:59 +0000");
    }

    #[test]
    fn fields_are_escaped() {
        assert_eq!(escape(b"a\"b\\c\x01\xff"), "a\\\"b\\\\c\\x01\\xff");
    }
}
