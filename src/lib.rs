//! poolserve: a thread pool whose shutdown protocol is model-checked with loom, and a strict
//! HTTP/1.1 static-file server built on it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod sync;

pub mod pool;

pub use pool::{BuildError, Builder, ExecuteError, Job, PoolError, ShutdownReport, ThreadPool};

#[cfg(not(loom))]
pub mod http;

#[cfg(not(loom))]
pub mod files;

#[cfg(not(loom))]
mod handler;
#[cfg(not(loom))]
pub use handler::Handler;

#[cfg(not(loom))]
pub mod server;
#[cfg(not(loom))]
pub use server::{Config, ServeReport, Server, ServerBuilder, ServerError, ShutdownHandle};

#[cfg(not(loom))]
#[doc(hidden)]
pub mod fuzz_support;

/// The README's examples, compiled and run as doctests so the front page cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
