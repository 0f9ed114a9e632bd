//! The ambient transaction: what one attempt has read and written, and the retry loop.
//!
//! **Reads cost linear, not quadratic.** Opacity needs every value a body sees to hold at one
//! common state. Each read value is kept valid by its replica's watch (see `cache`): a value
//! whose watch — armed on this session by a read of that very value — has not fired still holds
//! at the latest reply the session received. So a read checks the earlier ones by looking at
//! their watches (no request), takes a new value from a replica that vouches for it (no
//! request), and sends to the server only what no watch vouches for: the new ref and earlier
//! reads whose watch is gone (each re-read arms it again, so it is re-read at most once more).
//! Every server round is pipelined `getData`s with watches; after its last reply every watch is
//! looked at again, and what fired during the round is read once more in one `multiRead` (an
//! atomic snapshot the still-unfired rest holds at too). A transaction reading `n` refs thus
//! costs at most about `2n` node reads, `n` when nothing changes, and none when every replica
//! is watched and current.

use std::collections::BTreeMap;
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

/// A read the commit will check: the version (and envelope) the attempt saw.
#[derive(Debug, Clone)]
pub(crate) struct ReadAt {
    pub(crate) version: i32,
    /// The zxid of the write that made this value: unique to it, also across a delete and a
    /// re-create (where the version starts again), so what later reads compare.
    pub(crate) mzxid: i64,
    /// The zxid of the znode's create: a re-created znode has another (see `commit::resolve`).
    pub(crate) czxid: i64,
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
    /// The conflict was found by a read, which armed the changed refs' watches at their new
    /// values: the rerun reads them from the replicas at once, without a wait or a request.
    found_by_read: bool,
    /// The refs the previous attempt read: the first server round of this attempt reads (and
    /// watches) those no watch vouches for together with its own, so a rerun learns its whole
    /// read set in one round trip instead of ref by ref (where every step could conflict again —
    /// long readers would starve).
    prefetch: Vec<Arc<dyn ErasedRef>>,
    /// Held across a server read: reads the body issues concurrently (`join!`) take turns, so
    /// each is checked against every read recorded before it (opacity holds for them too).
    reading: Arc<tokio::sync::Mutex<()>>,
    /// The first read came from a replica that could not vouch for its value (no watch on it:
    /// told of a change it has not read, or its session was replaced). The value is one that
    /// existed, so the body may see it; the next server round (or, if the body reads nothing
    /// more, one just before the commit) checks it is still current.
    unverified: bool,
    /// Set when every read so far was found held by its watch, on ZooKeeper session `.0`, at a
    /// check made when `cache::arms_so_far()` was `.1`: they all hold at the state of the latest
    /// reply received then. A replica whose watch vouches, armed no later (number `<= .1`), holds
    /// at that state too — so reading it needs no new check of the others (an audit of `n`
    /// watched refs costs `n` watch looks, not `n²/2`).
    checked: Option<(u64, u64)>,
}

impl Attempt {
    fn new() -> Attempt {
        Attempt {
            id: WriterId::random(),
            session: None,
            entries: BTreeMap::new(),
            after_commit: Vec::new(),
            conflict: None,
            found_by_read: false,
            prefetch: Vec::new(),
            reading: Arc::default(),
            unverified: false,
            checked: None,
        }
    }

    /// The next attempt after `previous` conflicted: it prefetches what `previous` read.
    fn after(previous: &Attempt) -> Attempt {
        let mut next = Attempt::new();
        next.prefetch = previous
            .entries
            .values()
            .filter(|e| e.read.is_some())
            .map(|e| e.r.clone())
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

/// A read the attempt recorded: path, the `mzxid` of the value it saw, the ref.
type Earlier = (String, i64, Arc<dyn ErasedRef>);

/// Reads `r` in the current attempt (see [`read_all`]).
pub(crate) async fn read(r: Arc<dyn ErasedRef>, operation: &'static str) -> Result<AnyValue> {
    let mut values = read_all(vec![r], operation).await?;
    values.pop().ok_or_else(|| Error::Invalid {
        path: String::new(),
        reason: "a read returned no value".into(),
    })
}

/// Reads `refs` in the current attempt, values in the same order: in-transaction values as
/// they are; the rest, together with everything read so far, at one state that existed (see
/// the module docs) — so the body never sees a state that never existed.
pub(crate) async fn read_all(
    refs: Vec<Arc<dyn ErasedRef>>,
    operation: &'static str,
) -> Result<Vec<AnyValue>> {
    let cell = current(operation)?;
    let reading = lock(&cell).reading.clone();
    let _turn = reading.lock().await;
    let mut values: Vec<Option<AnyValue>> = Vec::with_capacity(refs.len());
    let mut wanted: Vec<Arc<dyn ErasedRef>> = Vec::new();
    let (earlier, prefetch, session) = {
        let mut a = lock(&cell);
        for r in &refs {
            a.join(r.session())?;
        }
        a.check_conflict()?;
        for r in &refs {
            let known = a.entries.get(r.path().as_str()).and_then(|e| e.value.as_ref());
            values.push(known.map(|value| r.clone_value(value)));
            if known.is_none() && !wanted.iter().any(|w| w.path() == r.path()) {
                wanted.push(r.clone());
            }
        }
        let session = a.session.clone();
        if let (Some(checked), Some(s)) = (a.checked, &session) {
            // Every earlier read held at the last check: values from replicas armed before it
            // hold at that state too, with no look at the others.
            if s.is_valid(checked.0) {
                let found: Option<Vec<_>> = wanted
                    .iter()
                    .map(|r| replica_value(r, Some(checked)).map(|found| (r.clone(), found)))
                    .collect();
                if let Some(found) = found {
                    drop(a);
                    for (r, (value, read)) in found {
                        record(&cell, r, read, value);
                    }
                    return fill(&cell, &refs, values);
                }
            }
        }
        (read_set(&a), a.prefetch.clone(), session)
    };
    let Some(session) = session.filter(|_| !wanted.is_empty()) else {
        return Ok(values.into_iter().flatten().collect());
    };
    let generation = session.generation();
    let live = session.is_valid(generation);
    // Numbers of watches armed so far, before any is looked at.
    let mark = crate::stm::cache::arms_so_far();
    // Earlier reads a watch vouches for hold up to now; the others must be read again.
    let (watched, stale): (Vec<Earlier>, Vec<Earlier>) = earlier
        .into_iter()
        .partition(|(_, mzxid, r)| live && r.cache().vouches(generation, *mzxid));
    // New values from replicas whose watch vouches for them: current now, as the earlier ones.
    let mut vouched = Vec::new();
    let mut unvouched = Vec::new();
    let current = live.then_some((generation, u64::MAX));
    for r in wanted {
        match replica_value(&r, current) {
            Some(found) => vouched.push((r, found)),
            None => unvouched.push(r),
        }
    }
    if stale.is_empty() && unvouched.is_empty() {
        for (r, (value, read)) in vouched {
            record(&cell, r, read, value);
        }
        // Everything held when the watches were looked at, each armed before `mark` or by then.
        lock(&cell).checked = Some((generation, mark));
        return fill(&cell, &refs, values);
    }
    lock(&cell).checked = None;
    if watched.is_empty() && stale.is_empty() && prefetch.is_empty() && vouched.is_empty() {
        if let [r] = unvouched.as_slice() {
            // The first read of an attempt, from a replica no watch vouches for: a value that
            // existed is a consistent view on its own. Under contention replicas are behind most
            // of the time, and reading the znode here would cost a request that the next
            // round (which checks this one) makes anyway. A replica value that does not decode
            // (a chunk set it could not fetch, say) may be old: the server decides.
            if let Some((value, read)) = replica_value(r, None) {
                lock(&cell).unverified = true;
                record(&cell, r.clone(), read, value);
                return fill(&cell, &refs, values);
            }
        }
    }
    // One server round: the new refs no watch vouches for, the earlier reads to check again,
    // and (in the attempt's first round) what the previous attempt read, so that its replicas
    // vouch for the body's next reads.
    lock(&cell).prefetch.clear();
    let mut arm: Vec<Arc<dyn ErasedRef>> = Vec::new();
    for p in prefetch {
        let path = p.path().as_str();
        let known = watched.iter().chain(&stale).any(|(e, _, _)| e == path)
            || unvouched
                .iter()
                .chain(vouched.iter().map(|(r, _)| r))
                .any(|r| r.path().as_str() == path);
        if !known && replica_value(&p, current).is_none() {
            arm.push(p);
        }
    }
    let mut held: Vec<Earlier> = watched;
    held.extend(
        vouched
            .iter()
            .map(|(r, (_, read))| (r.path().to_string(), read.mzxid, r.clone())),
    );
    let round = Round {
        new: &unvouched,
        stale: &stale,
        held: &held,
        arm: &arm,
    };
    let fresh = match round.run(&session).await {
        Ok(fresh) => fresh,
        Err(RoundError::Conflict(path)) => {
            let mut a = lock(&cell);
            a.conflict = Some(path.clone());
            a.found_by_read = true;
            return Err(Error::Conflict { path });
        }
        Err(RoundError::Failed(path, err)) => return Err(restart_on_transient(&cell, &path, err)),
    };
    lock(&cell).unverified = false;
    for (r, (value, read)) in vouched {
        record(&cell, r, read, value);
    }
    for (r, now) in unvouched.into_iter().zip(fresh) {
        let Some((bytes, stat)) = now else {
            return Err(Error::ZooKeeper {
                operation: "getData",
                path: r.path().to_string(),
                code: ZkErrorCode::NoNode,
            });
        };
        finish_read(&cell, r, bytes, stat).await?;
    }
    // If every read is held by its watch now, the next reads need not look at them again.
    let mark = crate::stm::cache::arms_so_far();
    let generation = session.generation();
    let all = read_set(&lock(&cell));
    if all
        .iter()
        .all(|(_, mzxid, r)| r.cache().vouches(generation, *mzxid))
    {
        lock(&cell).checked = Some((generation, mark));
    }
    fill(&cell, &refs, values)
}

/// The values of `refs` in the attempt, where `values` has none yet.
fn fill(
    cell: &Mutex<Attempt>,
    refs: &[Arc<dyn ErasedRef>],
    values: Vec<Option<AnyValue>>,
) -> Result<Vec<AnyValue>> {
    let a = lock(cell);
    refs.iter()
        .zip(values)
        .map(|(r, value)| match value {
            Some(value) => Ok(value),
            None => a
                .entries
                .get(r.path().as_str())
                .and_then(|e| e.value.as_ref())
                .map(|value| r.clone_value(value))
                .ok_or_else(|| Error::Invalid {
                    path: r.path().to_string(),
                    reason: "a read recorded no value".into(),
                }),
        })
        .collect()
}

/// The replica's value of `r` as a read: if `watched` (a ZooKeeper session's generation and a
/// watch number) is given, only one a watch vouches for on that session (current now), armed no
/// later than that number; without, any value it holds that decodes.
fn replica_value(r: &Arc<dyn ErasedRef>, watched: Option<(u64, u64)>) -> Option<(AnyValue, ReadAt)> {
    let Known::Value(cached) = r.cache().current() else {
        return None;
    };
    if let Some((generation, latest)) = watched {
        if r.cache()
            .vouching(generation, cached.mzxid)
            .is_none_or(|seq| seq > latest)
        {
            return None;
        }
    }
    let (value, meta) = r.decode(&cached).ok()?;
    Some((
        value,
        ReadAt {
            version: cached.version,
            mzxid: cached.mzxid,
            czxid: cached.czxid,
            meta,
            bytes: cached.bytes,
        },
    ))
}

/// Why a server round did not give a consistent set of values.
enum RoundError {
    /// A value read earlier has changed: the attempt reruns.
    Conflict(String),
    /// A request failed (for the path named).
    Failed(String, Error),
}

/// One server round of a read (see the module docs).
struct Round<'a> {
    /// Refs to read: their values are returned, in order (`None`: no such znode).
    new: &'a [Arc<dyn ErasedRef>],
    /// Earlier reads no watch vouches for: read again, they must be unchanged.
    stale: &'a [Earlier],
    /// Values held by a watch when the round started: they must still be after it.
    held: &'a [Earlier],
    /// Refs read only to arm their replicas' watches (values offered to the replicas).
    arm: &'a [Arc<dyn ErasedRef>],
}

/// Values read by a round, in the order of `Round::new`.
type Fresh = Vec<Option<(Arc<Vec<u8>>, Stat)>>;

/// How often a round reads again what changed while it ran before giving up (the attempt reruns).
const ROUND_RETRIES: usize = 3;

impl Round<'_> {
    async fn run(&self, session: &Session) -> std::result::Result<Fresh, RoundError> {
        let new_paths = self.new.iter().map(|r| r.path().as_str());
        let stale_paths = self.stale.iter().map(|(p, _, _)| p.as_str());
        let arm_paths = self.arm.iter().map(|r| r.path().as_str());
        let paths: Vec<&str> = new_paths.chain(stale_paths).chain(arm_paths).collect();
        let first = paths.first().map_or_else(String::new, |p| (*p).to_owned());
        let (generation, results) = session
            .get_and_watch_all(&paths)
            .await
            .map_err(|err| RoundError::Failed(first.clone(), err))?;
        let refs = self
            .new
            .iter()
            .chain(self.stale.iter().map(|(_, _, r)| r))
            .chain(self.arm);
        let mut read = Vec::with_capacity(paths.len());
        for (r, result) in refs.zip(results) {
            let now = result.map_err(|err| RoundError::Failed(r.path().to_string(), err))?;
            read.push(now.map(|(bytes, stat, watch)| {
                let bytes = Arc::new(bytes);
                // The value first, then its watch: a replica holding the watched value is
                // current again.
                r.cache().offer_raw(bytes.clone(), &stat);
                r.cache().arm(generation, stat.mzxid, watch);
                (bytes, stat)
            }));
        }
        let mut fresh: Fresh = read.drain(..self.new.len()).collect();
        // Earlier reads read again: unchanged, and (like every value held) still so now.
        for ((path, mzxid, r), now) in self.stale.iter().zip(&read) {
            let same = now.as_ref().is_some_and(|(_, stat)| stat.mzxid == *mzxid);
            if !same || !r.cache().vouches(generation, *mzxid) {
                return Err(RoundError::Conflict(path.clone()));
            }
        }
        self.check_held(generation)?;
        // New values whose watch fired during the round changed after their own reply: read
        // them again, together, in one atomic `multiRead`; everything else holds at its state
        // if no watch fired meanwhile either.
        let mut again = self.fired(generation, &fresh, &[]);
        for _ in 0..ROUND_RETRIES {
            if again.is_empty() {
                return Ok(fresh);
            }
            let paths: Vec<&str> = again
                .iter()
                .filter_map(|&i| self.new.get(i).map(|r| r.path().as_str()))
                .collect();
            let (on, values) = session
                .multi_read_tagged(&paths)
                .await
                .map_err(|err| RoundError::Failed(first.clone(), err))?;
            if on != generation {
                // Another ZooKeeper session answered: the watches say nothing about its replies.
                return Err(RoundError::Conflict(first));
            }
            for (&i, now) in again.iter().zip(values) {
                if let (Some(slot), Some(r)) = (fresh.get_mut(i), self.new.get(i)) {
                    *slot = now.map(|(bytes, stat)| {
                        let bytes = Arc::new(bytes);
                        r.cache().offer_raw(bytes.clone(), &stat);
                        (bytes, stat)
                    });
                }
            }
            // The values just read hold at the multiRead's state; so does every other value
            // whose watch has still not fired. A new value whose watch fired only now joins the
            // next multiRead.
            self.check_held(generation)?;
            let late = self.fired(generation, &fresh, &again);
            if late.is_empty() {
                return Ok(fresh);
            }
            again.extend(late);
        }
        Err(RoundError::Conflict(first))
    }

    /// The new values (not in `besides`) whose watch has fired since they were read.
    fn fired(&self, generation: u64, fresh: &Fresh, besides: &[usize]) -> Vec<usize> {
        self.new
            .iter()
            .zip(fresh)
            .enumerate()
            .filter(|(i, (r, now))| {
                !besides.contains(i)
                    && now
                        .as_ref()
                        .is_some_and(|(_, stat)| !r.cache().vouches(generation, stat.mzxid))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Every value held by a watch (and every earlier read read again) is still held.
    fn check_held(&self, generation: u64) -> std::result::Result<(), RoundError> {
        for (path, mzxid, r) in self.held.iter().chain(self.stale) {
            if !r.cache().vouches(generation, *mzxid) {
                return Err(RoundError::Conflict(path.clone()));
            }
        }
        Ok(())
    }
}

/// Checks an attempt whose first read came from a replica no watch vouched for (see
/// `Attempt::unverified`) before it commits: one round reading again every read no watch
/// vouches for. Changed → the attempt conflicts (and reruns from the replicas it armed);
/// unreadable → it conflicts and reruns.
async fn verify(attempt: &mut Attempt) {
    let Some(session) = attempt.session.clone() else {
        return;
    };
    let generation = session.generation();
    let live = session.is_valid(generation);
    let (held, stale): (Vec<Earlier>, Vec<Earlier>) = read_set(attempt)
        .into_iter()
        .partition(|(_, mzxid, r)| live && r.cache().vouches(generation, *mzxid));
    attempt.unverified = false;
    if stale.is_empty() {
        return;
    }
    let round = Round {
        new: &[],
        stale: &stale,
        held: &held,
        arm: &[],
    };
    match round.run(&session).await {
        Ok(_) => {}
        Err(RoundError::Conflict(path) | RoundError::Failed(path, _)) => {
            attempt.conflict = Some(path);
            attempt.found_by_read = true;
        }
    }
}

/// What an attempt has read.
fn read_set(attempt: &Attempt) -> Vec<Earlier> {
    attempt
        .entries
        .iter()
        .filter_map(|(p, e)| e.read.as_ref().map(|read| (p.clone(), read.mzxid, e.r.clone())))
        .collect()
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
    bytes: Arc<Vec<u8>>,
    stat: Stat,
) -> Result<AnyValue> {
    let path = r.path().to_string();
    // A large value's chunk set is fetched before the body sees it. If it is gone, the pointer
    // has moved on since the round: the attempt restarts.
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
            czxid: stat.czxid,
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
            // A conflict a read found needs no wait: nobody collided with a write of ours, the
            // attempt just saw old values, and the read armed the replicas at the new ones.
            let fresh = attempt.found_by_read;
            next = Some(Attempt::after(&attempt));
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
                next = Some(Attempt::after(&attempt));
                backoff.wait(started.elapsed()).await
            }
        }
    }
    Err(Error::RetryLimit {
        attempts: options.retry_limit,
    }
    .into())
}
