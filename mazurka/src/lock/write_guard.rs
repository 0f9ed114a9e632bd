//! The RAII guard of a held write lock of a [`DistributedRwLock`].

use super::fence::Fenced;
use super::guard::HoldState;
use super::rwlock::{DistributedRwLock, Hold};
use crate::error::Result;

/// One write hold of a [`DistributedRwLock`]: no other writer, and no reader but the holder
/// itself, holds the lock meanwhile. Dropping it releases the hold (the last hold's node delete is
/// sent at once, its reply awaited in the background); [`WriteGuard::release`] awaits it and
/// reports errors.
///
/// Releasing the last write hold while the task still holds the read lock (taken after the write
/// lock) is a downgrade: the task keeps reading, other readers may come in, writers may not.
///
/// ```no_run
/// # async fn demo(rw: &mazurka::DistributedRwLock) -> mazurka::Result<()> {
/// let guard = rw.write().await?;
/// assert_eq!(rw.write_hold_count(), 1);
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[must_use = "the write lock is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct WriteGuard {
    hold: Hold,
}

impl WriteGuard {
    pub(crate) fn new(hold: Hold) -> WriteGuard {
        WriteGuard { hold }
    }

    /// The lock this guard holds.
    pub fn lock(&self) -> &DistributedRwLock {
        self.hold.lock()
    }

    /// The fencing token: the creation zxid of the writer's node. Strictly increasing across
    /// successive writers of the lock's path (also when its directory was removed and recreated),
    /// so a resource that remembers the largest token it has seen can refuse stale writers.
    pub fn fencing_token(&self) -> i64 {
        self.hold.fencing_token()
    }

    /// The path of the writer's node (for `check` ops of your own).
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

    /// Writes to ZooKeeper that commit only if this write hold is still valid: the returned
    /// builder's `multi` starts with a `check` of the writer's node.
    pub fn fenced(&self) -> Fenced<'_> {
        self.hold.fenced()
    }

    /// Runs `body` inside the scope of this write hold: there, [`DistributedRwLock::write`]
    /// re-enters this hold and [`DistributedRwLock::read`] takes a read hold next to it (a
    /// downgrade), as code nested in the critical section expects. Outside every scope, `write()`
    /// queues even in the task that holds the write lock — a future of the same task may be a
    /// concurrently running sibling — and `read()` queues behind it (see
    /// [`DistributedRwLock`]'s re-entry rule). Everything `body` runs inline is in the scope,
    /// including futures it runs concurrently (they share the hold: they are part of the
    /// holder); tasks it spawns are not. The returned future does not borrow the guard.
    ///
    /// ```no_run
    /// # async fn demo(rw: &mazurka::DistributedRwLock) -> mazurka::Result<()> {
    /// let w = rw.write().await?;
    /// let r = w.scope(async {
    ///     let again = rw.write().await?; // re-entry: no request
    ///     again.release().await?;
    ///     rw.read().await // downgrade: a read hold next to the write hold
    /// }).await?;
    /// w.release().await?; // readers may come in now, writers may not
    /// r.release().await?;
    /// # Ok(()) }
    /// ```
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
