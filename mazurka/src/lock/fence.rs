//! Fenced writes: ZooKeeper writes that commit only while a lock is still held.

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::path::ZnodePath;
use crate::session::{CreateMode, MultiOp, MultiOutcome, Session};

#[derive(Debug)]
enum Write {
    Set {
        path: ZnodePath,
        data: Vec<u8>,
        version: Option<i32>,
    },
    Create {
        path: ZnodePath,
        data: Vec<u8>,
    },
    Delete {
        path: ZnodePath,
        version: Option<i32>,
    },
    Check {
        path: ZnodePath,
        version: i32,
    },
}

/// A batch of writes committed in one ZooKeeper `multi` together with a `check` that the lock
/// holder's node still exists, so the batch fails as a whole if the lock was lost in between —
/// even for a holder that was paused (GC, SIGSTOP) past its session expiry.
///
/// ```no_run
/// # async fn demo(guard: &mazurka::LockGuard) -> mazurka::Result<()> {
/// guard.fenced().set("/jobs/last-run", b"2026-11-26".to_vec())?.commit().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "nothing is written until .commit().await"]
pub struct Fenced<'a> {
    session: &'a Session,
    /// The ZooKeeper session generation of the holder's node: commits go out on it or not at all.
    generation: u64,
    holder_node: Cow<'a, str>,
    lock_path: &'a ZnodePath,
    writes: Vec<Write>,
}

impl<'a> Fenced<'a> {
    pub(crate) fn new(
        session: &'a Session,
        generation: u64,
        holder_node: &'a str,
        lock_path: &'a ZnodePath,
    ) -> Self {
        Fenced {
            session,
            generation,
            holder_node: Cow::Borrowed(holder_node),
            lock_path,
            writes: Vec::new(),
        }
    }

    /// As [`Fenced::new`], for a holder node whose path the caller cannot lend (it may change
    /// later, as an exclusive lock's node does across a condition wait).
    pub(crate) fn with_holder_node(
        session: &'a Session,
        generation: u64,
        holder_node: String,
        lock_path: &'a ZnodePath,
    ) -> Self {
        Fenced {
            session,
            generation,
            holder_node: Cow::Owned(holder_node),
            lock_path,
            writes: Vec::new(),
        }
    }

    /// Sets the data of an existing znode (any version).
    ///
    /// # Errors
    /// [`Error::InvalidPath`] for a bad path.
    pub fn set(mut self, path: &str, data: Vec<u8>) -> Result<Self> {
        self.writes.push(Write::Set {
            path: ZnodePath::new(path)?,
            data,
            version: None,
        });
        Ok(self)
    }

    /// Sets the data of a znode if its version is `version`.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] for a bad path.
    pub fn set_if_version(mut self, path: &str, data: Vec<u8>, version: i32) -> Result<Self> {
        self.writes.push(Write::Set {
            path: ZnodePath::new(path)?,
            data,
            version: Some(version),
        });
        Ok(self)
    }

    /// Creates a persistent znode (its parent must exist).
    ///
    /// # Errors
    /// [`Error::InvalidPath`] for a bad path.
    pub fn create(mut self, path: &str, data: Vec<u8>) -> Result<Self> {
        self.writes.push(Write::Create {
            path: ZnodePath::new(path)?,
            data,
        });
        Ok(self)
    }

    /// Deletes a znode (any version).
    ///
    /// # Errors
    /// [`Error::InvalidPath`] for a bad path.
    pub fn delete(mut self, path: &str) -> Result<Self> {
        self.writes.push(Write::Delete {
            path: ZnodePath::new(path)?,
            version: None,
        });
        Ok(self)
    }

    /// Requires a znode to be at `version`.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] for a bad path.
    pub fn check(mut self, path: &str, version: i32) -> Result<Self> {
        self.writes.push(Write::Check {
            path: ZnodePath::new(path)?,
            version,
        });
        Ok(self)
    }

    /// Commits the batch: all writes or none.
    ///
    /// # Errors
    /// [`Error::NotHeld`] if the lock was lost (its node is gone), nothing written; the failing
    /// write's error otherwise (nothing written); [`Error::ValueTooLarge`] before sending if the
    /// batch does not fit one request.
    ///
    /// # Cancel safety
    /// Not cancel safe in outcome: once sent, dropping the future does not stop the commit, and
    /// whether it applied is then unknown.
    pub async fn commit(self) -> Result<()> {
        // A hold the client's own clock counts as lost sends nothing: the server may already have
        // given the lock to someone else (its check would refuse the batch, but only if the
        // node is gone by then — not while the server still waits out the session).
        if !self.session.holds(self.generation) {
            return Err(Error::SessionLost);
        }
        let mut ops = Vec::with_capacity(self.writes.len() + 1);
        ops.push(MultiOp::Check {
            path: &self.holder_node,
            version: 0,
        });
        for write in &self.writes {
            ops.push(match write {
                Write::Set { path, data, version } => MultiOp::Set {
                    path: path.as_str(),
                    data,
                    version: *version,
                },
                Write::Create { path, data } => MultiOp::Create {
                    path: path.as_str(),
                    data,
                    mode: CreateMode::Persistent,
                },
                Write::Delete { path, version } => MultiOp::Delete {
                    path: path.as_str(),
                    version: *version,
                },
                Write::Check { path, version } => MultiOp::Check {
                    path: path.as_str(),
                    version: *version,
                },
            });
        }
        match self.session.multi(&ops).await? {
            MultiOutcome::Committed(_) => Ok(()),
            MultiOutcome::Refused { index: 0, .. } => Err(Error::NotHeld {
                path: self.lock_path.to_string(),
            }),
            MultiOutcome::Refused { error, .. } => Err(error),
        }
    }
}
