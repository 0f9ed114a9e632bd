//! Fenced writes against the history the servers kept: every acknowledged write is there, no
//! refused one is, the counter never moved under a holder, and entries are in token order.

use std::collections::HashMap;

use super::{key, Input, OpKey, Violation};
use crate::event::{Event, WriteOutcome};
use crate::workload::counter;

/// Adds the history's violations to `out`.
pub fn check(input: &Input<'_>, out: &mut Vec<Violation>) {
    let mut begun: HashMap<OpKey, (u64, i64)> = HashMap::new();
    let mut ended: HashMap<OpKey, (u64, WriteOutcome, Option<String>)> = HashMap::new();
    for line in input.lines {
        match &line.ev {
            Event::WriteBegin { op, n, token } if *n > 0 => {
                if let Some(k) = key(line, *op) {
                    begun.insert(k, (*n, *token));
                }
            }
            Event::WriteEnd {
                op,
                n,
                outcome,
                error,
            } if *n > 0 => {
                if let Some(k) = key(line, *op) {
                    ended.insert(k, (*n, *outcome, error.clone()));
                }
            }
            _ => {}
        }
    }
    let applied: HashMap<OpKey, &counter::Entry> = input
        .history
        .iter()
        .map(|e| ((e.worker, e.inc, e.op), e))
        .collect();

    for (k, (n, outcome, error)) in &ended {
        let (w, inc, op) = k;
        let entry = applied.get(k);
        match outcome {
            WriteOutcome::Ok if entry.is_none_or(|e| e.n != *n) => out.push(Violation {
                kind: "lost-write",
                detail: format!(
                    "worker {w} (incarnation {inc}) op {op}: fenced write of {n} acknowledged, \
                     but the history has {:?}",
                    entry.map(|e| e.n)
                ),
            }),
            WriteOutcome::NotHeld | WriteOutcome::Conflict if entry.is_some() => out.push(Violation {
                kind: "refused-write-applied",
                detail: format!(
                    "worker {w} (incarnation {inc}) op {op}: fenced write of {n} reported {outcome:?} \
                     ({error:?}) but is in the history"
                ),
            }),
            WriteOutcome::Conflict => out.push(Violation {
                kind: "counter-moved-under-holder",
                detail: format!(
                    "worker {w} (incarnation {inc}) op {op}: its node still existed, but the counter \
                     it read under the lock had been changed by another holder when it wrote {n} \
                     ({error:?})"
                ),
            }),
            _ => {}
        }
    }

    let mut previous: Option<&counter::Entry> = None;
    for (i, entry) in input.history.iter().enumerate() {
        let expected = i as u64 + 1;
        if entry.n != expected {
            out.push(Violation {
                kind: "history-gap",
                detail: format!(
                    "history entry {i} is for counter value {} (expected {expected})",
                    entry.n
                ),
            });
            break;
        }
        let k = (entry.worker, entry.inc, entry.op);
        match begun.get(&k) {
            Some(&(n, token)) if n == entry.n && token == entry.token => {}
            other => out.push(Violation {
                kind: "unlogged-write",
                detail: format!("history entry {entry:?} matches no logged write (logged: {other:?})"),
            }),
        }
        if let Some(prev) = previous {
            if entry.token <= prev.token {
                out.push(Violation {
                    kind: "history-token-order",
                    detail: format!(
                        "counter value {} written with token {} after value {} with token {} \
                         (worker {} op {}, then worker {} op {})",
                        entry.n,
                        entry.token,
                        prev.n,
                        prev.token,
                        prev.worker,
                        prev.op,
                        entry.worker,
                        entry.op
                    ),
                });
            }
        }
        previous = Some(entry);
    }
    let last = input.history.last().map_or(0, |e| e.n);
    let counter_ok = matches!(input.counter_children, [only] if counter::parse_counter(only) == Some(last));
    if !counter_ok {
        out.push(Violation {
            kind: "counter-mismatch",
            detail: format!(
                "the counter's children are {:?}, the history ends at {last}",
                input.counter_children
            ),
        });
    }
    if !input.junk.is_empty() {
        out.push(Violation {
            kind: "history-junk",
            detail: format!("history entries that do not parse: {:?}", input.junk),
        });
    }
}
