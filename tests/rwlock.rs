//! The distributed read-write lock against a real server: readers share and writers exclude,
//! FIFO with writers queued between readers, upgrade refusal, downgrade, a writer's session
//! expiring, reentrancy, cancel safety, try-lock semantics, inspection, and the `lock!(read …)` /
//! `lock!(write …)` forms.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mazurka::testkit::{expire_session, FaultProxy};
use mazurka::{lock, DistributedRwLock, Error, HoldState, RwMode, Session};
use tokio::sync::{oneshot, Barrier};
use tokio::time::{timeout, Instant};

const BOUND: Duration = Duration::from_secs(20);

/// A fresh lock handle on `path` for each session.
fn locks(sessions: &[Session], path: &str) -> Vec<DistributedRwLock> {
    sessions.iter().map(|s| s.rw_lock(path).unwrap()).collect()
}

async fn queue_len(lock: &DistributedRwLock) -> usize {
    lock.queue_len().await.unwrap()
}

async fn wait_for_queue(lock: &DistributedRwLock, n: usize, what: &str) {
    common::eventually(10, what, || async { queue_len(lock).await == n }).await;
}

#[derive(Default)]
struct Occupancy {
    readers: AtomicUsize,
    writers: AtomicUsize,
    max_readers: AtomicUsize,
    violations: Mutex<Vec<String>>,
}

impl Occupancy {
    fn check(&self, who: &str) {
        let (r, w) = (
            self.readers.load(Ordering::SeqCst),
            self.writers.load(Ordering::SeqCst),
        );
        if w > 1 || (w == 1 && r > 0) {
            self.violations
                .lock()
                .unwrap()
                .push(format!("{who}: {r} readers and {w} writers inside"));
        }
    }

    fn enter_read(&self) {
        let now = self.readers.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_readers.fetch_max(now, Ordering::SeqCst);
        self.check("reader entering");
    }

    fn leave_read(&self) {
        self.check("reader leaving");
        self.readers.fetch_sub(1, Ordering::SeqCst);
    }

    fn enter_write(&self) {
        self.writers.fetch_add(1, Ordering::SeqCst);
        self.check("writer entering");
    }

    fn leave_write(&self) {
        self.check("writer leaving");
        self.writers.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_share_and_writers_exclude_across_sessions() {
    const READERS: usize = 4;
    const WRITERS: usize = 2;
    const READS: usize = 30;
    const WRITES: usize = 15;
    let sessions = common::sessions("rw-share", READERS + WRITERS).await;
    let rw = locks(&sessions, "/rw/lock");
    let occupancy = Arc::new(Occupancy::default());

    // Phase 1: every reader holds the read lock at the same time (a barrier inside the critical
    // section: it would time out if readers excluded each other).
    let inside = Arc::new(Barrier::new(READERS));
    let mut tasks = Vec::new();
    for lock in &rw[..READERS] {
        let (lock, inside, occupancy) = (lock.clone(), inside.clone(), occupancy.clone());
        tasks.push(tokio::spawn(async move {
            let guard = lock.read().await.unwrap();
            occupancy.enter_read();
            timeout(BOUND, inside.wait())
                .await
                .expect("readers must hold the lock together");
            occupancy.leave_read();
            guard.release().await.unwrap();
        }));
    }
    for t in tasks {
        timeout(BOUND, t).await.unwrap().unwrap();
    }
    assert_eq!(occupancy.max_readers.load(Ordering::SeqCst), READERS);
    occupancy.max_readers.store(0, Ordering::SeqCst);

    // Phase 2: readers and writers of all sessions loop together.
    let write_tokens = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (i, lock) in rw.iter().enumerate() {
        let (lock, occupancy, write_tokens) = (lock.clone(), occupancy.clone(), write_tokens.clone());
        tasks.push(tokio::spawn(async move {
            if i < READERS {
                for _ in 0..READS {
                    let guard = lock.read().await.unwrap();
                    occupancy.enter_read();
                    // Something that takes a while (a round trip), for other readers to overlap.
                    lock.is_locked().await.unwrap();
                    occupancy.leave_read();
                    guard.release().await.unwrap();
                }
            } else {
                for _ in 0..WRITES {
                    let guard = lock.write().await.unwrap();
                    occupancy.enter_write();
                    write_tokens.lock().unwrap().push(guard.fencing_token());
                    lock.is_locked().await.unwrap();
                    occupancy.leave_write();
                    guard.release().await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        timeout(Duration::from_secs(120), t).await.unwrap().unwrap();
    }
    let violations = occupancy.violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "exclusion violated: {violations:?}");
    let write_tokens = write_tokens.lock().unwrap().clone();
    assert_eq!(write_tokens.len(), WRITERS * WRITES);
    assert!(
        write_tokens.windows(2).all(|w| w[0] < w[1]),
        "writers' fencing tokens increase in grant order: {write_tokens:?}"
    );
    let max_readers = occupancy.max_readers.load(Ordering::SeqCst);
    eprintln!("max concurrent readers while writers ran: {max_readers}");
    assert!(max_readers > 1, "readers never overlapped between the writers");
    assert_eq!(queue_len(&rw[0]).await, 0, "everything released");
}

#[tokio::test]
async fn a_reader_behind_a_queued_writer_waits_for_it() {
    let sessions = common::sessions("rw-fifo", 4).await;
    let rw = locks(&sessions, "/fifo/lock");
    let r1 = rw[0].read().await.unwrap();

    let writer_done = Arc::new(AtomicBool::new(false));
    let (w_in_tx, w_in) = oneshot::channel();
    let (w_go, w_go_rx) = oneshot::channel::<()>();
    let writer = {
        let (lock, writer_done) = (rw[1].clone(), writer_done.clone());
        tokio::spawn(async move {
            let guard = lock.write().await.unwrap();
            w_in_tx.send(guard.fencing_token()).unwrap();
            w_go_rx.await.unwrap();
            writer_done.store(true, Ordering::SeqCst);
            guard.release().await.unwrap();
        })
    };
    wait_for_queue(&rw[0], 2, "writer queued behind the first reader").await;

    let reader2 = {
        let (lock, writer_done) = (rw[2].clone(), writer_done.clone());
        tokio::spawn(async move {
            let guard = lock.read().await.unwrap();
            assert!(
                writer_done.load(Ordering::SeqCst),
                "the second reader got in before the writer queued ahead of it"
            );
            guard.fencing_token()
        })
    };
    wait_for_queue(&rw[0], 3, "second reader queued behind the writer").await;
    // The first reader holds, yet a new reader may not join it: a writer waits in between.
    assert!(rw[3].try_read().await.unwrap().is_none());
    assert!(!reader2.is_finished());

    let r1_token = r1.fencing_token();
    r1.release().await.unwrap();
    let w_token = timeout(BOUND, w_in).await.unwrap().unwrap();
    assert!(w_token > r1_token);
    assert!(rw[3].try_read().await.unwrap().is_none(), "the writer holds");
    w_go.send(()).unwrap();
    timeout(BOUND, writer).await.unwrap().unwrap();
    let r2_token = timeout(BOUND, reader2).await.unwrap().unwrap();
    assert!(r2_token > w_token);
}

#[tokio::test]
async fn upgrade_is_refused_at_once_and_sends_nothing() {
    let sessions = common::sessions("rw-upgrade", 2).await;
    let rw = locks(&sessions, "/up/lock");
    let read = rw[0].read().await.unwrap();
    let nested = rw[0].read().await.unwrap();
    for attempt in 0..3 {
        let refused = timeout(Duration::from_secs(2), async {
            match attempt {
                0 => rw[0].write().await.map(drop),
                1 => rw[0].try_write().await.map(drop),
                _ => rw[0].try_write_for(Duration::from_secs(30)).await.map(drop),
            }
        })
        .await
        .expect("an upgrade must not wait");
        match refused {
            Err(Error::UpgradeWouldDeadlock { path }) => assert_eq!(path, "/up/lock"),
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    assert_eq!(queue_len(&rw[1]).await, 1, "no write node was created");
    assert_eq!(rw[0].read_hold_count(), 2);
    assert_eq!(rw[0].write_hold_count(), 0);
    drop(nested);
    read.release().await.unwrap();
    // Without the read lock, the write lock is granted.
    let write = rw[0].write().await.unwrap();
    assert!(rw[0].is_write_locked_by_current_task());
    write.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downgrade_keeps_writers_out_until_the_read_is_released() {
    let sessions = common::sessions("rw-down", 4).await;
    let rw = locks(&sessions, "/down/lock");
    let (a, c, b, d) = (&rw[0], &rw[1], &rw[2], &rw[3]);
    let write = a.write().await.unwrap();

    let write_released = Arc::new(AtomicBool::new(false));
    let read_released = Arc::new(AtomicBool::new(false));
    // A reader of another session queues behind the writer, then a writer behind that reader.
    let (c_in_tx, c_in) = oneshot::channel();
    let (c_go, c_go_rx) = oneshot::channel::<()>();
    let reader = {
        let (c, write_released) = (c.clone(), write_released.clone());
        tokio::spawn(async move {
            let guard = c.read().await.unwrap();
            assert!(
                write_released.load(Ordering::SeqCst),
                "a reader got in while the write lock was held"
            );
            c_in_tx.send(()).unwrap();
            c_go_rx.await.unwrap();
            guard.release().await.unwrap();
        })
    };
    wait_for_queue(a, 2, "reader queued").await;
    let writer = {
        let (b, read_released) = (b.clone(), read_released.clone());
        tokio::spawn(async move {
            let guard = b.write().await.unwrap();
            assert!(
                read_released.load(Ordering::SeqCst),
                "a writer got in while the downgraded read was held"
            );
            guard.release().await.unwrap();
        })
    };
    wait_for_queue(a, 3, "writer queued").await;

    // Downgrade: take the read lock while holding the write lock — in its scope — (one node
    // more, next to the write node), then release the write lock.
    let read = write.scope(a.read()).await.unwrap();
    assert_eq!((a.write_hold_count(), a.read_hold_count()), (1, 1));
    assert_eq!(read.fencing_token(), write.fencing_token());
    assert_eq!(queue_len(a).await, 4);
    assert!(a.is_write_locked().await.unwrap());
    assert!(d.try_read().await.unwrap().is_none(), "still write locked");
    write_released.store(true, Ordering::SeqCst);
    write.release().await.unwrap();
    assert_eq!((a.write_hold_count(), a.read_hold_count()), (0, 1));

    // Readers get in now, while the downgraded read is held …
    timeout(BOUND, c_in).await.unwrap().unwrap();
    assert_eq!(read.state(), HoldState::Held);
    assert!(!a.is_write_locked().await.unwrap());
    let modes: Vec<RwMode> = a.holders().await.unwrap().into_iter().map(|(m, _)| m).collect();
    assert_eq!(modes, [RwMode::Read, RwMode::Read]);
    // … writers do not, not even after the other reader has gone.
    c_go.send(()).unwrap();
    timeout(BOUND, reader).await.unwrap().unwrap();
    assert!(d.try_write().await.unwrap().is_none());
    assert!(!writer.is_finished());
    assert!(
        matches!(a.write().await, Err(Error::UpgradeWouldDeadlock { .. })),
        "a downgraded holder cannot take the write lock back"
    );
    read_released.store(true, Ordering::SeqCst);
    read.release().await.unwrap();
    timeout(BOUND, writer).await.unwrap().unwrap();
    assert_eq!(queue_len(a).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_waiting_right_behind_a_downgrading_writer_stays_out() {
    // The read node of a downgrade appears ahead of a writer that is already waiting on the write
    // node: when the write node goes, that writer must see the read node, not take its turn.
    let sessions = common::sessions("rw-down-next", 3).await;
    let rw = locks(&sessions, "/next/lock");
    let (a, b, d) = (&rw[0], &rw[1], &rw[2]);
    for _ in 0..3 {
        let write = a.write().await.unwrap();
        let read_released = Arc::new(AtomicBool::new(false));
        let writer = {
            let (b, read_released) = (b.clone(), read_released.clone());
            tokio::spawn(async move {
                let guard = b.write().await.unwrap();
                assert!(
                    read_released.load(Ordering::SeqCst),
                    "the waiting writer got in while the downgraded read was held"
                );
                guard.release().await.unwrap();
            })
        };
        wait_for_queue(a, 2, "writer queued right behind").await;
        let read = write.scope(a.read()).await.unwrap();
        write.release().await.unwrap();
        // Round trips on the waiter's own session: its client has seen the write node's deletion
        // (a session's watch events come before later replies) and had time to act on it.
        for _ in 0..5 {
            sessions[1].list_children("/next/lock").await.unwrap();
        }
        assert!(!writer.is_finished());
        assert!(d.try_write().await.unwrap().is_none());
        assert_eq!(
            a.holders()
                .await
                .unwrap()
                .into_iter()
                .map(|(m, _)| m)
                .collect::<Vec<_>>(),
            [RwMode::Read]
        );
        read_released.store(true, Ordering::SeqCst);
        read.release().await.unwrap();
        timeout(BOUND, writer).await.unwrap().unwrap();
    }
    assert_eq!(queue_len(a).await, 0);
}

#[tokio::test]
async fn a_writers_expired_session_lets_the_readers_in() {
    let chroot = mazurka::testkit::unique_chroot("rw-expiry");
    let proxy = FaultProxy::start(common::server().addr()).unwrap();
    let doomed = Session::builder(format!("{}{chroot}", proxy.connect_string()))
        .session_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let mut readers = Vec::new();
    for _ in 0..2 {
        readers.push(
            Session::connect(format!("{}{chroot}", common::server().connect_string()))
                .await
                .unwrap(),
        );
    }
    let observer = readers[0].rw_lock("/x/lock").unwrap();
    let write = doomed.rw_lock("/x/lock").unwrap().write().await.unwrap();
    let mut waiting = Vec::new();
    for session in &readers {
        let lock = session.rw_lock("/x/lock").unwrap();
        waiting.push(tokio::spawn(async move { lock.read().await }));
    }
    wait_for_queue(&observer, 3, "readers queued behind the writer").await;

    expire_session(&doomed, &proxy).await.unwrap();
    let mut guards = Vec::new();
    for w in waiting {
        guards.push(timeout(BOUND, w).await.unwrap().unwrap().unwrap());
    }
    assert_eq!(
        queue_len(&observer).await,
        2,
        "the expired writer's node is gone; both readers hold"
    );
    assert!(!observer.is_write_locked().await.unwrap());
    timeout(BOUND, write.lost()).await.expect("lost() completes");
    assert_eq!(write.state(), HoldState::Lost);
    let stale = write
        .fenced()
        .create("/x/resource", b"stale".to_vec())
        .unwrap()
        .commit()
        .await;
    assert!(
        matches!(stale, Err(Error::NotHeld { .. }) | Err(Error::SessionLost)),
        "{stale:?}"
    );
    assert!(!readers[0].exists("/x/resource").await.unwrap());
    assert!(matches!(write.release().await, Err(Error::SessionLost)));
    for g in guards {
        g.release().await.unwrap();
    }
    // The session goes on with a new ZooKeeper session, and the lock works for it.
    let again = timeout(BOUND, doomed.rw_lock("/x/lock").unwrap().write())
        .await
        .unwrap()
        .unwrap();
    again.release().await.unwrap();
}

#[tokio::test]
async fn reentrant_hold_counts_for_both_sides() {
    let sessions = common::sessions("rw-reentrant", 2).await;
    let rw = locks(&sessions, "/re/lock");
    let (me, other) = (&rw[0], &rw[1]);
    assert_eq!((me.read_hold_count(), me.write_hold_count()), (0, 0));

    // Read side: one node however many holds.
    let r1 = me.read().await.unwrap();
    let r2 = me.read().await.unwrap();
    let r3 = me.try_read().await.unwrap().unwrap();
    assert_eq!(me.read_hold_count(), 3);
    assert_eq!(r1.fencing_token(), r3.fencing_token());
    assert_eq!(r1.node_path(), r2.node_path());
    assert_eq!(queue_len(other).await, 1);
    drop(r2); // out of order
    assert_eq!(me.read_hold_count(), 2);
    r1.release().await.unwrap();
    assert_eq!(me.read_hold_count(), 1);
    assert_eq!(queue_len(other).await, 1, "held while one hold is left");
    r3.release().await.unwrap();
    assert_eq!(me.read_hold_count(), 0);
    assert_eq!(queue_len(other).await, 0);

    // Write side, and reads inside it.
    // (In the write hold's scope: write re-entry is scoped.)
    let w1 = me.write().await.unwrap();
    let w2 = w1.scope(me.write()).await.unwrap();
    let w3 = w1
        .scope(me.try_write_for(Duration::from_millis(1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(me.write_hold_count(), 3);
    assert_eq!(w1.fencing_token(), w3.fencing_token());
    let r1 = w1.scope(me.read()).await.unwrap();
    let r2 = w1.scope(me.try_read()).await.unwrap().unwrap();
    assert_eq!((me.write_hold_count(), me.read_hold_count()), (3, 2));
    assert_eq!(queue_len(other).await, 2, "a write node and one read node");
    assert!(me.is_write_locked_by_current_task());
    assert!(other.try_read().await.unwrap().is_none());

    // Another task of this process is another owner.
    let lock = me.clone();
    let (counts, tried) = tokio::spawn(async move {
        let counts = (lock.read_hold_count(), lock.write_hold_count());
        (counts, lock.try_write().await.unwrap().is_some())
    })
    .await
    .unwrap();
    assert_eq!(counts, (0, 0));
    assert!(!tried);

    for g in [w1, w2, w3] {
        g.release().await.unwrap();
    }
    assert_eq!((me.write_hold_count(), me.read_hold_count()), (0, 2));
    assert!(!me.is_write_locked_by_current_task());
    assert_eq!(queue_len(other).await, 1);
    // A reader of another session shares the downgraded hold.
    let theirs = other.try_read().await.unwrap().expect("readers share");
    theirs.release().await.unwrap();
    r1.release().await.unwrap();
    r2.release().await.unwrap();
    assert_eq!(queue_len(other).await, 0);
}

#[tokio::test]
async fn dropped_waiting_futures_leave_no_node() {
    let sessions = common::sessions("rw-cancel", 3).await;
    let rw = locks(&sessions, "/cancel/lock");
    let holder = &rw[0];
    let write = holder.write().await.unwrap();
    let mut waiters = Vec::new();
    for session in &sessions[1..] {
        for i in 0..4 {
            let lock = session.rw_lock("/cancel/lock").unwrap();
            waiters.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    lock.read().await.map(drop)
                } else {
                    lock.write().await.map(drop)
                }
            }));
        }
    }
    wait_for_queue(holder, 9, "all waiters queued").await;
    for w in &waiters {
        w.abort();
    }
    wait_for_queue(holder, 1, "cancelled waiters removed their nodes").await;

    // Futures dropped right after their first poll (create in flight) leave nothing either.
    for _ in 0..10 {
        let lock = sessions[1].rw_lock("/cancel/lock").unwrap();
        let _ = timeout(Duration::from_micros(1), lock.read()).await;
        let _ = timeout(Duration::from_micros(1), lock.write()).await;
    }
    // So does a downgrade (the read node of the write holder) dropped in flight.
    for _ in 0..10 {
        let _ = timeout(Duration::from_micros(1), holder.read()).await;
    }
    wait_for_queue(holder, 1, "in-flight creates swept").await;
    assert_eq!(holder.read_hold_count(), 0);
    assert_eq!(write.state(), HoldState::Held);
    write.release().await.unwrap();
    assert_eq!(queue_len(holder).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_read_and_try_write_leave_no_node() {
    const N: usize = 5;
    let sessions = common::sessions("rw-try", N + 1).await;
    let rw = locks(&sessions, "/try/lock");

    // Under a writer: every try fails and leaves nothing.
    let write = rw[N].write().await.unwrap();
    for lock in &rw[..N] {
        assert!(lock.try_read().await.unwrap().is_none());
        assert!(lock.try_write().await.unwrap().is_none());
    }
    let started = Instant::now();
    assert!(rw[0]
        .try_read_for(Duration::from_millis(300))
        .await
        .unwrap()
        .is_none());
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "gave up early: {took:?}");
    assert!(took < Duration::from_secs(3), "bound not respected: {took:?}");
    assert!(rw[0]
        .try_write_for(Duration::from_millis(100))
        .await
        .unwrap()
        .is_none());
    assert_eq!(queue_len(&rw[N]).await, 1, "only the writer's node");
    write.release().await.unwrap();

    // Free: all try_read succeed together; try_write fails under them and leaves nothing.
    let barrier = Arc::new(Barrier::new(N));
    let mut tasks = Vec::new();
    for lock in &rw[..N] {
        let (lock, barrier) = (lock.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let got = lock.try_read().await.unwrap();
            barrier.wait().await;
            let queue = queue_len(&lock).await;
            barrier.wait().await;
            let held = got.is_some();
            if let Some(g) = got {
                g.release().await.unwrap();
            }
            (held, queue)
        }));
    }
    for t in tasks {
        let (held, queue) = t.await.unwrap();
        assert!(held, "a free lock is shared by every try_read");
        assert_eq!(queue, N);
    }
    let read = rw[0].read().await.unwrap();
    assert!(rw[1].try_write().await.unwrap().is_none());
    assert_eq!(queue_len(&rw[1]).await, 1);
    // And within a bound, it is granted when the readers go.
    let waiter = {
        let lock = rw[1].clone();
        tokio::spawn(async move {
            lock.try_write_for(BOUND)
                .await
                .unwrap()
                .map(|g| g.fencing_token())
        })
    };
    wait_for_queue(&rw[1], 2, "timed writer queued").await;
    read.release().await.unwrap();
    assert!(timeout(BOUND, waiter).await.unwrap().unwrap().is_some());
    assert_eq!(queue_len(&rw[1]).await, 0);
}

#[tokio::test]
async fn holders_name_the_holders_and_their_side() {
    let sessions = common::sessions("rw-holders", 2).await;
    let rw = locks(&sessions, "/h/lock");
    assert!(rw[0].holders().await.unwrap().is_empty());
    assert!(!rw[0].is_locked().await.unwrap());

    let r0 = rw[0].read().await.unwrap();
    let r1 = rw[1].read().await.unwrap();
    let mut holders = rw[0].holders().await.unwrap();
    holders.sort_by(|a, b| a.1.session.cmp(&b.1.session));
    let mut expected = vec![
        format!("{:#x}", sessions[0].id()),
        format!("{:#x}", sessions[1].id()),
    ];
    expected.sort();
    assert_eq!(
        holders.iter().map(|(_, h)| h.session.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(holders
        .iter()
        .all(|(m, h)| *m == RwMode::Read && h.pid == std::process::id()));
    assert!(rw[0].is_locked().await.unwrap());
    assert!(!rw[0].is_write_locked().await.unwrap());
    r0.release().await.unwrap();
    r1.release().await.unwrap();

    let w = rw[1].write().await.unwrap();
    let holders = rw[0].holders().await.unwrap();
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0].0, RwMode::Write);
    assert_eq!(holders[0].1.session, format!("{:#x}", sessions[1].id()));
    assert!(rw[0].is_write_locked().await.unwrap());
    w.release().await.unwrap();
}

#[tokio::test]
async fn fenced_writes_commit_only_while_held() {
    let sessions = common::sessions("rw-fenced", 2).await;
    let rw = locks(&sessions, "/f/lock");
    let write = rw[0].write().await.unwrap();
    write
        .fenced()
        .create("/f/resource", b"v1".to_vec())
        .unwrap()
        .commit()
        .await
        .unwrap();
    let read = write.scope(rw[0].read()).await.unwrap();
    write.release().await.unwrap();
    // The downgraded read still fences (its own node is checked).
    read.fenced()
        .check("/f/resource", 0)
        .unwrap()
        .commit()
        .await
        .unwrap();
    let theirs = rw[1].read().await.unwrap();
    let path = read.node_path().to_owned();
    read.release().await.unwrap();
    assert!(!sessions[0].exists(&path).await.unwrap());
    theirs
        .fenced()
        .set("/f/resource", b"v2".to_vec())
        .unwrap()
        .commit()
        .await
        .unwrap();
    theirs.release().await.unwrap();
}

#[tokio::test]
async fn dropping_guards_releases_in_the_background() {
    let sessions = common::sessions("rw-drop", 2).await;
    let rw = locks(&sessions, "/drop/lock");
    {
        let _read = rw[0].read().await.unwrap();
    }
    let w = timeout(BOUND, rw[1].write()).await.unwrap().unwrap();
    drop(w);
    // Dropped off any runtime: no panic, and the release still happens.
    let write = rw[0].write().await.unwrap();
    let read = write.scope(rw[0].read()).await.unwrap();
    std::thread::spawn(move || {
        drop(write);
        drop(read);
    })
    .join()
    .unwrap();
    let w = timeout(BOUND, rw[1].write()).await.unwrap().unwrap();
    w.release().await.unwrap();
    assert_eq!(queue_len(&rw[1]).await, 0);
}

#[tokio::test]
async fn a_downgrade_whose_reply_is_lost_is_found_again() {
    let chroot = mazurka::testkit::unique_chroot("rw-lost-reply");
    let proxy = FaultProxy::start(common::server().addr()).unwrap();
    let flaky = Session::builder(format!("{}{chroot}", proxy.connect_string()))
        .session_timeout(Duration::from_secs(4))
        .connect()
        .await
        .unwrap();
    let steady = Session::connect(format!("{}{chroot}", common::server().connect_string()))
        .await
        .unwrap();
    let observer = steady.rw_lock("/l/lock").unwrap();
    let lock = flaky.rw_lock("/l/lock").unwrap();
    for _ in 0..3 {
        let (held_tx, held_rx) = oneshot::channel::<()>();
        let (go_tx, go_rx) = oneshot::channel::<()>();
        let (read_tx, read_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let task = {
            let lock = lock.clone();
            tokio::spawn(async move {
                // One task: the downgrade is the write holder's.
                let write = lock.write().await.unwrap();
                held_tx.send(()).unwrap();
                go_rx.await.unwrap();
                let read = write.scope(lock.read()).await;
                read_tx.send(read.is_ok()).unwrap();
                done_rx.await.unwrap();
                write.release().await.unwrap();
                read.unwrap().release().await.unwrap();
            })
        };
        timeout(BOUND, held_rx).await.unwrap().unwrap();
        proxy.stall_replies();
        go_tx.send(()).unwrap();
        wait_for_queue(&observer, 2, "the read node created on the server").await;
        proxy.cut();
        proxy.heal();
        assert!(
            timeout(BOUND, read_rx).await.unwrap().unwrap(),
            "downgrade succeeded"
        );
        assert_eq!(queue_len(&observer).await, 2, "adopted, not duplicated");
        done_tx.send(()).unwrap();
        timeout(BOUND, task).await.unwrap().unwrap();
        assert_eq!(queue_len(&observer).await, 0);
    }
}

#[tokio::test]
async fn lock_macro_read_and_write_forms() {
    let sessions = common::sessions("rw-macro", 2).await;
    let (a, b) = (&sessions[0], &sessions[1]);
    let observer = b.rw_lock("/m/rw").unwrap();

    // Readers of two sessions inside at once.
    let theirs = observer.read().await.unwrap();
    let n = lock!(read a, "/m/rw" => { queue_len(&observer).await }).unwrap();
    assert_eq!(n, 2);
    let busy = lock!(write try a, "/m/rw" => { "wrote" } else { "busy" }).unwrap();
    assert_eq!(busy, "busy");
    let none: Option<()> = lock!(write a, "/m/rw", timeout = Duration::from_millis(100) => {}).unwrap();
    assert_eq!(none, None);
    theirs.release().await.unwrap();
    assert_eq!(queue_len(&observer).await, 0, "no node left behind");

    // With a lock value: write, then a read nested inside (downgrade), released on every exit.
    let rw = a.rw_lock("/m/rw").unwrap();
    let inner = lock!(write &rw => {
        assert!(rw.is_write_locked_by_current_task());
        let inner = lock!(read &rw => { (rw.write_hold_count(), rw.read_hold_count()) });
        assert!(observer.try_read().await.unwrap().is_none());
        inner
    })
    .unwrap()
    .unwrap();
    assert_eq!(inner, (1, 1));
    assert_eq!((rw.write_hold_count(), rw.read_hold_count()), (0, 0));
    assert_eq!(queue_len(&observer).await, 0);

    // An upgrade inside a read block is refused, and the block's value still comes out.
    let refused = lock!(read try rw.clone() => {
        lock!(write &rw => {}).map_err(|e| e.to_string())
    } else {
        Ok(())
    })
    .unwrap();
    assert!(refused.is_err_and(|e| e.contains("read lock")));
    assert_eq!(queue_len(&observer).await, 0);
}
