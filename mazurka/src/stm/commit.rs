//! Committing an attempt: one ZooKeeper `multi` — a `check` for every ref read and not written,
//! a versioned `setData` for every ref written (a chunk pointer for a large value, whose chunk set
//! is written first, with a `check` that the set is live and the retirement of the set it
//! replaces) — and deciding the outcome when its reply is lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::cache::{Cached, Payload};
use super::refs::ErasedRef;
use super::stored::{landing, Landing};
use super::txn::{Attempt, ReadAt};
use crate::blob::{BlobOp, Packed};
use crate::codec::WriterId;
use crate::error::{Error, Result, ZkErrorCode};
use crate::session::{MultiOp, MultiOutcome, Session};

/// How a commit ended (errors aside).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Committed,
    /// Someone else changed what the attempt read: run the body again.
    Conflict,
}

/// Rounds of re-applying commutes to fresh values before rerunning the body instead.
const COMMUTE_ROUNDS: usize = 8;
/// Read-backs when deciding an ambiguous commit.
const RESOLVE_ROUNDS: usize = 50;

/// What an operation of the commit is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A ref's new value (inline, or a chunk pointer).
    Value,
    /// A ref read and not written.
    Check,
    /// A new chunk set must still be live (not doomed by a reclaim pass).
    BlobCheck,
    /// The chunk set of a replaced value is retired.
    BlobRetire,
}

/// One operation of the commit, owned.
#[derive(Debug)]
struct Op {
    path: String,
    /// The data of a `setData` (`Value`, `BlobRetire`); `None` for a check.
    data: Option<Arc<Vec<u8>>>,
    version: i32,
    /// The create zxid of the znode the attempt read (`Value`, `Check`; 0 otherwise): a znode
    /// with another one was deleted and re-created since.
    czxid: i64,
    kind: Kind,
}

fn as_multi(ops: &[Op]) -> Vec<MultiOp<'_>> {
    ops.iter()
        .map(|op| match &op.data {
            Some(data) => MultiOp::Set {
                path: &op.path,
                data,
                version: Some(op.version),
            },
            None => MultiOp::Check {
                path: &op.path,
                version: op.version,
            },
        })
        .collect()
}

/// A ref written by a round: its packed value and the guard operations that came with it.
struct Written {
    r: Arc<dyn ErasedRef>,
    path: String,
    packed: Packed,
    guards: Vec<BlobOp>,
}

/// Deletes the chunk sets of a round whose commit did not apply (they were never visible).
fn discard(written: &[Written]) {
    for w in written {
        w.r.blobs().discard(&w.packed);
    }
}

/// After a commit: reclaim passes for the refs whose chunk sets were created or retired.
fn committed(written: &[Written]) {
    for w in written {
        w.r.blobs().committed(&w.guards);
    }
}

/// Errors that are not the server's answer: the commit may or may not have applied.
fn ambiguous(err: &Error) -> bool {
    err.is_retryable() || matches!(err, Error::SessionLost)
}

/// The history for a value replacing the one read at `base`.
fn history(base: &ReadAt) -> Vec<crate::codec::HistoryEntry> {
    super::stored::history_after(base.version, &base.meta)
}

/// Commits an attempt: large values' chunk sets first (each ref's chunks written in parallel),
/// then one `multi` of checks, values (or pointers) and chunk set guards.
pub(crate) async fn commit(attempt: &mut Attempt) -> Result<Outcome> {
    let Some(session) = attempt.session.clone() else {
        return Ok(Outcome::Committed);
    };
    let writes = attempt
        .entries
        .values()
        .any(|e| e.written || !e.commutes.is_empty());
    if !writes {
        // Read only: every read was part of one consistent snapshot already.
        return Ok(Outcome::Committed);
    }
    // A ref read this attempt that this process has since learnt changed (its watch fired, or
    // the replica holds a newer value) cannot commit: found here without a request. This is
    // also what catches a ref deleted and re-created at the version read (its `check` would
    // pass: versions start again at 0), when the notification came before the commit is sent.
    let moved = attempt.entries.values().find(|e| {
        e.read
            .as_ref()
            .is_some_and(|read| e.r.cache().moved_past(read.mzxid))
    });
    if let Some(entry) = moved {
        entry.r.cache().mark_suspect();
        return Ok(Outcome::Conflict);
    }
    let commute_only: Vec<String> = attempt
        .entries
        .iter()
        .filter(|(_, e)| !e.written && e.read.is_none() && !e.commutes.is_empty())
        .map(|(p, _)| p.clone())
        .collect();
    'rounds: for _ in 0..COMMUTE_ROUNDS {
        let mut bases: HashMap<String, ReadAt> = HashMap::new();
        if !commute_only.is_empty() {
            let paths: Vec<&str> = commute_only.iter().map(String::as_str).collect();
            let fresh = match session.multi_read(&paths).await {
                Ok(fresh) => fresh,
                // Nothing sent yet: a transient failure just means trying again.
                Err(err) if err.is_retryable() || matches!(err, Error::SessionLost) => {
                    return Ok(Outcome::Conflict)
                }
                Err(err) => return Err(err),
            };
            for (path, now) in commute_only.iter().zip(fresh) {
                let Some(entry) = attempt.entries.get_mut(path) else {
                    continue;
                };
                let Some((bytes, stat)) = now else {
                    return Err(Error::ZooKeeper {
                        operation: "getData",
                        path: path.clone(),
                        code: ZkErrorCode::NoNode,
                    });
                };
                let Some(cached) = entry.r.resolve(Arc::new(bytes), stat).await? else {
                    continue 'rounds; // its chunk set went with a newer value: read again
                };
                let (mut value, meta) = entry.r.decode(&cached)?;
                for f in &entry.commutes {
                    value = f(&value)?;
                }
                entry.value = Some(value);
                bases.insert(
                    path.clone(),
                    ReadAt {
                        version: stat.version,
                        mzxid: stat.mzxid,
                        czxid: stat.czxid,
                        meta,
                        bytes: cached.bytes,
                    },
                );
            }
        }
        let mut ops = Vec::new();
        let mut written: Vec<Written> = Vec::new();
        for (path, entry) in &attempt.entries {
            let base = entry.read.as_ref().or_else(|| bases.get(path));
            let Some(base) = base else { continue };
            if entry.written || !entry.commutes.is_empty() {
                let Some(value) = entry.value.as_ref() else {
                    continue;
                };
                let packed = async {
                    entry.r.validate(value)?;
                    let envelope = entry.r.encode(value, attempt.id, &history(base))?;
                    entry.r.blobs().pack(envelope).await
                }
                .await;
                let packed = match packed {
                    Ok(packed) => packed,
                    Err(err) => {
                        discard(&written);
                        return Err(err);
                    }
                };
                let guards = entry.r.blobs().guard_ops(&packed, Some(&base.bytes));
                ops.push(Op {
                    path: path.clone(),
                    data: Some(packed.bytes.clone()),
                    version: base.version,
                    czxid: base.czxid,
                    kind: Kind::Value,
                });
                ops.extend(guards.iter().map(|guard| match guard {
                    BlobOp::Check { path } => Op {
                        path: path.clone(),
                        data: None,
                        version: 0,
                        czxid: 0,
                        kind: Kind::BlobCheck,
                    },
                    BlobOp::Retire { path, data } => Op {
                        path: path.clone(),
                        data: Some(Arc::new(data.clone())),
                        version: 0,
                        czxid: 0,
                        kind: Kind::BlobRetire,
                    },
                }));
                written.push(Written {
                    r: entry.r.clone(),
                    path: path.clone(),
                    packed,
                    guards,
                });
            } else {
                ops.push(Op {
                    path: path.clone(),
                    data: None,
                    version: base.version,
                    czxid: base.czxid,
                    kind: Kind::Check,
                });
            }
        }
        loop {
            match session.multi(&as_multi(&ops)).await {
                Ok(MultiOutcome::Committed(stats)) => {
                    let sets = ops.iter().filter(|op| op.data.is_some());
                    for (op, stat) in sets.zip(stats) {
                        let (Kind::Value, Some(data)) = (op.kind, &op.data) else {
                            continue;
                        };
                        if let Some(w) = written.iter().find(|w| w.path == op.path) {
                            let payload = w.packed.payload().map_or(Payload::Inline, Payload::Fetched);
                            w.r.cache().offer(Cached::new(data.clone(), &stat, payload));
                        }
                    }
                    committed(&written);
                    return Ok(Outcome::Committed);
                }
                Ok(MultiOutcome::Refused { index, error }) => {
                    let (path, kind) = ops
                        .get(index)
                        .map_or((String::new(), Kind::Check), |op| (op.path.clone(), op.kind));
                    if kind == Kind::BlobRetire {
                        // The replaced set is not where it should be (removed by hand?): commit
                        // without retiring it; a reclaim pass deals with whatever is left.
                        tracing::warn!(
                            set = path,
                            "the replaced chunk set was not live; leaving it to reclaim"
                        );
                        ops.remove(index);
                        continue;
                    }
                    discard(&written);
                    if kind == Kind::BlobCheck {
                        // Our new set was doomed as an orphan (a very slow commit): write again.
                        return Ok(Outcome::Conflict);
                    }
                    match error {
                        Error::ZooKeeper {
                            code: ZkErrorCode::BadVersion | ZkErrorCode::NoNode,
                            ..
                        } => {
                            if commute_only.contains(&path) {
                                continue 'rounds; // only a commuted ref moved: re-apply, no rerun
                            }
                            if let Some(entry) = attempt.entries.get(&path) {
                                entry.r.cache().mark_suspect();
                            }
                            return Ok(Outcome::Conflict);
                        }
                        other => return Err(other),
                    }
                }
                Err(err) if ambiguous(&err) => {
                    let outcome = resolve(&session, attempt.id, &ops).await;
                    match &outcome {
                        Ok(Outcome::Committed) => committed(&written),
                        Ok(Outcome::Conflict) => discard(&written),
                        // Unknown: leave the sets to reclaim (an orphan, or the live value).
                        Err(_) => {}
                    }
                    return outcome;
                }
                Err(err) => {
                    discard(&written);
                    return Err(err);
                }
            }
        }
    }
    Ok(Outcome::Conflict)
}

/// Decides a commit whose reply was lost, by reading back the refs it wrote: our writer id in one
/// of them (or in its recent history) means applied; one past the expected version without our
/// id means not applied; one still at the expected version means not applied *yet* — so the same
/// `multi` is sent again at the same versions (only one of the two can win) and the read-back
/// repeats. Never applies a write twice; never reports failure for a commit that landed.
///
/// A written ref deleted (or deleted and re-created: another create zxid) since the attempt read
/// it proves nothing either way — its versions started again, and a landed write went with the
/// old znode — so only the refs still the znodes the attempt read decide; if none is,
/// `OutcomeUnknown`.
async fn resolve(session: &Session, id: WriterId, ops: &[Op]) -> Result<Outcome> {
    let written: Vec<&Op> = ops.iter().filter(|op| op.kind == Kind::Value).collect();
    let Some(first) = written.first() else {
        return Ok(Outcome::Committed);
    };
    let unknown = |detail: String| Error::OutcomeUnknown {
        path: first.path.clone(),
        detail,
    };
    let paths: Vec<&str> = written.iter().map(|op| op.path.as_str()).collect();
    let mut refused = false;
    for _ in 0..RESOLVE_ROUNDS {
        let now = match session.multi_read(&paths).await {
            Ok(now) => now,
            Err(err) if ambiguous(&err) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(err) => return Err(err),
        };
        // The first written ref that is still the znode the attempt read decides.
        let same = written.iter().zip(now).find_map(|(op, now)| {
            let (bytes, stat) = now?;
            (stat.czxid == op.czxid).then_some((op, bytes, stat))
        });
        let Some((op, bytes, stat)) = same else {
            return Err(unknown(
                "every ref the commit wrote was deleted (or deleted and re-created) while its reply was lost: \
                 whether it landed before cannot be told"
                    .into(),
            ));
        };
        match landing(&bytes, stat.version, id, op.version) {
            Landing::Landed => return Ok(Outcome::Committed),
            // The same multi was refused before (another of its conditions no longer holds, and
            // versions only grow, so it never will again) and ours has not landed: the original
            // cannot land either.
            Landing::NotYet if refused => return Ok(Outcome::Conflict),
            Landing::NotYet => match session.multi(&as_multi(ops)).await {
                Ok(MultiOutcome::Committed(_)) => return Ok(Outcome::Committed),
                Ok(MultiOutcome::Refused { .. }) => refused = true,
                Err(err) if ambiguous(&err) => {}
                Err(err) => return Err(err),
            },
            Landing::NotLanded => return Ok(Outcome::Conflict),
            Landing::Unknown(detail) => return Err(unknown(detail)),
        }
    }
    Err(unknown("the server could not be reached to decide".into()))
}
