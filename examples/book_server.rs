//! The Rust Book's chapter 20 web server, rebuilt on poolserve in a few lines.
//!
//! `GET /` serves `hello.html`, `GET /sleep` waits 5 seconds first, anything else is `404`. Open
//! `/sleep` in one tab and `/` in another: the second answers at once, from another worker.
//!
//! Run with `cargo run --example book_server`, then visit http://127.0.0.1:7878/.

use std::time::Duration;

use poolserve::Server;
use poolserve::http::{Request, Response};

const HELLO: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Hello!</title></head>\n<body><h1>Hello!</h1><p>Hi from Rust</p></body></html>\n";
const NOT_FOUND: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Hello!</title></head>\n<body><h1>Oops!</h1><p>Sorry, I don't know what you're asking for.</p></body></html>\n";

fn handle(req: &Request<'_, '_>) -> Response {
    let (status, page) = match (req.method, req.path()) {
        ("GET", "/") => (200, HELLO),
        ("GET", "/sleep") => {
            std::thread::sleep(Duration::from_secs(5));
            (200, HELLO)
        }
        _ => (404, NOT_FOUND),
    };
    Response::new(status)
        .header("Content-Type", "text/html; charset=utf-8")
        .body(page)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::builder()
        .bind("127.0.0.1:7878")
        .threads(4)
        .build()?;
    println!("listening on http://{}", server.local_addr());
    server.serve(handle)?;
    Ok(())
}
