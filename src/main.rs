//! `poolserve`: serve a folder over HTTP/1.1 (see `poolserve --help`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use poolserve::files::StaticFiles;
use poolserve::http::{Limits, Request, Response};
use poolserve::{Handler, Server};

/// Serve a folder over HTTP/1.1 with a fixed pool of worker threads.
///
/// Every option can also be set through the environment variable shown with it.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "POOLSERVE_BIND", default_value = poolserve::server::DEFAULT_BIND)]
    bind: String,
    /// Directory to serve.
    #[arg(long, env = "POOLSERVE_ROOT", default_value = "public")]
    root: PathBuf,
    /// Worker threads (they also run the event loop; there is no separate poller thread).
    #[arg(long, env = "POOLSERVE_THREADS", default_value_t = poolserve::pool::DEFAULT_THREADS)]
    threads: usize,
    /// Connections held open at once (idle or busy); beyond that, clients get 503 + Retry-After.
    #[arg(long, env = "POOLSERVE_MAX_CONNECTIONS", default_value_t = poolserve::server::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Seconds from a request's first byte to its complete head (then 408).
    #[arg(long, env = "POOLSERVE_HEADER_TIMEOUT", default_value_t = 10)]
    header_timeout: u64,
    /// Seconds without a byte of request body (then 408).
    #[arg(long, env = "POOLSERVE_BODY_TIMEOUT", default_value_t = 30)]
    body_timeout: u64,
    /// Seconds an idle keep-alive connection is kept open.
    #[arg(long, env = "POOLSERVE_KEEP_ALIVE_TIMEOUT", default_value_t = 5)]
    keep_alive_timeout: u64,
    /// Seconds in-flight requests get to finish at shutdown.
    #[arg(long, env = "POOLSERVE_GRACE_PERIOD", default_value_t = 10)]
    grace_period: u64,
    /// Requests served on one connection before it is closed.
    #[arg(long, env = "POOLSERVE_MAX_REQUESTS", default_value_t = poolserve::server::DEFAULT_MAX_REQUESTS_PER_CONNECTION)]
    max_requests: usize,
    /// Largest request body in bytes (then 413).
    #[arg(long, env = "POOLSERVE_MAX_BODY", default_value_t = poolserve::http::DEFAULT_MAX_BODY)]
    max_body: u64,
    /// Serve an HTML listing for directories without index.html.
    #[arg(long, env = "POOLSERVE_LIST_DIRS")]
    list_dirs: bool,
    /// Do not log a line per request.
    #[arg(long, env = "POOLSERVE_NO_ACCESS_LOG")]
    no_access_log: bool,
    /// Enable the Rust Book's demo route: GET /sleep waits 5 s, then serves the index.
    #[arg(long, env = "POOLSERVE_DEMO_ROUTES")]
    demo_routes: bool,
}

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
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let files = match StaticFiles::new(&cli.root) {
        Ok(files) => files.list_dirs(cli.list_dirs),
        Err(e) => {
            eprintln!("poolserve: cannot serve {}: {e}", cli.root.display());
            return ExitCode::from(2);
        }
    };
    let limits = Limits {
        max_body: cli.max_body,
        ..Limits::default()
    };
    let server = match Server::builder()
        .bind(cli.bind.clone())
        .threads(cli.threads)
        .max_connections(cli.max_connections)
        .limits(limits)
        .header_timeout(Duration::from_secs(cli.header_timeout))
        .body_timeout(Duration::from_secs(cli.body_timeout))
        .keep_alive_timeout(Duration::from_secs(cli.keep_alive_timeout))
        .grace_period(Duration::from_secs(cli.grace_period))
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
