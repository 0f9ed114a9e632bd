//! `Pod<T>`: a value edited in place, exactly once per edit, under a distributed lock.

use std::sync::Arc;

use crate::blob::{BlobOp, BlobOptions};
use crate::codec::{Bincode, Codec, Envelope, WriterId};
use crate::error::{Error, Result};
use crate::lock::DistributedLock;
use crate::session::Session;
use crate::stm::stored::{history_after, landing, stored_api, Landing, Stored, Value};

/// A value that is edited in place by one holder at a time: [`edit`](Pod::edit) takes the pod's
/// distributed lock, reads the last checked-in value, runs the edit **exactly once** (so, unlike
/// an atom's function, it may have side effects; it receives the lock's fencing token), and
/// checks the result in with a write fenced by the lock. Readers
/// ([`deref`](Pod::deref)) see the last checked-in value, without locking.
///
/// The lock lives at `<path>.lock` (and large values' chunk sets under `<path>.blobs`, see
/// [`blob`](crate::blob)).
///
/// ```no_run
/// # async fn demo(session: &mazurka::Session) -> mazurka::Result<()> {
/// let jobs: mazurka::Pod<Vec<String>> = mazurka::Pod::new(session, "/pods/jobs", vec![]).await?;
/// jobs.edit(|list, token| list.push(format!("job submitted under token {token}"))).await?;
/// # Ok(()) }
/// ```
pub struct Pod<T, C = Bincode> {
    pub(crate) inner: Arc<Stored<T, C>>,
    lock: DistributedLock,
}

impl<T, C> Clone for Pod<T, C> {
    fn clone(&self) -> Self {
        Pod {
            inner: self.inner.clone(),
            lock: self.lock.clone(),
        }
    }
}

impl<T, C: Codec> std::fmt::Debug for Pod<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pod")
            .field("path", &self.inner.path.as_str())
            .field("codec", &C::NAME)
            .finish()
    }
}

impl<T: Value, C: Codec> Pod<T, C> {
    /// The pod at `path`, created with `initial` if it does not exist yet.
    ///
    /// # Errors
    /// As [`Ref::new`](crate::Ref::new).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn new(session: &Session, path: impl Into<String>, initial: T) -> Result<Pod<T, C>> {
        Self::new_with(session, path, initial, BlobOptions::default()).await
    }

    /// As [`new`](Pod::new), with explicit options for large values (see [`blob`](crate::blob)).
    ///
    /// # Errors
    /// As [`Ref::new_with`](crate::Ref::new_with).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn new_with(
        session: &Session,
        path: impl Into<String>,
        initial: T,
        options: BlobOptions,
    ) -> Result<Pod<T, C>> {
        let inner = Stored::create_or_open(session, path, initial, options).await?;
        let lock = session.lock(format!("{}.lock", inner.path))?;
        Ok(Pod { inner, lock })
    }

    /// The existing pod at `path`.
    ///
    /// # Errors
    /// As [`Ref::open`](crate::Ref::open).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn open(session: &Session, path: impl Into<String>) -> Result<Pod<T, C>> {
        Self::open_with(session, path, BlobOptions::default()).await
    }

    /// As [`open`](Pod::open), with explicit options for large values.
    ///
    /// # Errors
    /// As [`Ref::open_with`](crate::Ref::open_with).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn open_with(
        session: &Session,
        path: impl Into<String>,
        options: BlobOptions,
    ) -> Result<Pod<T, C>> {
        let inner = Stored::open(session, path, options).await?;
        let lock = session.lock(format!("{}.lock", inner.path))?;
        Ok(Pod { inner, lock })
    }

    stored_api!("pod");

    /// The pod's lock (for holding it across several edits: edits by the holding task re-enter).
    pub fn lock(&self) -> &DistributedLock {
        &self.lock
    }

    /// Edits the value in place under the pod's lock: `edit(&mut value, fencing_token)` runs
    /// exactly once, then the value is checked in (one `multi`: a check that the lock is still
    /// held, and a versioned `setData`). Returns what `edit` returned.
    ///
    /// # Errors
    /// [`Error::SessionLost`] if the lock was lost before the check-in (nothing written, although
    /// the edit ran); [`Error::Invalid`] if the validator refuses the edited value (nothing
    /// written); lock, session and ZooKeeper errors.
    ///
    /// # Cancel safety
    /// Dropping the future while waiting for the lock is safe (nothing ran). Dropping it during
    /// the check-in leaves its outcome unknown to the caller (it applies entirely or not at all);
    /// the lock is released either way.
    pub async fn edit<R>(&self, edit: impl FnOnce(&mut T, i64) -> R) -> Result<R> {
        let guard = self.lock.lock().await?;
        // Under the lock, the last check-in may not have reached our replica yet: read it (a
        // large value's chunks are fetched only if the replica does not hold that very write).
        let (mut value, base) = self.inner.read_latest().await?;
        let result = edit(&mut value, guard.fencing_token());
        self.inner.validate(&value)?;
        let meta = Envelope::parse(&base.bytes)
            .map_err(|source| Error::Codec {
                path: self.inner.path.to_string(),
                source,
            })?
            .into_meta();
        let writer = WriterId::random();
        let history = history_after(base.version, &meta);
        let mut packed = self.inner.pack(&value, writer, &history).await?;
        let mut guards = self.inner.blobs.guard_ops(&packed, Some(&base.bytes));
        let path = self.inner.path.to_string();
        // Set once a check-in was sent whose outcome we did not hear: from then on a refusal
        // may hide that an earlier send landed, so every failure is decided by reading back.
        let mut ambiguous = false;
        let checked_in: std::result::Result<(), (Error, bool)> = loop {
            let mut fenced = guard
                .fenced()
                .set_if_version(&path, packed.bytes.to_vec(), base.version)?;
            for op in &guards {
                fenced = match op {
                    BlobOp::Check { path } => fenced.check(path, 0)?,
                    BlobOp::Retire { path, data } => fenced.set_if_version(path, data.clone(), 0)?,
                };
            }
            let failure = match fenced.commit().await {
                Ok(()) => break Ok(()),
                Err(Error::ZooKeeper { path: failed, .. })
                    if !ambiguous && guards.iter().any(|op| op.path() == failed) =>
                {
                    if let Some(at) = guards.iter().position(|op| op.path() == failed) {
                        if guards[at].is_retire() {
                            tracing::warn!(
                                set = failed,
                                "the replaced chunk set was not live; leaving it to reclaim"
                            );
                            guards.remove(at);
                        } else {
                            // Our new set was doomed as an orphan (a very slow check-in): write it again.
                            self.inner.blobs.discard(&packed);
                            packed = self.inner.pack(&value, writer, &history).await?;
                            guards = self.inner.blobs.guard_ops(&packed, Some(&base.bytes));
                        }
                    }
                    continue;
                }
                Err(err) => err,
            };
            let transient = failure.is_retryable();
            if !transient && !ambiguous {
                // The server refused our only send: nothing was written.
                let failure = if matches!(failure, Error::NotHeld { .. }) {
                    Error::SessionLost
                } else {
                    failure
                };
                break Err((failure, true));
            }
            ambiguous = true;
            match self.decide(&path, writer, base.version).await {
                Ok(Landing::Landed) => break Ok(()),
                Ok(Landing::NotYet) if transient => continue, // the lock may still be ours: send again
                Ok(Landing::NotYet | Landing::NotLanded) => break Err((Error::SessionLost, true)),
                Ok(Landing::Unknown(detail)) => {
                    break Err((
                        Error::OutcomeUnknown {
                            path: path.clone(),
                            detail,
                        },
                        false,
                    ))
                }
                Err(err) => break Err((err, false)),
            }
        };
        let checked_in = match checked_in {
            Ok(()) => {
                // The refresh task will see this very pointer: let it take the payload from here
                // (only a followed replica re-reads; an unfollowed one would keep it for nothing).
                if let Some(payload) = packed.payload().filter(|_| self.inner.cache.is_followed()) {
                    self.inner.cache.hint(packed.bytes.clone(), payload);
                }
                self.inner.blobs.committed(&guards);
                Ok(())
            }
            Err((err, decided_not_written)) => {
                // Only a set that is certainly not visible may go; otherwise reclaim decides later.
                if decided_not_written {
                    self.inner.blobs.discard(&packed);
                }
                Err(err)
            }
        };
        let released = guard.release().await;
        checked_in?;
        if let Err(err) = released {
            tracing::debug!(%err, "pod lock release after a successful check-in reported an error");
        }
        Ok(result)
    }

    /// After a check-in whose outcome was not heard: did it land? Read back the pod's value (on
    /// the live session) and look for our writer id, current or in the recent history.
    async fn decide(&self, path: &str, writer: WriterId, base_version: i32) -> Result<Landing> {
        for _ in 0..DECIDE_ROUNDS {
            match self.inner.session.get(path).await {
                Ok(Some((now, stat))) => return Ok(landing(&now, stat.version, writer, base_version)),
                Ok(None) => return Ok(Landing::NotLanded),
                Err(err) if err.is_retryable() || matches!(err, Error::SessionLost) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(err) => return Err(err),
            }
        }
        Ok(Landing::Unknown(
            "the server could not be reached to decide".into(),
        ))
    }
}

/// Read-backs when deciding an unanswered check-in.
const DECIDE_ROUNDS: usize = 50;
