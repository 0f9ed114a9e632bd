//! The RAII guard of a held [`DistributedLock`].

use std::sync::Arc;

use super::fence::Fenced;
use super::mutex::Release;
use super::mutex::DistributedLock;
use super::recipe::Node;
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
    lock: DistributedLock,
    hold: u64,
    node: Arc<Node>,
    done: bool,
}

impl LockGuard {
    pub(crate) fn new(lock: DistributedLock, hold: u64, node: Arc<Node>) -> LockGuard {
        LockGuard { lock, hold, node, done: false }
    }

    /// The lock this guard holds.
    pub fn lock(&self) -> &DistributedLock {
        &self.lock
    }

    /// The fencing token: the creation zxid of the winning node. Strictly increasing across
    /// successive holders of the lock's path (also when its directory was removed and recreated),
    /// so a resource that remembers the largest token it has seen can refuse stale holders.
    pub fn fencing_token(&self) -> i64 {
        self.node.czxid
    }

    /// The path of this holder's node (for `check` ops of your own).
    pub fn node_path(&self) -> &str {
        &self.node.path
    }

    /// Whether the hold is still valid, as far as this process can tell without a request.
    pub fn state(&self) -> HoldState {
        if self.lock.is_lost(&self.node) {
            return HoldState::Lost;
        }
        match self.lock.session.state() {
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
        let session = &self.lock.session;
        let generation = self.node.generation;
        let mut states = session.states();
        let session_lost = states.rx.wait_for(|s| {
            s.generation != generation || matches!(s.state, SessionState::Lost | SessionState::Closed)
        });
        let node_gone = async {
            loop {
                match session.exists_and_watch(&self.node.path).await {
                    Ok((None, _)) => return,
                    Ok((Some(_), watch)) => match watch.changed().await {
                        NodeEvent::Deleted => return,
                        NodeEvent::SessionEnded if self.lock.is_lost(&self.node) => return,
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
        Fenced::new(&self.lock.session, &self.node.path, &self.lock.path)
    }

    /// Releases this hold and waits for the server to confirm when it was the last one.
    ///
    /// # Errors
    /// [`Error::SessionLost`] if the lock had been lost already (nothing is sent), or a ZooKeeper
    /// error from the delete.
    ///
    /// # Cancel safety
    /// The release is sent when first polled; cancelling only stops waiting for the reply.
    pub async fn release(mut self) -> Result<()> {
        self.done = true;
        self.lock.release_hold(self.hold, Some(&self.node)).finish().await
    }

}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        match self.lock.release_hold(self.hold, Some(&self.node)) {
            Release::Done(Ok(())) => {}
            Release::Done(Err(err)) => tracing::debug!(%err, "dropped a guard of a lost lock"),
            deleting => {
                // The delete is on the wire already; only its outcome is awaited here.
                self.lock.session.runtime().spawn(async move {
                    if let Err(err) = deleting.finish().await {
                        tracing::debug!(%err, "background lock release reported an error");
                    }
                });
            }
        }
    }
}
