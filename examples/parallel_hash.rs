//! Hash many blocks of data in parallel and collect the results through `JobHandle`s, next to the
//! same work done with `std::thread::scope`.
//!
//! Run with `cargo run --release --example parallel_hash` (64 generated blocks of 1 MiB), or
//! `cargo run --release --example parallel_hash -- FILE...` to hash files. The hash is 64-bit
//! FNV-1a: simple and deterministic, not cryptographic.
//!
//! The difference between the two: `std::thread::scope` may borrow the data and starts a thread
//! per chunk of work for this one call; the pool's threads are started once and outlive the call,
//! so its jobs must own what they use (`Arc<[u8]>` here) and hand their results back through
//! their handles. A job that panics (a block that cannot be hashed, say) comes back as
//! `JoinError::Panicked` instead of taking the program down.

use std::sync::Arc;
use std::time::Instant;

use poolserve::{JoinError, ThreadPool};

/// 64-bit FNV-1a.
fn fnv1a(data: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in data {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// `count` deterministic pseudo-random blocks of `size` bytes (xorshift64).
fn generated(count: usize, size: usize) -> Vec<(String, Arc<[u8]>)> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..count)
        .map(|i| {
            let block: Vec<u8> = (0..size)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            (format!("block {i}"), Arc::from(block))
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files: Vec<String> = std::env::args().skip(1).collect();
    let inputs: Vec<(String, Arc<[u8]>)> = if files.is_empty() {
        generated(64, 1 << 20)
    } else {
        files
            .into_iter()
            .map(|name| std::fs::read(&name).map(|data| (name, Arc::from(data))))
            .collect::<Result<_, _>>()?
    };
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get());

    // The pool: one job per input, each result collected through its handle, in input order.
    let pool = ThreadPool::new(threads);
    let start = Instant::now();
    let handles = inputs
        .iter()
        .map(|(_, data)| {
            let data = Arc::clone(data);
            pool.spawn(move || fnv1a(&data))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pooled = handles
        .into_iter()
        .map(|handle| handle.join())
        .collect::<Result<Vec<u64>, JoinError>>()?;
    let pool_time = start.elapsed();

    // `std::thread::scope`: `threads` threads, each hashing every `threads`-th input by borrowing.
    let start = Instant::now();
    let mut scoped = vec![0u64; inputs.len()];
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let inputs = &inputs;
                scope.spawn(move || {
                    (t..inputs.len())
                        .step_by(threads)
                        .map(|i| (i, fnv1a(&inputs[i].1)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for worker in workers {
            for (i, hash) in worker.join().expect("hashing does not panic") {
                scoped[i] = hash;
            }
        }
    });
    let scope_time = start.elapsed();

    for ((name, _), hash) in inputs.iter().zip(&pooled) {
        println!("{hash:016x}  {name}");
    }
    assert_eq!(pooled, scoped, "the two ways must agree");
    println!(
        "{} inputs on {threads} threads: pool + handles {pool_time:.2?}, std::thread::scope {scope_time:.2?}",
        inputs.len()
    );

    // A panicking job comes back through its handle; the pool goes on.
    let failed = pool.spawn(|| -> u64 { panic!("this block cannot be hashed") })?;
    match failed.join() {
        Err(JoinError::Panicked(_)) => println!("a panicking job came back as JoinError::Panicked"),
        other => println!("unexpected: {other:?}"),
    }
    pool.shutdown()?;
    Ok(())
}
