//! Re-entry: who may take a further hold of an acquisition without a request, and how the owner
//! of a [`DistributedLock`](super::DistributedLock) does it without taking the lock path's mutex.
//!
//! **Re-entry is scoped to the future that holds.** A hold is re-entered only by code that runs
//! inside its scope: the block of a `lock!`, or the future given to [`LockGuard::scope`]
//! (and the rwlock guards' `scope`). Holds were once re-entered by anything the owning tokio
//! task ran; but one task runs many futures at once (`join!`, `select!`, `FuturesUnordered`), and
//! a sibling future that locked while another held was handed the same hold: two interleaved
//! critical sections, neither told. Nothing in a task tells a nested call from a sibling's (they
//! share the task id and even the waker), so the holder says where its code runs instead, the way
//! `dosync` scopes its transaction. Outside every scope of a hold, `lock()` is a new acquisition
//! and queues like another task's (so siblings exclude each other, and nested code outside a
//! scope waits for its own hold, as with any non-reentrant lock).
//!
//! Three pieces:
//! - [`scope`]: the scopes the calling code runs in, a per-thread stack that each scope's future
//!   pushes itself onto for the length of each of its polls (as tokio's task-locals do). Looking
//!   it up also finds the acquisition, so re-entry needs no other lookup.
//! - [`FastHolds`], one atomic per acquisition: while its `FAST` bit is set the holds are
//!   exactly the ids `0..count` (a stack), so a nested hold is one compare-and-swap and so is
//!   giving back the innermost one. Anything else — an out-of-order release, `unlock()`, the
//!   last hold, a condition wait — turns the bit off under the mutex first (`freeze`) and then
//!   works on the exact list of ids kept there, as the slow path always did.
//! - the guard's reference to the acquisition (one reference count up and down).
//!
//! An acquisition that ever saw `unlock()` stays on the mutex path: the guard of the hold it gave
//! up lives on, inert, with an id that must never be handed out again.
//!
//! Java's `ReentrantLock` and Curator's `InterProcessMutex` spend two atomic operations on a
//! nested acquire and release; this path spends four (the guard's reference count is the other
//! two, the price of a `'static` guard).
//!
//! [`LockGuard::scope`]: super::LockGuard::scope

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

/// The scopes of holds the calling code runs in (see the module docs).
pub(crate) mod scope {
    use std::cell::RefCell;
    use std::future::Future;
    use std::sync::Arc;

    use crate::lock::mutex::{Holding, Local};
    use crate::lock::rwlock::{RwHolding, RwLocal};

    /// The acquisition a scope belongs to.
    #[derive(Debug, Clone)]
    pub(crate) enum Held {
        Lock(Arc<Holding>),
        Rw(Arc<RwHolding>),
    }

    impl Held {
        /// The address of the lock path's process-local state, as the lock's identity (a live
        /// acquisition keeps it alive, so it is not reused meanwhile).
        fn key(&self) -> usize {
            match self {
                Held::Lock(h) => Arc::as_ptr(&h.lock.inner.local) as usize,
                Held::Rw(h) => h.local_key(),
            }
        }
    }

    #[derive(Debug)]
    struct Frame {
        /// [`Held::key`], computed once per push: the lookup compares it without following
        /// pointers into the acquisition.
        key: usize,
        held: Held,
        /// The task that polls the scope. A future polled inside a scope's poll on behalf of
        /// another task (a `LocalSet` run from the block, say) is not part of the block.
        task: Option<tokio::task::Id>,
    }

    thread_local! {
        /// The scopes being polled on this thread, innermost last.
        static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    }

    /// Runs `body` inside the scope of `held`: each poll of it pushes the scope and pops it again
    /// (also when the body panics).
    pub(crate) async fn run<F: Future>(held: Held, body: F) -> F::Output {
        let mut body = std::pin::pin!(body);
        std::future::poll_fn(move |cx| {
            let _entered = Entered::push(&held);
            body.as_mut().poll(cx)
        })
        .await
    }

    /// A pushed scope, popped on drop.
    struct Entered {
        pushed: bool,
    }

    impl Entered {
        fn push(held: &Held) -> Entered {
            let frame = Frame {
                key: held.key(),
                held: held.clone(),
                task: tokio::task::try_id(),
            };
            // During thread teardown there is nothing to run a scope for; the body then runs
            // outside it (it re-enters nothing, which is safe).
            let pushed = FRAMES
                .try_with(|frames| frames.try_borrow_mut().map(|mut f| f.push(frame)).is_ok())
                .unwrap_or(false);
            Entered { pushed }
        }
    }

    impl Drop for Entered {
        fn drop(&mut self) {
            if self.pushed {
                let _ = FRAMES.try_with(|frames| {
                    if let Ok(mut frames) = frames.try_borrow_mut() {
                        frames.pop();
                    }
                });
            }
        }
    }

    /// The innermost frame of this task for the lock `key` that `pick` accepts, mapped by it.
    #[inline]
    fn innermost<T>(key: usize, mut pick: impl FnMut(&Held) -> Option<T>) -> Option<T> {
        FRAMES
            .try_with(|frames| {
                let frames = frames.try_borrow().ok()?;
                if frames.is_empty() {
                    return None;
                }
                let task = tokio::task::try_id();
                frames
                    .iter()
                    .rev()
                    .filter(|f| f.key == key && f.task == task)
                    .find_map(|f| pick(&f.held))
            })
            .ok()
            .flatten()
    }

    /// The acquisition of the exclusive lock `local` whose scope the caller runs in, if any.
    #[inline]
    pub(crate) fn lock_holding(local: &Arc<Local>) -> Option<Arc<Holding>> {
        innermost(Arc::as_ptr(local) as usize, |held| match held {
            Held::Lock(h) => Some(h.clone()),
            Held::Rw(_) => None,
        })
    }

    /// The acquisitions of the read-write lock `local` whose scopes the caller runs in: every one
    /// of them, innermost first (a write holder's read hold is in scope with its write hold).
    pub(crate) fn rw_holdings(local: &Arc<RwLocal>) -> Vec<Arc<RwHolding>> {
        let mut found = Vec::new();
        innermost::<()>(Arc::as_ptr(local) as usize, |held| {
            if let Held::Rw(h) = held {
                found.push(h.clone());
            }
            None
        });
        found
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
