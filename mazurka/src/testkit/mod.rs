//! Real ZooKeeper servers for tests — the analogue of Apache Curator's `curator-test`
//! (feature `testkit`).
//!
//! Mazurka is tested against real ZooKeeper processes, never a mock: standalone servers,
//! ensembles, and a TCP proxy between client and server to cut or stall connections.
//!
//! # Getting servers
//!
//! * **One shared server per test binary**, [`ZkServer::shared`], started on first use (a JVM
//!   takes a second or more to start). Every test works in a chroot of its own,
//!   [`unique_chroot`], so tests running in parallel never see each other's znodes. Share only
//!   the server, never a client: a ZooKeeper client dies with the tokio runtime it was created
//!   on, and each `#[tokio::test]` has its own runtime.
//! * **A server of its own** for a test that kills, stops, pauses or restarts it:
//!   [`ZkServer::start`] or [`ZkServer::builder`]. The shared server refuses these controls.
//! * **An ensemble**, [`ZkEnsemble::start`]`(3)`, for leader failover; start it once per test
//!   binary where the tests allow it.
//! * **A [`FaultProxy`]** in front of any of these to cut or stall one client's connections
//!   while the server keeps running.
//!
//! ```no_run
//! use mazurka::testkit::{unique_chroot, FaultProxy, ZkServer};
//!
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let server = ZkServer::shared()?;
//! let connect = format!("{}{}", server.connect_string(), unique_chroot("locks"));
//! // … connect a Session to `connect` (creating the chroot first) and test …
//!
//! let own = ZkServer::start()?; // tickTime 200 ms: sessions of 0.4–4 s
//! let proxy = FaultProxy::start(own.addr())?;
//! // … connect through proxy.connect_string() …
//! proxy.stall(); // the client hears nothing: its session will time out
//! proxy.heal();
//! own.pause()?; // SIGSTOP: the whole server hangs
//! own.resume()?;
//! own.kill()?; // SIGKILL
//! own.restart()?; // same port, same data
//! # Ok(()) }
//! ```
//!
//! # Processes and clean-up
//!
//! Each server is a JVM (`org.apache.zookeeper.server.ZooKeeperServerMain`, or `QuorumPeerMain`
//! in an ensemble) with a small heap, on a free loopback port, with a temporary directory for
//! its data, configuration and log. It is started through a tiny `sh` wrapper whose stdin is a
//! pipe held by the handle: when the handle is dropped, or the test process dies in any way
//! (panic, abort, SIGKILL), the pipe closes and the wrapper kills the JVM and removes the
//! directory. Nothing is left behind, not even by the shared server, which is never dropped.
//!
//! # Requirements
//!
//! Java and ZooKeeper 3.5 or newer: on Debian and Ubuntu, `apt-get install default-jre-headless
//! zookeeper` (the jars in `/usr/share/java` are used). Elsewhere, unpack an Apache ZooKeeper
//! binary distribution and set `ZOOKEEPER_HOME` to it (its `lib/*.jar` and `zookeeper-*.jar`
//! are used). `java` is looked for at `$JAVA_HOME/bin/java`, then on `PATH`. Unix only: the
//! servers are controlled with signals (`kill`) and the wrapper needs `/bin/sh`.
//!
//! # Session expiry
//!
//! [`expire_session`] expires a live session on demand (a second client with the same session
//! id and password, while the first is cut off behind a [`FaultProxy`]); it needs a client, so
//! it lives in the session-aware part of this module, apart from the process core.

mod ensemble;
mod error;
mod process;
mod proxy;
mod server;

pub use ensemble::ZkEnsemble;
pub use error::TestkitError;
pub use process::{four_letter_word, four_letter_word_timeout};
pub use proxy::FaultProxy;
pub use server::{unique_chroot, ServerMode, ZkServer, ZkServerBuilder};

mod sessions;

pub use sessions::{expire_session, session_in_fresh_chroot};
