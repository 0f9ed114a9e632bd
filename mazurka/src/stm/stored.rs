//! A typed value in a znode with a watch-fed local replica: the core shared by [`Ref`],
//! [`Atom`](crate::Atom) and [`Pod`](crate::Pod) (they differ only in how they change it).
//!
//! [`Ref`]: crate::Ref

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::cache::{self, CacheEntry, Cached, Known, Payload};
use crate::blob::{BlobOp, BlobOptions, Blobs, Packed, ReclaimReport};
use crate::codec::{self, Codec, Envelope, EnvelopeMeta, HistoryEntry, WriterId, MAX_HISTORY};
use crate::error::{Error, Result, ZkErrorCode};
use crate::path::ZnodePath;
use crate::session::{CreateMode, MultiOp, MultiOutcome, Session, Stat};

/// Reads of a chunked value that may find its set replaced before giving up.
const FETCH_ATTEMPTS: usize = 100;

/// What a ref, atom or pod may hold: serde-serializable, cloneable, shareable between tasks.
pub trait Value: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Value for T {}

type Validator<T> = Arc<dyn Fn(&T) -> std::result::Result<(), String> + Send + Sync>;

/// The value at one path, for one session. Shared (through an `Arc`) by the handles' clones.
pub(crate) struct Stored<T, C> {
    pub(crate) session: Session,
    pub(crate) path: ZnodePath,
    pub(crate) cache: Arc<CacheEntry>,
    /// Large values: chunk sets, pointers, reclaim.
    pub(crate) blobs: Arc<Blobs>,
    validator: RwLock<Option<Validator<T>>>,
    /// The last decoded value and the mzxid it was decoded from.
    memo: Mutex<Option<(i64, T)>>,
    watches: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    _codec: PhantomData<fn() -> C>,
}

impl<T, C> Drop for Stored<T, C> {
    fn drop(&mut self) {
        for (_, task) in self
            .watches
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
        {
            task.abort();
        }
    }
}

/// The envelope history of a value replacing one at `version` whose envelope was `meta`.
pub(crate) fn history_after(version: i32, meta: &EnvelopeMeta) -> Vec<HistoryEntry> {
    let mut history = Vec::with_capacity(MAX_HISTORY);
    history.push(HistoryEntry {
        writer: meta.writer,
        version,
    });
    history.extend(meta.history.iter().take(MAX_HISTORY - 1).copied());
    history
}

/// `<path>.blobs` belongs to the value at `<path>`: no value may live there.
fn check_reserved(path: &ZnodePath) -> Result<()> {
    if path.segments().any(|segment| segment.ends_with(".blobs")) {
        return Err(Error::Config(format!(
            "{path}: path segments ending in \".blobs\" are reserved for the chunk sets of large values \
             (<path>.blobs); choose another name"
        )));
    }
    Ok(())
}

/// Whether a write whose reply was lost landed, judged from what the znode holds now.
#[derive(Debug)]
pub(crate) enum Landing {
    /// Our writer id is the current value's or in its recent history.
    Landed,
    /// The znode is still at the version our write expects: it has not landed (yet).
    NotYet,
    /// The znode moved on, and its history reaches back far enough to show ours is not there.
    NotLanded,
    /// It moved on further than its history records (or holds unreadable bytes): say so, never guess.
    Unknown(String),
}

/// The one rule every lost-reply read-back (transaction commits, atom swaps, pod check-ins) uses:
/// a write by `writer` over version `expected` would have produced version `expected + 1` naming
/// `writer`; each envelope records the writers of the versions before it.
pub(crate) fn landing(bytes: &[u8], version: i32, writer: WriterId, expected: i32) -> Landing {
    let Ok(envelope) = codec::Envelope::parse(bytes) else {
        return Landing::Unknown(
            "the znode holds bytes that are not a Mazurka envelope this version reads".into(),
        );
    };
    if envelope.writer == writer || envelope.history.iter().any(|h| h.writer == writer) {
        return Landing::Landed;
    }
    if version == expected {
        return Landing::NotYet;
    }
    let behind = i64::from(version) - i64::from(expected) - 1;
    if behind <= envelope.history.len() as i64 {
        return Landing::NotLanded;
    }
    Landing::Unknown(format!(
        "the znode moved {behind} versions past the write while its reply was lost, more than its history of {} \
         writes records",
        envelope.history.len()
    ))
}

impl<T: Value, C: Codec> Stored<T, C> {
    /// Creates the znode with `initial` if absent (parents too), then opens it.
    pub(crate) async fn create_or_open(
        session: &Session,
        path: impl Into<String>,
        initial: T,
        options: BlobOptions,
    ) -> Result<Arc<Self>> {
        let path = ZnodePath::new(path)?;
        check_reserved(&path)?;
        let blobs = Blobs::new(session, &path, options);
        let envelope = Self::encode_with(&path, &initial, WriterId::random(), &[])?;
        blobs.check_size(&envelope)?;
        if let Some(parent) = path.parent().filter(|p| !p.is_root()) {
            session
                .ensure_path(parent.as_str(), CreateMode::Persistent)
                .await?;
        }
        // A large initial value is uploaded only if the znode is really missing.
        if !blobs.fits_inline(envelope.len()) && session.get(path.as_str()).await?.is_some() {
            // Used as if created here: only with an ACL as strong as the session's policy.
            session.check_found(path.as_str()).await?;
            return Self::open_inner(session, path, blobs).await;
        }
        let packed = blobs.pack(envelope).await?;
        let guards = blobs.guard_ops(&packed, None);
        let created = if guards.is_empty() {
            session
                .create(path.as_str(), &packed.bytes, CreateMode::Persistent)
                .await
                .map(|_| true)
        } else {
            let mut ops = vec![MultiOp::Create {
                path: path.as_str(),
                data: &packed.bytes,
                mode: CreateMode::Persistent,
            }];
            ops.extend(guards.iter().map(BlobOp::as_multi));
            match session.multi(&ops).await {
                Ok(MultiOutcome::Committed(_)) => Ok(true),
                Ok(MultiOutcome::Refused { error, .. }) => Err(error),
                Err(err) => Err(err),
            }
        };
        match created {
            Ok(_) => blobs.committed(&guards),
            Err(Error::ZooKeeper {
                code: ZkErrorCode::NodeExists,
                ..
            }) => blobs.discard(&packed),
            Err(err) => {
                if !err.is_retryable() {
                    blobs.discard(&packed);
                }
                return Err(err);
            }
        }
        Self::open_inner(session, path, blobs).await
    }

    /// Opens an existing znode and loads its replica.
    pub(crate) async fn open(
        session: &Session,
        path: impl Into<String>,
        options: BlobOptions,
    ) -> Result<Arc<Self>> {
        let path = ZnodePath::new(path)?;
        check_reserved(&path)?;
        let blobs = Blobs::new(session, &path, options);
        Self::open_inner(session, path, blobs).await
    }

    async fn open_inner(session: &Session, path: ZnodePath, blobs: Arc<Blobs>) -> Result<Arc<Self>> {
        let cache = CacheEntry::open(session, path.as_str(), &blobs);
        let stored = Arc::new(Stored {
            session: session.clone(),
            path,
            cache,
            blobs,
            validator: RwLock::new(None),
            memo: Mutex::new(None),
            watches: Mutex::new(HashMap::new()),
            _codec: PhantomData,
        });
        let known = stored.cache.loaded(session.request_bound()).await?;
        // A live entry that a change left unread (only transactions read it) may be old, or
        // name a deleted znode: ask the server.
        let known = match stored.cache.is_suspect() {
            true => Known::Value(stored.fetch_fresh(true).await?),
            false => known,
        };
        match known {
            Known::Value(cached) => {
                stored.decode_cached(&cached)?;
            }
            _ => return Err(stored.missing()),
        }
        Ok(stored)
    }

    pub(crate) fn missing(&self) -> Error {
        Error::ZooKeeper {
            operation: "getData",
            path: self.path.to_string(),
            code: ZkErrorCode::NoNode,
        }
    }

    pub(crate) fn encode_with(
        path: &ZnodePath,
        value: &T,
        writer: WriterId,
        history: &[HistoryEntry],
    ) -> Result<Vec<u8>> {
        codec::encode_value::<C, T>(value, writer, history).map_err(|source| Error::Codec {
            path: path.to_string(),
            source,
        })
    }

    pub(crate) fn encode(&self, value: &T, writer: WriterId, history: &[HistoryEntry]) -> Result<Vec<u8>> {
        Self::encode_with(&self.path, value, writer, history)
    }

    /// Encodes `value` and, if it is large, writes its chunk set: what to write to the znode.
    pub(crate) async fn pack(&self, value: &T, writer: WriterId, history: &[HistoryEntry]) -> Result<Packed> {
        self.blobs.pack(self.encode(value, writer, history)?).await
    }

    /// Decodes a resolved value, with its envelope's metadata.
    pub(crate) fn decode(&self, cached: &Cached) -> Result<(T, EnvelopeMeta)> {
        let codec_error = |source| Error::Codec {
            path: self.path.to_string(),
            source,
        };
        if let Payload::Failed(reason) = &cached.payload {
            return Err(Error::Blob {
                path: self.path.to_string(),
                reason: reason.to_string(),
            });
        }
        let envelope = Envelope::parse(&cached.bytes).map_err(codec_error)?;
        let value = match &cached.payload {
            Payload::Fetched(payload) => envelope.decode_fetched::<C, T>(payload),
            _ => envelope.decode::<C, T>(),
        }
        .map_err(codec_error)?;
        Ok((value, envelope.into_meta()))
    }

    pub(crate) fn decode_cached(&self, cached: &Cached) -> Result<T> {
        let mut memo = self.memo.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((mzxid, value)) = memo.as_ref() {
            if *mzxid == cached.mzxid {
                return Ok(value.clone());
            }
        }
        let (value, _) = self.decode(cached)?;
        *memo = Some((cached.mzxid, value.clone()));
        Ok(value)
    }

    /// Resolves bytes read from the server (fetching a chunk set; reusing the replica's payload
    /// for the same write if `reuse`). `Ok(None)`: the set is gone, read the pointer again.
    pub(crate) async fn resolve(
        &self,
        bytes: Arc<Vec<u8>>,
        stat: &Stat,
        reuse: bool,
    ) -> Result<Option<Cached>> {
        cache::resolve(&self.cache, &self.blobs, bytes, stat, reuse).await
    }

    /// Reads the value from the server (without `sync`) and resolves it, reading the pointer
    /// again if its chunk set was replaced meanwhile. Offers it to the replica.
    pub(crate) async fn fetch_fresh(&self, reuse: bool) -> Result<Cached> {
        let mut gone = None;
        for _ in 0..FETCH_ATTEMPTS {
            let Some((bytes, stat)) = self.session.get(self.path.as_str()).await? else {
                return Err(self.missing());
            };
            match self.resolve(Arc::new(bytes), &stat, reuse).await? {
                Some(cached) => {
                    self.cache.offer(cached.clone());
                    return Ok(cached);
                }
                None if gone == Some(stat.mzxid) => {
                    return Err(Error::Blob {
                        path: self.path.to_string(),
                        reason:
                            "the chunk set the current pointer names is missing (deleted by hand?); write \
                                 the value again"
                                .into(),
                    })
                }
                None => gone = Some(stat.mzxid),
            }
        }
        Err(Error::Blob {
            path: self.path.to_string(),
            reason: format!(
                "no complete value in {FETCH_ATTEMPTS} reads: each time, the chunk set was replaced and reclaimed \
                 before it could be fetched; raise BlobOptions::grace"
            ),
        })
    }

    /// Writes `bytes` at `version` (`None`: any), with the guard operations of a large value:
    /// a plain `setData` when there are none, else one `multi`. A retirement refused because the
    /// replaced set is not where it should be is dropped (and the write sent again); a doomed new
    /// set is reported as `BadVersion` on the set (write a new one).
    pub(crate) async fn write_value(
        &self,
        bytes: &[u8],
        version: Option<i32>,
        guards: &mut Vec<BlobOp>,
    ) -> Result<Stat> {
        let path = self.path.as_str();
        loop {
            if guards.is_empty() {
                return self.session.set(path, bytes, version).await;
            }
            let mut ops = vec![MultiOp::Set {
                path,
                data: bytes,
                version,
            }];
            ops.extend(guards.iter().map(BlobOp::as_multi));
            match self.session.multi(&ops).await? {
                MultiOutcome::Committed(stats) => {
                    return stats.into_iter().next().ok_or_else(|| Error::OutcomeUnknown {
                        path: path.to_owned(),
                        detail: "multi returned no stat for the write".into(),
                    })
                }
                MultiOutcome::Refused { index: 0, error } => return Err(error),
                MultiOutcome::Refused { index, error } => {
                    let Some(op) = guards.get(index - 1).cloned() else {
                        return Err(error);
                    };
                    if op.is_retire() {
                        tracing::warn!(
                            set = op.path(),
                            "the replaced chunk set was not live; leaving it to reclaim"
                        );
                        guards.remove(index - 1);
                        continue;
                    }
                    return Err(Error::ZooKeeper {
                        operation: "multi",
                        path: op.path().to_owned(),
                        code: ZkErrorCode::BadVersion,
                    });
                }
            }
        }
    }

    /// A reclaim pass over this value's chunk sets.
    pub(crate) async fn reclaim(&self) -> Result<ReclaimReport> {
        self.blobs.reclaim().await
    }

    /// The replica's value with its version and envelope.
    pub(crate) fn cached(&self) -> Result<(T, Cached)> {
        self.cache.follow();
        match self.cache.current() {
            Known::Value(cached) => Ok((self.decode_cached(&cached)?, cached)),
            Known::Missing | Known::Unknown => Err(self.missing()),
        }
    }

    pub(crate) fn deref(&self) -> Result<T> {
        self.cached().map(|(value, _)| value)
    }

    /// Reads from the server (without `sync`), updating the replica. A chunked value's set is
    /// fetched again.
    pub(crate) async fn read_fresh(&self) -> Result<(T, Cached)> {
        let cached = self.fetch_fresh(false).await?;
        Ok((self.decode_cached(&cached)?, cached))
    }

    /// As `read_fresh`, reusing the replica's payload when the pointer read is the one it holds.
    pub(crate) async fn read_latest(&self) -> Result<(T, Cached)> {
        let cached = self.fetch_fresh(true).await?;
        Ok((self.decode_cached(&cached)?, cached))
    }

    pub(crate) async fn deref_sync(&self) -> Result<T> {
        self.deref_sync_versioned().await.map(|(value, _)| value)
    }

    pub(crate) async fn deref_sync_versioned(&self) -> Result<(T, i32)> {
        self.session.sync(self.path.as_str()).await?;
        self.read_fresh()
            .await
            .map(|(value, cached)| (value, cached.version))
    }

    pub(crate) fn validate(&self, value: &T) -> Result<()> {
        let validator = self
            .validator
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match validator {
            None => Ok(()),
            Some(validator) => validator(value).map_err(|reason| Error::Invalid {
                path: self.path.to_string(),
                reason,
            }),
        }
    }

    pub(crate) fn set_validator(
        &self,
        validator: impl Fn(&T) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Result<()> {
        let validator: Validator<T> = Arc::new(validator);
        if let Ok(current) = self.deref() {
            validator(&current).map_err(|reason| Error::Invalid {
                path: self.path.to_string(),
                reason,
            })?;
        }
        *self.validator.write().unwrap_or_else(PoisonError::into_inner) = Some(validator);
        Ok(())
    }

    pub(crate) fn add_watch(self: &Arc<Self>, key: String, f: impl Fn(&T, &T) + Send + 'static) {
        self.cache.follow();
        let mut rx = self.cache.subscribe();
        let weak = Arc::downgrade(self);
        let task = self.session.runtime().spawn(async move {
            let decode = |known: &Known| -> Option<T> {
                match known {
                    Known::Value(c) => weak.upgrade()?.decode(c).ok().map(|(v, _)| v),
                    _ => None,
                }
            };
            let first = rx.borrow_and_update().clone();
            let mut old = decode(&first);
            while rx.changed().await.is_ok() {
                let now = rx.borrow_and_update().clone();
                let new = decode(&now);
                if let (Some(o), Some(n)) = (&old, &new) {
                    f(o, n);
                }
                if new.is_some() {
                    old = new;
                }
            }
        });
        let mut watches = self.watches.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(previous) = watches.insert(key, task) {
            previous.abort();
        }
    }

    pub(crate) fn remove_watch(&self, key: &str) -> bool {
        let removed = self
            .watches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        removed.map(|task| task.abort()).is_some()
    }
}

/// The read side every stored kind shares, as documented public methods on the handle type
/// (`Ref`, `Atom`, `Pod`), each holding an `inner: Arc<Stored<T, C>>`.
macro_rules! stored_api {
    ($kind:literal) => {
        /// The znode path.
        pub fn path(&self) -> &$crate::path::ZnodePath {
            &self.inner.path
        }

        /// The session this handle belongs to.
        pub fn session(&self) -> &$crate::session::Session {
            &self.inner.session
        }

        #[doc = concat!("The latest value of the ", $kind, " this process has seen, from the watch-fed")]
        /// local replica: no request. Once followed (see below), stale by at most the watch
        /// delay (plus up to 20 ms while the value changes in bursts, when one re-read covers
        /// several changes).
        ///
        /// A replica that only transactions have read does not re-read after a change (their
        /// reads are checked against the server anyway): the first `deref` (or `add_watch`)
        /// returns the last value this process saw and makes the replica follow the value from
        /// then on. Use `deref_sync` for a value read now.
        ///
        /// # Errors
        /// [`Error::Codec`](crate::Error::Codec) if the stored value does not decode;
        /// [`Error::ZooKeeper`](crate::Error::ZooKeeper) with `NoNode` if the znode was deleted.
        pub fn deref(&self) -> $crate::error::Result<T> {
            self.inner.deref()
        }

        /// A fresh value: `sync`, then read — as fresh as ZooKeeper allows (Jepsen found
        /// sync+read not strictly linearizable; a read that must be is a `check` in a
        /// transaction).
        ///
        /// # Errors
        /// As `deref`, plus session errors.
        ///
        /// # Cancel safety
        /// Cancel safe (read only).
        pub async fn deref_sync(&self) -> $crate::error::Result<T> {
            self.inner.deref_sync().await
        }

        /// As `deref_sync`, with the znode's version: the number of writes since it was created.
        ///
        /// # Errors
        /// As `deref_sync`.
        ///
        /// # Cancel safety
        /// Cancel safe (read only).
        pub async fn deref_sync_versioned(&self) -> $crate::error::Result<(T, i32)> {
            self.inner.deref_sync_versioned().await
        }

        /// Installs a validator, checked against every new value before it is written (a
        /// rejection is [`Error::Invalid`](crate::Error::Invalid), nothing written) and against
        /// the current value now.
        ///
        /// # Errors
        /// [`Error::Invalid`](crate::Error::Invalid) if the current value is rejected (the
        /// validator is not installed).
        pub fn set_validator(
            &self,
            validator: impl Fn(&T) -> std::result::Result<(), String> + Send + Sync + 'static,
        ) -> $crate::error::Result<()> {
            self.inner.set_validator(validator)
        }

        /// Calls `f(old, new)` in this process after every change of the value, by any
        /// process. Changes in quick succession may be coalesced (`f` sees the latest); `f` runs
        /// on the session's runtime and must not block. Replaces a watch with the same key.
        pub fn add_watch(&self, key: impl Into<String>, f: impl Fn(&T, &T) + Send + 'static) {
            self.inner.add_watch(key.into(), f)
        }

        /// Removes a watch; `true` if there was one.
        pub fn remove_watch(&self, key: &str) -> bool {
            self.inner.remove_watch(key)
        }

        /// Runs a reclaim pass over this value's chunk sets now: deletes retired sets past
        /// their grace and orphans (sets named by no pointer, older than
        /// [`BlobOptions::orphan_age`](crate::BlobOptions::orphan_age)). Passes also run in the
        /// background after writes of large values; see [`blob`](crate::blob).
        ///
        /// # Errors
        /// Session, ZooKeeper and external store errors; a pass can be repeated at any time.
        ///
        /// # Cancel safety
        /// Cancel safe: every step leaves the chunk sets in a state a later pass completes.
        pub async fn reclaim(&self) -> $crate::error::Result<$crate::blob::ReclaimReport> {
            self.inner.reclaim().await
        }

        /// The large-value options this handle was opened with.
        pub fn blob_options(&self) -> &$crate::blob::BlobOptions {
            self.inner.blobs.options()
        }
    };
}
pub(crate) use stored_api;

#[cfg(test)]
mod tests {
    use super::{landing, Landing};
    use crate::codec::{encode_value, Bincode, HistoryEntry, WriterId};

    fn value(writer: u128, history: &[(u128, i32)]) -> Vec<u8> {
        let history: Vec<HistoryEntry> = history
            .iter()
            .map(|&(w, version)| HistoryEntry {
                writer: WriterId(w),
                version,
            })
            .collect();
        encode_value::<Bincode, _>(&0u8, WriterId(writer), &history).unwrap_or_default()
    }

    #[test]
    fn the_lost_reply_rule() {
        let us = WriterId(7);
        // Our write over version 3 made version 4.
        assert!(matches!(landing(&value(7, &[(1, 3)]), 4, us, 3), Landing::Landed));
        // Two more writes followed ours: still in the history.
        assert!(matches!(
            landing(&value(9, &[(8, 5), (7, 4), (1, 3)]), 6, us, 3),
            Landing::Landed
        ));
        // Still at the expected version: not (yet).
        assert!(matches!(landing(&value(1, &[]), 3, us, 3), Landing::NotYet));
        // Moved on by others, and the history reaches back past version 4: not ours.
        assert!(matches!(
            landing(&value(9, &[(8, 5), (2, 4)]), 6, us, 3),
            Landing::NotLanded
        ));
        // Moved on further than the history records: never guess.
        assert!(matches!(
            landing(&value(9, &[(8, 9)]), 10, us, 3),
            Landing::Unknown(_)
        ));
        assert!(matches!(landing(b"foreign", 4, us, 3), Landing::Unknown(_)));
    }
}
