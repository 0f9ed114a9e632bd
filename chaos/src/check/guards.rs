//! Guards against the observer's record and against each other.
//!
//! * A guard whose grant began (the start of the poll that returned it) after the observer had
//!   already seen its node deleted was granted for a node that no longer existed.
//! * Tokens are node creation zxids. If guard A was returned before guard B's grant began and
//!   B's token is smaller, B's node is older than A's, so it existed when A was granted (it
//!   existed at B's grant, later) — and one of them must not have been granted: at least one of
//!   the two is exclusive (two readers may share).
//! * A fenced write refused with `NotHeld` after a grant, with no fault touching that worker
//!   between the grant and the refusal: the guard was returned for a node that was already gone,
//!   or its session was lost without cause.
//! * A read-write holder that saw a holder it must not share with ([`Event::Overlap`]).

use std::collections::HashMap;

use super::{key, Input, OpKey, Violation};
use crate::event::{Event, Mode, WriteOutcome};

struct Grant {
    key: OpKey,
    mode: Mode,
    token: i64,
    node: String,
    poll_start: i64,
    returned: i64,
}

/// Adds the guards' violations to `out`.
pub fn check(input: &Input<'_>, out: &mut Vec<Violation>) {
    let mut grants: Vec<Grant> = Vec::new();
    for line in input.lines {
        match &line.ev {
            Event::Granted {
                op,
                mode,
                token,
                node,
                poll_start,
            } => {
                if let Some(k) = key(line, *op) {
                    grants.push(Grant {
                        key: k,
                        mode: *mode,
                        token: *token,
                        node: node.clone(),
                        poll_start: *poll_start,
                        returned: line.t,
                    });
                }
            }
            Event::Overlap { op, mode, others } => out.push(Violation {
                kind: "shared-with-writer",
                detail: format!(
                    "worker {:?} (incarnation {}) op {op} held {mode:?} while these holders held: {others:?}",
                    line.w, line.inc
                ),
            }),
            _ => {}
        }
    }
    deleted_nodes(input, &grants, out);
    token_order(&grants, out);
    refused_without_fault(input, &grants, out);
}

fn deleted_nodes(input: &Input<'_>, grants: &[Grant], out: &mut Vec<Violation>) {
    for g in grants {
        if let Some(&gone) = input.gone.get(&g.node) {
            if gone < g.poll_start {
                out.push(Violation {
                    kind: "guard-for-deleted-node",
                    detail: format!(
                        "worker {} (incarnation {}) op {}: {:?} guard on node {} (token {}) granted \
                         in a poll that began at {}, but the node was gone by {} ({} ms before)",
                        g.key.0,
                        g.key.1,
                        g.key.2,
                        g.mode,
                        g.node,
                        g.token,
                        g.poll_start,
                        gone,
                        (g.poll_start - gone) / 1000
                    ),
                });
            }
        }
    }
}

fn token_order(grants: &[Grant], out: &mut Vec<Violation>) {
    let mut by_return: Vec<&Grant> = grants.iter().collect();
    by_return.sort_by_key(|g| g.returned);
    let mut by_start: Vec<&Grant> = grants.iter().collect();
    by_start.sort_by_key(|g| g.poll_start);
    // Largest token among guards returned so far: of any mode, and of exclusive ones.
    let mut max_any: Option<&Grant> = None;
    let mut max_excl: Option<&Grant> = None;
    let mut next = 0;
    for b in by_start {
        while let Some(a) = by_return.get(next).filter(|a| a.returned < b.poll_start) {
            if max_any.is_none_or(|m| a.token > m.token) {
                max_any = Some(a);
            }
            if a.mode != Mode::Read && max_excl.is_none_or(|m| a.token > m.token) {
                max_excl = Some(a);
            }
            next += 1;
        }
        let bound = if b.mode == Mode::Read { max_excl } else { max_any };
        if let Some(a) = bound.filter(|a| a.token > b.token) {
            out.push(Violation {
                kind: "token-order",
                detail: format!(
                    "worker {} op {} got a {:?} guard with token {} (node {}) at {}, after worker {} \
                     op {} had been returned a {:?} guard with the larger token {} (node {}) at {}",
                    b.key.0,
                    b.key.2,
                    b.mode,
                    b.token,
                    b.node,
                    b.poll_start,
                    a.key.0,
                    a.key.2,
                    a.mode,
                    a.token,
                    a.node,
                    a.returned
                ),
            });
        }
    }
}

fn refused_without_fault(input: &Input<'_>, grants: &[Grant], out: &mut Vec<Violation>) {
    let by_key: HashMap<OpKey, &Grant> = grants.iter().map(|g| (g.key, g)).collect();
    for line in input.lines {
        let Event::WriteEnd {
            op,
            outcome: WriteOutcome::NotHeld,
            ..
        } = &line.ev
        else {
            continue;
        };
        let Some(g) = key(line, *op).and_then(|k| by_key.get(&k)) else {
            continue;
        };
        let (w, from, to) = (g.key.0, g.poll_start, line.t);
        if !input.faults.iter().any(|f| f.touches(w, from, to)) {
            out.push(Violation {
                kind: "refused-right-after-grant",
                detail: format!(
                    "worker {w} (incarnation {}) op {op}: fenced write refused (NotHeld) {} ms after \
                     the grant of node {} (token {}), with no fault touching the worker in between",
                    g.key.1,
                    (to - from) / 1000,
                    g.node,
                    g.token
                ),
            });
        }
    }
}
