//! How often and how patiently a transaction retries.

use std::time::Duration;

/// Settings of [`dosync_with`](crate::dosync_with).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TxnOptions {
    /// Attempts before [`Error::RetryLimit`](crate::Error::RetryLimit). Default 1000.
    pub retry_limit: u32,
    /// The least an attempt is taken to last when spreading retries (see `backoff_max`). Default
    /// 1 ms.
    pub backoff_start: Duration,
    /// Largest wait before a rerun: after a conflict the rerun waits a random part of the failed
    /// attempt's duration times the conflicts so far (at most 4), capped here. Default 20 ms.
    pub backoff_max: Duration,
}

impl Default for TxnOptions {
    fn default() -> Self {
        TxnOptions {
            retry_limit: 1000,
            backoff_start: Duration::from_millis(1),
            backoff_max: Duration::from_millis(20),
        }
    }
}

impl TxnOptions {
    /// Sets [`retry_limit`](Self::retry_limit).
    #[must_use]
    pub fn retry_limit(mut self, attempts: u32) -> Self {
        self.retry_limit = attempts.max(1);
        self
    }
}

/// How long to wait before rerunning after a conflict: a random part of the failed attempt's own
/// duration, times the number of conflicts so far (at most 4), capped by `backoff_max`. The
/// conflicting value is already known by then (the failed check marked its replica, and the
/// rerun prefetches its read set), so the wait is not for learning it: it only spreads the
/// losers of one round so that they do not collide again in lockstep. Scaling with the attempt's
/// duration keeps it right for a local server and a distant one alike.
#[derive(Debug)]
pub(crate) struct Backoff {
    conflicts: u32,
    start: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(options: &TxnOptions) -> Backoff {
        Backoff {
            conflicts: 0,
            start: options.backoff_start,
            max: options.backoff_max,
        }
    }

    pub(crate) async fn wait(&mut self, attempt_took: Duration) {
        self.conflicts += 1;
        let scale = f64::from(self.conflicts.min(4)) * rand::random::<f64>();
        let spread = attempt_took.max(self.start).mul_f64(scale).min(self.max);
        tokio::time::sleep(spread).await;
    }
}
