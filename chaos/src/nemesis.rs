//! The nemesis' choices: which fault, on whom, for how long — all drawn from the run's seed, so
//! a seed gives the same sequence of kinds, durations and pauses between faults. (Which worker
//! is a holder or a waiter when a fault begins depends on timing; the choice among the eligible
//! workers is drawn from the seed too.)

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGSTOP a lock holder past its session timeout, then SIGCONT.
    PauseHolder,
    /// SIGSTOP a waiter past its session timeout, then SIGCONT.
    PauseWaiter,
    /// SIGSTOP anyone for a fraction of the session timeout (the session survives).
    PauseShort,
    /// SIGKILL a worker; a new incarnation starts when the fault ends.
    Kill,
    /// Reset a worker's connections past its session timeout.
    CutLong,
    /// Reset a worker's connections briefly (it reconnects within its session).
    CutShort,
    /// Hold a worker's traffic past its session timeout.
    StallLong,
    /// Hold a worker's traffic for a fraction of the session timeout.
    StallShort,
    /// Expire a worker's session on the server (a twin closes it).
    Expire,
    /// Kill the ensemble's leader, restart it when the fault ends.
    LeaderKill,
    /// Hold a worker's replies (its requests still reach the server) for a moment, then reset
    /// its connections briefly: what it sent meanwhile is applied, its reply lost (STM only).
    CutReplies,
}

impl FaultKind {
    /// Every kind, in summary order.
    pub const ALL: [FaultKind; 11] = [
        FaultKind::PauseHolder,
        FaultKind::PauseWaiter,
        FaultKind::PauseShort,
        FaultKind::Kill,
        FaultKind::CutLong,
        FaultKind::CutShort,
        FaultKind::StallLong,
        FaultKind::StallShort,
        FaultKind::Expire,
        FaultKind::LeaderKill,
        FaultKind::CutReplies,
    ];

    /// The name in logs and summaries.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::PauseHolder => "pause-holder",
            FaultKind::PauseWaiter => "pause-waiter",
            FaultKind::PauseShort => "pause-short",
            FaultKind::Kill => "kill",
            FaultKind::CutLong => "cut-long",
            FaultKind::CutShort => "cut-short",
            FaultKind::StallLong => "stall-long",
            FaultKind::StallShort => "stall-short",
            FaultKind::Expire => "expire",
            FaultKind::LeaderKill => "leader-kill",
            FaultKind::CutReplies => "cut-replies",
        }
    }

    /// Whether the fault outlasts the session timeout (the target's session expires).
    #[must_use]
    pub fn is_long(self) -> bool {
        matches!(
            self,
            FaultKind::PauseHolder
                | FaultKind::PauseWaiter
                | FaultKind::CutLong
                | FaultKind::StallLong
                | FaultKind::Kill
        )
    }
}

/// One planned fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Planned {
    /// Quiet time before it begins.
    pub quiet: Duration,
    /// What.
    pub kind: FaultKind,
    /// How long it lasts before it is healed.
    pub duration: Duration,
    /// A number to pick the target among the eligible workers with (`pick % eligible`).
    pub pick: usize,
}

/// The seeded source of faults.
#[derive(Debug)]
pub struct Nemesis {
    rng: StdRng,
    kinds: Vec<(FaultKind, u32)>,
    session_timeout: Duration,
    quiet: (Duration, Duration),
}

impl Nemesis {
    /// A nemesis for sessions of `session_timeout`, with quiet gaps drawn from `quiet`; the
    /// leader is killed only on an ensemble.
    #[must_use]
    pub fn new(seed: u64, session_timeout: Duration, quiet: (Duration, Duration), ensemble: bool) -> Nemesis {
        // Weights: the faults that hit the defects the campaign exists for (pauses of holders
        // and waiters past expiry) come most often.
        let mut kinds = vec![
            (FaultKind::PauseHolder, 3),
            (FaultKind::PauseWaiter, 3),
            (FaultKind::PauseShort, 1),
            (FaultKind::Kill, 1),
            (FaultKind::CutLong, 1),
            (FaultKind::CutShort, 1),
            (FaultKind::StallLong, 1),
            (FaultKind::StallShort, 1),
            (FaultKind::Expire, 2),
        ];
        if ensemble {
            kinds.push((FaultKind::LeaderKill, 1));
        }
        Nemesis {
            rng: StdRng::seed_from_u64(seed),
            kinds,
            session_timeout,
            quiet,
        }
    }

    /// Adds cuts of replies ([`FaultKind::CutReplies`]), the STM campaign's main fault, as
    /// often as pauses of holders (a separate step, so the lock campaigns' schedules for a seed
    /// stay what they were).
    #[must_use]
    pub fn with_reply_cuts(mut self) -> Nemesis {
        self.kinds.push((FaultKind::CutReplies, 4));
        self
    }

    /// The next fault.
    pub fn next_fault(&mut self) -> Planned {
        let quiet = if self.quiet.1 > self.quiet.0 {
            self.rng.gen_range(self.quiet.0..=self.quiet.1)
        } else {
            self.quiet.0
        };
        let total: u32 = self.kinds.iter().map(|(_, w)| w).sum();
        let mut roll = self.rng.gen_range(0..total.max(1));
        let mut kind = FaultKind::PauseHolder;
        for &(k, w) in &self.kinds {
            if roll < w {
                kind = k;
                break;
            }
            roll -= w;
        }
        let s = self.session_timeout;
        // Long faults clearly outlast the session (the server expires it at about 1 x, plus a
        // tick); short ones clearly do not: no fault sits near the boundary, where whether the
        // session survived would be a coin toss.
        let duration = match kind {
            FaultKind::Expire => Duration::ZERO,
            FaultKind::LeaderKill => s.mul_f64(self.rng.gen_range(1.0..2.0)),
            k if k.is_long() => s.mul_f64(self.rng.gen_range(1.6..2.2)),
            _ => s.mul_f64(self.rng.gen_range(0.15..0.35)),
        };
        Planned {
            quiet,
            kind,
            duration,
            pick: self.rng.gen_range(0..1 << 16),
        }
    }
}
