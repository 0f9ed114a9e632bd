//! Distributed locks: ZooKeeper's lock recipes, made reentrant, fenced and cancel safe.
//!
//! Every contender creates an ephemeral-sequential node under the lock's path (a container node)
//! and waits, watching only the node directly ahead of it, until it is first in line (no herd
//! effect). The holder's node carries who holds it ([`HolderInfo`]); its creation zxid is the
//! fencing token. See [`DistributedLock`].

mod fence;
mod guard;
mod holder;
mod mutex;
mod owner;
mod recipe;

pub use fence::Fenced;
pub use guard::{HoldState, LockGuard};
pub use holder::HolderInfo;
pub use mutex::DistributedLock;
