//! A response on its way out: written without blocking, as much as the socket takes, and resumed
//! when it is writable again. A slow reader costs the bytes of this struct and an open file, never a
//! thread.
//!
//! File bodies go out with `sendfile(2)` on Linux (the kernel copies from the page cache to the
//! socket; no user-space buffer), resumable after a partial send. Where it is missing, or refuses
//! a file (`EINVAL`/`ENOSYS`, e.g. some special file systems), the same bytes go through a small
//! read-then-write buffer instead.
//!
//! The socket is anything that is a [`Wire`]: a [`TcpStream`] in the server (monomorphised, no
//! dynamic dispatch), an in-memory socket in the connection fuzz target.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};

use crate::http::response::{Rendered, Rest, read_exact_at};

/// What a connection needs of its socket: non-blocking reads and writes (`WouldBlock` when the
/// socket is not ready), shutting down the write side, and optionally `sendfile(2)`.
pub(crate) trait Wire {
    /// One read into `buf`: `Ok(0)` at EOF.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// One write of some of `data`.
    fn write(&mut self, data: &[u8]) -> io::Result<usize>;
    /// Shuts down the write side (the peer reads EOF once it has read what was sent).
    fn shutdown_write(&mut self) -> io::Result<()>;
    /// Sends up to `want` bytes of `file` from `offset` (advanced by what was sent) without
    /// copying them through user space. `Ok(None)`: the socket's buffer is full. An error of kind
    /// [`io::ErrorKind::Unsupported`] (the default) makes the caller copy the file through a
    /// buffer instead.
    fn sendfile(&mut self, file: &File, offset: &mut u64, want: u64) -> io::Result<Option<u64>> {
        let _ = (file, offset, want);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

impl Wire for TcpStream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Read::read(self, buf)
    }

    #[inline]
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        Write::write(self, data)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    #[inline]
    fn sendfile(&mut self, file: &File, offset: &mut u64, want: u64) -> io::Result<Option<u64>> {
        sendfile(self, file, offset, want)
    }
}

/// Largest piece read from a file when `sendfile` cannot be used.
const FALLBACK_CHUNK: usize = 64 * 1024;

/// Where a write stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Everything was written.
    Done,
    /// The socket's send buffer is full: wait for writability.
    Blocked,
    /// `budget` bytes were written and more remain: let other connections have the worker.
    Budget,
}

/// A response's bytes not yet written.
pub(crate) struct Output {
    /// Head (and small body) bytes.
    bytes: Vec<u8>,
    /// How many of `bytes` are written.
    pos: usize,
    /// The rest of the body.
    rest: Rest,
    /// Bytes of a file read for the fallback copy and not yet written (`chunk[chunk_pos..]`).
    chunk: Vec<u8>,
    chunk_pos: usize,
    /// `sendfile` refused this file: copy through `chunk`.
    no_sendfile: bool,
    /// Body bytes in all, and how many of them are at the end of `bytes`.
    body_len: u64,
    body_in_bytes: u64,
    /// Body bytes written so far from `rest`.
    rest_sent: u64,
}

impl Output {
    /// The output of a rendered response.
    pub(crate) fn new(r: Rendered) -> Output {
        Output {
            bytes: r.bytes,
            pos: 0,
            rest: r.rest,
            chunk: Vec::new(),
            chunk_pos: 0,
            no_sendfile: false,
            body_len: r.body_len,
            body_in_bytes: r.body_in_bytes,
            rest_sent: 0,
        }
    }

    /// Raw bytes with no body (`100 Continue`).
    pub(crate) fn raw(bytes: &[u8]) -> Output {
        Output {
            bytes: bytes.to_vec(),
            pos: 0,
            rest: Rest::None,
            chunk: Vec::new(),
            chunk_pos: 0,
            no_sendfile: false,
            body_len: 0,
            body_in_bytes: 0,
            rest_sent: 0,
        }
    }

    /// Body bytes the client has been sent so far.
    pub(crate) fn body_sent(&self) -> u64 {
        let head_len = (self.bytes.len() as u64).saturating_sub(self.body_in_bytes);
        let from_bytes = (self.pos as u64).saturating_sub(head_len);
        (from_bytes + self.rest_sent).min(self.body_len)
    }

    /// Bytes this output holds in memory and has not written yet (a file's unread part is not
    /// in memory and not counted).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn held(&self) -> usize {
        let rest = match &self.rest {
            Rest::Bytes(b) => b.len() - self.rest_sent as usize,
            _ => 0,
        };
        (self.bytes.len() - self.pos) + rest + (self.chunk.len() - self.chunk_pos)
    }

    /// Writes what the socket takes, at most about `budget` bytes. Adds what it wrote to
    /// `written`.
    ///
    /// # Errors
    ///
    /// The socket or the file failed (or the file shrank): close the connection.
    pub(crate) fn write_to<S: Wire>(
        &mut self,
        stream: &mut S,
        budget: u64,
        written: &mut u64,
    ) -> io::Result<Progress> {
        let start = *written;
        while self.pos < self.bytes.len() {
            match write_some(stream, &self.bytes[self.pos..])? {
                Some(n) => {
                    self.pos += n;
                    *written += n as u64;
                }
                None => return Ok(Progress::Blocked),
            }
        }
        if let Rest::Bytes(b) = &self.rest {
            while (self.rest_sent as usize) < b.len() {
                if *written - start >= budget {
                    return Ok(Progress::Budget);
                }
                match write_some(stream, &b[self.rest_sent as usize..])? {
                    Some(n) => {
                        self.rest_sent += n as u64;
                        *written += n as u64;
                    }
                    None => return Ok(Progress::Blocked),
                }
            }
            self.rest = Rest::None;
        }
        while let Rest::File { .. } = self.rest {
            if *written - start >= budget {
                return Ok(Progress::Budget);
            }
            // A whole budget per call, not what the head left of it: a file that fits in one
            // budget goes out in one `sendfile` after its head (nginx, with its 2 MiB chunk
            // limit, does the same), not in two.
            match self.send_file(stream, budget)? {
                Some(0) => {}
                Some(n) => *written += n,
                None => return Ok(Progress::Blocked),
            }
        }
        Ok(Progress::Done)
    }

    /// Sends up to `want` bytes of the file. `Ok(None)`: the socket is full. Sets `rest` to
    /// `None` when the file is done.
    fn send_file<S: Wire>(&mut self, stream: &mut S, want: u64) -> io::Result<Option<u64>> {
        // Bytes already read for the fallback copy go first.
        if self.chunk_pos < self.chunk.len() {
            return match write_some(stream, &self.chunk[self.chunk_pos..])? {
                Some(n) => {
                    self.chunk_pos += n;
                    self.rest_sent += n as u64;
                    Ok(Some(n as u64))
                }
                None => Ok(None),
            };
        }
        let Rest::File { file, offset, len } = &mut self.rest else {
            return Ok(Some(0));
        };
        if *len == 0 {
            self.rest = Rest::None;
            return Ok(Some(0));
        }
        let want = want.min(*len);
        if !self.no_sendfile {
            match stream.sendfile(file, offset, want) {
                Ok(Some(0)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    ));
                }
                Ok(Some(n)) => {
                    *len -= n;
                    self.rest_sent += n;
                    return Ok(Some(n));
                }
                Ok(None) => return Ok(None),
                Err(e) if sendfile_unsupported(&e) => self.no_sendfile = true,
                Err(e) => return Err(e),
            }
        }
        let n = (want as usize).min(FALLBACK_CHUNK);
        self.chunk.resize(n, 0);
        read_exact_at(file, &mut self.chunk, *offset)?;
        *offset += n as u64;
        *len -= n as u64;
        self.chunk_pos = 0;
        Ok(Some(0))
    }
}

/// One non-blocking write. `Ok(None)`: the socket's buffer is full.
fn write_some<S: Wire>(stream: &mut S, data: &[u8]) -> io::Result<Option<usize>> {
    loop {
        match stream.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One `sendfile` of up to `want` bytes from `offset` (advanced by what was sent). `Ok(None)`:
/// the socket's buffer is full.
#[cfg(target_os = "linux")]
fn sendfile(
    stream: &TcpStream,
    file: &File,
    offset: &mut u64,
    want: u64,
) -> io::Result<Option<u64>> {
    let count = usize::try_from(want).unwrap_or(usize::MAX);
    loop {
        match rustix::fs::sendfile(stream, file, Some(offset), count) {
            Ok(n) => return Ok(Some(n as u64)),
            Err(rustix::io::Errno::AGAIN) => return Ok(None),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// No `sendfile` here: always the fallback copy.
#[cfg(not(target_os = "linux"))]
fn sendfile(_: &TcpStream, _: &File, _: &mut u64, _: u64) -> io::Result<Option<u64>> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Does this error mean "use the fallback copy for this file"?
fn sendfile_unsupported(e: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    if let Some(code) = e.raw_os_error() {
        let errno = rustix::io::Errno::from_raw_os_error(code);
        return errno == rustix::io::Errno::INVAL || errno == rustix::io::Errno::NOSYS;
    }
    e.kind() == io::ErrorKind::Unsupported
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    use super::*;

    /// A file body larger than the socket buffer goes out in pieces, through `sendfile` and
    /// through the fallback copy, resuming where it stopped, byte for byte.
    #[test]
    fn a_large_file_resumes_after_partial_sends_with_and_without_sendfile() {
        for no_sendfile in [false, true] {
            let dir = std::env::temp_dir().join(format!(
                "poolserve-output-{}-{no_sendfile}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("big");
            let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (mut server, _) = listener.accept().unwrap();
            server.set_nonblocking(true).unwrap();
            let file = File::open(&path).unwrap();
            let mut out = Output::new(Rendered {
                bytes: b"HEAD".to_vec(),
                rest: Rest::File {
                    file,
                    offset: 10,
                    len: data.len() as u64 - 10,
                },
                body_len: data.len() as u64 - 10,
                body_in_bytes: 0,
            });
            out.no_sendfile = no_sendfile;
            let reader = std::thread::spawn(move || {
                let mut client = client;
                // The test's client, never a worker: a blocking read with a deadline.
                client
                    .set_read_timeout(Some(std::time::Duration::from_secs(20)))
                    .unwrap();
                let mut got = Vec::new();
                client.read_to_end(&mut got).unwrap();
                got
            });
            let mut written = 0;
            let mut blocked = 0;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the file was not sent within 60 s"
                );
                match out.write_to(&mut server, 256 * 1024, &mut written).unwrap() {
                    Progress::Done => break,
                    Progress::Blocked => {
                        blocked += 1;
                        std::thread::yield_now();
                    }
                    Progress::Budget => {}
                }
            }
            assert_eq!(out.body_sent(), data.len() as u64 - 10);
            drop(server);
            let got = reader.join().unwrap();
            assert_eq!(&got[..4], b"HEAD");
            assert!(
                got[4..] == data[10..],
                "body differs (no_sendfile {no_sendfile})"
            );
            assert_eq!(written, got.len() as u64);
            let _ = blocked;
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
