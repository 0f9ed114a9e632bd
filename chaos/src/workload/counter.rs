//! The counter every exclusive holder increments, and its history.
//!
//! The counter is the name of the only child of [`paths::COUNTER`] (`c-<n>`), so a worker reads
//! it with a listing (Mazurka's `Session` has no raw data read, and needs none). A fenced write
//! of `n + 1` deletes `c-<n>` and creates `c-<n+1>` and a history entry that names the writer,
//! its operation and its fencing token, all in one `multi` behind the check of the holder's node.
//! If another holder committed after this one read the counter, the delete fails although the
//! holder's node still exists: a [`WriteOutcome::Conflict`], which only two holders at once can
//! cause.

use mazurka::{Error, Fenced, Session, ZkErrorCode};

use super::{paths, Ctx};
use crate::event::{Event, WriteOutcome};

/// The counter's value, from the listing of [`paths::COUNTER`].
pub(crate) async fn read(session: &Session) -> Result<u64, String> {
    let children = session
        .list_children(paths::COUNTER)
        .await
        .map_err(|e| e.to_string())?;
    match children.as_slice() {
        [only] => parse_counter(only).ok_or_else(|| format!("bad counter node {only:?}")),
        other => Err(format!("the counter has {} children: {other:?}", other.len())),
    }
}

/// `c-<n>` → `n`.
#[must_use]
pub fn parse_counter(name: &str) -> Option<u64> {
    name.strip_prefix("c-")?.parse().ok()
}

/// The counter node holding `n`.
#[must_use]
pub fn counter_node(n: u64) -> String {
    format!("{}/c-{n:010}", paths::COUNTER)
}

/// The history bucket of entry `n`.
#[must_use]
pub fn bucket_path(n: u64) -> String {
    format!("{}/b{:06}", paths::OPS, n / paths::BUCKET)
}

/// The history entry of the write of `n`.
#[must_use]
pub fn entry_name(n: u64, worker: usize, inc: u32, op: u64, token: i64) -> String {
    format!("n{n:010}.w{worker}.i{inc}.o{op}.t{token}")
}

/// A parsed history entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The counter value written.
    pub n: u64,
    /// The writer.
    pub worker: usize,
    /// The writer's incarnation.
    pub inc: u32,
    /// The writer's operation.
    pub op: u64,
    /// The writer's fencing token.
    pub token: i64,
}

/// Parses [`entry_name`].
#[must_use]
pub fn parse_entry(name: &str) -> Option<Entry> {
    let mut parts = name.split('.');
    let n = parts.next()?.strip_prefix('n')?.parse().ok()?;
    let worker = parts.next()?.strip_prefix('w')?.parse().ok()?;
    let inc = parts.next()?.strip_prefix('i')?.parse().ok()?;
    let op = parts.next()?.strip_prefix('o')?.parse().ok()?;
    let token = parts.next()?.strip_prefix('t')?.parse().ok()?;
    parts.next().is_none().then_some(Entry {
        n,
        worker,
        inc,
        op,
        token,
    })
}

/// Adds the increment from `n - 1` to `n` to a fenced batch.
pub(crate) fn add_increment<'a>(
    fenced: Fenced<'a>,
    ctx: &Ctx,
    op: u64,
    n: u64,
    token: i64,
) -> mazurka::Result<Fenced<'a>> {
    let mut fenced = fenced
        .delete(&counter_node(n - 1))?
        .create(&counter_node(n), Vec::new())?;
    if n.checked_rem(paths::BUCKET) == Some(0) {
        fenced = fenced.create(&bucket_path(n), Vec::new())?;
    }
    fenced.create(
        &format!(
            "{}/{}",
            bucket_path(n),
            entry_name(n, ctx.worker, ctx.inc, op, token)
        ),
        Vec::new(),
    )
}

/// How a fenced commit's result is classified.
pub(crate) fn classify(result: &mazurka::Result<()>) -> (WriteOutcome, Option<String>) {
    match result {
        Ok(()) => (WriteOutcome::Ok, None),
        Err(e @ Error::NotHeld { .. }) => (WriteOutcome::NotHeld, Some(e.to_string())),
        Err(
            e @ Error::ZooKeeper {
                code: ZkErrorCode::NoNode | ZkErrorCode::NodeExists,
                ..
            },
        ) => (WriteOutcome::Conflict, Some(e.to_string())),
        Err(e) => (WriteOutcome::Unknown, Some(e.to_string())),
    }
}

/// Commits `fenced` (which increments to `n`, or writes no counter value when `n` is 0) and logs
/// its begin and end; returns whether it committed.
pub(crate) async fn commit_logged(ctx: &Ctx, op: u64, n: u64, token: i64, fenced: Fenced<'_>) -> bool {
    ctx.log(Event::WriteBegin { op, n, token });
    let result = fenced.commit().await;
    let (outcome, error) = classify(&result);
    ctx.log(Event::WriteEnd {
        op,
        n,
        outcome,
        error,
    });
    outcome == WriteOutcome::Ok
}
