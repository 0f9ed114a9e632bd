//! Distributed locks: ZooKeeper's lock recipes, made reentrant, fenced and cancel safe.
//!
//! Every contender creates an ephemeral-sequential node under the lock's path (a container node)
//! and waits until it is first in line, watching the few nodes ahead of it (at most four; further
//! back, only the node directly ahead: no herd effect). The holder's node carries who holds it
//! ([`HolderInfo`]); its creation zxid is the fencing token. See [`DistributedLock`], and
//! [`DistributedRwLock`] for the shared-lock recipe (`read` and `write` nodes in one queue:
//! readers wait only for the last writer ahead of them).
//!
//! A [`Condition`] ([`DistributedLock::new_condition`]) lets the holder of an exclusive lock wait,
//! with the lock released, until another holder signals it — Java's `Condition` on a
//! `ReentrantLock`. Its waiters are nodes in a directory next to the lock's (see [`Condition`]).

mod condition;
mod fence;
mod guard;
mod holder;
mod mutex;
mod order;
mod owner;
mod read_guard;
mod recipe;
mod reentry;
mod rwlock;
mod sequence;
mod write_guard;

pub use condition::Condition;
pub use fence::Fenced;
pub use guard::{HoldState, LockGuard};
pub use holder::HolderInfo;
pub use mutex::DistributedLock;
pub use read_guard::ReadGuard;
pub use rwlock::{DistributedRwLock, RwMode};
pub use write_guard::WriteGuard;

// For `lock!`'s helpers (`crate::__private`): a hold's scope, entered around the block.
pub(crate) use reentry::scope::{run as run_scope, Held as ScopeOf};
