//! The STM against real servers: refs, serializable transactions, opacity, abort, commute,
//! lost commit replies, watches and the replica across reconnects.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mazurka::testkit::FaultProxy;
use mazurka::{after_commit, dosync, Error, Json, Ref, Session, ZkErrorCode};
use tokio::time::timeout;

const BOUND: Duration = Duration::from_secs(30);

#[tokio::test]
async fn refs_are_created_once_and_opened_by_others() {
    let sessions = common::sessions("refs", 2).await;
    let a: Ref<Vec<String>> = Ref::new(&sessions[0], "/cfg/names", vec!["x".into()])
        .await
        .unwrap();
    assert_eq!(a.deref().unwrap(), vec!["x".to_string()]);
    // A second `new` keeps the existing value.
    let b: Ref<Vec<String>> = Ref::new(&sessions[1], "/cfg/names", vec![]).await.unwrap();
    assert_eq!(b.deref().unwrap(), vec!["x".to_string()]);
    let opened: Ref<Vec<String>> = Ref::open(&sessions[1], "/cfg/names").await.unwrap();
    assert_eq!(opened.deref_sync().await.unwrap(), vec!["x".to_string()]);
    // Missing, wrong codec, wrong type: typed errors.
    let missing = Ref::<i64>::open(&sessions[0], "/cfg/none").await;
    assert!(
        matches!(
            missing,
            Err(Error::ZooKeeper {
                code: ZkErrorCode::NoNode,
                ..
            })
        ),
        "{missing:?}"
    );
    let wrong_codec = Ref::<Vec<String>, Json>::open(&sessions[0], "/cfg/names").await;
    assert!(matches!(wrong_codec, Err(Error::Codec { .. })), "{wrong_codec:?}");
    assert!(wrong_codec.unwrap_err().to_string().contains("codec"));
}

#[tokio::test]
async fn transactional_ops_outside_a_transaction_say_so() {
    let session = common::session("notxn").await;
    let r: Ref<i64> = Ref::new(&session, "/n", 1).await.unwrap();
    assert!(matches!(
        r.get().await,
        Err(Error::NoTransaction { operation: "get" })
    ));
    assert!(matches!(
        r.alter(|v| v + 1).await,
        Err(Error::NoTransaction { .. })
    ));
    assert!(matches!(
        r.commute(|v| v + 1).await,
        Err(Error::NoTransaction { .. })
    ));
    assert!(matches!(after_commit(|| ()), Err(Error::NoTransaction { .. })));
}

async fn transfer(from: &Ref<i64>, to: &Ref<i64>, amount: i64) -> mazurka::Result<()> {
    dosync(|| async move {
        from.alter(|v| v - amount).await?;
        to.alter(|v| v + amount).await?;
        Ok(())
    })
    .await
}

async fn audit(accounts: &[Ref<i64>]) -> mazurka::Result<i64> {
    dosync(|| async move {
        let mut total = 0;
        for a in accounts {
            total += a.get().await?;
        }
        Ok(total)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bank_total_never_changes_in_any_audit() {
    const ACCOUNTS: usize = 6;
    const SESSIONS: usize = 4;
    const TRANSFERS: usize = 500;
    let sessions = common::sessions("bank", SESSIONS + 1).await;
    let mut per_session = Vec::new();
    for s in &sessions {
        let mut accounts = Vec::new();
        for i in 0..ACCOUNTS {
            accounts.push(Ref::<i64>::new(s, format!("/accounts/{i}"), 1000).await.unwrap());
        }
        per_session.push(accounts);
    }
    let audits = Arc::new(AtomicUsize::new(0));
    let auditor = {
        let accounts = per_session.pop().unwrap();
        let audits = audits.clone();
        let done = Arc::new(tokio::sync::Notify::new());
        let stop = done.clone();
        let task = tokio::spawn(async move {
            loop {
                let total = audit(&accounts).await.unwrap();
                assert_eq!(
                    total,
                    1000 * ACCOUNTS as i64,
                    "an audit saw money created or destroyed"
                );
                audits.fetch_add(1, Ordering::SeqCst);
                if tokio::time::timeout(Duration::from_millis(1), stop.notified())
                    .await
                    .is_ok()
                {
                    return accounts;
                }
            }
        });
        (task, done)
    };
    let mut workers = Vec::new();
    for (w, accounts) in per_session.into_iter().enumerate() {
        workers.push(tokio::spawn(async move {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64);
            for _ in 0..TRANSFERS {
                let a = rng.gen_range(0..ACCOUNTS);
                let b = (a + rng.gen_range(1..ACCOUNTS)) % ACCOUNTS;
                transfer(&accounts[a], &accounts[b], rng.gen_range(1..=100))
                    .await
                    .unwrap();
            }
        }));
    }
    for w in workers {
        timeout(Duration::from_secs(240), w).await.unwrap().unwrap();
    }
    auditor.1.notify_one();
    let accounts = auditor.0.await.unwrap();
    assert!(audits.load(Ordering::SeqCst) > 0);
    let mut total = 0;
    for a in &accounts {
        total += a.deref_sync().await.unwrap();
    }
    assert_eq!(total, 1000 * ACCOUNTS as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_write_skew_without_ensure() {
    // Constraint: x + y >= 1. Each transaction withdraws from one ref if the *sum* allows it.
    // Under snapshot isolation both could withdraw from the same snapshot (write skew).
    let sessions = common::sessions("skew", 2).await;
    for round in 0..15 {
        let x0: Ref<i64> = Ref::new(&sessions[0], format!("/r{round}/x"), 1).await.unwrap();
        let y0: Ref<i64> = Ref::new(&sessions[0], format!("/r{round}/y"), 1).await.unwrap();
        let x1: Ref<i64> = Ref::open(&sessions[1], format!("/r{round}/x")).await.unwrap();
        let y1: Ref<i64> = Ref::open(&sessions[1], format!("/r{round}/y")).await.unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let t1 = {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let (x, y, b) = (&x0, &y0, &barrier);
                dosync(|| async move {
                    let sum = x.get().await? + y.get().await?;
                    b.wait().await;
                    if sum >= 2 {
                        x.alter(|v| v - 1).await?;
                    }
                    Ok::<_, Error>(())
                })
                .await
                .unwrap();
                (x0, y0)
            })
        };
        let t2 = {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let (x, y, b) = (&x1, &y1, &barrier);
                dosync(|| async move {
                    let sum = x.get().await? + y.get().await?;
                    b.wait().await;
                    if sum >= 2 {
                        y.alter(|v| v - 1).await?;
                    }
                    Ok::<_, Error>(())
                })
                .await
                .unwrap();
            })
        };
        // The barrier pairs first attempts; a rerun waits for a partner that may be done: give
        // the barrier extra parties by waiting from here until both finish.
        let helper = tokio::spawn({
            let barrier = barrier.clone();
            async move {
                for _ in 0..8 {
                    if timeout(Duration::from_millis(300), barrier.wait()).await.is_err() {
                        break;
                    }
                }
            }
        });
        let (x, y) = timeout(BOUND, t1).await.unwrap().unwrap();
        timeout(BOUND, t2).await.unwrap().unwrap();
        helper.abort();
        let sum = x.deref_sync().await.unwrap() + y.deref_sync().await.unwrap();
        assert!(
            sum >= 1,
            "round {round}: write skew broke the constraint (x + y = {sum})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_body_never_sees_an_inconsistent_state() {
    // Writers flip (a, b) between (0, 1) and (1, 0) atomically: a != b always. A reader that
    // mixed two states could see a == b.
    let sessions = common::sessions("opacity", 3).await;
    let a0: Ref<i64> = Ref::new(&sessions[0], "/o/a", 0).await.unwrap();
    let b0: Ref<i64> = Ref::new(&sessions[0], "/o/b", 1).await.unwrap();
    let writer = tokio::spawn(async move {
        for _ in 0..150 {
            let (a, b) = (&a0, &b0);
            dosync(|| async move {
                let old_a = a.get().await?;
                a.ref_set(1 - old_a).await?;
                b.ref_set(old_a).await?;
                Ok::<_, Error>(())
            })
            .await
            .unwrap();
        }
    });
    let mut readers = Vec::new();
    for s in &sessions[1..] {
        let a: Ref<i64> = Ref::open(s, "/o/a").await.unwrap();
        let b: Ref<i64> = Ref::open(s, "/o/b").await.unwrap();
        readers.push(tokio::spawn(async move {
            let mut reads = 0;
            for _ in 0..150 {
                let (a, b) = (&a, &b);
                let q = dosync(|| async move {
                    let x = a.get().await?;
                    // Widen the window in which the writer can flip the pair between our reads.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    let y = b.get().await?;
                    assert_ne!(x, y, "the body saw a state that never existed");
                    Ok::<_, Error>(1 / (x - y))
                })
                .await
                .unwrap();
                assert!(q == 1 || q == -1);
                reads += 1;
            }
            reads
        }));
    }
    timeout(Duration::from_secs(120), writer).await.unwrap().unwrap();
    for r in readers {
        assert_eq!(timeout(BOUND, r).await.unwrap().unwrap(), 150);
    }
}

#[tokio::test]
async fn a_body_error_or_a_validator_aborts_and_writes_nothing() {
    let session = common::session("abort").await;
    let r: Ref<i64> = Ref::new(&session, "/acct", 10).await.unwrap();
    let ran_after_commit = Arc::new(AtomicUsize::new(0));
    let (rr, counter) = (&r, &ran_after_commit);
    #[derive(Debug, PartialEq)]
    enum BankError {
        Store(String),
        InsufficientFunds,
    }
    impl From<Error> for BankError {
        fn from(e: Error) -> Self {
            BankError::Store(e.to_string())
        }
    }
    let result: Result<(), BankError> = dosync(|| async move {
        rr.alter(|v| v - 100).await?;
        let c = counter.clone();
        after_commit(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })?;
        Err(BankError::InsufficientFunds)
    })
    .await;
    assert_eq!(result, Err(BankError::InsufficientFunds));
    assert_eq!(
        r.deref_sync().await.unwrap(),
        10,
        "an aborted transaction writes nothing"
    );
    assert_eq!(
        ran_after_commit.load(Ordering::SeqCst),
        0,
        "after_commit runs only on commit"
    );

    r.set_validator(|v| {
        if *v >= 0 {
            Ok(())
        } else {
            Err(format!("balance {v} would be negative"))
        }
    })
    .unwrap();
    let refused = dosync(|| async move { rr.alter(|v| v - 100).await.map(|_| ()) }).await;
    match refused {
        Err(Error::Invalid { reason, .. }) => assert!(reason.contains("-90"), "{reason}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(r.deref_sync().await.unwrap(), 10);

    let ok = dosync(|| async move {
        rr.alter(|v| v - 5).await?;
        let c = counter.clone();
        after_commit(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })?;
        Ok::<_, Error>(())
    })
    .await;
    ok.unwrap();
    assert_eq!(r.deref_sync().await.unwrap(), 5);
    assert_eq!(ran_after_commit.load(Ordering::SeqCst), 1);
}

async fn count_increments(
    sessions: &[Session],
    path: &str,
    per_session: usize,
    commute: bool,
) -> (i64, usize) {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for s in sessions {
        let r: Ref<i64> = Ref::new(s, path, 0).await.unwrap();
        let runs = runs.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_session {
                let (r, runs) = (&r, &runs);
                dosync(|| async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    if commute {
                        r.commute(|v| v + 1).await?;
                    } else {
                        r.alter(|v| v + 1).await?;
                    }
                    Ok::<_, Error>(())
                })
                .await
                .unwrap();
            }
            r
        }));
    }
    let mut last = None;
    for t in tasks {
        last = Some(timeout(Duration::from_secs(120), t).await.unwrap().unwrap());
    }
    let value = last.unwrap().deref_sync().await.unwrap();
    (value, runs.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commute_is_exact_and_reruns_the_body_less_than_alter() {
    let sessions = common::sessions("commute", 4).await;
    let (value, commute_runs) = count_increments(&sessions, "/c/commuted", 40, true).await;
    assert_eq!(value, 160);
    let (value, alter_runs) = count_increments(&sessions, "/c/altered", 40, false).await;
    assert_eq!(value, 160);
    assert!(commute_runs >= 160 && alter_runs >= 160);
    assert!(
        commute_runs < alter_runs,
        "commute should rerun bodies less than alter ({commute_runs} vs {alter_runs} body runs)"
    );
}

#[tokio::test]
async fn nested_dosync_joins_the_outer_transaction() {
    let session = common::session("nested").await;
    let a: Ref<i64> = Ref::new(&session, "/a", 0).await.unwrap();
    let (ra, outer_runs) = (&a, Arc::new(AtomicUsize::new(0)));
    let runs = &outer_runs;
    let result: mazurka::Result<()> = dosync(|| async move {
        runs.fetch_add(1, Ordering::SeqCst);
        ra.alter(|v| v + 1).await?;
        dosync(|| async move {
            assert!(mazurka::in_transaction());
            ra.alter(|v| v + 1).await?;
            Ok::<_, Error>(())
        })
        .await?;
        Err(Error::Invalid {
            path: "/a".into(),
            reason: "abort the whole thing".into(),
        })
    })
    .await;
    assert!(result.is_err());
    assert_eq!(
        a.deref_sync().await.unwrap(),
        0,
        "the inner dosync was part of the aborted outer one"
    );
}

#[tokio::test]
async fn a_commit_whose_reply_is_lost_applies_exactly_once() {
    let server = common::server();
    let chroot = mazurka::testkit::unique_chroot("lost-reply");
    let proxy = FaultProxy::start(server.addr()).unwrap();
    let flaky = Session::builder(format!("{}{chroot}", proxy.connect_string()))
        .session_timeout(Duration::from_secs(4))
        .connect()
        .await
        .unwrap();
    let steady = Session::connect(format!("{}{chroot}", server.connect_string()))
        .await
        .unwrap();
    let counter: Ref<i64> = Ref::new(&flaky, "/counter", 0).await.unwrap();
    let observer: Ref<i64> = Ref::open(&steady, "/counter").await.unwrap();
    // Read first (from the replica: nobody changes it), so that the counter's read is a server
    // read that checks both. Were the counter read first, from a replica told of a change it
    // had not read yet (its own previous commit, say), that read would be checked just before
    // the commit — and the fault below would hit the check instead of the commit.
    let unchanged: Ref<i64> = Ref::new(&flaky, "/unchanged", 7).await.unwrap();

    /// Increments `counter` in a transaction whose first attempt stops after its reads until
    /// `go` fires: the fault is injected exactly between the reads and the commit.
    fn increment(
        unchanged: &Ref<i64>,
        counter: &Ref<i64>,
    ) -> (
        tokio::task::JoinHandle<mazurka::Result<i64>>,
        tokio::sync::oneshot::Receiver<()>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let (read_tx, read_rx) = tokio::sync::oneshot::channel();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let gate = Arc::new(std::sync::Mutex::new(Some((read_tx, go_rx))));
        let (unchanged, counter) = (unchanged.clone(), counter.clone());
        let task = tokio::spawn(async move {
            let (u, c, gate) = (&unchanged, &counter, &gate);
            dosync(|| async move {
                assert_eq!(u.get().await?, 7);
                let v = c.get().await?;
                let first = gate.lock().unwrap().take();
                if let Some((read_tx, go_rx)) = first {
                    let _ = read_tx.send(());
                    let _ = go_rx.await;
                }
                c.ref_set(v + 1).await
            })
            .await
        });
        (task, read_rx, go_tx)
    }

    for round in 1..=3i64 {
        // Applied, reply lost: the commit reaches the server, its reply is held, then cut.
        let (task, read, go) = increment(&unchanged, &counter);
        read.await.unwrap();
        proxy.stall_replies();
        go.send(()).unwrap();
        common::eventually(10, "commit applied on the server", || async {
            observer.deref_sync().await.unwrap() == 2 * round - 1
        })
        .await;
        proxy.cut();
        proxy.heal();
        assert_eq!(
            timeout(BOUND, task).await.unwrap().unwrap().unwrap(),
            2 * round - 1
        );
        assert_eq!(
            observer.deref_sync().await.unwrap(),
            2 * round - 1,
            "applied exactly once"
        );

        // Not applied: the commit is held in the proxy and cut; the retry applies it once.
        let (task, read, go) = increment(&unchanged, &counter);
        read.await.unwrap();
        proxy.stall();
        go.send(()).unwrap();
        tokio::task::yield_now().await;
        proxy.cut();
        proxy.heal();
        assert_eq!(timeout(BOUND, task).await.unwrap().unwrap().unwrap(), 2 * round);
        assert_eq!(
            observer.deref_sync().await.unwrap(),
            2 * round,
            "applied exactly once after a retry"
        );
    }
}

#[tokio::test]
async fn watches_fire_in_other_sessions_and_replicas_catch_up_after_a_reconnect() {
    let server = common::server();
    let chroot = mazurka::testkit::unique_chroot("watch");
    let proxy = FaultProxy::start(server.addr()).unwrap();
    let writer = Session::connect(format!("{}{chroot}", server.connect_string()))
        .await
        .unwrap();
    let watcher = Session::builder(format!("{}{chroot}", proxy.connect_string()))
        .session_timeout(Duration::from_secs(4))
        .connect()
        .await
        .unwrap();
    let w: Ref<String> = Ref::new(&writer, "/status", "starting".to_string())
        .await
        .unwrap();
    let r: Ref<String> = Ref::open(&watcher, "/status").await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    r.add_watch("log", move |old: &String, new: &String| {
        let _ = tx.send((old.clone(), new.clone()));
    });
    let wr = &w;
    dosync(|| async move { wr.ref_set("running".to_string()).await })
        .await
        .unwrap();
    let (old, new) = timeout(BOUND, rx.recv()).await.unwrap().unwrap();
    assert_eq!((old.as_str(), new.as_str()), ("starting", "running"));
    assert_eq!(r.deref().unwrap(), "running");

    // While the watcher is cut off, the value changes; after the reconnect its replica catches up.
    proxy.cut();
    dosync(|| async move { wr.ref_set("done".to_string()).await })
        .await
        .unwrap();
    proxy.heal();
    let (_, new) = timeout(BOUND, rx.recv()).await.unwrap().unwrap();
    assert_eq!(new, "done");
    assert_eq!(r.deref().unwrap(), "done");
    assert!(r.remove_watch("log"));
}

#[tokio::test]
async fn an_oversized_write_set_is_refused_before_sending() {
    let session = common::session("big").await;
    let refs: Vec<Ref<Vec<u8>>> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(Ref::new(&session, format!("/big/{i}"), Vec::new()).await.unwrap());
        }
        v
    };
    let all = &refs;
    let result = dosync(|| async move {
        for r in all {
            r.ref_set(vec![7u8; 400_000]).await?;
        }
        Ok::<_, Error>(())
    })
    .await;
    assert!(matches!(result, Err(Error::ValueTooLarge { .. })), "{result:?}");
    for r in &refs {
        assert!(r.deref_sync().await.unwrap().is_empty(), "nothing written");
    }
    assert_eq!(session.state(), mazurka::SessionState::Connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bank_total_survives_connections_cut_during_commits() {
    const ACCOUNTS: usize = 5;
    let server = common::server();
    let chroot = mazurka::testkit::unique_chroot("bank-cuts");
    let proxy = Arc::new(FaultProxy::start(server.addr()).unwrap());
    let mut branches = Vec::new();
    for _ in 0..3 {
        let s = Session::builder(format!("{}{chroot}", proxy.connect_string()))
            .session_timeout(Duration::from_secs(4))
            .connect()
            .await
            .unwrap();
        let mut accounts = Vec::new();
        for i in 0..ACCOUNTS {
            accounts.push(Ref::<i64>::new(&s, format!("/accounts/{i}"), 1000).await.unwrap());
        }
        branches.push(accounts);
    }
    let auditor_session = Session::connect(format!("{}{chroot}", server.connect_string()))
        .await
        .unwrap();
    let mut books = Vec::new();
    for i in 0..ACCOUNTS {
        books.push(
            Ref::<i64>::open(&auditor_session, format!("/accounts/{i}"))
                .await
                .unwrap(),
        );
    }
    const CUTS: usize = 8;
    let committed = Arc::new(AtomicUsize::new(0));
    let cuts_done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (w, accounts) in branches.into_iter().enumerate() {
        let (committed, cuts_done) = (committed.clone(), cuts_done.clone());
        tasks.push(tokio::spawn(async move {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(100 + w as u64);
            // Keep transferring until every cut has happened (and at least 20 transfers).
            let mut n = 0;
            while n < 20 || cuts_done.load(Ordering::SeqCst) < CUTS {
                n += 1;
                let a = rng.gen_range(0..ACCOUNTS);
                let b = (a + rng.gen_range(1..ACCOUNTS)) % ACCOUNTS;
                // A cut may surface as an error the caller must handle; the invariant must hold
                // whatever happened, and a reported success must have happened exactly once.
                if transfer(&accounts[a], &accounts[b], rng.gen_range(1..=50))
                    .await
                    .is_ok()
                {
                    committed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    // Cut after every few commits while transfers run; audit after each cut.
    let mut audits = 0;
    for cut in 1..=CUTS {
        let seen = committed.load(Ordering::SeqCst);
        common::eventually(30, "more commits", || async {
            committed.load(Ordering::SeqCst) > seen
        })
        .await;
        proxy.cut();
        proxy.heal();
        cuts_done.store(cut, Ordering::SeqCst);
        assert_eq!(
            audit(&books).await.unwrap(),
            1000 * ACCOUNTS as i64,
            "audit after cut {cut}"
        );
        audits += 1;
    }
    for t in tasks {
        timeout(Duration::from_secs(120), t).await.unwrap().unwrap();
    }
    assert_eq!(audit(&books).await.unwrap(), 1000 * ACCOUNTS as i64);
    assert_eq!(audits, CUTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn reads_issued_together_in_one_body_are_still_one_snapshot() {
    // As `a_body_never_sees_an_inconsistent_state`, with the two reads polled concurrently after
    // a first read: each must still be checked against the other.
    let sessions = common::sessions("opacity-join", 2).await;
    let a0: Ref<i64> = Ref::new(&sessions[0], "/o/a", 0).await.unwrap();
    let b0: Ref<i64> = Ref::new(&sessions[0], "/o/b", 1).await.unwrap();
    let _c0: Ref<i64> = Ref::new(&sessions[0], "/o/c", 7).await.unwrap();
    let writer = tokio::spawn(async move {
        for _ in 0..150 {
            let (a, b) = (&a0, &b0);
            dosync(|| async move {
                let old_a = a.get().await?;
                a.ref_set(1 - old_a).await?;
                b.ref_set(old_a).await?;
                Ok::<_, Error>(())
            })
            .await
            .unwrap();
        }
    });
    let a: Ref<i64> = Ref::open(&sessions[1], "/o/a").await.unwrap();
    let b: Ref<i64> = Ref::open(&sessions[1], "/o/b").await.unwrap();
    let c: Ref<i64> = Ref::open(&sessions[1], "/o/c").await.unwrap();
    for _ in 0..150 {
        let (a, b, c) = (&a, &b, &c);
        dosync(|| async move {
            c.get().await?;
            let (x, y) = tokio::join!(a.get(), b.get());
            let (x, y) = (x?, y?);
            assert_ne!(x, y, "concurrent reads mixed two states");
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    }
    timeout(Duration::from_secs(120), writer).await.unwrap().unwrap();
}

/// The sessions watching `path` (a full server path), from the server's `wchp` listing.
fn watchers(path: &str) -> usize {
    let listing = mazurka::testkit::four_letter_word(common::server().addr(), "wchp").unwrap();
    let mut lines = listing.lines().skip_while(|l| l.trim() != path).skip(1);
    let mut n = 0;
    while lines.next().is_some_and(|l| l.trim_start().starts_with("0x")) {
        n += 1;
    }
    n
}

#[tokio::test]
async fn a_replica_read_only_by_transactions_stops_rereading_until_dereffed() {
    let sessions = common::sessions("dormant", 2).await;
    let full = format!("{}/d/x", sessions[0].chroot().unwrap());
    let mine: Ref<i64> = Ref::new(&sessions[0], "/d/x", 0).await.unwrap();
    let theirs: Ref<i64> = Ref::open(&sessions[1], "/d/x").await.unwrap();
    assert_eq!(watchers(&full), 2, "both replicas watch the value once loaded");

    // A change fires both watches; replicas only transactions read do not re-read (re-arm).
    dosync(|| async { theirs.alter(|v| v + 1).await }).await.unwrap();
    common::eventually(10, "both watches fired and stayed unarmed", || async {
        watchers(&full) == 0
    })
    .await;

    // A transaction still works from the current value: whatever its replica holds is checked
    // against the server before or at the commit.
    assert_eq!(dosync(|| async { mine.alter(|v| v + 1).await }).await.unwrap(), 2);

    // `deref` follows the value from now on: the replica is read (its watch re-armed) and
    // catches up with every later change by anyone.
    let _ = mine.deref().unwrap();
    common::eventually(10, "the dereffed replica watches again", || async {
        watchers(&full) == 1
    })
    .await;
    dosync(|| async { theirs.alter(|v| v + 1).await }).await.unwrap();
    common::eventually(10, "the followed replica catches up", || async {
        mine.deref().unwrap() == 3
    })
    .await;
}

/// Read requests the server has handled so far (`mntr`; pings count too, and none happen while
/// the sessions are busy well within their timeout).
fn server_reads(server: &mazurka::testkit::ZkServer) -> u64 {
    let mntr = mazurka::testkit::four_letter_word(server.addr(), "mntr").unwrap();
    mntr.lines()
        .find_map(|l| {
            l.strip_prefix("zk_cnt_readlatency")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap()
}

#[tokio::test]
async fn a_read_that_finds_a_conflict_reruns_from_its_own_snapshot() {
    // Its own server: the read count must be this test's alone.
    let server = mazurka::testkit::ZkServer::builder()
        .tick_time(Duration::from_secs(2))
        .start()
        .unwrap();
    let connect = |timeout| {
        Session::builder(server.connect_string())
            .session_timeout(timeout)
            .connect()
    };
    let mine = connect(Duration::from_secs(30)).await.unwrap();
    let theirs = connect(Duration::from_secs(30)).await.unwrap();
    let a: Ref<i64> = Ref::new(&mine, "/a", 0).await.unwrap();
    let b: Ref<i64> = Ref::new(&mine, "/b", 0).await.unwrap();
    let their_a: Ref<i64> = Ref::open(&theirs, "/a").await.unwrap();

    let attempts = AtomicUsize::new(0);
    let (a, b, attempts, their_a) = (&a, &b, &attempts, &their_a);
    let before = server_reads(&server);
    dosync(|| async move {
        let x = a.get().await?;
        if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
            // Between this attempt's two reads, another session moves `a` on (in a task of its
            // own: a `dosync` on this task would join this transaction).
            let r = their_a.clone();
            tokio::spawn(async move {
                let r = &r;
                dosync(|| async move { r.alter(|v| v + 10).await }).await
            })
            .await
            .unwrap()
            .unwrap();
        }
        let y = b.get().await?;
        b.ref_set(x + y + 1).await
    })
    .await
    .unwrap();
    let reads = server_reads(&server) - before;

    assert_eq!(attempts.load(Ordering::SeqCst), 2, "one conflict, one rerun");
    assert_eq!(b.deref_sync().await.unwrap(), 11, "the rerun saw a = 10");
    assert_eq!(
        reads, 1,
        "the conflicting multiRead was the only read: the rerun used its values"
    );
}

#[tokio::test]
#[allow(clippy::disallowed_types)] // the bare client edits the znode behind the library's back
async fn a_ref_deleted_and_recreated_at_the_same_version_is_a_conflict() {
    // ZooKeeper's data version starts again at 0 when a znode is re-created: a read is checked
    // by the zxid of the write that made it, which no re-create can repeat.
    let session = common::session("recreate").await;
    let chroot = session.chroot().unwrap().to_string();
    let a: Ref<i64> = Ref::new(&session, "/a", 1).await.unwrap();
    let b: Ref<i64> = Ref::new(&session, "/b", 0).await.unwrap();
    let _five: Ref<i64> = Ref::new(&session, "/five", 5).await.unwrap();
    let raw = zookeeper_client::Client::connector()
        .connect(&format!("{}{chroot}", common::server().connect_string()))
        .await
        .unwrap();
    let (five, _) = raw.get_data("/five").await.unwrap();

    let attempts = AtomicUsize::new(0);
    let (a, b, attempts, raw, five) = (&a, &b, &attempts, &raw, &five);
    dosync(|| async move {
        let x = a.get().await?;
        if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
            // Between this attempt's reads, `a` is deleted and re-created holding 5: version 0
            // again, as when the attempt read 1.
            raw.delete("/a", None).await.unwrap();
            let options =
                zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
            let (stat, _) = raw.create("/a", five, &options).await.unwrap();
            assert_eq!(stat.version, 0);
        }
        let y = b.get().await?;
        b.ref_set(x + y).await
    })
    .await
    .unwrap();
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "the re-created ref is a conflict"
    );
    assert_eq!(b.deref_sync().await.unwrap(), 5, "the rerun read the new value");
}

/// Node reads (`getData`, also each one inside a `multiRead`) the server has served under the
/// top-level path `/<namespace>` (`mntr`'s per-namespace read count).
fn node_reads(server: &mazurka::testkit::ZkServer, namespace: &str) -> u64 {
    let mntr = mazurka::testkit::four_letter_word(server.addr(), "mntr").unwrap();
    let key = format!("zk_cnt_{namespace}_read_per_namespace");
    mntr.lines()
        .find_map(|l| {
            l.strip_prefix(key.as_str())?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// A private server (the read counts must be this test's alone), a session on it, and `n` refs
/// under `/audit` holding 1 each.
async fn audit_setup(n: usize) -> (mazurka::testkit::ZkServer, Session, Vec<Ref<i64>>) {
    let server = mazurka::testkit::ZkServer::builder().start().unwrap();
    let session = Session::builder(server.connect_string())
        .session_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();
    let mut refs = Vec::new();
    for i in 0..n {
        refs.push(Ref::new(&session, format!("/audit/r{i:03}"), 1).await.unwrap());
    }
    (server, session, refs)
}

/// Adds 1 to every ref in one transaction of this session: its commit fires every replica's
/// watch (the notifications come before the commit's reply), so no replica vouches for its
/// value any more and the next audit must read every ref from the server.
async fn touch_all(refs: &[Ref<i64>]) {
    dosync(|| async move {
        for r in refs {
            r.alter(|v| v + 1).await?;
        }
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_audit_of_n_refs_costs_n_node_reads_not_n_squared() {
    const N: usize = 60;
    let (server, _session, refs) = audit_setup(N).await;
    let refs = &refs;
    touch_all(refs).await;

    // Cold: no replica vouches. Each `get` used to re-read everything read so far in one
    // multiRead (N(N+1)/2 - 1 = 1829 node reads); now each ref is read once, and the first (taken
    // from its replica) once more when the second read checks it.
    let before = node_reads(&server, "audit");
    let total = audit(refs).await.unwrap();
    let cold = node_reads(&server, "audit") - before;
    assert_eq!(total, 2 * N as i64);
    assert!(cold <= N as u64 + 1, "a cold audit of {N} refs read {cold} nodes");

    // Warm: every replica's watch was armed by those reads and has not fired: no request at all.
    let before = node_reads(&server, "audit");
    assert_eq!(audit(refs).await.unwrap(), 2 * N as i64);
    let warm = node_reads(&server, "audit") - before;
    assert_eq!(warm, 0, "a warm audit read {warm} nodes");
}

#[tokio::test]
async fn get_all_reads_what_no_watch_vouches_for_in_one_round() {
    const N: usize = 60;
    let (server, _session, refs) = audit_setup(N).await;
    let refs = &refs;
    let sum = || async move {
        dosync(|| async move { Ok::<_, Error>(Ref::get_all(refs).await?.iter().sum::<i64>()) })
            .await
            .unwrap()
    };
    touch_all(refs).await;
    let before = node_reads(&server, "audit");
    assert_eq!(sum().await, 2 * N as i64);
    let cold = node_reads(&server, "audit") - before;
    assert_eq!(cold, N as u64, "get_all of {N} refs no watch vouched for");

    // Half of them changed since: only those are read.
    touch_all(&refs[..N / 2]).await;
    let before = node_reads(&server, "audit");
    assert_eq!(sum().await, 2 * N as i64 + (N / 2) as i64);
    assert_eq!(node_reads(&server, "audit") - before, (N / 2) as u64);

    // Values read earlier in the same attempt come back as they were, new ones join them.
    let (a, b) = (&refs[0], &refs[1]);
    let (x, all) = dosync(|| async move {
        let x = a.get().await?;
        Ok::<_, Error>((x, Ref::get_all([a, b, a]).await?))
    })
    .await
    .unwrap();
    assert_eq!(all, vec![x, b.deref_sync().await.unwrap(), x]);
}
