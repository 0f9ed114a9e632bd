//! The distributed lock against a real server: mutual exclusion, fencing order, FIFO fairness,
//! reentrancy, try-lock semantics, cancel safety. Fault tests live in `faults.rs`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mazurka::{Error, HoldState};
use tokio::time::{timeout, Instant};

const BOUND: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_exclusion_and_fencing_order_across_sessions() {
    const SESSIONS: usize = 4;
    const CYCLES: usize = 40;
    let sessions = common::sessions("mutex", SESSIONS).await;
    let inside = Arc::new(AtomicUsize::new(0));
    let max_inside = Arc::new(AtomicUsize::new(0));
    let grants = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (i, session) in sessions.iter().enumerate() {
        let lock = session.lock("/mutex/lock").unwrap();
        let (inside, max_inside, grants) = (inside.clone(), max_inside.clone(), grants.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..CYCLES {
                let guard = lock.lock().await.unwrap();
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                max_inside.fetch_max(now, Ordering::SeqCst);
                grants.lock().unwrap().push((guard.fencing_token(), i));
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
                guard.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        timeout(Duration::from_secs(120), t).await.unwrap().unwrap();
    }
    assert_eq!(max_inside.load(Ordering::SeqCst), 1, "two holders overlapped");
    let grants = grants.lock().unwrap();
    assert_eq!(grants.len(), SESSIONS * CYCLES);
    for pair in grants.windows(2) {
        assert!(
            pair[0].0 < pair[1].0,
            "fencing tokens must strictly increase in grant order: {pair:?}"
        );
    }
    // Every session got its turns (no starvation).
    for i in 0..SESSIONS {
        assert_eq!(grants.iter().filter(|g| g.1 == i).count(), CYCLES);
    }
}

#[tokio::test]
async fn waiters_are_served_in_arrival_order() {
    let sessions = common::sessions("fifo", 5).await;
    let holder = sessions[0].lock("/fifo/lock").unwrap();
    let guard = holder.lock().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (i, session) in sessions.iter().enumerate().skip(1) {
        let lock = session.lock("/fifo/lock").unwrap();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let g = lock.lock().await.unwrap();
            order.lock().unwrap().push(i);
            g.release().await.unwrap();
        }));
        // Wait until this waiter is queued before starting the next one.
        common::eventually(10, "waiter queued", || async {
            holder.queue_len().await.unwrap() == i + 1
        })
        .await;
    }
    guard.release().await.unwrap();
    for t in tasks {
        timeout(BOUND, t).await.unwrap().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn tasks_of_one_process_contend_like_processes() {
    let session = common::session("tasks").await;
    let lock = session.lock("/tasks/lock").unwrap();
    let guard = lock.lock().await.unwrap();
    let other = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.try_lock().await.unwrap().is_some() })
    };
    assert!(!other.await.unwrap(), "another task must not share the hold");
    // The other task's unlock is NotHeld.
    let lock2 = lock.clone();
    let unlock = tokio::spawn(async move { lock2.unlock().await });
    assert!(matches!(unlock.await.unwrap(), Err(Error::NotHeld { .. })));
    assert_eq!(lock.hold_count(), 1);
    guard.release().await.unwrap();
}

#[tokio::test]
async fn reentrant_hold_counts_follow_a_reference_model() {
    use rand::{Rng, SeedableRng};
    let mut sessions = common::sessions("reentrant", 2).await;
    let (session, observer) = (sessions.remove(0), sessions.remove(0));
    let lock = session.lock("/reentrant/lock").unwrap();
    let theirs = observer.lock("/reentrant/lock").unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut guards: Vec<mazurka::LockGuard> = Vec::new();
    // Guards whose hold unlock() gave up: inert, released at random later on.
    let mut inert = Vec::new();
    let mut model = 0usize;
    let mut token = None;
    for step in 0..400 {
        match rng.gen_range(0..6) {
            0 | 1 => {
                // Nested holds are taken in the scope of a live one (re-entry is scoped).
                let g = match guards.first() {
                    Some(outer) => outer.scope(lock.lock()).await.unwrap(),
                    None => lock.lock().await.unwrap(),
                };
                if let Some(t) = token {
                    assert_eq!(g.fencing_token(), t, "reentry keeps the node (and the token)");
                }
                token = Some(g.fencing_token());
                guards.push(g);
                model += 1;
            }
            2 if !guards.is_empty() => {
                let i = rng.gen_range(0..guards.len());
                guards.remove(i).release().await.unwrap();
                model -= 1;
            }
            3 if model > 0 => {
                lock.unlock().await.unwrap();
                model -= 1;
                // unlock() releases the innermost hold (the last guard, as `guards` keeps
                // acquisition order): that guard is inert now, and releasing it changes nothing.
                inert.extend(guards.pop());
            }
            4 if !inert.is_empty() => {
                let i = rng.gen_range(0..inert.len());
                let g: mazurka::LockGuard = inert.swap_remove(i);
                if rng.gen_bool(0.5) {
                    drop(g);
                } else {
                    g.release().await.unwrap();
                }
            }
            5 if !guards.is_empty() => {
                // Released by another task (on whichever thread runs it): the same hold goes.
                let i = rng.gen_range(0..guards.len());
                let g = guards.remove(i);
                tokio::spawn(async move { g.release().await })
                    .await
                    .unwrap()
                    .unwrap();
                model -= 1;
            }
            _ if model == 0 => {
                assert!(
                    matches!(lock.unlock().await, Err(Error::NotHeld { .. })),
                    "step {step}"
                );
            }
            _ => {}
        }
        if model == 0 {
            token = None;
        }
        assert_eq!(lock.hold_count(), model, "step {step}");
        assert_eq!(lock.is_held_by_current_task(), model > 0);
        assert_eq!(
            theirs.is_locked().await.unwrap(),
            model > 0,
            "step {step}: the node exists while held"
        );
    }
    while let Some(g) = guards.pop() {
        g.release().await.unwrap();
    }
    drop(inert);
    assert_eq!(lock.hold_count(), 0);
    assert_eq!(
        theirs.queue_len().await.unwrap(),
        0,
        "all holds released: no node left"
    );
}

/// Nested holds taken by the owner while other tasks, on other threads, give back earlier ones at
/// the same moment: every hold is counted once, and the lock stays held until the last goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn nested_holds_given_back_on_other_threads_are_counted_exactly() {
    use rand::{Rng, SeedableRng};
    let mut sessions = common::sessions("nested-threads", 2).await;
    let (session, observer) = (sessions.remove(0), sessions.remove(0));
    let lock = session.lock("/nested-threads/lock").unwrap();
    let theirs = observer.lock("/nested-threads/lock").unwrap();
    let outer = lock.lock().await.unwrap();
    let token = outer.fencing_token();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let released = Arc::new(AtomicUsize::new(0));
    for round in 0..50 {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<mazurka::LockGuard>();
        let releaser = {
            let released = released.clone();
            tokio::spawn(async move {
                while let Some(g) = rx.recv().await {
                    g.release().await.unwrap();
                    released.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let mut kept = Vec::new();
        let mut sent = 0;
        for _ in 0..200 {
            let g = outer.scope(lock.lock()).await.unwrap();
            assert_eq!(
                g.fencing_token(),
                token,
                "round {round}: a nested hold, same node"
            );
            if rng.gen_bool(0.7) {
                tx.send(g).unwrap();
                sent += 1;
            } else {
                kept.push(g);
            }
            if rng.gen_bool(0.2) {
                if let Some(g) = kept.pop() {
                    g.release().await.unwrap();
                }
            }
        }
        drop(tx);
        releaser.await.unwrap();
        assert_eq!(lock.hold_count(), 1 + kept.len(), "round {round}");
        drop(kept);
        assert_eq!(lock.hold_count(), 1, "round {round}");
        assert_eq!(
            theirs.queue_len().await.unwrap(),
            1,
            "round {round}: still held, by us alone"
        );
        assert!(sent > 0);
    }
    assert!(released.load(Ordering::Relaxed) > 5000);
    outer.release().await.unwrap();
    assert_eq!(lock.hold_count(), 0);
    assert_eq!(
        theirs.queue_len().await.unwrap(),
        0,
        "the last hold removed the node"
    );
}

/// A task that runs on the owner's thread is still another owner: it queues, it never shares the
/// hold (the thread's memory of the acquisition is checked against the task).
#[tokio::test]
async fn another_task_on_the_owners_thread_does_not_share_the_hold() {
    let session = common::session("same-thread").await;
    let lock = session.lock("/same-thread/lock").unwrap();
    let guard = lock.lock().await.unwrap();
    let nested = guard.scope(lock.lock()).await.unwrap();
    let other = {
        let lock = lock.clone();
        tokio::spawn(async move { (lock.try_lock().await.unwrap().is_some(), lock.hold_count()) })
    };
    assert_eq!(other.await.unwrap(), (false, 0));
    assert_eq!(lock.hold_count(), 2);
    nested.release().await.unwrap();
    guard.release().await.unwrap();
}

/// A waiter whose node someone else deletes (an operator, a cleanup script) is told exactly that —
/// not that its session was lost — as soon as it lists the queue again, and holds nothing; the
/// lock works on afterwards. (Five nodes ahead: it watches only its predecessor and lists again
/// when that one goes.)
#[tokio::test]
async fn a_waiting_node_deleted_by_someone_else_is_reported_as_such() {
    let mut sessions = common::sessions("deleted-waiter", 2).await;
    let (others, waiter) = (sessions.remove(0), sessions.remove(0));
    let chroot = others.chroot().unwrap().to_string();
    let lock = others.lock("/dw/lock").unwrap();
    let holder = lock.lock().await.unwrap();
    let mut ahead = Vec::new();
    for i in 0..4 {
        let lock = lock.clone();
        ahead.push(tokio::spawn(async move {
            lock.lock().await.unwrap().release().await.unwrap()
        }));
        common::eventually(10, "queued", || async {
            lock_len(&waiter, "/dw/lock").await == 2 + i
        })
        .await;
    }
    let theirs = waiter.lock("/dw/lock").unwrap();
    let waiting = {
        let theirs = theirs.clone();
        tokio::spawn(async move { theirs.lock().await.map(|g| g.fencing_token()) })
    };
    common::eventually(10, "waiter queued", || async {
        lock_len(&waiter, "/dw/lock").await == 6
    })
    .await;

    let doomed = delete_the_last_node(&chroot, "/dw/lock").await;
    // Its predecessor gives up: the waiter lists the queue again and finds itself gone.
    ahead.pop().unwrap().abort();

    match timeout(BOUND, waiting).await.unwrap().unwrap() {
        Err(Error::LockNodeDeleted { path }) => assert_eq!(path, doomed),
        other => panic!("expected LockNodeDeleted, got {other:?}"),
    }
    assert_eq!(theirs.hold_count(), 0);
    assert_eq!(holder.state(), HoldState::Held, "the holder is untouched");
    holder.release().await.unwrap();
    for task in ahead {
        timeout(BOUND, task).await.unwrap().unwrap();
    }
    // The waiter's session is fine: it takes the lock at once now.
    let again = timeout(BOUND, theirs.lock()).await.unwrap().unwrap();
    assert_eq!(lock_len(&waiter, "/dw/lock").await, 1);
    again.release().await.unwrap();
}

/// The same with one node ahead, which the waiter watches without listing again: when the holder
/// goes, the waiter asks the server about its own node before taking the turn, finds it gone and
/// says so — never a turn taken without a node.
#[tokio::test]
async fn a_waiter_watching_every_node_ahead_never_takes_a_turn_without_its_node() {
    let mut sessions = common::sessions("deleted-near", 2).await;
    let (holder_session, waiter) = (sessions.remove(0), sessions.remove(0));
    let chroot = holder_session.chroot().unwrap().to_string();
    let holder = holder_session.lock("/dn/lock").unwrap().lock().await.unwrap();
    let theirs = waiter.lock("/dn/lock").unwrap();
    let mut waiting = {
        let theirs = theirs.clone();
        tokio::spawn(async move { theirs.lock().await.map(|g| g.fencing_token()) })
    };
    common::eventually(10, "waiter queued", || async {
        lock_len(&waiter, "/dn/lock").await == 2
    })
    .await;

    let doomed = delete_the_last_node(&chroot, "/dn/lock").await;
    assert_ne!(doomed, holder.node_path(), "the waiter's node, not the holder's");
    assert_eq!(holder.state(), HoldState::Held);
    assert!(
        timeout(Duration::from_millis(300), &mut waiting).await.is_err(),
        "the waiter must not end its wait while the holder holds"
    );
    holder.release().await.unwrap();
    match timeout(BOUND, waiting).await.unwrap().unwrap() {
        Err(Error::LockNodeDeleted { path }) => assert_eq!(path, doomed),
        other => panic!("expected LockNodeDeleted, got {other:?}"),
    }
    assert_eq!(lock_len(&waiter, "/dn/lock").await, 0, "nobody holds the lock");
    let again = timeout(BOUND, theirs.lock()).await.unwrap().unwrap();
    again.release().await.unwrap();
}

/// Deletes the newest contender node under `dir` behind the library's back, as an operator
/// would; returns its path.
#[allow(clippy::disallowed_types)] // the bare client, on purpose
async fn delete_the_last_node(chroot: &str, dir: &str) -> String {
    let raw = zookeeper_client::Client::connector()
        .connect(&format!("{}{chroot}", common::server().connect_string()))
        .await
        .unwrap();
    let mut names = raw.list_children(dir).await.unwrap();
    // The sequence number is the name's last `-` part (zero-padded): the newest sorts last.
    names.sort_by_key(|name| name.rsplit('-').next().unwrap_or_default().to_owned());
    let doomed = format!("{dir}/{}", names.last().unwrap());
    raw.delete(&doomed, None).await.unwrap();
    doomed
}

async fn lock_len(session: &mazurka::Session, path: &str) -> usize {
    session.lock(path).unwrap().queue_len().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_lock_with_many_contenders_has_exactly_one_winner_and_no_leftovers() {
    const N: usize = 6;
    let sessions = common::sessions("try", N).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = Vec::new();
    for session in &sessions {
        let lock = session.lock("/try/lock").unwrap();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let got = lock.try_lock().await.unwrap();
            // Hold until everybody has tried.
            barrier.wait().await;
            let won = got.is_some();
            let queue = lock.queue_len().await.unwrap();
            barrier.wait().await;
            if let Some(g) = got {
                g.release().await.unwrap();
            }
            (won, queue)
        }));
    }
    let mut winners = 0;
    for t in tasks {
        let (won, queue) = t.await.unwrap();
        winners += usize::from(won);
        assert_eq!(queue, 1, "losers of try_lock leave no node");
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn try_lock_for_gives_up_within_its_bound_and_leaves_no_node() {
    let sessions = common::sessions("trylockfor", 2).await;
    let a = sessions[0].lock("/t/lock").unwrap();
    let b = sessions[1].lock("/t/lock").unwrap();
    let guard = a.lock().await.unwrap();
    let started = Instant::now();
    let got = b.try_lock_for(Duration::from_millis(300)).await.unwrap();
    let took = started.elapsed();
    assert!(got.is_none());
    assert!(took >= Duration::from_millis(300), "gave up early: {took:?}");
    assert!(took < Duration::from_secs(3), "bound not respected: {took:?}");
    assert_eq!(
        a.queue_len().await.unwrap(),
        1,
        "the timed-out contender's node is gone"
    );
    // And it succeeds when the lock frees up within the bound (Duration::MAX: no overflow).
    let waiter = tokio::spawn(async move { b.try_lock_for(Duration::MAX).await.unwrap().is_some() });
    common::eventually(10, "waiter queued", || async {
        a.queue_len().await.unwrap() == 2
    })
    .await;
    guard.release().await.unwrap();
    assert!(waiter.await.unwrap());
}

#[tokio::test]
async fn dropped_waiting_futures_leave_no_node() {
    let sessions = common::sessions("cancel", 3).await;
    let holder = sessions[0].lock("/cancel/lock").unwrap();
    let guard = holder.lock().await.unwrap();
    let mut waiters = Vec::new();
    for session in &sessions[1..] {
        for _ in 0..3 {
            let lock = session.lock("/cancel/lock").unwrap();
            waiters.push(tokio::spawn(async move { lock.lock().await.map(|_| ()) }));
        }
    }
    common::eventually(10, "all waiters queued", || async {
        holder.queue_len().await.unwrap() == 7
    })
    .await;
    for w in &waiters {
        w.abort();
    }
    common::eventually(10, "cancelled waiters removed their nodes", || async {
        holder.queue_len().await.unwrap() == 1
    })
    .await;
    // A future dropped right after it was first polled (create in flight) leaves nothing either.
    for _ in 0..10 {
        let lock = sessions[1].lock("/cancel/lock").unwrap();
        let _ = timeout(Duration::from_micros(1), lock.lock()).await;
    }
    common::eventually(10, "in-flight creates swept", || async {
        holder.queue_len().await.unwrap() == 1
    })
    .await;
    assert_eq!(guard.state(), HoldState::Held);
    guard.release().await.unwrap();
    assert_eq!(holder.queue_len().await.unwrap(), 0);
}

#[tokio::test]
async fn holder_info_names_the_holder() {
    let session = common::session("holder").await;
    let lock = session.lock("/holder/lock").unwrap();
    assert!(lock.holder().await.unwrap().is_none());
    assert!(!lock.is_locked().await.unwrap());
    let guard = lock.lock().await.unwrap();
    let info = lock.holder().await.unwrap().unwrap();
    assert_eq!(info.pid, std::process::id());
    assert_eq!(info.session, format!("{:#x}", session.id()));
    assert!(info.age() < Duration::from_secs(60));
    assert!(lock.is_locked().await.unwrap());
    guard.release().await.unwrap();
}

#[tokio::test]
async fn fencing_tokens_increase_even_when_the_directory_is_recreated() {
    let session = common::session("fence").await;
    let lock = session.lock("/fence/lock").unwrap();
    let first = lock.lock().await.unwrap();
    let t1 = first.fencing_token();
    first
        .fenced()
        .create("/fence/resource", b"one".to_vec())
        .unwrap()
        .commit()
        .await
        .unwrap();
    first.release().await.unwrap();
    // The (container) directory is now empty; whether or not the server reaps it in between,
    // the next holder's token is larger.
    let second = lock.lock().await.unwrap();
    assert!(second.fencing_token() > t1);
    second
        .fenced()
        .set("/fence/resource", b"two".to_vec())
        .unwrap()
        .commit()
        .await
        .unwrap();
    second.release().await.unwrap();
}

#[tokio::test]
async fn dropping_a_guard_releases_in_the_background() {
    let sessions = common::sessions("drop", 2).await;
    let a = sessions[0].lock("/drop/lock").unwrap();
    let b = sessions[1].lock("/drop/lock").unwrap();
    {
        let _guard = a.lock().await.unwrap();
    }
    let g = timeout(BOUND, b.lock()).await.unwrap().unwrap();
    g.release().await.unwrap();
    // Dropped off any runtime: no panic, and the release still happens.
    let guard = a.lock().await.unwrap();
    std::thread::spawn(move || drop(guard)).join().unwrap();
    let g = timeout(BOUND, b.lock()).await.unwrap().unwrap();
    g.release().await.unwrap();
}

#[tokio::test]
async fn an_unused_lock_directory_is_reaped_by_the_server() {
    let session = common::session("reap").await;
    let lock = session.lock("/reap/lock").unwrap();
    let guard = lock.lock().await.unwrap();
    assert_eq!(session.list_children("/reap/lock").await.unwrap().len(), 1);
    guard.release().await.unwrap();
    assert!(session.list_children("/reap/lock").await.unwrap().is_empty());
    // A container node: the server removes it once empty.
    common::eventually(15, "lock directory reaped", || async {
        !session.exists("/reap/lock").await.unwrap()
    })
    .await;
    // And the lock still works afterwards (the directory is made again).
    lock.lock().await.unwrap().release().await.unwrap();
}
