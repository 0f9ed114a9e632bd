//! The controller's own view of the servers, through a bare ZooKeeper client: it sets the run's
//! znodes up, watches a lock directory, and reads the final state. Workers never use it.
//! (The bare client on purpose: the checks need stats — ephemeral owners — that Mazurka's
//! `Session` keeps to itself, and the referee should not share the code it judges.)
#![allow(clippy::disallowed_types)]

use std::time::Duration;

use zookeeper_client as zk;

use crate::workload::{counter, paths};
use crate::ChaosError;

/// Connects to `connect` (a connect string, with the run's chroot), retrying for a while: on an
/// ensemble whose leader was just killed, the first tries can fail.
///
/// # Errors
/// [`ChaosError::Zk`] if no connection could be made in 60 s (an ensemble loaded by a long run
/// was once slower than 20 s to take the controller back).
pub async fn connect(connect: &str) -> Result<zk::Client, ChaosError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = zk::Client::connector()
            .with_session_timeout(Duration::from_secs(4))
            .connect(connect)
            .await;
        match attempt {
            Ok(client) => return Ok(client),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(ChaosError::Zk(format!("cannot connect to {connect}: {e}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

async fn create(client: &zk::Client, path: &str) -> Result<(), ChaosError> {
    match client.create(path, &[], &persistent()).await {
        Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
        Err(e) => Err(ChaosError::Zk(format!("create {path}: {e}"))),
    }
}

/// Creates `chroot` on `base` (a connect string without chroot) and the run's znodes in it: the
/// counter at 0, the first history bucket, the markers' directory.
///
/// # Errors
/// [`ChaosError::Zk`] for any failed request.
pub async fn setup(base: &str, chroot: &str) -> Result<(), ChaosError> {
    let client = connect(base).await?;
    let mut path = String::new();
    for segment in chroot.split('/').filter(|s| !s.is_empty()) {
        path.push('/');
        path.push_str(segment);
        create(&client, &path).await?;
    }
    let client = connect(&format!("{base}{chroot}")).await?;
    for p in [paths::COUNTER, paths::OPS, paths::MARKERS] {
        create(&client, p).await?;
    }
    create(&client, &counter::counter_node(0)).await?;
    create(&client, &counter::bucket_path(1)).await?;
    Ok(())
}

/// The final counter value and the whole history of fenced writes, in counter order (entries
/// whose names do not parse are returned apart).
///
/// # Errors
/// [`ChaosError::Zk`] for any failed request.
pub async fn read_history(
    client: &zk::Client,
) -> Result<(Vec<String>, Vec<counter::Entry>, Vec<String>), ChaosError> {
    let err = |what: &str, e: zk::Error| ChaosError::Zk(format!("{what}: {e}"));
    let counter_children = client
        .list_children(paths::COUNTER)
        .await
        .map_err(|e| err("list the counter", e))?;
    let buckets = client
        .list_children(paths::OPS)
        .await
        .map_err(|e| err("list the history", e))?;
    let mut entries = Vec::new();
    let mut junk = Vec::new();
    for bucket in buckets {
        let names = client
            .list_children(&format!("{}/{bucket}", paths::OPS))
            .await
            .map_err(|e| err("list a history bucket", e))?;
        for name in names {
            match counter::parse_entry(&name) {
                Some(entry) => entries.push(entry),
                None => junk.push(name),
            }
        }
    }
    entries.sort_by_key(|e| e.n);
    Ok((counter_children, entries, junk))
}

/// The nodes left in `dir`, each with its ephemeral owner (0 for a persistent node).
///
/// # Errors
/// [`ChaosError::Zk`] for a failed request other than the directory being gone.
pub async fn nodes_with_owners(client: &zk::Client, dir: &str) -> Result<Vec<(String, i64)>, ChaosError> {
    let children = match client.list_children(dir).await {
        Ok(c) => c,
        Err(zk::Error::NoNode) => return Ok(Vec::new()),
        Err(e) => return Err(ChaosError::Zk(format!("list {dir}: {e}"))),
    };
    let mut out = Vec::new();
    for child in children {
        match client.check_stat(&format!("{dir}/{child}")).await {
            Ok(Some(stat)) => out.push((child, stat.ephemeral_owner)),
            Ok(None) => {}
            Err(e) => return Err(ChaosError::Zk(format!("stat {dir}/{child}: {e}"))),
        }
    }
    Ok(out)
}
