//! The RAII guard of a held [`DistributedLock`].

use std::sync::Arc;

use super::fence::Fenced;
use super::mutex::{DistributedLock, Holding, HoldingPhase, Release};
use super::recipe::OwnEvent;
use super::reentry::scope;
use crate::error::{Error, Result};
use crate::session::{NodeEvent, SessionState};

/// What a guard knows about its hold right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    /// Held, and the session is connected.
    Held,
    /// The connection is down: the lock *may* be lost if the session expires before reconnecting.
    /// Pause side effects that need exclusivity.
    Suspended,
    /// The session was lost: the lock is gone (someone else may hold it now). Also the state of
    /// a guard whose lock was released by a [`Condition::wait`](super::Condition::wait) that then
    /// failed or was dropped before it took the lock back.
    Lost,
    /// A [`Condition::wait`](super::Condition::wait) of this acquisition released the lock and has
    /// not taken it back yet: others may hold it meanwhile. Seen only by the owner's *other* guards
    /// (the waiting one is borrowed by the wait); when the wait returns, they hold the lock again.
    Waiting,
}

/// One hold of a [`DistributedLock`]. Dropping it releases the hold (the last hold's node delete
/// is sent at once, its reply awaited in the background); [`LockGuard::release`] awaits it and
/// reports errors.
#[must_use = "the lock is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct LockGuard {
    holding: Arc<Holding>,
    /// This guard's hold id, or [`GIVEN_BACK`] once `release` has taken over. One word rather
    /// than an id and a flag: a byte-sized flag next to it made every move of a guard stall.
    hold: u64,
}

/// The `hold` of a guard whose hold was given back by [`LockGuard::release`] (never an id: ids
/// count up from 0).
const GIVEN_BACK: u64 = u64::MAX;

impl LockGuard {
    #[inline]
    pub(crate) fn new(holding: Arc<Holding>, hold: u64) -> LockGuard {
        LockGuard { holding, hold }
    }

    /// The lock this guard holds.
    pub fn lock(&self) -> &DistributedLock {
        &self.holding.lock
    }

    /// The fencing token: the creation zxid of the winning node. Strictly increasing across
    /// successive holders of the lock's path (also when its directory was removed and recreated),
    /// so a resource that remembers the largest token it has seen can refuse stale holders.
    ///
    /// A [`Condition::wait`](super::Condition::wait) releases the lock and takes it again with a
    /// new node: afterwards every guard of the acquisition reports the new, larger token.
    pub fn fencing_token(&self) -> i64 {
        self.holding.czxid()
    }

    /// The path of this holder's node (for `check` ops of your own). Like the fencing token, it
    /// changes when a [`Condition::wait`](super::Condition::wait) takes the lock again.
    pub fn node_path(&self) -> String {
        self.holding.node().path.clone()
    }

    /// Whether the hold is still valid, as far as this process can tell without a request.
    pub fn state(&self) -> HoldState {
        if !self.holding.lock.inner.session.holds(self.holding.generation) {
            return HoldState::Lost;
        }
        match self.holding.phase() {
            HoldingPhase::Held => {}
            HoldingPhase::Waiting => return HoldState::Waiting,
            HoldingPhase::Ended => return HoldState::Lost,
        }
        match self.holding.lock.inner.session.state() {
            SessionState::Connected => HoldState::Held,
            SessionState::Suspended => HoldState::Suspended,
            SessionState::Lost | SessionState::Closed => HoldState::Lost,
        }
    }

    /// Completes when the lock is lost: the session expired or was closed, or the node was deleted.
    ///
    /// The release and re-acquisition by a [`Condition::wait`](super::Condition::wait) of the
    /// same acquisition is not a loss: this keeps waiting (and then watches the new node), unless
    /// that wait fails or is dropped before it holds the lock again.
    ///
    /// # Cancel safety
    /// Cancel safe. The first call sets a watch on the node (one request).
    pub async fn lost(&self) {
        let holding = &self.holding;
        let session = &holding.lock.inner.session;
        let generation = holding.generation;
        let mut states = session.states();
        let session_lost = states.rx.wait_for(|s| {
            s.generation != generation || matches!(s.state, SessionState::Lost | SessionState::Closed)
        });
        let node_gone = async {
            loop {
                let changed = holding.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                match holding.phase() {
                    HoldingPhase::Held => {}
                    HoldingPhase::Waiting => {
                        changed.await;
                        continue;
                    }
                    HoldingPhase::Ended => return,
                }
                let node = holding.node();
                let event = match node.own_watch.take() {
                    // The watch the node had while it waited for its turn: no request.
                    Some(armed) => Some(armed),
                    None => match session.exists_and_watch(&node.path).await {
                        Ok((None, _)) => None,
                        Ok((Some(_), watch)) => Some(Box::pin(watch.changed()) as OwnEvent),
                        Err(err) if err.is_retryable() => continue,
                        Err(_) => return,
                    },
                };
                let gone = match event {
                    None => true,
                    Some(event) => tokio::select! {
                        event = event => match event {
                            NodeEvent::Deleted => true,
                            NodeEvent::SessionEnded => holding.is_lost(),
                            _ => false,
                        },
                        () = changed.as_mut() => false,
                    },
                };
                // A node deleted by a wait of this acquisition is not a loss: look again.
                if gone && holding.is_current(&node) {
                    return;
                }
            }
        };
        tokio::select! {
            _ = session_lost => {}
            () = node_gone => {}
        }
    }

    /// Writes to ZooKeeper that commit only if this hold is still valid: the returned builder's
    /// `multi` starts with a `check` of the holder's node.
    ///
    /// The check names the node held when this is called: a batch built before a
    /// [`Condition::wait`](super::Condition::wait) is refused after it (the lock was released in
    /// between).
    pub fn fenced(&self) -> Fenced<'_> {
        Fenced::with_holder_node(
            &self.holding.lock.inner.session,
            self.holding.generation,
            self.holding.node().path.clone(),
            &self.holding.lock.inner.path,
        )
    }

    /// Runs `body` inside the scope of this hold: there, [`DistributedLock::lock`] (and
    /// `try_lock`, `lock!`) of the same lock re-enters this acquisition — a further guard, no
    /// request — as code nested in a critical section expects. Outside every scope, `lock()`
    /// queues even in the task that holds the lock, because a future of the same task may be a
    /// concurrently running sibling (see
    /// [re-entry](DistributedLock#re-entry-is-scoped-to-the-future-that-holds)).
    ///
    /// Everything `body` runs inline is in the scope, including futures it runs concurrently (a
    /// `join!` inside it shares the hold: they are part of the holder). Tasks it spawns are not.
    /// The returned future does not borrow the guard: the guard stays usable (for instance by a
    /// [`Condition::wait`](super::Condition::wait) inside `body`), and may even be released
    /// there; `lock()` in the scope of a hold that is gone is a new acquisition
    /// ([`Error::SessionLost`] if the hold was lost).
    ///
    /// ```no_run
    /// # async fn demo(lock: &mazurka::DistributedLock) -> mazurka::Result<()> {
    /// let guard = lock.lock().await?;
    /// let nested = guard
    ///     .scope(async {
    ///         let again = lock.lock().await?; // re-entry: same node, same token
    ///         assert_eq!(lock.hold_count(), 2);
    ///         again.release().await
    ///     })
    ///     .await;
    /// guard.release().await?;
    /// # nested }
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe if `body` is: dropping the returned future drops `body`, and the scope ends
    /// with it.
    pub fn scope<F: std::future::Future>(&self, body: F) -> impl std::future::Future<Output = F::Output> {
        scope::run(scope::Held::Lock(self.holding.clone()), body)
    }

    /// The acquisition this guard holds a hold of.
    pub(crate) fn holding(&self) -> &Arc<Holding> {
        &self.holding
    }

    /// This guard's hold id.
    pub(crate) fn hold_id(&self) -> u64 {
        self.hold
    }

    /// Releases this hold and waits for the server to confirm when it was the last one.
    ///
    /// # Errors
    /// [`Error::SessionLost`] if the lock had been lost already (nothing is sent), or a ZooKeeper
    /// error from the delete.
    ///
    /// # Cancel safety
    /// The hold is given up, and the delete of the last hold's node sent, when this is *called*;
    /// the returned future only waits for the reply, and dropping it stops only that wait.
    #[inline]
    pub fn release(mut self) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let hold = std::mem::replace(&mut self.hold, GIVEN_BACK);
        // A nested hold given back while others remain: decided here, lock-free.
        if self.holding.leave_nested(hold) {
            if !self.holding.is_lost() {
                return Releasing(None);
            }
            return Releasing(Some(ready(Err(Error::SessionLost))));
        }
        Releasing(Some(release_rest(&self.holding, hold)))
    }
}

/// The rest of [`LockGuard::release`]: a lost lock, the last hold (the node's delete), or a hold
/// the lock-free path could not give back. Out of line and boxed, so the caller's future stays
/// two words.
#[inline(never)]
fn release_rest(holding: &Arc<Holding>, hold: u64) -> PendingRelease {
    match holding.lock.release_hold(holding, hold) {
        Release::Kept => ready(Ok(())),
        Release::Failed(err) => ready(Err(err)),
        deleting => Box::pin(deleting.finish()),
    }
}

/// An outcome known already, as a pending release.
#[inline(never)]
fn ready(outcome: Result<()>) -> PendingRelease {
    Box::pin(std::future::ready(outcome))
}

type PendingRelease = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;

/// The future of [`LockGuard::release`]: `None` when it is decided already (a nested hold given
/// back), else what is left to wait for. Two words, returned in registers: a larger future (it
/// held an `Error` inline) was copied through memory by every caller and stalled there.
struct Releasing(Option<PendingRelease>);

impl std::future::Future for Releasing {
    type Output = Result<()>;

    #[inline]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<()>> {
        let this = self.get_mut();
        let Some(pending) = this.0.as_mut() else {
            // Decided at once; or polled again after completion, which reports done, not a panic.
            return std::task::Poll::Ready(Ok(()));
        };
        let outcome = std::task::ready!(pending.as_mut().poll(cx));
        // Done: a further poll must not resume the finished future.
        this.0 = None;
        std::task::Poll::Ready(outcome)
    }
}

impl Drop for LockGuard {
    // Small enough to inline into the drop glue of every guard: the rest is out of line.
    #[inline]
    fn drop(&mut self) {
        // Given back by `release`, or a nested hold given back lock-free (nothing to send, also
        // when the lock was lost).
        if self.hold == GIVEN_BACK || self.holding.leave_nested(self.hold) {
            return;
        }
        drop_rest(&self.holding, self.hold);
    }
}

/// The rest of dropping a guard: the last hold's delete, awaited in the background.
#[inline(never)]
fn drop_rest(holding: &Arc<Holding>, hold: u64) {
    match holding.lock.release_hold(holding, hold) {
        Release::Kept => {}
        Release::Failed(err) => tracing::debug!(%err, "dropped a guard of a lost lock"),
        deleting => {
            // The delete is on the wire already; only its outcome is awaited here.
            holding.lock.inner.session.runtime().spawn(async move {
                if let Err(err) = deleting.finish().await {
                    tracing::debug!(%err, "background lock release reported an error");
                }
            });
        }
    }
}
