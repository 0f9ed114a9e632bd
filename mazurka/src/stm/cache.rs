//! The watch-fed local replica of a znode's value: what makes most reads cost no request.
//!
//! One entry per (session, path), shared by every handle on that path. A background task keeps
//! it current: `getData` with a one-shot watch, re-armed after every event. One-shot data
//! watches survive reconnects of the same ZooKeeper session (the client re-registers them and
//! the server fires those whose node changed meanwhile); after a session loss the task re-reads
//! on the new session. Values learnt elsewhere (a fresh read, our own commit) are offered to the
//! entry too, and kept only if newer (by `mzxid`), so the replica never goes back in time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::session::{NodeEvent, Session, SessionState, Stat};

/// A value as stored: the raw znode bytes (envelope and payload) and its version.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    pub(crate) bytes: Arc<Vec<u8>>,
    pub(crate) version: i32,
    pub(crate) mzxid: i64,
}

impl Cached {
    pub(crate) fn new(bytes: Vec<u8>, stat: &Stat) -> Cached {
        Cached {
            bytes: Arc::new(bytes),
            version: stat.version,
            mzxid: stat.mzxid,
        }
    }
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
    /// that found a newer version): transaction reads go to the server instead of trusting it.
    suspect: AtomicBool,
    /// Dropped with the entry: tells the refresh task to stop.
    _alive: watch::Sender<()>,
}

impl CacheEntry {
    /// The entry for `path` on `session`, starting its refresh task on first use.
    pub(crate) fn open(session: &Session, path: &str) -> Arc<CacheEntry> {
        let holder = session.shared_state::<EntrySlot>(&format!("stm-cache:{path}"));
        let mut slot = holder.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = slot.upgrade() {
            return entry;
        }
        let (alive, alive_rx) = watch::channel(());
        let entry = Arc::new(CacheEntry {
            known: watch::channel(Known::Unknown).0,
            suspect: AtomicBool::new(false),
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
        let loaded = match tokio::time::timeout(bound, rx.wait_for(|k| !matches!(k, Known::Unknown))).await {
            Ok(Ok(known)) => Ok(known.clone()),
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout {
                operation: "loading a ref's value",
                after: bound,
            }),
        };
        loaded
    }

    /// Offers a value seen elsewhere; kept if newer than what the entry has.
    pub(crate) fn offer(&self, bytes: Arc<Vec<u8>>, version: i32, mzxid: i64) {
        self.known.send_if_modified(|k| {
            let newer = match k {
                Known::Value(c) => mzxid > c.mzxid,
                Known::Unknown | Known::Missing => true,
            };
            if newer {
                *k = Known::Value(Cached {
                    bytes,
                    version,
                    mzxid,
                });
            }
            newer
        });
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

    pub(crate) fn mark_suspect(&self) {
        self.suspect.store(true, Ordering::Release);
    }

    pub(crate) fn is_suspect(&self) -> bool {
        self.suspect.load(Ordering::Acquire)
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

/// Keeps an entry current until it is dropped or the session closes.
async fn refresh(session: Session, path: String, entry: Weak<CacheEntry>, mut alive: watch::Receiver<()>) {
    let mut backoff = Duration::from_millis(20);
    let mut last_event: Option<tokio::time::Instant> = None;
    let mut calm = Duration::ZERO;
    loop {
        let generation = session.generation();
        let read = tokio::select! {
            read = session.get_and_watch(&path) => read,
            _ = alive.changed() => return,
        };
        let Some(strong) = entry.upgrade() else { return };
        let watch = match read {
            Ok(Some((data, stat, watch))) => {
                strong.publish(Known::Value(Cached::new(data, &stat)));
                Some(watch)
            }
            Ok(None) => {
                strong.publish(Known::Missing);
                None
            }
            Err(Error::Closed) => return,
            Err(err) => {
                tracing::debug!(%err, path, "cache refresh failed; retrying");
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
        let event = match watch {
            Some(watch) => tokio::select! {
                event = watch.changed() => event,
                _ = alive.changed() => return,
            },
            None => {
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
            if let Some(strong) = entry.upgrade() {
                strong.mark_suspect();
            }
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
