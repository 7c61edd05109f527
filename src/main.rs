//! `poolserve`: serve a folder over HTTP/1.1 (see `poolserve --help`).

mod cli;

use std::process::ExitCode;
use std::time::Duration;

use poolserve::files::StaticFiles;
use poolserve::http::{Limits, Request, Response};
use poolserve::{Handler, Server};

/// Wraps the static handler with the Book's `/sleep` route.
struct DemoRoutes(StaticFiles);

impl Handler for DemoRoutes {
    fn handle(&self, req: &Request<'_, '_>) -> Response {
        if req.method == "GET" && req.path() == "/sleep" {
            std::thread::sleep(Duration::from_secs(5));
            let mut headers = [poolserve::http::EMPTY_HEADER; 4];
            let index = b"GET / HTTP/1.1\r\nHost: demo\r\n\r\n";
            if let Ok(poolserve::http::Status::Complete(index_req, _)) =
                poolserve::http::parse(index, &mut headers, &Limits::default())
            {
                return self.0.handle(&index_req);
            }
        }
        self.0.handle(req)
    }
}

fn main() -> ExitCode {
    let settings = match cli::parse(std::env::args_os()) {
        Ok(settings) => settings,
        Err((text, 0)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err((line, code)) => {
            eprintln!("poolserve: {line}");
            return ExitCode::from(u8::try_from(code).unwrap_or(2));
        }
    };
    // Before any thread starts: reading the passed sockets clears their variables.
    let inherited = match inherited_listener() {
        Ok(inherited) => inherited,
        Err(e) => {
            eprintln!("poolserve: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = &settings.cli;
    check_open_file_limit(cli.max_connections);
    let root = &settings.root;
    if settings.root_is_default && !root.exists() {
        eprintln!(
            "poolserve: there is no directory `public` here to serve by default; name one: poolserve DIR"
        );
        return ExitCode::from(2);
    }
    let mut files = match StaticFiles::new(root) {
        Ok(files) => files
            .list_dirs(cli.list_dirs)
            .precompressed(!cli.no_precompressed),
        Err(e) => {
            eprintln!("poolserve: cannot serve {}: {e}", root.display());
            return ExitCode::from(2);
        }
    };
    if let Some(value) = &cli.cache_control {
        files = files.cache_control(value.clone());
    }
    let limits = Limits {
        max_body: cli.max_body,
        ..Limits::default()
    };
    let secs = Duration::from_secs;
    let mut builder = Server::builder()
        .bind(settings.bind.clone())
        .reuse_port(cli.reuse_port);
    if let Some(listener) = inherited {
        log::info!(
            "serving on the socket passed by the service manager (LISTEN_FDS); --bind and --reuse-port are not used"
        );
        builder = builder.listener(listener);
    }
    let server = match builder
        .threads(cli.threads)
        .max_connections(cli.max_connections)
        .limits(limits)
        .header_timeout(secs(cli.header_timeout))
        .body_timeout(secs(cli.body_timeout))
        .body_total_timeout(secs(cli.body_total_timeout))
        .max_buffered_body(cli.max_buffered_body)
        .keep_alive_timeout(secs(cli.keep_alive_timeout))
        .write_timeout(secs(cli.write_timeout))
        .grace_period(secs(cli.grace_period))
        .max_requests_per_connection(cli.max_requests)
        .access_log(!cli.no_access_log)
        .build()
    {
        Ok(server) => server,
        Err(e) => {
            eprintln!("poolserve: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = install_signal_handlers(server.shutdown_handle()) {
        eprintln!("poolserve: cannot install signal handlers: {e}");
        return ExitCode::from(2);
    }
    println!("listening on http://{}", server.local_addr());
    let result = if cli.demo_routes {
        server.serve(DemoRoutes(files))
    } else {
        server.serve(files)
    };
    match result {
        Ok(report) if report.unfinished == 0 => ExitCode::SUCCESS,
        Ok(report) => {
            eprintln!(
                "poolserve: {} connections were cut off at the end of the grace period",
                report.unfinished
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("poolserve: {e}");
            ExitCode::from(1)
        }
    }
}

/// The listening socket passed by systemd's socket activation (or anything speaking its protocol,
/// like `systemd-socket-activate` and `systemfd`): when `LISTEN_FDS` is set and `LISTEN_PID` is
/// this process, the first passed descriptor (fd 3) must be a listening TCP socket, and is used
/// instead of binding. `LISTEN_PID` naming another process (the variables were inherited by
/// mistake) means nothing was passed to this one. Reading them unsets both variables.
fn inherited_listener() -> Result<Option<std::net::TcpListener>, String> {
    let Some(count) = std::env::var_os("LISTEN_FDS") else {
        return Ok(None);
    };
    let pid = std::env::var("LISTEN_PID").ok();
    if pid.as_deref().and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id()) {
        // Not meant for this process (or no LISTEN_PID at all, which systemd always sets).
        return Ok(None);
    }
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Err(format!(
            "LISTEN_FDS={} names no socket to serve on",
            count.to_string_lossy()
        ));
    }
    if fds.len() > 1 {
        eprintln!(
            "poolserve: {} sockets were passed (LISTEN_FDS); serving on the first only",
            fds.len()
        );
    }
    match fds.take_tcp_listener(0) {
        Ok(Some(listener)) => Ok(Some(listener)),
        Ok(None) => Err("the socket passed as fd 3 (LISTEN_FDS) is not available".into()),
        Err(e) => Err(format!(
            "the socket passed as fd 3 (LISTEN_FDS) is not a listening TCP socket: {e}"
        )),
    }
}

/// Open files kept free for everything but connections: the listener, the poller, files being
/// served, the signal pipe, logs.
const FD_HEADROOM: u64 = 64;

/// Raises the soft limit on open files to the hard limit, and warns when `max_connections` still
/// exceeds what that limit allows (each connection holds a descriptor; a file being served, another).
#[cfg(target_os = "linux")]
fn check_open_file_limit(max_connections: usize) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    let mut soft = before.current;
    if before.current.is_some() && before.current != before.maximum {
        // An unlimited hard limit cannot be the soft one for open files: the kernel caps it at
        // fs.nr_open (2^20 by default), so try that next.
        for target in [before.maximum, Some(1 << 20)] {
            let wanted = Rlimit {
                current: target,
                maximum: before.maximum,
            };
            if target > before.current || target.is_none() {
                match setrlimit(Resource::Nofile, wanted) {
                    Ok(()) => {
                        soft = target;
                        break;
                    }
                    Err(e) => log::debug!("cannot raise the open-file limit to {target:?}: {e}"),
                }
            }
        }
        if soft != before.current {
            log::debug!(
                "raised the open-file limit from {} to {}",
                show_limit(before.current),
                show_limit(soft)
            );
        }
    }
    let Some(soft) = soft else { return };
    // A small limit keeps half for connections rather than none.
    let room = if soft >= 2 * FD_HEADROOM {
        soft - FD_HEADROOM
    } else {
        (soft / 2).max(1)
    };
    if max_connections as u64 > room {
        log::warn!(
            "--max-connections {max_connections} exceeds what the open-file limit allows: it is {soft} \
             (hard limit {}), room for about {room} connections, the rest being kept for files and \
             the server; beyond that, clients wait or get 503. Raise the hard limit (`ulimit -Hn` \
             as root, or LimitNOFILE= in a systemd unit) or pass --max-connections {room}",
            show_limit(before.maximum)
        );
    }
}

/// Elsewhere the limit is left as it is (and not checked).
#[cfg(not(target_os = "linux"))]
fn check_open_file_limit(_max_connections: usize) {}

#[cfg(target_os = "linux")]
fn show_limit(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string())
}

/// First SIGINT/SIGTERM: graceful shutdown. Second: exit at once.
fn install_signal_handlers(handle: poolserve::ShutdownHandle) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                seen += 1;
                if seen == 1 {
                    log::info!(
                        "signal {signal}: shutting down gracefully (send again to exit at once)"
                    );
                    handle.shutdown();
                } else {
                    log::warn!("second signal: exiting now");
                    std::process::exit(130);
                }
            }
        })?;
    Ok(())
}
