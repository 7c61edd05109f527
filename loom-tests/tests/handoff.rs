//! Models of the server's own protocol (`src/handoff/`, stated in its `PROTOCOL.md`): the
//! connection table ([`ConnTable`]) and the chain of event-loop turns ([`TurnChain`]). The
//! models drive the *real* types with loom threads standing in for the event loop, the workers,
//! the watcher in `Server::serve` and shutdown; a connection is a token that counts its closes
//! (drops), and readiness is an atomic "the socket has unread bytes" plus the report the event
//! loop would get.
//!
//! Each model names the claim of `PROTOCOL.md` it checks. The negative twins at the end turn on a
//! fault point of the real code (`poolserve::handoff::breaks`) and must fail.
#![cfg(loom)]

mod support;

use std::time::{Duration, Instant};

use poolserve::handoff::breaks;
use poolserve::handoff::table::{AfterPark, ConnTable, OnDeadline, Ready, Wait, WaitFor};
use poolserve::handoff::turns::{TurnChain, Watch};
use poolserve::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use poolserve::sync::{Arc, Mutex, lock, thread};
use support::{check, expect_failure};

/// Preemption bound of these models: each has two or three threads of a few steps, so bound 3
/// explores them completely or nearly so in seconds (the cost table in `loom-tests/README.md`).
const BOUND: usize = 3;

/// A connection: closing it is dropping it, which counts.
struct Conn {
    id: usize,
    closes: Arc<AtomicUsize>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.closes.fetch_add(1, Ordering::SeqCst);
    }
}

fn conn(id: usize, closes: &Arc<AtomicUsize>) -> Conn {
    Conn {
        id,
        closes: Arc::clone(closes),
    }
}

fn wait(what: WaitFor, on_deadline: OnDeadline, deadline: Instant) -> Wait {
    Wait {
        what,
        deadline,
        on_deadline,
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

const READABLE: Ready = Ready {
    read: true,
    write: false,
    peer_closed: false,
};

const WRITABLE: Ready = Ready {
    read: false,
    write: true,
    peer_closed: false,
};

/// A worker's side of [`PROTOCOL.md` P1]: reads what the socket has, then parks for readability,
/// and serves again whenever `park` hands the connection back.
fn serve_until_parked(table: &ConnTable<Conn>, id: usize, mut c: Conn, data: &AtomicBool) {
    for _ in 0..3 {
        data.swap(false, Ordering::SeqCst); // the read: consumes whatever has arrived
        match table.park(
            id,
            c,
            wait(WaitFor::Read, OnDeadline::Close, far()),
            false,
            true,
        ) {
            AfterPark::Parked { .. } => return,
            AfterPark::Again(back, _) => c = back,
            AfterPark::Gone(_) => panic!("the slot vanished"),
        }
    }
    panic!("served three times for one readiness report");
}

/// [P1] Readiness that arrives during a worker's last read is never lost: bytes arrive and the
/// event loop is told after the worker's read found nothing, while it still has the connection.
/// Whatever the interleaving, someone reads those bytes (the worker, handed the connection back
/// by `park`, or a job the loop dispatches).
fn readiness_during_last_read_model() {
    let closes = Arc::new(AtomicUsize::new(0));
    let table = Arc::new(ConnTable::default());
    let data = Arc::new(AtomicBool::new(false));
    table.insert(
        1,
        conn(1, &closes),
        wait(WaitFor::Read, OnDeadline::Close, far()),
    );
    let first = table.on_ready(1, READABLE).expect("parked and readable");
    let worker = {
        let (table, data) = (Arc::clone(&table), Arc::clone(&data));
        thread::spawn(move || serve_until_parked(&table, 1, first.conn, &data))
    };
    // The client sends; the event loop hears of it and dispatches if it can.
    data.store(true, Ordering::SeqCst);
    if let Some(d) = table.on_ready(1, READABLE) {
        serve_until_parked(&table, 1, d.conn, &data);
    }
    worker.join().unwrap();
    assert!(
        !data.load(Ordering::SeqCst),
        "bytes arrived and were reported, but the connection is parked unread: a lost wake-up"
    );
    assert_eq!(closes.load(Ordering::SeqCst), 0);
}

#[test]
fn readiness_during_a_workers_last_read_is_never_lost() {
    let _serial = serial();
    check(
        "handoff_readiness_during_last_read",
        BOUND,
        readiness_during_last_read_model,
    );
}

/// [P2, P3] A connection is owned by one job at a time and closed exactly once, whoever closes it:
/// its worker (done with it), its deadline (the loop's `expire`) or shutdown (`clear` at the end
/// of the grace period). Conn 1 is with a worker that parks it past its deadline while the loop
/// expires; conn 2 is with a worker that closes it and forgets its slot; then shutdown clears what
/// is left. (A slot cleared while its worker still has the connection, `AfterPark::Gone`, is
/// covered by a unit test in `table.rs`.)
fn closed_exactly_once_model() {
    let closes = Arc::new(AtomicUsize::new(0));
    let owners = Arc::new(AtomicUsize::new(0));
    let table = Arc::new(ConnTable::default());
    let past = Instant::now();
    for id in [1, 2] {
        table.insert(
            id,
            conn(id, &closes),
            wait(WaitFor::Read, OnDeadline::Close, far()),
        );
    }
    let one = table.on_ready(1, READABLE).expect("1 parked");
    let two = table.on_ready(2, READABLE).expect("2 parked");
    owners.fetch_add(2, Ordering::SeqCst);
    let parker = {
        let (table, owners) = (Arc::clone(&table), Arc::clone(&owners));
        thread::spawn(move || {
            let w = wait(WaitFor::Read, OnDeadline::Close, past);
            owners.fetch_sub(1, Ordering::SeqCst);
            // Parked (expire or clear closes it later), or Gone (shutdown cleared the slot: this
            // drop closes it). No readiness comes, so never Again.
            drop(table.park(1, one.conn, w, false, true));
        })
    };
    let closer = {
        let (table, owners) = (Arc::clone(&table), Arc::clone(&owners));
        thread::spawn(move || {
            owners.fetch_sub(1, Ordering::SeqCst);
            drop(two.conn); // the worker closes it, then forgets the slot
            assert!(
                table.remove(2).is_none(),
                "a closed connection was still parked"
            );
        })
    };
    // The event loop checks deadlines meanwhile.
    let (expired, due) = table.expire(Instant::now());
    for c in &expired {
        assert_eq!(c.id, 1, "only the parked connection can expire");
    }
    assert!(due.is_empty());
    drop(expired);
    parker.join().unwrap();
    closer.join().unwrap();
    assert!(
        table.len() <= 1,
        "the slot of a connection its worker closed is still counted"
    );
    // Shutdown's end of grace clears what is left (the parked one, if it did not expire).
    let (left, _) = table.clear();
    drop(left);
    assert_eq!(owners.load(Ordering::SeqCst), 0);
    assert_eq!(table.len(), 0, "a slot outlived its connection");
    assert_eq!(
        closes.load(Ordering::SeqCst),
        2,
        "each of the two connections is closed exactly once"
    );
}

#[test]
fn a_connection_is_closed_exactly_once_by_worker_deadline_or_shutdown() {
    let _serial = serial();
    check(
        "handoff_closed_exactly_once",
        BOUND,
        closed_exactly_once_model,
    );
}

/// [P4] Shutdown with connections parked idle (1), dispatched (2) and parked mid-write (3): the
/// first shutdown step takes out the idle one only (for a last read, after which its worker closes
/// it); the dispatched one's worker parks it to finish its response; every response still going
/// out is finished (dispatched on writability and closed by its worker) and each connection is
/// closed exactly once.
fn shutdown_model() {
    let closes = Arc::new(AtomicUsize::new(0));
    let table = Arc::new(ConnTable::default());
    table.insert(
        1,
        conn(1, &closes),
        wait(WaitFor::Read, OnDeadline::Close, far()),
    );
    table.insert(
        2,
        conn(2, &closes),
        wait(WaitFor::Read, OnDeadline::Close, far()),
    );
    table.insert(
        3,
        conn(3, &closes),
        wait(WaitFor::Write, OnDeadline::Close, far()),
    );
    let two = table.on_ready(2, READABLE).expect("2 parked");
    let worker = {
        let table = Arc::clone(&table);
        thread::spawn(move || {
            // Its response did not fit: it parks for writability.
            let w = wait(WaitFor::Write, OnDeadline::Close, far());
            match table.park(2, two.conn, w, false, true) {
                AfterPark::Parked { .. } => {}
                _ => panic!("a connection writing a response was closed or lost at shutdown"),
            }
        })
    };
    // Shutdown's first step, then the drain: the loop dispatches writers as they become writable.
    for d in table.take_parked_for_shutdown() {
        assert_eq!(
            d.conn.id, 1,
            "shutdown took a connection that was writing a response"
        );
        drop(d.conn); // its last read found nothing: its worker closes it
        assert!(table.remove(d.id).is_none());
    }
    worker.join().unwrap();
    let (closed, _) = table.close_parked();
    assert!(closed.is_empty(), "a writer was closed by the drain");
    for id in [2, 3] {
        let d = table
            .on_ready(id, WRITABLE)
            .expect("a writer is dispatched when writable");
        drop(d.conn); // its response is done: its worker closes it
        table.remove(id);
    }
    assert_eq!(table.len(), 0);
    assert_eq!(closes.load(Ordering::SeqCst), 3, "each closed exactly once");
}

#[test]
fn shutdown_closes_idle_connections_and_drains_writers_exactly_once() {
    let _serial = serial();
    check("handoff_shutdown", BOUND, shutdown_model);
}

/// The pool as the turn chain sees it: turn jobs queued (not begun), and turn jobs that exist
/// (queued, or holding a turn). One exists at a time, or the chain doubled.
struct Pool {
    queued: Mutex<usize>,
    existing: AtomicUsize,
}

impl Pool {
    fn submit(&self) {
        *lock(&self.queued) += 1;
        let n = self.existing.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(n <= 1, "two turn jobs exist at once: the chain doubled");
    }
    fn take(&self) -> bool {
        let mut q = lock(&self.queued);
        if *q == 0 {
            return false;
        }
        *q -= 1;
        true
    }
    /// A turn job's turn is over (ended, or panicked).
    fn turn_over(&self) {
        self.existing.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs up to `jobs` turn jobs from `pool`; the first panics (its turn is dropped, not ended) if
/// `first_panics`.
fn worker(chain: &TurnChain<u32>, pool: &Pool, jobs: usize, first_panics: bool) {
    for i in 0..jobs {
        if !pool.take() {
            return;
        }
        let mut turn = chain.begin();
        *turn.state() += 1;
        if i == 0 && first_panics {
            // Unwinding: this job will never queue a next one, and it drops the turn (and the
            // lock) without ending it.
            pool.turn_over();
            drop(turn);
            return;
        }
        turn.end(true);
        pool.turn_over();
        pool.submit();
    }
}

/// The watcher's look after a tick in which it saw turn 1 begin.
fn watcher(chain: &TurnChain<u32>, pool: &Pool) {
    let mut seen = 1;
    match chain.watch(&mut seen) {
        Watch::Fine => {}
        Watch::RunHere(state) => drop(state), // a fallback turn: serves nothing, queues nothing
        Watch::Requeue => pool.submit(),
    }
}

/// [T1, T2] The turn chain never doubles, and a queued mark always stands for a queued job.
fn chain_model(first_panics: bool) {
    let chain = Arc::new(TurnChain::new(0u32));
    let pool = Arc::new(Pool {
        queued: Mutex::new(0),
        existing: AtomicUsize::new(0),
    });
    pool.submit(); // the first turn job, marked queued by `TurnChain::new`
    let w = {
        let (chain, pool) = (Arc::clone(&chain), Arc::clone(&pool));
        thread::spawn(move || worker(&chain, &pool, 2, first_panics))
    };
    watcher(&chain, &pool);
    w.join().unwrap();
    let queued = *lock(&pool.queued);
    assert_eq!(
        chain.is_queued(),
        queued == 1,
        "the queued mark and the pool disagree ({queued} jobs queued)"
    );
    if queued == 0 {
        // Broken (a turn panicked and the watcher looked too early): the next look repairs it.
        let mut seen = u64::from(*chain.lock_state());
        assert!(
            matches!(chain.watch(&mut seen), Watch::Requeue),
            "the chain is broken and the watcher would not requeue it"
        );
    }
}

#[test]
fn the_turn_chain_never_doubles() {
    let _serial = serial();
    check("handoff_chain_never_doubles", BOUND, || chain_model(false));
}

#[test]
fn a_panicking_turn_is_requeued_by_the_watcher_and_never_doubled() {
    let _serial = serial();
    check("handoff_chain_after_panic", BOUND, || chain_model(true));
}

/// The breaks are process-wide: every model of this file holds this lock while it runs, so no
/// positive model runs while a negative twin has a break on.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs a negative twin: turns `name` on in the real code, expects loom to find the failure
/// `expected` names, turns it off again.
fn negative(name: &'static str, model: fn(), expected: &str) {
    let _serial = serial();
    breaks::set(Some(name));
    let message = expect_failure(name, BOUND, model);
    breaks::set(None);
    assert!(
        message.contains(expected),
        "{name}: loom failed for another reason: {message}"
    );
}

/// NEGATIVE twin of [P1]: `park` forgets readiness that came while the connection was
/// dispatched. Loom finds the interleaving in which the bytes stay unread.
#[test]
fn negative_park_that_ignores_pending_readiness_loses_a_wake_up() {
    negative(
        breaks::PARK_IGNORES_PENDING,
        readiness_during_last_read_model,
        "lost wake-up",
    );
}

/// NEGATIVE twin of [T1]: a turn marks the next one queued after releasing the lock. Loom finds
/// the interleaving in which the watcher sees neither a running nor a queued turn and queues a
/// second chain.
#[test]
fn negative_queueing_the_next_turn_after_unlocking_doubles_the_chain() {
    negative(
        breaks::QUEUED_AFTER_UNLOCK,
        || chain_model(false),
        "chain doubled",
    );
}
