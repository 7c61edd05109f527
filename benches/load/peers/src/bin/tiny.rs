//! `tiny_http` 0.12: one `Server`, shared by 4 threads that each loop over `incoming_requests()`.
//!
//! tiny_http itself reads requests off the connections on threads of its own and queues them;
//! these 4 threads only build and send the responses. Keep-alive is tiny_http's default.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::thread;

use tiny_http::{Header, Response, Server};

fn main() {
    let (port, dir) = poolserve_peers::args();
    let server = Arc::new(Server::http(("127.0.0.1", port)).expect("bind"));
    println!("tiny: listening on http://127.0.0.1:{port}");
    let handlers: Vec<_> = (0..4)
        .map(|_| {
            let server = Arc::clone(&server);
            let dir = dir.clone();
            thread::spawn(move || {
                for request in server.incoming_requests() {
                    let found = if *request.method() == tiny_http::Method::Get {
                        poolserve_peers::route(&dir, request.url())
                    } else {
                        None
                    };
                    let response = match found.map(|(file, kind)| (std::fs::read(file), kind)) {
                        Some((Ok(body), kind)) => Response::from_data(body).with_header(
                            Header::from_bytes("Content-Type", kind).expect("valid header"),
                        ),
                        _ => Response::from_data(b"not found\n".to_vec()).with_status_code(404),
                    };
                    let _ = request.respond(response);
                }
            })
        })
        .collect();
    for handler in handlers {
        let _ = handler.join();
    }
}
