//! `Pod<T>`: a value edited in place, exactly once per edit, under a distributed lock.

use std::sync::Arc;

use crate::codec::{Bincode, Codec, Envelope, WriterId};
use crate::error::{Error, Result};
use crate::lock::DistributedLock;
use crate::session::Session;
use crate::stm::stored::{history_after, stored_api, Stored, Value};

/// A value that is edited in place by one holder at a time: [`edit`](Pod::edit) takes the pod's
/// distributed lock, reads the last checked-in value, runs the edit **exactly once** (so, unlike
/// an atom's function, it may have side effects; it receives the lock's fencing token), and
/// checks the result in with a write fenced by the lock. Readers
/// ([`deref`](Pod::deref)) see the last checked-in value, without locking.
///
/// The lock lives at `<path>.lock`.
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
        let inner = Stored::create_or_open(session, path, initial).await?;
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
        let inner = Stored::open(session, path).await?;
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
        // Under the lock, the last check-in may not have reached our replica yet: read it.
        let (mut value, base) = self.inner.read_fresh().await?;
        let result = edit(&mut value, guard.fencing_token());
        self.inner.validate(&value)?;
        let meta = Envelope::parse(&base.bytes)
            .map_err(|source| Error::Codec {
                path: self.inner.path.to_string(),
                source,
            })?
            .into_meta();
        let writer = WriterId::random();
        let bytes = self
            .inner
            .encode(&value, writer, &history_after(base.version, &meta))?;
        let path = self.inner.path.to_string();
        let checked_in = loop {
            let commit = guard
                .fenced()
                .set_if_version(&path, bytes.clone(), base.version)?
                .commit()
                .await;
            match commit {
                Ok(()) => break Ok(()),
                Err(Error::NotHeld { .. }) => break Err(Error::SessionLost),
                Err(err) if err.is_retryable() => {
                    // Reply lost: decide by reading back our writer id.
                    match self.inner.read_fresh().await {
                        Ok((_, now)) => {
                            if Envelope::parse(&now.bytes).is_ok_and(|e| e.writer == writer) {
                                break Ok(());
                            }
                            if now.version != base.version {
                                break Err(Error::SessionLost);
                            }
                        }
                        Err(err) if err.is_retryable() => {}
                        Err(err) => break Err(err),
                    }
                }
                Err(err) => break Err(err),
            }
        };
        let released = guard.release().await;
        checked_in?;
        if let Err(err) = released {
            tracing::debug!(%err, "pod lock release after a successful check-in reported an error");
        }
        Ok(result)
    }
}
