//! Submit jobs, wait until the pool is idle, shut down and read the report.
//!
//! Run with `cargo run --example pool_basics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use poolserve::{ExecuteError, ThreadPool};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPool::builder()
        .threads(4)
        .thread_name("basics")
        .queue_capacity(Some(64))
        .build()?;
    let total = Arc::new(AtomicU64::new(0));

    for n in 1..=1_000u64 {
        let total = Arc::clone(&total);
        // `execute` blocks while the bounded queue (64 jobs) is full: back-pressure, not loss.
        pool.execute(move || {
            total.fetch_add(n, Ordering::Relaxed);
        })
        .map_err(|e| e.to_string())?;
    }
    // A panicking job is caught and counted; its worker keeps serving.
    pool.execute(|| panic!("this job fails on purpose"))
        .map_err(|e| e.to_string())?;

    pool.wait_idle()?;
    println!("sum of 1..=1000 = {}", total.load(Ordering::Relaxed));

    pool.close();
    if let Err(ExecuteError::ShutDown(job)) =
        pool.execute(|| println!("ran by the caller after close()"))
    {
        job(); // a refused job comes back to the caller
    }
    let report = pool.shutdown()?;
    println!(
        "completed {} jobs, {} panicked, joined {} threads",
        report.completed, report.panicked, report.threads_joined
    );
    Ok(())
}
