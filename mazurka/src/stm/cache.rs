//! The watch-fed local replica of a znode's value: what makes most reads cost no request.
//!
//! One entry per (session, path), shared by every handle on that path. A background task keeps
//! it current: `getData` with a one-shot watch, re-armed after every event — once something
//! outside transactions reads the entry (`deref`, a watch, an atom); until then a change only
//! marks it suspect (see `CacheEntry::followed`). One-shot data
//! watches survive reconnects of the same ZooKeeper session (the client re-registers them and
//! the server fires those whose node changed meanwhile); after a session loss the task re-reads
//! on the new session. Values learnt elsewhere (a fresh read, our own commit) are offered to the
//! entry too, and kept only if newer (by `mzxid`), so the replica never goes back in time.
//!
//! **Watch-vouched values** (what makes a transaction's read set cost linear, not quadratic):
//! the data watch left by the read that produced the replica's value (by the refresh task, or by
//! a transaction's read, see `txn`) sits in the entry's `Armed` slot, tagged with the ZooKeeper
//! session (generation) that holds it and the `mzxid` of the value that read returned.
//! [`CacheEntry::vouches`] asks, without a request, whether it has fired. Why an unfired watch
//! proves the value current up to the latest reply the session has received:
//! - ZooKeeper sends a watch's notification before any reply that reflects a later state, on the
//!   same session ("a client will see a watch event for a znode it is watching before seeing the
//!   new data", and events are ordered with replies): the server triggers the watch while it
//!   applies the change, ahead of every read it serves after it.
//! - zookeeper-client reads one connection in one task and handles its frames in order: a
//!   notification is handed to its watcher's oneshot channel (`dispatch_server_event`) before the
//!   next reply is handed to its caller (`handle_session_reply`), so by the time a reply's future
//!   resolves, every notification before it is in its channel, and polling the watcher sees it.
//! - Across a reconnect of the same session the client re-registers watches (`SetWatches`, with
//!   the last zxid it saw) before any other request goes out, and the server fires at once those
//!   whose node changed meanwhile — again ahead of every later reply. A read whose reply is lost
//!   with the connection leaves no watch.
//! - A replaced session (new generation) is another connection with other watches: a watch
//!   vouches only for the generation that holds it, and an ended session fires it
//!   (`SessionEnded`), which vouches for nothing.
//!
//! So if watches armed at values `m1..mk` on one session have not fired when a reply on that
//! session arrives (reflecting server state `P`), every one of those znodes still holds its value
//! at `P`: together with that reply's own values, one state that existed.
//!
//! Large values: the replica holds *resolved* payloads. When the znode holds a chunk pointer, the
//! refresh task fetches (and verifies) the chunk set before publishing, so `deref` stays
//! synchronous and request-free; a set that vanished meanwhile (reclaimed after the pointer moved
//! on) makes it read the pointer again. A pointer whose `mzxid` the replica already resolved is
//! not fetched again (a set never changes), so a handle's own writes, offered with their payload,
//! cost no download.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use crate::blob::{Blobs, Fetched};
use crate::error::{Error, Result};
use crate::session::{NodeEvent, NodeWatch, Session, SessionState, Stat};

/// Where a cached value's payload is.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    /// In the envelope (`Cached::bytes`).
    Inline,
    /// The verified payload of the chunk set the envelope points to.
    Fetched(Bytes),
    /// The chunk set could not be fetched: why.
    Failed(Arc<str>),
}

/// A value as stored: the raw znode bytes (envelope and payload, or a chunk pointer), its
/// version, and the resolved payload of a chunked value.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    pub(crate) bytes: Arc<Vec<u8>>,
    pub(crate) version: i32,
    pub(crate) mzxid: i64,
    /// The zxid of the znode's create (another one after a delete and re-create).
    pub(crate) czxid: i64,
    pub(crate) payload: Payload,
}

impl Cached {
    pub(crate) fn new(bytes: Arc<Vec<u8>>, stat: &Stat, payload: Payload) -> Cached {
        Cached {
            bytes,
            version: stat.version,
            mzxid: stat.mzxid,
            czxid: stat.czxid,
            payload,
        }
    }
}

/// Resolves a value read from the server: its chunk set fetched if it is a pointer, unless
/// `entry` already resolved this very write (same `mzxid`) and `reuse` allows that. `Ok(None)`:
/// the set is gone (reclaimed after the pointer moved on) — read the pointer again.
pub(crate) async fn resolve(
    entry: &CacheEntry,
    blobs: &Blobs,
    bytes: Arc<Vec<u8>>,
    stat: &Stat,
    reuse: bool,
) -> Result<Option<Cached>> {
    if reuse {
        // The same pointer bytes name the same (immutable) chunk set: set ids are unique.
        if let Known::Value(known) = entry.current() {
            if let Payload::Fetched(payload) = &known.payload {
                if known.bytes == bytes {
                    return Ok(Some(Cached::new(bytes, stat, Payload::Fetched(payload.clone()))));
                }
            }
        }
        if let Some(payload) = entry.hinted(&bytes) {
            return Ok(Some(Cached::new(bytes, stat, Payload::Fetched(payload))));
        }
    }
    Ok(match blobs.fetch(&bytes).await? {
        Fetched::Inline => Some(Cached::new(bytes, stat, Payload::Inline)),
        Fetched::Payload(payload) => Some(Cached::new(bytes, stat, Payload::Fetched(payload))),
        Fetched::Gone => None,
    })
}

/// What the replica knows.
#[derive(Debug, Clone, Default)]
pub(crate) enum Known {
    /// Not loaded yet.
    #[default]
    Unknown,
    /// The znode does not exist.
    Missing,
    /// The latest value seen.
    Value(Cached),
}

/// The replica of one znode.
#[derive(Debug)]
pub(crate) struct CacheEntry {
    known: watch::Sender<Known>,
    /// Set when the replica is known to be behind (a change event not yet read, or a commit
    /// that found a newer version): a transaction may still start from its value, but has it
    /// checked by the server before it commits (see `txn::read`).
    suspect: AtomicBool,
    /// Something outside transactions reads the replica (`deref`, a watch, an atom's swap): keep
    /// it current. Until then a change only marks it suspect and the refresh waits for `wake`:
    /// transactions check every value they take from the replica against the server anyway (see
    /// `txn::read`), so re-reading after every change would cost a request per change and per
    /// process that nobody uses — under contention, about one read per transaction.
    followed: AtomicBool,
    /// Wakes a refresh that waits, unfollowed, after a change.
    wake: Arc<tokio::sync::Notify>,
    /// Follows chunk pointers (set by the first handle that opens the entry).
    blobs: OnceLock<Arc<Blobs>>,
    /// A pointer this process wrote without learning its stat (a pod's check-in), with its
    /// payload: the refresh task takes the payload from here instead of downloading it.
    hint: std::sync::Mutex<Option<(Arc<Vec<u8>>, Bytes)>>,
    /// Set while the refresh task's reads are refused in a way retrying does not fix soon (the
    /// ACL, the credentials): a first load reports it instead of waiting out its bound.
    refused: watch::Sender<Option<Refused>>,
    /// The data watch of the read that produced the latest value (see the module docs).
    armed: std::sync::Mutex<Slot>,
    /// Dropped with the entry: tells the refresh task to stop.
    _alive: watch::Sender<()>,
}

/// The entry's data watch, and the refresh task's waker (polling the watch from a transaction
/// must not steal the registration the task waits on).
#[derive(Default)]
struct Slot {
    armed: Option<Armed>,
    waker: Option<Waker>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("generation", &self.armed.as_ref().map(|a| a.generation))
            .field("mzxid", &self.armed.as_ref().map(|a| a.mzxid))
            .finish()
    }
}

/// Watches armed so far in this process: each `Armed` takes the next number, so an attempt that
/// checked its reads when the count was `k` knows that a watch numbered `<= k` was armed by a
/// reply received before that check (see `txn`).
static ARMS: AtomicU64 = AtomicU64::new(0);

/// The number of the latest watch armed (see `ARMS`).
pub(crate) fn arms_so_far() -> u64 {
    ARMS.load(Ordering::Acquire)
}

/// A data watch the server holds for the znode.
struct Armed {
    /// Its number (see `ARMS`).
    seq: u64,
    /// The ZooKeeper session it is registered on: its notifications come on that session only.
    generation: u64,
    /// The `mzxid` of the value the read that left it returned.
    mzxid: i64,
    state: WatchState,
}

enum WatchState {
    Waiting(Pin<Box<dyn Future<Output = NodeEvent> + Send>>),
    Fired(NodeEvent),
}

impl Armed {
    /// Whether the watch has fired, polled now (with the refresh task's waker, if it waits on
    /// it, so that its registration stays; a fired watch wakes it).
    fn fired(&mut self, waker: Option<&Waker>) -> Option<NodeEvent> {
        match &mut self.state {
            WatchState::Fired(event) => Some(*event),
            WatchState::Waiting(changed) => {
                let mut cx = Context::from_waker(waker.unwrap_or(Waker::noop()));
                match changed.as_mut().poll(&mut cx) {
                    Poll::Ready(event) => {
                        self.state = WatchState::Fired(event);
                        if let Some(waker) = waker {
                            waker.wake_by_ref();
                        }
                        Some(event)
                    }
                    Poll::Pending => None,
                }
            }
        }
    }
}

/// Why the refresh task's reads are refused (see `CacheEntry::refused`).
#[derive(Debug, Clone)]
enum Refused {
    Permission { operation: &'static str, path: String },
    Credentials { user: String },
}

impl Refused {
    fn of(err: &Error) -> Option<Refused> {
        match err {
            Error::PermissionDenied { operation, path } => Some(Refused::Permission {
                operation,
                path: path.clone(),
            }),
            Error::AuthFailed { user } => Some(Refused::Credentials { user: user.clone() }),
            _ => None,
        }
    }

    fn error(&self) -> Error {
        match self {
            Refused::Permission { operation, path } => Error::PermissionDenied {
                operation,
                path: path.clone(),
            },
            Refused::Credentials { user } => Error::AuthFailed { user: user.clone() },
        }
    }
}

impl CacheEntry {
    /// The entry for `path` on `session`, starting its refresh task on first use.
    pub(crate) fn open(session: &Session, path: &str, blobs: &Arc<Blobs>) -> Arc<CacheEntry> {
        let holder = session.shared_state::<EntrySlot>(&format!("stm-cache:{path}"));
        let mut slot = holder.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = slot.upgrade() {
            let _ = entry.blobs.set(blobs.clone());
            return entry;
        }
        let (alive, alive_rx) = watch::channel(());
        let entry = Arc::new(CacheEntry {
            known: watch::channel(Known::Unknown).0,
            suspect: AtomicBool::new(false),
            followed: AtomicBool::new(false),
            wake: Arc::default(),
            blobs: OnceLock::from(blobs.clone()),
            hint: std::sync::Mutex::new(None),
            refused: watch::channel(None).0,
            armed: std::sync::Mutex::default(),
            _alive: alive,
        });
        *slot = Arc::downgrade(&entry);
        session.runtime().spawn(refresh(
            session.clone(),
            path.to_owned(),
            Arc::downgrade(&entry),
            alive_rx,
        ));
        entry
    }

    /// The latest known value.
    pub(crate) fn current(&self) -> Known {
        self.known.borrow().clone()
    }

    /// Waits (bounded) until the entry has been loaded once.
    pub(crate) async fn loaded(&self, bound: Duration) -> Result<Known> {
        let mut rx = self.known.subscribe();
        let mut refused = self.refused.subscribe();
        let first = async {
            tokio::select! {
                known = rx.wait_for(|k| !matches!(k, Known::Unknown)) => known.map(|k| Ok(k.clone())),
                why = refused.wait_for(Option::is_some) => why.map(|why| Err(why.clone())),
            }
        };
        let loaded = match tokio::time::timeout(bound, first).await {
            Ok(Ok(Ok(known))) => Ok(known),
            Ok(Ok(Err(Some(why)))) => Err(why.error()),
            Ok(Ok(Err(None)) | Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout {
                operation: "loading a ref's value",
                after: bound,
            }),
        };
        loaded
    }

    /// Offers a value seen elsewhere; kept if newer than what the entry has.
    pub(crate) fn offer(&self, cached: Cached) {
        self.known.send_if_modified(|k| {
            let newer = match k {
                Known::Value(c) => cached.mzxid > c.mzxid,
                Known::Unknown | Known::Missing => true,
            };
            if newer {
                *k = Known::Value(cached);
            }
            newer
        });
    }

    /// Remembers the payload of a pointer this process just wrote (see `hint`).
    pub(crate) fn hint(&self, pointer: Arc<Vec<u8>>, payload: Bytes) {
        *self
            .hint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((pointer, payload));
    }

    /// The hinted payload, if `bytes` is the hinted pointer.
    fn hinted(&self, bytes: &[u8]) -> Option<Bytes> {
        let mut hint = self
            .hint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if hint
            .as_ref()
            .is_some_and(|(pointer, _)| pointer.as_slice() == bytes)
        {
            return hint.take().map(|(_, payload)| payload);
        }
        None
    }

    /// Offers raw bytes read elsewhere, if they hold an inline value (a chunk pointer is left to
    /// the refresh task, which fetches its set).
    pub(crate) fn offer_raw(&self, bytes: Arc<Vec<u8>>, stat: &Stat) {
        if Blobs::pointer_of(&bytes).is_none() {
            self.offer(Cached::new(bytes, stat, Payload::Inline));
        }
    }

    fn publish(&self, known: Known) {
        self.known.send_if_modified(|k| {
            let newer = match (&*k, &known) {
                (Known::Value(old), Known::Value(new)) => new.mzxid > old.mzxid,
                (Known::Unknown, _) => true,
                (Known::Missing, Known::Value(_)) | (Known::Value(_), Known::Missing) => true,
                (_, Known::Unknown) | (Known::Missing, Known::Missing) => false,
            };
            if newer {
                *k = known;
            }
            newer
        });
        self.suspect.store(false, Ordering::Release);
    }

    /// Keeps the replica current from now on (see `followed`); the first call wakes a refresh
    /// that waits after a change.
    pub(crate) fn follow(&self) {
        // A load first: `deref` calls this every time, and a plain load costs no bus lock.
        if !self.followed.load(Ordering::Acquire) && !self.followed.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// Whether the replica re-reads after every change (see `followed`).
    pub(crate) fn is_followed(&self) -> bool {
        self.followed.load(Ordering::Acquire)
    }

    pub(crate) fn mark_suspect(&self) {
        self.suspect.store(true, Ordering::Release);
    }

    /// Whether the replica is known to be behind: told of a change it has not read (a fired
    /// watch nobody has looked at yet counts).
    pub(crate) fn is_suspect(&self) -> bool {
        let mut slot = self.slot();
        let Slot { armed, waker } = &mut *slot;
        if let Some(armed) = armed {
            if armed
                .fired(waker.as_ref())
                .is_some_and(|e| e != NodeEvent::SessionEnded)
            {
                self.mark_suspect();
            }
        }
        self.suspect.load(Ordering::Acquire)
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.armed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Installs the watch a read of the znode left — on ZooKeeper session `generation`, by a read
    /// that returned the value written at `mzxid` — unless the entry holds an unfired one at
    /// least as new. Offer the value first: a replica whose value is the watched one is current
    /// again.
    pub(crate) fn arm(&self, generation: u64, mzxid: i64, watch: NodeWatch) {
        let mut slot = self.slot();
        let Slot { armed, waker } = &mut *slot;
        if let Some(current) = armed {
            let newer = (current.generation, current.mzxid) >= (generation, mzxid);
            if newer && current.fired(waker.as_ref()).is_none() {
                return; // the new watch is dropped; the server's (one per node and session) stays
            }
        }
        let replaced = armed.replace(Armed {
            seq: ARMS.fetch_add(1, Ordering::AcqRel) + 1,
            generation,
            mzxid,
            state: WatchState::Waiting(Box::pin(watch.changed())),
        });
        if let Some(waker) = waker {
            waker.wake_by_ref(); // the refresh task waits on the new watch from now on
        }
        drop(slot);
        drop(replaced);
        if matches!(self.current(), Known::Value(c) if c.mzxid == mzxid) {
            self.suspect.store(false, Ordering::Release);
        }
    }

    /// Whether the entry's watch vouches that the znode still holds the value written at
    /// `mzxid`, up to the latest reply ZooKeeper session `generation` has received (see the
    /// module docs): armed on that session by a read of that very value, not fired. No request.
    pub(crate) fn vouches(&self, generation: u64, mzxid: i64) -> bool {
        self.vouching(generation, mzxid).is_some()
    }

    /// As `vouches`, with the number of the watch that vouches (see `ARMS`).
    pub(crate) fn vouching(&self, generation: u64, mzxid: i64) -> Option<u64> {
        let mut slot = self.slot();
        let Slot { armed, waker } = &mut *slot;
        let armed = armed.as_mut()?;
        match armed.fired(waker.as_ref()) {
            None => (armed.generation == generation && armed.mzxid == mzxid).then_some(armed.seq),
            Some(event) => {
                if event != NodeEvent::SessionEnded {
                    self.mark_suspect();
                }
                None
            }
        }
    }

    /// Whether this process has learnt that the znode no longer holds the value written at
    /// `mzxid`: the watch armed at that value fired with a change (or deletion), or the replica
    /// holds a newer value (a re-created znode's is newer too), or none. No request.
    pub(crate) fn moved_past(&self, mzxid: i64) -> bool {
        {
            let mut slot = self.slot();
            let Slot { armed, waker } = &mut *slot;
            if let Some(armed) = armed.as_mut().filter(|a| a.mzxid == mzxid) {
                if armed
                    .fired(waker.as_ref())
                    .is_some_and(|e| e != NodeEvent::SessionEnded)
                {
                    return true;
                }
            }
        }
        match self.current() {
            Known::Value(c) => c.mzxid > mzxid,
            Known::Missing => true,
            Known::Unknown => false,
        }
    }

    /// The refresh task's wait for the entry's watch to fire.
    fn poll_fired(&self, cx: &mut Context<'_>) -> Poll<NodeEvent> {
        let mut slot = self.slot();
        let Slot { armed, waker } = &mut *slot;
        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *waker = Some(cx.waker().clone());
        }
        let fired = armed.as_mut().and_then(|a| a.fired(waker.as_ref()));
        match fired {
            Some(event) => {
                if event != NodeEvent::SessionEnded {
                    self.mark_suspect();
                }
                Poll::Ready(event)
            }
            None => Poll::Pending,
        }
    }

    /// A receiver of every change (for watches).
    pub(crate) fn subscribe(&self) -> watch::Receiver<Known> {
        self.known.subscribe()
    }
}

/// Registry slot: the live entry for a path, if any.
#[derive(Debug, Default)]
struct EntrySlot(std::sync::Mutex<Weak<CacheEntry>>);

/// Changes closer together than this count as a burst.
const BURST: Duration = Duration::from_millis(50);
/// The longest a replica waits, in a burst, before reading a change.
const MAX_CALM: Duration = Duration::from_millis(20);

/// `getData` with a watch, and the ZooKeeper session (generation) that holds the watch.
async fn get_and_watch(session: &Session, path: &str) -> Result<Option<(Vec<u8>, Stat, NodeWatch, u64)>> {
    let (generation, results) = session.get_and_watch_all(&[path]).await?;
    match results.into_iter().next() {
        Some(read) => Ok(read?.map(|(data, stat, watch)| (data, stat, watch, generation))),
        None => Err(Error::ZooKeeper {
            operation: "getData",
            path: path.to_owned(),
            code: crate::error::ZkErrorCode::Other("no reply to the read".into()),
        }),
    }
}

/// Keeps an entry current until it is dropped or the session closes.
async fn refresh(session: Session, path: String, entry: Weak<CacheEntry>, mut alive: watch::Receiver<()>) {
    let mut backoff = Duration::from_millis(20);
    let mut last_event: Option<tokio::time::Instant> = None;
    let mut calm = Duration::ZERO;
    // The mzxid of a pointer whose set was found gone once: gone twice means lost, not replaced.
    let mut gone: Option<i64> = None;
    loop {
        let generation = session.generation();
        let read = tokio::select! {
            read = get_and_watch(&session, &path) => read,
            _ = alive.changed() => return,
        };
        let Some(strong) = entry.upgrade() else { return };
        let armed = match read {
            Ok(Some((data, stat, watch, on))) => {
                let data = Arc::new(data);
                let resolved = match strong.blobs.get() {
                    Some(blobs) => tokio::select! {
                        r = resolve(&strong, blobs, data.clone(), &stat, true) => r,
                        _ = alive.changed() => return,
                    },
                    None => Ok(Some(Cached::new(data.clone(), &stat, Payload::Inline))),
                };
                let cached = match resolved {
                    Ok(Some(cached)) => {
                        gone = None;
                        cached
                    }
                    Ok(None) if gone != Some(stat.mzxid) => {
                        // The set went with a newer write: read the pointer again.
                        gone = Some(stat.mzxid);
                        continue;
                    }
                    Ok(None) => Cached::new(
                        data,
                        &stat,
                        Payload::Failed(
                            "the chunk set the current pointer names is missing (deleted by hand?); write the \
                             value again"
                                .into(),
                        ),
                    ),
                    Err(Error::Closed) => return,
                    Err(err) if err.is_retryable() => {
                        tracing::debug!(%err, path, "fetching a chunked value failed; retrying");
                        drop(strong);
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            _ = alive.changed() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                    Err(err) => Cached::new(data, &stat, Payload::Failed(err.to_string().into())),
                };
                strong.publish(Known::Value(cached));
                strong.arm(on, stat.mzxid, watch);
                strong.refused.send_replace(None);
                true
            }
            Ok(None) => {
                strong.publish(Known::Missing);
                strong.refused.send_replace(None);
                false
            }
            Err(Error::Closed) => return,
            Err(err) => {
                tracing::debug!(%err, path, "cache refresh failed; retrying");
                // Reported to a first load at once; retried meanwhile, as an ACL may be fixed.
                if let Some(why) = Refused::of(&err) {
                    strong.refused.send_replace(Some(why));
                }
                if matches!(err, Error::AuthFailed { .. }) {
                    return; // the session ended for good
                }
                drop(strong);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = alive.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        drop(strong);
        backoff = Duration::from_millis(20);
        let event = match armed {
            // The entry's watch: this read's, or a newer one a transaction's read left since.
            // Not holding the entry while waiting: dropping it ends the task.
            true => tokio::select! {
                event = std::future::poll_fn(|cx| match entry.upgrade() {
                    Some(strong) => strong.poll_fired(cx),
                    None => Poll::Ready(NodeEvent::SessionEnded),
                }) => event,
                _ = alive.changed() => return,
            },
            false => {
                // Missing: wait for it to appear.
                match session.exists_and_watch(&path).await {
                    Ok((Some(_), _)) => continue,
                    Ok((None, watch)) => tokio::select! {
                        event = watch.changed() => event,
                        _ = alive.changed() => return,
                    },
                    Err(Error::Closed) => return,
                    Err(_) => continue,
                }
            }
        };
        if event != NodeEvent::SessionEnded {
            // Changed: transactions stop trusting the replica until it is read again. Under a
            // burst of changes the re-read waits a little (up to 20 ms) so that one read covers
            // several writes instead of every watcher re-reading after every write.
            let Some(strong) = entry.upgrade() else { return };
            strong.mark_suspect();
            if !strong.followed.load(Ordering::Acquire) {
                // Read only when somebody reads the replica outside a transaction.
                // Not holding the entry while waiting: dropping it ends the task.
                let wake = strong.wake.clone();
                drop(strong);
                tokio::select! {
                    () = wake.notified() => {}
                    _ = alive.changed() => return,
                }
                continue;
            }
            drop(strong);
            let now = tokio::time::Instant::now();
            calm = match last_event.replace(now) {
                Some(previous) if now - previous < BURST => {
                    (calm * 2).clamp(Duration::from_millis(1), MAX_CALM)
                }
                _ => Duration::ZERO,
            };
            if !calm.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(calm) => {}
                    _ = alive.changed() => return,
                }
            }
        } else {
            // Wait for the replacement session (or the end), then read again.
            let mut states = session.states();
            let ended = states
                .rx
                .wait_for(|s| s.generation != generation || s.state == SessionState::Closed);
            tokio::select! {
                result = ended => {
                    if result.is_err() || session.state() == SessionState::Closed {
                        return;
                    }
                }
                _ = alive.changed() => return,
            }
        }
    }
}
