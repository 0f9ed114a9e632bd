//! The STM's history checker: the final values (which list the ids of the ops applied to them)
//! against the workers' logs.
//!
//! * every acknowledged op applied exactly once; every other (an error, `OutcomeUnknown`, or no
//!   end logged because the worker was killed) at most once; an op that reported an error other
//!   than `OutcomeUnknown` applied not at all (the library promises never to report failure for
//!   a commit that landed);
//! * a transfer's id in both of its accounts or in neither (atomicity), in no other account;
//!   no id in the final state that no worker began (or began as another kind of op);
//! * each balance is its initial value plus the transfers its list names; the bank's sum is
//!   conserved;
//! * every audit (a read-only transaction) saw the conserved sum and no half-applied transfer;
//! * no write skew: no pair sum below 0, in the final state, in an audit, or read by a skew op;
//! * the lost replies: ops of a worker whose replies the nemesis held and then cut, and how
//!   each was decided (applied / not applied / `OutcomeUnknown`), checked against the final state.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{FaultSpan, Violation};
use crate::event::{Event, Line, StmKind, StmOutcome};
use crate::workload::stm::{split_id, Account, ACCOUNTS, INITIAL_BALANCE};

/// The final state of one epoch (`None` where a ref was never created).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochState {
    /// The accounts, by index.
    pub accounts: Vec<Option<Account>>,
    /// The counter atom's list of increment ids.
    pub counter: Option<Vec<u64>>,
    /// The skew pairs `(x, y)`.
    pub pairs: Vec<(Option<i64>, Option<i64>)>,
}

/// The final state of every epoch.
pub type StmState = BTreeMap<u64, EpochState>;

/// How the ops caught by reply cuts were decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LostReplies {
    /// Write ops (transfer, increment, skew) in flight on a worker while the nemesis held its
    /// replies and cut its connection.
    pub in_flight: u64,
    /// …that the worker saw acknowledged (decided: applied).
    pub decided_applied: u64,
    /// …that ended with an error other than `OutcomeUnknown` (decided: not applied).
    pub decided_not_applied: u64,
    /// …that ended `OutcomeUnknown`.
    pub outcome_unknown: u64,
    /// `OutcomeUnknown` ones found applied in the final state (transfers and increments).
    pub unknown_found_applied: u64,
    /// …with no end logged (the worker was killed or stopped first).
    pub no_end: u64,
}

/// Counts of what the STM workers did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StmStats {
    /// Ops by kind, then by outcome (`ok`, `outcome-unknown`, `failed`, `no-end`).
    pub ops: BTreeMap<String, BTreeMap<String, u64>>,
    /// Acknowledged ops per worker.
    pub per_worker_ok: Vec<u64>,
    /// Audits completed.
    pub audits: u64,
    /// Epochs (sets of refs) in the final state.
    pub epochs: u64,
    /// Unacknowledged transfers and increments found applied (once).
    pub unacknowledged_applied: u64,
    /// Ops caught by reply cuts.
    pub lost_replies: LostReplies,
}

#[derive(Debug, Clone)]
struct Op {
    id: u64,
    who: (usize, u32, u64),
    epoch: u64,
    kind: StmKind,
    a: u64,
    b: u64,
    amount: i64,
    begin: i64,
    end: Option<(i64, StmOutcome, Option<String>)>,
}

fn kind_name(kind: StmKind) -> &'static str {
    match kind {
        StmKind::Transfer => "transfer",
        StmKind::Increment => "increment",
        StmKind::Skew => "skew",
        StmKind::Audit => "audit",
    }
}

fn outcome_name(outcome: Option<StmOutcome>) -> &'static str {
    match outcome {
        Some(StmOutcome::Ok) => "ok",
        Some(StmOutcome::OutcomeUnknown) => "outcome-unknown",
        Some(StmOutcome::Failed) => "failed",
        None => "no-end",
    }
}

/// Checks the STM run; returns its counts and adds its violations to `out`.
#[must_use]
pub fn check(
    lines: &[Line],
    state: &StmState,
    faults: &[FaultSpan],
    workers: usize,
    out: &mut Vec<Violation>,
) -> StmStats {
    let mut stats = StmStats {
        per_worker_ok: vec![0; workers],
        epochs: state.len() as u64,
        ..StmStats::default()
    };
    let ops = collect_ops(lines, out);
    let total = INITIAL_BALANCE * ACCOUNTS as i64;

    for line in lines {
        if let Event::Audit {
            op,
            epoch,
            sum,
            torn,
            skew_min,
        } = &line.ev
        {
            stats.audits += 1;
            let who = (line.w.unwrap_or(usize::MAX), line.inc, *op);
            if *sum != total || !torn.is_empty() {
                out.push(Violation {
                    kind: "audit-inconsistent",
                    detail: format!(
                        "audit {who:?} of epoch {epoch} at {}: sum {sum} (conserved: {total}), \
                         transfers seen in one account only: {:?}",
                        line.t,
                        torn.iter().map(|id| split_id(*id)).collect::<Vec<_>>()
                    ),
                });
            }
            if *skew_min < 0 {
                out.push(Violation {
                    kind: "write-skew",
                    detail: format!("audit {who:?} of epoch {epoch} saw a pair with x + y = {skew_min}"),
                });
            }
        }
    }

    for op in ops.values() {
        let outcome = op.end.as_ref().map(|e| e.1);
        *stats
            .ops
            .entry(kind_name(op.kind).to_owned())
            .or_default()
            .entry(outcome_name(outcome).to_owned())
            .or_default() += 1;
        if outcome == Some(StmOutcome::Ok) {
            if let Some(n) = stats.per_worker_ok.get_mut(op.who.0) {
                *n += 1;
            }
        }
    }

    for (epoch, st) in state {
        check_epoch(*epoch, st, &ops, &mut stats, out);
    }
    lost_replies(&ops, state, faults, &mut stats);
    stats
}

/// Every op's begin and end, by id; skew ends that read a negative sum are reported here.
fn collect_ops(lines: &[Line], out: &mut Vec<Violation>) -> HashMap<u64, Op> {
    let mut ops: HashMap<u64, Op> = HashMap::new();
    let mut by_who: HashMap<(usize, u32, u64), u64> = HashMap::new();
    for line in lines {
        let Some(w) = line.w else { continue };
        match &line.ev {
            Event::StmBegin {
                op,
                id,
                epoch,
                kind,
                a,
                b,
                amount,
            } => {
                by_who.insert((w, line.inc, *op), *id);
                ops.insert(
                    *id,
                    Op {
                        id: *id,
                        who: (w, line.inc, *op),
                        epoch: *epoch,
                        kind: *kind,
                        a: *a,
                        b: *b,
                        amount: *amount,
                        begin: line.t,
                        end: None,
                    },
                );
            }
            Event::StmEnd {
                op,
                outcome,
                error,
                seen,
            } => {
                if let Some(o) = by_who.get(&(w, line.inc, *op)).and_then(|id| ops.get_mut(id)) {
                    o.end = Some((line.t, *outcome, error.clone()));
                    if let Some(s) = seen.filter(|s| *s < 0) {
                        out.push(Violation {
                            kind: "write-skew",
                            detail: format!(
                                "skew op {:?} on pair {} of epoch {} committed after reading x + y = {s}",
                                o.who, o.a, o.epoch
                            ),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    ops
}

fn describe(op: &Op) -> String {
    let end = match &op.end {
        Some((t, outcome, error)) => format!("ended {} at {t} ({error:?})", outcome_name(Some(*outcome))),
        None => "no end logged".to_owned(),
    };
    format!(
        "{} {:?} (worker, incarnation, op) of epoch {} [{} {} {}], begun at {}, {end}",
        kind_name(op.kind),
        op.who,
        op.epoch,
        op.a,
        op.b,
        op.amount,
        op.begin
    )
}

/// Checks the count of an op's id in the final state against its outcome.
fn check_count(op: &Op, count: usize, where_: &str, stats: &mut StmStats, out: &mut Vec<Violation>) {
    let outcome = op.end.as_ref().map(|e| e.1);
    if count > 1 {
        out.push(Violation {
            kind: "applied-twice",
            detail: format!("{} is {count} times in {where_}", describe(op)),
        });
    }
    match outcome {
        Some(StmOutcome::Ok) if count == 0 => out.push(Violation {
            kind: "lost-ack",
            detail: format!("{} was acknowledged but is not in {where_}", describe(op)),
        }),
        Some(StmOutcome::Failed) if count > 0 => out.push(Violation {
            kind: "failed-but-applied",
            detail: format!(
                "{} reported an error other than OutcomeUnknown but is in {where_}",
                describe(op)
            ),
        }),
        Some(StmOutcome::Ok) => {}
        _ if count > 0 => stats.unacknowledged_applied += 1,
        _ => {}
    }
}

fn check_epoch(
    epoch: u64,
    st: &EpochState,
    ops: &HashMap<u64, Op>,
    stats: &mut StmStats,
    out: &mut Vec<Violation>,
) {
    // Where each id occurs: account index → count.
    let mut places: HashMap<u64, BTreeMap<u64, usize>> = HashMap::new();
    let mut sum = 0;
    let mut complete = true;
    for (i, acct) in st.accounts.iter().enumerate() {
        let Some(acct) = acct else {
            complete = false;
            continue;
        };
        let i = i as u64;
        sum += acct.balance;
        let mut expected = INITIAL_BALANCE;
        for id in &acct.applied {
            *places.entry(*id).or_default().entry(i).or_default() += 1;
            match ops.get(id) {
                Some(op) if op.kind == StmKind::Transfer && op.epoch == epoch => {
                    if op.a == i {
                        expected -= op.amount;
                    } else if op.b == i {
                        expected += op.amount;
                    }
                }
                _ => {}
            }
        }
        if acct.balance != expected {
            out.push(Violation {
                kind: "balance",
                detail: format!(
                    "epoch {epoch} account {i}: balance {} but its list of {} transfers makes {expected}",
                    acct.balance,
                    acct.applied.len()
                ),
            });
        }
    }
    if complete && sum != INITIAL_BALANCE * ACCOUNTS as i64 {
        out.push(Violation {
            kind: "bank-sum",
            detail: format!("epoch {epoch}: final balances sum to {sum}"),
        });
    }
    for (id, at) in &places {
        let Some(op) = ops
            .get(id)
            .filter(|op| op.kind == StmKind::Transfer && op.epoch == epoch)
        else {
            out.push(Violation {
                kind: "phantom-op",
                detail: format!(
                    "epoch {epoch}: id {:?} is in accounts {at:?} but no worker began a transfer with it there",
                    split_id(*id)
                ),
            });
            continue;
        };
        let (ca, cb) = (
            at.get(&op.a).copied().unwrap_or(0),
            at.get(&op.b).copied().unwrap_or(0),
        );
        if ca != cb || at.keys().any(|k| *k != op.a && *k != op.b) {
            out.push(Violation {
                kind: "torn-transfer",
                detail: format!(
                    "{}: its id is in the accounts (index → times) {at:?}",
                    describe(op)
                ),
            });
        }
    }
    for op in ops.values().filter(|op| op.epoch == epoch) {
        match op.kind {
            StmKind::Transfer => {
                let count = places.get(&op.id).map_or(0, |at| {
                    at.get(&op.a)
                        .copied()
                        .unwrap_or(0)
                        .max(at.get(&op.b).copied().unwrap_or(0))
                });
                check_count(op, count, &format!("epoch {epoch}'s accounts"), stats, out);
            }
            StmKind::Increment => {
                if let Some(list) = &st.counter {
                    let count = list.iter().filter(|x| **x == op.id).count();
                    check_count(op, count, &format!("epoch {epoch}'s counter"), stats, out);
                }
            }
            StmKind::Skew | StmKind::Audit => {}
        }
    }
    if let Some(list) = &st.counter {
        for id in list {
            if !ops
                .get(id)
                .is_some_and(|op| op.kind == StmKind::Increment && op.epoch == epoch)
            {
                out.push(Violation {
                    kind: "phantom-op",
                    detail: format!(
                        "epoch {epoch}: id {:?} is in the counter but no worker began an increment with it there",
                        split_id(*id)
                    ),
                });
            }
        }
    }
    for (k, (x, y)) in st.pairs.iter().enumerate() {
        if let (Some(x), Some(y)) = (x, y) {
            if x + y < 0 {
                out.push(Violation {
                    kind: "write-skew",
                    detail: format!("epoch {epoch} pair {k}: final x = {x}, y = {y}"),
                });
            }
        }
    }
}

/// The ops caught by reply cuts, and how they were decided.
fn lost_replies(ops: &HashMap<u64, Op>, state: &StmState, faults: &[FaultSpan], stats: &mut StmStats) {
    let cuts: Vec<&FaultSpan> = faults.iter().filter(|f| f.kind == "cut-replies").collect();
    for op in ops.values() {
        if op.kind == StmKind::Audit {
            continue;
        }
        let end = op.end.as_ref().map_or(i64::MAX, |e| e.0);
        if !cuts.iter().any(|f| f.touches(op.who.0, op.begin, end)) {
            continue;
        }
        let lr = &mut stats.lost_replies;
        lr.in_flight += 1;
        match op.end.as_ref().map(|e| e.1) {
            Some(StmOutcome::Ok) => lr.decided_applied += 1,
            Some(StmOutcome::Failed) => lr.decided_not_applied += 1,
            Some(StmOutcome::OutcomeUnknown) => {
                lr.outcome_unknown += 1;
                if applied(op, state) {
                    lr.unknown_found_applied += 1;
                }
            }
            None => lr.no_end += 1,
        }
    }
}

fn applied(op: &Op, state: &StmState) -> bool {
    let id = op.id;
    let Some(st) = state.get(&op.epoch) else {
        return false;
    };
    match op.kind {
        StmKind::Transfer => st
            .accounts
            .get(usize::try_from(op.a).unwrap_or(usize::MAX))
            .and_then(Option::as_ref)
            .is_some_and(|a| a.applied.contains(&id)),
        StmKind::Increment => st.counter.as_ref().is_some_and(|c| c.contains(&id)),
        StmKind::Skew | StmKind::Audit => false,
    }
}
