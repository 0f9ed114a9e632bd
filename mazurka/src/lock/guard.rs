//! The RAII guard of a held [`DistributedLock`].

use std::sync::Arc;

use super::fence::Fenced;
use super::mutex::{DistributedLock, Holding, Release};
use crate::error::Result;
use crate::session::{NodeEvent, SessionState};

/// What a guard knows about its hold right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    /// Held, and the session is connected.
    Held,
    /// The connection is down: the lock *may* be lost if the session expires before reconnecting.
    /// Pause side effects that need exclusivity.
    Suspended,
    /// The session was lost: the lock is gone (someone else may hold it now).
    Lost,
}

/// One hold of a [`DistributedLock`]. Dropping it releases the hold (the last hold's node delete
/// is sent at once, its reply awaited in the background); [`LockGuard::release`] awaits it and
/// reports errors.
#[must_use = "the lock is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct LockGuard {
    holding: Arc<Holding>,
    hold: u64,
    done: bool,
}

impl LockGuard {
    pub(crate) fn new(holding: Arc<Holding>, hold: u64) -> LockGuard {
        LockGuard {
            holding,
            hold,
            done: false,
        }
    }

    /// The lock this guard holds.
    pub fn lock(&self) -> &DistributedLock {
        &self.holding.lock
    }

    /// The fencing token: the creation zxid of the winning node. Strictly increasing across
    /// successive holders of the lock's path (also when its directory was removed and recreated),
    /// so a resource that remembers the largest token it has seen can refuse stale holders.
    pub fn fencing_token(&self) -> i64 {
        self.holding.node.czxid
    }

    /// The path of this holder's node (for `check` ops of your own).
    pub fn node_path(&self) -> &str {
        &self.holding.node.path
    }

    /// Whether the hold is still valid, as far as this process can tell without a request.
    pub fn state(&self) -> HoldState {
        if self.holding.lock.is_lost(&self.holding.node) {
            return HoldState::Lost;
        }
        match self.holding.lock.inner.session.state() {
            SessionState::Connected => HoldState::Held,
            SessionState::Suspended => HoldState::Suspended,
            SessionState::Lost | SessionState::Closed => HoldState::Lost,
        }
    }

    /// Completes when the lock is lost: the session expired or was closed, or the node was deleted.
    ///
    /// # Cancel safety
    /// Cancel safe. The first call sets a watch on the node (one request).
    pub async fn lost(&self) {
        let session = &self.holding.lock.inner.session;
        let generation = self.holding.node.generation;
        let mut states = session.states();
        let session_lost = states.rx.wait_for(|s| {
            s.generation != generation || matches!(s.state, SessionState::Lost | SessionState::Closed)
        });
        let node_gone = async {
            loop {
                match session.exists_and_watch(&self.holding.node.path).await {
                    Ok((None, _)) => return,
                    Ok((Some(_), watch)) => match watch.changed().await {
                        NodeEvent::Deleted => return,
                        NodeEvent::SessionEnded if self.holding.lock.is_lost(&self.holding.node) => return,
                        _ => {}
                    },
                    Err(err) if err.is_retryable() => {}
                    Err(_) => return,
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
    pub fn fenced(&self) -> Fenced<'_> {
        Fenced::new(
            &self.holding.lock.inner.session,
            &self.holding.node.path,
            &self.holding.lock.inner.path,
        )
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
    pub fn release(mut self) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        self.done = true;
        let release = self.holding.lock.release_hold(&self.holding, self.hold);
        async move {
            match release {
                Release::Done(result) => result,
                // Boxed: the retry loop is large, and the reentrant path should not carry it.
                deleting => Box::pin(deleting.finish()).await,
            }
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        match self.holding.lock.release_hold(&self.holding, self.hold) {
            Release::Done(Ok(())) => {}
            Release::Done(Err(err)) => tracing::debug!(%err, "dropped a guard of a lost lock"),
            deleting => {
                // The delete is on the wire already; only its outcome is awaited here.
                self.holding.lock.inner.session.runtime().spawn(async move {
                    if let Err(err) = deleting.finish().await {
                        tracing::debug!(%err, "background lock release reported an error");
                    }
                });
            }
        }
    }
}
