//! Support for the code that Mazurka's macros generate: the single contract between
//! `mazurka-macros` and the runtime. Not a public API: anything here may change in any release.
//!
//! Generated code names these items as `$crate::__private::…` (or `::mazurka::__private::…`),
//! never anything else in the crate, so that renaming or shadowing `mazurka` in user code does not
//! break it.

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use crate::error::PathRule;
use crate::lock::{DistributedLock, DistributedRwLock, LockGuard, ReadGuard, WriteGuard};

// Re-exported (not just imported) because `#[distributed]` and `#[dosync]` name them.
pub use crate::error::{Error, Result};
pub use crate::path::ZnodePath;
pub use crate::session::Session;

pub use mazurka_macros::lock as lock_impl;
pub use std::option::Option::{None, Some};
pub use std::result::Result::{Err, Ok};

// ---------------------------------------------------------------------------------------------
// lock!

/// What `lock!` accepts as a lock: a [`DistributedLock`] (moved in, dropped afterwards) or a
/// `&DistributedLock`.
#[diagnostic::on_unimplemented(
    message = "`lock!` needs a `DistributedLock` or a `&DistributedLock`, not `{Self}`",
    label = "not a lock",
    note = "write `lock!(lock => {{ … }})` with a lock, or `lock!(&session, \"/path\" => {{ … }})` with a \
            session and a path",
    note = "a `DistributedRwLock` needs `read` or `write`: `lock!(read rw => {{ … }})`"
)]
pub trait AsLock<'a> {
    /// The lock, owned or borrowed.
    fn into_lock(self) -> Cow<'a, DistributedLock>;
}

impl AsLock<'static> for DistributedLock {
    fn into_lock(self) -> Cow<'static, DistributedLock> {
        Cow::Owned(self)
    }
}

impl<'a> AsLock<'a> for &'a DistributedLock {
    fn into_lock(self) -> Cow<'a, DistributedLock> {
        Cow::Borrowed(self)
    }
}

/// What `lock!(&session, path => …)` accepts as a path.
#[diagnostic::on_unimplemented(
    message = "the path of a `lock!` must be a `&str` or a `String`, not `{Self}`",
    label = "not a path",
    note = "for example `lock!(&session, \"/locks/jobs\" => {{ … }})` or `lock!(&session, format!(\"/locks/{{id}}\") \
            => {{ … }})`"
)]
pub trait LockPath {
    /// The path, to be checked.
    fn into_path(self) -> String;
}

impl LockPath for &str {
    fn into_path(self) -> String {
        self.to_owned()
    }
}

impl LockPath for String {
    fn into_path(self) -> String {
        self
    }
}

impl LockPath for &String {
    fn into_path(self) -> String {
        self.clone()
    }
}

impl LockPath for Cow<'_, str> {
    fn into_path(self) -> String {
        self.into_owned()
    }
}

impl LockPath for ZnodePath {
    fn into_path(self) -> String {
        self.into_string()
    }
}

impl LockPath for &ZnodePath {
    fn into_path(self) -> String {
        self.as_str().to_owned()
    }
}

/// `lock!(&session, path => …)`: the lock at `path` (its path is checked here, before any request).
///
/// # Errors
/// [`Error::InvalidPath`], as [`Session::lock`].
pub fn lock_for(session: &Session, path: impl LockPath) -> Result<Cow<'static, DistributedLock>> {
    session.lock(path.into_path()).map(Cow::Owned)
}

/// `lock!(lock => …)`: the lock given. (The helpers below take the resulting concrete type, so a
/// value that is not a lock is reported once, here.)
///
/// # Errors
/// Never; a `Result` like [`lock_for`]'s.
pub fn lock_value<'a, L: AsLock<'a>>(lock: L) -> Result<Cow<'a, DistributedLock>> {
    Ok(lock.into_lock())
}

/// The target of a `lock!` whose lock could not be understood (a compile error has been emitted).
///
/// # Errors
/// Always (never runs: the program did not compile).
pub fn invalid_lock() -> Result<Cow<'static, DistributedLock>> {
    Err(Error::invalid_path("", PathRule::Empty))
}

/// What a `lock!` that could not be parsed stands for (a compile error has been emitted): a value
/// of type `Result<T>` for any `T`, so that the code around it type-checks without further errors.
///
/// # Errors
/// Always (never runs: the program did not compile).
pub fn fallback<T>() -> Result<T> {
    Err(Error::invalid_path("", PathRule::Empty))
}

/// How long `lock!(try …)` and `lock!(…, timeout = d …)` wait.
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    /// `try`: [`DistributedLock::try_lock`].
    Now,
    /// `timeout = d`: [`DistributedLock::try_lock_for`].
    Within(Duration),
}

/// The outcome of a bounded attempt to take a lock.
#[derive(Debug)]
pub enum Attempt {
    /// Taken: run the body.
    Acquired(LockGuard),
    /// Not free in time: run the `else` block (nothing is held).
    Busy,
    /// The attempt failed.
    Failed(Error),
}

/// Runs `body` holding `guard`, in the hold's scope (so `lock()` of the same lock in the body
/// re-enters the hold, see [`LockGuard::scope`]), then releases the hold and waits for the release
/// to be confirmed.
///
/// The body's value is returned only if the release succeeded: an error there (for instance
/// [`Error::SessionLost`]) means the hold may have ended before the body did, so another holder's
/// critical section may have overlapped this one; the value is dropped and the error returned.
///
/// # Errors
/// As [`LockGuard::release`].
///
/// # Cancel safety
/// Dropping the future drops the guard, which releases the hold in the background.
pub async fn locked<F: Future>(guard: LockGuard, body: F) -> Result<F::Output> {
    let value = guard.scope(body).await;
    guard.release().await?;
    Ok(value)
}

/// with-lock: waits for the lock, then [`locked`].
///
/// # Errors
/// The lock's error (the body does not run), or the release's (as [`locked`]).
///
/// # Cancel safety
/// As [`DistributedLock::lock`] while waiting, as [`locked`] afterwards.
pub async fn with_lock<F: Future>(lock: Result<Cow<'_, DistributedLock>>, body: F) -> Result<F::Output> {
    let guard = lock?.lock().await?;
    locked(guard, body).await
}

/// One bounded attempt to take the lock.
///
/// # Cancel safety
/// As [`DistributedLock::try_lock`].
pub async fn attempt(lock: Result<Cow<'_, DistributedLock>>, wait: Wait) -> Attempt {
    let lock = match lock {
        Ok(lock) => lock,
        Err(error) => return Attempt::Failed(error),
    };
    let acquired = match wait {
        Wait::Now => lock.try_lock().await,
        Wait::Within(timeout) => lock.try_lock_for(timeout).await,
    };
    match acquired {
        Ok(Some(guard)) => Attempt::Acquired(guard),
        Ok(None) => Attempt::Busy,
        Err(error) => Attempt::Failed(error),
    }
}

/// when-lock: `Some(body's value)` if the lock was taken in time (see [`locked`]), `None` if not.
///
/// # Errors
/// As [`with_lock`].
///
/// # Cancel safety
/// As [`with_lock`].
pub async fn try_with_lock<F: Future>(
    lock: Result<Cow<'_, DistributedLock>>,
    wait: Wait,
    body: F,
) -> Result<Option<F::Output>> {
    match attempt(lock, wait).await {
        Attempt::Acquired(guard) => locked(guard, body).await.map(Some),
        Attempt::Busy => Ok(None),
        Attempt::Failed(error) => Err(error),
    }
}

// ---------------------------------------------------------------------------------------------
// lock!(read …) and lock!(write …)

/// What `lock!(read …)` and `lock!(write …)` accept as a lock: a [`DistributedRwLock`] (moved in,
/// dropped afterwards) or a `&DistributedRwLock`.
#[diagnostic::on_unimplemented(
    message = "`lock!(read …)` and `lock!(write …)` need a `DistributedRwLock` or a `&DistributedRwLock`, not \
               `{Self}`",
    label = "not a read-write lock",
    note = "write `lock!(read rw => {{ … }})` with a read-write lock, or `lock!(read &session, \"/path\" => {{ … \
            }})` with a session and a path",
    note = "an exclusive `DistributedLock` takes neither `read` nor `write`: `lock!(lock => {{ … }})`"
)]
pub trait AsRwLock<'a> {
    /// The lock, owned or borrowed.
    fn into_rw_lock(self) -> Cow<'a, DistributedRwLock>;
}

impl AsRwLock<'static> for DistributedRwLock {
    fn into_rw_lock(self) -> Cow<'static, DistributedRwLock> {
        Cow::Owned(self)
    }
}

impl<'a> AsRwLock<'a> for &'a DistributedRwLock {
    fn into_rw_lock(self) -> Cow<'a, DistributedRwLock> {
        Cow::Borrowed(self)
    }
}

/// `lock!(read &session, path => …)`: the read-write lock at `path` (checked before any request).
///
/// # Errors
/// [`Error::InvalidPath`], as [`Session::rw_lock`].
pub fn rw_lock_for(session: &Session, path: impl LockPath) -> Result<Cow<'static, DistributedRwLock>> {
    session.rw_lock(path.into_path()).map(Cow::Owned)
}

/// `lock!(read rw => …)`: the read-write lock given.
///
/// # Errors
/// Never; a `Result` like [`rw_lock_for`]'s.
pub fn rw_lock_value<'a, L: AsRwLock<'a>>(lock: L) -> Result<Cow<'a, DistributedRwLock>> {
    Ok(lock.into_rw_lock())
}

/// The target of a `lock!(read …)` whose lock could not be understood (a compile error has been
/// emitted).
///
/// # Errors
/// Always (never runs: the program did not compile).
pub fn invalid_rw_lock() -> Result<Cow<'static, DistributedRwLock>> {
    Err(Error::invalid_path("", PathRule::Empty))
}

/// A guard of a read-write lock, released (and awaited) after the block.
pub trait RwGuard: Send + 'static {
    /// [`ReadGuard::release`] or [`WriteGuard::release`].
    fn release_now(self) -> impl Future<Output = Result<()>> + Send + 'static;

    /// The hold's scope, as [`ReadGuard::scope`] or [`WriteGuard::scope`] enter it.
    fn scope_of(&self) -> RwScope;
}

/// The scope of a read-write lock's hold (see [`RwGuard::scope_of`]). A type of its own, so that
/// [`rw_locked`]'s future is `Send` whenever the body's is.
#[derive(Debug)]
pub struct RwScope(crate::lock::ScopeOf);

impl RwGuard for ReadGuard {
    fn release_now(self) -> impl Future<Output = Result<()>> + Send + 'static {
        self.release()
    }

    fn scope_of(&self) -> RwScope {
        RwScope(self.hold_scope())
    }
}

impl RwGuard for WriteGuard {
    fn release_now(self) -> impl Future<Output = Result<()>> + Send + 'static {
        self.release()
    }

    fn scope_of(&self) -> RwScope {
        RwScope(self.hold_scope())
    }
}

/// The side of a read-write lock a `lock!` takes: [`Read`] or [`Write`].
pub trait RwSide: Copy {
    /// What holding this side gives.
    type Guard: RwGuard;

    /// Takes this side: `None` waits as long as it takes, else as [`Wait`] says.
    fn acquire(
        self,
        lock: &DistributedRwLock,
        wait: Option<Wait>,
    ) -> impl Future<Output = Result<Option<Self::Guard>>> + Send + '_;
}

/// `lock!(read …)`: the shared side.
#[derive(Debug, Clone, Copy)]
pub struct Read;

/// `lock!(write …)`: the exclusive side.
#[derive(Debug, Clone, Copy)]
pub struct Write;

impl RwSide for Read {
    type Guard = ReadGuard;

    async fn acquire(self, lock: &DistributedRwLock, wait: Option<Wait>) -> Result<Option<ReadGuard>> {
        match wait {
            None => lock.read().await.map(Some),
            Some(Wait::Now) => lock.try_read().await,
            Some(Wait::Within(timeout)) => lock.try_read_for(timeout).await,
        }
    }
}

impl RwSide for Write {
    type Guard = WriteGuard;

    async fn acquire(self, lock: &DistributedRwLock, wait: Option<Wait>) -> Result<Option<WriteGuard>> {
        match wait {
            None => lock.write().await.map(Some),
            Some(Wait::Now) => lock.try_write().await,
            Some(Wait::Within(timeout)) => lock.try_write_for(timeout).await,
        }
    }
}

/// The outcome of a bounded attempt to take one side of a read-write lock.
#[derive(Debug)]
pub enum RwAttempt<G> {
    /// Taken: run the body.
    Acquired(G),
    /// Not free in time: run the `else` block (nothing is held).
    Busy,
    /// The attempt failed.
    Failed(Error),
}

/// Runs `body` holding `guard`, in the hold's scope, then releases the hold and waits for the
/// release to be confirmed; as [`locked`].
///
/// # Errors
/// As [`ReadGuard::release`] / [`WriteGuard::release`].
///
/// # Cancel safety
/// Dropping the future drops the guard, which releases the hold in the background.
pub async fn rw_locked<G: RwGuard, F: Future>(guard: G, body: F) -> Result<F::Output> {
    let value = crate::lock::run_scope(guard.scope_of().0, body).await;
    guard.release_now().await?;
    Ok(value)
}

/// with-lock on one side of a read-write lock: waits for it, then [`rw_locked`].
///
/// # Errors
/// The lock's error (the body does not run; [`Error::UpgradeWouldDeadlock`] for a write inside a
/// read), or the release's (as [`rw_locked`]).
///
/// # Cancel safety
/// As [`DistributedRwLock::read`] while waiting, as [`rw_locked`] afterwards.
pub async fn with_rw_lock<S: RwSide, F: Future>(
    side: S,
    lock: Result<Cow<'_, DistributedRwLock>>,
    body: F,
) -> Result<F::Output> {
    let lock = lock?;
    let guard = side.acquire(&lock, None).await?.ok_or(Error::Timeout {
        operation: "read-write lock",
        after: Duration::MAX,
    })?;
    rw_locked(guard, body).await
}

/// One bounded attempt to take one side of a read-write lock.
///
/// # Cancel safety
/// As [`DistributedRwLock::try_read`].
pub async fn attempt_rw<S: RwSide>(
    side: S,
    lock: Result<Cow<'_, DistributedRwLock>>,
    wait: Wait,
) -> RwAttempt<S::Guard> {
    let lock = match lock {
        Ok(lock) => lock,
        Err(error) => return RwAttempt::Failed(error),
    };
    match side.acquire(&lock, Some(wait)).await {
        Ok(Some(guard)) => RwAttempt::Acquired(guard),
        Ok(None) => RwAttempt::Busy,
        Err(error) => RwAttempt::Failed(error),
    }
}

/// when-lock on one side of a read-write lock: `Some(body's value)` if it was taken in time,
/// `None` if not.
///
/// # Errors
/// As [`with_rw_lock`].
///
/// # Cancel safety
/// As [`with_rw_lock`].
pub async fn try_with_rw_lock<S: RwSide, F: Future>(
    side: S,
    lock: Result<Cow<'_, DistributedRwLock>>,
    wait: Wait,
    body: F,
) -> Result<Option<F::Output>> {
    match attempt_rw(side, lock, wait).await {
        RwAttempt::Acquired(guard) => rw_locked(guard, body).await.map(Some),
        RwAttempt::Busy => Ok(None),
        RwAttempt::Failed(error) => Err(error),
    }
}

// ---------------------------------------------------------------------------------------------
// #[distributed]

pub use crate::codec::{Bincode, Json};
pub use crate::distributed::Distributed;
pub use crate::stm::{Ref, Value};
pub use std::fmt::Display;

/// `T::znode_path(…)`: the template filled in with the parameters, rendered with [`Display`].
///
/// # Errors
/// As [`ZnodePath::from_template`].
pub fn template_path(template: &str, params: &[(&str, &dyn Display)]) -> Result<ZnodePath> {
    crate::distributed::template_path(template, params)
}

/// `T::zref(&session, …, initial)`: [`Ref::new`] at the filled-in path.
///
/// # Errors
/// The path's error, then as [`Ref::new`].
///
/// # Cancel safety
/// As [`Ref::new`].
pub async fn new_ref<T: Distributed>(
    session: &Session,
    path: Result<ZnodePath>,
    initial: T,
) -> Result<Ref<T, T::Codec>> {
    Ref::new(session, path?.into_string(), initial).await
}

/// `T::open_zref(&session, …)`: [`Ref::open`] at the filled-in path.
///
/// # Errors
/// The path's error, then as [`Ref::open`].
///
/// # Cancel safety
/// As [`Ref::open`].
pub async fn open_ref<T: Distributed>(
    session: &Session,
    path: Result<ZnodePath>,
) -> Result<Ref<T, T::Codec>> {
    Ref::open(session, path?.into_string()).await
}

/// `T::zatom(&session, …, initial)`: [`Atom::new`](crate::Atom::new) at the filled-in path.
///
/// # Errors
/// The path's error, then as [`Atom::new`](crate::Atom::new).
///
/// # Cancel safety
/// Cancel safe.
pub async fn new_atom<T: Distributed>(
    session: &Session,
    path: Result<ZnodePath>,
    initial: T,
) -> Result<crate::Atom<T, T::Codec>> {
    crate::Atom::new(session, path?.into_string(), initial).await
}

/// `T::open_zatom(&session, …)`: [`Atom::open`](crate::Atom::open) at the filled-in path.
///
/// # Errors
/// The path's error, then as [`Atom::open`](crate::Atom::open).
///
/// # Cancel safety
/// Cancel safe.
pub async fn open_atom<T: Distributed>(
    session: &Session,
    path: Result<ZnodePath>,
) -> Result<crate::Atom<T, T::Codec>> {
    crate::Atom::open(session, path?.into_string()).await
}

/// `T::zpod(&session, …, initial)`: [`Pod::new`](crate::Pod::new) at the filled-in path.
///
/// # Errors
/// The path's error, then as [`Pod::new`](crate::Pod::new).
///
/// # Cancel safety
/// Cancel safe.
pub async fn new_pod<T: Distributed>(
    session: &Session,
    path: Result<ZnodePath>,
    initial: T,
) -> Result<crate::Pod<T, T::Codec>> {
    crate::Pod::new(session, path?.into_string(), initial).await
}

/// `T::open_zpod(&session, …)`: [`Pod::open`](crate::Pod::open) at the filled-in path.
///
/// # Errors
/// The path's error, then as [`Pod::open`](crate::Pod::open).
///
/// # Cancel safety
/// Cancel safe.
pub async fn open_pod<T: Distributed>(
    session: &Session,
    path: Result<ZnodePath>,
) -> Result<crate::Pod<T, T::Codec>> {
    crate::Pod::open(session, path?.into_string()).await
}

pub use crate::atom::Atom;
pub use crate::pod::Pod;

// ---------------------------------------------------------------------------------------------
// #[dosync]

pub use crate::stm::TxnOptions;

/// How a `#[dosync]` fn hands each attempt its own copy of an argument: `Clone` (a reference or
/// a `Copy` value is simply copied).
///
/// (No `#[diagnostic::do_not_recommend]` on the impl: the compiler then keeps this message and
/// also suggests the missing `Clone`, rather than a bound on this trait.)
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be reused by every attempt of a #[dosync] transaction",
    label = "this argument is not `Clone`",
    note = "arguments of a #[dosync] fn are reused by every attempt of the transaction: they must be `Clone` \
            (or references); take `&{Self}`, or implement `Clone` for it"
)]
pub trait ReusableArg {
    /// This attempt's copy.
    #[must_use]
    fn reuse(&self) -> Self;
}

impl<T: Clone> ReusableArg for T {
    #[inline]
    fn reuse(&self) -> Self {
        self.clone()
    }
}

/// What a `#[dosync]` fn may return: a `Result<T, E>` with `E: From<Error>`, so that the
/// transaction's own errors can be returned too.
///
/// The generated code goes through this trait, as `<R as TxnResult<_, _>>::…` placed on the
/// return type's tokens (rather than through bounds of a function, or associated types that
/// would fail again wherever they are used), so that a fn returning anything else gets one error,
/// on its return type.
#[diagnostic::on_unimplemented(
    message = "a #[dosync] fn must return a `Result` whose error type implements `From<mazurka::Error>`, not \
               `{Self}`",
    label = "not a `Result<T, E>` with `E: From<mazurka::Error>`",
    note = "the transaction's own failures (too many conflicts, a lost session, …) are `mazurka::Error`s, \
            returned through the fn's error type: `mazurka::Result<T>` works, and so does any `Result<T, E>` \
            whose `E` implements `From<mazurka::Error>`"
)]
pub trait TxnResult<T, E>: Sized {
    /// The body's outcome as a plain `Result`.
    ///
    /// # Errors
    /// The body's error.
    fn into_result(self) -> std::result::Result<T, E>;

    /// The transaction's outcome as the fn's return type.
    fn finish(outcome: std::result::Result<T, Aborted<E>>) -> Self;
}

#[diagnostic::do_not_recommend]
impl<T, E: From<Error>> TxnResult<T, E> for std::result::Result<T, E> {
    #[inline]
    fn into_result(self) -> Self {
        self
    }

    #[inline]
    fn finish(outcome: std::result::Result<T, Aborted<E>>) -> Self {
        match outcome {
            Ok(value) => Ok(value),
            Err(Aborted::Body(error)) => Err(error),
            Err(Aborted::Txn(error)) => Err(E::from(error)),
        }
    }
}

/// Why a `#[dosync]` transaction ended without a value: the body's own error, or the
/// transaction's.
#[derive(Debug)]
pub enum Aborted<E> {
    /// The body returned `Err` (nothing was written).
    Body(E),
    /// The transaction failed ([`crate::dosync`](fn@crate::dosync)'s errors).
    Txn(Error),
}

impl<E> From<Error> for Aborted<E> {
    fn from(error: Error) -> Self {
        Aborted::Txn(error)
    }
}

/// A `#[dosync]` fn's body, run as a transaction with `options` ([`crate::dosync_with`](fn@crate::dosync_with)).
///
/// # Errors
/// The body's error ([`Aborted::Body`]) or the transaction's ([`Aborted::Txn`]).
///
/// # Cancel safety
/// As [`crate::dosync`](fn@crate::dosync).
pub async fn dosync<T, E, F, Fut>(options: TxnOptions, mut body: F) -> std::result::Result<T, Aborted<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
{
    crate::stm::dosync_with(options, move || {
        let attempt = body();
        async move { attempt.await.map_err(Aborted::Body) }
    })
    .await
}
