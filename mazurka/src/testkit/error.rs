//! What can go wrong when starting or controlling test servers.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a test server could not be started or controlled.
///
/// Kept apart from [`crate::Error`]: it concerns the test harness, never a user of the library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// No `java` executable was found.
    #[error(
        "java was not found (looked at $JAVA_HOME/bin/java and on PATH); install a JRE with \
         `apt-get install default-jre-headless`"
    )]
    JavaNotFound,

    /// The ZooKeeper server jars were not found.
    #[error(
        "the ZooKeeper server jars were not found ({searched}); install them with `apt-get install zookeeper`, \
         or set ZOOKEEPER_HOME to an unpacked Apache ZooKeeper distribution"
    )]
    ZooKeeperNotFound {
        /// Where they were looked for.
        searched: String,
    },

    /// An operating-system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A server process did not come up (or back up) in time, or exited while starting.
    #[error("ZooKeeper at {addr} did not start: {reason}\n--- last lines of {} ---\n{log_tail}", log.display())]
    StartFailed {
        /// The server's client address.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
        /// The server's log file (gone once the server handle is dropped).
        log: PathBuf,
        /// The last lines of that log.
        log_tail: String,
    },

    /// The operation needs a running server process, and there is none.
    #[error("cannot {action} ZooKeeper at {addr}: the server process is not running")]
    NotRunning {
        /// What was asked.
        action: &'static str,
        /// The server's client address.
        addr: SocketAddr,
    },

    /// A fault was asked of the shared server, which every test of the binary uses.
    #[error(
        "the shared test server cannot be told to {action}: other tests use it; start a server of your own with \
         ZkServer::start() for fault tests"
    )]
    SharedServer {
        /// What was asked.
        action: &'static str,
    },

    /// The shared server failed to start earlier in this test binary (the failure is not retried).
    #[error("the shared ZooKeeper test server is unavailable: {0}")]
    SharedUnavailable(String),

    /// A setting was out of range.
    #[error("invalid testkit configuration: {0}")]
    Config(String),
}

impl TestkitError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        TestkitError::Io {
            what: what.into(),
            source,
        }
    }
}
