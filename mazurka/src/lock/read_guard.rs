//! The RAII guard of a held read lock of a [`DistributedRwLock`].

use super::fence::Fenced;
use super::guard::HoldState;
use super::rwlock::{DistributedRwLock, Hold};
use crate::error::Result;

/// One read hold of a [`DistributedRwLock`], shared with other readers. Dropping it releases the
/// hold (the last hold's node delete is sent at once, its reply awaited in the background);
/// [`ReadGuard::release`] awaits it and reports errors.
///
/// ```no_run
/// # async fn demo(rw: &mazurka::DistributedRwLock) -> mazurka::Result<()> {
/// let guard = rw.read().await?;
/// assert_eq!(rw.read_hold_count(), 1);
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[must_use = "the read lock is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct ReadGuard {
    hold: Hold,
}

impl ReadGuard {
    pub(crate) fn new(hold: Hold) -> ReadGuard {
        ReadGuard { hold }
    }

    /// The lock this guard holds.
    pub fn lock(&self) -> &DistributedRwLock {
        self.hold.lock()
    }

    /// The fencing token: the creation zxid of this reader's node. A read hold taken while
    /// holding the write lock continues that hold and carries the write lock's token.
    ///
    /// Tokens of successive *writers* strictly increase; a reader's token is larger than that of
    /// every writer before it and smaller than that of every writer after it.
    pub fn fencing_token(&self) -> i64 {
        self.hold.fencing_token()
    }

    /// The path of this reader's node (for `check` ops of your own).
    pub fn node_path(&self) -> &str {
        self.hold.node_path()
    }

    /// Whether the hold is still valid, as far as this process can tell without a request.
    pub fn state(&self) -> HoldState {
        self.hold.state()
    }

    /// Completes when the hold is lost: the session expired or was closed, or the node was
    /// deleted.
    ///
    /// # Cancel safety
    /// Cancel safe. Each call sets a watch on the node (one request).
    pub async fn lost(&self) {
        self.hold.lost().await;
    }

    /// Writes to ZooKeeper that commit only if this read hold is still valid: the returned
    /// builder's `multi` starts with a `check` of this reader's node. (Readers share the lock:
    /// this fences against losing it, not against other readers.)
    pub fn fenced(&self) -> Fenced<'_> {
        self.hold.fenced()
    }

    /// Runs `body` inside the scope of this read hold: there, [`DistributedRwLock::read`] re-enters
    /// this hold (no request) and [`DistributedRwLock::write`] is refused with
    /// [`UpgradeWouldDeadlock`](crate::Error::UpgradeWouldDeadlock), as for code nested in a read
    /// hold. Futures of the holder's task share its read hold anyway; a scope matters for a read
    /// hold taken by a downgrade while the write hold lasts (only its scopes share it), and for
    /// code run on another task. Everything `body` runs inline is in the scope; tasks it spawns
    /// are not. The returned future does not borrow the guard.
    ///
    /// # Cancel safety
    /// Cancel safe if `body` is: dropping the returned future drops `body`, and the scope ends
    /// with it.
    pub fn scope<F: std::future::Future>(&self, body: F) -> impl std::future::Future<Output = F::Output> {
        self.hold.scope(body)
    }

    /// This hold's scope, for `lock!`'s helpers.
    pub(crate) fn hold_scope(&self) -> super::ScopeOf {
        self.hold.scope_of()
    }

    /// Releases this hold and waits for the server to confirm when it was the last one.
    ///
    /// # Errors
    /// [`Error::SessionLost`](crate::Error::SessionLost) if the hold had been lost already
    /// (nothing is sent), or a ZooKeeper error from the delete.
    ///
    /// # Cancel safety
    /// The hold is given up, and the delete of the last hold's node sent, when this is *called*;
    /// the returned future only waits for the reply, and dropping it stops only that wait.
    pub fn release(self) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        self.hold.release()
    }
}
