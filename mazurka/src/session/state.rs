//! The session's state as the application sees it, and a stream of its changes.

use tokio::sync::watch;

/// The state of a [`Session`](super::Session), as Curator's `ConnectionState` names it.
///
/// ```text
///             disconnect               reconnect (same ZooKeeper session)
///  Connected ───────────▶ Suspended ──────────────────────────▶ Connected
///      ▲                      │ the server expired the session
///      │  new ZooKeeper       ▼
///      └───── session ───── Lost                 close() ──▶ Closed (final)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Connected to a server; everything the session holds is valid.
    Connected,
    /// Disconnected, trying to reconnect within the session timeout. Locks *may* be lost: do not
    /// start side effects that need them until `Connected` again.
    Suspended,
    /// The ZooKeeper session is lost: the server expired it, or — by the client's own clock —
    /// it may have, because the server has not been heard from for longer than the session
    /// timeout allows (Mazurka keeps a lower bound of when the server last heard from it, and
    /// declares the loss no later than one session timeout after that, before the server can
    /// hand a lock to someone else). Every lock and ephemeral node it held counts as lost.
    /// Mazurka establishes a new ZooKeeper session for new work and then reports `Connected`.
    Lost,
    /// Closed by the application ([`Session::close`](super::Session::close)), or ended because
    /// the server refused the credentials (calls then return
    /// [`Error::AuthFailed`](crate::Error::AuthFailed)); final.
    Closed,
}

/// What the session publishes on every change: the state and which ZooKeeper session is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) state: SessionState,
    /// Incremented each time a new ZooKeeper session replaces an expired one.
    pub(crate) generation: u64,
}

/// A stream of [`SessionState`] changes, from [`Session::states`](super::Session::states).
///
/// Like a `tokio::sync::watch` receiver, it yields the *latest* state: transitions that happen
/// faster than they are read are coalesced. A `Lost` that was coalesced away is still visible as a
/// change of [`Session::id`](super::Session::id).
#[derive(Debug, Clone)]
pub struct SessionStates {
    pub(crate) rx: watch::Receiver<Snapshot>,
}

impl SessionStates {
    /// The current state, marking it as seen.
    pub fn current(&mut self) -> SessionState {
        self.rx.borrow_and_update().state
    }

    /// Waits for the next change and returns the new state; `None` once the session is dropped.
    ///
    /// # Cancel safety
    /// Cancel safe: a change that arrives while no call is waiting is returned by the next call.
    pub async fn next(&mut self) -> Option<SessionState> {
        self.rx.changed().await.ok()?;
        Some(self.rx.borrow_and_update().state)
    }

    /// Waits until the state satisfies `pred` (checking the current state first) and returns it;
    /// `None` if the session is dropped first.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_for(&mut self, mut pred: impl FnMut(SessionState) -> bool) -> Option<SessionState> {
        let snapshot = self.rx.wait_for(|s| pred(s.state)).await.ok()?;
        Some(snapshot.state)
    }
}
