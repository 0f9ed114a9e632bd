//! `#[distributed]` and `#[dosync]` against a real server: typed constructors at templated paths,
//! codecs, runtime path checks, transactions whose arguments are reused by every attempt, methods.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use mazurka::{distributed, dosync, Bincode, Error, Json, PathRule, Ref, Session, ZkErrorCode};
use serde::{Deserialize, Serialize};

#[distributed(ref = "/accounts/{id}")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Account {
    balance: i64,
}

#[distributed(ref = "/config/{name}", codec = "json")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Config {
    name: String,
    retries: u32,
    tags: Vec<String>,
}

#[distributed(ref = "/journal")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Journal {
    entries: Vec<String>,
}

/// Moves `amount` from one account to the other.
#[dosync]
async fn transfer(from: &Ref<Account>, to: &Ref<Account>, amount: i64) -> mazurka::Result<()> {
    from.alter(|a| Account {
        balance: a.balance - amount,
    })
    .await?;
    to.alter(|a| Account {
        balance: a.balance + amount,
    })
    .await?;
    Ok(())
}

async fn balance(account: &Ref<Account>) -> i64 {
    account.deref_sync().await.expect("read").balance
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfers_between_typed_refs_from_several_sessions_conserve_the_total() {
    let sessions = common::sessions("macros-stm-bank", 3).await;
    let alice = Account::zref(&sessions[0], "alice", Account { balance: 1_000 })
        .await
        .expect("alice");
    let bob = Account::zref(&sessions[0], "bob", Account { balance: 1_000 })
        .await
        .expect("bob");
    assert_eq!(alice.path().as_str(), "/accounts/alice");
    assert_eq!(Account::znode_path("alice").expect("path"), *alice.path());

    // `zref` on an existing value keeps it.
    let again = Account::zref(&sessions[1], "alice", Account { balance: 0 })
        .await
        .expect("again");
    assert_eq!(balance(&again).await, 1_000);

    // Two tasks per session, each with its own refs (opened through its session), transferring
    // both ways; every transfer commits exactly once.
    const ROUNDS: i64 = 8;
    let mut tasks = Vec::new();
    for (i, session) in sessions.iter().enumerate() {
        for t in 0..2 {
            let session = session.clone();
            tasks.push(tokio::spawn(async move {
                let a = Account::open_zref(&session, "alice").await?;
                let b = Account::open_zref(&session, "bob").await?;
                let mut moved_to_bob = 0;
                for k in 0..ROUNDS {
                    if (i + t) % 2 == 0 || k % 3 == 0 {
                        transfer(&a, &b, 7).await?;
                        moved_to_bob += 7;
                    } else {
                        transfer(&b, &a, 3).await?;
                        moved_to_bob -= 3;
                    }
                }
                Ok::<i64, Error>(moved_to_bob)
            }));
        }
    }
    let mut moved_to_bob = 0;
    for task in tasks {
        moved_to_bob += task.await.expect("task").expect("transfers");
    }

    let (a, b) = (balance(&alice).await, balance(&bob).await);
    assert_eq!(a + b, 2_000, "the total is conserved");
    assert_eq!(b - 1_000, moved_to_bob, "every transfer applied exactly once");

    // `open_zref` through another session sees the same values.
    let seen = Account::open_zref(&sessions[2], "bob").await.expect("open");
    assert_eq!(balance(&seen).await, b);
}

#[tokio::test]
async fn constructors_check_their_parameters_and_open_needs_a_value() {
    let session = common::session("macros-stm-paths").await;
    for bad in ["a/b", "", "..", ".", "../admin"] {
        match Account::zref(&session, bad, Account { balance: 1 }).await {
            Err(Error::InvalidPath {
                rule: PathRule::BadParameter,
                path,
            }) => {
                assert!(path.starts_with("/accounts/"), "{path}");
            }
            other => panic!("zref({bad:?}): {other:?}"),
        }
        assert!(
            matches!(
                Account::open_zref(&session, bad).await,
                Err(Error::InvalidPath {
                    rule: PathRule::BadParameter,
                    ..
                })
            ),
            "open_zref({bad:?})"
        );
    }
    // Nothing was created for the bad parameters.
    assert!(!session.exists("/accounts").await.expect("exists"));

    match Account::open_zref(&session, "nobody").await {
        Err(Error::ZooKeeper {
            code: ZkErrorCode::NoNode,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // `Display` parameters: numbers are fine.
    let numbered = Account::zref(&session, 42, Account { balance: 5 })
        .await
        .expect("numbered");
    assert_eq!(numbered.path().as_str(), "/accounts/42");
}

#[tokio::test]
async fn json_refs_round_trip() {
    let sessions = common::sessions("macros-stm-json", 2).await;
    let value = Config {
        name: "main".into(),
        retries: 3,
        tags: vec!["a".into(), "é".into()],
    };
    let config: Ref<Config, Json> = Config::zref(&sessions[0], "main", value.clone())
        .await
        .expect("zref");
    let opened: Ref<Config, Json> = Config::open_zref(&sessions[1], "main").await.expect("open");
    assert_eq!(opened.deref_sync().await.expect("read"), value);

    // A transaction on a JSON ref; the other session sees the change.
    #[dosync]
    async fn add_tag(config: &Ref<Config, Json>, tag: String) -> mazurka::Result<usize> {
        let updated = config
            .alter(|c| {
                let mut c = c.clone();
                c.tags.push(tag);
                c
            })
            .await?;
        Ok(updated.tags.len())
    }
    assert_eq!(add_tag(&config, "new".into()).await.expect("add"), 3);
    common::eventually(5, "the other session's replica sees the tag", || async {
        opened
            .deref()
            .is_ok_and(|c| c.tags.last().map(String::as_str) == Some("new"))
    })
    .await;

    // The value really is JSON: read as bincode, it is a codec error.
    match Ref::<Config, Bincode>::open(&sessions[0], "/config/main").await {
        Err(Error::Codec { .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// Appends `entry`; on its first attempt a rival (outside this transaction) appends first, so that
/// attempt must conflict and the body run again — with a fresh copy of `entry`, which the body
/// moves into the journal.
#[dosync]
async fn append(
    journal: &Ref<Journal>,
    entry: String,
    attempts: &AtomicUsize,
    rival: Option<&Ref<Journal>>,
) -> mazurka::Result<usize> {
    let mut current = journal.get().await?;
    if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
        if let Some(rival) = rival {
            let rival = rival.clone();
            // A task of its own: not part of this transaction.
            tokio::spawn(async move { push(&rival, "rival".to_owned()).await })
                .await
                .expect("rival task")?;
        }
    }
    current.entries.push(entry);
    let len = current.entries.len();
    journal.ref_set(current).await?;
    Ok(len)
}

/// The rival's append.
#[dosync]
async fn push(journal: &Ref<Journal>, entry: String) -> mazurka::Result<()> {
    journal
        .alter(|j| {
            let mut j = j.clone();
            j.entries.push(entry);
            j
        })
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_string_argument_is_reused_by_every_attempt() {
    let sessions = common::sessions("macros-stm-retry", 2).await;
    let journal = Journal::zref(&sessions[0], Journal { entries: Vec::new() })
        .await
        .expect("journal");
    let rival = Journal::open_zref(&sessions[1]).await.expect("rival");

    let attempts = AtomicUsize::new(0);
    let len = append(&journal, "mine".to_owned(), &attempts, Some(&rival))
        .await
        .expect("append");
    assert!(
        attempts.load(Ordering::SeqCst) >= 2,
        "the first attempt conflicted and the body ran again"
    );
    assert_eq!(len, 2);
    assert_eq!(
        journal.deref_sync().await.expect("read").entries,
        ["rival", "mine"],
        "exactly one commit of each, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_retry_until_every_entry_is_in_exactly_once() {
    let sessions = common::sessions("macros-stm-writers", 3).await;
    let journal = Journal::zref(&sessions[0], Journal { entries: Vec::new() })
        .await
        .expect("journal");
    let attempts = Arc::new(AtomicUsize::new(1)); // past the first attempt: no rival
    const PER_TASK: usize = 6;
    let mut tasks = Vec::new();
    for (i, session) in sessions.iter().enumerate() {
        for t in 0..2 {
            let session = session.clone();
            let attempts = attempts.clone();
            tasks.push(tokio::spawn(async move {
                let journal = Journal::open_zref(&session).await?;
                for k in 0..PER_TASK {
                    append(&journal, format!("{i}-{t}-{k}"), &attempts, None).await?;
                }
                Ok::<(), Error>(())
            }));
        }
    }
    for task in tasks {
        task.await.expect("task").expect("appends");
    }
    let commits = sessions.len() * 2 * PER_TASK;
    let mut entries = journal.deref_sync().await.expect("read").entries;
    assert_eq!(entries.len(), commits, "one entry per commit: {entries:?}");
    entries.sort();
    entries.dedup();
    assert_eq!(entries.len(), commits, "no entry twice");
    let attempts = attempts.load(Ordering::SeqCst) - 1;
    assert!(attempts >= commits, "{attempts} attempts for {commits} commits");
    println!("{attempts} attempts for {commits} commits");
}

#[derive(Debug, PartialEq)]
enum BankError {
    Store(String),
    Overdrawn { balance: i64 },
}

impl From<Error> for BankError {
    fn from(error: Error) -> Self {
        BankError::Store(error.to_string())
    }
}

/// A struct holding refs, with `#[dosync]` methods.
struct Bank {
    reserve: Ref<Account>,
    accounts: Vec<Ref<Account>>,
}

impl Bank {
    async fn open(session: &Session, reserve: i64) -> mazurka::Result<Bank> {
        let reserve = Account::zref(session, "reserve", Account { balance: reserve }).await?;
        let mut accounts = Vec::new();
        for id in ["a", "b", "c"] {
            accounts.push(Account::zref(session, id, Account { balance: 0 }).await?);
        }
        Ok(Bank { reserve, accounts })
    }

    /// Funds every account from the reserve, or none of them.
    #[dosync]
    async fn fund_all(&self, amount: i64) -> Result<i64, BankError> {
        for account in &self.accounts {
            let reserve = self.reserve.get().await?.balance;
            if reserve < amount {
                return Err(BankError::Overdrawn { balance: reserve });
            }
            transfer(&self.reserve, account, amount).await?; // joins this transaction
        }
        Ok(self.reserve.get().await?.balance)
    }

    #[dosync(retry_limit = 20)]
    async fn total(&self) -> mazurka::Result<i64> {
        let mut total = self.reserve.get().await?.balance;
        for account in &self.accounts {
            total += account.get().await?.balance;
        }
        Ok(total)
    }
}

#[tokio::test]
async fn methods_run_as_transactions_and_an_error_aborts_them() {
    let session = common::session("macros-stm-methods").await;
    let bank = Bank::open(&session, 100).await.expect("bank");

    assert_eq!(bank.fund_all(30).await, Ok(10));
    assert_eq!(balances(&bank).await, [10, 30, 30, 30]);
    assert_eq!(bank.total().await.expect("total"), 100);

    // The third transfer would overdraw: the whole transaction aborts, nothing is written (the
    // first two transfers included), and the method's own error comes back as it was returned.
    assert_eq!(bank.fund_all(4).await, Err(BankError::Overdrawn { balance: 2 }));
    assert_eq!(
        balances(&bank).await,
        [10, 30, 30, 30],
        "an aborted transaction writes nothing"
    );
    assert_eq!(bank.total().await.expect("total"), 100);
}

async fn balances(bank: &Bank) -> Vec<i64> {
    let mut all = vec![balance(&bank.reserve).await];
    for account in &bank.accounts {
        all.push(balance(account).await);
    }
    all
}

/// Conflicts on every attempt: a rival write lands between the read and the commit.
#[dosync(retry_limit = 3)]
async fn always_conflicting(
    journal: &Ref<Journal>,
    rival: &Ref<Journal>,
    attempts: &AtomicUsize,
) -> mazurka::Result<()> {
    attempts.fetch_add(1, Ordering::SeqCst);
    let current = journal.get().await?;
    let rival = rival.clone();
    tokio::spawn(async move { push(&rival, "rival".to_owned()).await })
        .await
        .expect("rival task")?;
    journal.ref_set(current).await?;
    Ok(())
}

#[tokio::test]
async fn retry_limit_option_bounds_the_attempts() {
    let sessions = common::sessions("macros-stm-limit", 2).await;
    let journal = Journal::zref(&sessions[0], Journal { entries: Vec::new() })
        .await
        .expect("journal");
    let rival = Journal::open_zref(&sessions[1]).await.expect("rival");
    let attempts = AtomicUsize::new(0);
    match always_conflicting(&journal, &rival, &attempts).await {
        Err(Error::RetryLimit { attempts: 3 }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}

#[distributed(atom = "/hits/{page}")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Hits(u64);

#[distributed(pod = "/boards/{team}", codec = "json")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Board {
    notes: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atoms_and_pods_from_the_attribute() {
    let sessions = common::sessions("macro-atom-pod", 3).await;
    let mut tasks = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        let hits = Hits::zatom(s, "home", Hits(0)).await.unwrap();
        let board = Board::zpod(s, "core", Board { notes: vec![] }).await.unwrap();
        tasks.push(tokio::spawn(async move {
            for n in 0..10 {
                hits.swap(|h| Hits(h.0 + 1)).await.unwrap();
                board.edit(|b, _| b.notes.push(format!("{i}:{n}"))).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let hits = Hits::open_zatom(&sessions[0], "home").await.unwrap();
    assert_eq!(hits.deref_sync().await.unwrap(), Hits(30));
    let board = Board::open_zpod(&sessions[1], "core").await.unwrap();
    assert_eq!(board.deref_sync().await.unwrap().notes.len(), 30);
    assert!(matches!(
        Hits::zatom(&sessions[2], "a/b", Hits(0)).await,
        Err(Error::InvalidPath { .. })
    ));
}
