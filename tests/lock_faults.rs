//! The lock under the faults a fault campaign found it wanting in: a waiter frozen past its
//! session's expiry, a holder cut off from the server (the client's own clock), a session
//! replaced while `lock()` runs. Each against a real ZooKeeper server.

mod common;

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use mazurka::testkit::{expire_session, unique_chroot, FaultProxy};
use mazurka::{Error, HoldState, Session, SessionState};
use tokio::time::{timeout, Instant};

const BOUND: Duration = Duration::from_secs(20);

/// A waiter on a runtime (and thread) of its own, which the test can freeze as SIGSTOP would:
/// nothing of its session runs meanwhile — not the ZooKeeper client, not the supervisor.
struct FrozenWaiter {
    freeze: tokio::sync::mpsc::UnboundedSender<()>,
    frozen: mpsc::Receiver<()>,
    outcome: mpsc::Receiver<Result<i64, Error>>,
    thread: std::thread::JoinHandle<()>,
}

impl FrozenWaiter {
    /// Starts a session (timeout 1 s) on `connect` and a `lock()` of `path` on it.
    fn start(connect: String, path: &'static str, gate: Arc<Mutex<()>>) -> FrozenWaiter {
        let (freeze, mut freeze_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let (frozen_tx, frozen) = mpsc::channel();
        let (outcome_tx, outcome) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let session = Session::builder(connect)
                    .session_timeout(Duration::from_secs(1))
                    .connect()
                    .await
                    .unwrap();
                // The freezer: on command, blocks this runtime's only thread on the gate the test
                // holds, until the test lets go.
                tokio::spawn(async move {
                    while freeze_rx.recv().await.is_some() {
                        let _ = frozen_tx.send(());
                        let _blocked = gate.lock();
                    }
                });
                let outcome = session
                    .lock(path)
                    .unwrap()
                    .lock()
                    .await
                    .map(|guard| guard.fencing_token());
                let _ = outcome_tx.send(outcome);
                session.close().await.unwrap();
            });
        });
        FrozenWaiter {
            freeze,
            frozen,
            outcome,
            thread,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The gate is held across awaits on purpose: it is what keeps the waiter's thread frozen.
#[allow(clippy::await_holding_lock)]
async fn a_waiter_frozen_past_its_session_expiry_while_the_holder_releases_gets_session_lost() {
    // The deletion of the node ahead reaches the frozen waiter's socket before its session
    // expires; on thawing, the client reads that event before it learns of the expiry. Taking
    // the turn on the event alone handed out a guard for a node the server had already deleted.
    for round in 0..4 {
        let chroot = unique_chroot("frozen-waiter");
        let holder = common::direct(&chroot).await;
        let observer = holder.lock("/z/lock").unwrap();
        let guard = observer.lock().await.unwrap();

        let gate = Arc::new(Mutex::new(()));
        let waiter = FrozenWaiter::start(
            format!("{}{chroot}", common::server().connect_string()),
            "/z/lock",
            gate.clone(),
        );
        common::eventually(10, "waiter queued", || async {
            observer.queue_len().await.unwrap() == 2
        })
        .await;

        let held_gate = gate.lock().unwrap();
        waiter.freeze.send(()).unwrap();
        waiter.frozen.recv().unwrap();
        guard.release().await.unwrap(); // the event is in the frozen waiter's socket now
        common::eventually(
            20,
            "the frozen waiter's session expired on the server",
            || async { observer.queue_len().await.unwrap() == 0 },
        )
        .await;
        drop(held_gate);

        let outcome = tokio::task::spawn_blocking(move || waiter.outcome.recv_timeout(BOUND))
            .await
            .unwrap()
            .expect("the thawed waiter answers");
        assert!(
            matches!(outcome, Err(Error::SessionLost)),
            "round {round}: a waiter whose session expired got {outcome:?}"
        );
        waiter.thread.join().unwrap();
        // The lock is free: nothing of the waiter's is left in the queue.
        let next = timeout(BOUND, observer.lock()).await.unwrap().unwrap();
        assert_eq!(observer.queue_len().await.unwrap(), 1);
        next.release().await.unwrap();
    }
}

#[tokio::test]
async fn a_holder_cut_off_counts_its_lock_lost_by_its_own_clock_before_the_next_waiter_holds() {
    let chroot = unique_chroot("own-clock");
    let proxy = FaultProxy::start(common::server().addr()).unwrap();
    let holder = common::proxied(&proxy, &chroot, Duration::from_secs(2)).await;
    let waiter = common::direct(&chroot).await;
    let session_timeout = holder.session_timeout();
    let old_id = holder.id();

    let guard = holder.lock("/o/lock").unwrap().lock().await.unwrap();
    let theirs = waiter.lock("/o/lock").unwrap();
    let next = tokio::spawn(async move { theirs.lock().await.map(|g| (Instant::now(), g)) });
    let observer = waiter.lock("/o/lock").unwrap();
    common::eventually(10, "waiter queued", || async {
        observer.queue_len().await.unwrap() == 2
    })
    .await;

    // The last message from the server came before this instant.
    let silent_from = Instant::now();
    proxy.stall();
    timeout(BOUND, guard.lost())
        .await
        .expect("lost() completes while still cut off");
    let lost_at = Instant::now();
    assert!(
        lost_at - silent_from <= session_timeout,
        "lost after {:?}, later than the session timeout {session_timeout:?}",
        lost_at - silent_from
    );
    assert_eq!(guard.state(), HoldState::Lost);
    // Refused here, without a word to the server (which cannot be reached).
    let attempt = timeout(
        Duration::from_secs(1),
        guard
            .fenced()
            .create("/o/resource", b"late".to_vec())
            .unwrap()
            .commit(),
    )
    .await
    .expect("a fenced write of a lost hold is refused locally");
    assert!(matches!(attempt, Err(Error::SessionLost)), "{attempt:?}");

    let (acquired_at, their_guard) = timeout(BOUND, next).await.unwrap().unwrap().unwrap();
    assert!(
        acquired_at > lost_at,
        "the next waiter held the lock {:?} before the cut-off holder knew it had lost it",
        lost_at - acquired_at
    );
    proxy.heal();
    // A new ZooKeeper session for new work, as after an expiry the server reports.
    let mut states = holder.states();
    timeout(BOUND, states.wait_for(|s| s == SessionState::Connected))
        .await
        .unwrap();
    assert_ne!(holder.id(), old_id);
    assert!(matches!(guard.release().await, Err(Error::SessionLost)));
    their_guard.release().await.unwrap();
    let again = timeout(BOUND, holder.lock("/o/lock").unwrap().lock())
        .await
        .unwrap()
        .unwrap();
    again.release().await.unwrap();
}

#[tokio::test]
async fn a_holder_cut_off_for_less_than_its_lease_holds_the_same_lock_again() {
    let chroot = unique_chroot("short-cut");
    let proxy = FaultProxy::start(common::server().addr()).unwrap();
    let holder = common::proxied(&proxy, &chroot, Duration::from_secs(4)).await;
    let id = holder.id();
    let guard = holder.lock("/s/lock").unwrap().lock().await.unwrap();
    let (token, node) = (guard.fencing_token(), guard.node_path());

    let mut states = holder.states();
    proxy.stall();
    timeout(BOUND, states.wait_for(|s| s == SessionState::Suspended))
        .await
        .unwrap();
    assert_eq!(guard.state(), HoldState::Suspended);
    proxy.heal();
    timeout(BOUND, states.wait_for(|s| s == SessionState::Connected))
        .await
        .unwrap();

    assert_eq!(holder.id(), id, "the same ZooKeeper session");
    assert_eq!(guard.state(), HoldState::Held);
    assert_eq!((guard.fencing_token(), guard.node_path()), (token, node));
    guard
        .fenced()
        .create("/s/resource", b"still mine".to_vec())
        .unwrap()
        .commit()
        .await
        .unwrap();
    assert!(
        timeout(Duration::from_millis(200), guard.lost()).await.is_err(),
        "lost() must not complete for a hold that was never lost"
    );
    guard.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_calls_made_while_the_session_is_replaced_never_see_their_own_node_as_deleted() {
    // Calls made after an expiry wait for the replacement session; then their create and their
    // listing went out in whichever order the futures were polled, and a listing sent first
    // missed the node: a false `LockNodeDeleted`, and a node left behind that blocked the lock.
    let chroot = unique_chroot("replaced");
    let proxy = FaultProxy::start(common::server().addr()).unwrap();
    let flaky = common::proxied(&proxy, &chroot, Duration::from_secs(2)).await;
    let observer = common::direct(&chroot).await.lock("/r/lock").unwrap();
    let mut granted = 0;
    for round in 0..5 {
        expire_session(&flaky, &proxy).await.unwrap();
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let lock = flaky.lock("/r/lock").unwrap();
                tokio::spawn(async move {
                    match lock.lock().await {
                        Ok(guard) => guard.release().await.map(|()| true),
                        Err(err) => Err(err),
                    }
                })
            })
            .collect();
        for call in calls {
            match timeout(BOUND, call).await.unwrap().unwrap() {
                Ok(_) => granted += 1,
                Err(Error::SessionLost) => {}
                Err(other) => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(
            observer.queue_len().await.unwrap(),
            0,
            "round {round}: a node was left behind"
        );
    }
    assert!(granted > 0, "the replacement session takes locks");
}
