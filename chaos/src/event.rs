//! The campaign's log: one JSON line per event, from workers (on their stdout) and from the
//! controller (faults). Every line carries a wall-clock timestamp in microseconds: all processes
//! run on one machine and read the same clock, so lines of different processes can be ordered
//! (the checks only compare times where a margin of microseconds cannot change the verdict).

use serde::{Deserialize, Serialize};

/// Microseconds since the Unix epoch, from the wall clock shared by every process of a run.
#[must_use]
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Which lock a request or guard is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The exclusive `DistributedLock`.
    Exclusive,
    /// A `DistributedRwLock`'s read side.
    Read,
    /// A `DistributedRwLock`'s write side.
    Write,
}

/// How a fenced write ended, as the worker saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteOutcome {
    /// Committed.
    Ok,
    /// Refused because the holder's node was gone (`Error::NotHeld`): nothing written.
    NotHeld,
    /// The holder's node was there but the counter had moved since it was read under the lock:
    /// someone else committed while this holder held — mutual exclusion was broken.
    Conflict,
    /// The reply was lost (connection, session): the write may or may not have applied.
    Unknown,
}

/// What an STM operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StmKind {
    /// A transaction moving `amount` between two accounts, appending its id to both.
    Transfer,
    /// An `Atom::swap` appending its id to the counter's list.
    Increment,
    /// A transaction on a write-skew pair: decrements one side if `x + y >= 1`, else adds 2.
    Skew,
    /// A read-only transaction over all accounts and pairs.
    Audit,
}

/// How an STM operation ended, as the worker saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StmOutcome {
    /// Committed (acknowledged): applied exactly once.
    Ok,
    /// `Error::OutcomeUnknown`: applied at most once.
    OutcomeUnknown,
    /// Any other error: the library says it did not apply (checked: at most once anyway).
    Failed,
}

/// What happened, as one log line's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "kebab-case")]
pub enum Event {
    /// A worker process started and connected.
    Start {
        /// The ZooKeeper session id.
        session: i64,
    },
    /// The worker's session is a new ZooKeeper session (after an expiry).
    Session {
        /// The new ZooKeeper session id.
        session: i64,
    },
    /// The worker asked for the lock.
    Request {
        /// Operation number, per incarnation.
        op: u64,
        /// Which lock.
        mode: Mode,
    },
    /// `lock()` (or `read()`/`write()`) returned a guard.
    Granted {
        /// Operation number.
        op: u64,
        /// Which lock.
        mode: Mode,
        /// The guard's fencing token (its node's czxid).
        token: i64,
        /// The guard's node name (last path segment).
        node: String,
        /// When the poll that returned the guard began: the grant was decided after this.
        poll_start: i64,
    },
    /// `lock()` returned an error.
    LockError {
        /// Operation number.
        op: u64,
        /// The error, displayed.
        error: String,
    },
    /// A fenced write is about to be sent.
    WriteBegin {
        /// Operation number.
        op: u64,
        /// The counter value it writes.
        n: u64,
        /// The guard's token it carries.
        token: i64,
    },
    /// A fenced write ended.
    WriteEnd {
        /// Operation number.
        op: u64,
        /// The counter value it wrote (or tried to).
        n: u64,
        /// How it ended.
        outcome: WriteOutcome,
        /// The error, displayed, when not `Ok`.
        error: Option<String>,
    },
    /// A holder saw, while holding, another live holder it must not share the lock with (the
    /// read-write workload's markers); logged only once a fenced commit proved that this holder's
    /// node existed after the observation.
    Overlap {
        /// Operation number.
        op: u64,
        /// Which side this holder holds.
        mode: Mode,
        /// The other holders' markers.
        others: Vec<String>,
    },
    /// The guard was released (or the release failed).
    Released {
        /// Operation number.
        op: u64,
        /// The error, displayed, if the release failed.
        error: Option<String>,
    },
    /// A step of the workload failed outside the lock calls (a read of the counter, a marker).
    StepError {
        /// Operation number.
        op: u64,
        /// Which step.
        step: String,
        /// The error, displayed.
        error: String,
    },
    /// The worker expired its own session on command (the nemesis' `expire`).
    Expired {
        /// The error, displayed, if the expiry could not be done.
        error: Option<String>,
    },
    /// The worker stopped contending (on `stop`): no pending request, no guard.
    Stopped,
    /// An STM operation is about to run (logged before anything is sent, so every op id found
    /// in the final state has a line).
    StmBegin {
        /// Operation number, per incarnation.
        op: u64,
        /// The op id written into the values ([`crate::workload::stm::op_id`]).
        id: u64,
        /// The epoch (set of refs) it works on.
        epoch: u64,
        /// What it does.
        kind: StmKind,
        /// Transfer: the account debited; skew: the pair; otherwise 0.
        a: u64,
        /// Transfer: the account credited; skew: the side decremented (0 = x, 1 = y).
        b: u64,
        /// Transfer: the amount.
        amount: i64,
    },
    /// An STM operation ended.
    StmEnd {
        /// Operation number.
        op: u64,
        /// How it ended.
        outcome: StmOutcome,
        /// The error, displayed, when not `Ok`.
        error: Option<String>,
        /// Skew: the sum `x + y` the committed transaction read (it decremented only if >= 1).
        seen: Option<i64>,
    },
    /// A read-only transaction's snapshot of an epoch, as the auditor found it.
    Audit {
        /// Operation number.
        op: u64,
        /// The epoch.
        epoch: u64,
        /// Sum of all balances.
        sum: i64,
        /// Transfer ids found in exactly one account of the snapshot (half-applied transfers).
        torn: Vec<u64>,
        /// The smallest `x + y` of the skew pairs in the snapshot.
        skew_min: i64,
    },
    /// A fault began (controller).
    FaultStart {
        /// Fault number.
        id: u64,
        /// What kind.
        kind: String,
        /// The worker it targets, if any.
        target: Option<usize>,
    },
    /// A fault ended: everything it did is healed (controller).
    FaultEnd {
        /// Fault number.
        id: u64,
    },
}

/// One log line: who, when, what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// Microseconds since the epoch ([`now_us`]).
    pub t: i64,
    /// The worker, or `None` for the controller.
    pub w: Option<usize>,
    /// The worker's incarnation (restarts after a kill count up).
    pub inc: u32,
    /// The event.
    #[serde(flatten)]
    pub ev: Event,
}

impl Line {
    /// The line as JSON (no newline).
    #[must_use]
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail; an empty object keeps the log
        // parseable if it ever did.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Parses a line written by [`Line::to_json`]; `None` for anything else (a worker killed
    /// mid-write leaves a truncated line, which is skipped).
    #[must_use]
    pub fn parse(text: &str) -> Option<Line> {
        serde_json::from_str(text).ok()
    }
}
