//! The static-file handler: serves a directory tree over HTTP.
//!
//! A request goes through these steps, in order:
//!
//! 1. **Method.** `GET` and `HEAD` are served; `OPTIONS` gets `204` with `Allow`; anything else gets
//!    `405` with `Allow: GET, HEAD, OPTIONS`.
//! 2. **Path.** [`resolve()`] maps the target to a path under the root without touching the
//!    filesystem (decode once, refuse NUL/`\`/`:`/encoded `/`, normalise `.`/`..`, refuse to climb
//!    above the root, hide dot-files). See [`resolve()`] for the full pipeline.
//! 3. **Containment.** The file is opened relative to the root with `openat2(RESOLVE_BENEATH)` on
//!    Linux, so the kernel refuses any resolution — `..` or a symlink — that leaves the root (for an
//!    absolute symlink, and on other systems: canonicalise, then require the canonical root as a
//!    prefix). Symlinks that stay inside the root
//!    work; one pointing outside is answered `404`, as if absent.
//! 4. **Directories** without a trailing slash are redirected (`301`) to the slash form, with a
//!    `Location` rebuilt from the normalised segments (never `//host`, so never an open redirect)
//!    followed by the request's query, if any. With a slash, `index.html` is served, else an HTML
//!    listing if enabled, else `404`. The listing shows decoded, HTML-escaped names (and title),
//!    sizes and modification times, directories first; a symlink is listed only when a request
//!    for it would be served (it leads to a file or directory inside the root), a symlinked
//!    directory with its trailing slash. For a path ending in `/`, `index.html` is opened first, before the directory
//!    itself, so serving an index page costs one open and one stat; only when that fails is the
//!    directory opened to choose between a listing and `404`.
//! 5. **Files** get `Content-Type` (by extension; `charset=utf-8` for text), `ETag`,
//!    `Last-Modified`, `Accept-Ranges: bytes`, `X-Content-Type-Options: nosniff` and, when set,
//!    [`Cache-Control`](StaticFiles::cache_control) (also on `206` and `304`). Conditional requests,
//!    in RFC 9110 §13.2.2's order: `If-Match` (strong comparison; wins when present) or
//!    `If-Unmodified-Since` false → `412`; then `If-None-Match` (wins when present) or
//!    `If-Modified-Since` → `304`. A single
//!    `Range: bytes=…` → `206` with `Content-Range`, or `416` when unsatisfiable; `If-Range` that
//!    does not match the current validator serves the whole file. The body is streamed from the open
//!    file, so memory does not grow with file size.
//!
//!    **Precompressed siblings** ([`StaticFiles::precompressed`], on by default). When the client's
//!    `Accept-Encoding` takes `br` or `gzip` (weights honoured, `br;q=0` refuses brotli, `*` stands
//!    for the codings not named, `br` before `gzip` at equal weight; no field means no coding) and
//!    `FILE.br` or `FILE.gz` is a regular file beside `FILE`, no older than it, that sibling is sent
//!    instead: `Content-Encoding: br`/`gzip`, `FILE`'s `Content-Type`, its own `ETag` (`-br`/`-gz`
//!    inside the quotes) and `Last-Modified`; preconditions and ranges apply to the encoded bytes.
//!    The sibling is opened exactly as a requested file is (step 3), so one that is a symlink out of
//!    the root is never sent, and there is a sibling only for a `FILE` that is served itself (never
//!    for a hidden or absent one). Every answer for a file that has a usable sibling — the
//!    unencoded one, `206`, `304`, `412` and `416` too — carries `Vary: Accept-Encoding`. A request
//!    for `/FILE.br` itself gets that file as it is, without `Content-Encoding`.
//! 6. **Not found** is `404` with the root's `404.html` when there is one.
//! 7. **Out of resources.** When opening or reading a file or directory fails for want of file
//!    descriptors or memory (`EMFILE`, `ENFILE`, `ENOMEM`), the answer is `503` with
//!    `Retry-After: 1` — the file may well exist — and a warning is logged (target
//!    `poolserve::files`), at most one a second, with a count of the ones left out.

mod encoding;
mod resolve;

pub use resolve::{ResolveError, Resolved, percent_encode_into, resolve};

use std::cell::RefCell;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::handler::Handler;
use crate::http::{Body, Request, Response};

/// The methods a static-file resource allows.
pub const ALLOW: &str = "GET, HEAD, OPTIONS";

/// Serves files under a root directory. See the [module docs](self) for every step.
///
/// ```no_run
/// use poolserve::files::StaticFiles;
///
/// let files = StaticFiles::new("public")?.list_dirs(true);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct StaticFiles {
    root: PathBuf,
    /// The root, open, for `openat2` lookups relative to it.
    #[cfg(target_os = "linux")]
    root_dir: std::sync::Arc<File>,
    list_dirs: bool,
    serve_hidden: bool,
    cache_control: Option<String>,
    /// Serve `FILE.br` / `FILE.gz` for `FILE` to clients that accept them.
    precompressed: bool,
    /// Limits the warnings logged when the process runs out of file descriptors or memory.
    exhausted_warnings: Arc<RateLimit>,
}

impl StaticFiles {
    /// Serves the directory `root`.
    ///
    /// # Errors
    ///
    /// If `root` does not exist, cannot be canonicalised, or is not a directory.
    pub fn new(root: impl AsRef<Path>) -> io::Result<StaticFiles> {
        let root = fs::canonicalize(root.as_ref())?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(StaticFiles {
            #[cfg(target_os = "linux")]
            root_dir: std::sync::Arc::new(File::open(&root)?),
            root,
            list_dirs: false,
            serve_hidden: false,
            cache_control: None,
            precompressed: true,
            exhausted_warnings: Arc::new(RateLimit::new(Duration::from_secs(1))),
        })
    }

    /// Serve an HTML listing for directories that have no `index.html`. Default is off.
    pub fn list_dirs(mut self, on: bool) -> StaticFiles {
        self.list_dirs = on;
        self
    }

    /// Serve files and directories whose name starts with `.`. Default is off (they answer 404).
    pub fn serve_hidden(mut self, on: bool) -> StaticFiles {
        self.serve_hidden = on;
        self
    }

    /// Sends `Cache-Control: value` with every file answer that carries the file's validators:
    /// `200`, `206` and `304` (not listings, redirects or errors). Default is none. A value with
    /// CR, LF or NUL makes the response writer answer `500` instead, so check it first.
    ///
    /// ```no_run
    /// use poolserve::files::StaticFiles;
    ///
    /// let files = StaticFiles::new("public")?.cache_control("max-age=60");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cache_control(mut self, value: impl Into<String>) -> StaticFiles {
        self.cache_control = Some(value.into());
        self
    }

    /// Serve precompressed siblings: for `FILE`, a client whose `Accept-Encoding` takes `br` or
    /// `gzip` gets `FILE.br` or `FILE.gz` when that is a regular file inside the root no older than
    /// `FILE`, with `Content-Encoding`, `FILE`'s `Content-Type` and an `ETag` of its own. Every
    /// answer for a file that has such a sibling carries `Vary: Accept-Encoding`. Default is on;
    /// see the [module docs](self) (step 5) for the rules.
    ///
    /// ```no_run
    /// use poolserve::files::StaticFiles;
    ///
    /// let files = StaticFiles::new("public")?.precompressed(false); // always the file as it is
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn precompressed(mut self, on: bool) -> StaticFiles {
        self.precompressed = on;
        self
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn not_found(&self) -> Response {
        // Opened like any served file: a `404.html` symlink that leads out of the root is not
        // followed (the plain 404 is sent instead), and only a regular file is used.
        let page = self
            .open_contained(Path::new("404.html"))
            .ok()
            .and_then(|(f, _)| {
                f.metadata()
                    .ok()
                    .filter(fs::Metadata::is_file)
                    .map(|m| (f, m.len()))
            });
        match page {
            Some((file, len)) => Response::new(404)
                .header("Content-Type", "text/html; charset=utf-8")
                .header("X-Content-Type-Options", "nosniff")
                .with_body(Body::File {
                    file,
                    offset: 0,
                    len,
                }),
            None => Response::plain_status(404),
        }
    }

    /// Opens `rel` (a normalised relative path from [`resolve()`]) for reading, refusing anything that
    /// resolves outside the root — through `..` or through a symlink. Returns the open file and the
    /// path it was reached by (for MIME types and listings).
    ///
    /// On Linux the common case is one `openat2(RESOLVE_BENEATH)` call relative to the root: the
    /// kernel enforces containment while it resolves. When that refuses a path that leaves the root
    /// lexically (an absolute symlink), and on other systems, the path is canonicalised and must
    /// start with the canonical root.
    ///
    /// Fails with [`OpenFailure::Exhausted`] when the process is out of file descriptors or memory,
    /// and with [`OpenFailure::Absent`] for every other reason (absent, outside the root, unreadable).
    fn open_contained(&self, rel: &Path) -> Result<(File, PathBuf), OpenFailure> {
        let joined = self.root.join(rel);
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::{Mode, OFlags, ResolveFlags, openat2};
            let rel = if rel.as_os_str().is_empty() {
                Path::new(".")
            } else {
                rel
            };
            match openat2(
                &self.root_dir,
                rel,
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(fd) => return Ok((File::from(fd), joined)),
                // EXDEV: resolution left the root lexically (e.g. an absolute symlink, which may
                // still point inside the root); NOSYS: a kernel without openat2. Both take the
                // canonicalising path below, which decides by where the path really leads.
                Err(e) if e == rustix::io::Errno::XDEV || e == rustix::io::Errno::NOSYS => {}
                Err(e) => return Err(OpenFailure::from(io::Error::from(e))),
            }
        }
        let canon = fs::canonicalize(&joined)?;
        if !canon.starts_with(&self.root) {
            return Err(OpenFailure::Absent);
        }
        Ok((File::open(&canon)?, joined))
    }

    /// Opens `<dir>/index.html` and returns it with its metadata, if it is a regular file
    /// inside the root. `Ok(None)` for every other outcome (absent, `dir` not a directory, a
    /// directory or other non-file named `index.html`, a symlink leaving the root, unreadable): the
    /// caller then falls back to looking at `dir` itself, which decides the answer exactly as
    /// before. `Err` when the process is out of file descriptors or memory.
    fn open_index(&self, dir: &Path) -> Result<Option<(File, fs::Metadata)>, io::Error> {
        let (file, _) = match self.open_contained(&dir.join("index.html")) {
            Ok(opened) => opened,
            Err(OpenFailure::Absent) => return Ok(None),
            Err(OpenFailure::Exhausted(e)) => return Err(e),
        };
        match file.metadata() {
            Ok(meta) if meta.is_file() => Ok(Some((file, meta))),
            Err(e) if is_exhaustion(&e) => Err(e),
            _ => Ok(None),
        }
    }

    /// The answer when the process is out of file descriptors or memory: `503` with
    /// `Retry-After: 1`, and a warning (at most one a second).
    fn exhausted(&self, req: &Request<'_, '_>, e: &io::Error) -> Response {
        if let Some(left_out) = self.exhausted_warnings.allow(Instant::now()) {
            let more = if left_out > 0 {
                format!(" ({left_out} more since the last warning)")
            } else {
                String::new()
            };
            log::warn!(
                "out of resources serving {:?}: {e}; answered 503 with Retry-After{more}. \
                 Raise the open-file limit or lower the connection limit",
                req.target
            );
        }
        Response::plain_status(503).header("Retry-After", "1")
    }

    fn serve(&self, req: &Request<'_, '_>) -> Response {
        let resolved = match resolve(Path::new(""), req.target, self.serve_hidden) {
            Ok(r) => r,
            Err(ResolveError::Hidden) => return self.not_found(),
            Err(e) => {
                log::debug!("refused path {:?}: {e}", req.target);
                return Response::plain_status(e.status_code());
            }
        };
        // A path ending in `/` almost always names a directory with an index page. Opening
        // `<dir>/index.html` straight away serves it with one open and one stat, instead of also
        // opening and statting the directory first. Any failure falls through to the general path
        // below, so what is answered never depends on this shortcut.
        if resolved.trailing_slash {
            match self.open_index(&resolved.path) {
                Ok(Some((index, index_meta))) => {
                    let rel = resolved.path.join("index.html");
                    return self.serve_file(req, index, &index_meta, &rel);
                }
                Ok(None) => {}
                Err(e) => return self.exhausted(req, &e),
            }
        }
        let (file, path) = match self.open_contained(&resolved.path) {
            Ok(opened) => opened,
            Err(OpenFailure::Absent) => return self.not_found(),
            Err(OpenFailure::Exhausted(e)) => return self.exhausted(req, &e),
        };
        let meta = match file.metadata() {
            Ok(meta) => meta,
            Err(e) if is_exhaustion(&e) => return self.exhausted(req, &e),
            Err(_) => return self.not_found(),
        };
        if meta.is_dir() {
            if !resolved.trailing_slash {
                // The query goes along (`/sub?x=1` → `/sub/?x=1`): the parser has already
                // refused any byte that could not stand in a header.
                let mut location = resolved.url_path(true);
                if let Some(query) = req.query() {
                    location.push('?');
                    location.push_str(query);
                }
                return Response::new(301)
                    .header("Location", location)
                    .header("Content-Type", "text/plain; charset=utf-8")
                    .body("Moved Permanently\n");
            }
            // With the trailing slash, `index.html` was tried above and is not a servable file.
            if self.list_dirs {
                return self.listing(req, &path, &resolved);
            }
            return self.not_found();
        }
        self.serve_file(req, file, &meta, &resolved.path)
    }

    /// Serves the regular file `file` (reached by the normalised relative path `rel`), or the
    /// precompressed sibling of it that the client prefers.
    fn serve_file(
        &self,
        req: &Request<'_, '_>,
        file: File,
        meta: &fs::Metadata,
        rel: &Path,
    ) -> Response {
        if !meta.is_file() {
            return self.not_found();
        }
        // The type is the original's, whichever representation goes out.
        let content_type = content_type(rel);
        let negotiated = self.negotiate(req, rel, meta);
        let vary = negotiated.vary;
        let (file, len, modified, etag, coding) = match negotiated.sibling {
            Some((coding, file, meta)) => {
                let modified = meta.modified().ok();
                let etag = etag_with(meta.len(), modified, coding.etag_suffix());
                (file, meta.len(), modified, etag, Some(coding))
            }
            None => {
                let modified = meta.modified().ok();
                (file, meta.len(), modified, etag(meta.len(), modified), None)
            }
        };
        let with_vary = |resp: Response| {
            if vary {
                resp.header("Vary", "Accept-Encoding")
            } else {
                resp
            }
        };
        let last_modified = modified.map(httpdate::fmt_http_date);
        let mut resp = Response::new(200).header("Content-Type", content_type);
        if let Some(coding) = coding {
            resp = resp.header("Content-Encoding", coding.token());
        }
        resp = with_vary(resp)
            .header("ETag", etag.clone())
            .header("Accept-Ranges", "bytes")
            .header("X-Content-Type-Options", "nosniff");
        if let Some(lm) = &last_modified {
            resp = resp.header("Last-Modified", lm.clone());
        }
        if let Some(cc) = &self.cache_control {
            resp = resp.header("Cache-Control", cc.clone());
        }
        match preconditions(req, &etag, modified) {
            Precondition::Failed => return with_vary(Response::plain_status(412)),
            Precondition::NotModified => return resp.with_status(304),
            Precondition::Proceed => {}
        }
        let range = req
            .header("range")
            .and_then(|r| std::str::from_utf8(r).ok());
        let if_range_ok = req
            .header("if-range")
            .and_then(|v| std::str::from_utf8(v).ok())
            .is_none_or(|v| {
                if_range_matches(v.trim_matches([' ', '\t']), &etag, last_modified.as_deref())
            });
        if let (Some(range), true) = (range, if_range_ok) {
            match parse_range(range, len) {
                RangeSpec::Satisfiable(start, end) => {
                    return resp
                        .with_status(206)
                        .header("Content-Range", format!("bytes {start}-{end}/{len}"))
                        .with_body(Body::File {
                            file,
                            offset: start,
                            len: end - start + 1,
                        });
                }
                RangeSpec::Unsatisfiable => {
                    return with_vary(Response::new(416))
                        .header("Content-Range", format!("bytes */{len}"))
                        .header("Content-Type", "text/plain; charset=utf-8")
                        .body("416 Range Not Satisfiable\n");
                }
                RangeSpec::Ignore => {}
            }
        }
        resp.with_body(Body::File {
            file,
            offset: 0,
            len,
        })
    }

    /// Which representation of the file at `rel` (with metadata `original`) to send: a
    /// precompressed sibling the client accepts, most wanted first, if there is a usable one (see
    /// [`StaticFiles::sibling`]); and whether the answer varies with `Accept-Encoding` (some
    /// usable sibling exists, whether or not this client takes it).
    fn negotiate(&self, req: &Request<'_, '_>, rel: &Path, original: &fs::Metadata) -> Negotiated {
        if !self.precompressed {
            return Negotiated {
                sibling: None,
                vary: false,
            };
        }
        let wanted = encoding::preferred(
            req.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("accept-encoding"))
                .map(|h| h.value),
        );
        // Out of descriptors or memory while looking: whether a sibling exists is unknown, so
        // the answer is marked as varying (never wrong, at worst less cacheable).
        let mut unknown = false;
        for &coding in &wanted {
            match self.sibling(rel, coding, original) {
                Ok(Some((file, meta))) => {
                    return Negotiated {
                        sibling: Some((coding, file, meta)),
                        vary: true,
                    };
                }
                Ok(None) => {}
                Err(_) => unknown = true,
            }
        }
        let vary = unknown
            || encoding::Coding::ALL
                .into_iter()
                .filter(|coding| !wanted.contains(coding))
                .any(|coding| !matches!(self.sibling(rel, coding, original), Ok(None)));
        Negotiated {
            sibling: None,
            vary,
        }
    }

    /// Opens the `coding` sibling of `rel` (`rel` + `.br` or `.gz`) exactly as a requested file is
    /// opened ([`StaticFiles::open_contained`]: never through `..` or a symlink out of the root),
    /// and keeps it only if it is a regular file modified no earlier than the original (a stale
    /// sibling, or one without a modification time, is ignored). The original has already passed
    /// [`resolve`]'s hidden-file rule, and its sibling's name starts like it.
    fn sibling(
        &self,
        rel: &Path,
        coding: encoding::Coding,
        original: &fs::Metadata,
    ) -> Result<Option<(File, fs::Metadata)>, io::Error> {
        let mut name = rel.as_os_str().to_owned();
        name.push(coding.suffix());
        let file = match self.open_contained(Path::new(&name)) {
            Ok((file, _)) => file,
            Err(OpenFailure::Absent) => return Ok(None),
            Err(OpenFailure::Exhausted(e)) => return Err(e),
        };
        let meta = match file.metadata() {
            Ok(meta) => meta,
            Err(e) if is_exhaustion(&e) => return Err(e),
            Err(_) => return Ok(None),
        };
        let fresh = match (meta.modified(), original.modified()) {
            (Ok(sibling), Ok(original)) => sibling >= original,
            _ => false,
        };
        Ok((meta.is_file() && fresh).then_some((file, meta)))
    }

    fn listing(&self, req: &Request<'_, '_>, dir: &Path, resolved: &Resolved) -> Response {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if is_exhaustion(&e) => return self.exhausted(req, &e),
            Err(_) => return Response::plain_status(403),
        };
        let mut listed = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let Ok(name) = entry.file_name().into_string() else {
                continue; // not UTF-8: no request path could name it
            };
            if name.starts_with('.') && !self.serve_hidden {
                continue;
            }
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            let meta = if file_type.is_symlink() {
                // Listed only if a request for it would be served: it leads to a file or a
                // directory (looked at before opening, so a FIFO is never opened) inside the root.
                match fs::metadata(entry.path()) {
                    Ok(m) if m.is_file() || m.is_dir() => {}
                    _ => continue,
                }
                match self.open_contained(&resolved.path.join(&name)) {
                    Ok((file, _)) => match file.metadata() {
                        Ok(meta) => meta,
                        Err(_) => continue,
                    },
                    Err(OpenFailure::Absent) => continue,
                    Err(OpenFailure::Exhausted(e)) => return self.exhausted(req, &e),
                }
            } else {
                match entry.metadata() {
                    Ok(meta) => meta,
                    Err(_) => continue,
                }
            };
            if !(meta.is_file() || meta.is_dir()) {
                continue; // sockets, FIFOs, devices are not served
            }
            listed.push((!meta.is_dir(), name, meta.len(), meta.modified().ok()));
        }
        // Directories first, then by name.
        listed.sort();
        let mut title = String::from("/");
        for segment in &resolved.segments {
            title.push_str(segment);
            title.push('/');
        }
        let title = html_escape(&title);
        let mut html = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body>\n<h1>Index of {title}</h1>\n<table>\n<thead><tr><th>Name</th><th>Size</th><th>Last modified</th></tr></thead>\n<tbody>\n"
        );
        if !resolved.segments.is_empty() {
            html.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
        }
        for (is_file, name, len, modified) in listed {
            let mut href = String::new();
            percent_encode_into(&name, &mut href);
            let slash = if is_file { "" } else { "/" };
            let size = if is_file { len.to_string() } else { "-".into() };
            let modified = modified.map(httpdate::fmt_http_date).unwrap_or_default();
            html.push_str(&format!(
                "<tr><td><a href=\"./{href}{slash}\">{}{slash}</a></td><td>{size}</td><td>{modified}</td></tr>\n",
                html_escape(&name)
            ));
        }
        html.push_str("</tbody>\n</table>\n</body>\n</html>\n");
        Response::new(200)
            .header("Content-Type", "text/html; charset=utf-8")
            .header("X-Content-Type-Options", "nosniff")
            .body(html)
    }
}

impl Handler for StaticFiles {
    fn handle(&self, req: &Request<'_, '_>) -> Response {
        match req.method {
            "GET" | "HEAD" => self.serve(req),
            "OPTIONS" => Response::new(204).header("Allow", ALLOW),
            _ => Response::plain_status(405).header("Allow", ALLOW),
        }
    }

    /// Never: files are answered from the head alone (`GET`/`HEAD` ignore a body, other methods
    /// get `405`), so a client's body is never waited for.
    fn wants_body(&self, _req: &Request<'_, '_>) -> bool {
        false
    }
}

/// What [`StaticFiles::negotiate`] chose.
struct Negotiated {
    /// The precompressed sibling to send instead of the file, open, with its metadata.
    sibling: Option<(encoding::Coding, File, fs::Metadata)>,
    /// Send `Vary: Accept-Encoding`.
    vary: bool,
}

/// Why [`StaticFiles::open_contained`] failed.
#[derive(Debug)]
enum OpenFailure {
    /// Absent, outside the root, or unreadable: the client is told `404`.
    Absent,
    /// Out of file descriptors or memory: the file may exist; the client is told `503`.
    Exhausted(io::Error),
}

impl From<io::Error> for OpenFailure {
    fn from(e: io::Error) -> OpenFailure {
        if is_exhaustion(&e) {
            OpenFailure::Exhausted(e)
        } else {
            OpenFailure::Absent
        }
    }
}

/// Is `e` the process (`EMFILE`) or the system (`ENFILE`) out of file descriptors, or out of
/// memory (`ENOMEM`)? These say nothing about the file, so they must not become `404`.
fn is_exhaustion(e: &io::Error) -> bool {
    // EMFILE and ENFILE have these numbers on Linux, the BSDs and macOS alike.
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    e.kind() == io::ErrorKind::OutOfMemory
        || (cfg!(unix) && matches!(e.raw_os_error(), Some(EMFILE | ENFILE)))
}

/// Lets one event through per `every`, and counts the ones it holds back in between.
#[derive(Debug)]
struct RateLimit {
    every: Duration,
    /// When one was last let through, and how many were held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimit {
    fn new(every: Duration) -> RateLimit {
        RateLimit {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(held back since the last one let through)` if this event may go through at `now`.
    fn allow(&self, now: Instant) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (last, held) = &mut *state;
        if last.is_some_and(|t| now.saturating_duration_since(t) < self.every) {
            *held += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(held))
    }
}

/// The `Content-Type` for `path`, by its extension (`application/octet-stream` when unknown); text
/// types carry `charset=utf-8`. The last answer is remembered per thread, since a run of requests
/// mostly asks for files of one type, and the lookup and formatting cost more than the rest of
/// building the head.
fn content_type(path: &Path) -> String {
    thread_local! {
        static LAST: RefCell<Option<(OsString, String)>> = const { RefCell::new(None) };
    }
    let ext = path.extension().unwrap_or_default();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((known, content_type)) = &*last
            && known == ext
        {
            return content_type.clone();
        }
        let mime = mime_guess::from_ext(&ext.to_string_lossy()).first_or_octet_stream();
        let content_type =
            if mime.type_() == "text" || mime.essence_str() == "application/javascript" {
                format!("{}; charset=utf-8", mime.essence_str())
            } else {
                mime.essence_str().to_owned()
            };
        *last = Some((ext.to_owned(), content_type.clone()));
        content_type
    })
}

/// A strong validator from size and modification time.
fn etag(len: u64, modified: Option<SystemTime>) -> String {
    etag_with(len, modified, "")
}

/// [`etag`] with `suffix` inside the quotes: a precompressed sibling's validator, distinct from
/// the original's even if the two files had the same size and time.
fn etag_with(len: u64, modified: Option<SystemTime>, suffix: &str) -> String {
    let nanos = modified
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("\"{len:x}-{nanos:x}{suffix}\"")
}

/// What the conditional header fields of a `GET`/`HEAD` say to do.
#[derive(Debug, PartialEq, Eq)]
enum Precondition {
    /// `If-Match` or `If-Unmodified-Since` is false: `412`.
    Failed,
    /// `If-None-Match` or `If-Modified-Since` is false: `304`.
    NotModified,
    /// Serve it (a `Range` may still apply, subject to `If-Range`).
    Proceed,
}

/// Evaluates the preconditions in RFC 9110 §13.2.2's order: `If-Match`, else
/// `If-Unmodified-Since` (`412` when false); then `If-None-Match`, else `If-Modified-Since` (`304`
/// when false). `If-Range` comes last, with the `Range` it guards. A date that does not parse is
/// ignored, as the RFC requires; so is a date when the file has no modification time.
fn preconditions(req: &Request<'_, '_>, etag: &str, modified: Option<SystemTime>) -> Precondition {
    let tags = |v: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(v)
            .split(',')
            .map(|t| t.trim_matches([' ', '\t']).to_owned())
            .collect()
    };
    let date = |v: &[u8]| {
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| httpdate::parse_http_date(s.trim_matches([' ', '\t'])).ok())
    };
    // HTTP dates have one-second resolution: compare at that resolution.
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if let Some(im) = req.header("if-match") {
        // Strong comparison (§13.1.1): a weak tag never matches.
        if !tags(im).iter().any(|t| t == "*" || t == etag) {
            return Precondition::Failed;
        }
    } else if let (Some(since), Some(modified)) =
        (req.header("if-unmodified-since").and_then(date), modified)
        && secs(modified) > secs(since)
    {
        return Precondition::Failed;
    }
    if let Some(inm) = req.header("if-none-match") {
        // Weak comparison (§13.1.2).
        if tags(inm)
            .iter()
            .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
        {
            return Precondition::NotModified;
        }
    } else if let (Some(since), Some(modified)) =
        (req.header("if-modified-since").and_then(date), modified)
        && secs(modified) <= secs(since)
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

fn if_range_matches(value: &str, etag: &str, last_modified: Option<&str>) -> bool {
    if value.starts_with('"') {
        value == etag // strong comparison only (RFC 9110 §13.1.5)
    } else {
        last_modified == Some(value)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    /// Inclusive byte positions.
    Satisfiable(u64, u64),
    Unsatisfiable,
    /// Not a single well-formed byte range: serve the whole representation (RFC 9110 §14.2 allows
    /// ignoring Range).
    Ignore,
}

fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Parses a single `bytes=` range against a representation of `len` bytes.
fn parse_range(value: &str, len: u64) -> RangeSpec {
    let Some(spec) = value.trim_matches([' ', '\t']).strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Ignore; // multipart/byteranges is not implemented: send it all
    }
    let Some((first, last)) = spec.trim_matches([' ', '\t']).split_once('-') else {
        return RangeSpec::Ignore;
    };
    match (first.is_empty(), last.is_empty()) {
        (true, true) => RangeSpec::Ignore,
        (true, false) => match parse_digits(last) {
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if len == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Satisfiable(len.saturating_sub(n), len - 1),
            None => RangeSpec::Ignore,
        },
        (false, _) => {
            let Some(start) = parse_digits(first) else {
                return RangeSpec::Ignore;
            };
            let end = if last.is_empty() {
                Some(u64::MAX)
            } else {
                parse_digits(last)
            };
            let Some(end) = end else {
                return RangeSpec::Ignore;
            };
            if end < start {
                return RangeSpec::Ignore;
            }
            if start >= len {
                return RangeSpec::Unsatisfiable;
            }
            RangeSpec::Satisfiable(start, end.min(len - 1))
        }
    }
}

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_follows_each_extension_despite_the_per_thread_memo() {
        let cases = [
            ("a.html", "text/html; charset=utf-8"),
            ("b.html", "text/html; charset=utf-8"),
            ("c.png", "image/png"),
            ("d.HTML", "text/html; charset=utf-8"),
            ("noext", "application/octet-stream"),
            ("e.css", "text/css; charset=utf-8"),
            ("f.js", "text/javascript; charset=utf-8"),
            ("g.unknownext", "application/octet-stream"),
            ("h.png", "image/png"),
        ];
        for (path, want) in cases {
            assert_eq!(content_type(Path::new(path)), want, "{path}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeSpec::Satisfiable(0, 9));
        assert_eq!(
            parse_range("bytes=90-", 100),
            RangeSpec::Satisfiable(90, 99)
        );
        assert_eq!(
            parse_range("bytes=-10", 100),
            RangeSpec::Satisfiable(90, 99)
        );
        assert_eq!(
            parse_range("bytes=-1000", 100),
            RangeSpec::Satisfiable(0, 99)
        );
        assert_eq!(
            parse_range("bytes=50-5000", 100),
            RangeSpec::Satisfiable(50, 99)
        );
        assert_eq!(parse_range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=+1-2", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("items=0-1", 100), RangeSpec::Ignore);
        assert_eq!(
            parse_range("bytes=99999999999999999999-", 100),
            RangeSpec::Ignore
        );
    }

    #[test]
    fn rate_limit_lets_one_through_a_second_and_counts_the_rest() {
        let limit = RateLimit::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(limit.allow(t0), Some(0));
        assert_eq!(limit.allow(t0 + Duration::from_millis(10)), None);
        assert_eq!(limit.allow(t0 + Duration::from_millis(999)), None);
        assert_eq!(limit.allow(t0 + Duration::from_millis(1000)), Some(2));
        assert_eq!(limit.allow(t0 + Duration::from_millis(1500)), None);
        assert_eq!(limit.allow(t0 + Duration::from_millis(2100)), Some(1));
    }

    #[test]
    fn exhaustion_errors_are_told_apart() {
        assert!(is_exhaustion(&io::Error::from_raw_os_error(24)));
        assert!(is_exhaustion(&io::Error::from_raw_os_error(23)));
        assert!(is_exhaustion(&io::Error::from_raw_os_error(12)));
        assert!(!is_exhaustion(&io::Error::from_raw_os_error(2)));
        assert!(!is_exhaustion(&io::Error::from_raw_os_error(13)));
    }

    #[test]
    fn escaping() {
        assert_eq!(
            html_escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
}
