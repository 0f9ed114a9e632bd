//! The checker: reads a run's log lines, the observer's record and the servers' final state, and
//! lists every violation of the locks' promises it can prove. Each check is sound: it reports
//! only what correct locks could not have produced, so a clean run says "0 violations found",
//! never "correct".
//!
//! * [`history`]: fenced writes — none acknowledged and lost, none refused and applied, the
//!   counter never moved under a holder, history applied in token order.
//! * [`guards`]: tokens increase in the order guards were returned; no guard for a node already
//!   deleted; no fenced write refused right after its grant without a fault in between; no
//!   read-write holder saw another it must not share with.
//! * [`liveness`]: every worker acquires (or, STM, completes an op) in every quiet window;
//!   workers stop when told; no contender node is left once they have.
//! * [`stm`]: the STM workload's history — ops applied exactly once / at most once, audits,
//!   write skew, lost replies.

pub mod guards;
pub mod history;
pub mod liveness;
pub mod stm;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::event::{Event, Line, WriteOutcome};
use crate::workload::counter::Entry;

/// A fault as the controller logged it: from its start to the moment everything it did was
/// healed (a killed worker restarted, a paused one resumed, a leader restarted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultSpan {
    /// Fault number.
    pub id: u64,
    /// Kind name.
    pub kind: String,
    /// The worker it targeted, or `None` for the servers (it touches every worker).
    pub target: Option<usize>,
    /// Start (µs).
    pub start: i64,
    /// End (µs).
    pub end: i64,
}

impl FaultSpan {
    /// Whether this fault could have touched worker `w` during `[from, to]`.
    #[must_use]
    pub fn touches(&self, w: usize, from: i64, to: i64) -> bool {
        self.target.is_none_or(|t| t == w) && self.start <= to && from <= self.end
    }

    /// The spans of the controller's fault lines.
    #[must_use]
    pub fn from_lines(lines: &[Line], run_end: i64) -> Vec<FaultSpan> {
        let mut open: HashMap<u64, FaultSpan> = HashMap::new();
        let mut spans = Vec::new();
        for line in lines.iter().filter(|l| l.w.is_none()) {
            match &line.ev {
                Event::FaultStart { id, kind, target } => {
                    open.insert(
                        *id,
                        FaultSpan {
                            id: *id,
                            kind: kind.clone(),
                            target: *target,
                            start: line.t,
                            end: run_end,
                        },
                    );
                }
                Event::FaultEnd { id } => {
                    if let Some(mut span) = open.remove(id) {
                        span.end = line.t;
                        spans.push(span);
                    }
                }
                _ => {}
            }
        }
        // A fault never healed lasts to the end of the run.
        spans.extend(open.into_values());
        spans.sort_by_key(|s| s.start);
        spans
    }
}

/// One violation: which property, and the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The property broken (a short kebab-case name).
    pub kind: &'static str,
    /// The evidence: workers, operations, tokens, nodes, times.
    pub detail: String,
}

/// Everything the checks read.
#[derive(Debug)]
pub struct Input<'a> {
    /// Every log line of the run (workers' and controller's).
    pub lines: &'a [Line],
    /// The counter directory's final children.
    pub counter_children: &'a [String],
    /// The history of fenced writes, in counter order.
    pub history: &'a [Entry],
    /// History entries whose names did not parse.
    pub junk: &'a [String],
    /// Observer: node name → time by which it was certainly deleted.
    pub gone: &'a HashMap<String, i64>,
    /// The faults.
    pub faults: &'a [FaultSpan],
    /// Contender nodes left after every worker stopped, with their ephemeral owners.
    pub orphans: &'a [(String, i64)],
    /// Workers that did not report stopping when told.
    pub stuck: &'a [usize],
    /// From all workers started to the stop command (µs).
    pub run: (i64, i64),
    /// Time after a fault heals before every worker must make progress again (µs).
    pub recovery_us: i64,
    /// Shortest quiet window in which progress is required (µs).
    pub min_window_us: i64,
    /// Number of workers.
    pub workers: usize,
}

/// Counts of what happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Guards returned.
    pub acquisitions: u64,
    /// Guards returned, per worker.
    pub per_worker: Vec<u64>,
    /// Lock calls that returned an error.
    pub lock_errors: u64,
    /// Fenced writes by outcome.
    pub writes: BTreeMap<String, u64>,
    /// Entries in the history of fenced writes.
    pub history_len: u64,
    /// Quiet windows in which every worker's progress was checked.
    pub windows_checked: u64,
}

/// Runs every check.
#[must_use]
pub fn check(input: &Input<'_>) -> (Stats, Vec<Violation>) {
    let mut violations = Vec::new();
    history::check(input, &mut violations);
    guards::check(input, &mut violations);
    let windows_checked = liveness::check(input, &mut violations);
    let mut stats = Stats {
        per_worker: vec![0; input.workers],
        history_len: input.history.len() as u64,
        windows_checked,
        ..Stats::default()
    };
    for line in input.lines {
        match &line.ev {
            Event::Granted { .. } => {
                stats.acquisitions += 1;
                if let Some(count) = line.w.and_then(|w| stats.per_worker.get_mut(w)) {
                    *count += 1;
                }
            }
            Event::LockError { .. } => stats.lock_errors += 1,
            Event::WriteEnd { outcome, .. } => {
                let name = match outcome {
                    WriteOutcome::Ok => "ok",
                    WriteOutcome::NotHeld => "rejected-not-held",
                    WriteOutcome::Conflict => "conflict",
                    WriteOutcome::Unknown => "unknown",
                };
                *stats.writes.entry(name.to_owned()).or_default() += 1;
            }
            _ => {}
        }
    }
    (stats, violations)
}

/// `(worker, incarnation, op)`: one operation of one worker process.
pub(crate) type OpKey = (usize, u32, u64);

/// The key of a worker's line about `op`.
pub(crate) fn key(line: &Line, op: u64) -> Option<OpKey> {
    Some((line.w?, line.inc, op))
}
