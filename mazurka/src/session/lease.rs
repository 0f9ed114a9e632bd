//! The client's own clock for its ZooKeeper session: when may the server have expired it?
//!
//! The server expires a session one session timeout after it last heard from the client. The
//! ZooKeeper client only learns of that when it reconnects (or gives up, at 1.4 × the timeout),
//! long after the server may have handed a lock to the next waiter. Like Curator, Mazurka does
//! not wait for the server's word: it keeps a lower bound of the last moment the server heard
//! from it, and declares the session lost once a session timeout may have passed since.
//!
//! The bound comes from what the ZooKeeper client guarantees while it reports itself
//! connected: it has heard from the server within its connection timeout, and it pings once
//! its own silence reaches the ping interval. So at any instant `t` at which the client still
//! says "connected", the server heard from us after `t − budget` (see [`Timing::budget`]). The
//! supervisor samples that at every heartbeat; a heartbeat that comes late (the process was
//! paused, or its runtime blocked) proves nothing, and the lease is only renewed again by a
//! request that went to the server after the gap and came back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The ZooKeeper client's timing for one negotiated session timeout, and what follows from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// The negotiated session timeout: the server's lease.
    pub(crate) session_timeout: Duration,
    /// How long before a moment the client called "connected" the server may last have heard
    /// from us.
    pub(crate) budget: Duration,
    /// Scheduling slack taken off the lease on top of the budget.
    pub(crate) safety: Duration,
    /// How often the supervisor samples the client's state.
    pub(crate) heartbeat: Duration,
}

impl Timing {
    /// The timing of a `zookeeper-client` session with `connection_timeout` as configured (after
    /// [`clamp_connection_timeout`]) and `session_timeout` as negotiated. Mirrors the client's
    /// own arithmetic (`calc_tick_timeout` and `reset_timeout` in its session module): it
    /// declares a connection dead after 8 ticks without a message and pings after 3 ticks of
    /// its own silence; two more ticks cover its timer's granularity.
    pub(crate) fn new(session_timeout: Duration, connection_timeout: Duration) -> Timing {
        let tick = if connection_timeout.is_zero() || connection_timeout > session_timeout * 3 / 5 {
            session_timeout / 20
        } else {
            connection_timeout / 8
        }
        .max(Duration::from_millis(1));
        let connection_dead = 8 * tick;
        let ping = (3 * tick).min(Duration::from_secs(10));
        Timing {
            session_timeout,
            budget: connection_dead + ping + 2 * tick,
            safety: session_timeout / 20,
            heartbeat: (session_timeout / 20).clamp(Duration::from_millis(5), Duration::from_millis(500)),
        }
    }

    /// How long after a moment the client was seen connected the session surely still lives on
    /// the server.
    pub(crate) fn window(&self) -> Duration {
        self.session_timeout.saturating_sub(self.budget + self.safety)
    }

    /// A heartbeat later than this after the previous one means this process did not run in
    /// between (paused, or its runtime blocked): the client's state proves nothing then.
    pub(crate) fn gap(&self) -> Duration {
        self.heartbeat * 2 + Duration::from_millis(100)
    }
}

/// The largest connection timeout that leaves the client's clock a useful window: the client
/// needs up to 0.65 × the session timeout to notice a silent server with 2/5, and nearly all of it
/// with more.
pub(crate) fn clamp_connection_timeout(connection_timeout: Duration, session_timeout: Duration) -> Duration {
    connection_timeout.min(session_timeout * 2 / 5)
}

/// The instant until which the current ZooKeeper session is surely alive on the server, readable
/// from any thread without a lock.
#[derive(Debug)]
pub(crate) struct Lease {
    base: Instant,
    /// Nanoseconds after `base`.
    until: AtomicU64,
}

impl Lease {
    pub(crate) fn new() -> Lease {
        Lease {
            base: Instant::now(),
            until: AtomicU64::new(u64::MAX),
        }
    }

    /// Sets the end of the lease.
    pub(crate) fn set(&self, until: Instant) {
        let nanos = until.saturating_duration_since(self.base).as_nanos();
        self.until
            .store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Release);
    }

    /// Ends the lease now.
    pub(crate) fn end(&self) {
        self.until.store(0, Ordering::Release);
    }

    /// When the lease ends.
    pub(crate) fn until(&self) -> Instant {
        let nanos = self.until.load(Ordering::Acquire);
        self.base
            .checked_add(Duration::from_nanos(nanos))
            .unwrap_or_else(|| self.base + Duration::from_secs(100 * 365 * 24 * 3600))
    }

    /// Whether the lease still runs at `now`.
    pub(crate) fn runs_at(&self, now: Instant) -> bool {
        now < self.until()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_what_the_client_cannot_account_for_taken_off_the_timeout() {
        let st = Duration::from_secs(10);
        // Mazurka's default connection timeout: a third of the session timeout.
        let t = Timing::new(st, st / 3);
        // tick = 10/3/8 s; budget = 13 ticks.
        assert_eq!(t.budget, (st / 3 / 8) * 13);
        assert!(t.window() > st * 2 / 5 && t.window() < st / 2, "{:?}", t.window());
        // The largest connection timeout Mazurka passes on still leaves a third of the lease.
        let t = Timing::new(st, clamp_connection_timeout(st, st));
        assert!(t.window() >= st * 3 / 10, "{:?}", t.window());
    }

    #[test]
    fn a_lease_ends_when_set_and_when_ended() {
        let lease = Lease::new();
        let now = Instant::now();
        assert!(lease.runs_at(now), "unbounded until first set");
        lease.set(now + Duration::from_secs(1));
        assert!(lease.runs_at(now));
        assert!(!lease.runs_at(now + Duration::from_secs(1)));
        lease.end();
        assert!(!lease.runs_at(now));
    }
}
