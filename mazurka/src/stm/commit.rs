//! Committing an attempt: one ZooKeeper `multi` — a `check` for every ref read and not written,
//! a versioned `setData` for every ref written — and deciding the outcome when its reply is lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::txn::{Attempt, ReadAt};
use crate::codec::{Envelope, WriterId};
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

/// One operation of the commit, owned.
#[derive(Debug)]
struct Op {
    path: String,
    /// `Some` for a write (the encoded envelope), `None` for a check.
    data: Option<Arc<Vec<u8>>>,
    version: i32,
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

/// Errors that are not the server's answer: the commit may or may not have applied.
fn ambiguous(err: &Error) -> bool {
    err.is_retryable() || matches!(err, Error::SessionLost)
}

/// The history for a value replacing the one read at `base`.
fn history(base: &ReadAt) -> Vec<crate::codec::HistoryEntry> {
    super::stored::history_after(base.version, &base.meta)
}

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
    let commute_only: Vec<String> = attempt
        .entries
        .iter()
        .filter(|(_, e)| !e.written && e.read.is_none() && !e.commutes.is_empty())
        .map(|(p, _)| p.clone())
        .collect();
    for _ in 0..COMMUTE_ROUNDS {
        let mut bases: HashMap<String, ReadAt> = HashMap::new();
        if !commute_only.is_empty() {
            let paths: Vec<&str> = commute_only.iter().map(String::as_str).collect();
            let fresh = session.multi_read(&paths).await?;
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
                let (mut value, meta) = entry.r.decode(&bytes)?;
                for f in &entry.commutes {
                    value = f(&value)?;
                }
                entry.value = Some(value);
                bases.insert(
                    path.clone(),
                    ReadAt {
                        version: stat.version,
                        meta,
                    },
                );
            }
        }
        let mut ops = Vec::new();
        for (path, entry) in &attempt.entries {
            let base = entry.read.as_ref().or_else(|| bases.get(path));
            let Some(base) = base else { continue };
            if entry.written || !entry.commutes.is_empty() {
                let Some(value) = entry.value.as_ref() else {
                    continue;
                };
                entry.r.validate(value)?;
                let data = entry.r.encode(value, attempt.id, &history(base))?;
                ops.push(Op {
                    path: path.clone(),
                    data: Some(Arc::new(data)),
                    version: base.version,
                });
            } else {
                ops.push(Op {
                    path: path.clone(),
                    data: None,
                    version: base.version,
                });
            }
        }
        match session.multi(&as_multi(&ops)).await {
            Ok(MultiOutcome::Committed(stats)) => {
                let written = ops
                    .iter()
                    .filter_map(|op| op.data.as_ref().map(|d| (&op.path, d)));
                for ((path, data), stat) in written.zip(stats) {
                    if let Some(entry) = attempt.entries.get(path) {
                        entry.r.cache().offer(data.clone(), stat.version, stat.mzxid);
                    }
                }
                return Ok(Outcome::Committed);
            }
            Ok(MultiOutcome::Refused { index, error }) => {
                let path = ops.get(index).map(|op| op.path.clone()).unwrap_or_default();
                match error {
                    Error::ZooKeeper {
                        code: ZkErrorCode::BadVersion | ZkErrorCode::NoNode,
                        ..
                    } => {
                        if commute_only.contains(&path) {
                            continue; // only a commuted ref moved: re-apply, no rerun
                        }
                        if let Some(entry) = attempt.entries.get(&path) {
                            entry.r.cache().mark_suspect();
                        }
                        return Ok(Outcome::Conflict);
                    }
                    other => return Err(other),
                }
            }
            Err(err) if ambiguous(&err) => return resolve(&session, attempt.id, &ops).await,
            Err(err) => return Err(err),
        }
    }
    Ok(Outcome::Conflict)
}

/// Decides a commit whose reply was lost, by reading back the first written ref: our writer id
/// there (or in its recent history) means applied; the ref past the expected version without our
/// id means not applied; still at the expected version means not applied *yet* — so the same
/// `multi` is sent again at the same versions (only one of the two can win) and the read-back
/// repeats. Never applies a write twice; never reports failure for a commit that landed.
async fn resolve(session: &Session, id: WriterId, ops: &[Op]) -> Result<Outcome> {
    let Some(first) = ops.iter().find(|op| op.data.is_some()) else {
        return Ok(Outcome::Committed);
    };
    let unknown = |detail: String| Error::OutcomeUnknown {
        path: first.path.clone(),
        detail,
    };
    for _ in 0..RESOLVE_ROUNDS {
        let now = match session.get(&first.path).await {
            Ok(now) => now,
            Err(err) if ambiguous(&err) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(err) => return Err(err),
        };
        let Some((bytes, stat)) = now else {
            return Ok(Outcome::Conflict);
        };
        let Ok(envelope) = Envelope::parse(&bytes) else {
            return Ok(Outcome::Conflict);
        };
        if envelope.writer == id || envelope.history.iter().any(|h| h.writer == id) {
            return Ok(Outcome::Committed);
        }
        if stat.version == first.version {
            match session.multi(&as_multi(ops)).await {
                Ok(MultiOutcome::Committed(_)) => return Ok(Outcome::Committed),
                Ok(MultiOutcome::Refused { .. }) => continue,
                Err(err) if ambiguous(&err) => continue,
                Err(err) => return Err(err),
            }
        }
        // Past the expected version. Our write would be version `first.version + 1`: if the
        // history reaches back that far and does not name us, it did not land (and cannot now).
        let behind = i64::from(stat.version) - i64::from(first.version) - 1;
        if behind <= envelope.history.len() as i64 {
            return Ok(Outcome::Conflict);
        }
        return Err(unknown(format!(
            "the ref moved {behind} versions past our write while the connection was down, more than its \
             history of {} writes records",
            envelope.history.len()
        )));
    }
    Err(unknown("the server could not be reached to decide".into()))
}
