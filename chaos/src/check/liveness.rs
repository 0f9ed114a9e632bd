//! Progress: in every quiet window (no fault, and the last one healed `recovery` ago) every
//! worker acquires at least once; every worker stops when told; no contender node outlives the
//! workers.

use super::{Input, Violation};
use crate::event::{Event, StmOutcome};

/// Adds the liveness violations to `out`; returns the number of windows checked.
pub fn check(input: &Input<'_>, out: &mut Vec<Violation>) -> u64 {
    for w in input.stuck {
        out.push(Violation {
            kind: "stuck",
            detail: format!("worker {w} did not stop contending when told (no Stopped event)"),
        });
    }
    for (node, owner) in input.orphans {
        out.push(Violation {
            kind: "orphan-node",
            detail: format!(
                "contender node {node} (ephemeral owner {owner:#x}) still exists after every worker \
                 stopped and every dead session expired"
            ),
        });
    }
    let mut windows = 0;
    let (run_start, run_end) = input.run;
    let mut cursor = run_start + input.recovery_us;
    let mut quiet = Vec::new();
    for f in input.faults {
        if f.start > cursor {
            quiet.push((cursor, f.start));
        }
        cursor = cursor.max(f.end + input.recovery_us);
    }
    if run_end > cursor {
        quiet.push((cursor, run_end));
    }
    for (from, to) in quiet.into_iter().filter(|(a, b)| b - a >= input.min_window_us) {
        windows += 1;
        let mut counts = vec![0_u64; input.workers];
        for line in input.lines.iter().filter(|l| l.t >= from && l.t <= to) {
            // Progress: a guard (locks) or an acknowledged op (STM).
            let progress = matches!(
                line.ev,
                Event::Granted { .. }
                    | Event::StmEnd {
                        outcome: StmOutcome::Ok,
                        ..
                    }
            );
            if let (true, Some(w)) = (progress, line.w) {
                if let Some(c) = counts.get_mut(w) {
                    *c += 1;
                }
            }
        }
        for (w, c) in counts.iter().enumerate().filter(|(_, c)| **c == 0) {
            out.push(Violation {
                kind: "no-progress",
                detail: format!(
                    "worker {w} acquired nothing in the quiet window of {} ms starting {} \
                     (no fault in it, the last one healed at least {} ms before); acquisitions per \
                     worker there: {counts:?}",
                    (to - from) / 1000,
                    from,
                    input.recovery_us / 1000,
                ),
            });
            let _ = c;
        }
    }
    windows
}
