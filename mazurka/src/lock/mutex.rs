//! The distributed reentrant lock: ZooKeeper's "Locks" recipe, reentrant per task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::guard::LockGuard;
use super::holder::HolderInfo;
use super::owner::Owner;
use super::recipe::{self, Enqueued, Entry, Node, Turn};
use crate::error::{Error, Result};
use crate::path::ZnodePath;
use crate::session::{Session, SessionState};

/// Node kind of an exclusive contender.
const KIND: &str = "lock";

/// An exclusive lock waits for whoever is directly ahead of it.
fn blocker(_me: &Entry, ahead: &[Entry]) -> Option<usize> {
    ahead.len().checked_sub(1)
}

/// The process-local side of one lock path, shared by every handle of a session on that path.
#[derive(Debug, Default)]
pub(crate) struct Local {
    pub(crate) held: Mutex<Option<Held>>,
}

/// The hold of the current owner in this process.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) owner: Owner,
    pub(crate) node: Arc<Node>,
    /// One id per outstanding hold, innermost last; the hold count is its length.
    pub(crate) holds: Vec<u64>,
}

/// Hold ids are unique in the process, so a stale guard can never release a later hold.
fn next_hold_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A distributed, reentrant, fair (FIFO) mutual-exclusion lock on a znode path — a
/// `java.util.concurrent.locks.ReentrantLock` across processes.
///
/// Ownership is per tokio task (per thread outside a task): the owner may lock again without a
/// round trip; other tasks of this process queue like other processes do.
///
/// ```no_run
/// # async fn demo(session: &mazurka::Session) -> mazurka::Result<()> {
/// let lock = session.lock("/locks/jobs")?;
/// let guard = lock.lock().await?;
/// println!("fencing token {}", guard.fencing_token());
/// guard.release().await?; // or just drop it: released in the background
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DistributedLock {
    pub(crate) session: Session,
    // Shared so that cloning a lock (every guard holds one) allocates nothing.
    pub(crate) path: Arc<ZnodePath>,
    pub(crate) local: Arc<Local>,
}

impl Session {
    /// The distributed lock at `path` (a directory of contender nodes).
    ///
    /// # Errors
    /// [`Error::InvalidPath`] if `path` breaks a znode path rule or is the root.
    pub fn lock(&self, path: impl Into<String>) -> Result<DistributedLock> {
        DistributedLock::new(self, path)
    }
}

impl DistributedLock {
    /// The distributed lock at `path`; see [`Session::lock`].
    ///
    /// # Errors
    /// [`Error::InvalidPath`] if `path` breaks a znode path rule or is the root.
    pub fn new(session: &Session, path: impl Into<String>) -> Result<DistributedLock> {
        let path = ZnodePath::new(path)?;
        if path.is_root() {
            return Err(Error::invalid_path("/", crate::PathRule::Reserved));
        }
        let local = session.shared_state::<Local>(&format!("lock:{path}"));
        Ok(DistributedLock { session: session.clone(), path: Arc::new(path), local })
    }

    /// The lock's path.
    pub fn path(&self) -> &ZnodePath {
        &self.path
    }

    /// Acquires the lock, waiting as long as it takes.
    ///
    /// # Errors
    /// [`Error::SessionLost`] if the session expires while waiting (never a guard then);
    /// [`Error::PermissionDenied`], [`Error::Closed`], or a ZooKeeper error.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future removes this contender's node (in the background), also
    /// when the create request was in flight.
    pub async fn lock(&self) -> Result<LockGuard> {
        self.acquire(None).await?.ok_or(Error::Timeout { operation: "lock", after: Duration::MAX })
    }

    /// Acquires the lock only if nobody holds it or waits for it now.
    ///
    /// # Errors
    /// As [`DistributedLock::lock`].
    ///
    /// # Cancel safety
    /// Cancel safe, as [`DistributedLock::lock`].
    pub async fn try_lock(&self) -> Result<Option<LockGuard>> {
        self.acquire(Some(Instant::now())).await
    }

    /// Acquires the lock if it can within `timeout`; `Ok(None)` otherwise, with this contender's
    /// node removed before returning.
    ///
    /// # Errors
    /// As [`DistributedLock::lock`].
    ///
    /// # Cancel safety
    /// Cancel safe, as [`DistributedLock::lock`].
    pub async fn try_lock_for(&self, timeout: Duration) -> Result<Option<LockGuard>> {
        self.acquire(Some(recipe::deadline_after(timeout))).await
    }

    async fn acquire(&self, deadline: Option<Instant>) -> Result<Option<LockGuard>> {
        let owner = Owner::current();
        if let Some(guard) = self.reenter(owner) {
            return Ok(Some(guard));
        }
        let mut contender = Enqueued::new(&self.session, self.path.as_str(), KIND);
        contender.create(&HolderInfo::for_this_process(self.session.id()).to_bytes()).await?;
        match contender.wait_turn(blocker, deadline).await? {
            Turn::Acquired => {}
            Turn::TimedOut => {
                contender.leave().await?;
                return Ok(None);
            }
        }
        let node = contender.into_node().ok_or(Error::SessionLost)?;
        Ok(Some(self.install(owner, Arc::new(node))))
    }

    /// A further hold for an owner that already holds the lock (no request).
    fn reenter(&self, owner: Owner) -> Option<LockGuard> {
        let mut held = self.local.held.lock().ok()?;
        let h = held.as_mut().filter(|h| h.owner == owner)?;
        if self.is_lost(&h.node) {
            return None;
        }
        let id = next_hold_id();
        h.holds.push(id);
        Some(LockGuard::new(self.clone(), id, h.node.clone()))
    }

    fn install(&self, owner: Owner, node: Arc<Node>) -> LockGuard {
        let id = next_hold_id();
        let guard = LockGuard::new(self.clone(), id, node.clone());
        if let Ok(mut held) = self.local.held.lock() {
            *held = Some(Held { owner, node, holds: vec![id] });
        }
        guard
    }

    pub(crate) fn is_lost(&self, node: &Node) -> bool {
        let now = self.session.snapshot();
        now.generation != node.generation || matches!(now.state, SessionState::Lost | SessionState::Closed)
    }

    /// Releases the innermost hold of the current task, like `ReentrantLock::unlock`. The guard of
    /// that hold becomes inert. Prefer dropping or releasing guards.
    ///
    /// # Errors
    /// [`Error::NotHeld`] if the current task holds no hold of this lock; as
    /// [`LockGuard::release`] otherwise.
    ///
    /// # Cancel safety
    /// The hold is released when first polled; only the wait for the server's reply is cancelled.
    pub async fn unlock(&self) -> Result<()> {
        let owner = Owner::current();
        let innermost = {
            let held = self.local.held.lock().map_err(|_| self.not_held())?;
            held.as_ref().filter(|h| h.owner == owner).and_then(|h| h.holds.last().copied())
        };
        match innermost {
            Some(id) => self.release_hold(id, None).finish().await,
            None => Err(self.not_held()),
        }
    }

    pub(crate) fn not_held(&self) -> Error {
        Error::NotHeld { path: self.path.to_string() }
    }

    /// Removes hold `id`; when it was the last, queues the node's delete on the connection at
    /// once (so it goes out even if the returned [`Release`] is never awaited). `own` is the
    /// releasing guard's node, whose loss is reported even when its hold was superseded.
    pub(crate) fn release_hold(&self, id: u64, own: Option<&Node>) -> Release {
        let own_lost = own.is_some_and(|node| self.is_lost(node));
        let last = match self.local.held.lock() {
            Ok(mut held) => match held.as_mut() {
                Some(h) if h.holds.contains(&id) => {
                    h.holds.retain(|&x| x != id);
                    if h.holds.is_empty() {
                        held.take().map(|h| h.node)
                    } else {
                        None
                    }
                }
                _ => None,
            },
            Err(_) => None,
        };
        if own_lost || last.as_ref().is_some_and(|node| self.is_lost(node)) {
            return Release::Done(Err(Error::SessionLost));
        }
        match last {
            None => Release::Done(Ok(())),
            Some(node) => {
                let first = Box::pin(self.session.delete_now(&node.path, None));
                Release::Deleting { first, node, lock: self.clone() }
            }
        }
    }

    /// How many holds the current task has (0 if it does not own the lock).
    pub fn hold_count(&self) -> usize {
        let owner = Owner::current();
        self.local
            .held
            .lock()
            .ok()
            .and_then(|held| held.as_ref().filter(|h| h.owner == owner && !self.is_lost(&h.node)).map(|h| h.holds.len()))
            .unwrap_or(0)
    }

    /// Whether the current task holds the lock.
    pub fn is_held_by_current_task(&self) -> bool {
        self.hold_count() > 0
    }

    /// Whether anyone, anywhere, holds the lock now (one request).
    ///
    /// # Errors
    /// A ZooKeeper or session error.
    ///
    /// # Cancel safety
    /// Cancel safe (read only).
    pub async fn is_locked(&self) -> Result<bool> {
        Ok(self.queue_len().await? > 0)
    }

    /// How many contenders, holder included, are in the queue now (one request).
    ///
    /// # Errors
    /// A ZooKeeper or session error.
    ///
    /// # Cancel safety
    /// Cancel safe (read only).
    pub async fn queue_len(&self) -> Result<usize> {
        Ok(self.entries().await?.len())
    }

    /// Who holds the lock now, as recorded in the holder's node; `None` if free.
    ///
    /// # Errors
    /// A ZooKeeper or session error.
    ///
    /// # Cancel safety
    /// Cancel safe (read only).
    pub async fn holder(&self) -> Result<Option<HolderInfo>> {
        for entry in self.entries().await? {
            if let Some((data, _)) = self.session.get(&format!("{}/{}", self.path, entry.name)).await? {
                return Ok(HolderInfo::from_bytes(&data));
            }
        }
        Ok(None)
    }

    async fn entries(&self) -> Result<Vec<Entry>> {
        match self.session.children(self.path.as_str()).await {
            Ok(children) => Ok(recipe::queue(&children)),
            Err(Error::ZooKeeper { code: crate::ZkErrorCode::NoNode, .. }) => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    }
}

/// A released hold: done at once, or the last hold's delete under way.
pub(crate) enum Release {
    Done(Result<()>),
    Deleting {
        first: std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>,
        node: Arc<Node>,
        lock: DistributedLock,
    },
}

impl Release {
    /// Waits for the delete's outcome.
    pub(crate) async fn finish(self) -> Result<()> {
        let (first, node, lock) = match self {
            Release::Done(result) => return result,
            Release::Deleting { first, node, lock } => (first, node, lock),
        };
        let mut outcome = first.await;
        // A delete whose reply was lost with the connection may or may not have applied: ask
        // again until the node is certainly gone (NoNode then means our delete won).
        let mut retried = false;
        loop {
            match outcome {
                Ok(()) => return Ok(()),
                Err(Error::ZooKeeper { code: crate::ZkErrorCode::NoNode, .. }) if retried => return Ok(()),
                // Gone before our delete: the session expired meanwhile, or an operator removed it.
                Err(Error::ZooKeeper { code: crate::ZkErrorCode::NoNode, .. }) => return Err(Error::SessionLost),
                Err(err) if err.is_retryable() && !lock.is_lost(&node) => {
                    retried = true;
                    outcome = lock.session.delete(&node.path, None).await;
                }
                Err(err) if err.is_retryable() => return Err(Error::SessionLost),
                Err(err) => return Err(err),
            }
        }
    }
}
