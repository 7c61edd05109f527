//! Embed the server with your own handler: a tiny JSON endpoint in front of the static files.
//!
//! Run with `cargo run --example custom_handler`, then
//! `curl http://127.0.0.1:7879/api/hits` and `curl http://127.0.0.1:7879/`.

use std::sync::atomic::{AtomicU64, Ordering};

use poolserve::files::StaticFiles;
use poolserve::http::{Request, Response};
use poolserve::{Handler, Server};

struct App {
    hits: AtomicU64,
    files: StaticFiles,
}

impl Handler for App {
    fn handle(&self, req: &Request<'_, '_>) -> Response {
        let n = self.hits.fetch_add(1, Ordering::Relaxed) + 1;
        match (req.method, req.path()) {
            ("GET", "/api/hits") => Response::new(200)
                .header("Content-Type", "application/json")
                .body(format!("{{\"hits\":{n}}}\n")),
            _ => self.files.handle(req),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/public");
    let server = Server::builder()
        .bind("127.0.0.1:7879")
        .threads(4)
        .build()?;
    let stop = server.shutdown_handle();
    ctrl_c(move || stop.shutdown())?;
    println!("listening on http://{}", server.local_addr());
    let report = server.serve(App {
        hits: AtomicU64::new(0),
        files: StaticFiles::new(root)?,
    })?;
    println!("served {} connections", report.connections);
    Ok(())
}

/// Runs `f` on the first SIGINT/SIGTERM.
fn ctrl_c(f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            f();
        }
    });
    Ok(())
}
