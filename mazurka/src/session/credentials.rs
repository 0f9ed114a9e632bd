//! The credentials a session presents to ZooKeeper: the one place that holds the password, and
//! keeps it out of every `Debug` output and error message.

use std::fmt;

use sha1::{Digest, Sha1};

/// A user and password for ZooKeeper's `digest` scheme.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Credentials {
    user: String,
    password: String,
    /// See [`Credentials::acl_id`]; an unsalted hash of the password, so redacted too.
    acl_id: String,
}

/// Printed in place of the password.
const REDACTED: &str = "<redacted>";

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("scheme", &"digest")
            .field("user", &self.user)
            .field("password", &format_args!("{REDACTED}"))
            .field("acl_id", &format_args!("{REDACTED}"))
            .finish()
    }
}

impl Credentials {
    pub(super) fn digest(user: String, password: String) -> Self {
        let hash = Sha1::digest(format!("{user}:{password}").as_bytes());
        let acl_id = format!("{user}:{}", base64(&hash));
        Credentials {
            user,
            password,
            acl_id,
        }
    }

    /// What the `auth` request carries: `user:password`.
    pub(super) fn auth_bytes(&self) -> Vec<u8> {
        format!("{}:{}", self.user, self.password).into_bytes()
    }

    /// Whose credentials these are, for messages: `digest user "alice"` (never the password).
    pub(super) fn describe(&self) -> String {
        format!("digest user {:?}", self.user)
    }

    /// The identity the server records in an `auth` ACL entry for this session:
    /// `user:base64(SHA-1(user:password))`, as ZooKeeper's `DigestAuthenticationProvider` computes
    /// it. Lets the session tell its own ACL entries from anyone else's.
    pub(super) fn acl_id(&self) -> &str {
        &self.acl_id
    }
}

/// Standard base64 with padding (what `java.util.Base64.getEncoder()` produces).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_password() {
        let c = Credentials::digest("alice".into(), "hunter2-secret".into());
        let shown = format!("{c:?} {c:#?} {}", c.describe());
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(
            !shown.contains(&c.acl_id()[6..]),
            "the password's hash shows: {shown}"
        );
        assert!(shown.contains("alice") && shown.contains(REDACTED), "{shown}");
    }

    /// The builder and the settings a session keeps print through `Credentials`.
    #[test]
    fn builder_and_config_debug_redact_the_password() {
        let builder = crate::Session::builder("127.0.0.1:1/app")
            .digest_auth("alice", "hunter2-secret")
            .acl(crate::AclPolicy::CreatorOnly);
        let config = match builder.clone().into_config() {
            Ok(config) => config,
            Err(err) => panic!("valid settings refused: {err}"),
        };
        let hash = Credentials::digest("alice".into(), "hunter2-secret".into()).acl_id()[6..].to_owned();
        for shown in [
            format!("{builder:?}"),
            format!("{builder:#?}"),
            format!("{config:?}"),
        ] {
            assert!(!shown.contains("hunter2-secret"), "{shown}");
            assert!(!shown.contains(&hash), "the password's hash shows: {shown}");
            assert!(shown.contains("alice"), "{shown}");
        }
        let err = config.auth_failed().to_string();
        assert!(err.contains("alice") && !err.contains("hunter2-secret"), "{err}");
    }

    #[test]
    fn acl_id_is_zookeepers_digest() {
        // What ZooKeeper 3.8's own tool prints: `java -cp zookeeper.jar:… \
        // org.apache.zookeeper.server.auth.DigestAuthenticationProvider super:test`.
        assert_eq!(
            Credentials::digest("super".into(), "test".into()).acl_id(),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
