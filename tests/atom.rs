//! Atoms and pods against real servers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use mazurka::testkit::FaultProxy;
use mazurka::{Atom, Error, Pod, Session};
use tokio::time::timeout;

const BOUND: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contended_swaps_are_all_counted_once_and_in_order() {
    const SESSIONS: usize = 8;
    const SWAPS: usize = 250;
    let sessions = common::sessions("swap", SESSIONS).await;
    let first: Atom<u64> = Atom::new(&sessions[0], "/counter", 0).await.unwrap();
    let (_, version_before) = first.deref_sync_versioned().await.unwrap();
    let mut tasks = Vec::new();
    for s in &sessions {
        let atom: Atom<u64> = Atom::open(s, "/counter").await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::with_capacity(SWAPS);
            for _ in 0..SWAPS {
                seen.push(atom.swap(|n| n + 1).await.unwrap());
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let seen = timeout(BOUND, t).await.unwrap().unwrap();
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "a session's post-values must strictly increase"
        );
        all.extend(seen);
    }
    let (value, version_after) = first.deref_sync_versioned().await.unwrap();
    assert_eq!(
        value,
        (SESSIONS * SWAPS) as u64,
        "every acknowledged swap counted exactly once"
    );
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        SESSIONS * SWAPS,
        "no two swaps returned the same post-value"
    );
    assert_eq!(
        (version_after - version_before) as usize,
        SESSIONS * SWAPS,
        "one write per swap"
    );
}

/// Sessions increment one atom, drawing from a shared pool of tickets (take one, do one swap)
/// until none is left, as the benchmark's clients do: a session that keeps winning takes most
/// tickets. Returns each session's completed swaps and the most times one swap ran its function.
/// Counts only, no clock: a slow machine slows every session alike.
async fn contended_shares(prefix: &str, n: usize, tickets: usize) -> (Vec<usize>, usize) {
    let sessions = common::sessions(prefix, n).await;
    let _: Atom<u64> = Atom::new(&sessions[0], "/shared", 0).await.unwrap();
    let pool = Arc::new(std::sync::atomic::AtomicIsize::new(tickets as isize));
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for s in &sessions {
        let atom: Atom<u64> = Atom::open(s, "/shared").await.unwrap();
        let (pool, start) = (pool.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            atom.swap(|n| n + 1).await.unwrap(); // replica loaded, connection warm
            start.wait().await;
            let (mut done, mut most_runs) = (0, 0);
            while pool.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) > 0 {
                let mut runs = 0;
                atom.swap(|n| {
                    runs += 1;
                    n + 1
                })
                .await
                .unwrap();
                done += 1;
                most_runs = most_runs.max(runs);
            }
            (done, most_runs)
        }));
    }
    let (mut shares, mut most_runs) = (Vec::new(), 0);
    for t in tasks {
        let (done, runs) = timeout(BOUND, t).await.unwrap().unwrap();
        shares.push(done);
        most_runs = most_runs.max(runs);
    }
    let total = Atom::<u64>::open(&sessions[0], "/shared").await.unwrap();
    assert_eq!(
        total.deref_sync().await.unwrap(),
        (tickets + n) as u64,
        "every swap counted once"
    );
    (shares, most_runs)
}

/// Jain's fairness index: 1 for equal shares, 1/n when one did everything.
fn jain(shares: &[usize]) -> f64 {
    let sum: f64 = shares.iter().map(|&x| x as f64).sum();
    let squares: f64 = shares.iter().map(|&x| (x as f64).powi(2)).sum();
    sum * sum / (shares.len() as f64 * squares)
}

/// A winner must not keep winning: its own write refreshes its copy and it hears first, so
/// without yielding it starves the others (issue 13: 9499 / 1 / 1 / 1 increments).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contended_swaps_are_fair_among_4_sessions() {
    let (shares, most_runs) = contended_shares("fair4", 4, 800).await;
    let fairness = jain(&shares);
    assert!(
        fairness >= 0.9,
        "Jain's index {fairness:.3} of swaps per session {shares:?}: a session was starved"
    );
    assert!(
        most_runs <= 40,
        "one swap ran its function {most_runs} times (shares {shares:?}): it kept losing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contended_swaps_are_fair_among_16_sessions() {
    let (shares, most_runs) = contended_shares("fair16", 16, 1600).await;
    let fairness = jain(&shares);
    assert!(
        fairness >= 0.9,
        "Jain's index {fairness:.3} of swaps per session {shares:?}: a session was starved"
    );
    assert!(
        most_runs <= 80,
        "one swap ran its function {most_runs} times (shares {shares:?}): it kept losing"
    );
}

#[tokio::test]
async fn compare_and_set_fails_on_a_stale_value_and_writes_nothing() {
    let sessions = common::sessions("cas", 2).await;
    let a: Atom<String> = Atom::new(&sessions[0], "/cfg", "v1".to_string()).await.unwrap();
    let b: Atom<String> = Atom::open(&sessions[1], "/cfg").await.unwrap();
    assert!(a
        .compare_and_set(&"v1".to_string(), "v2".to_string())
        .await
        .unwrap());
    // Stale expectation: refused, nothing written.
    let (_, version) = a.deref_sync_versioned().await.unwrap();
    assert!(!b
        .compare_and_set(&"v1".to_string(), "v3".to_string())
        .await
        .unwrap());
    let (value, version_now) = a.deref_sync_versioned().await.unwrap();
    assert_eq!((value.as_str(), version_now), ("v2", version));
    // A write injected between b's read and its CAS makes the CAS fail.
    let seen = b.deref_sync().await.unwrap();
    a.reset("injected".to_string()).await.unwrap();
    assert!(!b.compare_and_set(&seen, "mine".to_string()).await.unwrap());
    assert_eq!(a.deref_sync().await.unwrap(), "injected");
}

#[tokio::test]
async fn validators_refuse_and_swap_vals_returns_both() {
    let session = common::session("atom-valid").await;
    let a: Atom<i32> = Atom::new(&session, "/n", 5).await.unwrap();
    a.set_validator(|v| {
        if *v <= 10 {
            Ok(())
        } else {
            Err(format!("{v} is above 10"))
        }
    })
    .unwrap();
    assert_eq!(a.swap_vals(|v| v * 2).await.unwrap(), (5, 10));
    assert!(matches!(a.swap(|v| v + 1).await, Err(Error::Invalid { .. })));
    assert_eq!(a.deref_sync().await.unwrap(), 10);
    assert!(matches!(
        a.set_validator(|_| Err("never".into())),
        Err(Error::Invalid { .. })
    ));
}

#[tokio::test]
async fn a_swap_whose_reply_is_lost_is_applied_once() {
    let server = common::server();
    let chroot = mazurka::testkit::unique_chroot("atom-lost");
    let proxy = FaultProxy::start(server.addr()).unwrap();
    let flaky = Session::builder(format!("{}{chroot}", proxy.connect_string()))
        .session_timeout(Duration::from_secs(4))
        .connect()
        .await
        .unwrap();
    let steady = Session::connect(format!("{}{chroot}", server.connect_string()))
        .await
        .unwrap();
    let atom: Atom<u64> = Atom::new(&flaky, "/n", 0).await.unwrap();
    let observer: Atom<u64> = Atom::open(&steady, "/n").await.unwrap();
    for round in 1..=3u64 {
        proxy.stall_replies();
        let task = {
            let atom = atom.clone();
            tokio::spawn(async move { atom.swap(|n| n + 1).await })
        };
        common::eventually(10, "swap applied on the server", || async {
            observer.deref_sync().await.unwrap() == round
        })
        .await;
        proxy.cut();
        proxy.heal();
        assert_eq!(timeout(BOUND, task).await.unwrap().unwrap().unwrap(), round);
        assert_eq!(
            observer.deref_sync().await.unwrap(),
            round,
            "applied exactly once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn concurrent_pod_edits_never_lose_an_element() {
    const SESSIONS: usize = 3;
    const EDITS: usize = 15;
    let sessions = common::sessions("pod", SESSIONS).await;
    let mut tasks = Vec::new();
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for (i, s) in sessions.iter().enumerate() {
        let pod: Pod<Vec<String>> = Pod::new(s, "/jobs", Vec::new()).await.unwrap();
        let runs = runs.clone();
        tasks.push(tokio::spawn(async move {
            let mut tokens = Vec::new();
            for e in 0..EDITS {
                let token = pod
                    .edit(|list, token| {
                        runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        list.push(format!("{i}-{e}"));
                        token
                    })
                    .await
                    .unwrap();
                tokens.push(token);
            }
            tokens
        }));
    }
    for t in tasks {
        let tokens = timeout(BOUND, t).await.unwrap().unwrap();
        assert!(tokens.windows(2).all(|w| w[0] < w[1]), "fencing tokens increase");
    }
    let pod: Pod<Vec<String>> = Pod::open(&sessions[0], "/jobs").await.unwrap();
    let list = pod.deref_sync().await.unwrap();
    assert_eq!(list.len(), SESSIONS * EDITS, "no edit lost");
    assert_eq!(
        runs.load(std::sync::atomic::Ordering::SeqCst),
        SESSIONS * EDITS,
        "each edit ran exactly once"
    );
    for i in 0..SESSIONS {
        let mine: Vec<&String> = list.iter().filter(|x| x.starts_with(&format!("{i}-"))).collect();
        let expected: Vec<String> = (0..EDITS).map(|e| format!("{i}-{e}")).collect();
        assert_eq!(
            mine.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            expected.iter().map(String::as_str).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn an_edit_whose_session_expires_before_check_in_writes_nothing() {
    let server = common::server();
    let chroot = mazurka::testkit::unique_chroot("pod-expiry");
    let proxy = Arc::new(FaultProxy::start(server.addr()).unwrap());
    let doomed = Session::builder(format!("{}{chroot}", proxy.connect_string()))
        .session_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let steady = Session::connect(format!("{}{chroot}", server.connect_string()))
        .await
        .unwrap();
    let pod: Pod<Vec<u32>> = Pod::new(&doomed, "/p", vec![1]).await.unwrap();
    let other: Pod<Vec<u32>> = Pod::open(&steady, "/p").await.unwrap();
    let p2 = proxy.clone();
    let (editing, edited) = tokio::sync::oneshot::channel();
    let edit = tokio::spawn(async move {
        pod.edit(move |list, _| {
            list.push(2);
            p2.stall(); // the holder goes silent before checking in: the server expires it
            let _ = editing.send(());
        })
        .await
    });
    timeout(BOUND, edited).await.unwrap().unwrap();
    // The other session gets the lock once the doomed one's session is gone.
    other.edit(|list, _| list.push(3)).await.unwrap();
    proxy.heal();
    let outcome = timeout(BOUND, edit).await.unwrap().unwrap();
    assert!(matches!(outcome, Err(Error::SessionLost)), "{outcome:?}");
    assert_eq!(
        other.deref_sync().await.unwrap(),
        vec![1, 3],
        "the expired edit wrote nothing"
    );
}
