//! The connection to ZooKeeper that every primitive shares.
//!
//! This is the only module that names `zookeeper_client` types (clippy's `disallowed-types`
//! enforces it elsewhere); the rest of Mazurka speaks the small crate-private vocabulary in
//! `ops`: create, read with version, versioned write, delete, multi, multi-read, watches.

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod acl;
mod credentials;
mod frame;
mod lease;
mod ops;
mod state;

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::time::Instant;
use zookeeper_client as zk;

use crate::error::{Error, Result, ZkErrorCode};
use crate::path::ZnodePath;
use credentials::Credentials;

pub(crate) use ops::{CreateMode, MultiOp, MultiOutcome, NodeEvent, NodeWatch, Stat};
pub(crate) use state::Snapshot;
pub use state::{SessionState, SessionStates};

/// Who may do what with the znodes a session creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AclPolicy {
    /// Anyone may read and write (ZooKeeper's `world:anyone` ALL). The default, as in Curator.
    #[default]
    Open,
    /// Only sessions authenticated as the creator may access the znode (`auth` ALL). Needs
    /// [`SessionBuilder::digest_auth`]; other sessions get [`Error::PermissionDenied`].
    CreatorOnly,
    /// The creator may do everything, everyone else may read.
    CreatorAllAnyoneRead,
}

static CREATOR_ALL_ANYONE_READ: [zk::Acl; 2] = [
    zk::Acl::new_const(zk::Permission::ALL, "auth", ""),
    zk::Acl::new_const(zk::Permission::READ, "world", "anyone"),
];

impl AclPolicy {
    fn acls(self) -> zk::Acls<'static> {
        match self {
            AclPolicy::Open => zk::Acls::anyone_all(),
            AclPolicy::CreatorOnly => zk::Acls::creator_all(),
            AclPolicy::CreatorAllAnyoneRead => zk::Acls::new(&CREATOR_ALL_ANYONE_READ),
        }
    }

    /// Bytes the ACL list takes in a create request.
    fn wire_len(self) -> usize {
        4 + self
            .acls()
            .iter()
            .map(|a| frame::acl_len(a.scheme(), a.id()))
            .sum::<usize>()
    }
}

/// Settings for a [`Session`]; obtained from [`Session::builder`].
#[derive(Debug, Clone)]
#[must_use = "a SessionBuilder does nothing until .connect().await"]
pub struct SessionBuilder {
    connect_string: String,
    session_timeout: Duration,
    connection_timeout: Duration,
    chroot: Option<String>,
    /// `Debug` shows the user, never the password.
    digest: Option<Credentials>,
    acl: AclPolicy,
}

impl SessionBuilder {
    /// How long the server keeps the session (and its locks) alive without hearing from us.
    /// The server clamps it to 2–20 × its tickTime. Default 10 s.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// How long one connection attempt to one server may take before trying the next. Default:
    /// a third of the session timeout. The ZooKeeper client also calls a connection dead after
    /// this long without a word from the server; it gets at most 2/5 of the session timeout for
    /// that, so that the client's own clock can declare the session lost before the server can
    /// expire it (see [`SessionState::Lost`]).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Runs every path of this session below `root` (created if absent), like a connect string's
    /// `/suffix` or Curator's namespace. Checked when connecting.
    pub fn chroot(mut self, root: impl Into<String>) -> Self {
        self.chroot = Some(root.into());
        self
    }

    /// Authenticates with ZooKeeper's `digest` scheme (`user:password`), so that
    /// [`AclPolicy::CreatorOnly`] znodes are readable by sessions that present the same digest.
    /// The password never shows in `Debug` output or error messages. If the server refuses the
    /// credentials, `connect` fails (or, later, the session ends) with [`Error::AuthFailed`].
    pub fn digest_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.digest = Some(Credentials::digest(user.into(), password.into()));
        self
    }

    /// The ACL given to every znode this session creates. Default [`AclPolicy::Open`].
    ///
    /// Under a restrictive policy, a znode the session would create but finds already there (a
    /// lock directory, a parent, a ref, the chroot) is used only if its ACL gives nobody else
    /// more than the policy does; otherwise the call fails with [`Error::WeakAcl`].
    pub fn acl(mut self, policy: AclPolicy) -> Self {
        self.acl = policy;
        self
    }

    /// Connects, creating the chroot if it is missing.
    ///
    /// # Errors
    /// [`Error::Config`] for bad settings (a chroot path that breaks a rule gives
    /// [`Error::InvalidPath`]); [`Error::Connect`] when no server answered within the session
    /// timeout; [`Error::AuthFailed`] when the server refused the credentials;
    /// [`Error::WeakAcl`] when, under a restrictive [`AclPolicy`], the chroot exists with a
    /// weaker ACL.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future abandons the half-made connection, which closes itself.
    pub async fn connect(self) -> Result<Session> {
        let runtime = Handle::try_current()
            .map_err(|_| Error::Config("Session::connect must be called inside a tokio runtime".into()))?;
        let config = Arc::new(self.into_config()?);
        let client = config.new_client().await?;
        let session_id = client.session_id().0;
        let (tx, _) = watch::channel(Snapshot {
            state: SessionState::Connected,
            generation: 0,
        });
        let inner = Arc::new(Inner {
            config,
            current: Mutex::new(Some(Current {
                client: client.clone(),
                generation: 0,
            })),
            states: tx,
            epoch: AtomicU64::new(0),
            lease: lease::Lease::new(),
            runtime: runtime.clone(),
            registry: Mutex::new(HashMap::new()),
            verified: acl::Verified::default(),
            auth_failed: AtomicBool::new(false),
        });
        runtime.spawn(supervise(Arc::downgrade(&inner), client.state_watcher(), 0));
        tracing::debug!(
            session = format_args!("{session_id:#x}"),
            "mazurka session connected"
        );
        Ok(Session { inner })
    }

    fn into_config(self) -> Result<Config> {
        let (hosts, suffix) = match self.connect_string.find('/') {
            Some(i) => (
                self.connect_string[..i].to_owned(),
                Some(self.connect_string[i..].to_owned()),
            ),
            None => (self.connect_string.clone(), None),
        };
        if hosts.trim().is_empty() {
            return Err(Error::Config(format!(
                "connect string {:?} names no server; use \"host:port[,host:port…][/chroot]\"",
                self.connect_string
            )));
        }
        let chroot = match (suffix, self.chroot) {
            (Some(a), Some(b)) => {
                return Err(Error::Config(format!(
                    "chroot given twice: {a:?} in the connect string and {b:?} in the builder; keep one"
                )))
            }
            (Some(c), None) | (None, Some(c)) => Some(ZnodePath::new(c)?).filter(|p| !p.is_root()),
            (None, None) => None,
        };
        if self.session_timeout > Duration::from_secs(24 * 3600)
            || self.connection_timeout > Duration::from_secs(24 * 3600)
        {
            return Err(Error::Config(format!(
                "session timeout {:?} / connection timeout {:?} too long: ZooKeeper caps sessions at 20 ticks (40 s by default); use at most a day",
                self.session_timeout, self.connection_timeout
            )));
        }
        if self.session_timeout < Duration::from_millis(100) {
            return Err(Error::Config(format!(
                "session timeout {:?} is too short (minimum 100 ms)",
                self.session_timeout
            )));
        }
        if matches!(self.acl, AclPolicy::CreatorOnly | AclPolicy::CreatorAllAnyoneRead)
            && self.digest.is_none()
        {
            return Err(Error::Config(format!(
                "{:?} needs an authenticated session: add .digest_auth(user, password)",
                self.acl
            )));
        }
        let connection_timeout = if self.connection_timeout.is_zero() {
            self.session_timeout / 3
        } else {
            self.connection_timeout
        };
        Ok(Config {
            connect_string: self.connect_string,
            hosts,
            chroot,
            session_timeout: self.session_timeout,
            connection_timeout,
            digest: self.digest,
            acl: self.acl,
        })
    }
}

#[derive(Debug)]
struct Config {
    connect_string: String,
    hosts: String,
    chroot: Option<ZnodePath>,
    session_timeout: Duration,
    connection_timeout: Duration,
    /// `Debug` shows the user, never the password.
    digest: Option<Credentials>,
    acl: AclPolicy,
}

impl Config {
    fn connector(&self) -> zk::Connector {
        let mut connector = zk::Client::connector()
            .with_session_timeout(self.session_timeout)
            .with_connection_timeout(self.zk_connection_timeout());
        if let Some(credentials) = &self.digest {
            connector = connector.with_auth("digest", &credentials.auth_bytes());
        }
        connector
    }

    /// The connection timeout the ZooKeeper client gets: at most 2/5 of the session timeout, so
    /// that a silent server is noticed early enough for the client's own clock (see [`lease`]).
    fn zk_connection_timeout(&self) -> Duration {
        lease::clamp_connection_timeout(self.connection_timeout, self.session_timeout)
    }

    fn connect_error(&self, reason: impl std::fmt::Display) -> Error {
        Error::Connect {
            connect_string: self.connect_string.clone(),
            reason: reason.to_string(),
        }
    }

    /// A new ZooKeeper session, chrooted (the chroot created first if missing).
    async fn new_client(&self) -> Result<zk::Client> {
        let bound = self
            .session_timeout
            .saturating_add(self.connection_timeout)
            .saturating_add(Duration::from_secs(2));
        let client = match tokio::time::timeout(bound, self.connector().connect(&self.hosts)).await {
            Ok(Ok(client)) => client,
            Ok(Err(zk::Error::AuthFailed)) => return Err(self.auth_failed()),
            Ok(Err(zk::Error::Timeout)) | Err(_) => {
                return Err(self.connect_error(format!(
                    "no server answered within {bound:?}; is ZooKeeper running there? (the test kit can start one: \
                     mazurka::testkit::ZkServer::start())"
                )))
            }
            Ok(Err(err)) => return Err(self.connect_error(err)),
        };
        let Some(root) = &self.chroot else {
            return Ok(client);
        };
        let options = zk::CreateMode::Persistent.with_acls(self.acl.acls());
        match client.mkdir(root.as_str(), &options).await {
            Ok(()) => {}
            Err(zk::Error::AuthFailed) => return Err(self.auth_failed()),
            Err(zk::Error::NoAuth) => {}
            Err(err) => return Err(self.connect_error(format!("cannot create chroot {root}: {err}"))),
        }
        if self.acl != AclPolicy::Open {
            // Everything the session creates hangs below the chroot: it must be as closed as the
            // policy, whoever made it (see `acl`). Its ancestors are the operator's business.
            let own = self.digest.as_ref().map_or("", Credentials::acl_id);
            match acl::check_now(&client, root.as_str(), self.acl, own).await {
                Ok(acl::Found::Strong) => {}
                Ok(acl::Found::Missing) => {
                    return Err(self.connect_error(format!(
                    "cannot create chroot {root}: its parent does not let this session create it; create it \
                         as an administrator, or choose another chroot"
                )))
                }
                Err(Error::AuthFailed { .. }) => return Err(self.auth_failed()),
                Err(err) => return Err(err),
            }
        }
        client
            .chroot(root.as_str())
            .map_err(|_| self.connect_error(format!("bad chroot {root}")))
    }

    /// The error for credentials the server refused (see [`Error::AuthFailed`]).
    fn auth_failed(&self) -> Error {
        Error::AuthFailed {
            user: self.digest.as_ref().map_or_else(
                || "a session without credentials (the server requires authentication: SessionBuilder::digest_auth)".into(),
                Credentials::describe,
            ),
        }
    }

    fn chroot_len(&self) -> usize {
        self.chroot.as_ref().map_or(0, |c| c.as_str().len())
    }
}

impl Inner {
    /// The server refused the session's credentials (on a reconnect, or for a replacement
    /// ZooKeeper session). Every retry would be refused too, so instead of reconnecting forever
    /// the session ends for good: state `Closed`, and every call gets [`Error::AuthFailed`].
    fn end_for_auth(&self) {
        tracing::error!(
            "ZooKeeper refused the credentials of {}; the session is closed",
            self.config
                .digest
                .as_ref()
                .map_or_else(|| "a session without credentials".into(), Credentials::describe)
        );
        // Before the client goes: whoever finds it gone must find the reason too.
        self.auth_failed.store(true, Ordering::Release);
        let client = self.current.lock().map(|mut c| c.take()).unwrap_or(None);
        self.lease.end();
        self.update(|s| {
            let changed = s.state != SessionState::Closed;
            s.state = SessionState::Closed;
            changed
        });
        drop(client);
    }

    /// Changes the published snapshot (and the epoch with it); `change` says whether it changed.
    fn update(&self, change: impl FnOnce(&mut Snapshot) -> bool) {
        self.states.send_if_modified(|s| {
            let changed = change(s);
            let invalid = matches!(s.state, SessionState::Lost | SessionState::Closed);
            self.epoch
                .store(s.generation << 1 | u64::from(invalid), Ordering::Release);
            changed
        });
    }
}

struct Current {
    client: zk::Client,
    generation: u64,
}

struct Inner {
    config: Arc<Config>,
    /// `None` once closed.
    current: Mutex<Option<Current>>,
    states: watch::Sender<Snapshot>,
    /// `generation << 1`, plus 1 while that generation is lost or closed: lets hot paths (a
    /// reentrant lock) check "is what I hold still valid" with one atomic load.
    epoch: AtomicU64,
    /// Until when the current ZooKeeper session surely lives on the server (see [`lease`]).
    lease: lease::Lease,
    /// The runtime the session was created on: ZooKeeper clients die with it, and `Drop`s use it.
    runtime: Handle,
    /// Process-local state shared by every handle on the same primitive (e.g. a lock's holder and
    /// hold count), keyed by kind and path.
    registry: Mutex<HashMap<String, Weak<dyn Any + Send + Sync>>>,
    /// Existing znodes whose ACL was found as strong as the policy (see [`acl`]).
    verified: acl::Verified,
    /// Set when the server refused the credentials: the session ended for good (see
    /// [`Inner::end_for_auth`]).
    auth_failed: AtomicBool,
}

/// A shared connection to a ZooKeeper ensemble; cheap to clone, used by every primitive.
///
/// It follows the ZooKeeper session through its life: [`SessionState::Suspended`] while
/// disconnected, [`SessionState::Lost`] when the server expires it, after which Mazurka opens a
/// new ZooKeeper session for new work. What the old one held is reported lost, never silently
/// re-acquired.
///
/// ```no_run
/// # async fn demo() -> mazurka::Result<()> {
/// use std::time::Duration;
/// let session = mazurka::Session::builder("127.0.0.1:2181")
///     .session_timeout(Duration::from_secs(6))
///     .chroot("/my-app")
///     .connect()
///     .await?;
/// assert_eq!(session.state(), mazurka::SessionState::Connected);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("connect_string", &self.inner.config.connect_string)
            .field("id", &format_args!("{:#x}", self.id()))
            .field("state", &self.state())
            .finish()
    }
}

impl Session {
    /// Connects with default settings; the connect string is `host:port[,host:port…][/chroot]`.
    ///
    /// # Errors
    /// As [`SessionBuilder::connect`].
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn connect(connect_string: impl Into<String>) -> Result<Session> {
        Session::builder(connect_string).connect().await
    }

    /// A builder for the less common settings.
    pub fn builder(connect_string: impl Into<String>) -> SessionBuilder {
        SessionBuilder {
            connect_string: connect_string.into(),
            session_timeout: Duration::from_secs(10),
            connection_timeout: Duration::ZERO,
            chroot: None,
            digest: None,
            acl: AclPolicy::Open,
        }
    }

    /// The current state.
    pub fn state(&self) -> SessionState {
        self.inner.states.borrow().state
    }

    /// A stream of state changes.
    pub fn states(&self) -> SessionStates {
        SessionStates {
            rx: self.inner.states.subscribe(),
        }
    }

    /// The current ZooKeeper session id (changes after an expiry; 0 once closed).
    pub fn id(&self) -> i64 {
        self.current().map_or(0, |(c, _)| c.session_id().0)
    }

    /// The negotiated session timeout of the current ZooKeeper session.
    pub fn session_timeout(&self) -> Duration {
        self.current()
            .map_or(self.inner.config.session_timeout, |(c, _)| c.session_timeout())
    }

    /// The chroot every path is relative to, if any.
    pub fn chroot(&self) -> Option<&ZnodePath> {
        self.inner.config.chroot.as_ref()
    }

    /// Closes the ZooKeeper session: its ephemeral nodes (and so its locks) go at once instead of
    /// after the session timeout. Every clone of this `Session` is closed.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for reporting a close the server did not confirm.
    ///
    /// # Cancel safety
    /// Cancel safe: the close is under way once this is first polled.
    pub async fn close(&self) -> Result<()> {
        let current = self.inner.current.lock().map(|mut c| c.take()).unwrap_or(None);
        let Some(Current { client, .. }) = current else {
            return Ok(());
        };
        let mut watcher = client.state_watcher();
        drop(client);
        self.inner.update(|s| {
            s.state = SessionState::Closed;
            true
        });
        // Wait (bounded) until the server confirmed; in-flight requests keep the client alive.
        let _ = tokio::time::timeout(self.inner.config.connection_timeout, async {
            while !watcher.changed().await.is_terminated() {}
        })
        .await;
        Ok(())
    }

    /// Whether a znode exists (one request). For inspection and tests; primitives have their own
    /// accessors.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] before any request; session and ZooKeeper errors.
    ///
    /// # Cancel safety
    /// Cancel safe (read only).
    pub async fn exists(&self, path: &str) -> Result<bool> {
        let path = ZnodePath::new(path)?;
        Ok(self.get(path.as_str()).await?.is_some())
    }

    /// The names of a znode's children, sorted (one request); empty if the znode does not exist.
    /// For inspection and tests.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] before any request; session and ZooKeeper errors.
    ///
    /// # Cancel safety
    /// Cancel safe (read only).
    pub async fn list_children(&self, path: &str) -> Result<Vec<String>> {
        let path = ZnodePath::new(path)?;
        match self.children(path.as_str()).await {
            Ok(mut children) => {
                children.sort();
                Ok(children)
            }
            Err(Error::ZooKeeper {
                code: ZkErrorCode::NoNode,
                ..
            }) => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    }

    /// What a call on a closed session gets: [`Error::AuthFailed`] if the server's refusal of the
    /// credentials closed it, else [`Error::Closed`].
    pub(crate) fn closed_error(&self) -> Error {
        if self.inner.auth_failed.load(Ordering::Acquire) {
            self.inner.config.auth_failed()
        } else {
            Error::Closed
        }
    }

    /// The current client and its generation, if not closed.
    fn current(&self) -> Option<(zk::Client, u64)> {
        let guard = self.inner.current.lock().ok()?;
        guard.as_ref().map(|c| (c.client.clone(), c.generation))
    }

    /// Whether `other` is a clone of this session.
    pub(crate) fn same_as(&self, other: &Session) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The runtime the session lives on (for spawning from `Drop`).
    pub(crate) fn runtime(&self) -> &Handle {
        &self.inner.runtime
    }

    /// Whether ZooKeeper session `generation` is still the current one and not lost or closed —
    /// what a held lock's validity comes down to. One atomic load.
    #[inline]
    pub(crate) fn is_valid(&self, generation: u64) -> bool {
        self.inner.epoch.load(Ordering::Acquire) == generation << 1
    }

    /// Whether what ZooKeeper session `generation` holds is still surely held: the session is
    /// current, not lost or closed, and — by the client's own clock — the server cannot have
    /// expired it yet. For the moments that decide (a lock handed out, a fenced write sent, a
    /// holder's state); hot paths use [`Session::is_valid`], which the supervisor keeps in step
    /// within a heartbeat.
    pub(crate) fn holds(&self, generation: u64) -> bool {
        self.is_valid(generation) && self.inner.lease.runs_at(Instant::now())
    }

    /// The generation of the current ZooKeeper session (see [`Snapshot::generation`]).
    pub(crate) fn generation(&self) -> u64 {
        self.inner.states.borrow().generation
    }

    /// The process-local state for `key`, created with `T::default()` if no live handle has it.
    /// Every handle of this session on the same key gets the same `Arc`.
    pub(crate) fn shared_state<T: Default + Send + Sync + 'static>(&self, key: &str) -> Arc<T> {
        let Ok(mut registry) = self.inner.registry.lock() else {
            return Arc::new(T::default());
        };
        if let Some(existing) = registry.get(key).and_then(Weak::upgrade) {
            if let Ok(typed) = existing.downcast::<T>() {
                return typed;
            }
        }
        registry.retain(|_, weak| weak.strong_count() > 0);
        let fresh = Arc::new(T::default());
        let erased: Arc<dyn Any + Send + Sync> = fresh.clone();
        registry.insert(key.to_owned(), Arc::downgrade(&erased));
        fresh
    }

    pub(crate) fn acl(&self) -> AclPolicy {
        self.inner.config.acl
    }
}

/// Follows one ZooKeeper client after another: each until it is lost — expired by the server, or
/// declared lost by the client's own clock ([`lease`]) — then replaces it with a new ZooKeeper
/// session (generation + 1), retrying with backoff while no server answers.
async fn supervise(inner: Weak<Inner>, mut watcher: zk::StateWatcher, mut generation: u64) {
    loop {
        if !follow(&inner, &mut watcher, generation).await {
            return;
        }
        tracing::warn!(
            generation,
            "ZooKeeper session lost; opening a new one for new work"
        );
        let Some(config) = inner.upgrade().map(|strong| strong.config.clone()) else {
            return;
        };
        let mut backoff = Duration::from_millis(50);
        let client = loop {
            match config.new_client().await {
                Ok(client) => break client,
                Err(Error::AuthFailed { .. }) => {
                    if let Some(strong) = inner.upgrade() {
                        strong.end_for_auth();
                    }
                    return;
                }
                Err(err) => {
                    tracing::warn!(%err, "reconnect failed; retrying");
                    if inner.strong_count() == 0 {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        };
        let Some(strong) = inner.upgrade() else { return };
        generation += 1;
        watcher = client.state_watcher();
        {
            let Ok(mut current) = strong.current.lock() else {
                return;
            };
            if current.is_none() {
                return; // closed while reconnecting: the new client is dropped (and closes) here
            }
            // The old client goes here: if it can still reach the server, it closes its session,
            // and the locks it held are freed at once.
            *current = Some(Current { client, generation });
        }
        strong.update(|s| {
            s.state = SessionState::Connected;
            s.generation = generation;
            true
        });
    }
}

/// What woke [`follow`].
enum Wake {
    State(zk::SessionState),
    /// A request sent after a pause came back (`true`) or failed.
    Proof(bool),
    Beat,
}

/// Follows ZooKeeper session `generation` (its client's `watcher`) and keeps its [`lease`]:
/// `true` once it is lost, `false` once the session is closed or dropped.
async fn follow(inner: &Weak<Inner>, watcher: &mut zk::StateWatcher, generation: u64) -> bool {
    // No clone of the client is kept here: `close()` closes the session by dropping the last one.
    let Some(timing) = inner.upgrade().and_then(|strong| {
        let current = strong.current.lock().ok()?;
        let client = &current.as_ref().filter(|c| c.generation == generation)?.client;
        Some(lease::Timing::new(
            client.session_timeout(),
            strong.config.zk_connection_timeout(),
        ))
    }) else {
        return false;
    };
    // The client has just connected (the server heard from us then): the lease starts now.
    if let Some(strong) = inner.upgrade() {
        strong.lease.set(Instant::now() + timing.window());
    }
    // `state_watcher()` marks the state at that moment as seen: look at it first, or a change
    // between connecting and watching (a disconnect, even an expiry) would go unnoticed.
    let mut unseen = Some(watcher.peek_state());
    let mut connected = false;
    let mut beat = Instant::now();
    // After a pause nothing the client says proves the server still heard from us: a request
    // sent after it must come back first.
    let mut needs_proof = false;
    let mut proof: Option<std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>> = None;
    loop {
        let wake = match unseen.take() {
            Some(state) => Wake::State(state),
            None => {
                let lease_end = inner.upgrade().map(|s| s.lease.until());
                let Some(lease_end) = lease_end else { return false };
                tokio::select! {
                    state = watcher.changed() => Wake::State(state),
                    answered = async { match proof.as_mut() { Some(p) => p.await, None => std::future::pending().await } } => {
                        proof = None;
                        Wake::Proof(answered)
                    }
                    () = tokio::time::sleep_until(beat + timing.heartbeat) => Wake::Beat,
                    () = tokio::time::sleep_until(lease_end) => Wake::Beat,
                }
            }
        };
        let Some(strong) = inner.upgrade() else {
            return false;
        };
        let now = Instant::now();
        if now.saturating_duration_since(beat) > timing.gap() {
            tracing::debug!(gap = ?now.saturating_duration_since(beat), "the session supervisor did not run for a while");
            needs_proof = true;
            proof = None;
        }
        beat = now;
        match wake {
            // Refused credentials are refused again on every retry: the session ends for good.
            Wake::State(zk::SessionState::AuthFailed) => {
                strong.end_for_auth();
                return false;
            }
            Wake::State(state) => {
                let mapped = match state {
                    zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                        SessionState::Connected
                    }
                    zk::SessionState::Disconnected => SessionState::Suspended,
                    zk::SessionState::Expired | zk::SessionState::AuthFailed => SessionState::Lost,
                    zk::SessionState::Closed => {
                        let closed = strong.current.lock().map(|c| c.is_none()).unwrap_or(true);
                        if closed {
                            strong.update(|s| {
                                s.state = SessionState::Closed;
                                true
                            });
                            return false;
                        }
                        SessionState::Lost
                    }
                };
                if mapped == SessionState::Lost {
                    strong.lease.end();
                }
                strong.update(|s| {
                    let changed = s.state != mapped && s.state != SessionState::Closed;
                    if changed {
                        s.state = mapped;
                    }
                    changed
                });
                if mapped == SessionState::Lost {
                    return true;
                }
                connected = mapped == SessionState::Connected;
            }
            Wake::Proof(answered) => needs_proof = !answered,
            Wake::Beat => {}
        }
        if connected && needs_proof && proof.is_none() {
            let probe = strong.current.lock().ok().and_then(|c| {
                c.as_ref()
                    .filter(|c| c.generation == generation)
                    .map(|c| c.client.check_stat("/"))
            });
            if let Some(probe) = probe {
                proof = Some(Box::pin(async move { probe.await.is_ok() }));
            }
        }
        if connected && !needs_proof {
            strong.lease.set(now + timing.window());
        }
        if !strong.lease.runs_at(Instant::now()) {
            tracing::warn!(
                generation,
                session_timeout = ?timing.session_timeout,
                "no word from ZooKeeper for longer than the server waits: the session counts as lost"
            );
            if strong.current.lock().map(|c| c.is_none()).unwrap_or(true) {
                return false; // closed meanwhile
            }
            strong.lease.end();
            strong.update(|s| {
                let changed = s.state != SessionState::Closed;
                if changed {
                    s.state = SessionState::Lost;
                }
                changed
            });
            return true;
        }
    }
}

/// Maps a client error to ours, naming the operation and path.
fn map_err(err: zk::Error, operation: &'static str, path: &str) -> Error {
    let code = match err {
        zk::Error::NoNode => ZkErrorCode::NoNode,
        zk::Error::NodeExists => ZkErrorCode::NodeExists,
        zk::Error::BadVersion => ZkErrorCode::BadVersion,
        zk::Error::NotEmpty => ZkErrorCode::NotEmpty,
        zk::Error::NoChildrenForEphemerals => ZkErrorCode::NoChildrenForEphemerals,
        zk::Error::ConnectionLoss => ZkErrorCode::ConnectionLoss,
        zk::Error::Timeout | zk::Error::Custom(_) => ZkErrorCode::NoResponse,
        zk::Error::NoAuth => {
            return Error::PermissionDenied {
                operation,
                path: path.to_owned(),
            }
        }
        zk::Error::SessionExpired | zk::Error::SessionMoved => return Error::SessionLost,
        zk::Error::AuthFailed => {
            return Error::AuthFailed {
                user: "this session".into(),
            }
        }
        zk::Error::ClientClosed => return Error::SessionLost,
        // What a server older than a request answers (its `UnimplementedRequestProcessor`).
        zk::Error::Unimplemented => {
            return Error::ServerTooOld {
                operation,
                path: path.to_owned(),
            }
        }
        other => ZkErrorCode::Other(other.to_string()),
    };
    Error::ZooKeeper {
        operation,
        path: path.to_owned(),
        code,
    }
}

#[cfg(feature = "testkit")]
impl Session {
    /// Test support: expires the current ZooKeeper session on the server by connecting a second
    /// client with the same id and password to `direct` (a server address that bypasses the
    /// caller's proxy) and closing it. See `testkit::expire_session`.
    pub(crate) async fn close_remotely(&self, direct: &str) -> Result<()> {
        let (client, _) = self.current().ok_or(Error::Closed)?;
        let info = client.session().clone();
        let timeout = client.session_timeout();
        drop(client);
        let twin = zk::Client::connector()
            .with_session(info)
            .with_session_timeout(timeout)
            .connect(direct)
            .await
            .map_err(|e| map_err(e, "connect (twin)", ""))?;
        let mut watcher = twin.state_watcher();
        drop(twin);
        tokio::time::timeout(Duration::from_secs(10), async {
            while !watcher.changed().await.is_terminated() {}
        })
        .await
        .map_err(|_| Error::Timeout {
            operation: "closing the twin session",
            after: Duration::from_secs(10),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_the_server_does_not_implement_names_the_version_needed() {
        let err = map_err(zk::Error::Unimplemented, "multiRead", "/bank/a");
        assert!(
            matches!(&err, Error::ServerTooOld { operation: "multiRead", path } if path == "/bank/a"),
            "{err:?}"
        );
        assert!(err.to_string().contains("3.6"), "{err}");
        assert!(
            !err.is_retryable(),
            "an old server does not get newer by retrying"
        );
    }
}
