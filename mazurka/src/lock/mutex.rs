//! The distributed reentrant lock: ZooKeeper's "Locks" recipe, reentrant within the scope of
//! the future that holds it (see [`super::reentry`]).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::guard::LockGuard;
use super::holder::HolderInfo;
use super::owner::Owner;
use super::recipe::{self, Enqueued, Entry, Node, Turn};
use super::reentry::{scope, FastHolds};
use crate::error::{Error, Result};
use crate::path::ZnodePath;
use crate::session::Session;

/// Node kind of an exclusive contender.
const KIND: &str = "lock";

/// An exclusive lock waits for whoever is directly ahead of it.
fn blocker(_me: &Entry, ahead: &[Entry]) -> Option<usize> {
    ahead.len().checked_sub(1)
}

/// The future of [`DistributedLock::lock`]. Hand-written rather than `async`: its first poll is
/// the whole reentrant path (an owner check and a hold count), and an `async` block's state
/// machine around it cost more than the path itself. The queue's state machine is boxed, only
/// for a first acquisition.
enum Locking<'a> {
    Start(&'a DistributedLock),
    Queued(std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<LockGuard>>> + Send + 'a>>),
    Done,
}

impl std::future::Future for Locking<'_> {
    type Output = Result<LockGuard>;

    // Inlined into the caller: the reentrant path is a few instructions, and a call that returns
    // the whole `Result` through memory cost more than the path itself.
    #[inline(always)]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<LockGuard>> {
        let this = self.get_mut();
        if let Locking::Start(lock) = *this {
            // Whether the caller runs in a hold's scope is decided here, when it polls, not when
            // the future was made.
            if let Some(guard) = lock.reenter() {
                *this = Locking::Done;
                return std::task::Poll::Ready(Ok(guard));
            }
        }
        this.poll_queued(cx)
    }
}

impl Locking<'_> {
    /// Joins the queue, or waits in it: a first acquisition.
    #[inline(never)]
    fn poll_queued(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<LockGuard>> {
        use std::task::Poll;
        let this = self;
        if let Locking::Start(lock) = *this {
            *this = Locking::Queued(Box::pin(lock.enqueue(Owner::current(), None)));
        }
        let Locking::Queued(queued) = this else {
            // Polled after completion: a caller bug, reported rather than a panic.
            return Poll::Ready(Err(Error::Config(
                "a lock() future was polled after it completed".into(),
            )));
        };
        let result = match queued.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result,
        };
        *this = Locking::Done;
        Poll::Ready(match result {
            Ok(Some(guard)) => Ok(guard),
            // No deadline was given: the queue cannot time out.
            Ok(None) => Err(Error::Timeout {
                operation: "lock",
                after: Duration::MAX,
            }),
            Err(err) => Err(err),
        })
    }
}

/// The process-local side of one lock path, shared by every handle of a session on that path.
#[derive(Debug, Default)]
pub(crate) struct Local {
    held: Mutex<Option<Held>>,
}

impl Local {
    /// The current acquisition, locked. Nothing panics while holding it; a poisoned list is
    /// still consistent.
    fn held(&self) -> MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The current acquisition in this process.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) holding: Arc<Holding>,
    /// While the holding's fast path is off: one id per outstanding hold, innermost last (the
    /// hold count is its length). While it is on, the holding's [`FastHolds`] counts instead and
    /// this list is empty.
    holds: Vec<u64>,
    next_id: u64,
    /// A hold was given up without its guard (`unlock()`): that guard still carries its id, so
    /// ids are never reused and the fast path stays off for this acquisition.
    unlocked: bool,
}

impl Held {
    /// Makes the list exact: takes over from the fast path if it was on.
    fn freeze(&mut self) {
        if let Some(count) = self.holding.fast.freeze() {
            self.holds = (0..count).collect();
            self.next_id = count;
        }
    }

    /// Hands over to the fast path again if the holds are a plain stack `0..n` and no guard of a
    /// given-up hold exists (ids from `n` on may be reused then: their guards are gone).
    fn settle(&mut self) {
        let stack = self.holds.iter().enumerate().all(|(i, &id)| i as u64 == id);
        if !self.unlocked
            && stack
            && self.holding.fast.count().is_none()
            && self.holding.fast.resume(self.holds.len() as u64)
        {
            self.holds.clear();
            self.next_id = 0;
        }
    }

    /// The hold count.
    fn count(&self) -> usize {
        match self.holding.fast.count() {
            Some(count) => count as usize,
            None => self.holds.len(),
        }
    }

    /// Whether hold `id` is outstanding.
    fn has(&self, id: u64) -> bool {
        match self.holding.fast.count() {
            Some(count) => id < count,
            None => self.holds.contains(&id),
        }
    }

    /// A further hold: its id.
    fn enter(&mut self) -> u64 {
        if let Some(id) = self.holding.fast.try_enter() {
            return id;
        }
        self.freeze();
        let id = self.next_id;
        self.next_id += 1;
        self.holds.push(id);
        id
    }
}

/// One acquisition of the lock in ZooKeeper, shared by all its reentrant guards. Guards compare
/// it by identity, so a stale guard never touches a later acquisition's holds.
///
/// A [`Condition::wait`](super::Condition::wait) releases the lock and takes it again with a new
/// node: the holding stays the same object (so every guard of it, outer and nested, stays valid)
/// and its node is replaced in place. The reentrant fast path never looks at the node: it needs
/// only `generation`, which a wait never changes (it re-acquires on the same ZooKeeper session or
/// fails).
#[derive(Debug)]
pub(crate) struct Holding {
    pub(crate) lock: DistributedLock,
    /// Who holds it (a condition wait gives it back to the same owner).
    owner: Owner,
    /// The ZooKeeper session generation that created every node of this holding.
    pub(crate) generation: u64,
    /// The hold count while re-entry is lock-free (see [`super::reentry`]).
    fast: FastHolds,
    slot: Mutex<Slot>,
    /// Woken on every change of `slot` (for [`LockGuard::lost`]).
    pub(crate) changed: tokio::sync::Notify,
}

#[derive(Debug)]
struct Slot {
    node: Arc<Node>,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    /// The node is (or was, until its last hold went) this holding's place at the head of the queue.
    Held,
    /// A condition wait released the lock; the holds wait here to be restored.
    Waiting(Parked),
    /// A condition wait released the lock and will not take it back (it failed or was dropped):
    /// every guard of this holding is inert.
    Ended,
}

#[derive(Debug)]
struct Parked {
    holds: Vec<u64>,
    next_id: u64,
    unlocked: bool,
}

/// What a holding is doing now, as guards see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldingPhase {
    Held,
    Waiting,
    Ended,
}

impl Holding {
    fn new(lock: DistributedLock, owner: Owner, node: Node) -> Holding {
        Holding {
            lock,
            owner,
            generation: node.generation,
            fast: FastHolds::first_hold(),
            slot: Mutex::new(Slot {
                node: Arc::new(node),
                phase: Phase::Held,
            }),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        // Nothing panics while holding it; a poisoned slot is still consistent.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current node.
    pub(crate) fn node(&self) -> Arc<Node> {
        self.slot().node.clone()
    }

    /// The current node's creation zxid (the fencing token).
    pub(crate) fn czxid(&self) -> i64 {
        self.slot().node.czxid
    }

    pub(crate) fn phase(&self) -> HoldingPhase {
        match self.slot().phase {
            Phase::Held => HoldingPhase::Held,
            Phase::Waiting(_) => HoldingPhase::Waiting,
            Phase::Ended => HoldingPhase::Ended,
        }
    }

    /// Whether `node` is still this holding's node and the holding is not in a wait.
    pub(crate) fn is_current(&self, node: &Arc<Node>) -> bool {
        let slot = self.slot();
        matches!(slot.phase, Phase::Held) && Arc::ptr_eq(&slot.node, node)
    }

    /// Gives back hold `id` lock-free if it is the innermost of several (see
    /// [`FastHolds::try_leave`]); `false` leaves it to [`DistributedLock::release_hold`], under
    /// the mutex.
    #[inline]
    pub(crate) fn leave_nested(&self, id: u64) -> bool {
        self.fast.try_leave(id)
    }

    /// Whether the session that created the holding's nodes is gone. One atomic load.
    #[inline]
    pub(crate) fn is_lost(&self) -> bool {
        !self.lock.inner.session.is_valid(self.generation)
    }

    /// A wait that released the lock gives up on taking it back: the holding's guards go inert.
    pub(crate) fn end(&self) {
        {
            let mut slot = self.slot();
            if !matches!(slot.phase, Phase::Waiting(_)) {
                return;
            }
            slot.phase = Phase::Ended;
        }
        self.changed.notify_waiters();
    }

    /// Releases hold `id` of a holding that is not the lock's current one (slow path).
    fn release_unlisted(&self, id: u64) -> Release {
        match &mut self.slot().phase {
            Phase::Waiting(parked) => {
                parked.holds.retain(|&x| x != id);
                Release::Kept
            }
            Phase::Ended => Release::Failed(self.lock.not_held()),
            // A hold already given up with `unlock()`, or a holding released in full.
            Phase::Held => Release::Kept,
        }
    }
}

/// A distributed, reentrant, fair (FIFO) mutual-exclusion lock on a znode path — a
/// `java.util.concurrent.locks.ReentrantLock` across processes.
///
/// ```no_run
/// # async fn demo(session: &mazurka::Session) -> mazurka::Result<()> {
/// let lock = session.lock("/locks/jobs")?;
/// let guard = lock.lock().await?;
/// println!("fencing token {}", guard.fencing_token());
/// guard.release().await?; // or just drop it: released in the background
/// # Ok(()) }
/// ```
///
/// # Re-entry is scoped to the future that holds
///
/// A hold is re-entered — a further guard of the same acquisition, no request — by code that runs
/// **inside its scope**: the block of a [`lock!`](crate::lock!), or a future run with
/// [`LockGuard::scope`]. Everywhere else, `lock()` is a new acquisition that queues like another
/// process's, *also in the task that holds the lock*: a tokio task runs many futures at once
/// (`join!`, `select!`, `FuturesUnordered`), and a future that merely shares the holder's task
/// must not share its hold — the two would run interleaved critical sections, neither knowing
/// it. So sibling futures exclude each other, and code nested in a hold but *outside* its scope
/// waits for that hold like any non-reentrant lock would (forever, if the holder waits for it):
/// run such code in the guard's scope.
///
/// ```no_run
/// # async fn demo(lock: &mazurka::DistributedLock) -> mazurka::Result<()> {
/// async fn bump(lock: &mazurka::DistributedLock) -> mazurka::Result<()> {
///     let guard = lock.lock().await?; // re-enters when called inside a scope of the hold
///     // ...
///     guard.release().await
/// }
/// let guard = lock.lock().await?;
/// guard.scope(bump(lock)).await?; // nested: re-enters the hold (no request)
/// // Concurrent: the two `bump`s queue behind `guard` (and behind each other) like other processes.
/// let (a, b) = tokio::join!(bump(lock), bump(lock));
/// # let _ = (a, b); Ok(()) }
/// ```
///
/// Futures that a scope's own future runs concurrently (a `join!` inside the block) are part of
/// the holder and share its hold, knowingly. A scope lasts as long as its future, wherever it is
/// polled (a scope future may even be spawned on another task); it does not outlive its hold: a
/// hold released, ended by a [`Condition`](super::Condition) wait, or lost makes `lock()` inside
/// its scope a new acquisition (or [`Error::SessionLost`] for a lost one). Outside every scope,
/// [`DistributedLock::hold_count`], [`DistributedLock::unlock`] and the checks of
/// [`Condition`](super::Condition) count the holds of the caller's task; inside a scope, those of
/// the scope's acquisition.
#[derive(Debug, Clone)]
pub struct DistributedLock {
    // One allocation shared by clones and guards: a guard costs one reference count.
    pub(crate) inner: Arc<LockInner>,
}

#[derive(Debug)]
pub(crate) struct LockInner {
    pub(crate) session: Session,
    pub(crate) path: ZnodePath,
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
        Ok(DistributedLock {
            inner: Arc::new(LockInner {
                session: session.clone(),
                path,
                local,
            }),
        })
    }

    /// The lock's path.
    pub fn path(&self) -> &ZnodePath {
        &self.inner.path
    }

    /// Acquires the lock, waiting as long as it takes. Inside the scope of a live hold of this lock
    /// (a `lock!` block, [`LockGuard::scope`]) it re-enters that hold at once, with no request;
    /// anywhere else it queues, even when the caller's task holds the lock (see
    /// [re-entry](DistributedLock#re-entry-is-scoped-to-the-future-that-holds)).
    ///
    /// # Errors
    /// [`Error::SessionLost`] if the session expires while waiting (never a guard then), or if
    /// called in the scope of a hold that was lost;
    /// [`Error::LockNodeDeleted`] if someone else deletes this contender's node while it waits;
    /// [`Error::PermissionDenied`], [`Error::Closed`], or a ZooKeeper error.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future removes this contender's node (in the background), also
    /// when the create request was in flight.
    pub fn lock(&self) -> impl std::future::Future<Output = Result<LockGuard>> + Send + '_ {
        Locking::Start(self)
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
        // The scope and the owner are whoever polls: decided here, not when the future was made.
        if let Some(guard) = self.reenter() {
            return Ok(Some(guard));
        }
        let owner = Owner::current();
        // The queue's state machine is large; boxed, it costs the reentrant path nothing.
        Box::pin(self.enqueue(owner, deadline)).await
    }

    async fn enqueue(&self, owner: Owner, deadline: Option<Instant>) -> Result<Option<LockGuard>> {
        // Inside the scope of a hold that was lost, the block's critical section is over: say so
        // rather than start another one in the middle of it.
        if scope::lock_holding(&self.inner.local).is_some_and(|h| h.is_lost()) {
            return Err(Error::SessionLost);
        }
        Ok(self
            .contend(deadline)
            .await?
            .map(|node| self.install(owner, node)))
    }

    /// Queues a node and waits for its turn: the node at the head of the queue, or `None` (no
    /// node left behind) if the deadline passed first.
    async fn contend(&self, deadline: Option<Instant>) -> Result<Option<Node>> {
        let mut contender = Enqueued::new(&self.inner.session, self.inner.path.as_str(), KIND);
        let holder = HolderInfo::for_this_process(self.inner.session.id()).to_bytes();
        match contender.create_and_wait(&holder, blocker, deadline).await? {
            Turn::Acquired => {}
            Turn::TimedOut => {
                contender.leave().await?;
                return Ok(None);
            }
        }
        // A node of a session that is gone is no lock: never hand it out (dropping the contender
        // removes the node, should the server still keep it).
        if !contender
            .node()
            .is_some_and(|n| self.inner.session.holds(n.generation))
        {
            return Err(Error::SessionLost);
        }
        contender.into_node().map(Some).ok_or(Error::SessionLost)
    }

    /// A further hold for code that runs in the scope of a live acquisition (no request): see
    /// [`super::reentry`]. Lock-free while its holds are a plain stack. `None` outside every
    /// scope of one: the caller then queues like any contender.
    #[inline]
    fn reenter(&self) -> Option<LockGuard> {
        let holding = scope::lock_holding(&self.inner.local)?;
        if !holding.is_lost() {
            if let Some(id) = holding.fast.try_enter() {
                return Some(LockGuard::new(holding, id));
            }
        }
        self.reenter_locked(holding)
    }

    #[inline(never)]
    fn reenter_locked(&self, holding: Arc<Holding>) -> Option<LockGuard> {
        let mut held = self.inner.local.held();
        // Only while it is the current acquisition: a scope outlives a hold that was released,
        // lost, or ended by a condition wait.
        let h = held.as_mut().filter(|h| Arc::ptr_eq(&h.holding, &holding))?;
        if h.holding.is_lost() {
            return None;
        }
        let id = h.enter();
        Some(LockGuard::new(holding, id))
    }

    /// The acquisition whose holds the caller counts as its own: the one whose scope it runs in,
    /// else (outside every scope) the one its task made.
    fn owned<'a>(&self, held: &'a mut Option<Held>) -> Option<&'a mut Held> {
        let h = held.as_mut()?;
        let mine = match scope::lock_holding(&self.inner.local) {
            Some(scoped) if Arc::ptr_eq(&scoped, &h.holding) => true,
            _ => h.holding.owner == Owner::current(),
        };
        mine.then_some(h)
    }

    fn install(&self, owner: Owner, node: Node) -> LockGuard {
        let holding = Arc::new(Holding::new(self.clone(), owner, node));
        let guard = LockGuard::new(holding.clone(), 0);
        let mut held = self.inner.local.held();
        // A lost acquisition still listed: its fast path must not outlive its listing.
        if let Some(mut old) = held.take() {
            old.freeze();
        }
        *held = Some(Held {
            holding,
            holds: Vec::new(),
            next_id: 0,
            unlocked: false,
        });
        guard
    }

    /// Releases the innermost hold of the caller (of the acquisition whose scope it runs in, else
    /// of its task's), like `ReentrantLock::unlock`. The guard of that hold becomes inert. Prefer
    /// dropping or releasing guards.
    ///
    /// # Errors
    /// [`Error::NotHeld`] if the current task holds no hold of this lock; as
    /// [`LockGuard::release`] otherwise.
    ///
    /// # Cancel safety
    /// The hold is released when first polled; only the wait for the server's reply is cancelled.
    pub async fn unlock(&self) -> Result<()> {
        let innermost = {
            let mut held = self.inner.local.held();
            self.owned(&mut held).and_then(|h| {
                h.freeze();
                let id = *h.holds.last()?;
                // That hold's guard lives on, inert: its id must never be reused.
                h.unlocked = true;
                Some((h.holding.clone(), id))
            })
        };
        match innermost {
            Some((holding, id)) => self.release_hold(&holding, id).finish().await,
            None => Err(self.not_held()),
        }
    }

    pub(crate) fn not_held(&self) -> Error {
        Error::NotHeld {
            path: self.inner.path.to_string(),
        }
    }

    /// Removes hold `id` of `holding`; when it was the last, queues the node's delete on the
    /// connection at once (so it goes out even if the returned [`Release`] is never awaited).
    /// A lost holding reports [`Error::SessionLost`] and sends nothing.
    ///
    /// The path under the mutex: guards try [`Holding::leave_nested`] first, and `unlock()` has
    /// turned the lock-free path off already.
    pub(crate) fn release_hold(&self, holding: &Arc<Holding>, id: u64) -> Release {
        let mut last = false;
        let mut listed = false;
        let mut unlisted = None;
        {
            let mut held = self.inner.local.held();
            if !held.as_ref().is_some_and(|h| Arc::ptr_eq(&h.holding, holding)) {
                // Not the current acquisition: one parked by a condition wait, ended, or
                // released. Decided under this mutex, which `restore` takes too: a hold given
                // back while its acquisition waits is never restored with the others.
                unlisted = Some(holding.release_unlisted(id));
            } else if let Some(h) = held.as_mut() {
                listed = true;
                h.freeze();
                // Usually the innermost hold goes first.
                if h.holds.last() == Some(&id) {
                    h.holds.pop();
                } else {
                    h.holds.retain(|&x| x != id);
                }
                if h.holds.is_empty() {
                    *held = None;
                    last = true;
                } else {
                    h.settle();
                }
            }
        }
        if holding.is_lost() {
            return Release::Failed(Error::SessionLost);
        }
        if let Some(outcome) = unlisted {
            return outcome;
        }
        if !listed || !last {
            return Release::Kept;
        }
        let node = holding.node();
        let first = Box::pin(self.inner.session.delete_now(&node.path, None));
        Release::Deleting {
            first,
            holding: holding.clone(),
            node,
        }
    }

    /// Whether `holding` is the caller's live acquisition of this lock (see `owned`), with hold
    /// `id`.
    pub(crate) fn holds(&self, holding: &Arc<Holding>, id: u64) -> bool {
        let mut held = self.inner.local.held();
        self.owned(&mut held)
            .is_some_and(|h| Arc::ptr_eq(&h.holding, holding) && h.has(id))
            && !holding.is_lost()
    }

    /// For a condition wait: releases the lock in full, whatever the hold count. The holds are
    /// parked in the holding (to be restored by [`DistributedLock::restore`]) and the node's delete
    /// is queued on the connection before this returns.
    ///
    /// # Errors
    /// [`Error::NotHeld`] unless `holding` is the current task's live acquisition;
    /// [`Error::SessionLost`] if it was lost.
    pub(crate) fn park(&self, holding: &Arc<Holding>) -> Result<Release> {
        let node = {
            let mut held = self.inner.local.held();
            if !self
                .owned(&mut held)
                .is_some_and(|h| Arc::ptr_eq(&h.holding, holding))
            {
                return Err(self.not_held());
            }
            if holding.is_lost() {
                return Err(Error::SessionLost);
            }
            let Some(mut h) = held.take() else {
                return Err(self.not_held());
            };
            h.freeze();
            let mut slot = holding.slot();
            slot.phase = Phase::Waiting(Parked {
                holds: h.holds,
                next_id: h.next_id,
                unlocked: h.unlocked,
            });
            slot.node.clone()
        };
        holding.changed.notify_waiters();
        let first = Box::pin(self.inner.session.delete_now(&node.path, None));
        Ok(Release::Deleting {
            first,
            holding: holding.clone(),
            node,
        })
    }

    /// For a condition wait: takes the lock again for a parked holding — a new node, queued at the
    /// back like any contender, on the holding's own ZooKeeper session.
    ///
    /// # Errors
    /// [`Error::SessionLost`] if that session is gone; as [`DistributedLock::lock`] otherwise.
    pub(crate) async fn reacquire(&self, holding: &Holding) -> Result<Node> {
        if holding.is_lost() {
            return Err(Error::SessionLost);
        }
        let node = self.contend(None).await?.ok_or(Error::Timeout {
            operation: "lock",
            after: Duration::MAX,
        })?;
        if node.generation != holding.generation {
            // The session was replaced in between: this node is not the holding's to keep.
            recipe::remove_in_background(
                &self.inner.session,
                &node.path,
                node.generation,
                "lock node of a lost wait",
            );
            return Err(Error::SessionLost);
        }
        Ok(node)
    }

    /// For a condition wait: installs the re-acquired `node` as the parked holding's node and
    /// restores its holds (so the hold count is what it was before the wait).
    ///
    /// # Errors
    /// [`Error::NotHeld`] if the holding is not parked or has no hold left (the node is then
    /// released).
    pub(crate) fn restore(&self, holding: &Arc<Holding>, node: Node) -> Result<()> {
        let node = Arc::new(node);
        let restored = {
            let mut held = self.inner.local.held();
            let mut slot = holding.slot();
            match std::mem::replace(&mut slot.phase, Phase::Ended) {
                Phase::Waiting(parked) if !parked.holds.is_empty() => {
                    slot.phase = Phase::Held;
                    slot.node = node.clone();
                    let mut h = Held {
                        holding: holding.clone(),
                        holds: parked.holds,
                        next_id: parked.next_id,
                        unlocked: parked.unlocked,
                    };
                    h.settle();
                    // As in `install`: an acquisition still listed is lost; it goes to the list.
                    if let Some(mut old) = held.replace(h) {
                        old.freeze();
                    }
                    true
                }
                Phase::Held => {
                    slot.phase = Phase::Held;
                    false
                }
                Phase::Waiting(_) | Phase::Ended => false,
            }
        };
        holding.changed.notify_waiters();
        if restored {
            return Ok(());
        }
        recipe::remove_in_background(
            &self.inner.session,
            &node.path,
            node.generation,
            "unneeded lock node",
        );
        Err(self.not_held())
    }

    /// How many holds the caller has: those of the acquisition whose scope it runs in (see
    /// [`LockGuard::scope`]), else, outside every scope, those of the acquisition its task made;
    /// 0 if none (or lost).
    pub fn hold_count(&self) -> usize {
        let mut held = self.inner.local.held();
        self.owned(&mut held)
            .filter(|h| !h.holding.is_lost())
            .map_or(0, |h| h.count())
    }

    /// Whether the caller holds the lock, as [`DistributedLock::hold_count`] counts.
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
            if let Some((data, _)) = self
                .inner
                .session
                .get(&format!("{}/{}", self.inner.path, entry.name))
                .await?
            {
                return Ok(HolderInfo::from_bytes(&data));
            }
        }
        Ok(None)
    }

    async fn entries(&self) -> Result<Vec<Entry>> {
        match self.inner.session.children(self.inner.path.as_str()).await {
            Ok(children) => recipe::queue(&self.inner.session, self.inner.path.as_str(), &children).await,
            Err(Error::ZooKeeper {
                code: crate::ZkErrorCode::NoNode,
                ..
            }) => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    }
}

/// A released hold: done at once, or the last hold's delete under way.
pub(crate) enum Release {
    /// Done, nothing to send (a hold other than the last). A variant of its own rather than an
    /// `Ok(())` inside a `Result` so the reentrant path never copies a whole `Result`.
    Kept,
    /// Refused: the lock was lost or is not held.
    Failed(Error),
    Deleting {
        first: std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>,
        holding: Arc<Holding>,
        /// The node being deleted (a later wait may give the holding another one).
        node: Arc<Node>,
    },
}

impl Release {
    /// Waits for the delete's outcome.
    pub(crate) async fn finish(self) -> Result<()> {
        let (first, holding, node) = match self {
            Release::Kept => return Ok(()),
            Release::Failed(err) => return Err(err),
            Release::Deleting { first, holding, node } => (first, holding, node),
        };
        let lock = &holding.lock;
        let mut outcome = first.await;
        // A delete whose reply was lost with the connection may or may not have applied: ask
        // again until the node is certainly gone (NoNode then means our delete won).
        let mut retried = false;
        loop {
            match outcome {
                Ok(()) => return Ok(()),
                Err(Error::ZooKeeper {
                    code: crate::ZkErrorCode::NoNode,
                    ..
                }) if retried => return Ok(()),
                // Gone before our delete: the session expired meanwhile, or an operator removed it.
                Err(Error::ZooKeeper {
                    code: crate::ZkErrorCode::NoNode,
                    ..
                }) => return Err(Error::SessionLost),
                Err(err) if err.is_retryable() && !holding.is_lost() => {
                    retried = true;
                    outcome = lock.inner.session.delete(&node.path, None).await;
                }
                Err(err) if err.is_retryable() => return Err(Error::SessionLost),
                Err(err) => return Err(err),
            }
        }
    }
}
