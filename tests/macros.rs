//! The `lock!` macro against a real server: held while the block runs, released (and awaited) on
//! every exit, `try`/`timeout` forms, reentrancy, errors.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mazurka::{lock, Error};

#[tokio::test]
async fn with_lock_holds_during_the_block_and_releases_on_every_exit() {
    let sessions = common::sessions("macro", 2).await;
    let (a, b) = (&sessions[0], &sessions[1]);
    let observer = b.lock("/m/lock").unwrap();

    let seen = lock!(a, "/m/lock" => {
        assert!(observer.is_locked().await.unwrap(), "held inside the block");
        observer.queue_len().await.unwrap()
    })
    .unwrap();
    assert_eq!(seen, 1);
    assert!(
        !observer.is_locked().await.unwrap(),
        "released (and awaited) when the block ends"
    );

    // `?` inside the block leaves the block; the lock is still released before the macro returns.
    let failed: mazurka::Result<Result<(), String>> = lock!(a, "/m/lock" => {
        Err("boom".to_string())?;
        Ok(())
    });
    assert_eq!(failed.unwrap(), Err("boom".to_string()));
    assert!(!observer.is_locked().await.unwrap());

    // `return` too.
    let early = lock!(a, "/m/lock" => {
        if observer.is_locked().await.unwrap() {
            return 7;
        }
        0
    })
    .unwrap();
    assert_eq!(early, 7);
    assert!(!observer.is_locked().await.unwrap());
}

#[tokio::test]
async fn try_and_timeout_forms_run_the_else_block_when_the_lock_is_busy() {
    let sessions = common::sessions("macro-try", 2).await;
    let (a, b) = (&sessions[0], &sessions[1]);
    let held = a.lock("/m/busy").unwrap().lock().await.unwrap();

    let got = lock!(try b, "/m/busy" => { "locked" } else { "busy" }).unwrap();
    assert_eq!(got, "busy");
    let none: Option<()> = lock!(try b, "/m/busy" => {}).unwrap();
    assert_eq!(none, None);
    let started = tokio::time::Instant::now();
    let got = lock!(b, "/m/busy", timeout = Duration::from_millis(200) => { 1 } else { 2 }).unwrap();
    assert_eq!(got, 2);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        b.lock("/m/busy").unwrap().queue_len().await.unwrap(),
        1,
        "no node left behind"
    );

    held.release().await.unwrap();
    let got = lock!(try b, "/m/busy" => { "locked" } else { "busy" }).unwrap();
    assert_eq!(got, "locked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_values_nest_reentrantly_and_exclude_other_sessions() {
    let sessions = common::sessions("macro-excl", 3).await;
    let inside = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for session in &sessions {
        let lock = session.lock("/m/excl").unwrap();
        let inside = inside.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                lock!(&lock => {
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "overlap");
                    // Reentrant: the same task enters again at once.
                    lock!(&lock => { assert_eq!(lock.hold_count(), 2) }).unwrap();
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn a_bad_runtime_path_is_an_error_and_the_block_does_not_run() {
    let session = common::session("macro-path").await;
    let path = String::from("no-leading-slash");
    let mut ran = false;
    let result = lock!(&session, path => { ran = true });
    assert!(matches!(result, Err(Error::InvalidPath { .. })), "{result:?}");
    assert!(!ran);
}
