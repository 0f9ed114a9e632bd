//! The main demo: a bank whose accounts live in ZooKeeper, moved between by several "branches"
//! (separate ZooKeeper sessions, as separate processes would be) at the same time, while an
//! auditor keeps adding up every balance. Money is never created or destroyed: every audit
//! sees the same total, because every transfer and every audit is one serializable transaction.
//!
//! ```sh
//! cargo xtask demo                                  # installs what is missing, then runs this
//! cargo run --release -p mazurka-examples --example bank
//! MAZURKA_ZK=127.0.0.1:2181 cargo run --release -p mazurka-examples --example bank
//! ```
//! Options (environment): `BANK_ACCOUNTS` (10), `BANK_BRANCHES` (4), `BANK_SECONDS` (5).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mazurka::{distributed, dosync, Error, Ref, Session};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// One bank account, stored in its own znode: `/bank/accounts/<id>`.
#[distributed(ref = "/bank/accounts/{id}")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Account {
    owner: String,
    balance: i64,
}

/// Why a transfer did not happen.
#[derive(Debug)]
enum TransferError {
    /// The bank itself (ZooKeeper) failed.
    Store(Error),
    /// Not enough money: the transaction aborted and wrote nothing.
    InsufficientFunds,
}

impl From<Error> for TransferError {
    fn from(e: Error) -> Self {
        TransferError::Store(e)
    }
}

/// Moves `amount` from one account to the other, or nothing at all. `#[dosync]` makes the body
/// one transaction, rerun if another branch changed one of the accounts meanwhile.
#[dosync]
async fn transfer(
    from: &Ref<Account>,
    to: &Ref<Account>,
    amount: i64,
    attempts: &AtomicU64,
) -> Result<(), TransferError> {
    attempts.fetch_add(1, Ordering::Relaxed); // counts reruns after conflicts
    let source = from.get().await?;
    if source.balance < amount {
        return Err(TransferError::InsufficientFunds);
    }
    from.alter(|a| Account {
        balance: a.balance - amount,
        ..a.clone()
    })
    .await?;
    to.alter(|a| Account {
        balance: a.balance + amount,
        ..a.clone()
    })
    .await?;
    Ok(())
}

/// Adds up every balance, as one consistent snapshot.
async fn audit(accounts: &[Ref<Account>]) -> mazurka::Result<i64> {
    dosync(|| async move {
        let mut total = 0;
        for account in accounts {
            total += account.get().await?.balance;
        }
        Ok(total)
    })
    .await
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn open_accounts(session: &Session, n: u64) -> mazurka::Result<Vec<Ref<Account>>> {
    let mut accounts = Vec::new();
    for id in 0..n {
        let initial = Account {
            owner: format!("customer {id}"),
            balance: 1000,
        };
        accounts.push(Account::zref(session, id, initial).await?);
    }
    Ok(accounts)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (connect, _server) = common::zookeeper("MAZURKA_ZK")?;
    let n_accounts = env_or("BANK_ACCOUNTS", 10).max(2);
    let branches = env_or("BANK_BRANCHES", 4).max(1);
    let seconds = env_or("BANK_SECONDS", 5);
    let expected = 1000 * n_accounts as i64;
    // A fresh bank for every run, so the totals start from the same place.
    let root = format!("/mazurka-bank-{}", std::process::id());

    println!("Opening a bank of {n_accounts} accounts with 1000 each (total {expected}) in ZooKeeper under {root}.");
    println!("{branches} branches (one ZooKeeper session each) move random amounts between random accounts");
    println!("for {seconds} s, while an auditor keeps adding up all balances in a transaction of its own.\n");

    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for branch in 0..branches {
        let session = Session::builder(&connect).chroot(root.clone()).connect().await?;
        let accounts = open_accounts(&session, n_accounts).await?;
        let (stop, attempts, done, refused) = (stop.clone(), attempts.clone(), done.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(branch);
            while !stop.load(Ordering::Relaxed) {
                let a = rng.gen_range(0..accounts.len());
                let b = (a + rng.gen_range(1..accounts.len())) % accounts.len();
                match transfer(&accounts[a], &accounts[b], rng.gen_range(1..=300), &attempts).await {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(TransferError::InsufficientFunds) => refused.fetch_add(1, Ordering::Relaxed),
                    Err(TransferError::Store(e)) => return Err(e),
                };
            }
            session.close().await
        }));
    }

    let auditor = Session::builder(&connect).chroot(root.clone()).connect().await?;
    let books = open_accounts(&auditor, n_accounts).await?;
    let (mut audits, mut wrong) = (0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut next_report = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let total = audit(&books).await?;
        audits += 1;
        if total != expected {
            wrong += 1;
            println!("  AUDIT FAILED: total = {total}, expected {expected}");
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(1);
            println!(
                "  {:>4.1} s: {:>6} transfers, {:>5} audits, every audit total = {total}",
                started.elapsed().as_secs_f64(),
                done.load(Ordering::Relaxed),
                audits
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let final_total = audit(&books).await?;
    let transfers = done.load(Ordering::Relaxed);
    let runs = attempts.load(Ordering::Relaxed);
    let finished = transfers + refused.load(Ordering::Relaxed);

    println!("\nResults");
    println!(
        "  transfers committed     {transfers} ({:.0} per second)",
        transfers as f64 / elapsed
    );
    println!(
        "  refused (not enough)    {} (aborted: nothing written)",
        refused.load(Ordering::Relaxed)
    );
    println!(
        "  retries after conflicts {} ({:.2} attempts per transfer)",
        runs.saturating_sub(finished),
        runs as f64 / finished.max(1) as f64
    );
    println!("  audits                  {audits}, wrong totals: {wrong}");
    println!("  final total             {final_total} (expected {expected})");
    for (id, account) in books.iter().enumerate().take(3) {
        let a = account.deref_sync().await?;
        println!("  account {id}: {} holds {}", a.owner, a.balance);
    }
    auditor.close().await?;
    if wrong == 0 && final_total == expected {
        println!("\nOK: total = {expected} in every audit — no money was created or destroyed.");
        Ok(())
    } else {
        Err(format!("invariant broken: {wrong} wrong audits, final total {final_total}").into())
    }
}
