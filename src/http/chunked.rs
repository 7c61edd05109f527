//! A stateful decoder for `Transfer-Encoding: chunked` request bodies (RFC 9112 §7.1).
//!
//! The decoder is a byte-level state machine, so feeding the same bytes in any slicing gives
//! the same output and the same result. It enforces limits on the chunk-size digits, the total
//! bytes of chunk extensions, the trailer section and the decoded body, and it rejects bodies
//! whose framing overhead is out of proportion to their data. Trailer fields are validated and
//! discarded: they are never merged into the request's header fields (RFC 9112 §7.1.2).

use super::DEFAULT_MAX_BODY;
use super::error::ParseError;
use super::tables::{TCHAR, is_bad_value_byte};

/// Most hex digits in a chunk-size (16 digits fill a `u64`); more gives
/// [`ParseError::ChunkSizeOverflow`]. Leading zeros count.
pub const MAX_CHUNK_SIZE_DIGITS: u32 = 16;
/// Default budget for all chunk-extension bytes of one body (hyper uses the same 16 KiB).
pub const DEFAULT_MAX_CHUNK_EXTENSIONS: usize = 16 * 1024;
/// Default budget for the bytes of the trailer section.
pub const DEFAULT_MAX_TRAILER_BYTES: usize = 16 * 1024;
/// Default budget for the number of trailer fields.
pub const DEFAULT_MAX_TRAILER_FIELDS: usize = 100;
/// Framing bytes (size lines and CRLFs) allowed beyond one per data byte: a body may spend at
/// most this many plus its data length on framing before [`ParseError::ChunkOverhead`].
const OVERHEAD_ALLOWANCE: u64 = 64 * 1024;

/// Limits for a [`ChunkedDecoder`].
///
/// # Examples
///
/// ```
/// use poolserve::http::{ChunkedDecoder, ChunkedLimits};
/// let limits = ChunkedLimits { max_trailer_fields: 0, ..ChunkedLimits::default() };
/// let _decoder = ChunkedDecoder::with_limits(limits);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedLimits {
    /// Largest decoded body; larger gives [`ParseError::BodyTooLarge`] (413).
    pub max_body: u64,
    /// Budget for all chunk-extension bytes; more gives [`ParseError::ChunkExtensionTooLarge`].
    pub max_extensions: usize,
    /// Budget for trailer-section bytes; more gives [`ParseError::TrailersTooLarge`] (431).
    pub max_trailer_bytes: usize,
    /// Budget for trailer fields; more gives [`ParseError::TrailersTooLarge`] (431).
    pub max_trailer_fields: usize,
}

impl Default for ChunkedLimits {
    fn default() -> Self {
        ChunkedLimits {
            max_body: DEFAULT_MAX_BODY,
            max_extensions: DEFAULT_MAX_CHUNK_EXTENSIONS,
            max_trailer_bytes: DEFAULT_MAX_TRAILER_BYTES,
            max_trailer_fields: DEFAULT_MAX_TRAILER_FIELDS,
        }
    }
}

/// What one call of [`ChunkedDecoder::decode`] did.
///
/// # Examples
///
/// ```
/// use poolserve::http::ChunkedDecoder;
/// let mut out = Vec::new();
/// let status = ChunkedDecoder::new(100).decode(b"0\r\n\r\nNEXT", &mut out)?;
/// assert!(status.done);
/// assert_eq!(status.consumed, 5);
/// # Ok::<(), poolserve::http::ParseError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedStatus {
    /// Bytes of the input that belong to the chunked body. Less than the input length only
    /// when `done`: the rest belongs to the next request.
    pub consumed: usize,
    /// Whether the last chunk and the trailer section have been read.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading chunk-size hex digits.
    Size,
    /// Whitespace after the size; only more whitespace or `;` may follow (BWS).
    SizeBws,
    /// After `;` (and BWS): the extension name must start.
    ExtPreName,
    /// Inside an extension name.
    ExtName,
    /// Whitespace after an extension name: `=`, `;` or more whitespace.
    ExtPostName,
    /// After `=` (and BWS): a token or a quoted string must start.
    ExtPreValue,
    /// Inside a token extension value.
    ExtToken,
    /// Inside a quoted extension value.
    ExtQuoted,
    /// After a backslash inside a quoted value.
    ExtQuotedEscape,
    /// Right after a closing quote.
    ExtAfterQuote,
    /// Whitespace after an extension value: `;` or more whitespace.
    ExtPostValue,
    /// CR of the chunk-size line seen, LF expected.
    SizeLf,
    /// Copying chunk data.
    Data,
    /// Data done, CR expected.
    DataCr,
    /// Data CR seen, LF expected.
    DataLf,
    /// At the start of a trailer line (or of the final CRLF).
    TrailerStart,
    /// Inside a trailer field name.
    TrailerName,
    /// Inside a trailer field value.
    TrailerValue,
    /// CR of a trailer line seen, LF expected.
    TrailerLf,
    /// CR of the final empty line seen, LF expected.
    FinalLf,
    /// The body is complete.
    Done,
}

/// Decodes a chunked body incrementally.
///
/// Feed it the bytes after the request head, in as many calls as they arrive. Decoded data is
/// appended to `out`; once [`ChunkedStatus::done`] is set, the bytes after `consumed` belong to
/// the next request. After an error, every later call returns the same error.
///
/// # Examples
///
/// ```
/// use poolserve::http::ChunkedDecoder;
///
/// let mut decoder = ChunkedDecoder::new(1024);
/// let mut body = Vec::new();
/// let first = decoder.decode(b"5\r\nhel", &mut body)?;
/// assert!(!first.done);
/// let second = decoder.decode(b"lo\r\n0\r\nX-Trailer: t\r\n\r\n", &mut body)?;
/// assert!(second.done);
/// assert_eq!(body, b"hello");
/// # Ok::<(), poolserve::http::ParseError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    limits: ChunkedLimits,
    state: State,
    size: u64,
    digits: u32,
    remaining: u64,
    body: u64,
    overhead: u64,
    extensions: usize,
    trailer_bytes: usize,
    trailer_fields: usize,
    failed: Option<ParseError>,
}

impl ChunkedDecoder {
    /// A decoder with the given body limit and default values for the other
    /// [`ChunkedLimits`].
    ///
    /// # Examples
    ///
    /// ```
    /// use poolserve::http::{ChunkedDecoder, ParseError};
    /// let mut out = Vec::new();
    /// let err = ChunkedDecoder::new(3).decode(b"5\r\nhello\r\n", &mut out).unwrap_err();
    /// assert_eq!(err, ParseError::BodyTooLarge);
    /// ```
    #[must_use]
    pub fn new(max_body: u64) -> Self {
        Self::with_limits(ChunkedLimits {
            max_body,
            ..ChunkedLimits::default()
        })
    }

    /// A decoder with explicit limits.
    ///
    /// # Examples
    ///
    /// ```
    /// use poolserve::http::{ChunkedDecoder, ChunkedLimits};
    /// let decoder = ChunkedDecoder::with_limits(ChunkedLimits::default());
    /// assert!(!decoder.is_done());
    /// ```
    #[must_use]
    pub fn with_limits(limits: ChunkedLimits) -> Self {
        ChunkedDecoder {
            limits,
            state: State::Size,
            size: 0,
            digits: 0,
            remaining: 0,
            body: 0,
            overhead: 0,
            extensions: 0,
            trailer_bytes: 0,
            trailer_fields: 0,
            failed: None,
        }
    }

    /// Whether the whole body (last chunk and trailers) has been decoded.
    ///
    /// # Examples
    ///
    /// ```
    /// use poolserve::http::ChunkedDecoder;
    /// let mut d = ChunkedDecoder::new(10);
    /// d.decode(b"0\r\n\r\n", &mut Vec::new())?;
    /// assert!(d.is_done());
    /// # Ok::<(), poolserve::http::ParseError>(())
    /// ```
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The sum of the sizes of the chunks started so far (what counts against the body
    /// limit), which is at least the number of data bytes output.
    ///
    /// # Examples
    ///
    /// ```
    /// use poolserve::http::ChunkedDecoder;
    /// let mut d = ChunkedDecoder::new(10);
    /// d.decode(b"3\r\nab", &mut Vec::new())?;
    /// assert_eq!(d.body_len(), 3);
    /// # Ok::<(), poolserve::http::ParseError>(())
    /// ```
    #[must_use]
    pub fn body_len(&self) -> u64 {
        self.body
    }

    /// Decodes as much of `input` as belongs to the body, appending data to `out`.
    ///
    /// # Errors
    ///
    /// [`ParseError::BadChunkSize`], [`ParseError::ChunkSizeOverflow`],
    /// [`ParseError::BadChunkExtension`], [`ParseError::ChunkExtensionTooLarge`],
    /// [`ParseError::BadChunkData`], [`ParseError::ChunkOverhead`],
    /// [`ParseError::BadTrailer`], [`ParseError::TrailersTooLarge`] and
    /// [`ParseError::BodyTooLarge`]; all of them close the connection. Data decoded before the
    /// error may already be in `out`.
    ///
    /// # Examples
    ///
    /// ```
    /// use poolserve::http::{ChunkedDecoder, ParseError};
    /// let mut out = Vec::new();
    /// let err = ChunkedDecoder::new(100).decode(b"+5\r\nhello\r\n", &mut out).unwrap_err();
    /// assert_eq!(err, ParseError::BadChunkSize);
    /// ```
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<ChunkedStatus, ParseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        match self.run(input, out) {
            Ok(status) => Ok(status),
            Err(e) => {
                self.failed = Some(e);
                Err(e)
            }
        }
    }

    fn run(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<ChunkedStatus, ParseError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Done {
                break;
            }
            if self.state == State::Data {
                let available = input.len() - i;
                let take = usize::try_from(self.remaining).map_or(available, |r| r.min(available));
                out.extend_from_slice(&input[i..i + take]);
                i += take;
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            self.step(input[i])?;
            i += 1;
        }
        Ok(ChunkedStatus {
            consumed: i,
            done: self.state == State::Done,
        })
    }

    /// Advances the state machine by one byte outside chunk data.
    fn step(&mut self, b: u8) -> Result<(), ParseError> {
        use State::*;
        let is_ws = b == b' ' || b == b'\t';
        let is_tchar = TCHAR[usize::from(b)];
        match self.state {
            Size | SizeBws | SizeLf | DataCr | DataLf => {
                self.overhead += 1;
                if self.overhead > OVERHEAD_ALLOWANCE.saturating_add(self.body) {
                    return Err(ParseError::ChunkOverhead);
                }
            }
            ExtPreName | ExtName | ExtPostName | ExtPreValue | ExtToken | ExtQuoted
            | ExtQuotedEscape | ExtAfterQuote | ExtPostValue => {
                self.extensions += 1;
                if self.extensions > self.limits.max_extensions {
                    return Err(ParseError::ChunkExtensionTooLarge);
                }
            }
            TrailerStart | TrailerName | TrailerValue | TrailerLf | FinalLf => {
                self.trailer_bytes += 1;
                if self.trailer_bytes > self.limits.max_trailer_bytes {
                    return Err(ParseError::TrailersTooLarge);
                }
            }
            Data | Done => {}
        }
        self.state = match self.state {
            Size => {
                if let Some(d) = super::tables::hex_value(b) {
                    self.digits += 1;
                    if self.digits > MAX_CHUNK_SIZE_DIGITS {
                        return Err(ParseError::ChunkSizeOverflow);
                    }
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(u64::from(d)))
                        .ok_or(ParseError::ChunkSizeOverflow)?;
                    Size
                } else if self.digits == 0 {
                    return Err(ParseError::BadChunkSize);
                } else {
                    match b {
                        b'\r' => SizeLf,
                        b';' => ExtPreName,
                        b' ' | b'\t' => SizeBws,
                        _ => return Err(ParseError::BadChunkSize),
                    }
                }
            }
            SizeBws => match b {
                b';' => ExtPreName,
                b' ' | b'\t' => SizeBws,
                _ => return Err(ParseError::BadChunkSize),
            },
            ExtPreName if is_ws => ExtPreName,
            ExtPreName if is_tchar => ExtName,
            ExtName if is_tchar => ExtName,
            ExtName | ExtToken | ExtAfterQuote if b == b'\r' => SizeLf,
            ExtName | ExtToken | ExtAfterQuote | ExtPostName | ExtPostValue if b == b';' => {
                ExtPreName
            }
            ExtName | ExtPostName if is_ws => ExtPostName,
            ExtName | ExtPostName if b == b'=' => ExtPreValue,
            ExtPreValue if is_ws => ExtPreValue,
            ExtPreValue if is_tchar => ExtToken,
            ExtPreValue if b == b'"' => ExtQuoted,
            ExtToken if is_tchar => ExtToken,
            ExtToken | ExtAfterQuote | ExtPostValue if is_ws => ExtPostValue,
            ExtQuoted => match b {
                b'"' => ExtAfterQuote,
                b'\\' => ExtQuotedEscape,
                _ if is_bad_value_byte(b) => return Err(ParseError::BadChunkExtension),
                _ => ExtQuoted,
            },
            ExtQuotedEscape if !is_bad_value_byte(b) => ExtQuoted,
            ExtPreName | ExtName | ExtPostName | ExtPreValue | ExtToken | ExtQuotedEscape
            | ExtAfterQuote | ExtPostValue => return Err(ParseError::BadChunkExtension),
            SizeLf => {
                if b != b'\n' {
                    return Err(ParseError::BadChunkData);
                }
                if self.size == 0 {
                    TrailerStart
                } else {
                    self.body = self
                        .body
                        .checked_add(self.size)
                        .filter(|&total| total <= self.limits.max_body)
                        .ok_or(ParseError::BodyTooLarge)?;
                    self.remaining = self.size;
                    Data
                }
            }
            DataCr if b == b'\r' => DataLf,
            DataLf if b == b'\n' => {
                self.size = 0;
                self.digits = 0;
                Size
            }
            DataCr | DataLf => return Err(ParseError::BadChunkData),
            TrailerStart => match b {
                b'\r' => FinalLf,
                _ if is_tchar => {
                    self.trailer_fields += 1;
                    if self.trailer_fields > self.limits.max_trailer_fields {
                        return Err(ParseError::TrailersTooLarge);
                    }
                    TrailerName
                }
                _ => return Err(ParseError::BadTrailer),
            },
            TrailerName => match b {
                b':' => TrailerValue,
                _ if is_tchar => TrailerName,
                _ => return Err(ParseError::BadTrailer),
            },
            TrailerValue => match b {
                b'\r' => TrailerLf,
                _ if is_bad_value_byte(b) => return Err(ParseError::BadTrailer),
                _ => TrailerValue,
            },
            TrailerLf | FinalLf if b != b'\n' => return Err(ParseError::BadTrailer),
            TrailerLf => TrailerStart,
            FinalLf => Done,
            Data | Done => self.state,
        };
        Ok(())
    }
}
