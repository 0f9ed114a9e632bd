//! Znodes that already exist, under a restrictive [`AclPolicy`]: the session builds only on nodes
//! whose ACL is at least as strong as its policy.
//!
//! Why: a create that finds its node (or a parent) already there would otherwise use it as is.
//! Whoever pre-created a lock directory, a `.blobs` directory or a ref's parent with an open ACL
//! could then plant nodes ahead of the holders, or delete theirs — `CreatorOnly` in name only.
//! ZooKeeper decides who may create and delete a node by its *parent's* ACL, so the chain of
//! directories matters, not only the leaves.
//!
//! Cost: nothing under [`AclPolicy::Open`]. Otherwise a node the session created itself is known
//! good; a node it finds is checked once with `getACL` and remembered in [`Verified`], per
//! [`Session`] (across its ZooKeeper sessions: the ACL belongs to the node, not to the session
//! that read it). The checks of a create's ancestors are queued together with the create, so they
//! add no round trip; a create that finds its node already there costs one more request.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;

use zookeeper_client as zk;

use super::{map_err, AclPolicy, CreateMode, Session};
use crate::error::{Error, Result};

/// The znodes this session knows to have an ACL at least as strong as its policy: created by it,
/// or checked. Bounded: past [`Verified::CAP`] entries it starts over (costing re-checks only).
#[derive(Debug, Default)]
pub(super) struct Verified {
    nodes: Mutex<HashSet<String>>,
}

impl Verified {
    const CAP: usize = 1 << 16;

    fn contains(&self, path: &str) -> bool {
        self.nodes.lock().is_ok_and(|nodes| nodes.contains(path))
    }

    fn insert(&self, path: &str) {
        if let Ok(mut nodes) = self.nodes.lock() {
            if nodes.len() >= Self::CAP {
                nodes.clear();
            }
            nodes.insert(path.to_owned());
        }
    }

    fn forget(&self, path: &str) {
        if let Ok(mut nodes) = self.nodes.lock() {
            nodes.remove(path);
        }
    }
}

/// What a check of an existing node found (a weak ACL is an [`Error::WeakAcl`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// No such node (yet): nothing to check.
    Missing,
    /// The node exists and its ACL is at least as strong as the policy.
    Strong,
}

/// Why `acls` gives someone other than `own` (the session's digest identity, see
/// `Credentials::acl_id`) more than `policy` does; `None` if it does not.
pub(super) fn weakness(policy: AclPolicy, acls: &[zk::Acl], own: &str) -> Option<String> {
    let anyone_may_read = policy == AclPolicy::CreatorAllAnyoneRead;
    let beyond_read = [
        zk::Permission::WRITE,
        zk::Permission::CREATE,
        zk::Permission::DELETE,
        zk::Permission::ADMIN,
    ];
    acls.iter().find_map(|acl| {
        let perms = acl.permission();
        let ours = acl.scheme() == "digest" && acl.id() == own;
        let harmless = perms == zk::Permission::NONE
            || (anyone_may_read
                && acl.scheme() == "world"
                && acl.id() == "anyone"
                && !beyond_read.iter().any(|p| perms.has(*p)));
        (!ours && !harmless).then(|| {
            let redacted = if acl.scheme() == "digest" && acl.id().ends_with(":x") {
                " (the id is redacted: this session lacks ADMIN on the node, so it cannot be its own)"
            } else {
                ""
            };
            format!(
                "its ACL grants {perms} to {}:{}{redacted}, where the {policy:?} policy grants {}",
                acl.scheme(),
                acl.id(),
                if anyone_may_read {
                    "everyone else READ at most"
                } else {
                    "nothing to anyone else"
                }
            )
        })
    })
}

/// Sends a `getACL` of `path` now (in call order with the client's other requests) and returns a
/// future that judges the answer against `policy`.
pub(super) fn check_now<'c>(
    client: &'c zk::Client,
    path: &str,
    policy: AclPolicy,
    own: &'c str,
) -> impl Future<Output = Result<Found>> + Send + 'c {
    let reply = client.get_acl(path);
    let path = path.to_owned();
    async move {
        match reply.await {
            Ok((acls, _)) => match weakness(policy, &acls, own) {
                None => Ok(Found::Strong),
                Some(detail) => Err(Error::WeakAcl { path, detail }),
            },
            Err(zk::Error::NoNode) => Ok(Found::Missing),
            // getACL needs READ or ADMIN: a node this session may not even read was not made by
            // it, and may still let others create or delete in it.
            Err(zk::Error::NoAuth) => Err(Error::WeakAcl {
                path,
                detail: "this session may not read its ACL (it lacks READ and ADMIN), so it was not created with this \
                         session's credentials and cannot be checked"
                    .into(),
            }),
            Err(err) => Err(map_err(err, "getACL", &path)),
        }
    }
}

/// The proper ancestors of `path` below the root, top-down: `/a/b/c` → `/a`, `/a/b`.
pub(super) fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .map(|(i, _)| &path[..i])
        .filter(|p| !p.is_empty())
}

impl Session {
    /// The policy and the session's own digest identity, if the policy is not open (only then are
    /// existing nodes checked).
    fn restrictive(&self) -> Option<(AclPolicy, &str)> {
        let config = &self.inner.config;
        let own = config.digest.as_ref().map_or("", super::Credentials::acl_id);
        (config.acl != AclPolicy::Open).then_some((config.acl, own))
    }

    /// Sends now a `getACL` of every ancestor of `path` not yet verified; the returned future
    /// settles them: `Err(WeakAcl)` if one is weaker than the policy. Missing ancestors are fine
    /// (a create below them fails with `NoNode`).
    pub(super) fn check_ancestors_now<'a>(
        &'a self,
        client: &'a zk::Client,
        path: &str,
    ) -> impl Future<Output = Result<()>> + Send + 'a {
        let checks: Vec<_> = match self.restrictive() {
            None => Vec::new(),
            Some((policy, own)) => ancestors(path)
                .filter(|a| !self.inner.verified.contains(a))
                .map(|a| (a.to_owned(), check_now(client, a, policy, own)))
                .collect(),
        };
        async move {
            let (paths, replies): (Vec<String>, Vec<_>) = checks.into_iter().unzip();
            for (path, found) in paths.iter().zip(futures_util::future::join_all(replies).await) {
                if found? == Found::Strong {
                    self.inner.verified.insert(path);
                }
            }
            Ok(())
        }
    }

    /// Checks (one `getACL`) a node that a create found already there, unless verified before
    /// and `recheck` is false. `Ok` for an open policy.
    pub(super) async fn check_existing(
        &self,
        client: &zk::Client,
        path: &str,
        recheck: bool,
    ) -> Result<Found> {
        let Some((policy, own)) = self.restrictive() else {
            return Ok(Found::Strong);
        };
        if !recheck && self.inner.verified.contains(path) {
            return Ok(Found::Strong);
        }
        let found = check_now(client, path, policy, own).await?;
        if found == Found::Strong {
            self.inner.verified.insert(path);
        }
        Ok(found)
    }

    /// Judges a create of `path` sent right behind [`Session::check_ancestors_now`]'s checks
    /// (`checked`): the create's own outcome if the directories are sound — `NodeExists` only if
    /// the node found is sound too — else the check's error, after taking back the node the
    /// create made in a directory it must not use.
    pub(super) async fn judge_create(
        &self,
        client: &zk::Client,
        path: &str,
        mode: CreateMode,
        checked: Result<()>,
        created: std::result::Result<(zk::Stat, zk::CreateSequence), zk::Error>,
    ) -> Result<std::result::Result<(zk::Stat, zk::CreateSequence), zk::Error>> {
        if let Err(err) = checked {
            if let Ok((_, sequence)) = &created {
                let made = match mode {
                    CreateMode::EphemeralSequential => format!("{path}{sequence}"),
                    _ => path.to_owned(),
                };
                // Best effort: if this fails, the node is ours and unused, in a directory that
                // is refused anyway.
                let _ = client.delete(&made, None).await;
            }
            return Err(err);
        }
        match created {
            Ok(made) => {
                if !mode.is_ephemeral() {
                    self.created_by_us(path);
                }
                Ok(Ok(made))
            }
            Err(zk::Error::NodeExists) => {
                // A container may have been reaped and made again by someone else: look again.
                self.check_existing(client, path, mode == CreateMode::Container)
                    .await?;
                Ok(Err(zk::Error::NodeExists))
            }
            Err(zk::Error::NoNode) => {
                if let Some(parent) = ancestors(path).last() {
                    self.forget_node(parent);
                }
                Ok(Err(zk::Error::NoNode))
            }
            Err(err) => Ok(Err(err)),
        }
    }

    /// Records a node this session just created with its policy's ACL.
    pub(super) fn created_by_us(&self, path: &str) {
        if self.restrictive().is_some() {
            self.inner.verified.insert(path);
        }
    }

    /// Forgets a node that was deleted (or found missing): a node of that name made later by
    /// someone else must be checked again.
    pub(super) fn forget_node(&self, path: &str) {
        if self.restrictive().is_some() {
            self.inner.verified.forget(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "alice:hash=";

    fn acl(perms: zk::Permission, scheme: &str, id: &str) -> zk::Acl {
        zk::Acl::new(perms, zk::AuthId::new(scheme, id))
    }

    #[test]
    fn ancestors_stop_below_the_root() {
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), ["/a", "/a/b"]);
        assert!(ancestors("/a").next().is_none());
        assert_eq!(ancestors("/d/lock-").collect::<Vec<_>>(), ["/d"]);
    }

    #[test]
    fn own_entries_pass_and_anything_more_for_others_is_weak() {
        let own_all = acl(zk::Permission::ALL, "digest", OWN);
        let world = |p| acl(p, "world", "anyone");
        for policy in [AclPolicy::CreatorOnly, AclPolicy::CreatorAllAnyoneRead] {
            assert_eq!(weakness(policy, std::slice::from_ref(&own_all), OWN), None);
            assert!(weakness(policy, &[world(zk::Permission::ALL)], OWN).is_some());
            assert!(weakness(policy, &[own_all.clone(), world(zk::Permission::CREATE)], OWN).is_some());
            // The same user with another password is someone else.
            assert!(weakness(policy, &[acl(zk::Permission::ALL, "digest", "alice:other=")], OWN).is_some());
            assert!(weakness(policy, &[acl(zk::Permission::DELETE, "ip", "10.0.0.1")], OWN).is_some());
            assert_eq!(
                weakness(policy, &[own_all.clone(), world(zk::Permission::NONE)], OWN),
                None
            );
        }
        let read = [own_all.clone(), world(zk::Permission::READ)];
        assert_eq!(weakness(AclPolicy::CreatorAllAnyoneRead, &read, OWN), None);
        let detail = weakness(AclPolicy::CreatorOnly, &read, OWN).unwrap_or_default();
        assert!(detail.contains("world:anyone"), "{detail}");
        let redacted = weakness(
            AclPolicy::CreatorOnly,
            &[acl(zk::Permission::ALL, "digest", "alice:x")],
            OWN,
        )
        .unwrap_or_default();
        assert!(redacted.contains("lacks ADMIN"), "{redacted}");
    }
}
