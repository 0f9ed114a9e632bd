//! Support for the code that Mazurka's macros generate: the single contract between
//! `mazurka-macros` and the runtime. Not a public API: anything here may change in any release.
//!
//! Generated code names these items as `$crate::__private::…` (or `::mazurka::__private::…`),
//! never anything else in the crate, so that renaming or shadowing `mazurka` in user code does not
//! break it.

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use crate::error::{Error, PathRule, Result};
use crate::lock::{DistributedLock, LockGuard};
use crate::path::ZnodePath;
use crate::session::Session;

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
            session and a path"
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

/// Runs `body` holding `guard`, then releases the hold and waits for the release to be confirmed.
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
    let value = body.await;
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
