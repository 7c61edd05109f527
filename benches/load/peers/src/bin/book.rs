//! The Rust Book (chapter 20) design: a fixed pool of 4 workers that share one
//! `Arc<Mutex<mpsc::Receiver<Job>>>`; the acceptor sends each accepted connection as a job.
//!
//! Like the Book's server it answers exactly one request per connection and then closes it (no
//! keep-alive). Unlike the Book it says so with `Connection: close`, so a load generator reconnects
//! instead of writing its next request into a closed socket; and it reads the whole request head
//! (the Book reads only the request line), so no unread bytes turn the close into a reset.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Pool {
    sender: mpsc::Sender<Job>,
    _workers: Vec<thread::JoinHandle<()>>,
}

impl Pool {
    fn new(size: usize) -> Pool {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let workers = (0..size)
            .map(|_| {
                let receiver = Arc::clone(&receiver);
                thread::spawn(move || {
                    loop {
                        // The guard is a temporary of this statement: the lock is released before
                        // the job runs.
                        let next = receiver.lock().expect("receiver lock").recv();
                        match next {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        Pool {
            sender,
            _workers: workers,
        }
    }

    fn execute(&self, job: impl FnOnce() + Send + 'static) {
        self.sender.send(Box::new(job)).expect("workers alive");
    }
}

fn serve_one(stream: TcpStream, dir: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let found = if method == "GET" {
        poolserve_peers::route(dir, path)
    } else {
        None
    };
    let (status, kind, body) = match found.map(|(file, kind)| (std::fs::read(file), kind)) {
        Some((Ok(body), kind)) => ("200 OK", kind, body),
        _ => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // One write, as the Book does (head and body in one buffer): two small writes would meet
    // Nagle's algorithm and the client's delayed ACK.
    let mut response = head.into_bytes();
    response.extend_from_slice(&body);
    (&stream).write_all(&response)
}

fn main() {
    let (port, dir) = poolserve_peers::args();
    let dir = Arc::new(dir);
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    let pool = Pool::new(4);
    println!("book: listening on http://127.0.0.1:{port}");
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let dir = Arc::clone(&dir);
        pool.execute(move || {
            let _ = serve_one(stream, &dir);
        });
    }
}
