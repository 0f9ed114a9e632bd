//! The fault campaign, short: worker processes contend for the locks while the nemesis pauses,
//! kills, cuts, stalls and expires them; the checker must find no violation. And the checker
//! must be able to fail: workers that each lock a path of their own (real guards, real fenced
//! writes, no exclusion) are caught.
//!
//! `cargo xtask chaos --secs N` runs the same campaigns longer (and on an ensemble with
//! `--ensemble`).

use std::path::PathBuf;
use std::time::Duration;

use mazurka_chaos::workload::Workload;
use mazurka_chaos::{Config, Report};

fn config(workload: Workload, name: &str) -> Config {
    let out = std::env::temp_dir().join(format!("mazurka-chaos-test-{}-{name}", std::process::id()));
    Config::new(workload, PathBuf::from(env!("CARGO_BIN_EXE_chaos-worker")), out)
}

async fn run(cfg: Config) -> Report {
    match mazurka_chaos::run(&cfg).await {
        Ok(report) => {
            println!("{}", report.summary());
            report
        }
        Err(e) => panic!("the campaign could not run: {e}"),
    }
}

/// Removes a passing run's directory (a failing one is kept for its log).
fn clean(report: &Report) {
    let _ = std::fs::remove_dir_all(&report.out_dir);
}

fn kinds(report: &Report) -> Vec<&'static str> {
    let mut kinds: Vec<_> = report.violations.iter().map(|v| v.kind).collect();
    kinds.dedup();
    kinds
}

/// A seed per run unless `MAZURKA_CHAOS_SEED` fixes one; printed, so a failure can be replayed.
fn seed() -> u64 {
    std::env::var("MAZURKA_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_holds_under_faults() {
    let mut cfg = config(Workload::Lock, "lock");
    cfg.seed = seed();
    cfg.duration = Duration::from_secs(16);
    cfg.quiet = (Duration::from_millis(300), Duration::from_millis(1500));
    let report = run(cfg).await;
    assert!(
        report.faults.values().sum::<u64>() >= 3,
        "too few faults: {:?}",
        report.faults
    );
    assert!(
        report.stats.windows_checked >= 1,
        "no quiet window was checked for progress"
    );
    assert!(
        report.violations.is_empty(),
        "seed {}: {} violations ({:?}); log in {}",
        report.seed,
        report.violations.len(),
        kinds(&report),
        report.out_dir.display()
    );
    assert!(report.stats.writes.get("ok").copied().unwrap_or(0) > 0);
    clean(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rwlock_holds_under_faults() {
    let mut cfg = config(Workload::RwLock, "rwlock");
    cfg.seed = seed();
    cfg.duration = Duration::from_secs(16);
    cfg.quiet = (Duration::from_millis(300), Duration::from_millis(1500));
    let report = run(cfg).await;
    assert!(
        report.faults.values().sum::<u64>() >= 3,
        "too few faults: {:?}",
        report.faults
    );
    assert!(
        report.stats.windows_checked >= 1,
        "no quiet window was checked for progress"
    );
    assert!(
        report.violations.is_empty(),
        "seed {}: {} violations ({:?}); log in {}",
        report.seed,
        report.violations.len(),
        kinds(&report),
        report.out_dir.display()
    );
    clean(&report);
}

/// Workers that lock a path each: the counter moves under holders and tokens come out of order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checker_catches_a_lock_without_exclusion() {
    let mut cfg = config(Workload::Lock, "broken-lock");
    cfg.duration = Duration::from_secs(3);
    cfg.nemesis = false;
    cfg.broken = Some("split-lock".into());
    let report = run(cfg).await;
    let kinds = kinds(&report);
    assert!(kinds.contains(&"counter-moved-under-holder"), "{kinds:?}");
    assert!(kinds.contains(&"token-order"), "{kinds:?}");
    clean(&report);
}

/// Read-write workers that lock a path each: writers see other holders' markers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checker_catches_a_rwlock_without_exclusion() {
    let mut cfg = config(Workload::RwLock, "broken-rwlock");
    cfg.duration = Duration::from_secs(3);
    cfg.nemesis = false;
    cfg.broken = Some("split-lock".into());
    let report = run(cfg).await;
    let kinds = kinds(&report);
    assert!(kinds.contains(&"shared-with-writer"), "{kinds:?}");
    clean(&report);
}

/// The STM campaign, short: transfers, increments, write-skew pairs and audits while the
/// nemesis cuts commit replies, pauses, kills and expires workers. No op applied twice, none
/// acknowledged and lost, every audit consistent, no write skew, progress in quiet windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stm_holds_under_faults() {
    let mut cfg = config(Workload::Stm, "stm");
    cfg.seed = seed();
    cfg.duration = Duration::from_secs(16);
    cfg.quiet = (Duration::from_millis(300), Duration::from_millis(1200));
    let report = run(cfg).await;
    let stm = report.stm.clone().unwrap_or_default();
    assert!(
        report.faults.values().sum::<u64>() >= 3,
        "too few faults: {:?}",
        report.faults
    );
    assert!(
        report.stats.windows_checked >= 1,
        "no quiet window was checked for progress"
    );
    assert!(
        report.violations.is_empty(),
        "seed {}: {} violations ({:?}); log in {}",
        report.seed,
        report.violations.len(),
        kinds(&report),
        report.out_dir.display()
    );
    // The run did something worth checking: every kind of op acknowledged, audits made.
    for kind in ["transfer", "increment", "skew", "audit"] {
        let ok = stm.ops.get(kind).and_then(|o| o.get("ok")).copied().unwrap_or(0);
        assert!(ok > 0, "no {kind} acknowledged: {:?}", stm.ops);
    }
    assert!(stm.audits > 0);
    clean(&report);
}

/// Transfers done as two transactions (debit, then credit): audits see half-applied transfers.
/// Skew ops that check the pair in one transaction and write in another: write skew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checker_catches_transfers_without_a_transaction() {
    let mut cfg = config(Workload::Stm, "broken-stm-no-txn");
    cfg.duration = Duration::from_secs(4);
    cfg.nemesis = false;
    cfg.broken = Some("stm-no-txn".into());
    let report = run(cfg).await;
    let kinds = kinds(&report);
    // Half-applied transfers show in every run; a write skew needs two skew ops of one pair to
    // interleave inside their 20 ms gap, which a loaded machine may not schedule in 4 s (seen
    // once in a full-suite run): not required.
    assert!(kinds.contains(&"audit-inconsistent"), "{kinds:?}");
    clean(&report);
}

/// A client that runs a committed transfer again with the same id (as a blind retry after a lost
/// reply would): the bank's sum still holds — only the ids in the values show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checker_catches_a_transfer_applied_twice() {
    let mut cfg = config(Workload::Stm, "broken-stm-reapply");
    cfg.duration = Duration::from_secs(4);
    cfg.nemesis = false;
    cfg.broken = Some("stm-reapply".into());
    let report = run(cfg).await;
    let kinds = kinds(&report);
    assert!(kinds.contains(&"applied-twice"), "{kinds:?}");
    assert!(!kinds.contains(&"bank-sum"), "{kinds:?}");
    clean(&report);
}
