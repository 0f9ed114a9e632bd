//! `Ref<T>`: a value in a znode, read from a watch-fed replica, changed in transactions.

use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::cache::{CacheEntry, Cached, Known};
use super::txn;
use crate::codec::{self, Bincode, Codec, EnvelopeMeta, HistoryEntry, WriterId};
use crate::error::{Error, Result, ZkErrorCode};
use crate::path::ZnodePath;
use crate::session::{CreateMode, Session};

/// What a ref may hold: serde-serializable, cloneable, shareable between tasks.
pub trait Value: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Value for T {}

/// A value in a transaction, type-erased.
pub(crate) type AnyValue = Box<dyn Any + Send + Sync>;

type Validator<T> = Arc<dyn Fn(&T) -> std::result::Result<(), String> + Send + Sync>;

/// A Clojure-style ref: a value of type `T` stored in a znode (encoded with codec `C`), shared by
/// every process that opens the same path.
///
/// - Outside a transaction, [`deref`](Ref::deref) reads the watch-fed local replica (no request;
///   stale by at most the watch delay) and [`deref_sync`](Ref::deref_sync) reads from the server.
/// - Inside [`dosync`](crate::dosync), [`get`](Ref::get), [`alter`](Ref::alter),
///   [`ref_set`](Ref::ref_set), [`commute`](Ref::commute) and [`ensure`](Ref::ensure) take part
///   in the transaction; outside one they are [`Error::NoTransaction`].
///
/// Cloning is cheap (a reference count); clones share the replica and validator.
pub struct Ref<T, C = Bincode> {
    pub(crate) inner: Arc<RefInner<T, C>>,
}

impl<T, C> Clone for Ref<T, C> {
    fn clone(&self) -> Self {
        Ref {
            inner: self.inner.clone(),
        }
    }
}

impl<T, C: Codec> std::fmt::Debug for Ref<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ref")
            .field("path", &self.inner.path.as_str())
            .field("codec", &C::NAME)
            .finish()
    }
}

pub(crate) struct RefInner<T, C> {
    pub(crate) session: Session,
    pub(crate) path: ZnodePath,
    pub(crate) cache: Arc<CacheEntry>,
    validator: RwLock<Option<Validator<T>>>,
    /// The last decoded value and the mzxid it was decoded from.
    memo: Mutex<Option<(i64, T)>>,
    watches: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    _codec: PhantomData<fn() -> C>,
}

impl<T, C> Drop for RefInner<T, C> {
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

impl<T: Value, C: Codec> Ref<T, C> {
    /// The ref at `path`, created with `initial` if it does not exist yet (parents too);
    /// an existing value is kept (and must decode as `T` with codec `C`).
    ///
    /// # Errors
    /// [`Error::InvalidPath`]; [`Error::ValueTooLarge`] if `initial` does not fit a znode;
    /// [`Error::Codec`] if the existing value is not a `T` written with `C`; session errors.
    ///
    /// # Cancel safety
    /// Cancel safe: the create is idempotent.
    pub async fn new(session: &Session, path: impl Into<String>, initial: T) -> Result<Ref<T, C>> {
        let path = ZnodePath::new(path)?;
        let bytes = encode::<T, C>(&path, &initial, WriterId::random(), &[])?;
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

    /// The existing ref at `path`.
    ///
    /// # Errors
    /// [`Error::ZooKeeper`] with [`ZkErrorCode::NoNode`] if there is none; [`Error::Codec`] if its
    /// value is not a `T` written with `C`; session errors.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn open(session: &Session, path: impl Into<String>) -> Result<Ref<T, C>> {
        let path = ZnodePath::new(path)?;
        let cache = CacheEntry::open(session, path.as_str());
        let r = Ref {
            inner: Arc::new(RefInner {
                session: session.clone(),
                path,
                cache,
                validator: RwLock::new(None),
                memo: Mutex::new(None),
                watches: Mutex::new(HashMap::new()),
                _codec: PhantomData,
            }),
        };
        match r.inner.cache.loaded(session.request_bound()).await? {
            Known::Value(cached) => {
                r.decode_cached(&cached)?;
            }
            _ => return Err(r.missing()),
        }
        Ok(r)
    }

    /// The ref's path.
    pub fn path(&self) -> &ZnodePath {
        &self.inner.path
    }

    /// The session the ref belongs to.
    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    fn missing(&self) -> Error {
        Error::ZooKeeper {
            operation: "getData",
            path: self.inner.path.to_string(),
            code: ZkErrorCode::NoNode,
        }
    }

    fn decode_cached(&self, cached: &Cached) -> Result<T> {
        let mut memo = self.inner.memo.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((mzxid, value)) = memo.as_ref() {
            if *mzxid == cached.mzxid {
                return Ok(value.clone());
            }
        }
        let (value, _) = decode::<T, C>(&self.inner.path, &cached.bytes)?;
        *memo = Some((cached.mzxid, value.clone()));
        Ok(value)
    }

    /// The latest value this process has seen: from the watch-fed replica, no request. Inside a
    /// transaction, use [`get`](Ref::get) instead (this does not take part in it).
    ///
    /// # Errors
    /// [`Error::Codec`] if the stored value does not decode; [`Error::ZooKeeper`] with
    /// [`ZkErrorCode::NoNode`] if the znode was deleted.
    pub fn deref(&self) -> Result<T> {
        match self.inner.cache.current() {
            Known::Value(cached) => self.decode_cached(&cached),
            Known::Missing | Known::Unknown => Err(self.missing()),
        }
    }

    /// A fresh value: `sync`, then read — as fresh as ZooKeeper allows (note that Jepsen found
    /// sync+read not strictly linearizable; a read that must be is a `check` in a transaction).
    ///
    /// # Errors
    /// As [`deref`](Ref::deref), plus session errors.
    ///
    /// # Cancel safety
    /// Cancel safe (read only).
    pub async fn deref_sync(&self) -> Result<T> {
        let session = &self.inner.session;
        session.sync(self.inner.path.as_str()).await?;
        match session.get(self.inner.path.as_str()).await? {
            Some((bytes, stat)) => {
                let bytes = Arc::new(bytes);
                self.inner.cache.offer(bytes.clone(), stat.version, stat.mzxid);
                self.decode_cached(&Cached {
                    bytes,
                    version: stat.version,
                    mzxid: stat.mzxid,
                })
            }
            None => Err(self.missing()),
        }
    }

    /// Installs a validator, checked against every new value before a transaction commits
    /// (a rejection aborts it with [`Error::Invalid`], nothing written) and against the current
    /// value now.
    ///
    /// # Errors
    /// [`Error::Invalid`] if the current value is rejected (the validator is not installed).
    pub fn set_validator(
        &self,
        validator: impl Fn(&T) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Result<()> {
        let validator: Validator<T> = Arc::new(validator);
        if let Ok(current) = self.deref() {
            validator(&current).map_err(|reason| Error::Invalid {
                path: self.inner.path.to_string(),
                reason,
            })?;
        }
        *self
            .inner
            .validator
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(validator);
        Ok(())
    }

    /// Calls `f(old, new)` in this process after every change of the value, by any process.
    /// Changes in quick succession may be coalesced (`f` sees the latest); `f` runs on the
    /// session's runtime and must not block. Replaces a watch with the same key.
    pub fn add_watch(&self, key: impl Into<String>, f: impl Fn(&T, &T) + Send + 'static) {
        let mut rx = self.inner.cache.subscribe();
        let path = self.inner.path.clone();
        let task = self.inner.session.runtime().spawn(async move {
            let mut old: Option<T> = match &*rx.borrow_and_update() {
                Known::Value(c) => decode::<T, C>(&path, &c.bytes).ok().map(|(v, _)| v),
                _ => None,
            };
            while rx.changed().await.is_ok() {
                let new = match &*rx.borrow_and_update() {
                    Known::Value(c) => decode::<T, C>(&path, &c.bytes).ok().map(|(v, _)| v),
                    _ => None,
                };
                if let (Some(o), Some(n)) = (&old, &new) {
                    f(o, n);
                }
                if new.is_some() {
                    old = new;
                }
            }
        });
        let mut watches = self.inner.watches.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(previous) = watches.insert(key.into(), task) {
            previous.abort();
        }
    }

    /// Removes a watch; `true` if there was one.
    pub fn remove_watch(&self, key: &str) -> bool {
        let removed = self
            .inner
            .watches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        removed.map(|task| task.abort()).is_some()
    }

    /// The value in the current transaction (read at a consistent snapshot, recorded and checked
    /// at commit).
    ///
    /// # Errors
    /// [`Error::NoTransaction`] outside a transaction; [`Error::Conflict`] when the snapshot can
    /// no longer be consistent (the transaction restarts — propagate it with `?`).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn get(&self) -> Result<T> {
        let value = txn::read(self.erased(), "get").await?;
        downcast::<T>(&value, &self.inner.path)
    }

    /// Sets the value in the current transaction (written at commit, if nobody changed what the
    /// transaction read). Returns the value.
    ///
    /// # Errors
    /// As [`get`](Ref::get).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn ref_set(&self, value: T) -> Result<T> {
        txn::write(self.erased(), Box::new(value.clone()), "ref_set").await?;
        Ok(value)
    }

    /// Applies `f` to the value in the current transaction and sets the result; returns it.
    ///
    /// # Errors
    /// As [`get`](Ref::get).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn alter(&self, f: impl FnOnce(&T) -> T) -> Result<T> {
        let current = self.get().await?;
        self.ref_set(f(&current)).await
    }

    /// Like [`alter`](Ref::alter) for commutative changes (counters, set insertions): `f` is
    /// applied again at commit time to the then-current value, so concurrent commuters do not
    /// make each other rerun the transaction. Returns the in-transaction value.
    ///
    /// # Errors
    /// As [`get`](Ref::get); [`Error::Invalid`] after a `ref_set`/`alter` of the same ref.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn commute(&self, f: impl Fn(&T) -> T + Send + Sync + 'static) -> Result<T> {
        let path = self.inner.path.clone();
        let erased: txn::CommuteFn = Box::new(move |v: &AnyValue| -> Result<AnyValue> {
            let typed = downcast::<T>(v, &path)?;
            Ok(Box::new(f(&typed)))
        });
        let value = txn::commute(self.erased(), erased).await?;
        downcast::<T>(&value, &self.inner.path)
    }

    /// Reads the value and protects it from other writers until the transaction commits (a
    /// `check` in the commit), without writing it. (Every read is checked at commit anyway —
    /// Mazurka's transactions are serializable — so `ensure` is `get` under Clojure's name.)
    ///
    /// # Errors
    /// As [`get`](Ref::get).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn ensure(&self) -> Result<T> {
        let value = txn::read(self.erased(), "ensure").await?;
        downcast::<T>(&value, &self.inner.path)
    }

    fn erased(&self) -> Arc<dyn ErasedRef> {
        self.inner.clone()
    }
}

pub(crate) fn downcast<T: Value>(value: &AnyValue, path: &ZnodePath) -> Result<T> {
    value.downcast_ref::<T>().cloned().ok_or_else(|| Error::Invalid {
        path: path.to_string(),
        reason: format!(
            "two refs with different value types share this path (expected {})",
            std::any::type_name::<T>()
        ),
    })
}

fn encode<T: Value, C: Codec>(
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

fn decode<T: Value, C: Codec>(path: &ZnodePath, bytes: &[u8]) -> Result<(T, EnvelopeMeta)> {
    codec::decode_value::<C, T>(bytes).map_err(|source| Error::Codec {
        path: path.to_string(),
        source,
    })
}

/// What the transaction engine needs of a ref, without knowing `T`.
pub(crate) trait ErasedRef: Send + Sync {
    fn path(&self) -> &ZnodePath;
    fn session(&self) -> &Session;
    fn cache(&self) -> &CacheEntry;
    fn decode(&self, bytes: &[u8]) -> Result<(AnyValue, EnvelopeMeta)>;
    fn encode(&self, value: &AnyValue, writer: WriterId, history: &[HistoryEntry]) -> Result<Vec<u8>>;
    fn validate(&self, value: &AnyValue) -> Result<()>;
    fn clone_value(&self, value: &AnyValue) -> AnyValue;
}

impl<T: Value, C: Codec> ErasedRef for RefInner<T, C> {
    fn path(&self) -> &ZnodePath {
        &self.path
    }

    fn session(&self) -> &Session {
        &self.session
    }

    fn cache(&self) -> &CacheEntry {
        &self.cache
    }

    fn decode(&self, bytes: &[u8]) -> Result<(AnyValue, EnvelopeMeta)> {
        let (value, meta) = decode::<T, C>(&self.path, bytes)?;
        Ok((Box::new(value), meta))
    }

    fn encode(&self, value: &AnyValue, writer: WriterId, history: &[HistoryEntry]) -> Result<Vec<u8>> {
        let typed = downcast::<T>(value, &self.path)?;
        encode::<T, C>(&self.path, &typed, writer, history)
    }

    fn validate(&self, value: &AnyValue) -> Result<()> {
        let validator = self
            .validator
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match validator {
            None => Ok(()),
            Some(validator) => {
                let typed = downcast::<T>(value, &self.path)?;
                validator(&typed).map_err(|reason| Error::Invalid {
                    path: self.path.to_string(),
                    reason,
                })
            }
        }
    }

    fn clone_value(&self, value: &AnyValue) -> AnyValue {
        match value.downcast_ref::<T>() {
            Some(v) => Box::new(v.clone()),
            None => Box::new(()),
        }
    }
}
