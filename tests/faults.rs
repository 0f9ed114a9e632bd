//! Fault tests: session expiry, partitions, cut connections, server crashes and ensemble node
//! loss — each against real ZooKeeper processes, some of them the test's own.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mazurka::testkit::{expire_session, FaultProxy, ZkEnsemble, ZkServer};
use mazurka::{Error, HoldState, Session, SessionState};
use tokio::time::{timeout, Instant};

const BOUND: Duration = Duration::from_secs(20);

/// `n` sessions on the whole ensemble (4 s timeout: they must outlive a node's loss).
async fn ensemble_sessions(ensemble: &ZkEnsemble, n: usize) -> Vec<Session> {
    let mut sessions = Vec::new();
    for _ in 0..n {
        sessions.push(
            Session::builder(ensemble.connect_string())
                .session_timeout(Duration::from_secs(4))
                .connect()
                .await
                .unwrap(),
        );
    }
    sessions
}

#[tokio::test]
async fn a_partitioned_holder_loses_the_lock_to_the_next_waiter_within_the_session_timeout() {
    let chroot = mazurka::testkit::unique_chroot("partition");
    let proxy = FaultProxy::start(common::server().addr()).unwrap();
    let holder = common::proxied(&proxy, &chroot, Duration::from_secs(2)).await;
    let waiter = common::direct(&chroot).await;
    let session_timeout = holder.session_timeout();

    let mine = holder.lock("/p/lock").unwrap();
    let guard = mine.lock().await.unwrap();
    let nested = guard.scope(mine.lock()).await.unwrap();
    let theirs = waiter.lock("/p/lock").unwrap();
    let next = tokio::spawn(async move { theirs.lock().await.map(|g| (Instant::now(), g)) });
    common::eventually(10, "waiter queued", || async {
        waiter.lock("/p/lock").unwrap().queue_len().await.unwrap() == 2
    })
    .await;

    let partitioned_at = Instant::now();
    proxy.stall();
    let (acquired_at, their_guard) = timeout(BOUND, next).await.unwrap().unwrap().unwrap();
    let waited = acquired_at - partitioned_at;
    assert!(
        waited <= session_timeout + Duration::from_secs(2),
        "next waiter took {waited:?} (session timeout {session_timeout:?})"
    );
    // The partitioned holder knows: suspended now, lost once it hears from the server again.
    assert_ne!(guard.state(), HoldState::Held);
    proxy.heal();
    timeout(BOUND, guard.lost())
        .await
        .expect("lost() must complete after expiry");
    assert_eq!(guard.state(), HoldState::Lost);
    assert_eq!(mine.hold_count(), 0, "a lost lock is held no more");
    assert!(
        matches!(nested.release().await, Err(Error::SessionLost)),
        "a nested hold's release after loss reports it too"
    );
    assert!(
        matches!(guard.release().await, Err(Error::SessionLost)),
        "release after loss reports it once"
    );
    their_guard.release().await.unwrap();
}

#[tokio::test]
async fn a_stale_holder_cannot_commit_a_fenced_write() {
    let chroot = mazurka::testkit::unique_chroot("fenced");
    let proxy = FaultProxy::start(common::server().addr()).unwrap();
    let stale = common::proxied(&proxy, &chroot, Duration::from_secs(2)).await;
    let fresh = common::direct(&chroot).await;

    let old = stale.lock("/f/lock").unwrap().lock().await.unwrap();
    old.fenced()
        .create("/f/resource", b"v0".to_vec())
        .unwrap()
        .commit()
        .await
        .unwrap();
    proxy.stall(); // the holder is "paused": it hears nothing, the server expires it
    let new = timeout(BOUND, fresh.lock("/f/lock").unwrap().lock())
        .await
        .unwrap()
        .unwrap();
    assert!(new.fencing_token() > old.fencing_token());
    proxy.heal();
    // The stale holder tries to write as if it still held the lock: refused, nothing written.
    let attempt = old
        .fenced()
        .set("/f/resource", b"stale".to_vec())
        .unwrap()
        .commit()
        .await;
    assert!(
        matches!(attempt, Err(Error::NotHeld { .. }) | Err(Error::SessionLost)),
        "{attempt:?}"
    );
    // The resource is still at version 0 (a check of version 0 passes under the new holder).
    new.fenced()
        .check("/f/resource", 0)
        .unwrap()
        .commit()
        .await
        .unwrap();
    new.release().await.unwrap();
}

#[tokio::test]
async fn a_waiter_whose_session_expires_gets_session_lost_never_a_guard() {
    let chroot = mazurka::testkit::unique_chroot("waiter-expiry");
    let proxy = FaultProxy::start(common::server().addr()).unwrap();
    let holder = common::direct(&chroot).await;
    let waiter = common::proxied(&proxy, &chroot, Duration::from_secs(2)).await;
    let guard = holder.lock("/w/lock").unwrap().lock().await.unwrap();
    let lock = waiter.lock("/w/lock").unwrap();
    let pending = tokio::spawn(async move { lock.lock().await.map(|_| ()) });
    let observer = holder.lock("/w/lock").unwrap();
    common::eventually(10, "waiter queued", || async {
        observer.queue_len().await.unwrap() == 2
    })
    .await;
    expire_session(&waiter, &proxy).await.unwrap();
    let outcome = timeout(BOUND, pending).await.unwrap().unwrap();
    assert!(matches!(outcome, Err(Error::SessionLost)), "{outcome:?}");
    assert_eq!(
        observer.queue_len().await.unwrap(),
        1,
        "the expired waiter's node is gone"
    );
    guard.release().await.unwrap();
}

#[tokio::test]
async fn a_waiter_partitioned_past_expiry_while_the_queue_empties_gets_session_lost() {
    // The waiter watches both nodes ahead of it. While it is partitioned its session expires
    // and both go; when it hears from the server again it is on a new session, where the nodes
    // it waited for are gone too — which must not read as "my turn": its own node went with the
    // old session, and someone else may hold the lock by then.
    let chroot = mazurka::testkit::unique_chroot("waiter-partition");
    let proxy = FaultProxy::start(common::server().addr()).unwrap();
    let holder = common::direct(&chroot).await;
    let second = common::direct(&chroot).await;
    let waiter = common::proxied(&proxy, &chroot, Duration::from_secs(2)).await;
    let first_guard = holder.lock("/q/lock").unwrap().lock().await.unwrap();
    let second_lock = second.lock("/q/lock").unwrap();
    let second_turn = tokio::spawn(async move { second_lock.lock().await });
    let observer = holder.lock("/q/lock").unwrap();
    common::eventually(10, "second queued", || async {
        observer.queue_len().await.unwrap() == 2
    })
    .await;
    let lock = waiter.lock("/q/lock").unwrap();
    let pending = tokio::spawn(async move { lock.lock().await.map(|_| ()) });
    common::eventually(10, "waiter queued", || async {
        observer.queue_len().await.unwrap() == 3
    })
    .await;

    proxy.stall();
    common::eventually(20, "the waiter's node went with its session", || async {
        observer.queue_len().await.unwrap() == 2
    })
    .await;
    first_guard.release().await.unwrap();
    let second_guard = timeout(BOUND, second_turn).await.unwrap().unwrap().unwrap();
    second_guard.release().await.unwrap();
    // Someone else takes the lock meanwhile: the partitioned waiter must not hold it too.
    let third_guard = observer.lock().await.unwrap();
    proxy.heal();

    let outcome = timeout(BOUND, pending).await.unwrap().unwrap();
    assert!(matches!(outcome, Err(Error::SessionLost)), "{outcome:?}");
    third_guard.release().await.unwrap();
}

#[tokio::test]
async fn when_the_next_in_line_dies_the_one_after_still_waits_for_the_holder() {
    let sessions = common::sessions("next-dies", 3).await;
    let (a, b, c) = (&sessions[0], &sessions[1], &sessions[2]);
    let guard = a.lock("/n/lock").unwrap().lock().await.unwrap();
    let observer = a.lock("/n/lock").unwrap();
    let b_lock = b.lock("/n/lock").unwrap();
    let b_task = tokio::spawn(async move { b_lock.lock().await.map(|_| ()) });
    common::eventually(10, "b queued", || async {
        observer.queue_len().await.unwrap() == 2
    })
    .await;
    let c_lock = c.lock("/n/lock").unwrap();
    let mut c_task = tokio::spawn(async move { c_lock.lock().await.map(|g| g.fencing_token()) });
    common::eventually(10, "c queued", || async {
        observer.queue_len().await.unwrap() == 3
    })
    .await;

    b.close().await.unwrap(); // b's node goes with its session
    assert!(matches!(
        timeout(BOUND, b_task).await.unwrap().unwrap(),
        Err(Error::Closed | Error::SessionLost)
    ));
    common::eventually(10, "b's node removed", || async {
        observer.queue_len().await.unwrap() == 2
    })
    .await;
    // c was woken by b's disappearance; it must go back to waiting for a.
    assert!(
        timeout(Duration::from_millis(500), &mut c_task).await.is_err(),
        "c acquired while a held the lock"
    );
    let a_token = guard.fencing_token();
    guard.release().await.unwrap();
    let c_token = timeout(BOUND, c_task).await.unwrap().unwrap().unwrap();
    assert!(c_token > a_token);
}

#[tokio::test]
async fn a_cut_during_create_or_release_leaves_no_orphan_and_the_lock_works() {
    let chroot = mazurka::testkit::unique_chroot("cut");
    let proxy = FaultProxy::start(common::server().addr()).unwrap();
    let flaky = common::proxied(&proxy, &chroot, Duration::from_secs(4)).await;
    let steady = common::direct(&chroot).await;
    let observer = steady.lock("/c/lock").unwrap();
    let lock = flaky.lock("/c/lock").unwrap();

    // Cut while the create is held in the proxy: it never arrives; the contender retries.
    for _ in 0..3 {
        proxy.stall();
        let pending = {
            let lock = lock.clone();
            tokio::spawn(async move { lock.lock().await })
        };
        tokio::task::yield_now().await;
        proxy.cut();
        proxy.heal();
        let guard = timeout(BOUND, pending).await.unwrap().unwrap().unwrap();
        assert_eq!(
            observer.queue_len().await.unwrap(),
            1,
            "exactly one node: no orphan from the cut create"
        );
        guard.release().await.unwrap();
        assert_eq!(observer.queue_len().await.unwrap(), 0);
    }

    // The create applies on the server but its reply is lost: found again by its marker.
    for _ in 0..3 {
        proxy.stall_replies();
        let pending = {
            let lock = lock.clone();
            tokio::spawn(async move { lock.lock().await })
        };
        common::eventually(10, "create applied on the server", || async {
            observer.queue_len().await.unwrap() == 1
        })
        .await;
        proxy.cut();
        proxy.heal();
        let guard = timeout(BOUND, pending).await.unwrap().unwrap().unwrap();
        assert_eq!(
            observer.queue_len().await.unwrap(),
            1,
            "the applied create was adopted, not duplicated"
        );
        assert_eq!(
            observer.holder().await.unwrap().unwrap().session,
            format!("{:#x}", flaky.id())
        );
        guard.release().await.unwrap();
        assert_eq!(observer.queue_len().await.unwrap(), 0);
    }

    // Cut right after the release is sent: the release still completes (retried) and leaves nothing.
    for _ in 0..3 {
        let guard = lock.lock().await.unwrap();
        let release = tokio::spawn(guard.release());
        tokio::task::yield_now().await; // the delete is on the wire
        proxy.cut();
        proxy.heal();
        timeout(BOUND, release).await.unwrap().unwrap().unwrap();
        assert_eq!(
            observer.queue_len().await.unwrap(),
            0,
            "no orphan after a cut release"
        );
        let g = timeout(BOUND, observer.lock()).await.unwrap().unwrap();
        g.release().await.unwrap();
    }
    assert_eq!(flaky.state(), SessionState::Connected);
}

/// Contenders that loop lock → critical section → release, counting overlaps; errors caused by
/// the fault (a lost session, a connection hiccup) make them try again.
fn contenders(
    sessions: &[Session],
    path: &'static str,
    inside: Arc<AtomicUsize>,
    overlaps: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
    rounds: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    sessions
        .iter()
        .map(|session| {
            let lock = session.lock(path).unwrap();
            let (inside, overlaps, done) = (inside.clone(), overlaps.clone(), done.clone());
            tokio::spawn(async move {
                let mut ok = 0;
                while ok < rounds {
                    match timeout(Duration::from_secs(30), lock.lock()).await {
                        Ok(Ok(guard)) => {
                            if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                                overlaps.fetch_add(1, Ordering::SeqCst);
                            }
                            tokio::task::yield_now().await;
                            inside.fetch_sub(1, Ordering::SeqCst);
                            let _ = guard.release().await;
                            ok += 1;
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(Err(err)) => assert!(
                            err.is_retryable() || matches!(err, Error::SessionLost),
                            "unexpected error: {err}"
                        ),
                        Err(_) => panic!("a contender was stuck for 30 s"),
                    }
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contenders_survive_a_server_crash_and_restart_without_overlap() {
    let server = ZkServer::start().unwrap();
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(
            Session::builder(server.connect_string())
                .session_timeout(Duration::from_secs(4))
                .connect()
                .await
                .unwrap(),
        );
    }
    let (inside, overlaps, done) = Default::default();
    let inside: Arc<AtomicUsize> = inside;
    let overlaps: Arc<AtomicUsize> = overlaps;
    let done: Arc<AtomicUsize> = done;
    let tasks = contenders(
        &sessions,
        "/crash/lock",
        inside,
        overlaps.clone(),
        done.clone(),
        30,
    );
    common::eventually(30, "some progress before the crash", || async {
        done.load(Ordering::SeqCst) >= 10
    })
    .await;
    server.kill().unwrap();
    server.restart().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "two holders overlapped");
    assert_eq!(done.load(Ordering::SeqCst), 90);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_losing_nodes_keeps_sessions_and_exclusion() {
    let ensemble = ZkEnsemble::start(3).unwrap();
    let sessions = ensemble_sessions(&ensemble, 3).await;
    let ids: Vec<i64> = sessions.iter().map(Session::id).collect();
    let (inside, overlaps, done): (Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<AtomicUsize>) = Default::default();
    let tasks = contenders(
        &sessions,
        "/ensemble/lock",
        inside,
        overlaps.clone(),
        done.clone(),
        20,
    );
    // Lose a follower while contenders run.
    common::eventually(30, "progress", || async { done.load(Ordering::SeqCst) >= 5 }).await;
    let follower = ensemble.follower_indices()[0];
    ensemble.node(follower).kill().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
    ensemble.node(follower).restart().unwrap();

    // Lose each node in turn (so also the one each client is connected to): sessions survive.
    for i in 0..ensemble.len() {
        ensemble.wait_for_leader(Duration::from_secs(30)).unwrap();
        ensemble.node(i).kill().unwrap();
        for (session, id) in sessions.iter().zip(&ids) {
            let lock = session.lock("/ensemble/after").unwrap();
            let guard = timeout(Duration::from_secs(30), lock.lock())
                .await
                .unwrap()
                .unwrap();
            guard.release().await.unwrap();
            assert_eq!(session.id(), *id, "the session survived losing node {i}");
        }
        ensemble.node(i).restart().unwrap();
    }
}

#[tokio::test]
async fn try_lock_for_keeps_its_bound_while_the_server_is_unreachable() {
    let chroot = mazurka::testkit::unique_chroot("bounded");
    let proxy = FaultProxy::start(common::server().addr()).unwrap();
    let cut_off = common::proxied(&proxy, &chroot, Duration::from_secs(4)).await;
    let holder = common::direct(&chroot).await;
    let held = holder.lock("/b/lock").unwrap().lock().await.unwrap();
    let lock = cut_off.lock("/b/lock").unwrap();
    proxy.stall(); // requests queue in the client; nothing answers
    let started = Instant::now();
    let got = lock.try_lock_for(Duration::from_millis(200)).await.unwrap();
    let took = started.elapsed();
    assert!(got.is_none());
    assert!(
        took < Duration::from_secs(7),
        "try_lock_for(200 ms) took {took:?} while unreachable"
    );
    proxy.heal();
    // The contender's node (if its create landed after the heal) is removed in the background.
    let observer = holder.lock("/b/lock").unwrap();
    common::eventually(20, "no node left by the bounded attempt", || async {
        observer.queue_len().await.unwrap() == 1
    })
    .await;
    held.release().await.unwrap();
}

#[tokio::test]
async fn the_bank_total_survives_losing_the_ensemble_leader() {
    const ACCOUNTS: usize = 10;
    let ensemble = ZkEnsemble::start(3).unwrap();
    let sessions = ensemble_sessions(&ensemble, 4).await;
    let mut accounts = Vec::new();
    for i in 0..ACCOUNTS {
        accounts.push(
            mazurka::Ref::<i64>::new(&sessions[0], format!("/bank/{i}"), 1000)
                .await
                .unwrap(),
        );
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let committed = Arc::new(AtomicUsize::new(0));
    let mut tellers = Vec::new();
    for (t, session) in sessions.iter().enumerate() {
        let mut mine = Vec::new();
        for i in 0..ACCOUNTS {
            mine.push(
                mazurka::Ref::<i64>::open(session, format!("/bank/{i}"))
                    .await
                    .unwrap(),
            );
        }
        let (stop, committed) = (stop.clone(), committed.clone());
        tellers.push(tokio::spawn(async move {
            let mut n = t;
            while !stop.load(Ordering::SeqCst) {
                n += 7;
                let (from, to) = (&mine[n % ACCOUNTS], &mine[(n / ACCOUNTS + n + 1) % ACCOUNTS]);
                if std::ptr::eq(from, to) {
                    continue;
                }
                let amount = (n % 50) as i64 + 1;
                let moved = mazurka::dosync(|| async move {
                    from.alter(|v| v - amount).await?;
                    to.alter(|v| v + amount).await
                })
                .await;
                // A transfer cut by the failover may fail (or end undecided): either way it moved
                // both amounts or neither, which the audits check.
                if moved.is_ok() {
                    committed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    let audited = Arc::new(AtomicUsize::new(0));
    let auditor = {
        let (stop, accounts, audited) = (stop.clone(), accounts.clone(), audited.clone());
        tokio::spawn(async move {
            let mut totals = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let accounts = &accounts;
                let total = mazurka::dosync(|| async move {
                    let mut sum = 0;
                    for a in accounts {
                        sum += a.get().await?;
                    }
                    Ok::<_, Error>(sum)
                })
                .await;
                if let Ok(total) = total {
                    totals.push(total);
                    audited.fetch_add(1, Ordering::SeqCst);
                }
            }
            totals
        })
    };

    common::eventually(30, "transfers before the failover", || async {
        committed.load(Ordering::SeqCst) >= 50
    })
    .await;
    let leader = ensemble.leader_index().unwrap();
    ensemble.node(leader).kill().unwrap();
    let (at_kill, audits_at_kill) = (committed.load(Ordering::SeqCst), audited.load(Ordering::SeqCst));
    common::eventually(60, "transfers and an audit after the failover", || async {
        committed.load(Ordering::SeqCst) >= at_kill + 50 && audited.load(Ordering::SeqCst) > audits_at_kill
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for t in tellers {
        t.await.unwrap();
    }
    let totals = auditor.await.unwrap();

    assert!(
        totals.iter().all(|&t| t == 1000 * ACCOUNTS as i64),
        "every audit saw the same total: {totals:?}"
    );
    let mut total = 0;
    for a in &accounts {
        total += a.deref_sync().await.unwrap();
    }
    assert_eq!(total, 1000 * ACCOUNTS as i64, "no money created or destroyed");
    ensemble.node(leader).restart().unwrap();
}
