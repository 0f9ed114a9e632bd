//! A typed value in a znode with a watch-fed local replica: the core shared by [`Ref`],
//! [`Atom`](crate::Atom) and [`Pod`](crate::Pod) (they differ only in how they change it).
//!
//! [`Ref`]: crate::Ref

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::cache::{CacheEntry, Cached, Known};
use crate::codec::{self, Codec, EnvelopeMeta, HistoryEntry, WriterId, MAX_HISTORY};
use crate::error::{Error, Result, ZkErrorCode};
use crate::path::ZnodePath;
use crate::session::{CreateMode, Session};

/// What a ref, atom or pod may hold: serde-serializable, cloneable, shareable between tasks.
pub trait Value: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Value for T {}

type Validator<T> = Arc<dyn Fn(&T) -> std::result::Result<(), String> + Send + Sync>;

/// The value at one path, for one session. Shared (through an `Arc`) by the handles' clones.
pub(crate) struct Stored<T, C> {
    pub(crate) session: Session,
    pub(crate) path: ZnodePath,
    pub(crate) cache: Arc<CacheEntry>,
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

impl<T: Value, C: Codec> Stored<T, C> {
    /// Creates the znode with `initial` if absent (parents too), then opens it.
    pub(crate) async fn create_or_open(
        session: &Session,
        path: impl Into<String>,
        initial: T,
    ) -> Result<Arc<Self>> {
        let path = ZnodePath::new(path)?;
        let bytes = Self::encode_with(&path, &initial, WriterId::random(), &[])?;
        if let Some(parent) = path.parent().filter(|p| !p.is_root()) {
            session
                .ensure_path(parent.as_str(), CreateMode::Persistent)
                .await?;
        }
        match session
            .create(path.as_str(), &bytes, CreateMode::Persistent)
            .await
        {
            Ok(_)
            | Err(Error::ZooKeeper {
                code: ZkErrorCode::NodeExists,
                ..
            }) => {}
            Err(err) => return Err(err),
        }
        Self::open(session, path.as_str()).await
    }

    /// Opens an existing znode and loads its replica.
    pub(crate) async fn open(session: &Session, path: impl Into<String>) -> Result<Arc<Self>> {
        let path = ZnodePath::new(path)?;
        let cache = CacheEntry::open(session, path.as_str());
        let stored = Arc::new(Stored {
            session: session.clone(),
            path,
            cache,
            validator: RwLock::new(None),
            memo: Mutex::new(None),
            watches: Mutex::new(HashMap::new()),
            _codec: PhantomData,
        });
        match stored.cache.loaded(session.request_bound()).await? {
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

    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<(T, EnvelopeMeta)> {
        codec::decode_value::<C, T>(bytes).map_err(|source| Error::Codec {
            path: self.path.to_string(),
            source,
        })
    }

    pub(crate) fn decode_cached(&self, cached: &Cached) -> Result<T> {
        let mut memo = self.memo.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((mzxid, value)) = memo.as_ref() {
            if *mzxid == cached.mzxid {
                return Ok(value.clone());
            }
        }
        let (value, _) = self.decode(&cached.bytes)?;
        *memo = Some((cached.mzxid, value.clone()));
        Ok(value)
    }

    /// The replica's value with its version and envelope.
    pub(crate) fn cached(&self) -> Result<(T, Cached)> {
        match self.cache.current() {
            Known::Value(cached) => Ok((self.decode_cached(&cached)?, cached)),
            Known::Missing | Known::Unknown => Err(self.missing()),
        }
    }

    pub(crate) fn deref(&self) -> Result<T> {
        self.cached().map(|(value, _)| value)
    }

    /// Reads from the server (without `sync`), updating the replica.
    pub(crate) async fn read_fresh(&self) -> Result<(T, Cached)> {
        match self.session.get(self.path.as_str()).await? {
            Some((bytes, stat)) => {
                let cached = Cached::new(bytes, &stat);
                self.cache
                    .offer(cached.bytes.clone(), cached.version, cached.mzxid);
                Ok((self.decode_cached(&cached)?, cached))
            }
            None => Err(self.missing()),
        }
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
        let mut rx = self.cache.subscribe();
        let weak = Arc::downgrade(self);
        let task = self.session.runtime().spawn(async move {
            let decode = |known: &Known| -> Option<T> {
                match known {
                    Known::Value(c) => weak.upgrade()?.decode(&c.bytes).ok().map(|(v, _)| v),
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
        /// local replica: no request; stale by at most the watch delay (plus up to 20 ms while
        /// the value changes in bursts, when one re-read covers several changes).
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
    };
}
pub(crate) use stored_api;
