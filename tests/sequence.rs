//! Sequence numbers past ZooKeeper's 32-bit wrap, and lock directories full of junk, against a
//! real server.
//!
//! A sequential node's suffix is the parent's `cversion` printed `%010d`: after 2^31 − 1 it wraps
//! to `-2147483648` and climbs through the negatives (`-000000005`, …) to zero. The tests plant
//! contender nodes with such names by hand — ephemeral nodes of another session, named exactly as
//! the server would have named them — ahead of the contenders the server numbers now (from 0 on,
//! in a fresh directory), and check that every part of the library agrees on who holds. Planted
//! in the order the server would have numbered them: a listing with such numbers is ordered by
//! creation zxid (see `sequence_exhausted.rs` for what a real server does past 2^31 − 1).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mazurka::testkit::ZkServer;
use mazurka::{Error, HolderInfo, RwMode, Session};
use tokio::time::timeout;
use zookeeper_client::{Acls, CreateMode};

const BOUND: Duration = Duration::from_secs(20);

/// A bare ZooKeeper session in `chroot`, to plant nodes the library did not make.
#[allow(clippy::disallowed_types)] // the bare client, on purpose
async fn raw(connect: &str, chroot: &str) -> zookeeper_client::Client {
    zookeeper_client::Client::connector()
        .connect(&format!("{connect}{chroot}"))
        .await
        .unwrap()
}

#[allow(clippy::disallowed_types)]
async fn mkdir(client: &zookeeper_client::Client, path: &str) {
    client
        .create(path, &[], &CreateMode::Persistent.with_acls(Acls::anyone_all()))
        .await
        .unwrap();
}

/// A node named `<marker>-<kind>-<suffix>` in `dir`, ephemeral on `client`'s session, recording
/// `host` as its holder: a contender whose sequence number is `suffix`, as the server prints it.
#[allow(clippy::disallowed_types)]
async fn plant(client: &zookeeper_client::Client, dir: &str, kind: &str, suffix: &str, host: &str) -> String {
    let name = format!("_c_{:032x}-{kind}-{suffix}", rand::random::<u128>());
    let data = format!(r#"{{"host":"{host}","pid":1,"session":"0x0","since_ms":0}}"#);
    client
        .create(
            &format!("{dir}/{name}"),
            data.as_bytes(),
            &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    name
}

fn host(info: Option<HolderInfo>) -> Option<String> {
    info.map(|h| h.host)
}

fn own(session: &Session) -> String {
    format!("{:#x}", session.id())
}

/// The counter wrapped long ago and climbs through the negatives towards 0: the holder came 648
/// numbers after the wrap (`-2147483000`), the next contender just before 0 (`-000000004`), and
/// the contenders the server numbers now (from 0 on) after both. Today's numeric, digits-only
/// reading took the first for +2147483000 (behind everyone) and ignored the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_queues_negative_sequence_numbers_ahead_of_later_ones() {
    let sessions = common::sessions("seqlock", 2).await;
    let chroot = sessions[0].chroot().unwrap().to_string();
    let connect = common::server().connect_string();
    let (first, second) = (raw(&connect, &chroot).await, raw(&connect, &chroot).await);
    mkdir(&first, "/q").await;
    plant(&first, "/q", "lock", "-2147483000", "planted-holder").await;
    plant(&second, "/q", "lock", "-000000004", "planted-next").await;

    let lock = sessions[0].lock("/q").unwrap();
    assert!(lock.is_locked().await.unwrap());
    assert_eq!(
        lock.queue_len().await.unwrap(),
        2,
        "both planted contenders count"
    );
    assert_eq!(
        host(lock.holder().await.unwrap()).as_deref(),
        Some("planted-holder")
    );
    let got = lock.try_lock().await.unwrap();
    assert!(
        got.is_none(),
        "a contender numbered now came after both planted ones"
    );
    assert_eq!(lock.queue_len().await.unwrap(), 2, "try_lock left no node");

    let other = sessions[1].lock("/q").unwrap();
    let waiting = tokio::spawn(async move {
        let guard = other.lock().await?;
        let holder = other.holder().await?;
        guard.release().await?;
        Ok::<_, Error>(holder)
    });
    common::eventually(10, "the real waiter queued", || async {
        lock.queue_len().await.unwrap() == 3
    })
    .await;

    drop(first); // closes the planted holder's session
    common::eventually(10, "the planted holder's node gone", || async {
        lock.queue_len().await.unwrap() == 2
    })
    .await;
    assert_eq!(
        host(lock.holder().await.unwrap()).as_deref(),
        Some("planted-next")
    );
    assert!(
        !waiting.is_finished(),
        "the real waiter is still behind `-000000004`"
    );

    drop(second);
    let holder = timeout(BOUND, waiting).await.unwrap().unwrap().unwrap();
    assert_eq!(holder.map(|h| h.session), Some(own(&sessions[1])));
    assert_eq!(lock.queue_len().await.unwrap(), 0);
}

/// Two planted readers (`-2147483000`, `-000000008`) hold together; a planted writer
/// (`-000000004`) waits behind them; real contenders queue after all three. Today's reading took
/// `read--2147483000` for a writer of kind `read-` and ignored the other two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rwlock_queues_negative_sequence_numbers_ahead_of_later_ones() {
    let sessions = common::sessions("seqrw", 2).await;
    let chroot = sessions[0].chroot().unwrap().to_string();
    let connect = common::server().connect_string();
    let (readers, writer) = (raw(&connect, &chroot).await, raw(&connect, &chroot).await);
    mkdir(&readers, "/rw").await;
    plant(&readers, "/rw", "read", "-2147483000", "planted-reader-1").await;
    plant(&readers, "/rw", "read", "-000000008", "planted-reader-2").await;
    plant(&writer, "/rw", "write", "-000000004", "planted-writer").await;

    let rw = sessions[0].rw_lock("/rw").unwrap();
    let holders = |rw: mazurka::DistributedRwLock| async move {
        let mut all: Vec<(RwMode, String)> = rw
            .holders()
            .await
            .unwrap()
            .into_iter()
            .map(|(mode, info)| (mode, info.host))
            .collect();
        all.sort_by(|a, b| a.1.cmp(&b.1));
        all
    };
    assert_eq!(rw.queue_len().await.unwrap(), 3);
    assert!(rw.is_locked().await.unwrap());
    assert!(
        !rw.is_write_locked().await.unwrap(),
        "two readers hold, the writer waits"
    );
    assert_eq!(
        holders(rw.clone()).await,
        [
            (RwMode::Read, "planted-reader-1".to_owned()),
            (RwMode::Read, "planted-reader-2".to_owned())
        ]
    );
    assert!(
        rw.try_read().await.unwrap().is_none(),
        "a writer waits ahead of a new reader"
    );
    assert!(rw.try_write().await.unwrap().is_none());
    assert_eq!(rw.queue_len().await.unwrap(), 3, "the tries left no node");

    let other = sessions[1].rw_lock("/rw").unwrap();
    let waiting = tokio::spawn(async move {
        let guard = other.read().await?;
        let holders = other.holders().await?;
        guard.release().await?;
        Ok::<_, Error>(holders)
    });
    common::eventually(10, "the real reader queued", || async {
        rw.queue_len().await.unwrap() == 4
    })
    .await;

    drop(readers);
    common::eventually(10, "the planted readers gone", || async {
        rw.queue_len().await.unwrap() == 2
    })
    .await;
    assert!(rw.is_write_locked().await.unwrap());
    assert_eq!(
        holders(rw.clone()).await,
        [(RwMode::Write, "planted-writer".to_owned())]
    );
    assert!(
        !waiting.is_finished(),
        "the real reader is still behind the planted writer"
    );

    drop(writer);
    let seen = timeout(BOUND, waiting).await.unwrap().unwrap().unwrap();
    let seen: Vec<_> = seen
        .into_iter()
        .map(|(mode, info)| (mode, info.session))
        .collect();
    assert_eq!(seen, [(RwMode::Read, own(&sessions[1]))]);
}

/// Two planted waiters (`-2147483000`, `-000000004`) waited before a real one: `signal` wakes
/// them first, oldest first. Today's reading skipped both (kind `wait-`, a nine-digit suffix) and
/// woke the real waiter first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn condition_waiters_with_negative_sequence_numbers_are_woken_first() {
    let sessions = common::sessions("seqcv", 2).await;
    let chroot = sessions[0].chroot().unwrap().to_string();
    let planter = raw(&common::server().connect_string(), &chroot).await;
    mkdir(&planter, "/cv").await;
    mkdir(&planter, "/cv/lock.condition.ready").await;
    let dir = "/cv/lock.condition.ready";
    let oldest = plant(&planter, dir, "wait", "-2147483000", "planted-1").await;
    let next = plant(&planter, dir, "wait", "-000000004", "planted-2").await;

    let lock = sessions[0].lock("/cv/lock").unwrap();
    let ready = lock.new_condition("ready").unwrap();
    let (their_lock, their_ready) = {
        let lock = sessions[1].lock("/cv/lock").unwrap();
        let ready = lock.new_condition("ready").unwrap();
        (lock, ready)
    };
    let waiting = tokio::spawn(async move {
        let mut guard = their_lock.lock().await?;
        their_ready.wait(&mut guard).await?;
        guard.release().await
    });
    common::eventually(10, "three waiters", || async {
        ready.waiter_count().await.unwrap() == 3
    })
    .await;

    let exists = |name: String| {
        let planter = &planter;
        async move {
            planter
                .check_stat(&format!("{dir}/{name}"))
                .await
                .unwrap()
                .is_some()
        }
    };
    let guard = lock.lock().await.unwrap();
    assert!(ready.signal().await.unwrap());
    assert!(!exists(oldest).await, "the oldest waiter is woken first");
    assert!(exists(next.clone()).await);
    assert_eq!(
        ready.waiter_count().await.unwrap(),
        2,
        "the real waiter still waits"
    );
    assert!(ready.signal().await.unwrap());
    assert!(!exists(next).await);
    assert_eq!(ready.waiter_count().await.unwrap(), 1);
    assert!(!waiting.is_finished());
    assert!(ready.signal().await.unwrap());
    guard.release().await.unwrap();
    timeout(BOUND, waiting).await.unwrap().unwrap().unwrap();
    assert_eq!(ready.waiter_count().await.unwrap(), 0);
}

/// Names a contender never has, many of them one character away from one it could have.
fn junk(i: usize) -> String {
    let hex = format!("{:032x}", rand::random::<u128>());
    match i % 12 {
        0 => format!("junk-{i}"),
        1 => format!("lock-{i:010}"),
        2 => format!("_c_{hex}-lock-{i:019}"), // 19 digits: not ZooKeeper's %010d
        3 => format!("_c_{hex}-lock-9{i:09}"), // ten digits above i32::MAX
        4 => format!("_c_{hex}-lock-+{i:09}"), // a plus sign
        5 => format!("_c_{hex}-lock--0{i:09}"), // a negative padded to eleven
        6 => format!("_c_{hex}-lock-{i:08}"),  // too short
        7 => format!("_c_{}-lock-{i:010}", &hex[..31]),
        8 => format!("_c_{hex}-lock-{i:010}x"),
        9 => format!("_c_{hex}-lock-{i:010}-"),
        10 => format!("_c_{hex}--{i:010}"), // no kind
        _ => format!("_C_{hex}-lock-{i:010}"),
    }
}

/// One of the server's request counters (`mntr`).
fn counter(server: &ZkServer, key: &str) -> u64 {
    let text = server.four_letter_word("mntr").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in mntr"))
}

fn requests(server: &ZkServer) -> u64 {
    counter(server, "zk_cnt_readlatency") + counter(server, "zk_cnt_updatelatency")
}

/// 3000 junk children — some a character away from a contender's name, one in twelve a name
/// that a looser reading takes for a contender with a small sequence number, ahead of every real one — and three contenders
/// that lock and unlock. Junk never counts as a contender and costs no request: a lock cycle costs
/// the same few requests as in an empty directory, and the junk is all still there at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_junk_children_cost_no_requests_and_block_nobody() {
    const JUNK: usize = 3000;
    const CONTENDERS: usize = 3;
    const CYCLES: usize = 10;
    // A server of its own: its request counters count only this test.
    let server = ZkServer::start().unwrap();
    let connect = server.connect_string();
    let planter = raw(&connect, "").await;
    mkdir(&planter, "/junk").await;
    mkdir(&planter, "/clean").await;
    // Pipelined: all on the connection before the first reply is awaited.
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..JUNK {
        let (planter, path) = (planter.clone(), format!("/junk/{}", junk(i)));
        creates.spawn(async move {
            let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
            planter.create(&path, &[], &persistent).await.map(|_| ())
        });
    }
    while let Some(created) = creates.join_next().await {
        created.unwrap().unwrap();
    }

    let mut sessions = Vec::new();
    for _ in 0..CONTENDERS {
        sessions.push(Session::connect(connect.clone()).await.unwrap());
    }
    let junk_lock = sessions[0].lock("/junk").unwrap();
    assert_eq!(junk_lock.queue_len().await.unwrap(), 0, "junk is no contender");
    assert!(!junk_lock.is_locked().await.unwrap());
    assert_eq!(junk_lock.holder().await.unwrap(), None);

    // Uncontended cycles, in turn: what one costs with and without the junk.
    let mut cost = Vec::new();
    for dir in ["/clean", "/junk"] {
        let before = requests(&server);
        for s in &sessions {
            let lock = s.lock(dir).unwrap();
            for _ in 0..CYCLES {
                let guard = timeout(BOUND, lock.lock()).await.unwrap().unwrap();
                guard.release().await.unwrap();
            }
        }
        cost.push(requests(&server) - before);
    }
    // The same few requests per cycle (a session's own heartbeats may fall in either window: a
    // little slack); a request per child, or per junk child, would be thousands.
    let cycles = (CONTENDERS * CYCLES) as u64;
    assert!(
        cost[1] <= cost[0] + 10 && cost[1] <= 5 * cycles,
        "requests for {cycles} lock cycles: {} with {JUNK} junk children, {} with none",
        cost[1],
        cost[0]
    );

    // Contended cycles: one holder at a time, tokens in order, nothing left behind.
    let inside = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = sessions
        .iter()
        .map(|s| {
            let (lock, inside, tokens) = (s.lock("/junk").unwrap(), inside.clone(), tokens.clone());
            tokio::spawn(async move {
                for _ in 0..CYCLES {
                    let guard = lock.lock().await.unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    tokens.lock().unwrap().push(guard.fencing_token());
                    tokio::task::yield_now().await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    guard.release().await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        timeout(BOUND, task).await.unwrap().unwrap();
    }
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), CONTENDERS * CYCLES);
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens in order: {tokens:?}"
    );
    assert_eq!(junk_lock.queue_len().await.unwrap(), 0);
    assert_eq!(
        planter.list_children("/junk").await.unwrap().len(),
        JUNK,
        "junk untouched"
    );
    for s in &sessions {
        s.close().await.unwrap();
    }
}
