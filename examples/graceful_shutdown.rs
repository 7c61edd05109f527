//! Ctrl-C drains a busy pool: queued jobs still run, then every worker is joined.
//! A second Ctrl-C exits at once.
//!
//! Run with `cargo run --example graceful_shutdown`, then press Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use poolserve::ThreadPool;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPool::new(2);
    let interrupted = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGINT,
        130,
        Arc::clone(&interrupted),
    )?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted))?;

    println!("submitting 20 jobs of 300 ms on 2 workers; press Ctrl-C to drain early");
    let mut submitted = 0;
    for i in 0..20 {
        if interrupted.load(Ordering::Relaxed) {
            break;
        }
        pool.execute(move || {
            std::thread::sleep(Duration::from_millis(300));
            println!("job {i} done");
        })
        .map_err(|e| e.to_string())?;
        submitted += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("stopped submitting after {submitted} jobs; draining (Ctrl-C again to exit now)");
    let report = pool.shutdown()?;
    println!(
        "drained: {} jobs completed, {} threads joined",
        report.completed, report.threads_joined
    );
    Ok(())
}
