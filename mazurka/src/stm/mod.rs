//! The STM: Clojure's refs and transactions, distributed, with stronger guarantees.
//!
//! A [`Ref`] is a value in a znode. [`dosync`] runs a body in which refs are read and written
//! through the ambient (task-local) transaction; the commit is **one ZooKeeper `multi`**: a
//! `check` of every ref read and a versioned `setData` of every ref written. Any conflict reruns
//! the body.
//!
//! **Isolation: serializable** — stronger than Clojure's snapshot isolation: every read is
//! checked at commit, so there is no write skew even without [`Ref::ensure`]. **Opacity**: a
//! body never sees a state that never existed: a value stays valid while its replica's watch
//! (armed by a read of that value on this session) has not fired, so later reads check earlier
//! ones by their watches and read from the server only what no watch vouches for (see `txn`);
//! anything found changed restarts the attempt before the body sees anything inconsistent.
//!
//! A commit whose reply is lost is decided by reading back the writer id stored in each
//! value's envelope (with the ids of the last writes before it): never applied twice, never
//! reported failed when it landed ([`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown) when
//! it cannot be decided).

pub(crate) mod cache;
mod commit;
mod refs;
mod retry;
pub(crate) mod stored;
mod txn;

pub use refs::Ref;
pub use retry::TxnOptions;
pub use stored::Value;
pub use txn::{after_commit, dosync, dosync_with, in_transaction};
