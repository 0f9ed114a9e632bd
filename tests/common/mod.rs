//! Shared by the test binaries: each binary shares one ZooKeeper server (a JVM start costs
//! seconds); each test gets a chroot of its own on it.

#![allow(dead_code)]

use mazurka::testkit::{session_in_fresh_chroot, FaultProxy, ZkServer};
use mazurka::Session;

/// The test binary's shared server.
pub fn server() -> &'static ZkServer {
    match ZkServer::shared() {
        Ok(server) => server,
        Err(err) => panic!("cannot start the shared ZooKeeper server: {err}"),
    }
}

/// `n` sessions in one fresh chroot on the shared server.
pub async fn sessions(prefix: &str, n: usize) -> Vec<Session> {
    let first = session_in_fresh_chroot(&server().connect_string(), prefix)
        .await
        .expect("connect");
    let chroot = first.chroot().expect("chroot").to_string();
    let mut all = vec![first];
    for _ in 1..n {
        all.push(
            Session::builder(format!("{}{chroot}", server().connect_string()))
                .session_timeout(std::time::Duration::from_secs(2))
                .connect()
                .await
                .expect("connect"),
        );
    }
    all
}

/// One session in a fresh chroot on the shared server.
pub async fn session(prefix: &str) -> Session {
    sessions(prefix, 1).await.remove(0)
}

/// Waits for `cond` to hold, polling an async probe — for states that have no event to await
/// (such as a container node being reaped by the server). Fails the test after `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !probe().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A session in `chroot` on the shared server, connected through `proxy` (so that a test can cut
/// or stall it), with `session_timeout`.
pub async fn proxied(proxy: &FaultProxy, chroot: &str, session_timeout: std::time::Duration) -> Session {
    Session::builder(format!("{}{chroot}", proxy.connect_string()))
        .session_timeout(session_timeout)
        .connect()
        .await
        .unwrap()
}

/// A session in `chroot` straight to the shared server (default settings).
pub async fn direct(chroot: &str) -> Session {
    Session::connect(format!("{}{chroot}", server().connect_string()))
        .await
        .unwrap()
}
