//! How often and how patiently a transaction retries.

use std::time::Duration;

/// Settings of [`dosync_with`](crate::dosync_with).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TxnOptions {
    /// Attempts before [`Error::RetryLimit`](crate::Error::RetryLimit). Default 1000.
    pub retry_limit: u32,
    /// First backoff after a conflict (doubled per conflict, with jitter). Default 1 ms.
    pub backoff_start: Duration,
    /// Largest backoff. Default 20 ms.
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

/// Exponential backoff with full jitter: conflicting writers spread out instead of colliding
/// again in lockstep.
#[derive(Debug)]
pub(crate) struct Backoff {
    first: bool,
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(options: &TxnOptions) -> Backoff {
        Backoff {
            first: true,
            next: options.backoff_start,
            max: options.backoff_max,
        }
    }

    pub(crate) async fn wait(&mut self) {
        // The first retry goes at once: the conflicting value is already known (the failed
        // check marked its replica, so the rerun reads it fresh). Only repeated conflicts back off.
        if self.first {
            self.first = false;
            return;
        }
        let jittered = self.next.mul_f64(rand::random::<f64>());
        self.next = (self.next * 2).min(self.max);
        tokio::time::sleep(jittered).await;
    }
}
