//! One error type for the whole crate: every variant says what happened and what to do about it.

use std::time::Duration;

/// Result alias used throughout Mazurka.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Mazurka.
///
/// Classify with [`Error::is_retryable`] (worth trying again as is) and
/// [`Error::is_terminal`] (the session that was used is gone; what it held is lost).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A znode path broke one of ZooKeeper's path rules; nothing was sent.
    #[error("invalid znode path {path:?}: {rule}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// The rule it broke, phrased as how to fix it.
        rule: PathRule,
    },

    /// A value (or a whole `multi`) would not fit in one ZooKeeper request frame; nothing was sent.
    #[error(
        "value for {path:?} is too large: the request would be {frame_bytes} bytes, ZooKeeper accepts at most \
         {limit_bytes} bytes per request (payload {payload_bytes} bytes); store less, split it across znodes, or \
         lower BlobOptions::inline_limit so that more of the values go to chunk sets"
    )]
    ValueTooLarge {
        /// The znode (or first znode of a `multi`) being written.
        path: String,
        /// Encoded payload size in bytes (envelope included).
        payload_bytes: usize,
        /// Size the whole request frame would have had.
        frame_bytes: usize,
        /// ZooKeeper's frame limit (`jute.maxbuffer`, 1,048,575 bytes by default).
        limit_bytes: usize,
    },

    /// A value is larger than the maximum its handle allows
    /// ([`BlobOptions::max_value_bytes`](crate::blob::BlobOptions::max_value_bytes)); nothing was
    /// written (the size is checked after encoding, before any request).
    #[error(
        "value for {path:?} is {value_bytes} bytes once encoded, above the maximum of {max_bytes} bytes set for \
         this handle; nothing was written. Raise it (BlobOptions::max_value_bytes, with Ref/Atom/Pod::new_with), \
         or store less"
    )]
    ValueAboveMaximum {
        /// The znode being written.
        path: String,
        /// The encoded payload's size in bytes.
        value_bytes: usize,
        /// The maximum configured for the handle.
        max_bytes: usize,
    },

    /// A large value's chunks (or external object) could not be written, read or verified.
    #[error("large value at {path:?}: {reason}")]
    Blob {
        /// The znode whose value it is.
        path: String,
        /// What went wrong, and what to do about it.
        reason: String,
    },

    /// Bytes in a znode could not be decoded as a Mazurka value of the expected type and codec.
    #[error("cannot decode the value at {path:?}: {source}")]
    Codec {
        /// The znode whose data was read (empty when decoding bytes not tied to a znode).
        path: String,
        /// What exactly was wrong with the bytes.
        #[source]
        source: CodecError,
    },

    /// The current task does not hold the lock it tried to release, wait on or signal with.
    #[error("the lock at {path:?} is not held by the current task; acquire it first (lock(), try_lock())")]
    NotHeld {
        /// The lock's path.
        path: String,
    },

    /// A read-lock holder asked for the write lock: waiting would deadlock, so it was refused at once.
    #[error(
        "the current task holds a read lock on {path:?} and asked for the write lock, which would wait for \
         itself forever; release the read lock first"
    )]
    UpgradeWouldDeadlock {
        /// The read-write lock's path.
        path: String,
    },

    /// A transactional operation was called outside a transaction.
    #[error("`{operation}` needs a running transaction: call it inside dosync(…) or a #[dosync] fn")]
    NoTransaction {
        /// The operation that was called (`get`, `alter`, …).
        operation: &'static str,
    },

    /// A transaction kept conflicting and gave up.
    #[error(
        "transaction gave up after {attempts} attempts that all conflicted with other writers; raise the retry \
         limit or reduce contention on the refs it touches"
    )]
    RetryLimit {
        /// Attempts made.
        attempts: u32,
    },

    /// A transaction's snapshot can no longer be consistent: another process changed a ref it
    /// read. The transaction restarts on its own; inside a body, propagate this with `?` (a body
    /// that swallows it is rerun anyway, and never commits).
    #[error(
        "transaction conflict on {path:?}: another writer changed it since this attempt read it; the \
         transaction restarts (inside a dosync body, propagate this error with `?`)"
    )]
    Conflict {
        /// The ref that changed.
        path: String,
    },

    /// A validator rejected a new value; nothing was written.
    #[error("validator rejected the new value for {path:?}: {reason}")]
    Invalid {
        /// The ref, atom or pod whose validator refused.
        path: String,
        /// The validator's explanation.
        reason: String,
    },

    /// The ZooKeeper session that held a lock, or ran an operation, expired or was closed.
    /// Whatever it held is lost; new work runs on a new session.
    #[error("the ZooKeeper session was lost (expired or closed); locks it held are released, start over")]
    SessionLost,

    /// A waiting contender's node was deleted by someone else (an operator, a cleanup script): its
    /// place in the queue is gone, and with it any promise of a turn. The session is fine.
    #[error(
        "the lock node {path:?} was deleted by someone else while it waited for its turn; it holds no place in \
         the queue any more: acquire again (and find out who deletes lock nodes)"
    )]
    LockNodeDeleted {
        /// The deleted contender node.
        path: String,
    },

    /// The outcome of a write whose reply was lost could not be decided.
    #[error("the outcome of the write to {path:?} is unknown: {detail}")]
    OutcomeUnknown {
        /// The znode concerned.
        path: String,
        /// Why it could not be decided.
        detail: String,
    },

    /// A bounded wait ran out.
    #[error("{operation} did not finish within {after:?}")]
    Timeout {
        /// What was waited for.
        operation: &'static str,
        /// The bound.
        after: Duration,
    },

    /// The server refused access to a znode because of its ACL.
    #[error(
        "permission denied for {operation} on {path:?}: the znode's ACL does not grant it to this session; \
         connect with the credentials that created it (SessionBuilder::digest_auth)"
    )]
    PermissionDenied {
        /// The request that was refused.
        operation: &'static str,
        /// The znode.
        path: String,
    },

    /// ZooKeeper refused the session's credentials (`AuthFailed`): at connect, or when it
    /// presented them again on a reconnect or for a replacement ZooKeeper session. The session
    /// does not retry: it is closed for good, and every call on it returns this error.
    #[error(
        "ZooKeeper refused the credentials of {user} (AuthFailed); the session is closed for good. Check the user \
         and password given to SessionBuilder::digest_auth, and that every server accepts the digest scheme \
         (zookeeper.DigestAuthenticationProvider.enabled, zookeeper.authProvider.* settings), then connect a new \
         session"
    )]
    AuthFailed {
        /// Whose credentials: `digest user "alice"` (never the password), or `this session`
        /// for a request that was in flight when the server refused them.
        user: String,
    },

    /// A znode the session would have created with a restrictive [`AclPolicy`](crate::AclPolicy)
    /// already exists with an ACL that gives someone else more than the policy does: someone
    /// could plant or delete nodes in it behind the session's back. Nothing was created in it.
    #[error(
        "the znode {path:?} already exists and its ACL is weaker than this session's policy: {detail}. Delete it \
         (or set its ACL with setAcl) as an administrator so that only this session's digest user has access, or \
         use a path nobody else created"
    )]
    WeakAcl {
        /// The pre-existing znode.
        path: String,
        /// Which ACL entry grants too much (or why the ACL could not be checked).
        detail: String,
    },

    /// The server does not implement a request Mazurka needs (it answered `Unimplemented`):
    /// `multiRead` needs ZooKeeper 3.6, container nodes 3.5.3.
    #[error(
        "the ZooKeeper server does not implement {operation} (on {path:?}): Mazurka needs ZooKeeper 3.6 or newer          (multiRead since 3.6, container nodes since 3.5.3); upgrade the ensemble"
    )]
    ServerTooOld {
        /// The request the server refused.
        operation: &'static str,
        /// The znode concerned.
        path: String,
    },

    /// A session could not be established or configured.
    #[error("cannot connect to ZooKeeper at {connect_string:?}: {reason}")]
    Connect {
        /// The connect string used.
        connect_string: String,
        /// What went wrong.
        reason: String,
    },

    /// A setting was out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The [`Session`](crate::Session) was closed by the application.
    #[error("the session was closed by the application")]
    Closed,

    /// ZooKeeper answered a request with an error not covered above.
    #[error("ZooKeeper {operation} on {path:?} failed: {code}")]
    ZooKeeper {
        /// The request (`create`, `delete`, `getData`, …).
        operation: &'static str,
        /// The znode concerned.
        path: String,
        /// The server's or client's error.
        code: ZkErrorCode,
    },
}

impl Error {
    /// Whether trying the same operation again (on the same session) can succeed:
    /// connection hiccups and timeouts, not logic errors.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::ZooKeeper { code, .. } => code.is_connection_problem(),
            _ => false,
        }
    }

    /// Whether the session used is gone for good (what it held is lost).
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Error::SessionLost | Error::Closed | Error::AuthFailed { .. }
        )
    }

    pub(crate) fn invalid_path(path: &str, rule: PathRule) -> Self {
        Error::InvalidPath {
            path: path.to_owned(),
            rule,
        }
    }
}

/// The path rule an [`Error::InvalidPath`] broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathRule {
    /// `""`
    #[error("a path must not be empty; use an absolute path such as \"/app/lock\"")]
    Empty,
    /// `"app/lock"`
    #[error("a path must start with '/'; write \"/app/lock\", not \"app/lock\"")]
    NoLeadingSlash,
    /// `"/app/"`
    #[error("a path must not end with '/' (only the root \"/\" does); drop the trailing '/'")]
    TrailingSlash,
    /// `"/app//lock"`
    #[error("a path must not contain an empty segment (\"//\"); remove the doubled '/'")]
    EmptySegment,
    /// `"/app/./lock"`, `"/app/../lock"`
    #[error(
        "a path must not contain \".\" or \"..\" segments; ZooKeeper paths are always absolute and literal"
    )]
    RelativeSegment,
    /// NUL, other control characters and the Unicode ranges ZooKeeper refuses. ZooKeeper checks
    /// UTF-16 code units, so every character above U+FFFF (emoji, for instance) is refused too: in
    /// UTF-16 it is a surrogate pair, inside U+D800–U+DFFF.
    #[error(
        "a path must not contain control characters (U+0000–U+001F, U+007F–U+009F), the characters ZooKeeper \
         reserves (U+D800–U+F8FF, U+FFF0–U+FFFF) or characters above U+FFFF such as emoji"
    )]
    ForbiddenCharacter,
    /// `"/zookeeper"` and everything under it.
    #[error(
        "\"/zookeeper\" and its subtree are reserved by ZooKeeper itself; choose another top-level name"
    )]
    Reserved,
    /// A path that is longer than the frame can ever carry.
    #[error("a path must be shorter than 65,536 bytes")]
    TooLong,
    /// A `{placeholder}` (or a segment passed to [`ZnodePath::join`](crate::ZnodePath::join)) was given a
    /// value that is not a single valid segment.
    #[error(
        "a path parameter must be one valid segment: not empty, no '/', not \".\" or \"..\", no forbidden \
         characters"
    )]
    BadParameter,
    /// A path template is malformed (unbalanced braces, a placeholder that is not an identifier) or its
    /// placeholders and the parameters given do not match.
    #[error(
        "a path template must use `{{name}}` placeholders (identifiers; `{{{{` and `}}}}` for literal braces) and \
         be given exactly one value for each placeholder"
    )]
    BadTemplate,
}

/// Why bytes could not be decoded as a Mazurka value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes do not start with Mazurka's magic: the znode was written by something else.
    #[error(
        "the data was not written by Mazurka (no Mazurka header); point the ref at a Mazurka-owned znode"
    )]
    NotMazurka,
    /// The header or payload is cut short.
    #[error("the data is truncated: needed {needed} bytes, found {found}")]
    Truncated {
        /// Bytes the header said there would be.
        needed: usize,
        /// Bytes there are.
        found: usize,
    },
    /// A newer (or corrupt) format version.
    #[error("unsupported envelope format version {0}; upgrade Mazurka to read it")]
    UnsupportedFormat(u8),
    /// The header sets flag bits this format version does not define.
    #[error("the envelope header sets unknown flags {0:#04x}; the data is corrupt or was written by a newer Mazurka")]
    UnknownFlags(u8),
    /// The header announces more history entries than the format allows.
    #[error(
        "the envelope header announces {0} history entries, more than the 16 the format allows; the data is corrupt"
    )]
    HistoryTooLong(u8),
    /// Written with one codec, read with another.
    #[error("the value was written with the {found} codec but is read with {expected}; use the same codec on both sides")]
    WrongCodec {
        /// Codec used to read.
        expected: &'static str,
        /// Codec recorded in the header.
        found: String,
    },
    /// The header is well-formed but a flag says the payload lives elsewhere (chunked) and this reader
    /// cannot follow it.
    #[error("the value is stored in chunks; read it through a Ref/Atom/Pod, which follows chunk pointers")]
    Chunked,
    /// The payload does not decode as the expected type.
    #[error("payload does not decode as {type_name}: {reason}")]
    Payload {
        /// The Rust type expected.
        type_name: &'static str,
        /// The codec's message.
        reason: String,
    },
    /// A value could not be encoded.
    #[error("cannot encode a {type_name}: {reason}")]
    Encode {
        /// The Rust type.
        type_name: &'static str,
        /// The codec's message.
        reason: String,
    },
}

/// A ZooKeeper error code, in Mazurka's words (the client library's type stays inside `session`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZkErrorCode {
    /// The znode does not exist.
    #[error("no such znode")]
    NoNode,
    /// The znode already exists.
    #[error("the znode already exists")]
    NodeExists,
    /// The znode's version was not the expected one.
    #[error("the znode's version changed (someone else wrote it)")]
    BadVersion,
    /// The znode has children.
    #[error("the znode has children")]
    NotEmpty,
    /// Ephemeral znodes cannot have children.
    #[error("ephemeral znodes cannot have children")]
    NoChildrenForEphemerals,
    /// The connection dropped before the reply came; the request may or may not have been applied.
    #[error("connection lost before the reply (the request may or may not have been applied)")]
    ConnectionLoss,
    /// The server did not answer in time; the request may or may not have been applied.
    #[error("no response from the server in time (the request may or may not have been applied)")]
    NoResponse,
    /// Anything else, as the client library describes it.
    #[error("{0}")]
    Other(String),
}

impl ZkErrorCode {
    /// Whether this code means "the connection failed", not "the server said no".
    #[must_use]
    pub fn is_connection_problem(&self) -> bool {
        matches!(self, ZkErrorCode::ConnectionLoss | ZkErrorCode::NoResponse)
    }
}
