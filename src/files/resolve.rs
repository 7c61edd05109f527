//! Request target → filesystem path, without touching the filesystem.
//!
//! The rules are documented on [`resolve()`], the module's entry point (re-exported, with the
//! module's other public items, as `poolserve::files::…`).

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a request target does not name a path under the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolveError {
    /// Not origin-form or absolute-form (e.g. `*`), or no leading `/`.
    NotAPath,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// A decoded NUL, `\` or `:`.
    ForbiddenByte,
    /// `%2F` inside a segment.
    EncodedSlash,
    /// The decoded path is not UTF-8.
    NotUtf8,
    /// A `..` that would climb above the root.
    EscapesRoot,
    /// A segment starting with `.` while hidden files are not served.
    Hidden,
}

impl ResolveError {
    /// The status a server should answer with: 404 for hidden files (their existence is not
    /// revealed), 400 for everything else.
    pub fn status_code(self) -> u16 {
        match self {
            ResolveError::Hidden => 404,
            _ => 400,
        }
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResolveError::NotAPath => "request target is not a path",
            ResolveError::BadEscape => "malformed percent-escape in path",
            ResolveError::ForbiddenByte => "path contains NUL, backslash or colon",
            ResolveError::EncodedSlash => "path contains an encoded slash",
            ResolveError::NotUtf8 => "path is not UTF-8",
            ResolveError::EscapesRoot => "path climbs above the root",
            ResolveError::Hidden => "path names a hidden file",
        })
    }
}

impl std::error::Error for ResolveError {}

/// A resolved request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The path under the root (root joined with the normalised segments).
    pub path: PathBuf,
    /// The normalised, decoded segments (no empty, `.` or `..` segments).
    pub segments: Vec<String>,
    /// Did the request path end with `/` (or was it the root)?
    pub trailing_slash: bool,
}

impl Resolved {
    /// The normalised path as a URL path, percent-encoded, starting with exactly one `/` (so it is
    /// safe in a `Location` header: never `//host`). With `slash`, it ends with `/`.
    pub fn url_path(&self, slash: bool) -> String {
        let mut out = String::from("/");
        for (i, seg) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            percent_encode_into(seg, &mut out);
        }
        if slash && !out.ends_with('/') {
            out.push('/');
        }
        out
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters and a few safe sub-delims.
pub fn percent_encode_into(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one segment's `%XX` escapes exactly once.
fn decode_segment(raw: &str) -> Result<String, ResolveError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(ResolveError::BadEscape);
            };
            let decoded = h << 4 | l;
            if decoded == b'/' {
                return Err(ResolveError::EncodedSlash);
            }
            out.push(decoded);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    if out.iter().any(|&b| b == 0 || b == b'\\' || b == b':') {
        return Err(ResolveError::ForbiddenByte);
    }
    String::from_utf8(out).map_err(|_| ResolveError::NotUtf8)
}

/// Resolves a request target to a path under `root`, without touching the filesystem.
///
/// The pipeline, in order (each step rejects before the next runs):
///
/// 1. **Form.** Origin-form (`/a/b?q`) is taken as is; absolute-form (`http://host/a/b`) is reduced to
///    its path; anything else (asterisk-form, authority-form, a relative path) is
///    [`ResolveError::NotAPath`].
/// 2. **Query.** Everything from the first `?` is dropped.
/// 3. **Decode once.** `%XX` sequences are decoded a single time (so `%252e` stays the three bytes
///    `%2e`, a literal file name, never `.`). A malformed escape is [`ResolveError::BadEscape`].
/// 4. **Forbidden bytes.** A decoded NUL or `\` is [`ResolveError::ForbiddenByte`]; an encoded `/`
///    (`%2F`) is [`ResolveError::EncodedSlash`] (it would change the segment structure after the
///    fact); a `:` is [`ResolveError::ForbiddenByte`] (drive prefixes, alternate data streams); bytes
///    that are not UTF-8 are [`ResolveError::NotUtf8`].
/// 5. **Normalise.** Split on `/`; empty and `.` segments vanish; `..` pops one segment, and a `..`
///    with nothing to pop is [`ResolveError::EscapesRoot`] — it is never silently clamped.
/// 6. **Hidden files.** A segment starting with `.` is [`ResolveError::Hidden`] unless hidden files
///    are allowed.
/// 7. **Join** the remaining segments one by one under the root (never `PathBuf::push` of an absolute
///    path, which would replace the root).
///
/// What this function cannot know — symlinks — is checked by the caller after it: the static-file
/// handler ([`StaticFiles`](super::StaticFiles)) opens the path relative to the root with
/// `openat2(RESOLVE_BENEATH)` on Linux (else canonicalises it) and refuses anything that resolves
/// outside the root.
///
/// ```
/// use std::path::Path;
/// use poolserve::files::{resolve, ResolveError};
///
/// let r = resolve(Path::new("public"), "/docs/./a%20b.html?x=1", false).unwrap();
/// assert_eq!(r.path, Path::new("public/docs/a b.html"));
/// assert_eq!(resolve(Path::new("public"), "/../etc/passwd", false), Err(ResolveError::EscapesRoot));
/// assert_eq!(resolve(Path::new("public"), "/%2e%2e/etc/passwd", false), Err(ResolveError::EscapesRoot));
/// ```
///
/// # Errors
///
/// A [`ResolveError`] naming the first rule the target breaks.
pub fn resolve(root: &Path, target: &str, allow_hidden: bool) -> Result<Resolved, ResolveError> {
    let path = origin_path(target)?;
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let mut segments: Vec<String> = Vec::new();
    for raw in path.split('/') {
        let seg = decode_segment(raw)?;
        match seg.as_str() {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(ResolveError::EscapesRoot);
                }
            }
            _ => {
                if seg.starts_with('.') && !allow_hidden {
                    return Err(ResolveError::Hidden);
                }
                segments.push(seg);
            }
        }
    }
    let mut full = root.to_path_buf();
    for seg in &segments {
        full.push(seg);
    }
    Ok(Resolved {
        path: full,
        segments,
        trailing_slash: path.ends_with('/'),
    })
}

/// The path part of an origin-form or absolute-form target.
fn origin_path(target: &str) -> Result<&str, ResolveError> {
    if target.starts_with('/') {
        return Ok(target);
    }
    for scheme in ["http://", "https://"] {
        // `get`, not indexing: the target may hold multi-byte characters (found by the
        // resolve_path fuzz target: a two-byte character straddling the scheme's length).
        if let Some(rest) = target
            .get(..scheme.len())
            .filter(|head| head.eq_ignore_ascii_case(scheme))
            .map(|_| &target[scheme.len()..])
        {
            return Ok(rest.find('/').map_or("/", |i| &rest[i..]));
        }
    }
    Err(ResolveError::NotAPath)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(t: &str) -> Result<PathBuf, ResolveError> {
        resolve(Path::new("/srv"), t, false).map(|r| r.path)
    }

    #[test]
    fn normal_paths() {
        assert_eq!(r("/"), Ok(PathBuf::from("/srv")));
        assert_eq!(r("/a/b.txt"), Ok(PathBuf::from("/srv/a/b.txt")));
        assert_eq!(r("/a//b/./c/../d"), Ok(PathBuf::from("/srv/a/b/d")));
        assert_eq!(r("http://h/x?y"), Ok(PathBuf::from("/srv/x")));
        assert_eq!(r("/%252e%252e/x"), Ok(PathBuf::from("/srv/%2e%2e/x")));
    }

    #[test]
    fn attacks_are_refused() {
        for (t, e) in [
            ("/..", ResolveError::EscapesRoot),
            ("/a/../../etc/passwd", ResolveError::EscapesRoot),
            ("/%2e%2e/%2e%2e/etc/passwd", ResolveError::EscapesRoot),
            ("/%2E%2E%2Fetc", ResolveError::EncodedSlash),
            ("/a%00b", ResolveError::ForbiddenByte),
            ("/..%5c..%5cetc", ResolveError::ForbiddenByte),
            ("/C:/Windows", ResolveError::ForbiddenByte),
            ("/%zz", ResolveError::BadEscape),
            ("/%ff", ResolveError::NotUtf8),
            ("/.git/config", ResolveError::Hidden),
            ("*", ResolveError::NotAPath),
            ("etc/passwd", ResolveError::NotAPath),
        ] {
            assert_eq!(r(t), Err(e), "{t}");
        }
    }

    #[test]
    fn multi_byte_characters_never_split() {
        // The fuzz input that found a slicing panic: a two-byte character at byte 6.
        assert_eq!(
            resolve(Path::new("/srv"), "\u{1}/..\\.\u{49d}etc", false),
            Err(ResolveError::NotAPath)
        );
        assert_eq!(
            resolve(Path::new("/srv"), "httpҝ://x/", false),
            Err(ResolveError::NotAPath)
        );
    }

    #[test]
    fn location_is_never_protocol_relative() {
        let res = resolve(Path::new("/srv"), "//evil.example/dir", false).unwrap();
        assert_eq!(res.url_path(true), "/evil.example/dir/");
    }
}
