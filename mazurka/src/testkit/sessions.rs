//! Session-aware test support: sessions in fresh chroots, and session expiry on demand.

use std::time::Duration;

use super::{unique_chroot, FaultProxy};
use crate::error::{Error, Result};
use crate::session::{Session, SessionState};

/// A session on `connect_string` in a chroot of its own (`/<prefix>-<pid>-<n>-<random>`), with a
/// short session timeout (2 s, within a test server's 0.4–4 s range).
///
/// # Errors
/// As [`Session::connect`].
///
/// # Cancel safety
/// Cancel safe.
pub async fn session_in_fresh_chroot(connect_string: &str, prefix: &str) -> Result<Session> {
    Session::builder(connect_string)
        .chroot(unique_chroot(prefix))
        .session_timeout(Duration::from_secs(2))
        .connect()
        .await
}

/// Expires `session`'s current ZooKeeper session on the server, for real, and waits until the
/// session has noticed (state [`SessionState::Lost`] or already a new ZooKeeper session).
///
/// `session` must be connected through `proxy`. The recipe (DESIGN §9): cut the proxy, connect a
/// second client with the same session id and password straight to the server and close it —
/// the server ends the session — then heal the proxy: the first client hears `Expired` on
/// reconnect. Without the proxy, the two clients would race for the session.
///
/// # Errors
/// [`Error::Timeout`] if the session did not notice within 10 s; connection errors of the twin.
///
/// # Cancel safety
/// Not cancel safe: cancelling may leave the proxy cut.
pub async fn expire_session(session: &Session, proxy: &FaultProxy) -> Result<()> {
    let generation = session.generation();
    let mut states = session.states();
    proxy.cut();
    let closed = session.close_remotely(&proxy.upstream().to_string()).await;
    proxy.heal();
    closed?;
    let bound = Duration::from_secs(10);
    tokio::time::timeout(
        bound,
        states
            .rx
            .wait_for(|s| s.generation != generation || s.state == SessionState::Lost),
    )
    .await
    .map_err(|_| Error::Timeout {
        operation: "waiting for the session to notice its expiry",
        after: bound,
    })?
    .map_err(|_| Error::Closed)?;
    Ok(())
}
