//! `Ref<T>`: a value in a znode, read from a watch-fed replica, changed in transactions.

use std::any::Any;
use std::sync::Arc;

use super::cache::{CacheEntry, Cached};
use super::stored::{stored_api, Stored, Value};
use super::txn;
use crate::blob::{BlobOptions, Blobs, BoxFuture};
use crate::codec::{Bincode, Codec, EnvelopeMeta, HistoryEntry, WriterId};
use crate::error::{Error, Result};
use crate::path::ZnodePath;
use crate::session::{Session, Stat};

/// A value in a transaction, type-erased.
pub(crate) type AnyValue = Box<dyn Any + Send + Sync>;

/// A Clojure-style ref: a value of type `T` stored in a znode (encoded with codec `C`), shared by
/// every process that opens the same path.
///
/// - Outside a transaction, [`deref`](Ref::deref) reads the watch-fed local replica (no request;
///   stale by at most the watch delay) and [`deref_sync`](Ref::deref_sync) reads from the server.
/// - Inside [`dosync`](fn@crate::dosync), [`get`](Ref::get), [`alter`](Ref::alter),
///   [`ref_set`](Ref::ref_set), [`commute`](Ref::commute) and [`ensure`](Ref::ensure) take part
///   in the transaction; outside one they are [`Error::NoTransaction`].
///
/// Cloning is cheap (a reference count); clones share the replica and validator.
pub struct Ref<T, C = Bincode> {
    pub(crate) inner: Arc<Stored<T, C>>,
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
        Self::new_with(session, path, initial, BlobOptions::default()).await
    }

    /// As [`new`](Ref::new), with explicit options for large values (external store, maximum
    /// size, …; see [`blob`](crate::blob)).
    ///
    /// # Errors
    /// As [`new`](Ref::new); [`Error::ValueAboveMaximum`] if `initial` is above the maximum;
    /// [`Error::Blob`] if its chunks cannot be written.
    ///
    /// # Cancel safety
    /// Cancel safe: an interrupted upload of a large initial value leaves an orphan chunk set
    /// that reclaim removes.
    pub async fn new_with(
        session: &Session,
        path: impl Into<String>,
        initial: T,
        options: BlobOptions,
    ) -> Result<Ref<T, C>> {
        Ok(Ref {
            inner: Stored::create_or_open(session, path, initial, options).await?,
        })
    }

    /// The existing ref at `path`.
    ///
    /// For a ref that may not exist yet: [`new`](Ref::new) creates it with your initial value
    /// if it is absent (and keeps an existing one); [`open_when_created`](Ref::open_when_created)
    /// waits for someone else to create it.
    ///
    /// # Errors
    /// [`Error::ZooKeeper`] with [`ZkErrorCode::NoNode`](crate::ZkErrorCode::NoNode) if there is
    /// none; [`Error::Codec`] if its value is not a `T` written with `C`; session errors.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn open(session: &Session, path: impl Into<String>) -> Result<Ref<T, C>> {
        Self::open_with(session, path, BlobOptions::default()).await
    }

    /// As [`open`](Ref::open), with explicit options for large values.
    ///
    /// # Errors
    /// As [`open`](Ref::open); [`Error::Blob`] if the value's chunks cannot be read.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn open_with(
        session: &Session,
        path: impl Into<String>,
        options: BlobOptions,
    ) -> Result<Ref<T, C>> {
        Ok(Ref {
            inner: Stored::open(session, path, options).await?,
        })
    }

    /// The ref at `path`, waiting until someone creates it: never creates it itself (use
    /// [`new`](Ref::new) for create-if-absent). The wait costs no polling: one `exists` with a
    /// watch, and another read when the watch fires. Bound the wait with a timeout if needed.
    ///
    /// # Errors
    /// [`Error::InvalidPath`]; [`Error::Codec`] if the value, once there, is not a `T` written
    /// with `C`; session errors ([`Error::SessionLost`](crate::Error::SessionLost), …) end the
    /// wait.
    ///
    /// # Cancel safety
    /// Cancel safe: it only reads and watches.
    pub async fn open_when_created(session: &Session, path: impl Into<String>) -> Result<Ref<T, C>> {
        Self::open_when_created_with(session, path, BlobOptions::default()).await
    }

    /// As [`open_when_created`](Ref::open_when_created), with explicit options for large values.
    ///
    /// # Errors
    /// As [`open_when_created`](Ref::open_when_created); [`Error::Blob`] if the value's chunks
    /// cannot be read.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn open_when_created_with(
        session: &Session,
        path: impl Into<String>,
        options: BlobOptions,
    ) -> Result<Ref<T, C>> {
        let path = ZnodePath::new(path)?;
        loop {
            let (stat, watch) = session.exists_and_watch(path.as_str()).await?;
            if stat.is_some() {
                match Self::open_with(session, path.as_str(), options.clone()).await {
                    // Deleted again between the two reads: wait for the next creation.
                    Err(Error::ZooKeeper {
                        code: crate::ZkErrorCode::NoNode,
                        ..
                    }) => continue,
                    other => return other,
                }
            }
            // Created, or the session ended (the next `exists` then says how).
            let _ = watch.changed().await;
        }
    }

    stored_api!("ref");

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

    /// The values of several refs in the current transaction, in the order given — as `get` of
    /// each, but in at most one round trip for all of them together: refs whose watch-fed
    /// replica vouches for its value cost no request, the others are read in one pipelined
    /// round (an audit of `n` refs costs at most `n` node reads, none when every replica is
    /// watched and current).
    ///
    /// ```no_run
    /// # async fn demo(accounts: &[mazurka::Ref<i64>]) -> mazurka::Result<()> {
    /// let total: i64 = mazurka::dosync(|| async move {
    ///     Ok::<_, mazurka::Error>(mazurka::Ref::get_all(accounts).await?.iter().sum())
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`get`](Ref::get); [`Error::Config`] if the refs belong to different sessions.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn get_all<'a>(refs: impl IntoIterator<Item = &'a Ref<T, C>>) -> Result<Vec<T>>
    where
        T: 'a,
        C: 'a,
    {
        let refs: Vec<&Ref<T, C>> = refs.into_iter().collect();
        let values = txn::read_all(refs.iter().map(|r| r.erased()).collect(), "get_all").await?;
        refs.iter()
            .zip(&values)
            .map(|(r, value)| downcast::<T>(value, &r.inner.path))
            .collect()
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
    /// As in Clojure, the in-transaction value a commute returns (and a later `get` of the same
    /// ref in this attempt) is computed from the latest value this process knows, outside the
    /// attempt's checked snapshot: do not base other writes on it. The committed value is always
    /// `f` applied to the value current at commit.
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

/// What the transaction engine needs of a ref, without knowing `T`.
pub(crate) trait ErasedRef: Send + Sync {
    fn path(&self) -> &ZnodePath;
    fn session(&self) -> &Session;
    fn cache(&self) -> &CacheEntry;
    fn blobs(&self) -> &Arc<Blobs>;
    /// Decodes a resolved value.
    fn decode(&self, cached: &Cached) -> Result<(AnyValue, EnvelopeMeta)>;
    /// Resolves bytes read from the server (`None`: the chunk set is gone).
    fn resolve(&self, bytes: Arc<Vec<u8>>, stat: Stat) -> BoxFuture<'_, Result<Option<Cached>>>;
    /// The latest value from the server, resolved (reusing the replica's payload if current).
    fn fetch_latest(&self) -> BoxFuture<'_, Result<Cached>>;
    fn encode(&self, value: &AnyValue, writer: WriterId, history: &[HistoryEntry]) -> Result<Vec<u8>>;
    fn validate(&self, value: &AnyValue) -> Result<()>;
    fn clone_value(&self, value: &AnyValue) -> AnyValue;
}

impl<T: Value, C: Codec> ErasedRef for Stored<T, C> {
    fn path(&self) -> &ZnodePath {
        &self.path
    }

    fn session(&self) -> &Session {
        &self.session
    }

    fn cache(&self) -> &CacheEntry {
        &self.cache
    }

    fn blobs(&self) -> &Arc<Blobs> {
        &self.blobs
    }

    fn decode(&self, cached: &Cached) -> Result<(AnyValue, EnvelopeMeta)> {
        let (value, meta) = Stored::decode(self, cached)?;
        Ok((Box::new(value), meta))
    }

    fn resolve(&self, bytes: Arc<Vec<u8>>, stat: Stat) -> BoxFuture<'_, Result<Option<Cached>>> {
        Box::pin(async move { Stored::resolve(self, bytes, &stat, true).await })
    }

    fn fetch_latest(&self) -> BoxFuture<'_, Result<Cached>> {
        Box::pin(Stored::fetch_fresh(self, true))
    }

    fn encode(&self, value: &AnyValue, writer: WriterId, history: &[HistoryEntry]) -> Result<Vec<u8>> {
        let typed = downcast::<T>(value, &self.path)?;
        Stored::encode(self, &typed, writer, history)
    }

    fn validate(&self, value: &AnyValue) -> Result<()> {
        Stored::validate(self, &downcast::<T>(value, &self.path)?)
    }

    fn clone_value(&self, value: &AnyValue) -> AnyValue {
        match value.downcast_ref::<T>() {
            Some(v) => Box::new(v.clone()),
            None => Box::new(()),
        }
    }
}
