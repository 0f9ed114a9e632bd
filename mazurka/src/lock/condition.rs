//! Condition variables on a [`DistributedLock`]: `java.util.concurrent.locks.Condition` across
//! processes.
//!
//! # The recipe
//!
//! A condition's waiters are ephemeral-sequential nodes `<marker>-wait-<seq>` in a directory of
//! their own, `<lock path>.condition.<name>` — a *sibling* of the lock's directory, not a child:
//! the lock directory holds only contender nodes, so it is still reaped by the server when the
//! lock is unused. The waiters' directory is a container node as well (reaped once empty).
//!
//! - **wait**: while still holding the lock, create the waiter node (the same protected create as
//!   a lock contender: a lost reply is recovered through the node's marker). Only then release the
//!   lock in full — whatever the hold count — by deleting the holder's node. Wait until the waiter
//!   node is deleted (that is the signal), the deadline passes, or the session is lost; then take
//!   the lock again through the normal FIFO queue and restore the hold count.
//! - **signal**: list the waiters and delete the oldest; if it is gone already (its session
//!   expired, or its `wait_for` timed out), delete the next one.
//! - **signal_all**: delete every waiter node (the deletes pipelined, one round trip).
//! - **timeout**: the waiter deletes its own node. If that finds no node, a signal won the race:
//!   the wait reports that it was signalled, so the signal is not lost.
//!
//! A signaller holds the lock, and a waiter's node exists before its holder node is deleted, so a
//! signal sent after a waiter's predicate check always finds that waiter: no lost wake-ups.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::guard::LockGuard;
use super::holder::HolderInfo;
use super::mutex::{DistributedLock, Holding};
use super::recipe::{self, Enqueued, Entry, Node};
use crate::error::{Error, Result, ZkErrorCode};
use crate::path::ZnodePath;
use crate::session::{NodeEvent, Session};

/// Node kind of a condition waiter.
const KIND: &str = "wait";

/// Between a lock's name and a condition's name in the waiters' directory name.
const INFIX: &str = ".condition.";

/// A distributed condition variable bound to a [`DistributedLock`] — Java's `Condition` on a
/// `ReentrantLock`, across processes. Made with [`DistributedLock::new_condition`]; cheap to clone.
///
/// Waiting and signalling require the current task to hold the lock (else [`Error::NotHeld`]).
/// [`wait`](Condition::wait) releases the lock fully, whatever the hold count, waits for a signal,
/// then takes the lock again and restores the hold count.
///
/// # Guarantees
///
/// - **No lost wake-ups**: a waiter is registered (its node created) before it releases the lock,
///   so a signal sent by the next holder finds it. A signal racing a `wait_for` timeout is never
///   lost: if the signal consumed the waiter, `wait_for` returns `true`.
/// - **FIFO**: [`signal`](Condition::signal) wakes the longest-waiting live waiter.
/// - **Dead waiters are skipped**: a waiter whose session expired has no node any more, so
///   `signal` wakes a live one instead.
/// - **No spurious wake-ups**: a wait returns signalled only when some task called `signal` or
///   `signal_all` after it started waiting — with the exceptions below, which only ever add
///   wake-ups, never drop one. As with any condition variable, re-check the predicate in a loop.
///
/// # Non-guarantees
///
/// - A woken waiter queues for the lock when it learns of the signal, behind every contender that
///   queued before it; the state it waited for may be gone again when it holds the lock.
/// - After `signal_all`, the woken waiters take the lock in the order they reach its queue, not
///   necessarily in the order they waited.
/// - A waiter in a process that died but whose session has not expired yet still counts as live:
///   a signal sent to it in that window wakes nobody.
/// - One signal may wake two waiters if a connection fault hides whether its delete applied (it
///   then wakes the next waiter too), or if a `wait_for` timing out cannot tell its own delete from
///   a signal's (it then reports signalled). A signal consumed by a `wait` future that was dropped
///   before returning is passed on to the next waiter, as `tokio::sync::Notify` does.
///
/// ```no_run
/// # async fn demo(session: &mazurka::Session) -> mazurka::Result<()> {
/// let lock = session.lock("/queues/jobs/lock")?;
/// let not_empty = lock.new_condition("not-empty")?;
///
/// // Consumer: wait until there is a job.
/// let mut guard = lock.lock().await?;
/// # let queue_is_empty = || false;
/// while queue_is_empty() {
///     not_empty.wait(&mut guard).await?; // the lock is released while waiting
/// }
/// // ... take a job, with guard.fenced() writes ...
/// guard.release().await?;
///
/// // Producer (another process): add a job, then wake one consumer.
/// let guard = lock.lock().await?;
/// // ... add a job ...
/// not_empty.signal().await?;
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Condition {
    lock: DistributedLock,
    name: String,
    dir: ZnodePath,
}

impl DistributedLock {
    /// A condition variable of this lock, named `name` (one path segment: not empty, no `/`, not
    /// `.` or `..`). Every process that uses the same lock path and name shares the condition.
    /// Its waiters live in the znode `<lock path>.condition.<name>` (a sibling of the lock's
    /// directory; don't use such a path for a lock of its own).
    ///
    /// # Errors
    /// [`Error::InvalidPath`] if `name` is not a valid path segment (the error names `name`) or
    /// the waiters' directory path would break a path rule.
    ///
    /// ```no_run
    /// # fn demo(session: &mazurka::Session) -> mazurka::Result<()> {
    /// let lock = session.lock("/app/buffer")?;
    /// let not_full = lock.new_condition("not-full")?;
    /// assert_eq!(not_full.path().as_str(), "/app/buffer.condition.not-full");
    /// assert!(lock.new_condition("a/b").is_err());
    /// # Ok(()) }
    /// ```
    pub fn new_condition(&self, name: impl Into<String>) -> Result<Condition> {
        let name = name.into();
        if let Err(Error::InvalidPath { rule, .. }) = self.path().join(&name) {
            return Err(Error::InvalidPath { path: name, rule });
        }
        let parent = self.path().parent().unwrap_or_else(ZnodePath::root);
        let dir = parent.join(&format!("{}{INFIX}{name}", self.path().name()))?;
        Ok(Condition {
            lock: self.clone(),
            name,
            dir,
        })
    }

    /// Whether `other` is a handle on the same lock of the same session.
    fn same_lock(&self, other: &DistributedLock) -> bool {
        Arc::ptr_eq(&self.inner.local, &other.inner.local)
    }
}

impl Condition {
    /// The condition's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The znode directory of its waiters, `<lock path>.condition.<name>`.
    pub fn path(&self) -> &ZnodePath {
        &self.dir
    }

    /// The lock the condition belongs to.
    pub fn lock(&self) -> &DistributedLock {
        &self.lock
    }

    /// Releases the lock fully and waits until signalled, then takes the lock again and restores
    /// the hold count — Java's `Condition.await()`.
    ///
    /// `guard` must be a live hold of this condition's lock by the current task (any of its
    /// reentrant guards). While waiting, the lock is not held: other guards of the same
    /// acquisition report [`HoldState::Waiting`](super::HoldState::Waiting). Afterwards every
    /// guard of the acquisition — outer and nested — holds the lock again, with a **new node and a
    /// new, larger fencing token** (others may have held the lock in between). A
    /// [`fenced`](LockGuard::fenced) batch built before the wait is refused after it.
    ///
    /// # Errors
    /// - [`Error::NotHeld`] if `guard` is not a live hold of this lock by the current task (for
    ///   instance a guard of another lock, a guard moved to another task, or a hold given up with
    ///   [`DistributedLock::unlock`]); nothing is changed.
    /// - [`Error::SessionLost`] if the session is lost (before or while waiting): the lock is not
    ///   held any more and every guard of the acquisition is inert ([`HoldState::Lost`]).
    /// - A ZooKeeper error: if it happened before the lock was released, the guard still holds
    ///   the lock ([`LockGuard::state`] says [`Held`](super::HoldState::Held)); otherwise the guards
    ///   are inert as above.
    ///
    /// [`HoldState::Lost`]: super::HoldState::Lost
    ///
    /// # Cancel safety
    /// Dropping the future never leaves the lock held behind the guard's back, nor a waiter node
    /// behind; whether the guard still holds the lock afterwards depends on when it was dropped.
    /// - **Before the lock was released** (while the waiter node is being created, the first
    ///   round trip): nothing changes — the guard holds the lock with the same node, token and hold
    ///   count. The waiter node, if it was created, is removed in the background.
    /// - **After the lock was released** (waiting for a signal, or taking the lock back): the lock
    ///   is *not* held when the future is gone, and it is not taken back. Every guard of the
    ///   acquisition becomes inert: [`LockGuard::state`] is [`HoldState::Lost`], its fenced writes
    ///   fail with [`Error::NotHeld`], [`LockGuard::release`] returns [`Error::NotHeld`], and
    ///   dropping it sends nothing; [`DistributedLock::hold_count`] is 0 and
    ///   [`DistributedLock::lock`] starts a new acquisition. The waiter node (and a contender node
    ///   if one was queued) is removed in the background; if a signal had already woken this
    ///   waiter, it is passed on to the next waiter.
    ///
    /// Tell the two cases apart afterwards with [`LockGuard::state`].
    pub async fn wait(&self, guard: &mut LockGuard) -> Result<()> {
        self.wait_until(guard, None).await.map(|_| ())
    }

    /// As [`Condition::wait`], but stops waiting for a signal after `timeout`. Returns `true` if
    /// signalled, `false` if the time ran out — Java's `await(time, unit)`. Either way the lock is
    /// held again when it returns `Ok`, and a timed-out waiter has removed its node.
    ///
    /// `timeout` bounds the wait for a signal; taking the lock back afterwards waits as long as
    /// it takes (as in Java), so the call may return later than `timeout`.
    ///
    /// A signal that races the timeout is never lost: if a signal deleted the waiter node before
    /// the waiter could, this returns `true`. (When a connection fault hides the outcome of the
    /// waiter's own delete, it also returns `true`.)
    ///
    /// # Errors
    /// As [`Condition::wait`].
    ///
    /// # Cancel safety
    /// As [`Condition::wait`].
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn demo(lock: &mazurka::DistributedLock, ready: &mazurka::Condition) -> mazurka::Result<()> {
    /// # let is_ready = || false;
    /// let mut guard = lock.lock().await?;
    /// while !is_ready() {
    ///     if !ready.wait_for(&mut guard, Duration::from_secs(5)).await? {
    ///         println!("still not ready after 5 s; waiting again");
    ///     }
    /// }
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for(&self, guard: &mut LockGuard, timeout: Duration) -> Result<bool> {
        self.wait_until(guard, Instant::now().checked_add(timeout)).await
    }

    async fn wait_until(&self, guard: &mut LockGuard, deadline: Option<Instant>) -> Result<bool> {
        let holding = guard.holding().clone();
        if !self.lock.same_lock(&holding.lock) || !self.lock.holds(&holding, guard.hold_id()) {
            return Err(if holding.is_lost() && self.lock.same_lock(&holding.lock) {
                Error::SessionLost
            } else {
                self.lock.not_held()
            });
        }
        let session = &self.lock.inner.session;
        // 1. Register as a waiter while still holding the lock.
        let mut waiter = Enqueued::new(session, self.dir.as_str(), KIND);
        waiter
            .create(&HolderInfo::for_this_process(session.id()).to_bytes())
            .await?;
        let mut wait = Wait {
            session: session.clone(),
            dir: self.dir.as_str().to_owned(),
            holding,
            waiter: waiter.into_node(),
            stage: Stage::Holding,
            signalled: false,
        };
        if wait.waiter.as_ref().map(|n| n.generation) != Some(wait.holding.generation) {
            return Err(Error::SessionLost);
        }
        // 2. Release the lock fully (the delete is queued before `park` returns).
        let release = self.lock.park(&wait.holding)?;
        wait.stage = Stage::Released;
        release.finish().await?;
        // 3. Wait for the signal (or the deadline).
        let signalled = wait.until_signalled(deadline).await?;
        // 4. Take the lock back, queueing like any contender, and restore the holds.
        let node = self.lock.reacquire(&wait.holding).await?;
        self.lock.restore(&wait.holding, node)?;
        wait.stage = Stage::Done;
        Ok(signalled)
    }

    /// Wakes the longest-waiting live waiter, if any — Java's `signal()`. Returns whether one was
    /// woken. The woken waiter takes the lock once the current holder releases it.
    ///
    /// # Errors
    /// [`Error::NotHeld`] unless the current task holds the lock (nothing is sent); a ZooKeeper or
    /// session error.
    ///
    /// # Cancel safety
    /// A waiter is woken by a delete that cannot be called back once sent: dropping the future
    /// may leave one waiter woken without this call reporting it.
    pub async fn signal(&self) -> Result<bool> {
        self.check_held()?;
        signal_one(&self.lock.inner.session, self.dir.as_str()).await
    }

    /// Wakes every waiter — Java's `signalAll()`. Returns how many were woken.
    ///
    /// # Errors
    /// [`Error::NotHeld`] unless the current task holds the lock (nothing is sent); a ZooKeeper or
    /// session error (the waiters reached before it are woken).
    ///
    /// # Cancel safety
    /// All the deletes are sent together when the future is first polled after the listing;
    /// dropping it then wakes them all without reporting how many.
    ///
    /// ```no_run
    /// # async fn demo(lock: &mazurka::DistributedLock, phase_done: &mazurka::Condition) -> mazurka::Result<()> {
    /// let guard = lock.lock().await?;
    /// // ... record that the phase is over ...
    /// let woken = phase_done.signal_all().await?;
    /// println!("woke {woken} waiters");
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn signal_all(&self) -> Result<usize> {
        self.check_held()?;
        let session = &self.lock.inner.session;
        let paths: Vec<String> = waiters(session, self.dir.as_str())
            .await?
            .into_iter()
            .map(|e| format!("{}/{}", self.dir, e.name))
            .collect();
        // Pipelined: every delete is on the connection before the first reply is awaited.
        let deletes: Vec<_> = paths.iter().map(|p| session.delete_now(p, None)).collect();
        let mut woken = 0;
        let mut failed = None;
        for (path, delete) in paths.iter().zip(deletes) {
            match settle(session, path, delete.await).await {
                Ok(Woken::Yes | Woken::Maybe) => woken += 1,
                Ok(Woken::Gone) => {}
                Err(err) => failed = failed.or(Some(err)),
            }
        }
        match failed {
            Some(err) => Err(err),
            None => Ok(woken),
        }
    }

    /// How many tasks, anywhere, wait on this condition now (one request). For inspection.
    ///
    /// # Errors
    /// A ZooKeeper or session error.
    ///
    /// # Cancel safety
    /// Cancel safe (read only).
    pub async fn waiter_count(&self) -> Result<usize> {
        Ok(waiters(&self.lock.inner.session, self.dir.as_str()).await?.len())
    }

    fn check_held(&self) -> Result<()> {
        if self.lock.is_held_by_current_task() {
            Ok(())
        } else {
            Err(self.lock.not_held())
        }
    }
}

/// Where a wait is; what dropping it must undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The lock is still held (the waiter node may exist).
    Holding,
    /// The lock was released; not yet held again.
    Released,
    /// Held again, holds restored: nothing to undo.
    Done,
}

/// A wait in progress. Dropping it before [`Stage::Done`] cleans up in the background.
#[derive(Debug)]
struct Wait {
    session: Session,
    dir: String,
    holding: Arc<Holding>,
    /// Our waiter node, while it may still exist.
    waiter: Option<Node>,
    stage: Stage,
    /// A signal deleted our waiter node (or may have).
    signalled: bool,
}

impl Wait {
    /// Waits until the waiter node is deleted (signalled: `true`) or the deadline passes
    /// (`false`, with the node removed by us).
    async fn until_signalled(&mut self, deadline: Option<Instant>) -> Result<bool> {
        let generation = self.holding.generation;
        let Some(path) = self.waiter.as_ref().map(|n| n.path.clone()) else {
            return Ok(self.signalled);
        };
        let mut states = self.session.states();
        loop {
            if !self.session.is_valid(generation) {
                return Err(Error::SessionLost);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return self.time_out(&path).await;
            }
            let watch = match self.session.exists_and_watch(&path).await {
                Ok((None, _)) => return Ok(self.woken()),
                Ok((Some(_), watch)) => watch,
                Err(err) if err.is_retryable() => continue,
                Err(err) => return Err(err),
            };
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = watch.changed() => {
                    if event == NodeEvent::Deleted && self.session.is_valid(generation) {
                        return Ok(self.woken());
                    }
                }
                // Reconnected, suspended or lost: look again (a watch may miss a delete that
                // happened while disconnected).
                changed = states.rx.changed() => {
                    if changed.is_err() {
                        return Err(Error::Closed);
                    }
                }
                () = sleep => return self.time_out(&path).await,
            }
        }
    }

    /// The deadline passed: remove our own waiter node. If it is gone already, a signal took it
    /// first, and the wait counts as signalled.
    async fn time_out(&mut self, path: &str) -> Result<bool> {
        let generation = self.holding.generation;
        loop {
            if !self.session.is_valid(generation) {
                return Err(Error::SessionLost);
            }
            match self.session.delete(path, None).await {
                Ok(()) => {
                    self.waiter = None;
                    return Ok(false);
                }
                // After a retried delete this may be our own first delete; counting it as a
                // signal may add a wake-up, never lose one.
                Err(Error::ZooKeeper {
                    code: ZkErrorCode::NoNode,
                    ..
                }) => return Ok(self.woken()),
                Err(err) if err.is_retryable() => {}
                Err(err) => return Err(err),
            }
        }
    }

    fn woken(&mut self) -> bool {
        self.waiter = None;
        self.signalled = true;
        true
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        match self.stage {
            Stage::Done => {}
            Stage::Holding => {
                // The lock was never released: only the waiter node goes.
                if let Some(node) = self.waiter.take() {
                    super::recipe::remove_in_background(
                        &self.session,
                        &node.path,
                        node.generation,
                        "abandoned condition waiter",
                    );
                }
            }
            Stage::Released => {
                // The lock is not held and will not be taken back: the guards go inert.
                self.holding.end();
                let waiter = self.waiter.take();
                if !self.session.is_valid(self.holding.generation) {
                    // The session is gone, and the waiter node with it. A signal this waiter
                    // *saw* is passed on; one that raced the expiry unseen went to a waiter the
                    // server still counted as live (see the non-guarantees).
                    if self.signalled {
                        forward(&self.session, &self.dir, None);
                    }
                    return;
                }
                match waiter {
                    Some(node) => forward(&self.session, &self.dir, Some(node.path)),
                    None if self.signalled => forward(&self.session, &self.dir, None),
                    None => {} // timed out, node removed by us: nothing was consumed
                }
            }
        }
    }
}

/// In the background: removes a dropped wait's waiter node (if `waiter` is given) and, if a
/// signal had consumed it (or, with no node, had been received), passes the signal on.
fn forward(session: &Session, dir: &str, waiter: Option<String>) {
    // Queued on the connection now, in order; only the outcome is awaited in the background.
    let delete = waiter.map(|path| {
        let first = session.delete_now(&path, None);
        (path, first)
    });
    let (session, dir) = (session.clone(), dir.to_owned());
    let bound = session.request_bound().saturating_mul(2);
    let runtime = session.runtime().clone();
    runtime.spawn(async move {
        let work = async {
            let consumed = match delete {
                None => true,
                Some((path, first)) => match settle(&session, &path, first.await).await? {
                    Woken::Yes => false,
                    Woken::Gone | Woken::Maybe => true,
                },
            };
            if consumed {
                signal_one(&session, &dir).await?;
            }
            Ok::<_, Error>(())
        };
        match tokio::time::timeout(bound, work).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::debug!(%err, "cleaning up after a dropped condition wait failed"),
            Err(_) => tracing::warn!(dir, "could not clean up after a dropped condition wait in time"),
        }
    });
}

/// The waiters of `dir`, oldest first.
async fn waiters(session: &Session, dir: &str) -> Result<Vec<Entry>> {
    match session.children(dir).await {
        Ok(children) => Ok(recipe::queue(session, dir, &children)
            .await?
            .into_iter()
            .filter(|e| e.kind == KIND)
            .collect()),
        Err(Error::ZooKeeper {
            code: ZkErrorCode::NoNode,
            ..
        }) => Ok(Vec::new()),
        Err(err) => Err(err),
    }
}

/// Wakes the oldest live waiter of `dir`; whether one was (or may have been) woken.
async fn signal_one(session: &Session, dir: &str) -> Result<bool> {
    let mut maybe = false;
    for entry in waiters(session, dir).await? {
        let path = format!("{dir}/{}", entry.name);
        match settle(session, &path, session.delete(&path, None).await).await? {
            Woken::Yes => return Ok(true),
            // Perhaps woken: wake the next one too, so that the signal is not lost.
            Woken::Maybe => maybe = true,
            Woken::Gone => {}
        }
    }
    Ok(maybe)
}

/// What deleting a waiter's node did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Woken {
    /// Our delete removed it: that waiter is signalled.
    Yes,
    /// It was gone already (expired, timed out, or signalled by someone else).
    Gone,
    /// A reply was lost and the node is gone now: our delete may or may not have removed it.
    Maybe,
}

/// Decides a waiter delete's outcome, asking again while the connection hides it.
async fn settle(session: &Session, path: &str, mut outcome: Result<()>) -> Result<Woken> {
    let mut retried = false;
    loop {
        match outcome {
            Ok(()) => return Ok(Woken::Yes),
            Err(Error::ZooKeeper {
                code: ZkErrorCode::NoNode,
                ..
            }) => return Ok(if retried { Woken::Maybe } else { Woken::Gone }),
            Err(err) if err.is_retryable() => {
                retried = true;
                outcome = session.delete(path, None).await;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiter_names_parse_as_queue_entries_of_their_own_kind() {
        let name = format!("_c_{}-{KIND}-0000000003", "a".repeat(32));
        let entry = recipe::parse(&name).map(|e| (e.kind, e.seq));
        assert_eq!(entry, Some((KIND.to_owned(), 3)));
    }

    #[test]
    fn an_unbounded_timeout_does_not_overflow() {
        assert!(Instant::now().checked_add(Duration::MAX).is_none());
    }
}
