//! Session behaviour against real ZooKeeper servers: states across faults, expiry, ACLs, closing,
//! path checks and the request-size guard.

mod common;

use std::time::Duration;

use mazurka::testkit::{expire_session, FaultProxy, ZkServer};
use mazurka::{AclPolicy, Error, PathRule, Session, SessionState};
use tokio::time::timeout;

const BOUND: Duration = Duration::from_secs(15);

async fn wait_state(session: &Session, want: SessionState) {
    let mut states = session.states();
    timeout(BOUND, states.wait_for(|s| s == want))
        .await
        .unwrap_or_else(|_| panic!("session never reached {want:?} (now {:?})", session.state()))
        .expect("session dropped");
}

#[tokio::test]
async fn cut_and_heal_suspends_then_reconnects_the_same_session() {
    let server = common::server();
    let proxy = FaultProxy::start(server.addr()).unwrap();
    let session = Session::builder(proxy.connect_string())
        .session_timeout(Duration::from_secs(4))
        .connect()
        .await
        .unwrap();
    let id = session.id();
    assert_eq!(session.state(), SessionState::Connected);

    proxy.cut();
    wait_state(&session, SessionState::Suspended).await;
    proxy.heal();
    wait_state(&session, SessionState::Connected).await;
    assert_eq!(
        session.id(),
        id,
        "a reconnect within the session timeout keeps the ZooKeeper session"
    );

    // And it works.
    let lock = session.lock("/after-heal").unwrap();
    lock.lock().await.unwrap().release().await.unwrap();
}

#[tokio::test]
async fn expiry_reports_lost_then_new_work_runs_on_a_new_session() {
    let server = common::server();
    let proxy = FaultProxy::start(server.addr()).unwrap();
    let session = Session::builder(proxy.connect_string())
        .session_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let old_id = session.id();
    let mut states = session.states();
    states.current();

    expire_session(&session, &proxy).await.unwrap();
    // The stream saw the loss (Lost, or at least a new ZooKeeper session).
    let seen = timeout(
        BOUND,
        states.wait_for(|s| s == SessionState::Lost || s == SessionState::Connected),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(matches!(seen, SessionState::Lost | SessionState::Connected));

    // New work succeeds, on a new ZooKeeper session.
    let lock = session.lock("/after-expiry").unwrap();
    let guard = timeout(BOUND, lock.lock()).await.unwrap().unwrap();
    assert_ne!(
        session.id(),
        old_id,
        "after expiry, work runs on a new ZooKeeper session"
    );
    assert_eq!(session.state(), SessionState::Connected);
    guard.release().await.unwrap();
}

#[tokio::test]
async fn creator_only_acl_keeps_other_sessions_out() {
    let server = common::server();
    let chroot = mazurka::testkit::unique_chroot("acl");
    let owner = Session::builder(format!("{}{chroot}", server.connect_string()))
        .digest_auth("alice", "secret")
        .acl(AclPolicy::CreatorOnly)
        .connect()
        .await
        .unwrap();
    let lock = owner.lock("/private/lock").unwrap();
    let guard = lock.lock().await.unwrap();
    assert!(
        lock.holder().await.unwrap().is_some(),
        "the creator reads its own lock"
    );

    // A session without the digest: a permission error, never data.
    let stranger = Session::connect(server.connect_string()).await.unwrap();
    let theirs = stranger.lock(format!("{chroot}/private/lock")).unwrap();
    match theirs.holder().await {
        Err(Error::PermissionDenied { .. }) => {}
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    match theirs.try_lock().await {
        Err(Error::PermissionDenied { .. }) => {}
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    // A session with the same digest gets in.
    let friend = Session::builder(server.connect_string())
        .digest_auth("alice", "secret")
        .connect()
        .await
        .unwrap();
    let friends = friend.lock(format!("{chroot}/private/lock")).unwrap();
    assert_eq!(friends.queue_len().await.unwrap(), 1);
    guard.release().await.unwrap();
}

#[tokio::test]
async fn creator_only_without_credentials_is_a_config_error() {
    let err = Session::builder(common::server().connect_string())
        .acl(AclPolicy::CreatorOnly)
        .connect()
        .await;
    assert!(matches!(err, Err(Error::Config(_))), "{err:?}");
}

#[tokio::test]
async fn bad_paths_are_rejected_before_any_request() {
    let session = common::session("paths").await;
    let cases: &[(&str, PathRule)] = &[
        ("", PathRule::Empty),
        ("locks/a", PathRule::NoLeadingSlash),
        ("/locks/", PathRule::TrailingSlash),
        ("/locks//a", PathRule::EmptySegment),
        ("/locks/./a", PathRule::RelativeSegment),
        ("/locks/../a", PathRule::RelativeSegment),
        ("/locks/a\u{0}b", PathRule::ForbiddenCharacter),
        ("/locks/a\u{7f}", PathRule::ForbiddenCharacter),
        ("/zookeeper", PathRule::Reserved),
        ("/zookeeper/quota", PathRule::Reserved),
    ];
    for (path, rule) in cases {
        match session.lock(*path) {
            Err(Error::InvalidPath { rule: got, path: p }) => {
                assert_eq!(got, *rule, "{path:?}");
                assert_eq!(p, *path);
            }
            other => panic!("{path:?}: expected InvalidPath({rule:?}), got {other:?}"),
        }
    }
    // The message says which rule and how to fix it.
    let msg = session.lock("locks/a").unwrap_err().to_string();
    assert!(msg.contains("must start with '/'"), "{msg}");
    // Bad chroots too, at connect time.
    let err = Session::builder(common::server().connect_string())
        .chroot("app")
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidPath {
                rule: PathRule::NoLeadingSlash,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn oversized_writes_are_refused_before_sending_and_the_session_stays_healthy() {
    let session = common::session("size").await;
    let lock = session.lock("/size/lock").unwrap();
    let guard = lock.lock().await.unwrap();

    // Meanwhile other requests of the same session keep succeeding.
    let busy = {
        let session = session.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                let l = session.lock(format!("/size/other-{i}")).unwrap();
                l.lock().await.unwrap().release().await.unwrap();
            }
        })
    };
    let too_big = vec![7u8; 2 * 1024 * 1024];
    for _ in 0..5 {
        match guard
            .fenced()
            .create("/size/big", too_big.clone())
            .unwrap()
            .commit()
            .await
        {
            Err(Error::ValueTooLarge {
                frame_bytes,
                limit_bytes,
                payload_bytes,
                ..
            }) => {
                assert_eq!(payload_bytes, too_big.len());
                assert!(frame_bytes > limit_bytes);
                assert_eq!(limit_bytes, 1_048_575);
            }
            other => panic!("expected ValueTooLarge, got {other:?}"),
        }
    }
    busy.await.unwrap();

    // The guard is exact: the largest payload it lets through is accepted by the server, one
    // byte more is refused before sending.
    let mut size = 1_048_575;
    let accepted = loop {
        let data = vec![1u8; size];
        match guard.fenced().create("/size/edge", data).unwrap().commit().await {
            Err(Error::ValueTooLarge { .. }) => size -= 1,
            Ok(()) => break size,
            Err(other) => panic!("payload of {size} bytes passed the guard but failed: {other}"),
        }
    };
    assert!(accepted > 1_048_000, "the guard is too strict: {accepted}");
    assert_eq!(session.state(), SessionState::Connected);
    guard.release().await.unwrap();
}

#[tokio::test]
async fn close_releases_everything_and_later_calls_say_closed() {
    let sessions = common::sessions("close", 2).await;
    let (a, b) = (&sessions[0], &sessions[1]);
    let held = a.lock("/close/lock").unwrap().lock().await.unwrap();
    a.close().await.unwrap();
    assert_eq!(a.state(), SessionState::Closed);
    // The ephemeral node went with the session: the other session gets the lock at once.
    let other = b.lock("/close/lock").unwrap();
    let guard = timeout(BOUND, other.lock()).await.unwrap().unwrap();
    assert!(matches!(held.release().await, Err(Error::SessionLost)));
    assert!(matches!(
        a.lock("/close/x").unwrap().lock().await,
        Err(Error::Closed)
    ));
    guard.release().await.unwrap();
}

#[tokio::test]
async fn connecting_to_nothing_says_so() {
    // A port nobody listens on: bind and drop.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Session::builder(format!("127.0.0.1:{port}"))
        .session_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("no server answered"), "{err}");
}

#[test]
fn a_session_needs_a_runtime() {
    let err = futures_lite_block_on(Session::connect("127.0.0.1:1"));
    assert!(
        matches!(err, Err(Error::Config(ref m)) if m.contains("tokio runtime")),
        "{err:?}"
    );
}

/// Polls a future to completion on the current thread without a tokio runtime.
fn futures_lite_block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Noop;
    impl Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let waker = Waker::from(std::sync::Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

#[test]
fn the_shared_server_is_shared() {
    let a = ZkServer::shared().unwrap() as *const ZkServer;
    let b = ZkServer::shared().unwrap() as *const ZkServer;
    assert_eq!(a, b);
}

// ---- Credentials -------------------------------------------------------------------------------
//
// With ZooKeeper's plain `digest` scheme any `user:password` is accepted as an identity (a wrong
// password is just another identity, kept out by ACLs: see `creator_only_acl_keeps_other_sessions_out`).
// A server answers `AuthFailed` when an authentication provider rejects the credentials: a custom
// provider registered for the scheme (`zookeeper.authProvider.N`), SASL, or — what these tests
// use, as it needs no code on the server — a server whose digest provider is switched off
// (`zookeeper.DigestAuthenticationProvider.enabled=false`, ZooKeeper 3.7+): "No authentication
// provider for scheme: digest", AuthFailed, connection closed.

const PASSWORD: &str = "s3cret-pw-that-must-not-show";

fn refusing_digest() -> mazurka::testkit::ZkServerBuilder {
    ZkServer::builder().jvm_arg("-Dzookeeper.DigestAuthenticationProvider.enabled=false")
}

#[test]
fn debug_output_never_shows_the_password() {
    let builder = Session::builder("127.0.0.1:2181/app")
        .digest_auth("alice", PASSWORD)
        .acl(AclPolicy::CreatorOnly);
    for shown in [format!("{builder:?}"), format!("{builder:#?}")] {
        assert!(!shown.contains(PASSWORD), "the password shows: {shown}");
        assert!(shown.contains("alice"), "{shown}");
    }
}

/// Calls on a session whose credentials were refused: the typed error at once, naming the user
/// and what to fix, never the password.
async fn assert_refused_promptly(session: &Session) {
    let started = std::time::Instant::now();
    for _ in 0..3 {
        match session.exists("/anything").await {
            Err(err @ Error::AuthFailed { .. }) => {
                let message = err.to_string();
                assert!(
                    message.contains("alice") && message.contains("digest_auth"),
                    "{message}"
                );
                assert!(!message.contains(PASSWORD), "{message}");
                assert!(!format!("{err:?}").contains(PASSWORD));
            }
            other => panic!("expected AuthFailed, got {other:?}"),
        }
    }
    let lock = session.lock("/l").unwrap();
    assert!(matches!(lock.try_lock().await, Err(Error::AuthFailed { .. })));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "calls must fail at once, took {:?}",
        started.elapsed()
    );
    assert_eq!(session.state(), SessionState::Closed);
}

/// Waits until `session` ended for good, then checks that it stays so: one refused attempt in
/// the refusing server's log, and none more over a window of several reconnect backoffs.
async fn assert_ended_without_retrying(session: &Session, refusing: &ZkServer) {
    let refusals = || {
        refusing
            .log_tail(100_000)
            .matches("No authentication provider for scheme: digest")
            .count()
    };
    wait_state(session, SessionState::Closed).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        refusals(),
        1,
        "the session must present refused credentials once, then stop (no reconnect loop)"
    );
    assert_refused_promptly(session).await;
}

#[tokio::test]
async fn refused_credentials_fail_connect_with_a_typed_error_in_bounded_time() {
    let server = refusing_digest().start().unwrap();
    let started = std::time::Instant::now();
    let result = timeout(
        BOUND,
        Session::builder(server.connect_string())
            .digest_auth("alice", PASSWORD)
            .session_timeout(Duration::from_secs(2))
            .connect(),
    )
    .await
    .expect("connect with refused credentials must not hang");
    let err = result.expect_err("the server refuses the digest scheme");
    assert!(matches!(err, Error::AuthFailed { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("alice") && message.contains("digest_auth"),
        "{message}"
    );
    assert!(!message.contains(PASSWORD), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn credentials_refused_for_a_replacement_session_end_the_session() {
    let refusing = refusing_digest().start().unwrap();
    let proxy = FaultProxy::start(common::server().addr()).unwrap();
    let session = Session::builder(proxy.connect_string())
        .digest_auth("alice", PASSWORD)
        .session_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    session.exists("/").await.unwrap();
    // From now on the only server the client reaches refuses the credentials. It does not know
    // the session either: the client hears Expired, and Mazurka opens a new ZooKeeper session
    // there for new work — whose authentication is refused.
    proxy.set_upstream(refusing.addr());
    proxy.cut();
    proxy.heal();
    assert_ended_without_retrying(&session, &refusing).await;
}

#[tokio::test]
async fn credentials_refused_on_a_reconnect_of_the_same_session_end_the_session() {
    // Sessions outlive a server restart (they are in the transaction log). Server B starts from
    // a copy of server A's data, so it knows the session — but refuses the digest scheme: the
    // client reconnects its session there and presents its credentials again, refused.
    let long = |b: mazurka::testkit::ZkServerBuilder| b.max_session_timeout(Duration::from_secs(30));
    let a = long(ZkServer::builder()).start().unwrap();
    let b = long(refusing_digest()).start().unwrap();
    b.stop().unwrap();
    let proxy = FaultProxy::start(a.addr()).unwrap();
    let session = Session::builder(proxy.connect_string())
        .digest_auth("alice", PASSWORD)
        .session_timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap();
    session.exists("/").await.unwrap();
    let mut states = session.states();
    let seen = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(state) = states.next().await {
            seen.push(state);
            if state == SessionState::Closed {
                break;
            }
        }
        seen
    });
    a.stop().unwrap();
    let (from, to) = (a.data_dir().join("version-2"), b.data_dir().join("version-2"));
    std::fs::remove_dir_all(&to).unwrap();
    std::fs::create_dir(&to).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    proxy.set_upstream(b.addr());
    b.restart().unwrap();
    assert_ended_without_retrying(&session, &b).await;
    // The same ZooKeeper session was refused on its reconnect: it was never reported lost.
    let seen = timeout(BOUND, seen).await.unwrap().unwrap();
    assert!(!seen.contains(&SessionState::Lost), "{seen:?}");
}
