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
//!
//! ```no_run
//! # async fn demo() -> mazurka::Result<()> {
//! let session = mazurka::Session::connect("127.0.0.1:2181").await?;
//! println!("connected: {:?}", session.state());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod codec;
pub mod error;
pub mod lock;
pub mod path;
pub mod session;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use codec::{Bincode, Codec, Json};
pub use error::{CodecError, Error, PathRule, Result, ZkErrorCode};
pub use lock::{DistributedLock, Fenced, HoldState, HolderInfo, LockGuard};
pub use path::ZnodePath;
pub use session::{AclPolicy, Session, SessionBuilder, SessionState, SessionStates};
