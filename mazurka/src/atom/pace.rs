//! Taking turns under contention: what makes contended swaps fair.
//!
//! A compare-and-set loop left to itself is unfair to the point of starvation: the winner of a
//! round hears first (its reply leaves the server before the losers'), its own write has
//! refreshed its copy, so its next write reaches the server before any loser's — and wins
//! again. Measured with 4 sessions: 9499 / 1 / 1 / 1 increments (issue 13).
//!
//! So writers take turns, without any shared state beyond the value itself:
//! - A **turn** is up to a few wins in a row (4 with up to 3 other writers, fewer with more, at
//!   least one), written back to back from the handle's own last value.
//! - At the end of a turn the writer **yields**: its next swap waits for about half the time
//!   the other writers' turns take (their number times the length of its own turn), then starts
//!   from a fresh read — its copy is stale by then. The others are counted *by writer*, from
//!   the writer ids in the value's envelope history (each handle tags its ids), not by value:
//!   counting values would make a slow turn see more of them, yield longer and fall further
//!   behind.
//! - A **loser** writes again at once, against the value it learned (from the replica, or a
//!   read; its next write takes a read along, so a second loss costs no extra round trip): its
//!   turn has come. A lost write, or another writer's value in the middle of a turn, ends the
//!   turn with its next win.
//!
//! Yielding half the others' turns, not all of them, makes a writer come back a little early:
//! that costs a lost write now and then, where coming back late would leave the value idle.
//! The yield only delays the *next* swap of the same handle (and its clones): a swap that
//! returns is never held back, and one that comes after its turn does not wait. A writer that
//! has seen no other writer for a second (no lost write, nobody else's value between its wins)
//! does not yield at all: an uncontended swap is one write, as before.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::codec::{HistoryEntry, WriterId};

/// The most other writers a yield makes room for.
const MAX_RIVALS: f64 = 64.0;

/// The longest a winner yields.
const MAX_YIELD: Duration = Duration::from_millis(50);

/// A win longer ago than this says nothing about the writers competing now.
const STALE_WIN: Duration = Duration::from_secs(1);

/// Weight of the newest sample in the running estimates.
const SMOOTHING: f64 = 0.5;

/// The most wins in a row one turn may take (fewer with more writers: see `TURN_BUDGET`).
/// A turn of several writes saves the next writer's fresh read on all but the first.
const MAX_WINS_PER_TURN: f64 = 4.0;

/// Wins per round of all writers: a turn takes `TURN_BUDGET / writers` wins (at least one),
/// so the wait of a writer for its next turn stays about the same with more writers.
const TURN_BUDGET: f64 = 16.0;

/// The part of the others' turns a yielding writer waits out.
const YIELD_SHARE: f64 = 0.5;

/// The least a writer yields under contention: longer than a loser needs to write again (a
/// loser's reply leaves the server after the winner's).
const LEAST_YIELD: Duration = Duration::from_millis(1);

/// The turn-taking state of one atom handle (shared by its clones).
#[derive(Debug)]
pub(crate) struct Pace {
    /// The upper half of every writer id this handle writes: other handles count the distinct
    /// writers in a value's history by it.
    tag: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The version our last winning write created, and when it was acknowledged.
    last_win: Option<(i32, Instant)>,
    /// When we last saw another writer: lost a write, or found others' values landed between
    /// two wins of ours.
    rival_seen: Option<Instant>,
    /// Other writers per round of ours (running estimate).
    rivals: f64,
    /// How long one turn of ours lasts, from its first swap's start to its last win (running
    /// estimate): what each of the others needs too.
    turn_time: Option<Duration>,
    /// When the current turn's first swap started, and the wins in it so far.
    turn_start: Option<Instant>,
    wins: u32,
    /// The current turn ends with its next win: we lost a write in it, or someone else wrote
    /// in the middle of it.
    cut: bool,
    /// Set at the end of a turn under contention: our next swap waits until then, and reads
    /// first.
    next_turn: Option<Instant>,
}

impl Pace {
    pub(crate) fn new() -> Pace {
        Pace {
            tag: rand::random::<u64>() | 1,
            state: Mutex::default(),
        }
    }

    /// A fresh writer id for one write of this handle: its tag, then 64 random bits.
    pub(crate) fn writer_id(&self) -> WriterId {
        WriterId((u128::from(self.tag) << 64) | u128::from(rand::random::<u64>()))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for this handle's turn (see the module docs). `true` if its previous turn ended
    /// under contention: the value it holds is stale by now, so the swap must start from a fresh
    /// read.
    pub(crate) async fn take_turn(&self) -> bool {
        let next = self.state().next_turn.take();
        if let Some(at) = next {
            tokio::time::sleep_until(at).await;
        }
        let mut state = self.state();
        if state.turn_start.is_none() {
            state.turn_start = Some(Instant::now());
        }
        next.is_some()
    }

    /// Records a lost write: somebody else is writing, and our turn ends with this swap.
    pub(crate) fn lost(&self) {
        let mut state = self.state();
        state.rival_seen = Some(Instant::now());
        state.cut = true;
    }

    /// Records a won write: it created `version` over a value whose writers were `before`
    /// (newest first, as in the envelope).
    pub(crate) fn won(&self, version: i32, before: &[HistoryEntry]) {
        let now = Instant::now();
        let mut state = self.state();
        // The other writers whose values landed since our last win: counted by writer, not by
        // value, or a slow round of ours would count the same quick rival many times and make
        // us slower still. (Without a recent win: whoever wrote the value we overwrote.)
        let since = match state.last_win {
            Some((last, at)) if now.duration_since(at) < STALE_WIN && last < version => last,
            _ => version - 2,
        };
        let mut writers: Vec<u64> = before
            .iter()
            .filter(|entry| entry.version > since && !entry.writer.is_unknown())
            .map(|entry| (entry.writer.0 >> 64) as u64)
            .filter(|&tag| tag != self.tag)
            .collect();
        writers.sort_unstable();
        writers.dedup();
        state.last_win = Some((version, now));
        if !writers.is_empty() {
            state.rival_seen = Some(now);
            // Someone wrote in the middle of our turn: it ends here.
            state.cut |= state.wins > 0;
        }
        if state.wins == 0 {
            // The first win of a turn: the others had theirs since our last one.
            let others = (writers.len() as f64).min(MAX_RIVALS);
            state.rivals = SMOOTHING * others + (1.0 - SMOOTHING) * state.rivals;
        }
        state.wins = state.wins.saturating_add(1);
        let contended = state
            .rival_seen
            .is_some_and(|at| now.duration_since(at) < STALE_WIN);
        if !contended {
            state.wins = 0;
            state.cut = false;
            state.turn_start = None;
            state.next_turn = None;
            return;
        }
        let per_turn = (TURN_BUDGET / (state.rivals + 1.0)).clamp(1.0, MAX_WINS_PER_TURN) as u32;
        if state.wins < per_turn && !state.cut {
            return; // our turn goes on: the next swap writes at once
        }
        let took = state
            .turn_start
            .map_or(Duration::ZERO, |at| now.duration_since(at));
        let turn_time = match state.turn_time {
            Some(t) => t.mul_f64(1.0 - SMOOTHING) + took.mul_f64(SMOOTHING),
            None => took,
        };
        state.turn_time = Some(turn_time);
        state.wins = 0;
        state.cut = false;
        state.turn_start = None;
        // Half the others' turns, jittered: coming back early costs a lost write (and the loser
        // of it writes again at once), coming back late leaves the value idle. Measured with 4
        // writers: 0.5 x gave about 1.4x the throughput of a whole turn each, same fairness.
        let jitter = 0.875 + 0.25 * rand::random::<f64>();
        let pause = turn_time.mul_f64(state.rivals * YIELD_SHARE * jitter);
        state.next_turn = Some(now + pause.max(LEAST_YIELD).min(MAX_YIELD));
    }
}
