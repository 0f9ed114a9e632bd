//! Lock-free re-entry: how the owner of a [`DistributedLock`](super::DistributedLock) takes and
//! gives back nested holds without taking the lock path's mutex.
//!
//! Two pieces, both about that one path:
//! - [`FastHolds`], one atomic per acquisition: while its `FAST` bit is set the holds are
//!   exactly the ids `0..count` (a stack), so a nested hold is one compare-and-swap and so is
//!   giving back the innermost one. Anything else — an out-of-order release, `unlock()`, the
//!   last hold, a condition wait — turns the bit off under the mutex first (`freeze`) and then
//!   works on the exact list of ids kept there, as the slow path always did.
//! - a per-thread memory of the most recent acquisition ([`recent`]), held weakly, so the owner
//!   finds its acquisition without the mutex. Upgrading the weak reference is also what gives
//!   the new guard its strong one: the lookup costs no extra atomic operation. It remembers one
//!   lock per thread: a thread alternating between two locks re-enters through the mutex (as
//!   fast as before this path existed), and a stale entry keeps one released holding's memory,
//!   not its contents, until it is replaced.
//!
//! An acquisition that ever saw `unlock()` stays on the mutex path: the guard of the hold it gave
//! up lives on, inert, with an id that must never be handed out again.
//!
//! Java's `ReentrantLock` and Curator's `InterProcessMutex` spend two atomic operations on a
//! nested acquire and release; this path spends four (the guard's reference count is the other
//! two, the price of a `'static` guard).

use std::sync::atomic::{AtomicU64, Ordering};

/// Set while the fast path may be used (see the module docs).
const FAST: u64 = 1 << 63;
/// Above this many holds the fast path gives way to the list (ids there are `u64`).
const MAX_FAST_COUNT: u64 = (1 << 62) - 1;

/// The hold count of one acquisition while it is a plain stack of ids `0..count`.
#[derive(Debug)]
pub(crate) struct FastHolds(AtomicU64);

impl FastHolds {
    /// A fresh acquisition: one hold, id 0.
    pub(crate) fn first_hold() -> FastHolds {
        FastHolds(AtomicU64::new(FAST | 1))
    }

    /// A nested hold: its id, or `None` if the fast path is off.
    #[inline]
    pub(crate) fn try_enter(&self) -> Option<u64> {
        let mut state = self.0.load(Ordering::Acquire);
        loop {
            let count = state & !FAST;
            // A count of 0 never has the bit set: the last hold is given back under the mutex.
            if state & FAST == 0 || count == 0 || count >= MAX_FAST_COUNT {
                return None;
            }
            match self
                .0
                .compare_exchange_weak(state, state + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(count),
                Err(now) => state = now,
            }
        }
    }

    /// Gives back hold `id` if it is the innermost of several: `false` sends the caller to the
    /// mutex (the fast path is off, `id` is not on top, or it is the last hold).
    #[inline]
    pub(crate) fn try_leave(&self, id: u64) -> bool {
        let mut state = self.0.load(Ordering::Acquire);
        loop {
            let count = state & !FAST;
            if state & FAST == 0 || count < 2 || id != count - 1 {
                return false;
            }
            match self
                .0
                .compare_exchange_weak(state, state - 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => state = now,
            }
        }
    }

    /// The hold count while the fast path is on.
    pub(crate) fn count(&self) -> Option<u64> {
        let state = self.0.load(Ordering::Acquire);
        (state & FAST != 0).then_some(state & !FAST)
    }

    /// Turns the fast path off and returns the count it had, if it was on: the holds are then
    /// the ids `0..count`, to be kept in the list from now on. Call under the mutex.
    pub(crate) fn freeze(&self) -> Option<u64> {
        let state = self.0.fetch_and(!FAST, Ordering::AcqRel);
        (state & FAST != 0).then_some(state & !FAST)
    }

    /// Turns the fast path on with `count` holds, ids `0..count`, if that count suits it (at
    /// least one, not near the limit); whether it did. Call under the mutex, with the path off
    /// (nobody else changes the state then).
    #[must_use]
    pub(crate) fn resume(&self, count: u64) -> bool {
        let suits = count > 0 && count < MAX_FAST_COUNT;
        if suits {
            self.0.store(FAST | count, Ordering::Release);
        }
        suits
    }
}

/// The calling thread's most recent acquisition, looked up without a lock.
pub(crate) mod recent {
    use std::cell::RefCell;
    use std::sync::{Arc, Weak};

    use crate::lock::mutex::{Holding, Local};

    struct Recent {
        /// The address of the lock path's shared state, as its identity. A live holding keeps
        /// its `Local` alive, so a successful upgrade means the address was not reused.
        local: usize,
        holding: Weak<Holding>,
    }

    thread_local! {
        static RECENT: RefCell<Option<Recent>> = const { RefCell::new(None) };
    }

    fn key(local: &Arc<Local>) -> usize {
        Arc::as_ptr(local) as usize
    }

    /// The acquisition this thread last remembered for `local`, if it still exists.
    #[inline]
    pub(crate) fn lookup(local: &Arc<Local>) -> Option<Arc<Holding>> {
        let key = key(local);
        RECENT
            .try_with(|recent| {
                let recent = recent.try_borrow().ok()?;
                let recent = recent.as_ref().filter(|r| r.local == key)?;
                recent.holding.upgrade()
            })
            .ok()
            .flatten()
    }

    /// Remembers `holding` as this thread's most recent acquisition of `local`.
    pub(crate) fn remember(local: &Arc<Local>, holding: &Arc<Holding>) {
        let key = key(local);
        // During thread teardown there is nothing to remember for.
        let _ = RECENT.try_with(|recent| {
            if let Ok(mut recent) = recent.try_borrow_mut() {
                let known = recent.as_ref().is_some_and(|r| {
                    r.local == key && std::ptr::eq(r.holding.as_ptr(), Arc::as_ptr(holding))
                });
                if !known {
                    *recent = Some(Recent {
                        local: key,
                        holding: Arc::downgrade(holding),
                    });
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_of_holds_is_kept_by_the_fast_path_and_handed_over_exactly() {
        let holds = FastHolds::first_hold();
        assert_eq!(holds.try_enter(), Some(1));
        assert_eq!(holds.try_enter(), Some(2));
        assert_eq!(holds.count(), Some(3));
        assert!(!holds.try_leave(1), "not the innermost: the mutex decides");
        assert!(holds.try_leave(2));
        assert!(holds.try_leave(1));
        assert!(!holds.try_leave(0), "the last hold goes through the mutex");
        assert_eq!(holds.try_enter(), Some(1));
        assert_eq!(holds.freeze(), Some(2));
        assert_eq!(holds.freeze(), None, "frozen once");
        assert_eq!(holds.try_enter(), None);
        assert!(!holds.try_leave(1));
        assert_eq!(holds.count(), None);
        assert!(!holds.resume(0), "no holds: nothing to resume");
        assert!(holds.resume(2));
        assert_eq!(holds.try_enter(), Some(2));
        assert_eq!(holds.count(), Some(3));
    }

    #[test]
    fn concurrent_nested_holds_are_counted_exactly() {
        let holds = std::sync::Arc::new(FastHolds::first_hold());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let holds = holds.clone();
                std::thread::spawn(move || {
                    let mut entered = 0u64;
                    for _ in 0..10_000 {
                        if holds.try_enter().is_some() {
                            entered += 1;
                        }
                    }
                    entered
                })
            })
            .collect();
        let entered: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        assert_eq!(entered, 40_000);
        assert_eq!(holds.freeze(), Some(40_001));
    }
}
