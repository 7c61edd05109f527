//! [`Builder`]: configures and starts a [`ThreadPool`].

use std::fmt;

use super::shared::{Hook, Shared};
use super::{BuildError, ThreadPool};
use crate::sync::{Arc, thread};

/// How worker threads are named.
enum Naming {
    Prefix(String),
    Fn(Box<dyn FnMut(usize) -> String>),
}

/// Configures a [`ThreadPool`]: number of threads, their names and stack size, the queue bound and
/// per-thread start/stop hooks.
///
/// ```
/// use poolserve::ThreadPool;
///
/// let pool = ThreadPool::builder()
///     .threads(2)
///     .thread_name("resize")
///     .queue_capacity(Some(64))
///     .build()?;
/// assert_eq!(pool.threads(), 2);
/// # Ok::<(), poolserve::BuildError>(())
/// ```
#[must_use = "a Builder does nothing until `build` is called"]
pub struct Builder {
    threads: usize,
    naming: Naming,
    stack_size: Option<usize>,
    queue_capacity: Option<usize>,
    on_start: Option<Hook>,
    on_stop: Option<Hook>,
}

/// The number of worker threads a [`Builder`] starts unless told otherwise.
pub const DEFAULT_THREADS: usize = 4;

/// The thread-name prefix a [`Builder`] uses unless told otherwise.
pub const DEFAULT_THREAD_NAME: &str = "poolserve-worker";

impl Default for Builder {
    fn default() -> Self {
        Builder {
            threads: DEFAULT_THREADS,
            naming: Naming::Prefix(DEFAULT_THREAD_NAME.to_owned()),
            stack_size: None,
            queue_capacity: None,
            on_start: None,
            on_stop: None,
        }
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("threads", &self.threads)
            .field("stack_size", &self.stack_size)
            .field("queue_capacity", &self.queue_capacity)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// A builder with the defaults: [`DEFAULT_THREADS`] threads named
    /// `"poolserve-worker-{index}"`, the platform's default stack size, an unbounded queue, no hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the number of worker threads. Default is [`DEFAULT_THREADS`] (4).
    /// Zero makes [`build`](Self::build) return [`BuildError::ZeroThreads`].
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Names the threads `"{prefix}-{index}"`, index from 0. Default prefix is
    /// [`DEFAULT_THREAD_NAME`].
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.naming = Naming::Prefix(prefix.into());
        self
    }

    /// Names each thread by calling `name(index)`, index from 0.
    pub fn thread_name_fn(mut self, name: impl FnMut(usize) -> String + 'static) -> Self {
        self.naming = Naming::Fn(Box::new(name));
        self
    }

    /// Sets each worker's stack size in bytes. Default is the platform's default for spawned
    /// threads (2 MiB on Linux unless `RUST_MIN_STACK` says otherwise).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Bounds the queue of accepted-but-not-started jobs. `None` (the default) is unbounded.
    ///
    /// With `Some(n)`, [`ThreadPool::execute`] blocks while `n` jobs are waiting and
    /// [`ThreadPool::try_execute`] hands the job back in [`ExecuteError::Full`](super::ExecuteError::Full).
    /// `Some(0)` makes [`build`](Self::build) return [`BuildError::ZeroCapacity`].
    pub fn queue_capacity(mut self, capacity: Option<usize>) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// Runs `hook` on each worker thread when it starts, before it takes any job. A panic in the
    /// hook is caught and logged; the worker still serves.
    pub fn on_thread_start(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_start = Some(Box::new(hook));
        self
    }

    /// Runs `hook` on each worker thread as it exits (after its last job). A panic in the hook is
    /// caught and logged.
    pub fn on_thread_stop(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_stop = Some(Box::new(hook));
        self
    }

    /// Starts the worker threads.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroThreads`], [`BuildError::ZeroCapacity`], or [`BuildError::Spawn`] if the
    /// operating system refuses a thread (the threads already started are shut down and joined first).
    pub fn build(self) -> Result<ThreadPool, BuildError> {
        let Builder {
            threads,
            mut naming,
            stack_size,
            queue_capacity,
            on_start,
            on_stop,
        } = self;
        if threads == 0 {
            return Err(BuildError::ZeroThreads);
        }
        if queue_capacity == Some(0) {
            return Err(BuildError::ZeroCapacity);
        }
        let shared = Arc::new(Shared::new(queue_capacity, on_start, on_stop));
        let mut pool = ThreadPool {
            shared,
            handles: Vec::with_capacity(threads),
        };
        for index in 0..threads {
            let name = match &mut naming {
                Naming::Prefix(prefix) => format!("{prefix}-{index}"),
                Naming::Fn(f) => f(index),
            };
            let mut builder = thread::Builder::new().name(name);
            if let Some(bytes) = stack_size {
                builder = builder.stack_size(bytes);
            }
            // Count the worker as live before it exists, so shutdown never sees a gap.
            pool.shared.lock().live_workers += 1;
            let shared = Arc::clone(&pool.shared);
            match builder.spawn(move || super::shared::worker_loop(&shared)) {
                Ok(handle) => pool.handles.push(handle),
                Err(e) => {
                    pool.shared.lock().live_workers -= 1;
                    log::error!("pool: could not spawn worker {index}: {e}");
                    // Dropping `pool` shuts down and joins the workers already started.
                    drop(pool);
                    return Err(BuildError::Spawn(e));
                }
            }
        }
        log::debug!("pool: started {threads} workers");
        Ok(pool)
    }
}
