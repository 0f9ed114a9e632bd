//! Re-entry is scoped to the future that holds (issue 12, defect 5): futures that run
//! concurrently in one tokio task (`join!`, `select!`, `FuturesUnordered`) exclude each other like
//! tasks do, while code inside a hold's scope (a `lock!` block, `guard.scope(…)`) re-enters it.
//!
//! Each contention test lets a second future ask for the lock only once the first holds it (a
//! `Notify`), and the holder stays in its critical section until the second is either queued
//! behind it (seen from another session) or inside with it (the defect): it never waits on a
//! clock. An in-process count of the futures inside their critical sections must never exceed 1.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use mazurka::testkit::{expire_session, unique_chroot, FaultProxy};
use mazurka::{lock, DistributedRwLock, Error, HoldState, Session};
use tokio::sync::Notify;
use tokio::time::timeout;

const BOUND: Duration = Duration::from_secs(20);

/// How many futures are inside their critical sections now, and the most there ever were.
#[derive(Default)]
struct Inside {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Inside {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

/// A critical section across await points: counted in, then kept until `queued` contenders wait
/// in the lock's queue behind this holder (seen by `observer`, one request per turn, each an
/// await point where sibling futures run) or another future has been inside too; then counted
/// out.
async fn critical(inside: &Inside, queued: usize, observer: impl AsyncFn() -> usize) {
    inside.enter();
    while inside.max() < 2 && observer().await < 1 + queued {}
    // A few more turns for a sibling that shares the hold to show itself.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    inside.leave();
}

async fn sessions(prefix: &str) -> (Session, Session) {
    let mut s = common::sessions(prefix, 2).await;
    (s.remove(0), s.remove(0))
}

// ---------------------------------------------------------------------------------------------
// The exclusive lock: siblings of one task exclude each other.

#[tokio::test]
async fn joined_futures_of_one_task_take_turns() {
    let (session, observer) = sessions("reentry-join").await;
    let lock = session.lock("/r/lock").unwrap();
    let theirs = observer.lock("/r/lock").unwrap();
    let (inside, held) = (Inside::default(), Notify::new());
    let queue = async || theirs.queue_len().await.unwrap();
    let first = async {
        let guard = lock.lock().await.unwrap();
        held.notify_one();
        critical(&inside, 1, queue).await;
        guard.release().await.unwrap();
    };
    let second = async {
        held.notified().await;
        let guard = lock.lock().await.unwrap();
        critical(&inside, 0, queue).await;
        guard.release().await.unwrap();
    };
    timeout(BOUND, async { tokio::join!(first, second) })
        .await
        .unwrap();
    assert_eq!(inside.max(), 1, "two joined futures held the lock at once");
    assert_eq!(theirs.queue_len().await.unwrap(), 0);
    assert_eq!(lock.hold_count(), 0);
}

#[tokio::test]
async fn a_selected_branch_waits_for_its_sibling_and_leaves_no_node_when_dropped() {
    let (session, observer) = sessions("reentry-select").await;
    let lock = session.lock("/r/lock").unwrap();
    let theirs = observer.lock("/r/lock").unwrap();
    let (inside, held) = (Inside::default(), Notify::new());
    let queue = async || theirs.queue_len().await.unwrap();
    let winner = timeout(BOUND, async {
        tokio::select! {
            () = async {
                let guard = lock.lock().await.unwrap();
                held.notify_one();
                critical(&inside, 1, queue).await;
                guard.release().await.unwrap();
            } => "holder",
            () = async {
                held.notified().await;
                let guard = lock.lock().await.unwrap();
                critical(&inside, 0, queue).await;
                guard.release().await.unwrap();
            } => "sibling",
        }
    })
    .await
    .unwrap();
    assert_eq!(inside.max(), 1, "two branches of a select! held the lock at once");
    assert_eq!(winner, "holder", "the sibling can only hold after the holder");
    // The sibling's pending lock() was dropped with the select!: its node goes too.
    common::eventually(10, "no node left", || async {
        theirs.queue_len().await.unwrap() == 0
    })
    .await;
    assert_eq!(lock.hold_count(), 0);
}

#[tokio::test]
async fn futures_unordered_of_one_task_take_turns() {
    const FUTURES: usize = 4;
    let (session, observer) = sessions("reentry-unordered").await;
    let lock = session.lock("/r/lock").unwrap();
    let theirs = observer.lock("/r/lock").unwrap();
    let (inside, held, done) = (Inside::default(), Notify::new(), AtomicUsize::new(0));
    let queue = async || theirs.queue_len().await.unwrap();
    let mut all = FuturesUnordered::new();
    for i in 0..FUTURES {
        let (lock, inside, held, done) = (&lock, &inside, &held, &done);
        all.push(async move {
            if i > 0 {
                // Ask only while the first one holds.
                held.notified().await;
            }
            let guard = lock.lock().await.unwrap();
            if i == 0 {
                held.notify_waiters();
                critical(inside, FUTURES - 1, queue).await;
            } else {
                critical(inside, 0, queue).await;
            }
            guard.release().await.unwrap();
            done.fetch_add(1, Ordering::SeqCst);
        });
    }
    timeout(BOUND, async { while all.next().await.is_some() {} })
        .await
        .unwrap();
    assert_eq!(
        inside.max(),
        1,
        "futures of one FuturesUnordered held the lock at once"
    );
    assert_eq!(done.load(Ordering::SeqCst), FUTURES, "every future had its turn");
    assert_eq!(theirs.queue_len().await.unwrap(), 0);
}

#[tokio::test]
async fn lock_blocks_joined_in_one_task_take_turns() {
    let (session, observer) = sessions("reentry-macro").await;
    let lock = session.lock("/r/lock").unwrap();
    let theirs = observer.lock("/r/lock").unwrap();
    let (inside, held) = (Inside::default(), Notify::new());
    let queue = async || theirs.queue_len().await.unwrap();
    // `lock!` awaits: each branch is an `async` block around one.
    let first = async {
        lock!(&lock => {
            held.notify_one();
            critical(&inside, 1, queue).await;
        })
    };
    let second = async {
        held.notified().await;
        lock!(&lock => { critical(&inside, 0, queue).await })
    };
    let (a, b) = timeout(BOUND, async { tokio::join!(first, second) })
        .await
        .unwrap();
    a.unwrap();
    b.unwrap();
    assert_eq!(inside.max(), 1, "two joined lock! blocks ran at once");
    assert_eq!(theirs.queue_len().await.unwrap(), 0);
}

/// Nested code outside the holder's scope is not the holder: it queues (here: `try_lock` finds
/// the lock taken), where once it was handed a hold merely for running in the holder's task.
#[tokio::test]
async fn outside_a_scope_the_holders_task_queues() {
    let (session, observer) = sessions("reentry-outside").await;
    let lock = session.lock("/r/lock").unwrap();
    let theirs = observer.lock("/r/lock").unwrap();
    let guard = lock.lock().await.unwrap();
    assert!(
        lock.try_lock().await.unwrap().is_none(),
        "not in the hold's scope"
    );
    assert!(lock
        .try_lock_for(Duration::from_millis(100))
        .await
        .unwrap()
        .is_none());
    assert_eq!(theirs.queue_len().await.unwrap(), 1, "the attempts left no node");
    assert_eq!(lock.hold_count(), 1);
    guard.release().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Inside a scope: re-entry, as before.

#[tokio::test]
async fn inside_a_scope_lock_re_enters_the_hold() {
    let (session, observer) = sessions("reentry-scope").await;
    let lock = session.lock("/r/lock").unwrap();
    let theirs = observer.lock("/r/lock").unwrap();
    let guard = lock.lock().await.unwrap();
    let token = guard.fencing_token();
    let nested = guard
        .scope(async {
            let again = lock.lock().await.unwrap();
            let tried = lock.try_lock().await.unwrap().unwrap();
            assert_eq!(again.fencing_token(), token, "same node, same token");
            assert_eq!(tried.fencing_token(), token);
            assert_eq!(lock.hold_count(), 3);
            // Scopes nest, through lock! too.
            let inner = lock!(&lock => { lock.hold_count() }).unwrap();
            assert_eq!(inner, 4);
            tried.release().await.unwrap();
            again
        })
        .await;
    // A guard taken inside may leave the scope; it is a hold like any other.
    assert_eq!(lock.hold_count(), 2);
    assert_eq!(theirs.queue_len().await.unwrap(), 1, "re-entry sent no create");
    nested.release().await.unwrap();
    guard.release().await.unwrap();
    assert_eq!(theirs.queue_len().await.unwrap(), 0);
}

/// Futures that a scope's own future runs concurrently are part of the holder: they share its
/// hold, knowingly (documented).
#[tokio::test]
async fn futures_joined_inside_a_scope_share_the_hold() {
    let (session, observer) = sessions("reentry-inner-join").await;
    let lock = session.lock("/r/lock").unwrap();
    let theirs = observer.lock("/r/lock").unwrap();
    let tokens = lock!(&lock => {
        let (a, b) = tokio::join!(lock.lock(), lock.lock());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(lock.hold_count(), 3);
        (a.fencing_token(), b.fencing_token())
    })
    .unwrap();
    assert_eq!(tokens.0, tokens.1);
    assert_eq!(theirs.queue_len().await.unwrap(), 0);
}

/// A scope's future may run on another task (the guard's owner hands it over explicitly); plain
/// code of that task is still not the holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_spawned_on_another_task_re_enters_there() {
    let (session, observer) = sessions("reentry-spawned").await;
    let lock = session.lock("/r/lock").unwrap();
    let theirs = observer.lock("/r/lock").unwrap();
    let guard = lock.lock().await.unwrap();
    let token = guard.fencing_token();
    let scoped = {
        let lock = lock.clone();
        guard.scope(async move {
            let nested = lock.lock().await.unwrap();
            (nested.fencing_token(), lock.hold_count())
        })
    };
    assert_eq!(tokio::spawn(scoped).await.unwrap(), (token, 2));
    let plain = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.try_lock().await.unwrap().is_some() })
    };
    assert!(!plain.await.unwrap(), "another task outside the scope queues");
    assert_eq!(lock.hold_count(), 1);
    guard.release().await.unwrap();
    assert_eq!(theirs.queue_len().await.unwrap(), 0);
}

/// A hold that is given up while its scope runs is not re-entered there: `lock()` in the scope is
/// then a new acquisition, queued.
#[tokio::test]
async fn a_released_hold_is_not_re_entered_by_its_scope() {
    let (session, observer) = sessions("reentry-released").await;
    let lock = session.lock("/r/lock").unwrap();
    let theirs = observer.lock("/r/lock").unwrap();
    let guard = lock.lock().await.unwrap();
    let first = guard.fencing_token();
    let scope = guard.scope(async {
        let again = lock.lock().await.unwrap();
        let token = again.fencing_token();
        again.release().await.unwrap();
        token
    });
    guard.release().await.unwrap();
    let second = timeout(BOUND, scope).await.unwrap();
    assert!(second > first, "a new acquisition, with a new node");
    assert_eq!(theirs.queue_len().await.unwrap(), 0);
}

/// In the scope of a hold that was lost, the block's critical section is over: `lock()` says so,
/// rather than starting a second critical section in the middle of the block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_in_the_scope_of_a_lost_hold_is_session_lost() {
    let chroot = unique_chroot("reentry-lost");
    let proxy = FaultProxy::start(common::server().addr()).unwrap();
    let session = Session::builder(format!("{}{chroot}", proxy.connect_string()))
        .session_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let lock = session.lock("/r/lock").unwrap();
    let guard = lock.lock().await.unwrap();
    let outcome = guard
        .scope(async {
            expire_session(&session, &proxy).await.unwrap();
            lock.lock().await.map(|_| ())
        })
        .await;
    assert!(matches!(outcome, Err(Error::SessionLost)), "{outcome:?}");
    assert_eq!(guard.state(), HoldState::Lost);
    // Outside the scope, the session's new ZooKeeper session takes the lock as usual.
    drop(guard);
    let again = timeout(BOUND, lock.lock()).await.unwrap().unwrap();
    again.release().await.unwrap();
}

/// A condition wait inside a scope gives the lock up: a sibling future outside the scope takes it
/// (like another task would), signals, and the wait takes the lock back with its holds restored.
#[tokio::test]
async fn a_sibling_takes_the_lock_while_a_scope_waits_on_a_condition() {
    let (session, observer) = sessions("reentry-cond").await;
    let lock = session.lock("/r/lock").unwrap();
    let theirs = observer.lock("/r/lock").unwrap();
    let cond = lock.new_condition("c").unwrap();
    let waiting = Notify::new();
    let waiter = async {
        lock!(&lock => {
            let mut nested = lock.lock().await.unwrap();
            waiting.notify_one();
            let signalled = cond.wait_for(&mut nested, BOUND).await.unwrap();
            (signalled, lock.hold_count())
        })
    };
    let signaller = async {
        waiting.notified().await;
        // Queues while the waiter still holds; gets the lock once the wait gave it up.
        let guard = lock.lock().await.unwrap();
        assert_eq!(
            lock.hold_count(),
            1,
            "outside the waiter's scope: the task's own hold"
        );
        assert!(cond.signal().await.unwrap());
        guard.release().await.unwrap();
    };
    let (waited, ()) = timeout(BOUND, async { tokio::join!(waiter, signaller) })
        .await
        .unwrap();
    assert_eq!(waited.unwrap(), (true, 2), "signalled, both holds restored");
    assert_eq!(theirs.queue_len().await.unwrap(), 0);
}

// ---------------------------------------------------------------------------------------------
// The read-write lock.

async fn rw_pair(prefix: &str) -> (DistributedRwLock, DistributedRwLock) {
    let (session, observer) = sessions(prefix).await;
    (
        session.rw_lock("/r/rw").unwrap(),
        observer.rw_lock("/r/rw").unwrap(),
    )
}

#[tokio::test]
async fn joined_writers_of_one_task_take_turns() {
    let (rw, theirs) = rw_pair("reentry-rw-join").await;
    let (inside, held) = (Inside::default(), Notify::new());
    let queue = async || theirs.queue_len().await.unwrap();
    let first = async {
        let guard = rw.write().await.unwrap();
        held.notify_one();
        critical(&inside, 1, queue).await;
        guard.release().await.unwrap();
    };
    let second = async {
        held.notified().await;
        let guard = rw.write().await.unwrap();
        critical(&inside, 0, queue).await;
        guard.release().await.unwrap();
    };
    timeout(BOUND, async { tokio::join!(first, second) })
        .await
        .unwrap();
    assert_eq!(inside.max(), 1, "two joined futures held the write lock at once");
    assert_eq!(theirs.queue_len().await.unwrap(), 0);
}

/// A reader joined with a writer of the same task waits for the writer: it must not be handed a
/// downgrade (a read hold next to the write hold) just for sharing the writer's task.
#[tokio::test]
async fn a_joined_reader_waits_for_the_writer_of_its_task() {
    let (rw, theirs) = rw_pair("reentry-rw-downgrade").await;
    let (inside, held) = (Inside::default(), Notify::new());
    let queue = async || theirs.queue_len().await.unwrap();
    let writer = async {
        let guard = rw.write().await.unwrap();
        held.notify_one();
        critical(&inside, 1, queue).await;
        guard.release().await.unwrap();
    };
    let reader = async {
        held.notified().await;
        let guard = rw.read().await.unwrap();
        critical(&inside, 0, queue).await;
        guard.release().await.unwrap();
    };
    timeout(BOUND, async { tokio::join!(writer, reader) })
        .await
        .unwrap();
    assert_eq!(inside.max(), 1, "a reader held the lock with the writer");
    assert_eq!(theirs.queue_len().await.unwrap(), 0);
}

#[tokio::test]
async fn write_blocks_of_select_branches_take_turns() {
    let (rw, theirs) = rw_pair("reentry-rw-select").await;
    let (inside, held) = (Inside::default(), Notify::new());
    let queue = async || theirs.queue_len().await.unwrap();
    let winner = timeout(BOUND, async {
        tokio::select! {
            r = async {
                lock!(write &rw => {
                    held.notify_one();
                    critical(&inside, 1, queue).await;
                })
            } => { r.unwrap(); "holder" },
            r = async {
                held.notified().await;
                lock!(write &rw => { critical(&inside, 0, queue).await })
            } => { r.unwrap(); "sibling" },
        }
    })
    .await
    .unwrap();
    assert_eq!(inside.max(), 1, "two write blocks ran at once");
    assert_eq!(winner, "holder");
    common::eventually(10, "no node left", || async {
        theirs.queue_len().await.unwrap() == 0
    })
    .await;
}

/// Read re-entry: read holds are shared by the holder's task (readers share the lock anyway), so
/// joined readers of one task hold one node together, and neither queues behind a writer.
#[tokio::test]
async fn joined_readers_of_one_task_share_one_read_hold() {
    let (rw, theirs) = rw_pair("reentry-rw-readers").await;
    let (inside, held) = (Inside::default(), Notify::new());
    let first = async {
        let guard = rw.read().await.unwrap();
        held.notify_one();
        inside.enter();
        // Stays until the other reader has been in too (two readers at once is the point).
        while inside.max() < 2 {
            tokio::task::yield_now().await;
        }
        inside.leave();
        guard.release().await.unwrap();
    };
    let second = async {
        held.notified().await;
        let guard = rw.read().await.unwrap();
        assert_eq!(rw.read_hold_count(), 2, "the task's read hold, re-entered");
        inside.enter();
        inside.leave();
        guard.release().await.unwrap();
    };
    timeout(BOUND, async { tokio::join!(first, second) })
        .await
        .unwrap();
    assert_eq!(inside.max(), 2);
    assert_eq!(theirs.queue_len().await.unwrap(), 0);
}

/// In the write hold's scope, write re-enters and read downgrades, as before; outside it, a
/// sibling's write queues, and a read holder's write is refused.
#[tokio::test]
async fn in_the_write_scope_write_re_enters_and_read_downgrades() {
    let (rw, theirs) = rw_pair("reentry-rw-scope").await;
    let w = rw.write().await.unwrap();
    let token = w.fencing_token();
    assert!(
        rw.try_write().await.unwrap().is_none(),
        "outside the scope: queued"
    );
    assert!(
        rw.try_read().await.unwrap().is_none(),
        "no downgrade outside the scope"
    );
    let r = w
        .scope(async {
            let again = rw.write().await.unwrap();
            assert_eq!(again.fencing_token(), token);
            assert_eq!(rw.write_hold_count(), 2);
            again.release().await.unwrap();
            let r = rw.read().await.unwrap();
            assert_eq!(r.fencing_token(), token, "a downgrade continues the write hold");
            r
        })
        .await;
    assert_eq!(
        theirs.queue_len().await.unwrap(),
        2,
        "the write node and its read node"
    );
    // The task holds the read lock now: outside the write scope, its futures cannot be told from
    // the reader, whose write would wait for itself — refused, before and after the write goes.
    assert!(matches!(
        rw.try_write().await,
        Err(Error::UpgradeWouldDeadlock { .. })
    ));
    assert_eq!(rw.read_hold_count(), 1, "the task's read hold");
    w.release().await.unwrap();
    assert!(matches!(
        rw.write().await,
        Err(Error::UpgradeWouldDeadlock { .. })
    ));
    assert!(matches!(
        r.scope(rw.write()).await,
        Err(Error::UpgradeWouldDeadlock { .. })
    ));
    r.release().await.unwrap();
    assert_eq!(theirs.queue_len().await.unwrap(), 0);
}
