//! Deadlines for the pool's real-thread tests (`tests/pool_*.rs`).
//!
//! A broken pool tends to hang rather than fail: a lost wake-up leaves `wait_idle`, `shutdown` or a
//! join waiting for ever. Every blocking wait in these tests goes through one of the helpers below,
//! so that it gives up after [`PATIENCE`] and fails the test with a message naming what it waited
//! for, instead of stalling the suite until CI's own timeout.

#![allow(dead_code)] // each test crate uses a different subset

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// How long any test waits for something that should happen promptly.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Runs `f` on a helper thread and fails the test if it does not return within [`PATIENCE`]
/// (the helper is then left behind, still blocked; the test fails anyway).
pub fn within_patience<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not return within {PATIENCE:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// Receives one message within [`PATIENCE`], or fails the test naming `what` it waited for.
pub fn recv_within<T>(rx: &mpsc::Receiver<T>, what: &str) -> T {
    match rx.recv_timeout(PATIENCE) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("waited {PATIENCE:?} for {what}, in vain")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            panic!("waiting for {what}: every sender was dropped first")
        }
    }
}

/// Joins `handle` within [`PATIENCE`], or fails the test naming `what` it waited for.
pub fn join_within<T: Send + 'static>(what: &str, handle: thread::JoinHandle<T>) -> T {
    within_patience(what, move || handle.join()).unwrap_or_else(|_| panic!("{what} panicked"))
}

/// Owns a value whose drop may block (a pool: its `Drop` drains and joins) and drops it on a
/// helper thread within [`PATIENCE`], also when a failing test unwinds past it. A broken pool then
/// fails the test naming `what`, instead of hanging it in a destructor; during an unwind (the test
/// has failed already) the hung drop is reported and left behind.
pub struct DropWithin<T: Send + 'static> {
    value: Option<T>,
    what: &'static str,
}

impl<T: Send + 'static> DropWithin<T> {
    /// Wraps `value`; `what` names it in the failure message.
    pub fn new(what: &'static str, value: T) -> Self {
        DropWithin {
            value: Some(value),
            what,
        }
    }

    /// Takes the value back, to consume it (`shutdown` and friends), within a deadline of its own.
    pub fn into_inner(mut self) -> T {
        self.value.take().expect("present until taken")
    }
}

impl<T: Send + 'static> std::ops::Deref for DropWithin<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_ref().expect("present until taken")
    }
}

impl<T: Send + 'static> Drop for DropWithin<T> {
    fn drop(&mut self) {
        let Some(value) = self.value.take() else {
            return;
        };
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            drop(value);
            let _ = tx.send(());
        });
        if rx.recv_timeout(PATIENCE).is_err() {
            if thread::panicking() {
                eprintln!("dropping {} did not return within {PATIENCE:?}", self.what);
            } else {
                panic!("dropping {} did not return within {PATIENCE:?}", self.what);
            }
        }
    }
}
