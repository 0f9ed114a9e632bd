//! Lock directories whose sequence counter is exhausted, on a real server.
//!
//! A sequential child's suffix is its parent's child counter (`cversion`), a signed 32-bit
//! number. A ZooKeeper 3.8 server does not wrap it: once it reaches 2147483647 it stays there,
//! and every later create gets the suffix `2147483647` again — or, while creates overlap in the
//! server's pipeline (two creates in one `multi`, say), `-2147483648`, `-2147483647`, … So
//! suffixes tie, and a later contender can even carry a smaller-looking number than an earlier
//! one. Each test starts a server on a snapshot whose directories' counters are already there
//! (`support/counter_snapshot.rs`) and checks that there is still one holder at a time, served in
//! arrival order, for the lock, the read-write lock (downgrade included) and a condition queue.

#[path = "support/counter_snapshot.rs"]
mod counter_snapshot;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use counter_snapshot::server_with_counters;
use mazurka::testkit::ZkServer;
use mazurka::{RwMode, Session};
use tokio::sync::mpsc;
use tokio::time::timeout;
use zookeeper_client::{Acls, CreateMode, MultiWriteResult};

const BOUND: Duration = Duration::from_secs(20);

/// The counter's last value: every create in the directory is numbered with it from now on.
const EXHAUSTED: i32 = i32::MAX;

/// Rounds of a coin-flip race: before the fix, a newcomer tied with the holder sorted ahead of it
/// half the time, so the chance that all rounds missed it is 2^-ROUNDS.
const ROUNDS: usize = 16;

/// The suffix the server gave a node: what follows `<marker>-<kind>-`.
fn suffix(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or_default();
    name.get(36..)
        .and_then(|rest| rest.split_once('-'))
        .map_or("", |(_, s)| s)
}

fn own(session: &Session) -> String {
    format!("{:#x}", session.id())
}

async fn sessions(server: &ZkServer, n: usize) -> Vec<Session> {
    let mut all = Vec::new();
    for _ in 0..n {
        all.push(Session::connect(server.connect_string()).await.unwrap());
    }
    all
}

async fn close(sessions: Vec<Session>) {
    for s in sessions {
        s.close().await.unwrap();
    }
}

/// Waits for `probe` to hold (a state with no event to await: another process's queue).
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + BOUND;
    while !probe().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With every suffix equal, a newcomer never takes the lock from its holder, `holder()` names
/// the holder, and the newcomer leaves no node. Before the fix equal suffixes were ordered by the
/// random marker: `try_lock` won half the time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_tied_with_the_holder_never_takes_the_lock() {
    let data = tempfile::tempdir().unwrap();
    let server = server_with_counters(data.path(), EXHAUSTED, &["/tie"]);
    let s = sessions(&server, 2).await;
    let (holder, newcomer) = (s[0].lock("/tie").unwrap(), s[1].lock("/tie").unwrap());
    for round in 0..ROUNDS {
        let guard = holder.lock().await.unwrap();
        assert_eq!(
            suffix(&guard.node_path()),
            "2147483647",
            "the server's counter is exhausted"
        );
        let stolen = newcomer.try_lock().await.unwrap();
        assert!(
            stolen.is_none(),
            "round {round}: a newcomer tied with the holder took the lock too"
        );
        assert_eq!(
            newcomer.holder().await.unwrap().map(|h| h.session),
            Some(own(&s[0])),
            "round {round}"
        );
        assert_eq!(newcomer.queue_len().await.unwrap(), 1, "try_lock left no node");
        guard.release().await.unwrap();
    }
    close(s).await;
}

/// A holder and four waiters that arrive one after another, all numbered `2147483647`: the lock
/// goes to one holder at a time, in arrival order, with increasing fencing tokens. Before the
/// fix they were served in the order of their random markers, and a newcomer whose marker sorted
/// first took the lock beside its holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_with_equal_suffixes_are_served_in_arrival_order() {
    let data = tempfile::tempdir().unwrap();
    let server = server_with_counters(data.path(), EXHAUSTED, &["/fifo"]);
    let s = sessions(&server, 5).await;
    // Three rounds: before the fix, one round in 24 came out in order by chance.
    for round in 0..3 {
        let first = s[0].lock("/fifo").unwrap();
        let guard = first.lock().await.unwrap();
        let inside = Arc::new(AtomicUsize::new(1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, session) in s.iter().enumerate().skip(1) {
            let (lock, inside, order) = (session.lock("/fifo").unwrap(), inside.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let guard = lock.lock().await.unwrap();
                let others = inside.fetch_add(1, Ordering::SeqCst);
                order
                    .lock()
                    .unwrap()
                    .push((i, others, guard.node_path(), guard.fencing_token()));
                inside.fetch_sub(1, Ordering::SeqCst);
                guard.release().await.unwrap();
            }));
            eventually("the next waiter queued", || async {
                first.queue_len().await.unwrap() == i + 1
            })
            .await;
        }
        let mut holders = vec![(0, 0, guard.node_path(), guard.fencing_token())];
        inside.fetch_sub(1, Ordering::SeqCst);
        guard.release().await.unwrap();
        for task in tasks {
            timeout(BOUND, task).await.unwrap().unwrap();
        }
        holders.extend(order.lock().unwrap().iter().cloned());
        let who: Vec<usize> = holders.iter().map(|h| h.0).collect();
        let overlaps: Vec<usize> = holders.iter().map(|h| h.1).collect();
        assert_eq!(
            overlaps, [0; 5],
            "round {round}: two holders at once: {holders:?}"
        );
        assert_eq!(who, [0, 1, 2, 3, 4], "round {round}: arrival order: {holders:?}");
        assert!(
            holders.iter().all(|h| suffix(&h.2) == "2147483647"),
            "{holders:?}"
        );
        assert!(
            holders.windows(2).all(|w| w[0].3 < w[1].3),
            "tokens increase: {holders:?}"
        );
    }
    close(s).await;
}

/// A bare ZooKeeper session, to make what the library does not: two creates in one `multi`.
#[allow(clippy::disallowed_types)] // the bare client, on purpose
async fn raw(server: &ZkServer) -> zookeeper_client::Client {
    zookeeper_client::Client::connector()
        .connect(&server.connect_string())
        .await
        .unwrap()
}

/// A contender of `kind` in `dir`, ephemeral on `client`'s session and recording `host` as its
/// holder, created in one `multi` right behind another child: the server numbers it from the
/// counter as the first create left it in its pipeline — one past 2147483647, `-2147483648`.
#[allow(clippy::disallowed_types)]
async fn contender_after_the_wrap(
    client: &zookeeper_client::Client,
    dir: &str,
    kind: &str,
    host: &str,
) -> String {
    let data = format!(r#"{{"host":"{host}","pid":1,"session":"0x0","since_ms":0}}"#);
    let prefix = format!("{dir}/_c_{:032x}-{kind}-", rand::random::<u128>());
    let mut multi = client.new_multi_writer();
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let ephemeral = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
    multi
        .add_create(&format!("{dir}/pad-{host}"), &[], &persistent)
        .unwrap();
    multi.add_create(&prefix, data.as_bytes(), &ephemeral).unwrap();
    let results = multi.commit().await.unwrap();
    let Some(MultiWriteResult::Create { path, .. }) = results.into_iter().nth(1) else {
        panic!("the multi created two nodes")
    };
    path
}

/// An earlier contender numbered `-2147483648` (made while the counter wrapped in the server's
/// pipeline) and a later one numbered `2147483647` (the stored counter): the later one waits.
/// Before the fix it read `2147483647` as older (serial order) and took the lock at once, for the
/// exclusive lock; and for the read-write lock a reader came in under an earlier writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_contender_with_a_smaller_looking_number_waits() {
    let data = tempfile::tempdir().unwrap();
    let server = server_with_counters(data.path(), EXHAUSTED, &["/wrapped", "/wrappedrw"]);
    let s = sessions(&server, 1).await;

    // The exclusive lock.
    let planted = raw(&server).await;
    let earlier = contender_after_the_wrap(&planted, "/wrapped", "lock", "earlier").await;
    assert_eq!(suffix(&earlier), "-2147483648");
    let lock = s[0].lock("/wrapped").unwrap();
    assert!(
        lock.try_lock().await.unwrap().is_none(),
        "a later contender took the lock from an earlier one"
    );
    assert_eq!(
        lock.holder().await.unwrap().map(|h| h.host).as_deref(),
        Some("earlier")
    );
    let waiting = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.lock().await })
    };
    eventually("the waiter queued", || async {
        lock.queue_len().await.unwrap() == 2
    })
    .await;
    assert!(
        !waiting.is_finished(),
        "the waiter is behind the earlier contender"
    );
    drop(planted); // closes its session: the earlier contender's node goes
    let guard = timeout(BOUND, waiting).await.unwrap().unwrap().unwrap();
    assert_eq!(suffix(&guard.node_path()), "2147483647");
    guard.release().await.unwrap();

    // The read-write lock: an earlier writer, a later reader.
    let planted = raw(&server).await;
    let writer = contender_after_the_wrap(&planted, "/wrappedrw", "write", "writer").await;
    assert_eq!(suffix(&writer), "-2147483648");
    let rw = s[0].rw_lock("/wrappedrw").unwrap();
    assert!(
        rw.try_read().await.unwrap().is_none(),
        "a later reader came in under an earlier writer"
    );
    assert!(rw.is_write_locked().await.unwrap());
    let holders: Vec<_> = rw
        .holders()
        .await
        .unwrap()
        .into_iter()
        .map(|(mode, info)| (mode, info.host))
        .collect();
    assert_eq!(holders, [(RwMode::Write, "writer".to_owned())]);
    drop(planted);
    let read = timeout(BOUND, rw.read()).await.unwrap().unwrap();
    assert_eq!(suffix(read.node_path()), "2147483647");
    read.release().await.unwrap();
    close(s).await;
}

/// The read-write lock with every suffix equal: a write holder keeps readers and writers out;
/// its downgrade's read node (named with the same suffix, like every other node here) keeps its
/// place at the head of the queue, so a writer that queued behind the write node waits for the
/// downgraded reader, and a reader that queued behind that writer waits for the writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rwlock_with_equal_suffixes_keeps_writers_alone_and_downgrades_in_place() {
    let data = tempfile::tempdir().unwrap();
    let server = server_with_counters(data.path(), EXHAUSTED, &["/rw"]);
    let s = sessions(&server, 3).await;
    let rw: Vec<_> = s.iter().map(|s| s.rw_lock("/rw").unwrap()).collect();

    for round in 0..ROUNDS {
        let write = rw[0].write().await.unwrap();
        assert_eq!(suffix(write.node_path()), "2147483647");
        assert!(
            rw[1].try_read().await.unwrap().is_none(),
            "round {round}: a reader came in under the writer"
        );
        assert!(
            rw[1].try_write().await.unwrap().is_none(),
            "round {round}: a second writer came in"
        );
        write.release().await.unwrap();
    }

    // Arrival order: the write holder (0), a writer (1), a reader (2).
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    let (go_down_tx, go_down_rx) = tokio::sync::oneshot::channel::<()>();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let downgrader = {
        let (rw, tx) = (rw[0].clone(), tx.clone());
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let write = rw.write().await.unwrap();
            entered_tx.send(()).unwrap();
            go_down_rx.await.unwrap();
            let read = write.scope(rw.read()).await.unwrap(); // downgrade: beside the write node
            assert_eq!(suffix(read.node_path()), "2147483647");
            write.release().await.unwrap();
            tx.send("downgraded").unwrap();
            go_rx.await.unwrap();
            tx.send("downgraded reader leaves").unwrap();
            read.release().await.unwrap();
        });
        entered_rx.await.unwrap();
        task
    };
    let writer = {
        let (rw, tx) = (rw[1].clone(), tx.clone());
        tokio::spawn(async move {
            let write = rw.write().await.unwrap();
            tx.send("writer in").unwrap();
            tx.send("writer leaves").unwrap();
            write.release().await.unwrap();
        })
    };
    eventually("the writer queued", || async {
        rw[2].queue_len().await.unwrap() == 2
    })
    .await;
    let reader = {
        let (rw, tx) = (rw[2].clone(), tx.clone());
        tokio::spawn(async move {
            let read = rw.read().await.unwrap();
            tx.send("reader in").unwrap();
            read.release().await.unwrap();
        })
    };
    eventually("the reader queued", || async {
        rw[2].queue_len().await.unwrap() == 3
    })
    .await;
    go_down_tx.send(()).unwrap();
    assert_eq!(recv(&mut rx).await, "downgraded");
    // Only the downgraded reader holds; the writer and the reader behind it wait.
    let holders: Vec<_> = rw[2]
        .holders()
        .await
        .unwrap()
        .into_iter()
        .map(|(mode, info)| (mode, info.session))
        .collect();
    assert_eq!(holders, [(RwMode::Read, own(&s[0]))]);
    assert!(
        rx.try_recv().is_err(),
        "nobody else got in beside the downgraded reader"
    );
    go_tx.send(()).unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(recv(&mut rx).await);
    }
    assert_eq!(
        seen,
        [
            "downgraded reader leaves",
            "writer in",
            "writer leaves",
            "reader in"
        ]
    );
    for task in [downgrader, writer, reader] {
        timeout(BOUND, task).await.unwrap().unwrap();
    }
    close(s).await;
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<&'static str>) -> &'static str {
    timeout(BOUND, rx.recv()).await.unwrap().unwrap()
}

/// Five waiters in a condition whose waiters' directory is exhausted, waiting one after another:
/// `signal` wakes them oldest first. Before the fix, equal suffixes were woken in the order of
/// their random markers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn condition_waiters_with_equal_suffixes_are_signalled_oldest_first() {
    const WAITERS: usize = 5;
    let data = tempfile::tempdir().unwrap();
    let server = server_with_counters(data.path(), EXHAUSTED, &["/cv/lock.condition.ready"]);
    let s = sessions(&server, WAITERS + 1).await;
    let lock = s[0].lock("/cv/lock").unwrap();
    let ready = lock.new_condition("ready").unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<usize>();
    let mut tasks = Vec::new();
    for i in 0..WAITERS {
        let lock = s[i + 1].lock("/cv/lock").unwrap();
        let (ready_i, tx) = (lock.new_condition("ready").unwrap(), tx.clone());
        tasks.push(tokio::spawn(async move {
            let mut guard = lock.lock().await.unwrap();
            ready_i.wait(&mut guard).await.unwrap();
            tx.send(i).unwrap();
            guard.release().await.unwrap();
        }));
        eventually("the next waiter waits", || async {
            ready.waiter_count().await.unwrap() == i + 1
        })
        .await;
    }
    let mut woken = Vec::new();
    for _ in 0..WAITERS {
        let guard = lock.lock().await.unwrap();
        assert!(ready.signal().await.unwrap());
        guard.release().await.unwrap();
        woken.push(timeout(BOUND, rx.recv()).await.unwrap().unwrap());
    }
    assert_eq!(woken, [0, 1, 2, 3, 4], "signalled oldest first");
    for task in tasks {
        timeout(BOUND, task).await.unwrap().unwrap();
    }
    close(s).await;
}
