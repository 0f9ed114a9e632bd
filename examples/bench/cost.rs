//! `reentrant_cost`: what a nested `lock()` plus its `release()` costs, without the two clock
//! reads per op that dominate the anchors' `reentrant` workload (about 54 ns of its ~65 ns per op
//! here, in Java and in Rust alike).
//!
//! One task holds the lock once, then times a loop of nested lock + release as a whole (in the
//! outer hold's scope, entered once per round). Next to it,
//! the same loop over the least any `'static`, `Send` guard needs — an owner check (the task id),
//! a hold counter up and down, the guard's reference count up and down — so the figure can be
//! read against a floor measured in the same process. Prints one JSON line per variant with
//! `ns_per_op` (the best of 5 rounds of 5 M ops).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mazurka::{DistributedLock, Session};

const OPS: u64 = 5_000_000;
const ROUNDS: usize = 5;

/// The floor: a shared hold counter and a guard holding a reference to it.
struct Floor {
    holds: AtomicU64,
}

struct FloorGuard(Arc<Floor>);

impl Drop for FloorGuard {
    fn drop(&mut self) {
        self.0.holds.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn floor_lock(floor: &Arc<Floor>) -> mazurka::Result<FloorGuard> {
    std::hint::black_box(tokio::task::try_id());
    floor.holds.fetch_add(1, Ordering::AcqRel);
    Ok(FloorGuard(floor.clone()))
}

async fn nested(lock: &DistributedLock) -> Result<Duration, String> {
    let t = Instant::now();
    for _ in 0..OPS {
        let guard = lock.lock().await.map_err(|e| e.to_string())?;
        guard.release().await.map_err(|e| e.to_string())?;
    }
    Ok(t.elapsed())
}

async fn floor(floor: &Arc<Floor>) -> Result<Duration, String> {
    let t = Instant::now();
    for _ in 0..OPS {
        let guard = floor_lock(floor).await.map_err(|e| e.to_string())?;
        drop(std::hint::black_box(guard));
    }
    Ok(t.elapsed())
}

/// Runs both variants in one task and prints their lines.
pub async fn run(connect: &str) -> Result<(), Box<dyn std::error::Error>> {
    let session = Session::builder(connect)
        .session_timeout(Duration::from_secs(10))
        .connect()
        .await?;
    let lock = session.lock("/bench/reentrant_cost")?;
    let best = tokio::spawn(async move {
        let outer = lock.lock().await.map_err(|e| e.to_string())?;
        let counter = Arc::new(Floor {
            holds: AtomicU64::new(0),
        });
        let (mut ours, mut least) = (Duration::MAX, Duration::MAX);
        for _ in 0..ROUNDS {
            // In the outer hold's scope: re-entry is scoped to the future that holds.
            ours = ours.min(outer.scope(nested(&lock)).await?);
            least = least.min(floor(&counter).await?);
        }
        outer.release().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((ours, least))
    })
    .await??;
    for (variant, took) in [("mazurka", best.0), ("floor", best.1)] {
        let line = serde_json::json!({
            "system": format!("{}-{}", variant, env!("CARGO_PKG_VERSION")),
            "workload": "reentrant_cost",
            "ops": OPS,
            "rounds": ROUNDS,
            "ns_per_op": ((took.as_nanos() as f64 / OPS as f64) * 100.0).round() / 100.0,
        });
        println!("{line}");
    }
    Ok(())
}
