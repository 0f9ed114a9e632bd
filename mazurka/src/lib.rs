//! # Mazurka — distributed concurrency primitives on Apache ZooKeeper
//!
//! Several processes, one shared truth. Mazurka gives Rust programs the coordination tools that
//! `std::sync` and `tokio::sync` give threads and tasks, across machines, on ZooKeeper:
//!
//! | concept | type | module |
//! |---|---|---|
//! | a connection to ZooKeeper, shared by everything | [`Session`] | [`session`] |
//! | a checked znode path | [`ZnodePath`] | [`path`] |
//! | how values are stored in znodes | [`Codec`], [`Bincode`], [`Json`] | [`codec`] |
//! | what can go wrong | [`Error`] | [`error`] |
//! | a reentrant, fenced mutual-exclusion lock; `lock!` | [`DistributedLock`], [`LockGuard`] | [`lock`](mod@lock) |
//! | waiting for a state under a lock | [`Condition`] | [`lock`](mod@lock) |
//! | many readers or one writer | [`DistributedRwLock`] | [`lock`](mod@lock) |
//! | values changed together in serializable transactions | [`Ref`], [`dosync()`] | [`stm`] |
//! | one value changed by compare-and-set | [`Atom`] | [`atom`] |
//! | one value edited exactly once under a lock | [`Pod`] | [`pod`] |
//! | values above ZooKeeper's 1 MB, external stores | [`BlobOptions`], [`BlobStore`] | [`blob`] |
//! | real ZooKeeper servers for tests (feature `testkit`) | `ZkServer`, `ZkEnsemble`, `FaultProxy` | `testkit` |
//! | typed refs at templated paths (`Account::zref(&session, id, initial)`) | [`#[distributed]`](macro@distributed), [`Distributed`] | |
//! | an `async fn` run as a transaction | [`#[dosync]`](macro@dosync) | [`stm`] |
//!
//! ```no_run
//! # async fn demo() -> mazurka::Result<()> {
//! let session = mazurka::Session::connect("127.0.0.1:2181").await?;
//! println!("connected: {:?}", session.state());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod atom;
pub mod blob;
pub mod codec;
mod distributed;
pub mod error;
pub mod lock;
pub mod path;
pub mod pod;
pub mod session;
pub mod stm;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use atom::Atom;
pub use blob::{BlobOptions, BlobStore};
pub use codec::{Bincode, Codec, Json};
pub use distributed::Distributed;
pub use error::{CodecError, Error, PathRule, Result, ZkErrorCode};
pub use lock::Condition;
pub use lock::{DistributedLock, Fenced, HoldState, HolderInfo, LockGuard};
pub use lock::{DistributedRwLock, ReadGuard, RwMode, WriteGuard};
pub use path::ZnodePath;
pub use pod::Pod;
pub use session::{AclPolicy, Session, SessionBuilder, SessionState, SessionStates};
pub use stm::{after_commit, dosync, dosync_with, in_transaction, Ref, TxnOptions, Value};

// The attribute macros, with their documentation (written in `mazurka-macros`).
#[doc(inline)]
pub use mazurka_macros::{distributed, dosync};

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// Runs a block while holding a [`DistributedLock`], then releases the lock **and waits for the
/// release to be confirmed**, on every exit of the block — the Rust form of the original (Clojure)
/// Mazurka's `with-lock`, `when-lock`/`if-lock` and `when-lock-with-timeout`/`if-lock-with-timeout`.
///
/// `lock!(…)` is an expression of type <code>[Result]&lt;T&gt;</code>, where `T` is the type of the
/// block's value (see the table). It awaits, so it can only be used in an `async fn` or block.
///
/// | form | waits for the lock | value |
/// |---|---|---|
/// | `lock!(&session, "/p" => { … })` | as long as it takes ([`lock`](DistributedLock::lock)) | `Ok(value)` |
/// | `lock!(try &session, "/p" => { … })` | not at all ([`try_lock`](DistributedLock::try_lock)) | `Ok(Some(value))`, or `Ok(None)` if someone else holds it |
/// | `lock!(try &session, "/p" => { … } else { … })` | not at all | `Ok(value)` of the block that ran |
/// | `lock!(&session, "/p", timeout = d => { … })` | up to `d` ([`try_lock_for`](DistributedLock::try_lock_for)) | `Ok(Some(value))` or `Ok(None)` |
/// | `lock!(&session, "/p", timeout = d => { … } else { … })` | up to `d` | `Ok(value)` of the block that ran |
///
/// - **What to lock**: a session and a path (`&session, "/p"`: any `&Session` and any `&str` or
///   `String` expression, as [`Session::lock`]; a string literal is checked against the
///   [path rules](path) at compile time), or a lock you already have: `lock!(lock => { … })`,
///   `lock!(try &lock => { … } else { … })`, `lock!(lock, timeout = d => { … })`, with `lock` a
///   [`DistributedLock`] (moved in) or a `&DistributedLock`.
/// - `timeout = d` takes a [`std::time::Duration`]. `else` needs `try` or `timeout`: it runs when
///   the lock could not be taken in time, without holding it.
/// - The block runs in the hold's scope ([`LockGuard::scope`]): a `lock!` (or `lock()`) of the same
///   lock inside it — an inner `lock!` on the same path, a helper it calls — re-enters the hold at
///   once. Outside the block it queues, even in the same task: two `lock!`s joined or selected in
///   one task (`join!`, `select!`) take turns like two tasks would.
/// - **Read-write locks**: `read` or `write` before the lock takes one side of a
///   [`DistributedRwLock`] instead (on a session and a path, as [`Session::rw_lock`], or a
///   `DistributedRwLock` / `&DistributedRwLock`), in every form above:
///   `lock!(read &session, "/p" => { … })`, `lock!(write try &session, "/p" => { … } else { … })`,
///   `lock!(read rw, timeout = d => { … })`. They wait as [`read`](DistributedRwLock::read),
///   [`try_read`](DistributedRwLock::try_read), [`try_read_for`](DistributedRwLock::try_read_for)
///   (and the `write` counterparts) do. A `lock!(read …)` inside a `lock!(write …)` of the same
///   lock is a downgrade; a `lock!(write …)` inside a `lock!(read …)` is
///   [`Error::UpgradeWouldDeadlock`].
///
/// ```no_run
/// use std::time::Duration;
/// use mazurka::{lock, Session};
///
/// # async fn demo() -> mazurka::Result<()> {
/// let session = Session::connect("127.0.0.1:2181").await?;
///
/// // with-lock: wait for the lock, run the block, release.
/// let n = lock!(&session, "/locks/ledger" => {
///     println!("only one process at a time here");
///     42
/// })?;
/// assert_eq!(n, 42);
///
/// // when-lock: only if nobody holds the lock right now.
/// let ran: Option<()> = lock!(try &session, "/locks/cron" => { println!("running the job") })?;
///
/// // if-lock, with a timeout.
/// let who = lock!(&session, "/locks/cron", timeout = Duration::from_secs(2) => {
///     "me"
/// } else {
///     "someone else"
/// })?;
///
/// // An existing lock, by value or by reference.
/// let lock = session.lock(format!("/locks/jobs/{}", 7))?;
/// lock!(&lock => { println!("job 7 is mine") })?;
/// lock!(try lock => {} else {})?;
///
/// // A read-write lock: readers share, a writer is alone.
/// let entries = lock!(read &session, "/locks/catalog" => { 3 })?;
/// lock!(write try &session, "/locks/catalog" => { println!("rebuilding") } else { println!("busy") })?;
/// # let _ = entries;
/// # let _ = (ran, who); Ok(()) }
/// ```
///
/// # Without the macro
///
/// `lock!(&session, "/p" => { body })` does what this does:
///
/// ```no_run
/// # async fn demo(session: &mazurka::Session) -> mazurka::Result<()> {
/// # let body = async {};
/// let result: mazurka::Result<_> = async {
///     let lock = session.lock("/p")?;
///     let guard = lock.lock().await?;
///     let value = body.await; // the block, as `async { body }` (not `async move`)
///     guard.release().await?; // awaited: a lost lock is reported
///     Ok(value)
/// }
/// .await;
/// # result }
/// ```
///
/// With `try` (or `timeout = d`) the lock is taken with `lock.try_lock()` (or
/// `lock.try_lock_for(d)`); when that gives `None`, the `else` block runs instead (its value is
/// wrapped in `Ok`), or the value is `Ok(None)` when there is no `else`. A lock given by value or
/// reference is used as is.
///
/// # `?` and `return` in the block
///
/// The block runs as the body of an `async { … }` block, so that leaving it never skips the
/// awaited release (Rust has no async `Drop`: awaiting the release is the only way to learn that
/// the lock was lost). So `?` and `return x` inside the block **leave the block, not the enclosing
/// function**: they produce the block's value. A block that uses `?` must therefore have a
/// `Result` (or `Option`) value, and `lock!(…)` is then a `Result` of a `Result`: the outer `?`
/// propagates the lock's errors, a second one the block's. `break` and `continue` cannot reach a
/// loop outside the block. The same holds for an `else` block.
///
/// ```no_run
/// # use mazurka::{lock, Session};
/// # async fn read_balance() -> std::io::Result<u64> { Ok(0) }
/// # async fn demo(session: &Session) -> Result<(), Box<dyn std::error::Error>> {
/// let balance = lock!(session, "/locks/ledger" => {
///     let balance = read_balance().await?; // an I/O error leaves the block: Ok(Err(e))
///     if balance == 0 {
///         return Ok(0); // leaves the block too; the lock is still released
///     }
///     Ok::<_, std::io::Error>(balance + 1) // name the error type if the compiler asks
/// })??; // first `?`: lock errors (mazurka::Error); second: the block's (std::io::Error)
/// # let _ = balance; Ok(()) }
/// ```
///
/// # Errors
///
/// - The lock could not be had — an invalid path ([`Error::InvalidPath`]), a lost session, a
///   ZooKeeper error: `Err(e)`, and neither block runs.
/// - The release after the block failed — notably [`Error::SessionLost`]: the session expired
///   while the block ran, so the lock may have passed to another holder before the block ended,
///   and the two critical sections may have overlapped: `Err(e)`, and **the block's value is
///   dropped**. Side effects that must not overlap should be fenced
///   ([`LockGuard::fenced`], with the lock API rather than `lock!`, which does not expose its guard).
///
/// # Cancel safety
///
/// Dropping the future while it waits for the lock removes this contender's node (in the
/// background), as [`DistributedLock::lock`] does. Dropping it while the block runs drops the
/// block and the guard, and the guard releases the lock in the background (unobserved). Dropping it
/// while it waits for the release only stops waiting: the release has been sent.
///
/// # Panics
///
/// A panic in the block unwinds through the guard, which releases the lock in the background.
#[macro_export]
macro_rules! lock {
    ($($input:tt)*) => {
        $crate::__private::lock_impl! { crate = $crate; $($input)* }
    };
}
