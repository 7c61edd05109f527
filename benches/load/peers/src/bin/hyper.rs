//! hyper 1.x (HTTP/1.1, keep-alive on) with hyper-util's tokio I/O adapter, on a tokio
//! multi-thread runtime with 2 worker threads; one task per connection.
//!
//! The file is read with a plain `std::fs::read` inside the task: both files are small and in
//! the page cache, so this stays in the microseconds and needs no blocking-pool thread.
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn answer(dir: &Path, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let found = if req.method() == Method::GET {
        poolserve_peers::route(dir, req.uri().path())
    } else {
        None
    };
    match found.map(|(file, kind)| (std::fs::read(file), kind)) {
        Some((Ok(body), kind)) => Response::builder()
            .header("Content-Type", kind)
            .body(Full::new(Bytes::from(body)))
            .expect("valid response"),
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"not found\n")))
            .expect("valid response"),
    }
}

fn main() {
    let (port, dir) = poolserve_peers::args();
    let dir = Arc::new(dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        println!("hyper: listening on http://127.0.0.1:{port}");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let dir = Arc::clone(&dir);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let response = answer(&dir, &req);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
