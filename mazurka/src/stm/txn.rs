//! The ambient transaction: what one attempt has read and written, and the retry loop.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::cache::Known;
use super::commit::{self, Outcome};
use super::refs::{AnyValue, ErasedRef};
use super::retry::{Backoff, TxnOptions};
use crate::codec::{EnvelopeMeta, WriterId};
use crate::error::{Error, Result, ZkErrorCode};
use crate::session::{Session, Stat};

tokio::task_local! {
    /// The transaction of the current task, if any: refs find it here, as Clojure's find the
    /// thread-bound one.
    static CURRENT: Arc<Mutex<Attempt>>;
}

/// A commutative change, type-erased.
pub(crate) type CommuteFn = Box<dyn Fn(&AnyValue) -> Result<AnyValue> + Send + Sync>;

/// Values read together in one `multiRead`, by path: one consistent state.
type Snapshot = HashMap<String, (Arc<Vec<u8>>, Stat)>;

/// A read the commit will check: the version (and envelope) the attempt saw.
#[derive(Debug, Clone)]
pub(crate) struct ReadAt {
    pub(crate) version: i32,
    /// The zxid of the write that made this value: unique to it, also across a delete and a
    /// re-create (where the version starts again), so what later reads compare.
    pub(crate) mzxid: i64,
    pub(crate) meta: EnvelopeMeta,
    /// The znode's data (a chunk pointer, for a large value: a write over it retires its set).
    pub(crate) bytes: Arc<Vec<u8>>,
}

/// One ref's part in an attempt.
pub(crate) struct Entry {
    pub(crate) r: Arc<dyn ErasedRef>,
    /// Set when the attempt read the ref (checked at commit, and the base of a write).
    pub(crate) read: Option<ReadAt>,
    /// The value in the transaction.
    pub(crate) value: Option<AnyValue>,
    /// Set by `ref_set`/`alter`: written at commit at the read version.
    pub(crate) written: bool,
    /// Commutes of a ref not otherwise read or written: re-applied at commit to the then-current
    /// value.
    pub(crate) commutes: Vec<CommuteFn>,
}

impl Entry {
    fn new(r: Arc<dyn ErasedRef>) -> Entry {
        Entry {
            r,
            read: None,
            value: None,
            written: false,
            commutes: Vec::new(),
        }
    }
}

/// One attempt of a transaction.
pub(crate) struct Attempt {
    /// Written into every envelope this attempt commits: how a lost reply is decided later.
    pub(crate) id: WriterId,
    pub(crate) session: Option<Session>,
    /// By path: commits touch znodes in a deterministic order.
    pub(crate) entries: BTreeMap<String, Entry>,
    pub(crate) after_commit: Vec<Box<dyn FnOnce() + Send>>,
    /// A ref found changed under this attempt (or a read failed on the way): it must not
    /// commit; the body runs again.
    pub(crate) conflict: Option<String>,
    /// The refs the previous attempt read: fetched together in one `multiRead` at this
    /// attempt's first server read, so a rerun reads its whole read set as one snapshot instead
    /// of ref by ref (where every step could conflict again — long readers would starve).
    prefetch: Vec<Arc<dyn ErasedRef>>,
    /// Held across a server read: reads the body issues concurrently (`join!`) take turns, so
    /// each is checked against every read recorded before it (opacity holds for them too).
    reading: Arc<tokio::sync::Mutex<()>>,
    /// Values of that `multiRead` not yet read by the body; valid until the next server read.
    snapshot: Snapshot,
    /// The first read came from a replica that had been told of a change it had not read yet.
    /// The value is one that existed, so the body may see it; the next server read (or, if the
    /// body reads nothing more, a read just before the commit) checks it is still current.
    unverified: bool,
    /// Set with a conflict found by a read: that `multiRead`'s values of everything the attempt
    /// read and was reading — one consistent snapshot, already fresh, so the rerun starts from
    /// it at once, without a wait or a request.
    restart_from: Option<Snapshot>,
}

impl Attempt {
    fn new() -> Attempt {
        Attempt {
            id: WriterId::random(),
            session: None,
            entries: BTreeMap::new(),
            after_commit: Vec::new(),
            conflict: None,
            prefetch: Vec::new(),
            snapshot: HashMap::new(),
            reading: Arc::default(),
            unverified: false,
            restart_from: None,
        }
    }

    /// The next attempt after `previous` conflicted: it starts from the fresh snapshot the
    /// conflict brought, if any, and prefetches the rest of what `previous` read.
    fn after(previous: &mut Attempt) -> Attempt {
        let mut next = Attempt::new();
        next.snapshot = previous.restart_from.take().unwrap_or_default();
        next.prefetch = previous
            .entries
            .iter()
            .filter(|(path, e)| e.read.is_some() && !next.snapshot.contains_key(*path))
            .map(|(_, e)| e.r.clone())
            .collect();
        next
    }

    fn join(&mut self, session: &Session) -> Result<()> {
        match &self.session {
            None => {
                self.session = Some(session.clone());
                Ok(())
            }
            Some(s) if s.same_as(session) => Ok(()),
            Some(_) => Err(Error::Config(
                "a transaction's refs must all belong to one Session (its commit is one ZooKeeper multi)"
                    .into(),
            )),
        }
    }

    fn check_conflict(&self) -> Result<()> {
        match &self.conflict {
            Some(path) => Err(Error::Conflict { path: path.clone() }),
            None => Ok(()),
        }
    }
}

fn lock(cell: &Mutex<Attempt>) -> MutexGuard<'_, Attempt> {
    cell.lock().unwrap_or_else(PoisonError::into_inner)
}

fn current(operation: &'static str) -> Result<Arc<Mutex<Attempt>>> {
    CURRENT
        .try_with(Arc::clone)
        .map_err(|_| Error::NoTransaction { operation })
}

/// Whether the current task runs inside a transaction.
#[must_use]
pub fn in_transaction() -> bool {
    CURRENT.try_with(|_| ()).is_ok()
}

/// Runs `f` once, after the current transaction commits (never if it aborts; once however often
/// the body was rerun) — for side effects such as sending a message.
///
/// # Errors
/// [`Error::NoTransaction`] outside a transaction.
pub fn after_commit(f: impl FnOnce() + Send + 'static) -> Result<()> {
    let cell = current("after_commit")?;
    lock(&cell).after_commit.push(Box::new(f));
    Ok(())
}

/// Reads `r` in the current attempt: the in-transaction value if there is one; else the first
/// read of the attempt from the replica (no request), and any later read together with
/// everything read so far in one `multiRead` (an atomic snapshot), which must show the earlier
/// reads unchanged — so the body never sees a state that never existed.
pub(crate) async fn read(r: Arc<dyn ErasedRef>, operation: &'static str) -> Result<AnyValue> {
    let cell = current(operation)?;
    let path = r.path().to_string();
    let reading = lock(&cell).reading.clone();
    let _turn = reading.lock().await;
    let (earlier, snapshot, prefetch, snapshot_left) = {
        let mut a = lock(&cell);
        a.join(r.session())?;
        a.check_conflict()?;
        if let Some(value) = a.entries.get(&path).and_then(|e| e.value.as_ref()) {
            return Ok(r.clone_value(value));
        }
        let snapshot = a.snapshot.remove(&path);
        let prefetch = if snapshot.is_none() {
            std::mem::take(&mut a.prefetch)
        } else {
            Vec::new()
        };
        let earlier = read_set(&a);
        // Other values of a snapshot still unread: a replica read would not be consistent
        // with them.
        let snapshot_left = !a.snapshot.is_empty();
        (earlier, snapshot, prefetch, snapshot_left)
    };
    // From the snapshot taken with the earlier reads: consistent with them.
    if let Some((bytes, stat)) = snapshot {
        return finish_read(&cell, r, path, bytes, stat).await;
    }
    if earlier.is_empty() && prefetch.is_empty() && !snapshot_left {
        // The first read: from the replica, even one told of a change it has not read yet (a
        // value that existed is a consistent view on its own). Under contention replicas are
        // behind most of the time, and reading the znode here would cost a request that the
        // next read's `multiRead` (which checks this one) makes anyway.
        // A replica value that does not decode (a chunk set it could not fetch, say) may be
        // old: the server decides.
        let suspect = r.cache().is_suspect();
        if let Known::Value(cached) = r.cache().current() {
            if let Ok((value, meta)) = r.decode(&cached) {
                lock(&cell).unverified = suspect;
                return Ok(record(
                    &cell,
                    r,
                    ReadAt {
                        version: cached.version,
                        mzxid: cached.mzxid,
                        meta,
                        bytes: cached.bytes,
                    },
                    value,
                ));
            }
        }
    }
    let extra: Vec<Arc<dyn ErasedRef>> = prefetch
        .into_iter()
        .filter(|p| p.path().as_str() != path && !earlier.iter().any(|(e, _, _)| e == p.path().as_str()))
        .collect();
    let mut paths: Vec<&str> = earlier.iter().map(|(p, _, _)| p.as_str()).collect();
    paths.push(&path);
    paths.extend(extra.iter().map(|p| p.path().as_str()));
    let mut results = match r.session().multi_read(&paths).await {
        Ok(results) => results,
        Err(err) => return Err(restart_on_transient(&cell, &path, err)),
    };
    if results.len() != paths.len() {
        return Err(Error::OutcomeUnknown {
            path,
            detail: "multiRead returned a different number of results".into(),
        });
    }
    let prefetched = results.split_off(earlier.len() + 1);
    let Some(mine) = results.pop() else {
        return Err(Error::OutcomeUnknown {
            path,
            detail: "multiRead returned too few results".into(),
        });
    };
    let (changed, mut fresh) = check_reads(&earlier, results);
    let prefetched = extra
        .iter()
        .zip(prefetched)
        .filter_map(|(p, now)| now.map(|(bytes, stat)| (p.path().to_string(), (Arc::new(bytes), stat))));
    if let Some(p) = changed {
        // Everything this multiRead returned is one fresh, consistent snapshot: the rerun
        // starts from it.
        fresh.extend(prefetched);
        if let Some((bytes, stat)) = mine {
            fresh.insert(path, (Arc::new(bytes), stat));
        }
        let mut a = lock(&cell);
        a.conflict = Some(p.clone());
        a.restart_from = Some(fresh);
        return Err(Error::Conflict { path: p });
    }
    {
        let mut a = lock(&cell);
        a.unverified = false;
        a.snapshot = prefetched.collect();
    }
    let Some((bytes, stat)) = mine else {
        return Err(Error::ZooKeeper {
            operation: "getData",
            path,
            code: ZkErrorCode::NoNode,
        });
    };
    finish_read(&cell, r, path, Arc::new(bytes), stat).await
}

/// Checks an attempt whose only read came from a replica told of a change (see
/// `Attempt::unverified`) before it commits: one `multiRead` of its read set. Changed → the
/// attempt conflicts, with the fresh values to rerun from; unreadable → it conflicts and reruns.
async fn verify(attempt: &mut Attempt) {
    let Some(session) = attempt.session.clone() else {
        return;
    };
    let read = read_set(attempt);
    let paths: Vec<&str> = read.iter().map(|(p, _, _)| p.as_str()).collect();
    let results = match session.multi_read(&paths).await {
        Ok(results) if results.len() == paths.len() => results,
        _ => {
            attempt.conflict = paths.first().map(|p| (*p).to_owned());
            return;
        }
    };
    let (changed, fresh) = check_reads(&read, results);
    attempt.unverified = false;
    if changed.is_some() {
        attempt.conflict = changed;
        attempt.restart_from = Some(fresh);
    }
}

/// What an attempt has read: path, the `mzxid` of the value it saw, the ref.
fn read_set(attempt: &Attempt) -> Vec<(String, i64, Arc<dyn ErasedRef>)> {
    attempt
        .entries
        .iter()
        .filter_map(|(p, e)| e.read.as_ref().map(|read| (p.clone(), read.mzxid, e.r.clone())))
        .collect()
}

/// Compares a `multiRead` of `read` with what the attempt saw (by `mzxid`: a re-created znode
/// restarts its version, never its zxids), offering every value to its replica. Returns the
/// first read that moved, if any, and the values by path.
fn check_reads(
    read: &[(String, i64, Arc<dyn ErasedRef>)],
    results: Vec<Option<(Vec<u8>, Stat)>>,
) -> (Option<String>, Snapshot) {
    let mut changed = None;
    let mut fresh = Snapshot::new();
    for ((path, expected, r), now) in read.iter().zip(results) {
        let Some((bytes, stat)) = now else {
            changed.get_or_insert_with(|| path.clone());
            continue;
        };
        let bytes = Arc::new(bytes);
        r.cache().offer_raw(bytes.clone(), &stat);
        if stat.mzxid != *expected {
            changed.get_or_insert_with(|| path.clone());
        }
        fresh.insert(path.clone(), (bytes, stat));
    }
    (changed, fresh)
}

/// A transient failure (lost connection, no response, a lost session) while reading is no
/// reason to abort: the attempt is marked to run again, and the error goes to the body.
fn restart_on_transient(cell: &Mutex<Attempt>, path: &str, err: Error) -> Error {
    if err.is_retryable() || matches!(err, Error::SessionLost) {
        lock(cell).conflict = Some(path.to_owned());
    }
    err
}

/// Resolves (a large value's chunks), offers to the replica, decodes and records a read.
async fn finish_read(
    cell: &Mutex<Attempt>,
    r: Arc<dyn ErasedRef>,
    path: String,
    bytes: Arc<Vec<u8>>,
    stat: Stat,
) -> Result<AnyValue> {
    // A large value's chunk set is fetched before the body sees it. If it is gone, the pointer
    // has moved on since the snapshot: the attempt restarts.
    let cached = match r.resolve(bytes, stat).await {
        Ok(Some(cached)) => cached,
        Ok(None) => {
            lock(cell).conflict = Some(path.clone());
            return Err(Error::Conflict { path });
        }
        Err(err) => return Err(restart_on_transient(cell, &path, err)),
    };
    r.cache().offer(cached.clone());
    let (value, meta) = r.decode(&cached)?;
    Ok(record(
        cell,
        r,
        ReadAt {
            version: stat.version,
            mzxid: stat.mzxid,
            meta,
            bytes: cached.bytes,
        },
        value,
    ))
}

fn record(cell: &Mutex<Attempt>, r: Arc<dyn ErasedRef>, read: ReadAt, value: AnyValue) -> AnyValue {
    let copy = r.clone_value(&value);
    let mut a = lock(cell);
    let entry = a
        .entries
        .entry(r.path().to_string())
        .or_insert_with(|| Entry::new(r));
    entry.read = Some(read);
    entry.value = Some(value);
    copy
}

/// Sets `r` to `value` in the current attempt (reading it first if the attempt has not, so the
/// write has a version to be checked against).
pub(crate) async fn write(r: Arc<dyn ErasedRef>, value: AnyValue, operation: &'static str) -> Result<()> {
    let cell = current(operation)?;
    let path = r.path().to_string();
    let needs_read = {
        let mut a = lock(&cell);
        a.join(r.session())?;
        a.check_conflict()?;
        match a.entries.get(&path) {
            Some(e) if !e.commutes.is_empty() => {
                return Err(Error::Invalid {
                    path,
                    reason: "cannot ref_set/alter a ref after commute in the same transaction".into(),
                })
            }
            Some(e) => e.read.is_none(),
            None => true,
        }
    };
    if needs_read {
        read(r.clone(), operation).await?;
    }
    let mut a = lock(&cell);
    let entry = a.entries.entry(path).or_insert_with(|| Entry::new(r));
    entry.value = Some(value);
    entry.written = true;
    Ok(())
}

/// Commutes `r` by `f` in the current attempt; returns the in-transaction value.
pub(crate) async fn commute(r: Arc<dyn ErasedRef>, f: CommuteFn) -> Result<AnyValue> {
    let cell = current("commute")?;
    let path = r.path().to_string();
    {
        let mut a = lock(&cell);
        a.join(r.session())?;
        a.check_conflict()?;
        if let Some(entry) = a.entries.get_mut(&path) {
            if let Some(value) = entry.value.as_ref() {
                let next = f(value)?;
                let copy = r.clone_value(&next);
                entry.value = Some(next);
                if entry.read.is_some() || entry.written {
                    // Read or written already: an ordinary write of the new value.
                    entry.written = true;
                } else {
                    entry.commutes.push(f);
                }
                return Ok(copy);
            }
        }
    }
    // The in-transaction value starts from the latest value this process knows.
    let replica = match r.cache().current() {
        Known::Value(cached) => r.decode(&cached).ok().map(|(value, _)| value),
        _ => None,
    };
    let base = match replica {
        Some(value) => value,
        // Not loaded, or not decodable (it may be old): the server decides.
        None => match r.fetch_latest().await {
            Ok(latest) => r.decode(&latest)?.0,
            Err(err) => return Err(restart_on_transient(&cell, &path, err)),
        },
    };
    let next = f(&base)?;
    let copy = r.clone_value(&next);
    let mut a = lock(&cell);
    let entry = a.entries.entry(path).or_insert_with(|| Entry::new(r));
    entry.value = Some(next);
    entry.commutes.push(f);
    Ok(copy)
}

/// Runs `body` as a transaction: reads and writes of refs inside it (in any code it awaits, on
/// this task) form one atomic, serializable unit, committed as a single ZooKeeper `multi`. On a
/// conflict with another writer the body runs again (after a short jittered backoff), so it must
/// not have side effects other than through refs — use [`after_commit`] for those. A `dosync`
/// inside a transaction joins it.
///
/// The body is a closure returning a future, typically `|| async move { … }` capturing refs by
/// reference (a `Ref` is also cheap to clone). An `Err` from the body aborts the transaction:
/// nothing is written, and the error is returned.
///
/// ```no_run
/// # async fn demo(session: &mazurka::Session) -> mazurka::Result<()> {
/// use mazurka::{dosync, Ref};
/// let from: Ref<i64> = Ref::new(session, "/bank/alice", 100).await?;
/// let to: Ref<i64> = Ref::new(session, "/bank/bob", 0).await?;
/// let (from, to) = (&from, &to);
/// dosync(|| async move {
///     from.alter(|v| v - 10).await?;
///     to.alter(|v| v + 10).await?;
///     Ok::<_, mazurka::Error>(())
/// })
/// .await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// The body's own error (abort); [`Error::Invalid`] if a validator refused a new value;
/// [`Error::RetryLimit`] after too many conflicts; [`Error::ValueTooLarge`] if the write set
/// does not fit one request; [`Error::OutcomeUnknown`] if a commit's reply was lost and the
/// outcome could not be decided; session errors.
///
/// # Cancel safety
/// Dropping the future before the commit is sent discards the attempt (nothing written).
/// Dropping it while the commit is in flight leaves the outcome unknown to the caller (it
/// applies entirely or not at all).
pub async fn dosync<R, E, F, Fut>(body: F) -> std::result::Result<R, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<R, E>>,
    E: From<Error>,
{
    dosync_with(TxnOptions::default(), body).await
}

/// [`dosync`] with explicit [`TxnOptions`] (retry limit, backoff).
///
/// # Errors
/// As [`dosync`].
///
/// # Cancel safety
/// As [`dosync`].
pub async fn dosync_with<R, E, F, Fut>(options: TxnOptions, mut body: F) -> std::result::Result<R, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<R, E>>,
    E: From<Error>,
{
    if in_transaction() {
        return body().await; // nested: part of the outer transaction
    }
    let mut backoff = Backoff::new(&options);
    let mut next: Option<Attempt> = None;
    for _ in 0..options.retry_limit {
        let started = tokio::time::Instant::now();
        let cell = Arc::new(Mutex::new(next.take().unwrap_or_else(Attempt::new)));
        let outcome = CURRENT.scope(cell.clone(), body()).await;
        let mut attempt = std::mem::replace(&mut *lock(&cell), Attempt::new());
        if attempt.conflict.is_none() && attempt.unverified {
            verify(&mut attempt).await;
        }
        if attempt.conflict.is_some() {
            // A conflict a read found (with a fresh snapshot in hand) needs no wait: nobody
            // collided with a write of ours, the attempt just saw old values.
            let fresh = attempt.restart_from.is_some();
            next = Some(Attempt::after(&mut attempt));
            if !fresh {
                backoff.wait(started.elapsed()).await;
            }
            continue;
        }
        let value = outcome?;
        match commit::commit(&mut attempt).await? {
            Outcome::Committed => {
                for f in attempt.after_commit {
                    f();
                }
                return Ok(value);
            }
            Outcome::Conflict => {
                next = Some(Attempt::after(&mut attempt));
                backoff.wait(started.elapsed()).await
            }
        }
    }
    Err(Error::RetryLimit {
        attempts: options.retry_limit,
    }
    .into())
}
