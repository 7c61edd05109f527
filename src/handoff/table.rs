//! [`ConnTable`]: who owns each connection, and what a parked connection waits for.
//!
//! A connection is always in exactly one place: *parked* in its slot (the event loop watches
//! it) or *dispatched* (moved into exactly one job, which serves it). Every rule below is one
//! method, and every method is one critical section of the table's lock, which is never held
//! while a connection is served or any I/O is done.
//!
//! * A parked connection waits for one thing ([`WaitFor`]): to be readable (the next request,
//!   the rest of a head or body, or the bytes a lingering close drains), to be writable (the rest
//!   of a response), or only for the next tick (it is out of body-buffer budget). Readiness of
//!   the other kind is ignored: a worker always reads before it waits for readability again and
//!   only waits for writability after a write came back short, so nothing it needs is lost.
//! * Readiness that arrives while the connection is dispatched is remembered
//!   (the slot's `pending`); [`ConnTable::park`] checks it under the same lock and hands the
//!   connection straight back instead of parking it, so no wake-up is lost to the race between a
//!   worker's last read (or write) and its parking.
//! * Each parked connection has a deadline; [`ConnTable::expire`] closes it or dispatches it to be
//!   answered (`408`), as the wait said.
//! * At shutdown, [`ConnTable::take_parked_for_shutdown`] hands every parked connection except
//!   those with a response on the way out to a worker for a last read (a request that arrived
//!   unread is still answered); the writers are served until done or until the grace period ends.
//!
//! The generic `C` is the connection; this module never looks inside it, and closing a
//! connection is dropping it, which the caller does outside the lock.

use std::collections::HashMap;
use std::time::Instant;

use super::breaks;
use crate::sync::{Mutex, lock};

/// What a parked connection waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// Bytes from the client (or its EOF).
    Read,
    /// Room in the socket's send buffer.
    Write,
    /// Nothing on the socket: dispatch it again at the next tick (it waits for body-buffer budget
    /// to free up).
    Tick,
}

/// What happens to a parked connection when its deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDeadline {
    /// Closed without a word (idle keep-alive, a stalled write, a lingering close).
    Close,
    /// Dispatched once more, marked timed out, to be answered `408`.
    Answer,
}

/// How a connection is parked: what it waits for, until when, and what happens then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// What readiness serves it again.
    pub what: WaitFor,
    /// When its wait is over.
    pub deadline: Instant,
    /// What happens at the deadline.
    pub on_deadline: OnDeadline,
}

/// One readiness report for a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ready {
    /// Readable, or the peer closed its side, or the socket failed.
    pub read: bool,
    /// Writable, or the socket can no longer be written to.
    pub write: bool,
    /// The peer closed its side (or the socket failed). With edge-triggered readiness this is
    /// said once, possibly with the last data, so it is carried to the worker, which then reads
    /// on to the end instead of stopping at a short read.
    pub peer_closed: bool,
}

impl Ready {
    /// Does this readiness serve a connection waiting for `what`?
    fn serves(self, what: WaitFor) -> bool {
        match what {
            WaitFor::Read => self.read,
            WaitFor::Write => self.write,
            WaitFor::Tick => false,
        }
    }

    fn merge(&mut self, other: Ready) {
        self.read |= other.read;
        self.write |= other.write;
        self.peer_closed |= other.peer_closed;
    }
}

/// A connection taken out of the table to be served, with what the worker must know.
pub struct Dispatch<C> {
    /// Its id in the table.
    pub id: usize,
    /// The connection.
    pub conn: C,
    /// The peer has closed its side (see [`Ready::peer_closed`]).
    pub peer_closed: bool,
    /// Its deadline passed: answer `408` (only for [`OnDeadline::Answer`]).
    pub timed_out: bool,
}

/// A connection's place in the table.
struct Slot<C> {
    /// `Some` while parked here; `None` while a job has it.
    conn: Option<C>,
    /// While parked: how.
    wait: Wait,
    /// Readiness that arrived while dispatched (see [`ConnTable::park`]), and a peer close seen
    /// while parked but not yet passed on.
    pending: Ready,
}

/// What [`ConnTable::park`] did.
pub enum AfterPark<C> {
    /// Parked; the event loop has it now. With `requeued`, it is to be dispatched at the next
    /// turn: wake the event loop.
    Parked {
        /// Queued for the next turn.
        requeued: bool,
    },
    /// Readiness it waits for arrived meanwhile: serve it again (the caller keeps it).
    Again(C, bool),
    /// Its slot is gone (shutdown closed it): drop it, which closes it.
    Gone(C),
}

/// The table's state, behind [`ConnTable`]'s lock.
struct Table<C> {
    map: HashMap<usize, Slot<C>>,
    /// Parked connections to dispatch at the next turn without new readiness (a worker handed
    /// one back after its rounds, so that others get a turn).
    requeued: Vec<usize>,
}

/// Every open connection, shared by the event loop and the jobs. The lock protects the map and
/// the requeued list; it is never held while serving a connection or doing I/O.
pub struct ConnTable<C> {
    inner: Mutex<Table<C>>,
}

impl<C> Default for ConnTable<C> {
    fn default() -> Self {
        ConnTable {
            inner: Mutex::new(Table {
                map: HashMap::new(),
                requeued: Vec::new(),
            }),
        }
    }
}

impl<C> ConnTable<C> {
    /// Open connections (parked or dispatched).
    pub fn len(&self) -> usize {
        lock(&self.inner).map.len()
    }

    /// No connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a new connection, parked with `wait`. Must happen before it is registered for
    /// readiness: the first readiness report must find the slot.
    pub fn insert(&self, id: usize, conn: C, wait: Wait) {
        lock(&self.inner).map.insert(
            id,
            Slot {
                conn: Some(conn),
                wait,
                pending: Ready::default(),
            },
        );
    }

    /// Forgets connection `id` (its job closed it, or it could not be registered). Returns it if
    /// it was parked.
    pub fn remove(&self, id: usize) -> Option<C> {
        lock(&self.inner).map.remove(&id)?.conn
    }

    /// Readiness for `id`: takes the connection out to be served if it is parked and waiting for
    /// this kind of readiness; if it is dispatched, remembers the readiness for its worker.
    pub fn on_ready(&self, id: usize, ready: Ready) -> Option<Dispatch<C>> {
        let mut table = lock(&self.inner);
        let slot = table.map.get_mut(&id)?;
        if slot.conn.is_some() && ready.serves(slot.wait.what) {
            let conn = slot.conn.take()?;
            let peer_closed = std::mem::take(&mut slot.pending).peer_closed || ready.peer_closed;
            return Some(Dispatch {
                id,
                conn,
                peer_closed,
                timed_out: false,
            });
        }
        if slot.conn.is_some() {
            // Parked, waiting for something else: only a peer close is worth keeping.
            slot.pending.peer_closed |= ready.peer_closed;
        } else {
            slot.pending.merge(ready);
        }
        None
    }

    /// A worker is done with `id` for now and parks it with `wait`. It is to be served again at
    /// once if the worker says so (`again`: it stopped early, to be fair) or if readiness of the
    /// kind it waits for arrived while it was dispatched. Then, with `may_keep`, it is handed
    /// back to the worker ([`AfterPark::Again`]); without, it is parked and queued for the next turn
    /// to dispatch ([`ConnTable::take_requeued`]), and the caller wakes the event loop.
    pub fn park(
        &self,
        id: usize,
        conn: C,
        wait: Wait,
        again: bool,
        may_keep: bool,
    ) -> AfterPark<C> {
        let mut table = lock(&self.inner);
        let Table { map, requeued } = &mut *table;
        let Some(slot) = map.get_mut(&id) else {
            return AfterPark::Gone(conn);
        };
        let pending = if breaks::on(breaks::PARK_IGNORES_PENDING) {
            Ready::default()
        } else {
            std::mem::take(&mut slot.pending)
        };
        let serve_again = again || pending.serves(wait.what);
        if serve_again && may_keep {
            return AfterPark::Again(conn, pending.peer_closed);
        }
        slot.pending.peer_closed = pending.peer_closed;
        slot.conn = Some(conn);
        slot.wait = wait;
        if serve_again {
            requeued.push(id);
        }
        AfterPark::Parked {
            requeued: serve_again,
        }
    }

    /// The requeued connections that are still parked, taken out to be dispatched.
    pub fn take_requeued(&self) -> Vec<Dispatch<C>> {
        let mut table = lock(&self.inner);
        let Table { map, requeued } = &mut *table;
        let ids = std::mem::take(requeued);
        ids.into_iter()
            .filter_map(|id| take_parked(map, id, false))
            .collect()
    }

    /// At `now`: removes the parked connections whose deadline passed with [`OnDeadline::Close`]
    /// (returned first, for the caller to drop), and takes out to be dispatched those whose
    /// deadline passed with [`OnDeadline::Answer`] and those waiting for a [`WaitFor::Tick`].
    pub fn expire(&self, now: Instant) -> (Vec<C>, Vec<Dispatch<C>>) {
        let mut table = lock(&self.inner);
        let mut closed = Vec::new();
        let mut due = Vec::new();
        table.map.retain(|&id, slot| {
            if slot.conn.is_none() {
                return true;
            }
            let late = now >= slot.wait.deadline;
            if late && slot.wait.on_deadline == OnDeadline::Close {
                closed.extend(slot.conn.take());
                return false;
            }
            if late || slot.wait.what == WaitFor::Tick {
                due.push((id, late));
            }
            true
        });
        let dispatch = due
            .into_iter()
            .filter_map(|(id, late)| take_parked(&mut table.map, id, late))
            .collect();
        (closed, dispatch)
    }

    /// When shutdown begins: takes out every parked connection that is not writing a response,
    /// to be dispatched one last time (a request may be waiting unread in its socket: it gets its
    /// answer, with `Connection: close`; a connection with nothing complete is then closed by its
    /// worker). Connections parked for `Write` stay, to be drained.
    pub fn take_parked_for_shutdown(&self) -> Vec<Dispatch<C>> {
        let mut table = lock(&self.inner);
        let ids: Vec<usize> = table
            .map
            .iter()
            .filter(|(_, slot)| slot.conn.is_some() && slot.wait.what != WaitFor::Write)
            .map(|(&id, _)| id)
            .collect();
        ids.into_iter()
            .filter_map(|id| take_parked(&mut table.map, id, false))
            .collect()
    }

    /// During the drain: removes every parked connection that is not writing a response (one that
    /// parked to linger after an error, or to wait after shutdown began) and returns them for the
    /// caller to drop, with the number of connections left (dispatched, or writing).
    pub fn close_parked(&self) -> (Vec<C>, usize) {
        let mut table = lock(&self.inner);
        let mut closed = Vec::new();
        table.map.retain(|_, slot| {
            if slot.conn.is_some() && slot.wait.what != WaitFor::Write {
                closed.extend(slot.conn.take());
                return false;
            }
            true
        });
        let left = table.map.len();
        (closed, left)
    }

    /// When the grace period is over: removes every connection. Returns the parked ones (to
    /// drop) and how many there were in all.
    pub fn clear(&self) -> (Vec<C>, usize) {
        let mut table = lock(&self.inner);
        let count = table.map.len();
        let parked = table.map.drain().filter_map(|(_, s)| s.conn).collect();
        table.requeued.clear();
        (parked, count)
    }
}

/// Takes `id`'s connection out of its slot if it is parked.
fn take_parked<C>(
    map: &mut HashMap<usize, Slot<C>>,
    id: usize,
    timed_out: bool,
) -> Option<Dispatch<C>> {
    let slot = map.get_mut(&id)?;
    let conn = slot.conn.take()?;
    let peer_closed = std::mem::take(&mut slot.pending).peer_closed;
    Some(Dispatch {
        id,
        conn,
        peer_closed,
        timed_out,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn wait(what: WaitFor, deadline: Instant, on_deadline: OnDeadline) -> Wait {
        Wait {
            what,
            deadline,
            on_deadline,
        }
    }

    const READ: Ready = Ready {
        read: true,
        write: false,
        peer_closed: false,
    };
    const WRITE: Ready = Ready {
        read: false,
        write: true,
        peer_closed: false,
    };

    #[test]
    fn readiness_while_dispatched_serves_again_instead_of_parking() {
        let t = ConnTable::default();
        let far = Instant::now() + Duration::from_secs(60);
        t.insert(1, "c", wait(WaitFor::Read, far, OnDeadline::Close));
        let d = t.on_ready(1, READ).expect("parked and readable");
        assert!(t.on_ready(1, READ).is_none(), "dispatched: remembered only");
        match t.park(
            1,
            d.conn,
            wait(WaitFor::Read, far, OnDeadline::Close),
            false,
            true,
        ) {
            AfterPark::Again(c, _) => assert_eq!(c, "c"),
            _ => panic!("the readiness that came meanwhile was lost"),
        }
    }

    #[test]
    fn readiness_of_the_other_kind_neither_dispatches_nor_is_kept() {
        let t = ConnTable::default();
        let far = Instant::now() + Duration::from_secs(60);
        t.insert(1, "c", wait(WaitFor::Write, far, OnDeadline::Close));
        assert!(t.on_ready(1, READ).is_none(), "waits for writability");
        let d = t.on_ready(1, WRITE).expect("writable");
        // Writability that came while it was out does not wake a reader.
        assert!(t.on_ready(1, WRITE).is_none());
        let parked = t.park(
            1,
            d.conn,
            wait(WaitFor::Read, far, OnDeadline::Close),
            false,
            true,
        );
        assert!(matches!(parked, AfterPark::Parked { requeued: false }));
    }

    #[test]
    fn a_connection_that_had_its_rounds_is_requeued_not_kept() {
        let t = ConnTable::default();
        let far = Instant::now() + Duration::from_secs(60);
        t.insert(1, "c", wait(WaitFor::Read, far, OnDeadline::Close));
        let d = t.on_ready(1, READ).expect("readable");
        assert!(t.on_ready(1, READ).is_none());
        let parked = t.park(
            1,
            d.conn,
            wait(WaitFor::Read, far, OnDeadline::Close),
            false,
            false,
        );
        assert!(matches!(parked, AfterPark::Parked { requeued: true }));
        let again = t.take_requeued();
        assert_eq!(again.len(), 1, "dispatched again at the next turn");
        assert!(t.take_requeued().is_empty());
    }

    #[test]
    fn deadlines_close_or_answer_and_shutdown_keeps_writers() {
        let t = ConnTable::default();
        let now = Instant::now();
        let past = now - Duration::from_millis(1);
        let far = now + Duration::from_secs(60);
        t.insert(1, 1, wait(WaitFor::Read, past, OnDeadline::Close));
        t.insert(2, 2, wait(WaitFor::Read, past, OnDeadline::Answer));
        t.insert(3, 3, wait(WaitFor::Tick, far, OnDeadline::Answer));
        t.insert(4, 4, wait(WaitFor::Write, far, OnDeadline::Close));
        let (closed, due) = t.expire(now);
        assert_eq!(closed, vec![1]);
        let mut due: Vec<_> = due.into_iter().map(|d| (d.conn, d.timed_out)).collect();
        due.sort();
        assert_eq!(due, vec![(2, true), (3, false)]);
        assert_eq!(t.len(), 3, "the dispatched ones keep their slots");
        assert!(
            t.take_parked_for_shutdown().is_empty(),
            "only the writer is parked, and it stays"
        );
        let (closed, left) = t.close_parked();
        assert!(closed.is_empty());
        assert_eq!(left, 3);
        let (parked, count) = t.clear();
        assert_eq!((parked, count), (vec![4], 3));
    }

    #[test]
    fn a_slot_closed_at_shutdown_gives_the_connection_back_to_drop() {
        let t = ConnTable::default();
        let far = Instant::now() + Duration::from_secs(60);
        t.insert(7, "c", wait(WaitFor::Read, far, OnDeadline::Close));
        let d = t.on_ready(7, READ).expect("readable");
        let _ = t.clear();
        assert!(matches!(
            t.park(
                7,
                d.conn,
                wait(WaitFor::Read, far, OnDeadline::Close),
                false,
                true
            ),
            AfterPark::Gone("c")
        ));
    }
}
