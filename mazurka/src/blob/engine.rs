//! The large-value engine of one handle: packing a value into a chunk set and a pointer, fetching
//! it back, the guard operations a pointer commit carries, and reclaim. Design and safety argument
//! in the module docs of [`blob`](super).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::pointer::{self, Pointer, SetRecord, StoreKind};
use super::{BlobOptions, BlobStore, ReclaimReport};
use crate::codec::Envelope;
use crate::error::{Error, Result, ZkErrorCode};
use crate::path::ZnodePath;
use crate::session::{CreateMode, MultiOp, MultiOutcome, Session, Stat};

/// Environment variable of the test hook (see the module docs): read only in builds with the
/// `testkit` feature, so that no production process can be made to hang by its environment.
#[cfg(feature = "testkit")]
const STALL_VAR: &str = "MAZURKA_TEST_BLOB_STALL_AFTER";
/// Smallest chunk of a set of more than one chunk. Writers never go below it; a reader refuses
/// a pointer that does, so a forged one cannot make it send a request per byte.
pub(crate) const MIN_CHUNK: u32 = 1024;
/// Attempts per chunk request on connection hiccups.
const CHUNK_ATTEMPTS: usize = 5;
/// Added to `grace` before a background pass, so the leader's clock has surely moved past it.
const PASS_MARGIN: Duration = Duration::from_millis(100);
/// Consecutive failed background passes before the task gives up (the next write restarts it).
const PASS_FAILURES: usize = 5;

/// A value ready to be written: the znode data (inline envelope or pointer envelope), and the
/// chunk set written for it, if any.
#[derive(Debug)]
pub(crate) struct Packed {
    pub(crate) bytes: Arc<Vec<u8>>,
    pub(crate) set: Option<NewSet>,
}

/// A chunk set written for a value not yet committed.
#[derive(Debug)]
pub(crate) struct NewSet {
    /// The set's znode.
    pub(crate) znode: String,
    pub(crate) pointer: Pointer,
    /// The payload (for the writer's own replica: no download after its commit).
    pub(crate) payload: Bytes,
}

impl Packed {
    /// The resolved payload of a chunked value (what the replica keeps), `None` if inline.
    pub(crate) fn payload(&self) -> Option<Bytes> {
        self.set.as_ref().map(|s| s.payload.clone())
    }
}

/// An operation a pointer commit adds to its `multi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BlobOp {
    /// The new set's znode must still be at version 0: not doomed by a reclaim pass.
    Check { path: String },
    /// Retires the replaced set: its znode from version 0 to 1 (the retirement time is its mtime).
    Retire { path: String, data: Vec<u8> },
}

impl BlobOp {
    pub(crate) fn path(&self) -> &str {
        match self {
            BlobOp::Check { path } | BlobOp::Retire { path, .. } => path,
        }
    }

    pub(crate) fn as_multi(&self) -> MultiOp<'_> {
        match self {
            BlobOp::Check { path } => MultiOp::Check { path, version: 0 },
            BlobOp::Retire { path, data } => MultiOp::Set {
                path,
                data,
                version: Some(0),
            },
        }
    }

    /// Whether this is a retirement (a `setData`, with a stat in the multi's results).
    pub(crate) fn is_retire(&self) -> bool {
        matches!(self, BlobOp::Retire { .. })
    }
}

/// What following a value's envelope gave.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// Not chunked: the payload is in the envelope.
    Inline,
    /// The verified payload of a chunk set.
    Payload(Bytes),
    /// The set is gone (reclaimed after the pointer moved on): read the pointer again.
    Gone,
}

/// A znode's data and stat.
type Node = (Vec<u8>, Stat);

#[derive(Debug, Default)]
struct PassState {
    scheduled: bool,
    dirty: bool,
}

/// The large-value engine of one handle (one path, one session, one set of options).
#[derive(Debug)]
pub(crate) struct Blobs {
    session: Session,
    path: ZnodePath,
    /// `<path>.blobs`
    dir: String,
    options: BlobOptions,
    dir_ready: AtomicBool,
    pass: Mutex<PassState>,
}

impl Blobs {
    pub(crate) fn new(session: &Session, path: &ZnodePath, options: BlobOptions) -> Arc<Blobs> {
        Arc::new(Blobs {
            session: session.clone(),
            path: path.clone(),
            dir: format!("{path}.blobs"),
            options,
            dir_ready: AtomicBool::new(false),
            pass: Mutex::new(PassState::default()),
        })
    }

    pub(crate) fn options(&self) -> &BlobOptions {
        &self.options
    }

    fn blob_error(&self, reason: impl Into<String>) -> Error {
        Error::Blob {
            path: self.path.to_string(),
            reason: reason.into(),
        }
    }

    fn set_znode(&self, set_id: u128) -> String {
        format!("{}/{}", self.dir, pointer::set_name(set_id))
    }

    /// The only object-store key a set of this handle may have:
    /// `<path without its leading '/'>.blobs/<set id>.<sha256>`. Keys are never taken from what
    /// is stored in ZooKeeper (a pointer, a set record): whoever can write those znodes could
    /// otherwise make this process read or delete any object of the store.
    fn canonical_key(&self, set_id: u128, sha256: &[u8; 32]) -> String {
        format!("{}.{}", self.key_prefix(set_id), pointer::hex(sha256))
    }

    /// `<path without its leading '/'>.blobs/<set id>`: the canonical key without its hash.
    fn key_prefix(&self, set_id: u128) -> String {
        format!(
            "{}.blobs/{}",
            self.path.as_str().trim_start_matches('/'),
            pointer::set_name(set_id)
        )
    }

    /// Whether `key` is the canonical key of set `set_id` for some SHA-256 (what a reclaim pass
    /// may delete: a set record does not say the hash in any other way).
    fn is_own_key(&self, set_id: u128, key: &str) -> bool {
        key.strip_prefix(&self.key_prefix(set_id))
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|hash| {
                hash.len() == 64
                    && hash
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
    }

    /// Refuses a pointer this handle must not follow, before any request: a value above
    /// [`BlobOptions::max_value_bytes`], chunks below [`MIN_CHUNK`], a key other than the
    /// canonical one.
    fn admit(&self, pointer: &Pointer) -> Result<()> {
        let max = self.options.max_value_bytes;
        if pointer.len > max as u64 {
            return Err(self.blob_error(format!(
                "the chunk pointer names a value of {} bytes, above this handle's max_value_bytes ({max}): \
                 written by something else, or by a writer with a larger BlobOptions::max_value_bytes \
                 (use the same options on every handle)",
                pointer.len
            )));
        }
        match pointer.store {
            StoreKind::ZooKeeper => {
                if pointer.chunks > 1 && pointer.chunk_size < MIN_CHUNK {
                    return Err(self.blob_error(format!(
                        "the chunk pointer's chunk size {} is below {MIN_CHUNK} bytes in a set of {} chunks: \
                         no Mazurka writer makes such a set; write the value again",
                        pointer.chunk_size, pointer.chunks
                    )));
                }
                if !pointer.key.is_empty() {
                    return Err(self.blob_error(
                        "the chunk pointer names ZooKeeper chunks and an object key: written by something \
                         else; write the value again",
                    ));
                }
            }
            StoreKind::External => {
                if pointer.key != self.canonical_key(pointer.set_id, &pointer.sha256) {
                    return Err(self.blob_error(format!(
                        "the chunk pointer names the object key {:?}, not this value's own {:?}: written by \
                         something else (not followed); write the value again",
                        pointer.key,
                        self.canonical_key(pointer.set_id, &pointer.sha256)
                    )));
                }
            }
        }
        Ok(())
    }

    /// The largest envelope stored inline.
    fn inline_limit(&self) -> usize {
        let path = self.path.as_str();
        self.options
            .inline_limit
            .min(self.session.set_data_limit(path))
            .min(self.session.create_data_limit(path))
    }

    /// Whether an envelope of `len` bytes is stored inline.
    pub(crate) fn fits_inline(&self, len: usize) -> bool {
        len <= self.inline_limit()
    }

    /// [`Error::ValueAboveMaximum`] if the envelope's payload is above the maximum.
    pub(crate) fn check_size(&self, envelope: &[u8]) -> Result<()> {
        let payload_len = Envelope::parse(envelope).map_or(envelope.len(), |e| e.payload.len());
        if payload_len > self.options.max_value_bytes {
            return Err(Error::ValueAboveMaximum {
                path: self.path.to_string(),
                value_bytes: payload_len,
                max_bytes: self.options.max_value_bytes,
            });
        }
        Ok(())
    }

    /// The chunk size for this path: as configured, within one create frame of the longest chunk
    /// path.
    fn chunk_size(&self) -> usize {
        let longest = format!("{}/{}/{}", self.dir, pointer::set_name(u128::MAX), u32::MAX);
        self.options
            .chunk_bytes
            .min(self.session.create_data_limit(&longest))
            .min(u32::MAX as usize)
            .max(MIN_CHUNK as usize)
    }

    /// Turns an inline envelope into what to write: itself if small enough, else a chunk set
    /// (written now) and a pointer envelope.
    ///
    /// # Errors
    /// [`Error::ValueAboveMaximum`] before anything is written; chunk write errors (the partial
    /// set is deleted in the background).
    pub(crate) async fn pack(self: &Arc<Self>, envelope: Vec<u8>) -> Result<Packed> {
        self.check_size(&envelope)?;
        let parsed = Envelope::parse(&envelope).map_err(|source| Error::Codec {
            path: self.path.to_string(),
            source,
        })?;
        let payload_len = parsed.payload.len();
        if self.fits_inline(envelope.len()) {
            return Ok(Packed {
                bytes: Arc::new(envelope),
                set: None,
            });
        }
        let (codec_id, meta) = (parsed.codec_id, parsed.meta());
        let offset = envelope.len() - payload_len;
        let payload = Bytes::from(envelope).slice(offset..);
        let set_id = loop {
            let id: u128 = rand::random();
            if id != 0 {
                break id;
            }
        };
        let sha256 = pointer::sha256(&payload);
        let znode = self.set_znode(set_id);
        let pointer = match &self.options.store {
            None => self.write_zk(&znode, set_id, sha256, &payload).await?,
            Some(store) => {
                self.write_external(store, &znode, set_id, sha256, &payload)
                    .await?
            }
        };
        let pointer_bytes = pointer.to_bytes();
        let bytes = Envelope {
            codec_id,
            chunked: true,
            writer: meta.writer,
            history: meta.history,
            payload: &pointer_bytes,
        }
        .to_vec();
        Ok(Packed {
            bytes: Arc::new(bytes),
            set: Some(NewSet {
                znode,
                pointer,
                payload,
            }),
        })
    }

    async fn write_zk(
        self: &Arc<Self>,
        znode: &str,
        set_id: u128,
        sha256: [u8; 32],
        payload: &Bytes,
    ) -> Result<Pointer> {
        let chunk = self.chunk_size();
        let len = payload.len();
        let count = len.div_ceil(chunk).max(1);
        let pointer = Pointer {
            store: StoreKind::ZooKeeper,
            set_id,
            len: len as u64,
            chunks: u32::try_from(count).map_err(|_| self.blob_error("too many chunks"))?,
            chunk_size: u32::try_from(chunk).unwrap_or(u32::MAX),
            sha256,
            key: String::new(),
        };
        let record = SetRecord {
            store: StoreKind::ZooKeeper,
            retired: false,
            key: String::new(),
        };
        self.create_set_znode(znode, &record.to_bytes()).await?;
        #[cfg(feature = "testkit")]
        let stall = std::env::var(STALL_VAR)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok());
        #[cfg(not(feature = "testkit"))]
        let stall: Option<usize> = None;
        let upto = stall.map_or(count, |k| k.min(count));
        let written = stream::iter(0..upto)
            .map(|i| {
                let start = i * chunk;
                let data = payload.slice(start..(start + chunk).min(len));
                let path = format!("{znode}/{i}");
                async move { self.create_chunk(&path, &data).await }
            })
            .buffer_unordered(self.options.parallelism.max(1))
            .try_for_each(|()| std::future::ready(Ok(())))
            .await;
        if let Err(err) = written {
            self.discard_set(znode.to_owned(), record);
            return Err(err);
        }
        if stall.is_some() {
            eprintln!("MAZURKA_TEST_BLOB_STALLED {znode}");
            std::future::pending::<()>().await;
        }
        Ok(pointer)
    }

    async fn write_external(
        self: &Arc<Self>,
        store: &Arc<dyn BlobStore>,
        znode: &str,
        set_id: u128,
        sha256: [u8; 32],
        payload: &Bytes,
    ) -> Result<Pointer> {
        let key = self.canonical_key(set_id, &sha256);
        let record = SetRecord {
            store: StoreKind::External,
            retired: false,
            key: key.clone(),
        };
        // The set's znode first: if we crash after the put, a reclaim pass finds the key there.
        self.create_set_znode(znode, &record.to_bytes()).await?;
        if let Err(err) = store.put(&key, payload.clone()).await {
            self.discard_set(znode.to_owned(), record);
            return Err(self.blob_error(format!(
                "writing object {key:?} to {} failed: {err}",
                store.describe()
            )));
        }
        Ok(Pointer {
            store: StoreKind::External,
            set_id,
            len: payload.len() as u64,
            chunks: 0,
            chunk_size: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            sha256,
            key,
        })
    }

    async fn ensure_dir(&self) -> Result<()> {
        match self.session.create(&self.dir, &[], CreateMode::Container).await {
            Ok(_)
            | Err(Error::ZooKeeper {
                code: ZkErrorCode::NodeExists,
                ..
            }) => {
                self.dir_ready.store(true, Ordering::Release);
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    async fn create_set_znode(&self, znode: &str, record: &[u8]) -> Result<()> {
        if !self.dir_ready.load(Ordering::Acquire) {
            self.ensure_dir().await?;
        }
        match self.session.create(znode, record, CreateMode::Persistent).await {
            Ok(_) => Ok(()),
            Err(Error::ZooKeeper {
                code: ZkErrorCode::NoNode,
                ..
            }) => {
                // The container was reaped (or removed) since: make it again.
                self.ensure_dir().await?;
                self.session
                    .create(znode, record, CreateMode::Persistent)
                    .await
                    .map(|_| ())
            }
            Err(err) => Err(err),
        }
    }

    async fn create_chunk(&self, path: &str, data: &[u8]) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.session.create(path, data, CreateMode::Persistent).await {
                // NodeExists: an earlier attempt whose reply was lost (set ids are unique).
                Ok(_)
                | Err(Error::ZooKeeper {
                    code: ZkErrorCode::NodeExists,
                    ..
                }) => return Ok(()),
                Err(err) if err.is_retryable() && attempt < CHUNK_ATTEMPTS => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// The chunk set named by an envelope, if it is a pointer.
    pub(crate) fn pointer_of(bytes: &[u8]) -> Option<Pointer> {
        let envelope = Envelope::parse(bytes).ok()?;
        if !envelope.chunked {
            return None;
        }
        Pointer::parse(envelope.payload).ok()
    }

    /// Follows an envelope: [`Fetched::Inline`] if it is not a pointer (or not Mazurka's at all:
    /// decoding reports that), else the set's verified payload, or [`Fetched::Gone`].
    ///
    /// # Errors
    /// A malformed pointer, a payload that does not match its pointer's length or SHA-256, an
    /// external store without a configured [`BlobStore`], store and session errors.
    pub(crate) async fn fetch(&self, bytes: &[u8]) -> Result<Fetched> {
        let Ok(envelope) = Envelope::parse(bytes) else {
            return Ok(Fetched::Inline);
        };
        if !envelope.chunked {
            return Ok(Fetched::Inline);
        }
        let pointer = Pointer::parse(envelope.payload).map_err(|reason| self.blob_error(reason))?;
        self.admit(&pointer)?;
        let data = match pointer.store {
            StoreKind::ZooKeeper => match self.fetch_zk(&pointer).await? {
                Some(data) => data,
                None => return Ok(Fetched::Gone),
            },
            StoreKind::External => {
                let store = self.options.store.as_ref().ok_or_else(|| {
                    self.blob_error(
                        "the value is stored in an external blob store, and this handle has none: open it \
                         with BlobOptions::store(…) (new_with/open_with)",
                    )
                })?;
                match store.get(&pointer.key).await {
                    Ok(Some(data)) => data,
                    Ok(None) => return Ok(Fetched::Gone),
                    Err(err) => {
                        return Err(self.blob_error(format!(
                            "reading object {:?} from {} failed: {err}",
                            pointer.key,
                            store.describe()
                        )))
                    }
                }
            }
        };
        self.verify(&pointer, &data)?;
        Ok(Fetched::Payload(data))
    }

    async fn fetch_zk(&self, pointer: &Pointer) -> Result<Option<Bytes>> {
        let znode = self.set_znode(pointer.set_id);
        // Admitted: at most max_value_bytes.
        let expected = usize::try_from(pointer.len).unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(expected.min(self.options.max_value_bytes));
        let chunk_size = u64::from(pointer.chunk_size);
        let last = u64::from(pointer.chunks.saturating_sub(1));
        let last_len = pointer.len.saturating_sub(last.saturating_mul(chunk_size));
        let mut index = 0u64;
        let mut chunks = stream::iter(0..pointer.chunks)
            .map(|i| {
                let path = format!("{znode}/{i}");
                async move { self.session.get(&path).await }
            })
            .buffered(self.options.parallelism.max(1));
        while let Some(chunk) = chunks.next().await {
            match chunk? {
                Some((data, _)) => {
                    // Every chunk but the last has exactly the chunk size: a wrong one is refused
                    // as soon as it arrives, not after the whole set.
                    let want = if index == last { last_len } else { chunk_size };
                    if data.len() as u64 != want {
                        return Err(self.corrupt(
                            pointer,
                            &format!("a chunk {index} of {} bytes (expected {want})", data.len()),
                        ));
                    }
                    index += 1;
                    out.extend_from_slice(&data);
                }
                None => return Ok(None),
            }
        }
        Ok(Some(Bytes::from(out)))
    }

    fn corrupt(&self, pointer: &Pointer, what: &str) -> Error {
        self.blob_error(format!(
            "chunk set {} holds {what} (pointer: {} bytes, SHA-256 {}): the set is corrupt or was written by \
             something else; write the value again",
            pointer.set_name(),
            pointer.len,
            pointer::hex(&pointer.sha256)
        ))
    }

    fn verify(&self, pointer: &Pointer, data: &[u8]) -> Result<()> {
        if data.len() as u64 != pointer.len {
            return Err(self.corrupt(pointer, &format!("{} bytes", data.len())));
        }
        if pointer::sha256(data) != pointer.sha256 {
            return Err(self.corrupt(pointer, "bytes with another SHA-256"));
        }
        Ok(())
    }

    /// What a commit writing `packed` over the value `base` (its znode bytes; `None` for a
    /// create) adds to its `multi`: a check that the new set is not doomed, the retirement of the
    /// replaced set.
    pub(crate) fn guard_ops(&self, packed: &Packed, base: Option<&[u8]>) -> Vec<BlobOp> {
        let mut ops = Vec::new();
        if let Some(set) = &packed.set {
            ops.push(BlobOp::Check {
                path: set.znode.clone(),
            });
        }
        if let Some(old) = base.and_then(Blobs::pointer_of) {
            let same = packed
                .set
                .as_ref()
                .is_some_and(|s| s.pointer.set_id == old.set_id);
            if !same {
                // The record names the canonical key, never the pointer's: a forged pointer
                // must not get a foreign key into a record a reclaim pass acts on.
                let key = match old.store {
                    StoreKind::ZooKeeper => String::new(),
                    StoreKind::External => self.canonical_key(old.set_id, &old.sha256),
                };
                ops.push(BlobOp::Retire {
                    path: self.set_znode(old.set_id),
                    data: SetRecord {
                        store: old.store,
                        retired: true,
                        key,
                    }
                    .to_bytes(),
                });
            }
        }
        ops
    }

    /// Deletes, in the background, the set of a value whose commit did not apply (it was never
    /// visible).
    pub(crate) fn discard(self: &Arc<Self>, packed: &Packed) {
        if let Some(set) = &packed.set {
            let record = SetRecord {
                store: set.pointer.store,
                retired: true,
                key: set.pointer.key.clone(),
            };
            self.discard_set(set.znode.clone(), record);
        }
    }

    fn discard_set(self: &Arc<Self>, znode: String, record: SetRecord) {
        let me = self.clone();
        self.session.runtime().spawn(async move {
            if let Err(err) = me.delete_set(&znode, &record).await {
                tracing::debug!(%err, znode, "deleting an unused chunk set failed; a reclaim pass will");
            }
        });
    }

    /// After a commit: schedules a background reclaim pass if the commit created or retired a set.
    pub(crate) fn committed(self: &Arc<Self>, ops: &[BlobOp]) {
        if !ops.is_empty() {
            self.schedule_pass();
        }
    }

    fn schedule_pass(self: &Arc<Self>) {
        {
            let mut state = self.pass.lock().unwrap_or_else(PoisonError::into_inner);
            state.dirty = true;
            if state.scheduled {
                return;
            }
            state.scheduled = true;
        }
        let me = self.clone();
        self.session.runtime().spawn(async move {
            let mut failures = 0;
            loop {
                tokio::time::sleep(me.options.grace + PASS_MARGIN).await;
                me.pass.lock().unwrap_or_else(PoisonError::into_inner).dirty = false;
                let again = match me.reclaim().await {
                    Ok(report) => {
                        failures = 0;
                        report.retired_waiting > 0
                    }
                    Err(err) if err.is_terminal() => false,
                    Err(err) => {
                        failures += 1;
                        tracing::debug!(%err, path = %me.path, "background chunk reclaim failed");
                        failures < PASS_FAILURES
                    }
                };
                let mut state = me.pass.lock().unwrap_or_else(PoisonError::into_inner);
                if !(again || state.dirty) {
                    state.scheduled = false;
                    return;
                }
            }
        });
    }

    /// One reclaim pass over `<path>.blobs` (see the module docs).
    ///
    /// # Errors
    /// Session, ZooKeeper and external store errors (a pass can be repeated at any time).
    pub(crate) async fn reclaim(&self) -> Result<ReclaimReport> {
        let mut report = ReclaimReport::default();
        let names = match self.session.children(&self.dir).await {
            Ok(names) => names,
            Err(Error::ZooKeeper {
                code: ZkErrorCode::NoNode,
                ..
            }) => return Ok(report),
            Err(err) => return Err(err),
        };
        let current = self.session.get(self.path.as_str()).await?;
        let current_set = current
            .as_ref()
            .and_then(|(bytes, _)| Blobs::pointer_of(bytes))
            .map(|p| p.set_id);
        report.current_chunked = current_set.is_some();
        let others: Vec<String> = names
            .iter()
            .filter_map(|name| pointer::parse_set_name(name))
            .filter(|id| Some(*id) != current_set)
            .map(|id| self.set_znode(id))
            .collect();
        if others.is_empty() {
            return Ok(report);
        }
        let infos: Vec<(String, Option<Node>)> = stream::iter(others)
            .map(|znode| async move {
                let info = self.session.get(&znode).await;
                info.map(|info| (znode, info))
            })
            .buffered(self.options.parallelism.max(1))
            .try_collect()
            .await?;
        // "Now" on the leader's clock: the time of a write of our own.
        let now = self.session.set(&self.dir, &[], None).await?.mtime;
        let grace = i64::try_from(self.options.grace.as_millis()).unwrap_or(i64::MAX);
        let orphan_age = i64::try_from(self.options.orphan_age.as_millis()).unwrap_or(i64::MAX);
        for (znode, info) in infos {
            let Some((data, stat)) = info else { continue };
            let record = SetRecord::parse(&data).unwrap_or(SetRecord {
                store: StoreKind::ZooKeeper,
                retired: true,
                key: String::new(),
            });
            if stat.version >= 1 {
                if now.saturating_sub(stat.mtime) >= grace {
                    self.delete_set(&znode, &record).await?;
                    report.deleted += 1;
                } else {
                    report.retired_waiting += 1;
                }
                continue;
            }
            if now.saturating_sub(stat.ctime) < orphan_age {
                report.pending += 1;
                continue;
            }
            // An orphan: never visible (see the module docs). Doom it — only if the pointer is
            // still the one that does not name it — then delete it at once.
            let doomed_record = SetRecord {
                retired: true,
                ..record.clone()
            }
            .to_bytes();
            let doom = MultiOp::Set {
                path: &znode,
                data: &doomed_record,
                version: Some(0),
            };
            let doomed = match &current {
                Some((_, value_stat)) => {
                    let ops = [
                        MultiOp::Check {
                            path: self.path.as_str(),
                            version: value_stat.version,
                        },
                        doom,
                    ];
                    matches!(self.session.multi(&ops).await?, MultiOutcome::Committed(_))
                }
                None => match self.session.set(&znode, &doomed_record, Some(0)).await {
                    Ok(_) => true,
                    Err(Error::ZooKeeper {
                        code: ZkErrorCode::BadVersion | ZkErrorCode::NoNode,
                        ..
                    }) => false,
                    Err(err) => return Err(err),
                },
            };
            if doomed {
                self.delete_set(&znode, &record).await?;
                report.deleted += 1;
            } else {
                report.pending += 1;
            }
        }
        Ok(report)
    }

    /// Deletes a set's bytes, then its znode. Missing pieces are fine. The object named by the
    /// record is deleted only if it is the set's own canonical key: a record is data anyone with
    /// write access to the znode could have forged.
    async fn delete_set(&self, znode: &str, record: &SetRecord) -> Result<()> {
        let set_id = znode.rsplit('/').next().and_then(pointer::parse_set_name);
        let own = set_id.is_some_and(|id| self.is_own_key(id, &record.key));
        if record.store == StoreKind::External && !record.key.is_empty() && !own {
            tracing::warn!(
                znode,
                key = record.key,
                "a chunk set record names an object outside this value's own keys (forged?): the object is \
                 left alone, the set's znode deleted"
            );
        } else if record.store == StoreKind::External && !record.key.is_empty() {
            if let Some(store) = &self.options.store {
                store.delete(&record.key).await.map_err(|err| {
                    self.blob_error(format!(
                        "deleting object {:?} from {} failed: {err}",
                        record.key,
                        store.describe()
                    ))
                })?;
            } else {
                tracing::warn!(
                    znode,
                    key = record.key,
                    "an external chunk set cannot be deleted by a handle without a BlobStore; leaving it"
                );
                return Ok(());
            }
        }
        let gone = |r: Result<()>| match r {
            Err(Error::ZooKeeper {
                code: ZkErrorCode::NoNode,
                ..
            }) => Ok(()),
            other => other,
        };
        // A stalled writer may still be adding chunks to a doomed set: list again if needed.
        for _ in 0..3 {
            let children = match self.session.children(znode).await {
                Ok(children) => children,
                Err(Error::ZooKeeper {
                    code: ZkErrorCode::NoNode,
                    ..
                }) => return Ok(()),
                Err(err) => return Err(err),
            };
            stream::iter(children)
                .map(
                    |child| async move { gone(self.session.delete(&format!("{znode}/{child}"), None).await) },
                )
                .buffer_unordered(self.options.parallelism.max(1))
                .try_for_each(|()| std::future::ready(Ok(())))
                .await?;
            match self.session.delete(znode, None).await {
                Err(Error::ZooKeeper {
                    code: ZkErrorCode::NotEmpty,
                    ..
                }) => continue,
                other => return gone(other),
            }
        }
        Err(self.blob_error(format!(
            "chunk set {znode} keeps getting new chunks; try again later"
        )))
    }
}
