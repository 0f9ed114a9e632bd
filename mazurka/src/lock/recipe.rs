//! The queue at the heart of ZooKeeper's lock recipes, shared by the exclusive lock and the
//! read-write lock.
//!
//! Each contender creates an ephemeral-sequential node `<dir>/<marker>-<kind>-<seq>` under the lock
//! directory (a container node, reaped by the server once empty). It owns the lock when no node
//! ahead of it blocks it; otherwise it watches the nodes that block it when they are at most
//! [`WATCH_AHEAD`] (taking its turn on the last one's deletion, without listing again), else only
//! the one it waits for (no herd effect however long the queue).
//!
//! The marker (`_c_` + 32 random hex digits, new per attempt) is Curator's "protection": when a
//! create's reply is lost with the connection, the contender finds its node again by the marker
//! instead of leaving an orphan. Children whose names do not parse are ignored, the same way by
//! every contender. The queue is in sequence order, or creation order once the directory's
//! sequence counter is exhausted (see [`order`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{order, sequence};
use crate::error::{Error, Result, ZkErrorCode};
use crate::session::{CreateMode, NodeEvent, Session, SessionState};

/// One parsed child of a lock directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) kind: String,
    /// The server's sequence number (see [`sequence`]).
    pub(crate) seq: i32,
    /// Its place in the queue, smallest first: the sequence number, or in an exhausted directory
    /// the creation zxid (see [`order`]). Equal only for a write node and its downgrade node,
    /// which take one place.
    pub(crate) place: i64,
}

const MARKER_PREFIX: &str = "_c_";
const MARKER_LEN: usize = MARKER_PREFIX.len() + 32;

/// Splits `<marker>-<kind>-<suffix>` (the kind has no `-`; a negative suffix starts with one).
fn split(name: &str) -> Option<(&str, &str)> {
    let hex = name.get(..MARKER_LEN)?.strip_prefix(MARKER_PREFIX)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (kind, suffix) = name.get(MARKER_LEN..)?.strip_prefix('-')?.split_once('-')?;
    (!kind.is_empty()).then_some((kind, suffix))
}

/// Parses `<marker>-<kind>-<seq>`, `seq` exactly as ZooKeeper prints it (negative ones
/// included); `None` for anything else.
pub(crate) fn parse(name: &str) -> Option<Entry> {
    let (kind, suffix) = split(name)?;
    let seq = sequence::parse(suffix)?;
    Some(Entry {
        name: name.to_owned(),
        kind: kind.to_owned(),
        seq,
        place: i64::from(seq),
    })
}

/// The valid children, in no particular order. Junk costs a failed parse, no allocation.
pub(crate) fn entries(children: &[String]) -> Vec<Entry> {
    children.iter().filter_map(|c| parse(c)).collect()
}

/// The valid children of `dir` in queue order, oldest first, the same for every contender: by
/// sequence number, or by creation zxid once the directory's counter is exhausted — which costs
/// a `multiRead` (see [`order`]). O(n log n) in the children.
///
/// # Errors
/// A session or ZooKeeper error of that `multiRead`.
pub(crate) async fn queue(session: &Session, dir: &str, children: &[String]) -> Result<Vec<Entry>> {
    order::arrange(session, dir, entries(children)).await
}

/// A fresh node name of `kind` that takes `of`'s place in the queue: its suffix reused verbatim
/// and a new marker. Created as a plain ephemeral node, it sits right next to `of`, ahead of
/// every contender that came later — by number; by zxid, its data must say so too
/// ([`order::sibling_data`]).
pub(crate) fn sibling_name(of: &Node, kind: &str) -> Option<String> {
    let (_, suffix) = split(&of.name)?;
    sequence::parse(suffix)?;
    Some(format!(
        "{MARKER_PREFIX}{:032x}-{kind}-{suffix}",
        rand::random::<u128>()
    ))
}

/// Decides, from the entries ahead of a contender, which one it must wait for (`None`: its turn).
/// Must be monotone: if it finds nothing blocking in a list, it finds nothing in any sub-list.
pub(crate) type Blocker = fn(me: &Entry, ahead: &[Entry]) -> Option<usize>;

/// A contender's node once it exists.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) path: String,
    pub(crate) name: String,
    /// The node's creation zxid: the fencing token.
    pub(crate) czxid: i64,
    /// The session generation that created it.
    pub(crate) generation: u64,
    /// A watch on this node set while it waited for its turn, if any.
    pub(crate) own_watch: OwnWatch,
}

/// The pending event of a watch on a contender's own node.
pub(crate) type OwnEvent = Pin<Box<dyn Future<Output = NodeEvent> + Send>>;

/// A watch on a contender's own node, set while it waits for its turn (its deletion by someone
/// else must not go unnoticed) and kept for the holder: [`LockGuard::lost`](super::LockGuard::lost)
/// takes it instead of asking again. Kept until the node's deletion fires it, it costs no
/// watch-removal request either (dropping an unfired watch sends one).
#[derive(Clone, Default)]
pub(crate) struct OwnWatch(Arc<Mutex<Option<OwnEvent>>>);

impl OwnWatch {
    fn arm(&self, event: OwnEvent) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(event);
    }

    /// The armed watch, once.
    pub(crate) fn take(&self) -> Option<OwnEvent> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl std::fmt::Debug for OwnWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnWatch")
    }
}

#[derive(Debug)]
enum Progress {
    /// No create request sent yet.
    Idle,
    /// A create was sent on ZooKeeper session generation `.0` whose outcome we do not know (in
    /// flight, or its reply was lost).
    Sent(u64),
    /// Our node exists.
    Created(Node),
    /// Handed over (to a guard) or cleaned up: nothing to do on drop.
    Done,
}

/// A fresh contender marker.
fn new_marker() -> String {
    format!("{MARKER_PREFIX}{:032x}", rand::random::<u128>())
}

/// How many times a contender makes the lock directory when its create finds it missing.
const DIR_ATTEMPTS: usize = 5;

/// How many blocking nodes a waiter watches at most (see `Enqueued::wait_turn`).
const WATCH_AHEAD: usize = 4;

/// Every entry of `ahead` that blocks `me` — what must go before it is `me`'s turn — if there
/// are at most `limit`. Taking blockers out one by one until none is left works for any
/// monotone `Blocker`.
fn blocking_set(blocker: Blocker, me: &Entry, ahead: &[Entry], limit: usize) -> Option<Vec<Entry>> {
    let mut rest = ahead.to_vec();
    let mut set = Vec::new();
    while let Some(i) = blocker(me, &rest) {
        if set.len() == limit {
            return None;
        }
        set.push(rest.remove(i));
    }
    Some(set)
}

/// How a watch on the nodes ahead ended.
#[derive(Debug)]
enum Waited {
    /// Every watched node was deleted.
    AllGone,
    /// Something else changed: list the queue again.
    Look,
    TimedOut,
}

/// Outcome of waiting for a turn.
#[derive(Debug)]
pub(crate) enum Turn {
    Acquired,
    TimedOut,
}

/// A place in a lock's queue. Dropping it before [`Enqueued::into_node`] removes the node (in the
/// background), so a cancelled `lock()` future never leaves a contender behind.
#[derive(Debug)]
pub(crate) struct Enqueued {
    session: Session,
    dir: String,
    kind: &'static str,
    marker: String,
    progress: Progress,
    /// The directory's children as listed right after our create (pipelined with it).
    listed: Option<Vec<String>>,
    /// List again when the node waited for goes, instead of taking the turn from the old listing
    /// (see [`Enqueued::relist_on_hand_over`]).
    relist: bool,
}

impl Enqueued {
    pub(crate) fn new(session: &Session, dir: &str, kind: &'static str) -> Enqueued {
        Enqueued {
            session: session.clone(),
            dir: dir.to_owned(),
            kind,
            marker: new_marker(),
            progress: Progress::Idle,
            listed: None,
            relist: false,
        }
    }

    /// Never takes the turn from an old listing when the node waited for goes: lists again.
    /// Needed where a node may appear *ahead* of waiting contenders (the read-write lock's
    /// downgrade node takes the sequence number of its write node), which breaks the "nodes ahead
    /// only go" reasoning of the shortcut for the contenders such a node can block.
    pub(crate) fn relist_on_hand_over(mut self) -> Enqueued {
        self.relist = true;
        self
    }

    pub(crate) fn node(&self) -> Option<&Node> {
        match &self.progress {
            Progress::Created(node) => Some(node),
            _ => None,
        }
    }

    /// Creates the contender node (and the container directory if missing), recovering from a
    /// lost reply through the marker.
    ///
    /// The directory listing is sent right behind the create, without waiting for its reply: the
    /// server runs a session's requests in order, so the listing includes our node, and the
    /// uncontended case costs one round trip less.
    pub(crate) async fn create(&mut self, data: &[u8]) -> Result<()> {
        let mut dirs_made = 0;
        loop {
            let prefix = format!("{}/{}-{}-", self.dir, self.marker, self.kind);
            self.progress = Progress::Sent(self.session.generation());
            // One session, create first: a listing that ran first (or on a replacement session)
            // would miss our node and read as "deleted by someone else".
            let (generation, created, listed) = match self
                .session
                .create_then_list(&prefix, data, CreateMode::EphemeralSequential, &self.dir)
                .await
            {
                Ok(sent) => sent,
                Err(err) => {
                    self.progress = Progress::Idle; // nothing was sent
                    return Err(err);
                }
            };
            self.progress = Progress::Sent(generation);
            match created {
                Ok(created) => {
                    self.listed = listed.ok();
                    let name = created.path.rsplit('/').next().unwrap_or_default().to_owned();
                    self.progress = Progress::Created(Node {
                        path: created.path,
                        name,
                        czxid: created.stat.czxid,
                        // The session that ran the create, not the one current before it: a
                        // replacement in between would otherwise tag a live node as lost.
                        generation: created.generation,
                        own_watch: OwnWatch::default(),
                    });
                    return Ok(());
                }
                // The directory is missing — or was a container the server reaped between our
                // `ensure_path` and the create, when the last contender left: make it again.
                Err(Error::ZooKeeper {
                    code: ZkErrorCode::NoNode,
                    ..
                }) if dirs_made < DIR_ATTEMPTS => {
                    self.progress = Progress::Idle;
                    self.session.ensure_path(&self.dir, CreateMode::Container).await?;
                    dirs_made += 1;
                }
                Err(err) if err.is_retryable() => {
                    if let Some(node) = self.find_by_marker(generation).await? {
                        self.progress = Progress::Created(node);
                        return Ok(());
                    }
                    if self.lost(generation) {
                        // A node that create made (if any) may outlive this attempt a little
                        // (until the server ends that session): a new marker never adopts it.
                        self.marker = new_marker();
                    }
                }
                Err(err) => {
                    self.progress = Progress::Idle;
                    return Err(err);
                }
            }
        }
    }

    /// After a create whose reply was lost: our node, if the create was applied.
    ///
    /// A `sync` goes first: on an ensemble the create may still be on its way to the leader
    /// through the server we lost, and a listing from another server could miss it — leaving a
    /// node of ours ahead of us that nobody would ever delete. Once the session has moved to the
    /// new server, the leader refuses what the old one still forwards, and the sync makes the new
    /// server catch up with everything ordered before it.
    async fn find_by_marker(&self, generation: u64) -> Result<Option<Node>> {
        loop {
            if self.lost(generation) {
                // Whatever the create made goes with that session: create again on the next one.
                return Ok(None);
            }
            let listed = match self.session.sync(&self.dir).await {
                Ok(()) => self.session.children(&self.dir).await,
                Err(err) => Err(err),
            };
            match listed {
                Ok(children) => {
                    let Some(name) = children.into_iter().find(|c| c.starts_with(&self.marker)) else {
                        return Ok(None);
                    };
                    let path = format!("{}/{name}", self.dir);
                    return match self.session.get(&path).await? {
                        Some((_, stat)) => Ok(Some(Node {
                            path,
                            name,
                            czxid: stat.czxid,
                            generation,
                            own_watch: OwnWatch::default(),
                        })),
                        None => Ok(None),
                    };
                }
                Err(Error::ZooKeeper {
                    code: ZkErrorCode::NoNode,
                    ..
                }) => return Ok(None),
                Err(err) if err.is_retryable() => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Waits until `blocker` finds nothing ahead that blocks us, or the deadline passes.
    ///
    /// # Errors
    /// [`Error::SessionLost`] if the session that created the node is lost while waiting;
    /// [`Error::LockNodeDeleted`] if someone else deleted the node (seen by the watch on it, or
    /// by a listing).
    pub(crate) async fn wait_turn(&mut self, blocker: Blocker, deadline: Option<Instant>) -> Result<Turn> {
        loop {
            let Some(node) = self.node().cloned() else {
                return Err(Error::SessionLost);
            };
            if self.lost(node.generation) {
                return Err(Error::SessionLost);
            }
            let listed = match self.listed.take() {
                Some(children) => Ok(children),
                None => self.session.children(&self.dir).await,
            };
            let children = match listed {
                Ok(children) => children,
                Err(err) if err.is_retryable() => continue,
                Err(Error::ZooKeeper {
                    code: ZkErrorCode::NoNode,
                    ..
                }) => Vec::new(),
                Err(err) => return Err(err),
            };
            let entries = match queue(&self.session, &self.dir, &children).await {
                Ok(entries) => entries,
                Err(err) if err.is_retryable() => continue,
                Err(err) => return Err(err),
            };
            let Some(me) = entries.iter().position(|e| e.name == node.name) else {
                // Our node is gone: the session expired, or someone deleted it.
                if self.lost(node.generation) {
                    return Err(Error::SessionLost);
                }
                // Deleted by someone else: our place in the queue is gone, and so is any promise.
                tracing::warn!(node = %node.path, "lock node was deleted by someone else while waiting");
                self.progress = Progress::Idle;
                return Err(Error::LockNodeDeleted { path: node.path });
            };
            let Some(blocking) = blocker(&entries[me], &entries[..me]) else {
                return Ok(Turn::Acquired);
            };
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Turn::TimedOut);
            }
            // Nodes ahead of us can only go, never come (places grow, see `order`): once every
            // node that blocks us now is gone, the turn is ours. Watching them all (when they
            // are few) takes the turn on the last one's deletion event, without listing again
            // — a round trip less on every hand-over. Beyond a few, only the node directly
            // ahead is watched (no herd of events) and the queue is listed again after it goes.
            let all = match self.relist {
                false => blocking_set(blocker, &entries[me], &entries[..me], WATCH_AHEAD),
                true => None,
            };
            let complete = all.is_some();
            let watched = all.unwrap_or_else(|| vec![entries[blocking].clone()]);
            match self.watch_until_gone(&watched, node.generation, deadline).await? {
                Waited::AllGone if complete => {
                    if self.still_mine(&node).await? {
                        return Ok(Turn::Acquired);
                    }
                }
                Waited::AllGone | Waited::Look => {}
                Waited::TimedOut => return Ok(Turn::TimedOut),
            }
        }
    }

    /// After the last node ahead went, without listing again: whether the turn is really ours.
    ///
    /// The deletion events may have waited in the socket while this process was paused (or its
    /// runtime blocked) past the session's expiry — the server deleted our node too, and may
    /// have handed the lock to someone else. So the turn is taken only on the server's word, on
    /// the node's own session and after those events, that our node still exists. The same
    /// request leaves the watch on it that the holder's [`lost`](super::LockGuard::lost) needs.
    /// `false`: list again (which says whether the node was deleted or the session lost).
    async fn still_mine(&self, node: &Node) -> Result<bool> {
        match self
            .session
            .exists_and_watch_on(&node.path, node.generation)
            .await
        {
            Ok((Some(_), watch)) => {
                node.own_watch.arm(Box::pin(watch.changed()));
                Ok(true)
            }
            Ok((None, _)) => Ok(false),
            Err(Error::SessionLost) => Err(Error::SessionLost),
            Err(err) if err.is_retryable() => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Watches `nodes` until every one is deleted (`AllGone`), something else happens that
    /// needs a fresh listing (`Look`), the session is lost, or the deadline passes.
    async fn watch_until_gone(
        &self,
        nodes: &[Entry],
        generation: u64,
        deadline: Option<Instant>,
    ) -> Result<Waited> {
        // The watches are set together: one round trip for all.
        let paths: Vec<String> = nodes.iter().map(|e| format!("{}/{}", self.dir, e.name)).collect();
        let set =
            futures_util::future::join_all(paths.iter().map(|p| self.session.exists_and_watch(p))).await;
        let mut pending = futures_util::stream::FuturesUnordered::new();
        for watch in set {
            match watch {
                Ok((Some(_), watch)) => pending.push(watch.changed()),
                Ok((None, _)) => {}
                Err(err) if err.is_retryable() => return Ok(Waited::Look),
                Err(err) => return Err(err),
            }
        }
        let mut states = self.session.states();
        let lost = states.rx.wait_for(|s| {
            s.generation != generation || matches!(s.state, SessionState::Lost | SessionState::Closed)
        });
        tokio::pin!(lost);
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        loop {
            // The watches may have been set on a replacement session (after ours expired, its
            // node went with it): gone nodes ahead then prove nothing.
            if self.lost(generation) {
                return Err(Error::SessionLost);
            }
            if pending.is_empty() {
                return Ok(Waited::AllGone);
            }
            tokio::select! {
                // Loss first: a deletion that arrives with it must not hand out the lock.
                biased;
                _ = &mut lost => return Err(Error::SessionLost),
                Some(event) = futures_util::StreamExt::next(&mut pending) => match event {
                    NodeEvent::Deleted => {}
                    NodeEvent::SessionEnded if self.lost(generation) => return Err(Error::SessionLost),
                    _ => return Ok(Waited::Look),
                },
                () = &mut sleep => return Ok(Waited::TimedOut),
            }
        }
    }

    fn lost(&self, generation: u64) -> bool {
        !self.session.is_valid(generation)
    }

    /// Hands the node over to a guard: dropping `self` no longer deletes it.
    pub(crate) fn into_node(mut self) -> Option<Node> {
        match std::mem::replace(&mut self.progress, Progress::Done) {
            Progress::Created(node) => Some(node),
            _ => None,
        }
    }

    /// Creates the node and waits for the turn; with a deadline, gives up (`TimedOut`) at most
    /// [`UNREACHABLE_GRACE`] after it even while the server is unreachable (requests then queue
    /// until the session times out, far longer than a `try_lock_for` caller agreed to wait).
    pub(crate) async fn create_and_wait(
        &mut self,
        data: &[u8],
        blocker: Blocker,
        deadline: Option<Instant>,
    ) -> Result<Turn> {
        let work = async {
            self.create(data).await?;
            self.wait_turn(blocker, deadline).await
        };
        match deadline {
            None => work.await,
            Some(d) => tokio::time::timeout_at(d + UNREACHABLE_GRACE, work)
                .await
                .unwrap_or(Ok(Turn::TimedOut)),
        }
    }

    /// Leaves the queue and waits until the node is gone (for `try_lock*`, which promise to leave
    /// no node behind when they return) — at most [`UNREACHABLE_GRACE`]: if the server cannot be
    /// reached, the removal goes on in the background until it can.
    pub(crate) async fn leave(mut self) -> Result<()> {
        let session = self.session.clone();
        let removal = match std::mem::replace(&mut self.progress, Progress::Done) {
            Progress::Created(node) => {
                let first = session.delete_now(&node.path, None);
                let owned = session.clone();
                session.runtime().spawn(async move {
                    settle_delete(&owned, &node.path, node.generation, first.await).await
                })
            }
            Progress::Sent(generation) => {
                let (owned, dir, marker) = (session.clone(), self.dir.clone(), self.marker.clone());
                session
                    .runtime()
                    .spawn(async move { sweep(&owned, &dir, &marker, generation).await })
            }
            Progress::Idle | Progress::Done => return Ok(()),
        };
        match tokio::time::timeout(UNREACHABLE_GRACE, removal).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => Ok(()), // still running in the background
        }
    }
}

/// How long past a `try_lock_for` deadline a contender may take when the server is unreachable.
pub(crate) const UNREACHABLE_GRACE: Duration = Duration::from_secs(5);

/// Deletes every node of `dir` carrying `marker` (a create sent on ZooKeeper session
/// `generation` whose outcome we never learnt), retrying through connection hiccups — until that
/// session is lost, which takes its ephemeral nodes with it.
async fn sweep(session: &Session, dir: &str, marker: &str, generation: u64) -> Result<()> {
    for _ in 0..CLEANUP_ROUNDS {
        // Lost, and no newer session yet on which the create could have gone instead.
        if !session.is_valid(generation) && session.generation() == generation {
            return Ok(());
        }
        let children = match session.children(dir).await {
            Ok(children) => children,
            Err(Error::ZooKeeper {
                code: ZkErrorCode::NoNode,
                ..
            })
            | Err(Error::SessionLost)
            | Err(Error::Closed) => return Ok(()),
            Err(err) if err.is_retryable() => {
                tokio::time::sleep(CLEANUP_PAUSE).await;
                continue;
            }
            Err(err) => return Err(err),
        };
        for name in children.into_iter().filter(|c| c.starts_with(marker)) {
            let path = format!("{dir}/{name}");
            let first = session.delete(&path, None).await;
            settle_delete(session, &path, generation, first).await?;
        }
        return Ok(());
    }
    Err(Error::Timeout {
        operation: "sweeping an abandoned lock node",
        after: CLEANUP_PAUSE * CLEANUP_ROUNDS as u32,
    })
}

/// Attempts of a cleanup delete, and the pause between them.
const CLEANUP_ROUNDS: usize = 200;
const CLEANUP_PAUSE: Duration = Duration::from_millis(25);

/// Follows a delete of an ephemeral node of session `generation` through to the end: a reply lost
/// with the connection is retried until the node is certainly gone — or its session is, which
/// removes it anyway. A contender node left behind would block the lock for everyone.
pub(crate) async fn settle_delete(
    session: &Session,
    path: &str,
    generation: u64,
    mut outcome: Result<()>,
) -> Result<()> {
    for _ in 0..CLEANUP_ROUNDS {
        match outcome {
            Ok(())
            | Err(Error::ZooKeeper {
                code: ZkErrorCode::NoNode,
                ..
            })
            | Err(Error::SessionLost)
            | Err(Error::Closed) => return Ok(()),
            Err(err) if err.is_retryable() => {
                if !session.is_valid(generation) {
                    return Ok(()); // the session is gone, and its ephemeral nodes with it
                }
                tokio::time::sleep(CLEANUP_PAUSE).await;
                outcome = session.delete(path, None).await;
            }
            Err(err) => return Err(err),
        }
    }
    Err(Error::Timeout {
        operation: "removing a lock node",
        after: CLEANUP_PAUSE * CLEANUP_ROUNDS as u32,
    })
}

/// Removes an ephemeral node in the background: the delete is queued on the connection now (in
/// order with whatever the caller sends next), and followed through by [`settle_delete`].
/// Usable from `Drop`, off any runtime.
pub(crate) fn remove_in_background(session: &Session, path: &str, generation: u64, what: &'static str) {
    let first = session.delete_now(path, None);
    let (owned, path) = (session.clone(), path.to_owned());
    session.runtime().spawn(async move {
        if let Err(err) = settle_delete(&owned, &path, generation, first.await).await {
            tracing::warn!(%err, path, what, "could not remove a node");
        }
    });
}

impl Drop for Enqueued {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.progress, Progress::Done) {
            Progress::Created(node) => {
                remove_in_background(&self.session, &node.path, node.generation, "abandoned lock node");
            }
            Progress::Sent(generation) => {
                let (session, dir, marker) = (self.session.clone(), self.dir.clone(), self.marker.clone());
                self.session.runtime().spawn(async move {
                    if let Err(err) = sweep(&session, &dir, &marker, generation).await {
                        tracing::warn!(%err, dir, "could not sweep an abandoned lock node");
                    }
                });
            }
            Progress::Idle | Progress::Done => {}
        }
    }
}

/// The instant `timeout` from now; a timeout too large to represent (`Duration::MAX`) means
/// "a century from now" instead of overflowing.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name ZooKeeper gives a contender numbered `seq` (`%010d`: `-000000005`, `-2147483648`).
    fn name(marker: char, kind: &str, seq: i32) -> String {
        format!("_c_{}-{kind}-{seq:010}", marker.to_string().repeat(32))
    }

    /// The queue of a directory that is not exhausted: by number (no request).
    fn queue(children: &[String]) -> Vec<Entry> {
        let mut entries = entries(children);
        order::sort(&mut entries);
        entries
    }

    #[test]
    fn parses_valid_names_and_ignores_the_rest() {
        let good = name('a', "lock", 7);
        assert_eq!(parse(&good).map(|e| (e.kind, e.seq)), Some(("lock".into(), 7)));
        for bad in [
            "",
            "lock-0000000001",
            "_c_zz-lock-0000000001",
            "_c_abc-lock-1",
            &format!("{good}x"),
            "x-y-z",
            // What ZooKeeper never prints: 19 digits, out of range, a `+`, a padded negative,
            // no kind, a marker of 31 digits.
            &format!("_c_{}-lock-0000000000000000001", "a".repeat(32)),
            &format!("_c_{}-lock-2147483648", "a".repeat(32)),
            &format!("_c_{}-lock-+000000001", "a".repeat(32)),
            &format!("_c_{}-lock--0000000001", "a".repeat(32)),
            &format!("_c_{}--0000000001", "a".repeat(32)),
            &format!("_c_{}-lock-0000000001", "a".repeat(31)),
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_negative_sequence_numbers_with_their_kind() {
        for (seq, suffix) in [
            (-5, "-000000005"),
            (i32::MIN, "-2147483648"),
            (-1_000_000_000, "-1000000000"),
        ] {
            let n = name('b', "read", seq);
            assert!(n.ends_with(&format!("-read-{suffix}")), "{n}");
            assert_eq!(parse(&n).map(|e| (e.kind, e.seq)), Some(("read".into(), seq)));
        }
    }

    #[test]
    fn a_number_is_its_place_until_the_directory_is_exhausted() {
        let children = [
            name('a', "lock", 12),
            name('b', "lock", 3),
            name('c', "lock", i32::MAX - 1),
            "junk".into(),
        ];
        let q: Vec<(i32, i64)> = queue(&children).into_iter().map(|e| (e.seq, e.place)).collect();
        assert_eq!(q, [(3, 3), (12, 12), (i32::MAX - 1, i64::from(i32::MAX - 1))]);
        assert!(!entries(&children).iter().any(|e| sequence::exhausted(e.seq)));
        // Exhausted numbers parse (they are contenders), and make `order` fetch the zxids.
        for seq in [i32::MAX, i32::MIN, -4] {
            let e = parse(&name('d', "lock", seq)).map(|e| (e.seq, sequence::exhausted(e.seq)));
            assert_eq!(e, Some((seq, true)));
        }
    }

    #[test]
    fn a_sibling_keeps_the_suffix_verbatim_also_a_negative_one() {
        for seq in [7, -5, i32::MIN] {
            let of = Node {
                path: format!("/l/{}", name('a', "write", seq)),
                name: name('a', "write", seq),
                czxid: 1,
                generation: 0,
                own_watch: OwnWatch::default(),
            };
            let sibling = sibling_name(&of, "read").map(|n| parse(&n).map(|e| (e.kind, e.seq, e.place)));
            let place = parse(&of.name).map_or(0, |e| e.place);
            assert_eq!(sibling, Some(Some(("read".into(), seq, place))), "{}", of.name);
        }
        let junk = Node {
            path: "/l/junk".into(),
            name: "junk".into(),
            czxid: 1,
            generation: 0,
            own_watch: OwnWatch::default(),
        };
        assert_eq!(sibling_name(&junk, "read"), None);
    }

    #[test]
    fn queue_orders_by_sequence_then_name() {
        let children = vec![
            name('b', "lock", 3),
            "junk".into(),
            name('a', "lock", 2),
            name('c', "read", 2),
        ];
        let q: Vec<_> = queue(&children).into_iter().map(|e| e.name).collect();
        assert_eq!(
            q,
            vec![name('a', "lock", 2), name('c', "read", 2), name('b', "lock", 3)]
        );
    }

    #[test]
    fn the_blocking_set_is_every_blocker_up_to_the_limit() {
        let exclusive: Blocker = |_, ahead| ahead.len().checked_sub(1);
        // As the read lock's: a reader waits for the last write node ahead of it.
        let reader: Blocker = |_, ahead| ahead.iter().rposition(|e| e.kind == "write");
        let entries = queue(&[
            name('a', "read", 1),
            name('b', "write", 2),
            name('c', "read", 3),
            name('d', "write", 4),
            name('e', "read", 5),
        ]);
        let Some((me, ahead)) = entries.split_last() else {
            panic!("five entries were queued")
        };
        let seqs = |set: Option<Vec<Entry>>| set.map(|s| s.iter().map(|e| e.seq).collect::<Vec<_>>());
        assert_eq!(
            seqs(blocking_set(exclusive, me, ahead, 4)),
            Some(vec![4, 3, 2, 1])
        );
        assert_eq!(
            seqs(blocking_set(exclusive, me, ahead, 3)),
            None,
            "more than the limit"
        );
        assert_eq!(seqs(blocking_set(reader, me, ahead, 4)), Some(vec![4, 2]));
        assert_eq!(seqs(blocking_set(reader, me, &ahead[..1], 4)), Some(vec![]));
    }
}
