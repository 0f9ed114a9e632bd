//! The distributed read-write lock: ZooKeeper's "Shared Locks" recipe, reentrant (the write side
//! within the scope of the future that holds it, see [`super::reentry`]), fair, with downgrade.
//!
//! Readers and writers queue in one directory, as `read` and `write` nodes of the
//! [recipe] shared with the exclusive lock: a reader waits only for the last
//! writer ahead of it, a writer for whoever is directly ahead of it. So readers share, writers
//! exclude, and arrival order is kept (a reader that comes after a queued writer waits for it).
//!
//! How a downgrade keeps writers out: see [`DistributedRwLock`]'s `# Downgrade` section.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::fence::Fenced;
use super::guard::HoldState;
use super::holder::HolderInfo;
use super::order;
use super::owner::Owner;
use super::read_guard::ReadGuard;
use super::recipe::{self, Blocker, Enqueued, Entry, Node, Turn};
use super::reentry::scope;
use super::write_guard::WriteGuard;
use crate::error::{Error, Result, ZkErrorCode};
use crate::path::ZnodePath;
use crate::session::{CreateMode, MultiOp, MultiOutcome, NodeEvent, Session, SessionState};

/// Node kind of a reader.
const READ: &str = "read";
/// Node kind of a writer.
const WRITE: &str = "write";

/// A reader waits for the last writer ahead of it (any node that is not a reader counts as one).
fn read_blocker(_me: &Entry, ahead: &[Entry]) -> Option<usize> {
    ahead.iter().rposition(|e| e.kind != READ)
}

/// A writer waits for whoever is directly ahead of it.
fn write_blocker(_me: &Entry, ahead: &[Entry]) -> Option<usize> {
    ahead.len().checked_sub(1)
}

/// The side of a [`DistributedRwLock`] a hold or a queued contender is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RwMode {
    /// Shared: any number of readers at once.
    Read,
    /// Exclusive: one writer, no readers.
    Write,
}

impl RwMode {
    fn of(entry: &Entry) -> RwMode {
        if entry.kind == READ {
            RwMode::Read
        } else {
            RwMode::Write
        }
    }

    fn blocker(self) -> Blocker {
        match self {
            RwMode::Read => read_blocker,
            RwMode::Write => write_blocker,
        }
    }
}

/// The entries of a queue that hold the lock now. Nodes that share a place (a write node and the
/// read node of its holder's downgrade) are one contender: they do not block each other. So a
/// reader holds when every writer ahead of it shares its place, a writer when everyone ahead of
/// it does. One pass over the queue.
///
/// The place, not the sequence number: in an exhausted directory unrelated contenders share the
/// number `2147483647`, and must still block each other (see [`super::order`]).
fn holding_entries(entries: &[Entry]) -> Vec<&Entry> {
    // The places of everyone ahead, and of the writers ahead.
    let (mut all, mut writers) = (Seen::Nothing, Seen::Nothing);
    let mut holding = Vec::new();
    for e in entries {
        if writers == Seen::Many {
            break; // two writers apart ahead: nobody further back holds
        }
        let mode = RwMode::of(e);
        let clear = match mode {
            RwMode::Read => writers.all_are(e.place),
            RwMode::Write => all.all_are(e.place),
        };
        if clear {
            holding.push(e);
        }
        all = all.and(e.place);
        if mode == RwMode::Write {
            writers = writers.and(e.place);
        }
    }
    holding
}

/// The distinct places among some entries, as far as [`holding_entries`] cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Nothing,
    One(i64),
    Many,
}

impl Seen {
    fn and(self, place: i64) -> Seen {
        match self {
            Seen::Nothing => Seen::One(place),
            Seen::One(p) if p == place => self,
            _ => Seen::Many,
        }
    }

    /// Whether every place seen is `place` (none seen included).
    fn all_are(self, place: i64) -> bool {
        match self {
            Seen::Nothing => true,
            Seen::One(p) => p == place,
            Seen::Many => false,
        }
    }
}

/// The process-local side of one read-write lock path, shared by every handle of a session on it.
#[derive(Debug, Default)]
pub(crate) struct RwLocal {
    holds: Mutex<Holds>,
}

/// Who holds what in this process.
#[derive(Debug, Default)]
struct Holds {
    /// The write holder, if it is in this process.
    writer: Option<Held>,
    /// Read holders of this process, each with a node of its own.
    readers: HashMap<Owner, Held>,
}

/// The holds of one owner on one node.
#[derive(Debug)]
struct Held {
    holding: Arc<RwHolding>,
    /// One id per outstanding hold, innermost last; the hold count is its length.
    ids: Vec<u64>,
    next_id: u64,
}

impl Held {
    fn new(holding: Arc<RwHolding>) -> Held {
        Held {
            holding,
            ids: vec![0],
            next_id: 1,
        }
    }

    fn reenter(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.ids.push(id);
        id
    }

    fn is_valid(&self) -> bool {
        !self.holding.lock.is_lost(&self.holding.node)
    }
}

/// One acquisition in ZooKeeper (one node), shared by all its reentrant guards, which compare it
/// by identity: a stale guard never touches a later acquisition's holds.
pub(crate) struct RwHolding {
    pub(crate) lock: DistributedRwLock,
    pub(crate) node: Node,
    owner: Owner,
    mode: RwMode,
}

impl RwHolding {
    /// The address of the lock's process-local side, as the lock's identity for scopes.
    pub(crate) fn local_key(&self) -> usize {
        Arc::as_ptr(&self.lock.inner.local) as usize
    }

    /// Whether the caller runs in this acquisition's scope (`scoped`: see [`scope::rw_holdings`]).
    fn in_scope(self: &Arc<Self>, scoped: &[Arc<RwHolding>]) -> bool {
        scoped.iter().any(|s| Arc::ptr_eq(s, self))
    }
}

impl std::fmt::Debug for RwHolding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RwHolding")
            .field("path", &self.lock.inner.path)
            .field("node", &self.node)
            .field("owner", &self.owner)
            .field("mode", &self.mode)
            .finish()
    }
}

/// A distributed, reentrant, fair (FIFO) read-write lock on a znode path — a
/// `java.util.concurrent.locks.ReentrantReadWriteLock` across processes.
///
/// Any number of readers hold it together; a writer holds it alone. Contenders are served in
/// arrival order: a reader that arrives while a writer waits queues behind that writer, so
/// writers are not starved by a stream of readers.
///
/// - **Reentrant**, taking a side again costs no request. The write side is re-entered only
///   **inside the scope of the write hold** (a `lock!(write …)` block, [`WriteGuard::scope`]),
///   as [`DistributedLock`](super::DistributedLock) is: anywhere else, `write()` queues, also in
///   the task that holds the write lock, because a future of that task may be a concurrently
///   running sibling (`join!`, `select!`), which must not share the hold. The read side is
///   re-entered by any future of the task that holds it, since readers share the lock anyway
///   (a second reader costs no node, and never queues behind a writer that waits for the
///   first) — except a read hold taken by a downgrade while the write hold lasts, which only the
///   write hold's scope (or the read hold's, [`ReadGuard::scope`]) shares: a sibling must not
///   read while the writer writes.
/// - **Downgrade**: a write holder may take the read lock (one request, inside the write hold's
///   scope — outside it, `read()` queues behind the write hold), then release the write
///   lock and keep reading; other writers stay out until that read hold is released, other
///   readers get in once the write lock is released (see [below](#downgrade)).
/// - **No upgrade**: a read holder that asks for the write lock would wait for itself forever, so
///   it gets [`Error::UpgradeWouldDeadlock`] at once, and nothing is sent. Since read holds are
///   shared by the holder's task, so is the refusal: any future of a task that holds the read
///   lock gets it (outside the scope of a write hold of its own).
///
/// Do not use the same path for a [`DistributedLock`](crate::DistributedLock) too: readers treat
/// its nodes as writers, but its contenders do not know about readers.
///
/// # Downgrade
///
/// The read hold of a write holder is a read node *at the write node's place in the queue*: a
/// plain ephemeral node named with the write node's sequence number, its data recording the
/// write node's creation zxid (the place that counts once the directory's sequence counter is
/// exhausted and numbers repeat), created in one `multi` together with a check that the write
/// node still exists (so it can never outlive a lost write hold). The two nodes sit side by side,
/// ahead of everyone who came later, as one contender that blocks nobody of its own. While the
/// write node exists, nothing changes for anybody else.
/// When it goes, the read node is a reader at the head of the queue: the readers that were
/// waiting behind the write node come in, and the writers keep waiting until the read hold is
/// released. Its fencing token is the write hold's.
///
/// A read node appearing ahead of waiting contenders is what the usual recipe never sees, so a
/// waiting writer lists the queue again when the node it watches goes, rather than taking its
/// turn from what it listed before (a reader needs no such care: read nodes never block readers).
/// That costs one read per hand-over to a writer; uncontended locking and reading cost nothing
/// extra.
///
/// ```no_run
/// # async fn demo(session: &mazurka::Session) -> mazurka::Result<()> {
/// let rw = session.rw_lock("/locks/config")?;
///
/// let read = rw.read().await?; // shared with other readers
/// println!("reading under token {}", read.fencing_token());
/// read.release().await?;
///
/// let write = rw.write().await?; // alone
/// let read = write.scope(rw.read()).await?; // downgrade (in the write hold's scope): read while writing …
/// write.release().await?; // … and stop writing: readers may come in, writers may not
/// read.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DistributedRwLock {
    inner: Arc<RwInner>,
}

struct RwInner {
    session: Session,
    path: ZnodePath,
    local: Arc<RwLocal>,
}

impl std::fmt::Debug for DistributedRwLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistributedRwLock")
            .field("path", &self.inner.path)
            .field("session", &self.inner.session)
            .finish()
    }
}

impl Session {
    /// The distributed read-write lock at `path` (a directory of reader and writer nodes).
    ///
    /// # Errors
    /// [`Error::InvalidPath`] if `path` breaks a znode path rule or is the root.
    pub fn rw_lock(&self, path: impl Into<String>) -> Result<DistributedRwLock> {
        DistributedRwLock::new(self, path)
    }
}

/// What the owner already holds, when it asks for the read lock.
enum ReadEntry {
    /// A further hold on its read node.
    Reentered(ReadGuard),
    /// It holds the write lock: a read node next to the write node.
    Downgrade(Arc<RwHolding>),
    /// Nothing: queue.
    Queue,
}

impl DistributedRwLock {
    /// The read-write lock at `path`; see [`Session::rw_lock`].
    ///
    /// # Errors
    /// [`Error::InvalidPath`] if `path` breaks a znode path rule or is the root.
    pub fn new(session: &Session, path: impl Into<String>) -> Result<DistributedRwLock> {
        let path = ZnodePath::new(path)?;
        if path.is_root() {
            return Err(Error::invalid_path("/", crate::PathRule::Reserved));
        }
        let local = session.shared_state::<RwLocal>(&format!("rwlock:{path}"));
        Ok(DistributedRwLock {
            inner: Arc::new(RwInner {
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

    /// Acquires the read lock, waiting as long as it takes: until no writer is ahead of this
    /// reader in the queue. Reentrant: a future of a task that holds the read lock gets a further
    /// hold at once, code in the scope of a write hold a read hold next to it (one request, see
    /// [downgrade](DistributedRwLock#downgrade)); a future outside that scope, while its task
    /// holds the write lock, queues behind it.
    ///
    /// Uncontended, it costs a create and a listing sent together, and the release a delete.
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
    pub async fn read(&self) -> Result<ReadGuard> {
        self.acquire_read(None).await?.ok_or(Error::Timeout {
            operation: "read lock",
            after: Duration::MAX,
        })
    }

    /// Acquires the read lock only if no writer holds it or waits for it now (no waiting).
    ///
    /// # Errors
    /// As [`DistributedRwLock::read`].
    ///
    /// # Cancel safety
    /// Cancel safe, as [`DistributedRwLock::read`]. When it returns `Ok(None)` its node is gone.
    pub async fn try_read(&self) -> Result<Option<ReadGuard>> {
        self.acquire_read(Some(Instant::now())).await
    }

    /// Acquires the read lock if it can within `timeout`; `Ok(None)` otherwise, with this
    /// contender's node removed before returning.
    ///
    /// # Errors
    /// As [`DistributedRwLock::read`].
    ///
    /// # Cancel safety
    /// Cancel safe, as [`DistributedRwLock::read`].
    pub async fn try_read_for(&self, timeout: Duration) -> Result<Option<ReadGuard>> {
        self.acquire_read(Some(recipe::deadline_after(timeout))).await
    }

    /// Acquires the write lock, waiting as long as it takes: until every contender that arrived
    /// earlier, reader or writer, is gone. Reentrant inside the scope of the write hold
    /// ([`WriteGuard::scope`], a `lock!(write …)` block), with no request; anywhere else it
    /// queues, also in the task that holds the write lock.
    ///
    /// # Errors
    /// [`Error::UpgradeWouldDeadlock`] at once, with nothing sent, if the caller may hold the read
    /// lock — it runs in a read hold's scope, or its task holds the read lock — and is not in the
    /// scope of a write hold: release the read lock first. [`Error::SessionLost`] in the scope of
    /// a hold that was lost. Otherwise as [`DistributedRwLock::read`].
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future removes this contender's node (in the background), also
    /// when the create request was in flight.
    pub async fn write(&self) -> Result<WriteGuard> {
        self.acquire_write(None).await?.ok_or(Error::Timeout {
            operation: "write lock",
            after: Duration::MAX,
        })
    }

    /// Acquires the write lock only if nobody holds the lock or waits for it now (no waiting).
    ///
    /// # Errors
    /// As [`DistributedRwLock::write`].
    ///
    /// # Cancel safety
    /// Cancel safe, as [`DistributedRwLock::write`]. When it returns `Ok(None)` its node is gone.
    pub async fn try_write(&self) -> Result<Option<WriteGuard>> {
        self.acquire_write(Some(Instant::now())).await
    }

    /// Acquires the write lock if it can within `timeout`; `Ok(None)` otherwise, with this
    /// contender's node removed before returning.
    ///
    /// # Errors
    /// As [`DistributedRwLock::write`].
    ///
    /// # Cancel safety
    /// Cancel safe, as [`DistributedRwLock::write`].
    pub async fn try_write_for(&self, timeout: Duration) -> Result<Option<WriteGuard>> {
        self.acquire_write(Some(recipe::deadline_after(timeout))).await
    }

    async fn acquire_read(&self, deadline: Option<Instant>) -> Result<Option<ReadGuard>> {
        // The owner and its scopes are whoever polls: decided here, not when the future was made.
        let owner = Owner::current();
        let scoped = scope::rw_holdings(&self.inner.local);
        match self.reenter_read(owner, &scoped)? {
            ReadEntry::Reentered(guard) => Ok(Some(guard)),
            ReadEntry::Downgrade(write) => Box::pin(self.downgrade(owner, write)).await.map(Some),
            ReadEntry::Queue => {
                let Some((holding, id)) = Box::pin(self.enqueue(owner, RwMode::Read, deadline)).await? else {
                    return Ok(None);
                };
                Ok(Some(ReadGuard::new(Hold::new(holding, id))))
            }
        }
    }

    async fn acquire_write(&self, deadline: Option<Instant>) -> Result<Option<WriteGuard>> {
        let owner = Owner::current();
        let scoped = scope::rw_holdings(&self.inner.local);
        if let Some(guard) = self.reenter_write(owner, &scoped)? {
            return Ok(Some(guard));
        }
        let Some((holding, id)) = Box::pin(self.enqueue(owner, RwMode::Write, deadline)).await? else {
            return Ok(None);
        };
        Ok(Some(WriteGuard::new(Hold::new(holding, id))))
    }

    /// What a read by `owner`, in the scopes `scoped`, takes: a further hold of a read hold (the
    /// one whose scope it runs in, else its task's — unless that task holds the write lock and
    /// the caller runs outside its scope: then the task's read hold is a downgrade that a sibling
    /// must not share), a downgrade (in the write hold's scope), or a place in the queue.
    ///
    /// # Errors
    /// [`Error::SessionLost`] in the scope of a hold that was lost.
    fn reenter_read(&self, owner: Owner, scoped: &[Arc<RwHolding>]) -> Result<ReadEntry> {
        let Ok(mut holds) = self.inner.local.holds.lock() else {
            return Ok(ReadEntry::Queue);
        };
        let holds = &mut *holds;
        let writer = holds.writer.as_ref().filter(|w| w.is_valid());
        let in_write_scope = writer.is_some_and(|w| w.holding.in_scope(scoped));
        let task_writes = writer.is_some_and(|w| w.holding.owner == owner);
        let key = holds
            .readers
            .iter()
            .find(|(_, h)| h.is_valid() && h.holding.in_scope(scoped))
            .map(|(key, _)| *key)
            .or_else(|| {
                let shared = !task_writes || in_write_scope;
                (shared && holds.readers.get(&owner).is_some_and(Held::is_valid)).then_some(owner)
            });
        if let Some(held) = key.and_then(|key| holds.readers.get_mut(&key)) {
            let id = held.reenter();
            return Ok(ReadEntry::Reentered(ReadGuard::new(Hold::new(
                held.holding.clone(),
                id,
            ))));
        }
        if let Some(writer) = writer.filter(|_| in_write_scope) {
            return Ok(ReadEntry::Downgrade(writer.holding.clone()));
        }
        self.check_scopes(scoped)?;
        Ok(ReadEntry::Queue)
    }

    /// A further write hold in the write hold's scope; the upgrade refusal for a read holder (in
    /// a read hold's scope, or a future of a task that holds the read lock); else nothing (queue).
    ///
    /// # Errors
    /// [`Error::UpgradeWouldDeadlock`]; [`Error::SessionLost`] in the scope of a hold that was
    /// lost.
    fn reenter_write(&self, owner: Owner, scoped: &[Arc<RwHolding>]) -> Result<Option<WriteGuard>> {
        let Ok(mut holds) = self.inner.local.holds.lock() else {
            return Ok(None);
        };
        if let Some(held) = holds
            .writer
            .as_mut()
            .filter(|w| w.is_valid() && w.holding.in_scope(scoped))
        {
            let id = held.reenter();
            return Ok(Some(WriteGuard::new(Hold::new(held.holding.clone(), id))));
        }
        let reads = holds
            .readers
            .iter()
            .any(|(key, h)| h.is_valid() && (*key == owner || h.holding.in_scope(scoped)));
        if reads {
            return Err(Error::UpgradeWouldDeadlock {
                path: self.inner.path.to_string(),
            });
        }
        self.check_scopes(scoped)?;
        Ok(None)
    }

    /// Inside the scope of a hold that was lost, the block's critical section is over: say so
    /// rather than start another one in the middle of it.
    fn check_scopes(&self, scoped: &[Arc<RwHolding>]) -> Result<()> {
        if scoped.iter().any(|h| self.is_lost(&h.node)) {
            return Err(Error::SessionLost);
        }
        Ok(())
    }

    /// Queues a `read` or `write` node and waits for its turn.
    async fn enqueue(
        &self,
        owner: Owner,
        mode: RwMode,
        deadline: Option<Instant>,
    ) -> Result<Option<(Arc<RwHolding>, u64)>> {
        let session = &self.inner.session;
        let mut contender = match mode {
            RwMode::Read => Enqueued::new(session, self.inner.path.as_str(), READ),
            // A downgrade node may appear ahead of a waiting writer (see `# Downgrade` above).
            RwMode::Write => Enqueued::new(session, self.inner.path.as_str(), WRITE).relist_on_hand_over(),
        };
        let holder = HolderInfo::for_this_process(session.id()).to_bytes();
        match contender
            .create_and_wait(&holder, mode.blocker(), deadline)
            .await?
        {
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
        let node = contender.into_node().ok_or(Error::SessionLost)?;
        Ok(Some(self.install(owner, mode, node)))
    }

    /// The read hold of a write holder: a read node with the write node's place in the queue,
    /// created only if the write node still exists (one `multi`).
    async fn downgrade(&self, owner: Owner, write: Arc<RwHolding>) -> Result<ReadGuard> {
        let session = &self.inner.session;
        let name = recipe::sibling_name(&write.node, READ).ok_or(Error::SessionLost)?;
        let path = format!("{}/{name}", self.inner.path);
        // The write node's place, by number (the name) and by zxid (the data): see `order`.
        let data = order::sibling_data(&HolderInfo::for_this_process(session.id()), write.node.czxid);
        // Dropped before the outcome is known (cancelled, or an error): delete it, in order behind
        // the create, in case it was applied.
        let mut pending = Orphan {
            session,
            path: Some(path.clone()),
        };
        loop {
            if self.is_lost(&write.node) {
                // Had the create applied, its node went with the session.
                pending.path = None;
                return Err(Error::SessionLost);
            }
            let ops = [
                MultiOp::Check {
                    path: &write.node.path,
                    version: 0,
                },
                MultiOp::Create {
                    path: &path,
                    data: &data,
                    mode: CreateMode::Ephemeral,
                },
            ];
            match session.multi(&ops).await {
                Ok(MultiOutcome::Committed(_)) => break,
                Ok(MultiOutcome::Refused { index: 0, .. }) => {
                    // The write node is gone: the write lock was lost.
                    pending.path = None;
                    return Err(Error::SessionLost);
                }
                // The name is ours alone: an earlier attempt whose reply was lost did create it.
                Ok(MultiOutcome::Refused {
                    index: 1,
                    error:
                        Error::ZooKeeper {
                            code: ZkErrorCode::NodeExists,
                            ..
                        },
                }) => break,
                Ok(MultiOutcome::Refused { error, .. }) => {
                    pending.path = None;
                    return Err(error);
                }
                // The reply was lost with the connection: look whether it applied.
                Err(err) if err.is_retryable() => match session.get(&path).await {
                    Ok(Some(_)) => break,
                    Ok(None) => {}
                    Err(err) if err.is_retryable() => {}
                    Err(err) => return Err(err),
                },
                Err(err) => return Err(err),
            }
        }
        pending.path = None;
        let node = Node {
            path,
            name,
            // The downgraded hold continues the write hold: same token, same session.
            czxid: write.node.czxid,
            generation: write.node.generation,
            own_watch: Default::default(),
        };
        let (holding, id) = self.install(owner, RwMode::Read, node);
        Ok(ReadGuard::new(Hold::new(holding, id)))
    }

    /// Registers a new acquisition for reentry. An owner's valid registration is kept (a second
    /// acquisition made concurrently by the same task stays a single, unregistered hold).
    fn install(&self, owner: Owner, mode: RwMode, node: Node) -> (Arc<RwHolding>, u64) {
        let holding = Arc::new(RwHolding {
            lock: self.clone(),
            node,
            owner,
            mode,
        });
        if let Ok(mut holds) = self.inner.local.holds.lock() {
            let keep = |h: &Held| h.holding.owner == owner && h.is_valid();
            match mode {
                RwMode::Write if !holds.writer.as_ref().is_some_and(keep) => {
                    holds.writer = Some(Held::new(holding.clone()));
                }
                RwMode::Read if !holds.readers.get(&owner).is_some_and(keep) => {
                    holds.readers.insert(owner, Held::new(holding.clone()));
                }
                _ => {}
            }
        }
        (holding, 0)
    }

    pub(crate) fn is_lost(&self, node: &Node) -> bool {
        !self.inner.session.is_valid(node.generation)
    }

    /// Removes hold `id` of `holding`; when it was the last, queues the node's delete on the
    /// connection at once (so it goes out even if the returned [`Release`] is never awaited).
    /// A lost holding reports [`Error::SessionLost`] and sends nothing.
    fn release_hold(&self, holding: &Arc<RwHolding>, id: u64) -> Release {
        // A holding that is not registered (see `install`) has exactly one hold: this one.
        let mut last = true;
        if let Ok(mut holds) = self.inner.local.holds.lock() {
            let holds = &mut *holds;
            let slot = match holding.mode {
                RwMode::Write => holds.writer.as_mut(),
                RwMode::Read => holds.readers.get_mut(&holding.owner),
            };
            if let Some(held) = slot.filter(|h| Arc::ptr_eq(&h.holding, holding)) {
                // Usually the innermost hold goes first.
                if held.ids.last() == Some(&id) {
                    held.ids.pop();
                } else {
                    held.ids.retain(|&x| x != id);
                }
                last = held.ids.is_empty();
                if last {
                    match holding.mode {
                        RwMode::Write => holds.writer = None,
                        RwMode::Read => {
                            holds.readers.remove(&holding.owner);
                        }
                    }
                }
            }
        }
        if self.is_lost(&holding.node) {
            return Release::Done(Err(Error::SessionLost));
        }
        if !last {
            return Release::Done(Ok(()));
        }
        Release::Deleting {
            first: Box::pin(self.inner.session.delete_now(&holding.node.path, None)),
            holding: holding.clone(),
        }
    }

    /// The holds of `mode` the caller has: those of the acquisition whose scope it runs in, else
    /// those of its task's.
    fn holds_of(&self, mode: RwMode) -> usize {
        let owner = Owner::current();
        let scoped = scope::rw_holdings(&self.inner.local);
        let Ok(holds) = self.inner.local.holds.lock() else {
            return 0;
        };
        let held = match mode {
            RwMode::Write => holds
                .writer
                .as_ref()
                .filter(|w| w.holding.owner == owner || w.holding.in_scope(&scoped)),
            RwMode::Read => holds
                .readers
                .values()
                .find(|h| h.holding.in_scope(&scoped))
                .or_else(|| holds.readers.get(&owner)),
        };
        held.filter(|h| h.is_valid()).map_or(0, |h| h.ids.len())
    }

    /// How many read holds the caller has: of the read hold whose scope it runs in, else of its
    /// task's (0 if none; a lost hold counts as none).
    pub fn read_hold_count(&self) -> usize {
        self.holds_of(RwMode::Read)
    }

    /// How many write holds the caller has: its task's, or those of the write hold whose scope it
    /// runs in (0 if none; a lost hold counts as none).
    pub fn write_hold_count(&self) -> usize {
        self.holds_of(RwMode::Write)
    }

    /// Whether the current task holds the write lock.
    pub fn is_write_locked_by_current_task(&self) -> bool {
        self.write_hold_count() > 0
    }

    /// Whether the current task holds the read lock.
    pub fn is_read_locked_by_current_task(&self) -> bool {
        self.read_hold_count() > 0
    }

    /// How many contenders, holders included, are in the queue now (one request). A write holder
    /// that took the read lock counts twice.
    ///
    /// # Errors
    /// A ZooKeeper or session error.
    ///
    /// # Cancel safety
    /// Cancel safe (read only).
    pub async fn queue_len(&self) -> Result<usize> {
        Ok(self.entries().await?.len())
    }

    /// Whether anyone, anywhere, holds the lock now, on either side (one request).
    ///
    /// # Errors
    /// A ZooKeeper or session error.
    ///
    /// # Cancel safety
    /// Cancel safe (read only).
    pub async fn is_locked(&self) -> Result<bool> {
        // Whoever is first in the queue holds the lock.
        Ok(!self.entries().await?.is_empty())
    }

    /// Whether a writer, anywhere, holds the lock now (one request).
    ///
    /// # Errors
    /// A ZooKeeper or session error.
    ///
    /// # Cancel safety
    /// Cancel safe (read only).
    pub async fn is_write_locked(&self) -> Result<bool> {
        let entries = self.entries().await?;
        Ok(holding_entries(&entries)
            .iter()
            .any(|e| RwMode::of(e) == RwMode::Write))
    }

    /// Who holds the lock now, and on which side, as recorded in their nodes (two requests: a
    /// listing, then one multi-read of the holders' nodes); empty if free.
    ///
    /// # Errors
    /// A ZooKeeper or session error.
    ///
    /// # Cancel safety
    /// Cancel safe (read only).
    pub async fn holders(&self) -> Result<Vec<(RwMode, HolderInfo)>> {
        let entries = self.entries().await?;
        let holding = holding_entries(&entries);
        if holding.is_empty() {
            return Ok(Vec::new());
        }
        let paths: Vec<String> = holding
            .iter()
            .map(|e| format!("{}/{}", self.inner.path, e.name))
            .collect();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let nodes = self.inner.session.multi_read(&refs).await?;
        Ok(holding
            .iter()
            .zip(nodes)
            .filter_map(|(entry, node)| {
                // A node gone since the listing was released meanwhile.
                let (data, _) = node?;
                Some((RwMode::of(entry), HolderInfo::from_bytes(&data)?))
            })
            .collect())
    }

    async fn entries(&self) -> Result<Vec<Entry>> {
        match self.inner.session.children(self.inner.path.as_str()).await {
            Ok(children) => recipe::queue(&self.inner.session, self.inner.path.as_str(), &children).await,
            Err(Error::ZooKeeper {
                code: ZkErrorCode::NoNode,
                ..
            }) => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    }
}

/// A node whose create may have applied, deleted (in the background, in order behind the
/// create) unless defused by clearing `path`.
struct Orphan<'a> {
    session: &'a Session,
    path: Option<String>,
}

impl Drop for Orphan<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let generation = self.session.generation();
            super::recipe::remove_in_background(self.session, &path, generation, "abandoned read node");
        }
    }
}

/// A released hold: done at once, or the last hold's delete under way.
enum Release {
    Done(Result<()>),
    Deleting {
        first: Pin<Box<dyn Future<Output = Result<()>> + Send>>,
        holding: Arc<RwHolding>,
    },
}

impl Release {
    /// Waits for the delete's outcome.
    async fn finish(self) -> Result<()> {
        let (first, holding) = match self {
            Release::Done(result) => return result,
            Release::Deleting { first, holding } => (first, holding),
        };
        let (lock, node) = (&holding.lock, &holding.node);
        let mut outcome = first.await;
        // A delete whose reply was lost with the connection may or may not have applied: ask
        // again until the node is certainly gone (NoNode then means our delete won).
        let mut retried = false;
        loop {
            match outcome {
                Ok(()) => return Ok(()),
                Err(Error::ZooKeeper {
                    code: ZkErrorCode::NoNode,
                    ..
                }) if retried => return Ok(()),
                // Gone before our delete: the session expired meanwhile, or an operator removed it.
                Err(Error::ZooKeeper {
                    code: ZkErrorCode::NoNode,
                    ..
                }) => return Err(Error::SessionLost),
                Err(err) if err.is_retryable() && !lock.is_lost(node) => {
                    retried = true;
                    outcome = lock.inner.session.delete(&node.path, None).await;
                }
                Err(err) if err.is_retryable() => return Err(Error::SessionLost),
                Err(err) => return Err(err),
            }
        }
    }
}

/// One hold of a [`DistributedRwLock`], on either side: what [`ReadGuard`] and [`WriteGuard`]
/// are made of. Dropping it releases the hold in the background.
#[derive(Debug)]
pub(crate) struct Hold {
    holding: Arc<RwHolding>,
    id: u64,
    done: bool,
}

impl Hold {
    fn new(holding: Arc<RwHolding>, id: u64) -> Hold {
        Hold {
            holding,
            id,
            done: false,
        }
    }

    pub(crate) fn lock(&self) -> &DistributedRwLock {
        &self.holding.lock
    }

    pub(crate) fn fencing_token(&self) -> i64 {
        self.holding.node.czxid
    }

    /// Runs `body` in this hold's scope (see [`super::reentry`]).
    pub(crate) fn scope<F: Future>(&self, body: F) -> impl Future<Output = F::Output> {
        scope::run(scope::Held::Rw(self.holding.clone()), body)
    }

    /// This hold's scope, to be entered with [`scope::run`].
    pub(crate) fn scope_of(&self) -> scope::Held {
        scope::Held::Rw(self.holding.clone())
    }

    pub(crate) fn node_path(&self) -> &str {
        &self.holding.node.path
    }

    pub(crate) fn state(&self) -> HoldState {
        if !self
            .holding
            .lock
            .inner
            .session
            .holds(self.holding.node.generation)
        {
            return HoldState::Lost;
        }
        match self.holding.lock.inner.session.state() {
            SessionState::Connected => HoldState::Held,
            SessionState::Suspended => HoldState::Suspended,
            SessionState::Lost | SessionState::Closed => HoldState::Lost,
        }
    }

    pub(crate) async fn lost(&self) {
        let (lock, node) = (&self.holding.lock, &self.holding.node);
        let session = &lock.inner.session;
        let generation = node.generation;
        let mut states = session.states();
        let session_lost = states.rx.wait_for(|s| {
            s.generation != generation || matches!(s.state, SessionState::Lost | SessionState::Closed)
        });
        let node_gone = async {
            loop {
                match session.exists_and_watch(&node.path).await {
                    Ok((None, _)) => return,
                    Ok((Some(_), watch)) => match watch.changed().await {
                        NodeEvent::Deleted => return,
                        NodeEvent::SessionEnded if lock.is_lost(node) => return,
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

    pub(crate) fn fenced(&self) -> Fenced<'_> {
        let lock = &self.holding.lock;
        Fenced::new(
            &lock.inner.session,
            self.holding.node.generation,
            &self.holding.node.path,
            &lock.inner.path,
        )
    }

    pub(crate) fn release(mut self) -> impl Future<Output = Result<()>> + Send + 'static {
        self.done = true;
        let release = self.holding.lock.release_hold(&self.holding, self.id);
        async move {
            match release {
                Release::Done(result) => result,
                // Boxed: the retry loop is large, and the reentrant path should not carry it.
                deleting => Box::pin(deleting.finish()).await,
            }
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        match self.holding.lock.release_hold(&self.holding, self.id) {
            Release::Done(Ok(())) => {}
            Release::Done(Err(err)) => tracing::debug!(%err, "dropped a guard of a lost read-write lock"),
            deleting => {
                // The delete is on the wire already; only its outcome is awaited here.
                self.holding.lock.inner.session.runtime().spawn(async move {
                    if let Err(err) = deleting.finish().await {
                        tracing::debug!(%err, "background read-write lock release reported an error");
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str, seq: i32, marker: char) -> Entry {
        Entry {
            name: format!("_c_{}-{kind}-{seq:010}", marker.to_string().repeat(32)),
            kind: kind.to_owned(),
            seq,
            place: i64::from(seq),
        }
    }

    /// A node of an exhausted directory: every suffix `2147483647`, placed by zxid `place`.
    fn exhausted(kind: &str, place: i64, marker: char) -> Entry {
        Entry {
            place,
            ..entry(kind, i32::MAX, marker)
        }
    }

    /// The queue of a directory that is not exhausted (by number, no request).
    fn queue(names: &[String]) -> Vec<Entry> {
        let mut entries = recipe::entries(names);
        order::sort(&mut entries);
        entries
    }

    fn holders(entries: &[Entry]) -> Vec<(String, i32)> {
        holding_entries(entries)
            .into_iter()
            .map(|e| (e.kind.clone(), e.seq))
            .collect()
    }

    #[test]
    fn readers_wait_for_the_last_writer_ahead_writers_for_their_predecessor() {
        let q = [
            entry(READ, 1, 'a'),
            entry(READ, 2, 'b'),
            entry(WRITE, 3, 'c'),
            entry(READ, 4, 'd'),
            entry(WRITE, 5, 'e'),
        ];
        assert_eq!(read_blocker(&q[1], &q[..1]), None);
        assert_eq!(write_blocker(&q[2], &q[..2]), Some(1));
        assert_eq!(read_blocker(&q[3], &q[..3]), Some(2));
        assert_eq!(write_blocker(&q[4], &q[..4]), Some(3));
        assert_eq!(write_blocker(&q[0], &[]), None);
        // Any kind that is not a reader blocks readers (an exclusive lock's node, say).
        assert_eq!(read_blocker(&q[3], &[entry("lock", 1, 'f')]), Some(0));
        assert_eq!(holders(&q), [(READ.to_owned(), 1), (READ.to_owned(), 2)]);
    }

    #[test]
    fn a_downgrade_node_shares_its_write_node_place() {
        // Write holder 3 with its read node (same sequence number), a reader and a writer behind.
        let mut q = vec![
            entry(WRITE, 3, 'c'),
            entry(READ, 3, 'a'),
            entry(READ, 4, 'd'),
            entry(WRITE, 5, 'e'),
        ];
        q = queue(&q.iter().map(|e| e.name.clone()).collect::<Vec<_>>());
        assert_eq!(
            holders(&q),
            [(READ.to_owned(), 3), (WRITE.to_owned(), 3)],
            "both nodes of the write holder hold; nobody else"
        );
        // The write node goes: the reader behind it joins the downgraded reader, the writer waits.
        q.retain(|e| !(e.kind == WRITE && e.seq == 3));
        assert_eq!(holders(&q), [(READ.to_owned(), 3), (READ.to_owned(), 4)]);
        let me = q.len() - 1;
        assert_eq!(write_blocker(&q[me], &q[..me]), Some(me - 1));
    }

    #[test]
    fn in_an_exhausted_directory_equal_numbers_are_not_one_contender() {
        // Every node numbered 2147483647: a write holder (zxid 10) with its downgrade node (its
        // place: 10, created later), a writer (20) and a reader (30) that queued behind it.
        let mut q = vec![
            exhausted(READ, 30, 'a'),
            exhausted(WRITE, 20, 'b'),
            exhausted(READ, 10, 'c'),
            exhausted(WRITE, 10, 'd'),
        ];
        order::sort(&mut q);
        let places = |q: &[Entry]| -> Vec<(String, i64)> {
            holding_entries(q)
                .into_iter()
                .map(|e| (e.kind.clone(), e.place))
                .collect()
        };
        assert_eq!(
            places(&q),
            [(READ.to_owned(), 10), (WRITE.to_owned(), 10)],
            "the write holder's two nodes hold; the writer and the reader behind do not"
        );
        q.retain(|e| !(e.kind == WRITE && e.place == 10)); // the write node goes
        assert_eq!(places(&q), [(READ.to_owned(), 10)]);
        let writer = q.iter().position(|e| e.kind == WRITE).unwrap_or(0);
        assert_eq!(write_blocker(&q[writer], &q[..writer]), Some(0));
        q.remove(0); // and the downgraded read hold
        assert_eq!(places(&q), [(WRITE.to_owned(), 20)]);
    }

    #[test]
    fn a_downgrade_node_keeps_its_write_node_number_also_a_negative_one() {
        for seq in [7, -7, i32::MAX] {
            let write = Node {
                path: String::new(),
                name: entry(WRITE, seq, 'c').name,
                czxid: 1,
                generation: 0,
                own_watch: Default::default(),
            };
            let read = recipe::sibling_name(&write, READ).and_then(|n| recipe::parse(&n));
            assert_eq!(
                read.map(|e| (e.kind, e.seq, e.place)),
                Some((READ.to_owned(), seq, i64::from(seq)))
            );
        }
    }

    /// The definition `holding_entries` had (quadratic): each entry against the entries ahead
    /// of it with another place, through the blockers.
    fn holding_by_definition(entries: &[Entry]) -> Vec<&Entry> {
        entries
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                let ahead: Vec<Entry> = entries[..*i]
                    .iter()
                    .filter(|a| a.place != e.place)
                    .cloned()
                    .collect();
                RwMode::of(e).blocker()(e, &ahead).is_none()
            })
            .map(|(_, e)| e)
            .collect()
    }

    proptest::proptest! {
        /// Same holders as the definition, for any queue (any order, repeated places, other
        /// kinds counting as writers).
        #[test]
        fn holding_entries_agrees_with_its_definition(
            q in proptest::collection::vec((0usize..3, -3i64..4), 0..24)
        ) {
            let kinds = [READ, WRITE, "lock"];
            let entries: Vec<Entry> = q
                .iter()
                .enumerate()
                .map(|(i, &(k, place))| Entry { name: format!("{i}"), kind: kinds[k].to_owned(), seq: i32::MAX, place })
                .collect();
            proptest::prop_assert_eq!(holding_entries(&entries), holding_by_definition(&entries));
        }
    }

    #[test]
    fn holding_entries_is_one_pass_over_a_long_queue() {
        // 200 000 readers then a writer: the quadratic definition would clone ~2·10^10 entries.
        let mut q: Vec<Entry> = (0..200_000).map(|i| entry(READ, i, 'a')).collect();
        q.push(entry(WRITE, 200_000, 'b'));
        assert_eq!(holding_entries(&q).len(), 200_000);
    }
}
