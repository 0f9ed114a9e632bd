//! Values larger than a znode: chunk sets in ZooKeeper (the default) or objects in an external
//! [`BlobStore`], made visible atomically by the ordinary versioned write of a small pointer.
//!
//! Every [`Ref`](crate::Ref), [`Atom`](crate::Atom) and [`Pod`](crate::Pod) handles large values
//! the same way; nothing changes in how they are used. A value whose envelope would exceed the
//! inline limit ([`BlobOptions::inline_limit`], 900 KiB by default — a znode must fit one
//! ZooKeeper request frame of 1,048,575 bytes) is written **first** as an immutable *chunk set*,
//! then made visible by the handle's usual write — the transaction's `multi`, the atom's
//! versioned write, the pod's fenced check-in — of a small *pointer* envelope (the envelope's
//! chunked flag set) that names the set. The pointer's version is what transactions check, so
//! opacity, serializability and lost-reply resolution work exactly as for small values. A
//! transaction writing several large refs writes all their chunk sets, then commits one `multi`
//! of pointers: all or nothing.
//!
//! # On ZooKeeper
//!
//! For a value at `/app/cfg`:
//!
//! ```text
//! /app/cfg                          the pointer envelope (or the inline value)
//! /app/cfg.blobs                    container node: one child per chunk set
//! /app/cfg.blobs/<set id>           a chunk set: 32 hex digits, random; data = set record;
//!                                   znode version 0 = live or being written, ≥ 1 = retired
//! /app/cfg.blobs/<set id>/0 … /n−1  the chunks (≤ BlobOptions::chunk_bytes each), ZooKeeper store only
//! ```
//!
//! `<path>.blobs` is reserved: no ref, atom or pod may be opened at a path with a segment
//! ending in `.blobs`. A pod's lock lives at `<path>.lock`, so the two never collide.
//!
//! The **pointer** (the payload of an envelope whose chunked flag is set; the envelope's codec id
//! is the codec of the reassembled payload) is, little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | `0` | pointer format, `1` |
//! | `1` | store: `0` = ZooKeeper chunks, `1` = external [`BlobStore`] |
//! | `2..18` | set id, `u128` |
//! | `18..26` | payload length in bytes, `u64` |
//! | `26..30` | chunk count, `u32` (ZooKeeper store; `0` for external) |
//! | `30..34` | chunk size, `u32`: every chunk but the last has exactly this length |
//! | `34..66` | SHA-256 of the payload |
//! | `66..68` | key length `k`, `u16` |
//! | `68..68+k` | the external object's key, UTF-8 (empty for ZooKeeper chunks) |
//!
//! A reader checks the length and the SHA-256 of what it reassembles: a torn or foreign chunk set
//! is an [`Error::Blob`](crate::Error::Blob), never a wrong value.
//!
//! An external store's objects are keyed `<path without its leading '/'>.blobs/<set id>.<sha256>`:
//! named by their content (the hash) and owned by one chunk set (the set id), so deleting one set
//! never touches another's bytes, and no reference counts are needed. The set's znode is kept in
//! ZooKeeper for external objects too (with no children; its record names the key): it is what the
//! reclaim below works with.
//!
//! # Readers never see a mix of two values
//!
//! A chunk set is written completely before any pointer names it, and never changes afterwards;
//! set ids are random 128-bit numbers, never reused. A reader follows the pointer it read; if it
//! finds a chunk missing, the set was reclaimed after the pointer moved on, so it reads the pointer
//! again and follows the new one (inside a transaction, the attempt restarts before the body sees
//! anything). What it returns always hashes to the pointer's SHA-256.
//!
//! The watch-fed replica holds **resolved** payloads: its background task fetches a new value's
//! chunks before publishing it, so [`deref`](crate::Ref::deref) stays synchronous and
//! request-free; a handle's own writes are offered to it with their payload (no download). A
//! transaction's first read comes from the replica; later reads take the pointers in one atomic
//! `multiRead` and fetch chunk sets before the body sees the values. `deref_sync` always fetches
//! the chunks again (a fresh read); other reads reuse the replica's payload when its pointer is the
//! one just read.
//!
//! # Reclaim, and why it is safe for readers
//!
//! Chunk sets have a life cycle kept in ZooKeeper itself, with no clocks of the clients involved:
//!
//! 1. **Written** (set znode at version 0), then made **live** by a pointer commit. Every commit
//!    that makes a set visible includes a `check` that the set's znode is still at version 0.
//! 2. **Retired** *in the same `multi`* that moves the pointer away from it: the commit sets the
//!    old set's znode (version 0 → 1), so its modification time is the retirement time, on the
//!    ZooKeeper leader's clock. There is no window in which a superseded set is not marked.
//! 3. **Deleted** by a reclaim pass once retired for at least [`BlobOptions::grace`] (5 s by
//!    default; "now" is the leader's clock too, read from the pass's own small write).
//!
//! A reader that read a pointer before it moved may still be fetching the old set: it has
//! `grace` from the retirement to finish, and if it is slower it finds a chunk missing and
//! retries from the pointer (above) — slower, never wrong.
//!
//! **Orphans** — sets whose writer crashed between its chunks and its commit, or whose commit
//! was refused, or whose outcome stayed unknown — are at version 0 and named by no pointer. Such a
//! set was **never visible**: a set becomes visible only through a pointer, and the pointer leaves
//! a set only by a commit that retires it (version ≥ 1). So once it is older than
//! [`BlobOptions::orphan_age`] (60 s by default: time for a slow writer to finish), a pass dooms it
//! with a `multi` that checks the pointer is unchanged and sets the set's version (so the late
//! writer's commit, which checks version 0, can no longer make it visible), and deletes it at once.
//! A writer whose commit is refused deletes its own set immediately.
//!
//! Passes run in the background after any write that created or retired a set (one at a time per
//! handle, `grace` after the write, repeating while retired sets remain), and on demand with
//! `reclaim()` on a [`Ref`](crate::Ref::reclaim), [`Atom`](crate::Atom::reclaim) or
//! [`Pod`](crate::Pod::reclaim). So garbage is bounded by the sets retired within the last
//! `grace` plus the orphans younger than `orphan_age`; a process that exits leaves at most its last
//! retirements to the next writer's pass (or a `reclaim()`).
//!
//! # Sizes
//!
//! A value above [`BlobOptions::max_value_bytes`] (64 MiB by default) is refused with
//! [`Error::ValueAboveMaximum`](crate::Error::ValueAboveMaximum) after encoding, before any request:
//! nothing is written. ZooKeeper keeps every znode in memory on every server: size its heap for
//! the large values it holds (two copies of a value while a write replaces it, until the old set
//! is reclaimed), plus its last `zookeeper.commitLogCount` (500) committed transactions, which it
//! also keeps in memory — with 1 MB chunks, about 500 MB more under a steady stream of large
//! writes.
//!
//! # External stores
//!
//! [`BlobOptions::store`] selects a [`BlobStore`] per handle. With the `object-store` feature,
//! `ObjectStoreBlobs` adapts any [`object_store`](https://docs.rs/object_store) backend: the
//! local filesystem is built in; S3, GCS and Azure are a matter of configuration (enable that
//! crate's `aws`/`gcp`/`azure` feature in your own `Cargo.toml` and use
//! `ObjectStoreBlobs::from_url("s3://bucket/prefix", options)`); HDFS through a crate
//! implementing `ObjectStore` for it. Every handle on one path must use the same store.
//!
//! # Hostile values
//!
//! Whoever can write a value's znodes can write any bytes there. A reader follows a pointer
//! only if its set's size is within [`BlobOptions::max_value_bytes`] (checked before any request,
//! so memory is bounded by that), its chunks are at least 1 KiB (unless it has only one), and, in
//! an external store, its key is exactly the canonical one above, derived from the ref's path,
//! the set id and the SHA-256: anything else is an [`Error::Blob`](crate::Error::Blob). Each chunk
//! must have the exact length the pointer implies. A retirement writes the canonical key into
//! the record, never the pointer's, and a reclaim pass deletes an object only if the record names
//! the set's own canonical key (a forged record loses its znode, never someone else's object).
//!
//! # Test hook
//!
//! Only in builds with the `testkit` feature: when the environment variable
//! `MAZURKA_TEST_BLOB_STALL_AFTER` is set to `k`, a writer of a ZooKeeper chunk set stops after
//! its first `k` chunks are written, prints `MAZURKA_TEST_BLOB_STALLED <set znode path>` on
//! standard error and waits forever — so that a test can kill a writer process at a known point
//! with `SIGKILL`. Without that feature the variable is never read.

mod engine;
#[cfg(feature = "object-store")]
mod objects;
mod pointer;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use bytes::Bytes;

pub(crate) use engine::{BlobOp, Blobs, Fetched, Packed};
#[cfg(feature = "object-store")]
pub use objects::ObjectStoreBlobs;

/// A boxed, sendable future: what [`BlobStore`] methods return (so the trait can be used as
/// `Arc<dyn BlobStore>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An error from a [`BlobStore`] implementation.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where large values' bytes live when not in ZooKeeper: an object store, a filesystem, …
///
/// Mazurka calls it with keys it makes unique (a random set id and the content's SHA-256, see
/// the [module docs](self)), writes each key at most once, reads only keys a committed pointer
/// names, and deletes a key only when no reader can still need it. So an implementation needs no
/// locking, versioning or overwrite protection of its own; it must make a `put` durable and
/// complete before returning `Ok` (a reader may fetch the object as soon as the pointer is
/// visible).
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use mazurka::blob::{BlobStore, BoxError, BoxFuture, Bytes};
///
/// /// Process-local, for illustration only (other processes cannot read it).
/// #[derive(Debug, Default)]
/// struct InMemory(Mutex<HashMap<String, Bytes>>);
///
/// impl BlobStore for InMemory {
///     fn describe(&self) -> String {
///         "in-memory".into()
///     }
///     fn put<'a>(&'a self, key: &'a str, data: Bytes) -> BoxFuture<'a, Result<(), BoxError>> {
///         Box::pin(async move {
///             self.0.lock().map_err(|e| e.to_string())?.insert(key.to_owned(), data);
///             Ok(())
///         })
///     }
///     fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, BoxError>> {
///         Box::pin(async move { Ok(self.0.lock().map_err(|e| e.to_string())?.get(key).cloned()) })
///     }
///     fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BoxError>> {
///         Box::pin(async move {
///             self.0.lock().map_err(|e| e.to_string())?.remove(key);
///             Ok(())
///         })
///     }
/// }
/// let options = mazurka::BlobOptions::default().store(std::sync::Arc::new(InMemory::default()));
/// # let _ = options;
/// ```
pub trait BlobStore: Send + Sync + fmt::Debug + 'static {
    /// A short description for error messages, such as `"object_store LocalFileSystem(/var/blobs)"`.
    fn describe(&self) -> String;

    /// Stores `data` as the object `key` (a relative, `/`-separated name).
    ///
    /// # Errors
    /// Whatever the backend reports; the write then fails with
    /// [`Error::Blob`](crate::Error::Blob) and nothing becomes visible.
    fn put<'a>(&'a self, key: &'a str, data: Bytes) -> BoxFuture<'a, Result<(), BoxError>>;

    /// The object `key`, or `Ok(None)` if there is none.
    ///
    /// # Errors
    /// Whatever the backend reports (other than "not found").
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, BoxError>>;

    /// Deletes the object `key`; deleting a missing object is not an error.
    ///
    /// # Errors
    /// Whatever the backend reports (other than "not found").
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BoxError>>;
}

/// How a [`Ref`](crate::Ref), [`Atom`](crate::Atom) or [`Pod`](crate::Pod) stores large values;
/// given to `new_with`/`open_with`. The plain constructors use [`BlobOptions::default`].
///
/// ```
/// use std::time::Duration;
/// let options = mazurka::BlobOptions::default()
///     .max_value_bytes(256 << 20)
///     .grace(Duration::from_secs(10));
/// assert_eq!(options.max_value_bytes, 256 << 20);
/// assert!(options.store.is_none()); // chunks in ZooKeeper
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct BlobOptions {
    /// Where chunk sets go: `None` (the default) for chunk znodes in ZooKeeper, or an external
    /// store.
    pub store: Option<Arc<dyn BlobStore>>,
    /// Largest envelope (header, history and encoded value) stored inline in the znode. Default
    /// 900 KiB; never more than one request frame allows for the path.
    pub inline_limit: usize,
    /// Size of each chunk znode (ZooKeeper store). Default 1,000,000 bytes; never more than one
    /// request frame allows for the chunk's path.
    pub chunk_bytes: usize,
    /// Largest encoded value accepted; larger ones are
    /// [`Error::ValueAboveMaximum`](crate::Error::ValueAboveMaximum), nothing written. Default
    /// 64 MiB.
    pub max_value_bytes: usize,
    /// How long a retired chunk set is kept for readers that may still be fetching it. Default
    /// 5 s.
    pub grace: Duration,
    /// How old a chunk set named by no pointer must be before a reclaim pass treats it as
    /// abandoned (its writer gone) and deletes it. Default 60 s.
    pub orphan_age: Duration,
    /// Chunk requests in flight at once per value (writes and reads are pipelined on the
    /// session). Default 8.
    pub parallelism: usize,
}

impl Default for BlobOptions {
    fn default() -> Self {
        BlobOptions {
            store: None,
            inline_limit: 900 * 1024,
            chunk_bytes: 1_000_000,
            max_value_bytes: 64 << 20,
            grace: Duration::from_secs(5),
            orphan_age: Duration::from_secs(60),
            parallelism: 8,
        }
    }
}

impl fmt::Debug for BlobOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobOptions")
            .field(
                "store",
                &self
                    .store
                    .as_ref()
                    .map_or_else(|| "zookeeper chunks".to_owned(), |s| s.describe()),
            )
            .field("inline_limit", &self.inline_limit)
            .field("chunk_bytes", &self.chunk_bytes)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("grace", &self.grace)
            .field("orphan_age", &self.orphan_age)
            .field("parallelism", &self.parallelism)
            .finish()
    }
}

impl BlobOptions {
    /// Stores chunk sets in `store` instead of ZooKeeper.
    #[must_use]
    pub fn store(mut self, store: Arc<dyn BlobStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Sets [`inline_limit`](Self::inline_limit) (values whose envelope is larger go to chunks).
    #[must_use]
    pub fn inline_limit(mut self, bytes: usize) -> Self {
        self.inline_limit = bytes;
        self
    }

    /// Sets [`chunk_bytes`](Self::chunk_bytes) (at least 1 KiB).
    #[must_use]
    pub fn chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk_bytes = bytes.max(1024);
        self
    }

    /// Sets [`max_value_bytes`](Self::max_value_bytes).
    #[must_use]
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }

    /// Sets [`grace`](Self::grace).
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets [`orphan_age`](Self::orphan_age).
    #[must_use]
    pub fn orphan_age(mut self, age: Duration) -> Self {
        self.orphan_age = age;
        self
    }

    /// Sets [`parallelism`](Self::parallelism) (at least 1).
    #[must_use]
    pub fn parallelism(mut self, requests: usize) -> Self {
        self.parallelism = requests.max(1);
        self
    }
}

/// What a reclaim pass did (see the [module docs](self)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReclaimReport {
    /// Chunk sets deleted: retired ones past their grace, and orphans.
    pub deleted: usize,
    /// Retired chunk sets kept because readers may still be fetching them (younger than `grace`).
    pub retired_waiting: usize,
    /// Chunk sets named by no pointer but younger than `orphan_age` (a writer may still commit
    /// them).
    pub pending: usize,
    /// Whether the current value is stored in a chunk set (kept, of course).
    pub current_chunked: bool,
}
