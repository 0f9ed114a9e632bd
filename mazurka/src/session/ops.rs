//! The crate-private vocabulary every primitive uses: small, typed, size-checked requests.
//!
//! Paths are relative to the session's chroot and already validated
//! ([`ZnodePath`](crate::ZnodePath)). Each call runs on the *current* ZooKeeper session; if that
//! one has expired, the call waits (bounded) for its replacement.

use std::future::Future;
use std::time::Duration;

use zookeeper_client as zk;

use super::{acl, frame, map_err, Session};
use crate::error::{Error, Result};

/// The parts of a znode's `Stat` Mazurka uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// zxid of the create: strictly increasing across creates (fencing tokens).
    pub(crate) czxid: i64,
    /// zxid of the last data change.
    pub(crate) mzxid: i64,
    /// Data version (number of setData since create).
    pub(crate) version: i32,
    /// Milliseconds since the epoch at create (the leader's clock).
    pub(crate) ctime: i64,
    /// Milliseconds since the epoch at the last data change (the leader's clock).
    pub(crate) mtime: i64,
    /// Session id of the owner if ephemeral, else 0.
    pub(crate) ephemeral_owner: i64,
    /// Number of children.
    pub(crate) num_children: i32,
}

impl From<zk::Stat> for Stat {
    fn from(s: zk::Stat) -> Self {
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            version: s.version,
            ctime: s.ctime,
            mtime: s.mtime,
            ephemeral_owner: s.ephemeral_owner,
            num_children: s.num_children,
        }
    }
}

/// How a znode is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CreateMode {
    Persistent,
    Ephemeral,
    EphemeralSequential,
    /// Deleted by the server some time after its last child goes.
    Container,
}

impl CreateMode {
    /// Whether the node goes with the session (and so can have no children).
    pub(super) fn is_ephemeral(self) -> bool {
        matches!(self, CreateMode::Ephemeral | CreateMode::EphemeralSequential)
    }

    fn zk(self) -> zk::CreateMode {
        match self {
            CreateMode::Persistent => zk::CreateMode::Persistent,
            CreateMode::Ephemeral => zk::CreateMode::Ephemeral,
            CreateMode::EphemeralSequential => zk::CreateMode::EphemeralSequential,
            CreateMode::Container => zk::CreateMode::Container,
        }
    }
}

/// A created znode: its real path (with the sequence suffix, if sequential) and stat.
#[derive(Debug, Clone)]
pub(crate) struct Created {
    pub(crate) path: String,
    pub(crate) stat: Stat,
    /// The ZooKeeper session generation the create ran on (an ephemeral node lives as long as it).
    pub(crate) generation: u64,
}

impl Created {
    /// What a create of `path` in `mode` returned: a sequential node's real name carries the
    /// server's suffix.
    fn new(
        path: &str,
        mode: CreateMode,
        stat: zk::Stat,
        sequence: zk::CreateSequence,
        generation: u64,
    ) -> Created {
        Created {
            path: match mode {
                CreateMode::EphemeralSequential => format!("{path}{sequence}"),
                _ => path.to_owned(),
            },
            stat: stat.into(),
            generation,
        }
    }
}

/// One operation of a `multi`.
#[derive(Debug, Clone)]
pub(crate) enum MultiOp<'a> {
    Check {
        path: &'a str,
        version: i32,
    },
    Set {
        path: &'a str,
        data: &'a [u8],
        version: Option<i32>,
    },
    Create {
        path: &'a str,
        data: &'a [u8],
        mode: CreateMode,
    },
    Delete {
        path: &'a str,
        version: Option<i32>,
    },
}

impl MultiOp<'_> {
    fn path(&self) -> &str {
        match self {
            MultiOp::Check { path, .. }
            | MultiOp::Set { path, .. }
            | MultiOp::Create { path, .. }
            | MultiOp::Delete { path, .. } => path,
        }
    }
}

/// What a `multi` did.
#[derive(Debug)]
pub(crate) enum MultiOutcome {
    /// All operations applied; the stats of the `Set`s, in order.
    Committed(Vec<Stat>),
    /// The server refused operation `index` (nothing was applied).
    Refused { index: usize, error: Error },
}

/// A one-shot watch on one znode.
#[derive(Debug)]
pub(crate) struct NodeWatch(zk::OneshotWatcher);

/// What a [`NodeWatch`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeEvent {
    Created,
    Deleted,
    DataChanged,
    ChildrenChanged,
    /// The session ended (expired or closed): the watch will never fire.
    SessionEnded,
}

impl NodeWatch {
    /// Waits for the event.
    ///
    /// # Cancel safety
    /// Cancel safe (the watch is dropped).
    pub(crate) async fn changed(self) -> NodeEvent {
        let event = self.0.changed().await;
        match event.event_type {
            zk::EventType::NodeCreated => NodeEvent::Created,
            zk::EventType::NodeDeleted => NodeEvent::Deleted,
            zk::EventType::NodeDataChanged => NodeEvent::DataChanged,
            zk::EventType::NodeChildrenChanged => NodeEvent::ChildrenChanged,
            zk::EventType::Session => NodeEvent::SessionEnded,
        }
    }
}

impl Session {
    /// The current live client, waiting (bounded) for a replacement if the current one expired.
    async fn live(&self) -> Result<zk::Client> {
        Ok(self.live_tagged().await?.0)
    }

    /// As [`Session::live`], with the generation of the ZooKeeper session the client belongs to.
    async fn live_tagged(&self) -> Result<(zk::Client, u64)> {
        loop {
            let (client, generation) = self.current().ok_or_else(|| self.closed_error())?;
            // A session the client's own clock declared lost takes no new work either.
            if !client.state().is_terminated() && self.is_valid(generation) {
                return Ok((client, generation));
            }
            let bound = self
                .inner
                .config
                .session_timeout
                .saturating_add(self.inner.config.connection_timeout);
            let mut rx = self.inner.states.subscribe();
            let waited = tokio::time::timeout(
                bound,
                rx.wait_for(|s| s.generation != generation || s.state == super::SessionState::Closed),
            )
            .await;
            match waited {
                Ok(Ok(_)) => continue,
                Ok(Err(_)) => return Err(Error::Closed),
                Err(_) => return Err(Error::SessionLost),
            }
        }
    }

    fn too_large(&self, path: &str, payload: usize, frame_bytes: usize) -> Result<()> {
        if frame_bytes > frame::FRAME_LIMIT {
            return Err(Error::ValueTooLarge {
                path: path.to_owned(),
                payload_bytes: payload,
                frame_bytes,
                limit_bytes: frame::FRAME_LIMIT,
            });
        }
        Ok(())
    }

    fn wire(&self, path: &str) -> usize {
        self.inner.config.chroot_len() + path.len()
    }

    fn create_frame(&self, path: &str, data: usize) -> usize {
        frame::create_body(self.wire(path) + 10, data, self.acl().wire_len())
    }

    /// The most data a plain `create` of `path` can carry within one request frame.
    pub(crate) fn create_data_limit(&self, path: &str) -> usize {
        frame::FRAME_LIMIT.saturating_sub(frame::single(self.create_frame(path, 0)))
    }

    /// The most data a plain `setData` of `path` can carry within one request frame.
    pub(crate) fn set_data_limit(&self, path: &str) -> usize {
        frame::FRAME_LIMIT.saturating_sub(frame::single(frame::set_data_body(self.wire(path), 0)))
    }

    /// Creates a znode (the parent must exist).
    pub(crate) async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<Created> {
        self.too_large(
            path,
            data.len(),
            frame::single(self.create_frame(path, data.len())),
        )?;
        let (client, generation) = self.live_tagged().await?;
        let options = mode.zk().with_acls(self.acl().acls());
        // The ACL checks of the directories go out first, in the same round trip (see `acl`).
        let checked = self.check_ancestors_now(&client, path);
        let (checked, created) =
            futures_util::future::join(checked, client.create(path, data, &options)).await;
        let (stat, sequence) = self
            .judge_create(&client, path, mode, checked, created)
            .await?
            .map_err(|e| map_err(e, "create", path))?;
        Ok(Created::new(path, mode, stat, sequence, generation))
    }

    /// Creates a znode and lists `dir` right behind it: both on the same ZooKeeper session, the
    /// listing sent after the create without waiting for its reply. The server runs a session's
    /// requests in order, so a listing that succeeds includes the node when the create did.
    /// Also returns the generation of the ZooKeeper session both went to. The outer error is one
    /// neither request was sent for.
    pub(crate) async fn create_then_list(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        dir: &str,
    ) -> Result<(u64, Result<Created>, Result<Vec<String>>)> {
        self.too_large(
            path,
            data.len(),
            frame::single(self.create_frame(path, data.len())),
        )?;
        let (client, generation) = self.live_tagged().await?;
        let options = mode.zk().with_acls(self.acl().acls());
        // Both requests are queued on the connection here, in this order (behind the ACL checks
        // of the directories, if any are due: see `acl`).
        let checked = self.check_ancestors_now(&client, path);
        let create = client.create(path, data, &options);
        let list = client.list_children(dir);
        let (checked, created, listed) = futures_util::future::join3(checked, create, list).await;
        let created = match self.judge_create(&client, path, mode, checked, created).await {
            Ok(created) => created.map_err(|e| map_err(e, "create", path)),
            Err(err) => Err(err),
        };
        let created = created.map(|(stat, sequence)| Created::new(path, mode, stat, sequence, generation));
        Ok((
            generation,
            created,
            listed.map_err(|e| map_err(e, "getChildren", dir)),
        ))
    }

    /// The stat of a node if it exists, and a watch on it — asked of ZooKeeper session
    /// `generation` only: [`Error::SessionLost`] if that is no longer the current one.
    pub(crate) async fn exists_and_watch_on(
        &self,
        path: &str,
        generation: u64,
    ) -> Result<(Option<Stat>, NodeWatch)> {
        let (client, current) = self.live_tagged().await?;
        if current != generation {
            return Err(Error::SessionLost);
        }
        let (stat, w) = client
            .check_and_watch_stat(path)
            .await
            .map_err(|e| map_err(e, "exists", path))?;
        Ok((stat.map(Stat::from), NodeWatch(w)))
    }

    /// Creates `path` and its missing ancestors (`mkdir -p`), ancestors persistent, the last one
    /// as `mode`; an existing node is fine — under a restrictive ACL policy only if its ACL is as
    /// strong as the policy, and the same for every ancestor ([`Error::WeakAcl`] otherwise).
    pub(crate) async fn ensure_path(&self, path: &str, mode: CreateMode) -> Result<()> {
        let client = self.live().await?;
        let options = mode.zk().with_acls(self.acl().acls());
        let checked = self.check_ancestors_now(&client, path);
        let (checked, created) =
            futures_util::future::join(checked, client.create(path, &[], &options)).await;
        match self.judge_create(&client, path, mode, checked, created).await? {
            Ok(_) | Err(zk::Error::NodeExists) => return Ok(()),
            Err(zk::Error::NoNode) => {}
            Err(e) => return Err(map_err(e, "create", path)),
        }
        // Top-down, so that each existing directory is checked before anything goes into it.
        let parents = zk::CreateMode::Persistent.with_acls(self.acl().acls());
        for dir in acl::ancestors(path) {
            match client.create(dir, &[], &parents).await {
                Ok(_) => self.created_by_us(dir),
                Err(zk::Error::NodeExists) => {
                    self.check_existing(&client, dir, false).await?;
                }
                Err(e) => return Err(map_err(e, "create", dir)),
            }
        }
        match client.create(path, &[], &options).await {
            Ok(_) => {
                self.created_by_us(path);
                Ok(())
            }
            Err(zk::Error::NodeExists) => self
                .check_existing(&client, path, mode == CreateMode::Container)
                .await
                .map(drop),
            Err(e) => Err(map_err(e, "create", path)),
        }
    }

    /// Checks the ACL of an existing node the caller is about to use as if it had created it
    /// (see `acl`): `Err(WeakAcl)` if weaker than the policy. One `getACL` the first time; nothing
    /// under an open policy.
    pub(crate) async fn check_found(&self, path: &str) -> Result<()> {
        let client = self.live().await?;
        self.check_existing(&client, path, false).await.map(drop)
    }

    /// Reads data and stat; `None` if the node does not exist.
    pub(crate) async fn get(&self, path: &str) -> Result<Option<(Vec<u8>, Stat)>> {
        let client = self.live().await?;
        match client.get_data(path).await {
            Ok((data, stat)) => Ok(Some((data, stat.into()))),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(map_err(e, "getData", path)),
        }
    }

    /// `getData` with a watch (for its change or deletion) of every path — `None`, and no watch,
    /// for a node that does not exist — all sent at once (pipelined, in order) to one ZooKeeper
    /// session, whose generation comes back with the results: the watches are that session's,
    /// and a notification for any of them is delivered before every later reply on it (what the
    /// STM's watch-vouched reads rest on, see `stm::cache`). The outer error is one no request
    /// was sent for.
    #[allow(clippy::type_complexity)]
    pub(crate) async fn get_and_watch_all(
        &self,
        paths: &[&str],
    ) -> Result<(u64, Vec<Result<Option<(Vec<u8>, Stat, NodeWatch)>>>)> {
        let (client, generation) = self.live_tagged().await?;
        // Every request is queued on the connection here, before any is awaited.
        let reads: Vec<_> = paths.iter().map(|path| client.get_and_watch_data(path)).collect();
        let results = futures_util::future::join_all(reads).await;
        let results = results
            .into_iter()
            .zip(paths)
            .map(|(read, path)| match read {
                Ok((data, stat, w)) => Ok(Some((data, stat.into(), NodeWatch(w)))),
                Err(zk::Error::NoNode) => Ok(None),
                Err(e) => Err(map_err(e, "getData", path)),
            })
            .collect();
        Ok((generation, results))
    }

    /// The stat if the node exists, and a watch for its creation, change or deletion.
    pub(crate) async fn exists_and_watch(&self, path: &str) -> Result<(Option<Stat>, NodeWatch)> {
        let client = self.live().await?;
        let (stat, w) = client
            .check_and_watch_stat(path)
            .await
            .map_err(|e| map_err(e, "exists", path))?;
        Ok((stat.map(Stat::from), NodeWatch(w)))
    }

    /// Writes data if the version matches (`None`: any version).
    pub(crate) async fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat> {
        let body = frame::set_data_body(self.wire(path), data.len());
        self.too_large(path, data.len(), frame::single(body))?;
        let client = self.live().await?;
        client
            .set_data(path, data, version)
            .await
            .map(Stat::from)
            .map_err(|e| map_err(e, "setData", path))
    }

    /// Deletes a node if the version matches (`None`: any version).
    pub(crate) async fn delete(&self, path: &str, version: Option<i32>) -> Result<()> {
        let client = self.live().await?;
        self.forget_node(path);
        client
            .delete(path, version)
            .await
            .map_err(|e| map_err(e, "delete", path))
    }

    /// Queues a delete on the current client *now* (requests go out in call order, even if the
    /// returned future is never polled) and returns a `'static` future for its outcome. Usable
    /// from `Drop`, off any runtime. `Err(SessionLost)` if the session is no longer current.
    pub(crate) fn delete_now(
        &self,
        path: &str,
        version: Option<i32>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let queued = self.current().map(|(client, _)| client.delete(path, version));
        self.forget_node(path);
        let closed = queued.is_none().then(|| self.closed_error());
        let path = path.to_owned();
        async move {
            match queued {
                None => Err(closed.unwrap_or(Error::Closed)),
                Some(fut) => fut.await.map_err(|e| map_err(e, "delete", &path)),
            }
        }
    }

    /// Lists children (names, not paths).
    pub(crate) async fn children(&self, path: &str) -> Result<Vec<String>> {
        let client = self.live().await?;
        client
            .list_children(path)
            .await
            .map_err(|e| map_err(e, "getChildren", path))
    }

    /// Applies all operations atomically or none (one request, one frame, size-checked first).
    pub(crate) async fn multi(&self, ops: &[MultiOp<'_>]) -> Result<MultiOutcome> {
        let first = ops.first().map_or("", |op| op.path());
        let payload: usize = ops
            .iter()
            .map(|op| match op {
                MultiOp::Set { data, .. } | MultiOp::Create { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
        let frame_bytes = frame::multi(ops.iter().map(|op| match op {
            MultiOp::Check { path, .. } | MultiOp::Delete { path, .. } => {
                frame::path_version_body(self.wire(path))
            }
            MultiOp::Set { path, data, .. } => frame::set_data_body(self.wire(path), data.len()),
            MultiOp::Create { path, data, .. } => self.create_frame(path, data.len()),
        }));
        self.too_large(first, payload, frame_bytes)?;
        let client = self.live().await?;
        // Directories a create goes into are checked before the multi is sent (see `acl`):
        // normally all of them are known already, and this sends nothing.
        for op in ops {
            if let MultiOp::Create { path, .. } = op {
                self.check_ancestors_now(&client, path).await?;
            }
        }
        let acls = self.acl().acls();
        let mut writer = client.new_multi_writer();
        for op in ops {
            let added = match *op {
                MultiOp::Check { path, version } => writer.add_check_version(path, version),
                MultiOp::Set { path, data, version } => writer.add_set_data(path, data, version),
                MultiOp::Create { path, data, mode } => {
                    writer.add_create(path, data, &mode.zk().with_acls(acls))
                }
                MultiOp::Delete { path, version } => writer.add_delete(path, version),
            };
            added.map_err(|e| map_err(e, "multi", op.path()))?;
        }
        let committed = writer.commit().await;
        for op in ops {
            match *op {
                MultiOp::Create { path, mode, .. } if committed.is_ok() && !mode.is_ephemeral() => {
                    self.created_by_us(path);
                }
                MultiOp::Delete { path, .. } => self.forget_node(path),
                _ => {}
            }
        }
        match committed {
            Ok(results) => Ok(MultiOutcome::Committed(
                results
                    .into_iter()
                    .filter_map(|r| match r {
                        zk::MultiWriteResult::SetData { stat } => Some(stat.into()),
                        _ => None,
                    })
                    .collect(),
            )),
            Err(zk::MultiWriteError::OperationFailed { index, source }) => {
                let path = ops.get(index).map_or(first, |op| op.path());
                if let (Some(MultiOp::Create { mode, .. }), zk::Error::NodeExists) = (ops.get(index), &source)
                {
                    // Used as found by the caller, so only if its ACL is strong enough.
                    self.check_existing(&client, path, *mode == CreateMode::Container)
                        .await?;
                }
                Ok(MultiOutcome::Refused {
                    index,
                    error: map_err(source, "multi", path),
                })
            }
            Err(zk::MultiWriteError::RequestFailed { source }) => Err(map_err(source, "multi", first)),
        }
    }

    /// Reads several nodes in one request, as an atomic snapshot; a missing node gives `None`.
    pub(crate) async fn multi_read(&self, paths: &[&str]) -> Result<Vec<Option<(Vec<u8>, Stat)>>> {
        Ok(self.multi_read_tagged(paths).await?.1)
    }

    /// As [`Session::multi_read`], with the generation of the ZooKeeper session that answered.
    #[allow(clippy::type_complexity)]
    pub(crate) async fn multi_read_tagged(
        &self,
        paths: &[&str],
    ) -> Result<(u64, Vec<Option<(Vec<u8>, Stat)>>)> {
        let (client, generation) = self.live_tagged().await?;
        let mut reader = client.new_multi_reader();
        for path in paths {
            reader
                .add_get_data(path)
                .map_err(|e| map_err(e, "multiRead", path))?;
        }
        let results = reader
            .commit()
            .await
            .map_err(|e| map_err(e, "multiRead", paths.first().unwrap_or(&"")))?;
        let results = results
            .into_iter()
            .zip(paths)
            .map(|(r, path)| match r {
                zk::MultiReadResult::Data { data, stat } => Ok(Some((data, stat.into()))),
                zk::MultiReadResult::Error {
                    err: zk::Error::NoNode,
                } => Ok(None),
                zk::MultiReadResult::Error { err } => Err(map_err(err, "multiRead", path)),
                _ => Err(Error::ZooKeeper {
                    operation: "multiRead",
                    path: (*path).to_owned(),
                    code: crate::ZkErrorCode::Other("unexpected reply kind in a data read".into()),
                }),
            })
            .collect::<Result<_>>()?;
        Ok((generation, results))
    }

    /// Makes the server we are connected to catch up with the leader before our next read.
    pub(crate) async fn sync(&self, path: &str) -> Result<()> {
        let client = self.live().await?;
        client.sync(path).await.map_err(|e| map_err(e, "sync", path))
    }

    /// Bound used by primitives for a single request that may hang while disconnected.
    pub(crate) fn request_bound(&self) -> Duration {
        self.inner
            .config
            .session_timeout
            .saturating_add(self.inner.config.connection_timeout)
    }
}
