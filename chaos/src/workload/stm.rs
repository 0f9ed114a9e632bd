//! The STM's workload: bank transfers between refs whose values list the ids of the ops applied
//! to them (a list-append history, so the checker sees a transfer applied twice, which the bank
//! sum alone cannot), an atom counter whose value lists its increments' ids, write-skew pairs
//! (`x + y >= 0`, each op reads both and decrements one), and read-only audits of it all.
//!
//! The refs of a run are grouped in epochs of [`EPOCH_SECS`] of wall time (`/stm/e<n>/…`, made
//! on first use by whoever gets there first): the lists only grow, and a fresh set every minute
//! keeps values small in long runs while every check still works per epoch. Every op logs
//! [`Event::StmBegin`] (its id, epoch and arguments) before it sends anything.

use std::collections::HashMap;
use std::time::Duration;

use mazurka::{dosync, Atom, Error, Ref};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{backoff, Broken, Ctx};
use crate::event::{now_us, Event, StmKind, StmOutcome};

/// The STM's root, inside the run's chroot.
pub const ROOT: &str = "/stm";
/// Accounts per epoch.
pub const ACCOUNTS: u64 = 5;
/// Each account's balance when its epoch begins.
pub const INITIAL_BALANCE: i64 = 1000;
/// Write-skew pairs per epoch.
pub const PAIRS: u64 = 3;
/// Each side of a pair when its epoch begins.
pub const SKEW_INITIAL: i64 = 2;
/// Length of an epoch (wall time).
pub const EPOCH_SECS: i64 = 60;

/// An account: its balance and the ids of the transfers applied to it, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The balance.
    pub balance: i64,
    /// Ids of the transfers applied (debits and credits).
    pub applied: Vec<u64>,
}

/// The id an op writes into the values: worker, incarnation and op number in one `u64`.
#[must_use]
pub fn op_id(worker: usize, inc: u32, op: u64) -> u64 {
    ((worker as u64 & 0xffff) << 48) | ((u64::from(inc) & 0xffff) << 32) | (op & 0xffff_ffff)
}

/// `(worker, incarnation, op)` of an [`op_id`].
#[must_use]
pub fn split_id(id: u64) -> (usize, u32, u64) {
    (
        usize::try_from(id >> 48).unwrap_or(usize::MAX),
        u32::try_from((id >> 32) & 0xffff).unwrap_or(u32::MAX),
        id & 0xffff_ffff,
    )
}

/// The epoch of wall time `t` (µs).
#[must_use]
pub fn epoch_of(t: i64) -> u64 {
    u64::try_from(t / 1_000_000 / EPOCH_SECS).unwrap_or(0)
}

/// The directory of an epoch's refs.
#[must_use]
pub fn epoch_dir(epoch: u64) -> String {
    format!("{ROOT}/e{epoch:08}")
}

/// Parses the name of an [`epoch_dir`].
#[must_use]
pub fn parse_epoch(name: &str) -> Option<u64> {
    name.strip_prefix('e')?.parse().ok()
}

/// Account `i` of `epoch`.
#[must_use]
pub fn account_path(epoch: u64, i: u64) -> String {
    format!("{}/acct-{i}", epoch_dir(epoch))
}

/// The counter atom of `epoch`.
#[must_use]
pub fn counter_path(epoch: u64) -> String {
    format!("{}/counter", epoch_dir(epoch))
}

/// Side `side` (0 = x, 1 = y) of pair `k` of `epoch`.
#[must_use]
pub fn skew_path(epoch: u64, k: u64, side: u64) -> String {
    format!(
        "{}/skew-{k}-{}",
        epoch_dir(epoch),
        if side == 0 { "x" } else { "y" }
    )
}

/// One epoch's handles.
struct Epoch {
    accounts: Vec<Ref<Account>>,
    counter: Atom<Vec<u64>>,
    pairs: Vec<(Ref<i64>, Ref<i64>)>,
}

impl Epoch {
    async fn open(ctx: &Ctx, epoch: u64) -> mazurka::Result<Epoch> {
        let s = &ctx.session;
        let mut accounts = Vec::new();
        for i in 0..ACCOUNTS {
            let initial = Account {
                balance: INITIAL_BALANCE,
                applied: Vec::new(),
            };
            accounts.push(Ref::new(s, account_path(epoch, i), initial).await?);
        }
        let counter = Atom::new(s, counter_path(epoch), Vec::new()).await?;
        let mut pairs = Vec::new();
        for k in 0..PAIRS {
            let x = Ref::new(s, skew_path(epoch, k, 0), SKEW_INITIAL).await?;
            let y = Ref::new(s, skew_path(epoch, k, 1), SKEW_INITIAL).await?;
            pairs.push((x, y));
        }
        Ok(Epoch {
            accounts,
            counter,
            pairs,
        })
    }
}

fn outcome_of<T>(result: &mazurka::Result<T>) -> (StmOutcome, Option<String>) {
    match result {
        Ok(_) => (StmOutcome::Ok, None),
        Err(e @ Error::OutcomeUnknown { .. }) => (StmOutcome::OutcomeUnknown, Some(e.to_string())),
        Err(e) => (StmOutcome::Failed, Some(e.to_string())),
    }
}

pub(crate) async fn run(ctx: &Ctx, stop: watch::Receiver<bool>) {
    let mut epochs: HashMap<u64, Epoch> = HashMap::new();
    let mut op = 0;
    while !*stop.borrow() {
        op += 1;
        let epoch = epoch_of(now_us());
        if !epochs.contains_key(&epoch) {
            match Epoch::open(ctx, epoch).await {
                Ok(e) => {
                    epochs.retain(|k, _| *k + 1 >= epoch);
                    epochs.insert(epoch, e);
                }
                Err(e) => {
                    ctx.log(Event::StepError {
                        op,
                        step: format!("open epoch {epoch}"),
                        error: e.to_string(),
                    });
                    backoff(ctx).await;
                    continue;
                }
            }
        }
        let Some(refs) = epochs.get(&epoch) else { continue };
        one(ctx, refs, epoch, op).await;
        ctx.note_session();
    }
}

/// Runs one op, chosen at random: transfer 40 %, increment 25 %, skew 20 %, audit 15 %.
async fn one(ctx: &Ctx, refs: &Epoch, epoch: u64, op: u64) {
    let id = op_id(ctx.worker, ctx.inc, op);
    let roll = ctx.below(100);
    let begin = |kind, a, b, amount| {
        ctx.log(Event::StmBegin {
            op,
            id,
            epoch,
            kind,
            a,
            b,
            amount,
        });
    };
    let end = |outcome: (StmOutcome, Option<String>), seen| {
        ctx.log(Event::StmEnd {
            op,
            outcome: outcome.0,
            error: outcome.1,
            seen,
        });
    };
    if roll < 40 {
        let from = pick(ctx, ACCOUNTS);
        let to = (from + 1 + pick(ctx, ACCOUNTS - 1)) % ACCOUNTS;
        let amount = i64::try_from(1 + pick(ctx, 50)).unwrap_or(1);
        begin(StmKind::Transfer, from, to, amount);
        let result = transfer(ctx, refs, id, from, to, amount).await;
        let ok = result.is_ok();
        end(outcome_of(&result), None);
        if ok && ctx.broken == Some(Broken::StmReapply) && ctx.chance(0.3) {
            // The broken client: it "retries" a transfer that did commit, with the same id.
            let _ = transfer(ctx, refs, id, from, to, amount).await;
        }
    } else if roll < 65 {
        begin(StmKind::Increment, 0, 0, 1);
        let result = refs
            .counter
            .swap(|ids| {
                let mut ids = ids.clone();
                ids.push(id);
                ids
            })
            .await;
        end(outcome_of(&result), None);
    } else if roll < 85 {
        let k = pick(ctx, PAIRS);
        let side = pick(ctx, 2);
        begin(StmKind::Skew, k, side, 1);
        let result = skew(ctx, refs, k, side).await;
        let seen = result.as_ref().ok().copied();
        end(outcome_of(&result), seen);
    } else {
        begin(StmKind::Audit, 0, 0, 0);
        let result = audit(refs).await;
        if let Ok((sum, torn, skew_min)) = &result {
            ctx.log(Event::Audit {
                op,
                epoch,
                sum: *sum,
                torn: torn.clone(),
                skew_min: *skew_min,
            });
        }
        end(outcome_of(&result), None);
    }
}

fn pick(ctx: &Ctx, n: u64) -> u64 {
    ctx.below(n)
}

/// Moves `amount` from account `from` to `to` and appends `id` to both, in one transaction (or,
/// broken, in two).
async fn transfer(ctx: &Ctx, refs: &Epoch, id: u64, from: u64, to: u64, amount: i64) -> mazurka::Result<()> {
    let (Some(a), Some(b)) = (
        refs.accounts.get(usize::try_from(from).unwrap_or(usize::MAX)),
        refs.accounts.get(usize::try_from(to).unwrap_or(usize::MAX)),
    ) else {
        return Ok(());
    };
    let apply = |acct: &Account, delta: i64| Account {
        balance: acct.balance + delta,
        applied: acct.applied.iter().copied().chain([id]).collect(),
    };
    let pause = ctx.random_up_to(ctx.hold);
    if ctx.broken == Some(Broken::StmNoTxn) {
        dosync(|| async move {
            a.alter(|v| apply(v, -amount)).await?;
            Ok::<_, Error>(())
        })
        .await?;
        tokio::time::sleep(pause + Duration::from_millis(5)).await;
        return dosync(|| async move {
            b.alter(|v| apply(v, amount)).await?;
            Ok::<_, Error>(())
        })
        .await;
    }
    dosync(|| async move {
        let from_value = a.get().await?;
        // A pause between the reads and the writes widens the window for conflicts.
        tokio::time::sleep(pause).await;
        b.alter(|v| apply(v, amount)).await?;
        a.ref_set(apply(&from_value, -amount)).await?;
        Ok::<_, Error>(())
    })
    .await
}

/// Reads both sides of pair `k`; decrements `side` if `x + y >= 1`, else adds 2 to it. Returns
/// the sum read.
async fn skew(ctx: &Ctx, refs: &Epoch, k: u64, side: u64) -> mazurka::Result<i64> {
    let Some((x, y)) = refs.pairs.get(usize::try_from(k).unwrap_or(usize::MAX)) else {
        return Ok(0);
    };
    let target = if side == 0 { x } else { y };
    let pause = ctx.random_up_to(ctx.hold);
    if ctx.broken == Some(Broken::StmNoTxn) {
        // The broken client: the check in one transaction, the write in another.
        let sum = dosync(|| async move { Ok::<_, Error>(x.get().await? + y.get().await?) }).await?;
        tokio::time::sleep(pause + Duration::from_millis(20)).await;
        let delta = if sum >= 1 { -1 } else { 2 };
        dosync(|| async move {
            target.alter(|v| v + delta).await?;
            Ok::<_, Error>(())
        })
        .await?;
        return Ok(sum);
    }
    dosync(|| async move {
        let sum = x.get().await? + y.get().await?;
        // Two ops on the same pair that both read a sum of 1 and decrement different sides
        // would break the invariant: only serializability forbids it. Widen the window.
        tokio::time::sleep(pause).await;
        let delta = if sum >= 1 { -1 } else { 2 };
        target.alter(|v| v + delta).await?;
        Ok::<_, Error>(sum)
    })
    .await
}

/// A read-only transaction over every account and pair of the epoch: the sum of balances, the
/// transfer ids present in exactly one account, the smallest pair sum.
async fn audit(refs: &Epoch) -> mazurka::Result<(i64, Vec<u64>, i64)> {
    dosync(|| async move {
        let accounts = Ref::get_all(&refs.accounts).await?;
        let sides: Vec<&Ref<i64>> = refs.pairs.iter().flat_map(|(x, y)| [x, y]).collect();
        let values = Ref::get_all(sides).await?;
        let sum = accounts.iter().map(|a| a.balance).sum();
        let mut seen: HashMap<u64, u32> = HashMap::new();
        for id in accounts.iter().flat_map(|a| &a.applied) {
            *seen.entry(*id).or_default() += 1;
        }
        let mut torn: Vec<u64> = seen
            .into_iter()
            .filter(|(_, n)| *n % 2 == 1)
            .map(|(id, _)| id)
            .collect();
        torn.sort_unstable();
        let skew_min = values.chunks(2).map(|p| p.iter().sum::<i64>()).min().unwrap_or(0);
        Ok::<_, Error>((sum, torn, skew_min))
    })
    .await
}
