//! The command line: flags, their environment twins, and the checks made before the server starts.
//!
//! Every value is checked here, at start, and a bad one ends the process with one line that names
//! the flag — or the environment variable, when that was where the value came from.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::builder::BoolishValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser};

/// The host used when `--bind` names none (`--bind :8080`, or only `--port`).
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// The port used when neither `--bind` nor `--port` names one.
pub const DEFAULT_PORT: u16 = 7878;
/// The most worker threads `--threads` accepts.
pub const MAX_THREADS: usize = 1024;
/// The most connections `--max-connections` accepts (Linux's default ceiling on open files).
pub const MAX_CONNECTIONS: usize = 1 << 20;
/// The longest timeout or grace period, in seconds, a flag accepts (one day).
pub const MAX_SECS: u64 = 86_400;

/// The flags. `--help` prints them: keep README.md's copy of that text in step (a test compares).
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Serve a folder over HTTP/1.1 with a fixed pool of worker threads.",
    after_help = "Every option can also be set through the environment variable shown with it; \
                  a flag on the command line wins over its variable.",
    long_about = None
)]
pub struct Cli {
    /// Directory to serve (the same as --root) [default: public]
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Address to listen on: HOST:PORT, HOST, or :PORT for the default host (port 0 picks a free port)
    #[arg(
        long,
        value_name = "ADDR",
        env = "POOLSERVE_BIND",
        default_value = poolserve::server::DEFAULT_BIND
    )]
    pub bind: String,
    /// Port to listen on, with the host of --bind (0 picks a free port) [default: --bind's port]
    #[arg(short, long, value_name = "PORT", env = "POOLSERVE_PORT")]
    pub port: Option<u16>,
    /// Set SO_REUSEPORT, so that a new poolserve can listen on the same address before this one is stopped
    #[arg(long, env = "POOLSERVE_REUSE_PORT", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub reuse_port: bool,
    /// Directory to serve [default: public]
    #[arg(long, value_name = "DIR", env = "POOLSERVE_ROOT")]
    pub root: Option<PathBuf>,
    /// Worker threads, 1 to 1024 (they also run the event loop)
    #[arg(long, value_name = "N", env = "POOLSERVE_THREADS", default_value_t = poolserve::pool::DEFAULT_THREADS, value_parser = parse_threads)]
    pub threads: usize,
    /// Connections held open at once (idle or busy); beyond: 503 + Retry-After
    #[arg(long, value_name = "N", env = "POOLSERVE_MAX_CONNECTIONS", default_value_t = poolserve::server::DEFAULT_MAX_CONNECTIONS, value_parser = parse_max_connections)]
    pub max_connections: usize,
    /// Seconds from a request's first byte to its complete head (then 408)
    #[arg(long, value_name = "SECS", env = "POOLSERVE_HEADER_TIMEOUT", default_value_t = 10, value_parser = parse_secs)]
    pub header_timeout: u64,
    /// Seconds without a byte of request body (then 408)
    #[arg(long, value_name = "SECS", env = "POOLSERVE_BODY_TIMEOUT", default_value_t = 30, value_parser = parse_secs)]
    pub body_timeout: u64,
    /// Seconds from a complete head to the last byte of its body, however steadily it comes (then 408)
    #[arg(long, value_name = "SECS", env = "POOLSERVE_BODY_TOTAL_TIMEOUT", default_value_t = 60, value_parser = parse_secs)]
    pub body_total_timeout: u64,
    /// Seconds an idle keep-alive connection is kept open
    #[arg(long, value_name = "SECS", env = "POOLSERVE_KEEP_ALIVE_TIMEOUT", default_value_t = 5, value_parser = parse_secs)]
    pub keep_alive_timeout: u64,
    /// Seconds a response may make no write progress before the connection is dropped (nginx's send_timeout)
    #[arg(long, value_name = "SECS", env = "POOLSERVE_WRITE_TIMEOUT", default_value_t = 30, value_parser = parse_secs)]
    pub write_timeout: u64,
    /// Seconds in-flight requests get to finish at shutdown (0: none)
    #[arg(long, value_name = "SECS", env = "POOLSERVE_GRACE_PERIOD", default_value_t = 10, value_parser = parse_grace)]
    pub grace_period: u64,
    /// Requests served on one connection before it is closed
    #[arg(long, value_name = "N", env = "POOLSERVE_MAX_REQUESTS", default_value_t = poolserve::server::DEFAULT_MAX_REQUESTS_PER_CONNECTION, value_parser = parse_positive)]
    pub max_requests: usize,
    /// Largest request body in bytes (then 413)
    #[arg(long, value_name = "BYTES", env = "POOLSERVE_MAX_BODY", default_value_t = poolserve::http::DEFAULT_MAX_BODY)]
    pub max_body: u64,
    /// Request-body bytes held in memory by all connections together; over it, reading bodies pauses
    #[arg(long, value_name = "BYTES", env = "POOLSERVE_MAX_BUFFERED_BODY", default_value_t = poolserve::server::DEFAULT_MAX_BUFFERED_BODY)]
    pub max_buffered_body: u64,
    /// Cache-Control header sent with files (200, 206 and 304), e.g. "max-age=60" [default: none]
    #[arg(long, value_name = "VALUE", env = "POOLSERVE_CACHE_CONTROL", value_parser = parse_header_value)]
    pub cache_control: Option<String>,
    /// Serve an HTML listing for directories without index.html
    #[arg(long, env = "POOLSERVE_LIST_DIRS", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub list_dirs: bool,
    /// Never send FILE.br or FILE.gz in place of FILE, even to clients that accept br or gzip
    #[arg(long, env = "POOLSERVE_NO_PRECOMPRESSED", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub no_precompressed: bool,
    /// Do not log a line per request
    #[arg(long, env = "POOLSERVE_NO_ACCESS_LOG", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub no_access_log: bool,
    /// Enable the Rust Book's demo route: GET /sleep waits 5 s, then serves the index
    #[arg(long, env = "POOLSERVE_DEMO_ROUTES", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub demo_routes: bool,
}

/// What the server is started with, once the command line has been checked and combined.
#[derive(Debug)]
pub struct Settings {
    /// `HOST:PORT` to bind.
    pub bind: String,
    /// The directory to serve, as given (relative to the current directory).
    pub root: PathBuf,
    /// True when no directory was named and the default (`public`) is used.
    pub root_is_default: bool,
    /// The parsed flags.
    pub cli: Cli,
}

fn parse_threads(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    match n {
        0 => Err("must be at least 1".into()),
        n if n > MAX_THREADS => Err(format!(
            "at most {MAX_THREADS} worker threads (idle connections cost no thread; a few per core is plenty)"
        )),
        n => Ok(n),
    }
}

fn parse_max_connections(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    match n {
        0 => Err("must be at least 1".into()),
        n if n > MAX_CONNECTIONS => Err(format!("at most {MAX_CONNECTIONS}")),
        n => Ok(n),
    }
}

fn parse_positive(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if n == 0 {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

fn parse_secs(s: &str) -> Result<u64, String> {
    match parse_grace(s)? {
        0 => Err("must be at least 1 second".into()),
        n => Ok(n),
    }
}

fn parse_grace(s: &str) -> Result<u64, String> {
    let n: u64 = s.parse().map_err(|e| format!("{e}"))?;
    if n > MAX_SECS {
        return Err(format!("at most {MAX_SECS} seconds (one day)"));
    }
    Ok(n)
}

fn parse_header_value(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("must not contain control characters".into());
    }
    if !s.is_ascii() {
        return Err("must be ASCII".into());
    }
    Ok(s.to_owned())
}

/// `--bind`'s value split into an optional host and an optional port.
#[derive(Debug, PartialEq, Eq)]
struct BindParts {
    host: Option<String>,
    port: Option<u16>,
}

/// Splits `HOST:PORT`, `:PORT`, `HOST`, `[V6]:PORT`, `[V6]` or a bare IPv6 address.
fn split_bind(addr: &str) -> Result<BindParts, String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("{p:?} is not a port number (0 to 65535)"))
    };
    let nonempty = |h: &str| (!h.is_empty()).then(|| h.to_owned());
    if let Some(rest) = addr.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err("an IPv6 address opened with '[' needs its ']'".into());
        };
        let host = Some(format!("[{v6}]"));
        return match after {
            "" => Ok(BindParts { host, port: None }),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok(BindParts {
                    host,
                    port: Some(port(p)?),
                }),
                None => Err(format!("unexpected {after:?} after ']'")),
            },
        };
    }
    match addr.matches(':').count() {
        0 => Ok(BindParts {
            host: nonempty(addr),
            port: None,
        }),
        1 => {
            let (h, p) = addr.split_once(':').expect("one colon");
            Ok(BindParts {
                host: nonempty(h),
                port: Some(port(p)?),
            })
        }
        // A bare IPv6 address (`::1`): no port can be told apart from it.
        _ => Ok(BindParts {
            host: Some(format!("[{addr}]")),
            port: None,
        }),
    }
}

/// How strongly a value was asked for: the command line beats the environment beats a default.
fn rank(source: Option<ValueSource>) -> u8 {
    match source {
        Some(ValueSource::CommandLine) => 2,
        Some(ValueSource::EnvVariable) => 1,
        _ => 0,
    }
}

/// Which name to give a flag's value in a message: the flag, or its variable if that set it.
fn name_of(source: Option<ValueSource>, flag: &str, var: &str) -> String {
    if source == Some(ValueSource::EnvVariable) {
        format!("{var} (the variable for {flag})")
    } else {
        flag.to_owned()
    }
}

/// Parses and checks `args` (the program name first). `Err` holds the one line to print (without
/// the `poolserve: ` prefix) and the exit code; `--help` and `--version` come back as `Err` too,
/// with their text and code 0.
pub fn parse<I, T>(args: I) -> Result<Settings, (String, i32)>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let matches = Cli::command()
        .try_get_matches_from(&args)
        .map_err(|e| clap_error(&e, &args))?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| clap_error(&e, &args))?;
    combine(cli, &matches)
}

fn combine(cli: Cli, matches: &ArgMatches) -> Result<Settings, (String, i32)> {
    let usage = |msg: String| (msg, 2);
    // The address: --bind's host, and the port from whichever of --bind and --port was asked for
    // more strongly; asked for equally strongly and different, they are an error.
    let bind_source = matches.value_source("bind");
    let port_source = matches.value_source("port");
    let bind_name = name_of(bind_source, "--bind", "POOLSERVE_BIND");
    let parts = split_bind(&cli.bind)
        .map_err(|e| usage(format!("invalid value '{}' for {bind_name}: {e}", cli.bind)))?;
    let host = parts
        .host
        .clone()
        .unwrap_or_else(|| DEFAULT_HOST.to_owned());
    let port = match (parts.port, cli.port) {
        (Some(b), Some(p)) if b != p => match rank(bind_source).cmp(&rank(port_source)) {
            std::cmp::Ordering::Greater => b,
            std::cmp::Ordering::Less => p,
            std::cmp::Ordering::Equal => {
                let port_name = name_of(port_source, "--port", "POOLSERVE_PORT");
                return Err(usage(format!(
                    "{bind_name} {} and {port_name} {p} name different ports; give one",
                    cli.bind
                )));
            }
        },
        (_, Some(p)) => p,
        (Some(b), None) => b,
        (None, None) => DEFAULT_PORT,
    };
    let bind = format!("{host}:{port}");

    // The directory: DIR is on the command line, so it beats POOLSERVE_ROOT; with --root on the
    // command line too, the two must agree.
    let root_source = matches.value_source("root");
    let (root, root_is_default) = match (&cli.dir, &cli.root) {
        (Some(dir), Some(root))
            if root_source == Some(ValueSource::CommandLine) && !same_dir(dir, root) =>
        {
            return Err(usage(format!(
                "DIR {} and --root {} name different directories; give one",
                dir.display(),
                root.display()
            )));
        }
        (Some(dir), _) => (dir.clone(), false),
        (None, Some(root)) => (root.clone(), false),
        (None, None) => (PathBuf::from("public"), true),
    };
    Ok(Settings {
        bind,
        root,
        root_is_default,
        cli,
    })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// Turns a clap error into one line (or the full text, for help and version), naming the
/// environment variable when the bad value came from it.
fn clap_error(e: &clap::Error, args: &[OsString]) -> (String, i32) {
    let code = e.exit_code();
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        return (e.to_string(), 0);
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    let mut line = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    if matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) && let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg)
        && let Some(var) = env_source(arg, args)
    {
        let flag = arg.split(' ').next().unwrap_or(arg);
        line = line.replacen(
            &format!("'{arg}'"),
            &format!("{var} (the variable for {flag})"),
            1,
        );
    } else if !matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        line.push_str(" (see --help)");
    }
    (line, code)
}

/// The environment variable that supplied the invalid argument `arg` (as clap names it, e.g.
/// `--threads <N>`): it has one, it is set, and the flag is not on the command line.
fn env_source(arg: &str, args: &[OsString]) -> Option<String> {
    let flag = arg.split(' ').next()?;
    let cmd = Cli::command();
    let a = cmd
        .get_arguments()
        .find(|a| a.get_long().is_some_and(|l| flag == format!("--{l}")))?;
    let var = a.get_env()?.to_str()?.to_owned();
    std::env::var_os(&var)?;
    let long = format!("--{}", a.get_long()?);
    let short = a.get_short().map(|s| format!("-{s}"));
    let on_command_line = args.iter().skip(1).any(|x| {
        let x = x.to_string_lossy();
        x == long
            || x.starts_with(&format!("{long}="))
            || short.as_deref().is_some_and(|s| x.starts_with(s))
    });
    (!on_command_line).then_some(var)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(s: &str) -> BindParts {
        split_bind(s).unwrap()
    }

    #[test]
    fn default_host_and_port_make_the_default_bind() {
        assert_eq!(
            format!("{DEFAULT_HOST}:{DEFAULT_PORT}"),
            poolserve::server::DEFAULT_BIND
        );
    }

    #[test]
    fn bind_forms() {
        let hp = |h: Option<&str>, p: Option<u16>| BindParts {
            host: h.map(str::to_owned),
            port: p,
        };
        assert_eq!(bind("127.0.0.1:80"), hp(Some("127.0.0.1"), Some(80)));
        assert_eq!(bind(":0"), hp(None, Some(0)));
        assert_eq!(bind("localhost"), hp(Some("localhost"), None));
        assert_eq!(bind("[::1]:8080"), hp(Some("[::1]"), Some(8080)));
        assert_eq!(bind("[::1]"), hp(Some("[::1]"), None));
        assert_eq!(bind("::1"), hp(Some("[::1]"), None));
        assert!(split_bind(":99999").is_err());
        assert!(split_bind("[::1").is_err());
        assert!(split_bind("[::1]x").is_err());
    }

    fn settings(args: &[&str]) -> Result<Settings, (String, i32)> {
        parse(std::iter::once("poolserve").chain(args.iter().copied()))
    }

    #[test]
    fn port_and_bind_combine() {
        assert_eq!(settings(&[]).unwrap().bind, "127.0.0.1:7878");
        assert_eq!(settings(&["-p", "9000"]).unwrap().bind, "127.0.0.1:9000");
        assert_eq!(
            settings(&["--bind", "0.0.0.0", "--port", "9000"])
                .unwrap()
                .bind,
            "0.0.0.0:9000"
        );
        assert_eq!(settings(&["--bind", ":0"]).unwrap().bind, "127.0.0.1:0");
        assert_eq!(
            settings(&["--bind", "0.0.0.0:9000", "-p", "9000"])
                .unwrap()
                .bind,
            "0.0.0.0:9000"
        );
        let (msg, code) = settings(&["--bind", ":8000", "-p", "9000"]).unwrap_err();
        assert_eq!(code, 2);
        assert!(msg.contains("different ports"), "{msg}");
    }

    #[test]
    fn numbers_are_checked() {
        for args in [
            ["--threads", "0"],
            ["--threads", "1025"],
            ["--max-connections", "0"],
            ["--header-timeout", "0"],
            ["--keep-alive-timeout", "0"],
            ["--write-timeout", "0"],
            ["--max-requests", "0"],
            ["--body-timeout", "100000"],
        ] {
            let (msg, code) = settings(&args).unwrap_err();
            assert_eq!(code, 2, "{args:?}");
            assert!(msg.contains(args[0]), "{args:?}: {msg}");
            assert!(!msg.contains('\n'), "{args:?}: {msg}");
        }
        assert!(settings(&["--threads", "1024", "--grace-period", "0"]).is_ok());
    }

    #[test]
    fn dir_and_root() {
        let s = settings(&[]).unwrap();
        assert_eq!((s.root, s.root_is_default), (PathBuf::from("public"), true));
        let s = settings(&["site"]).unwrap();
        assert_eq!((s.root, s.root_is_default), (PathBuf::from("site"), false));
        assert!(settings(&["site", "--root", "site"]).is_ok());
        let (msg, _) = settings(&["site", "--root", "other"]).unwrap_err();
        assert!(msg.contains("different directories"), "{msg}");
    }
}
