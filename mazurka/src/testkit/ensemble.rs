//! A ZooKeeper ensemble of real server processes on loopback ports.

use std::time::{Duration, Instant};

use super::server::{PeerPorts, Role, ServerMode, ZkServer, ZkServerBuilder, PORT_ATTEMPTS};
use super::TestkitError;

/// How long a `srvr` poll of one member may take when looking for the leader.
const MODE_TIMEOUT: Duration = Duration::from_millis(500);

/// An ensemble of `n` ZooKeeper servers (a quorum of `n / 2 + 1`), each a [`ZkServer`] with
/// the same controls ([`kill`](ZkServer::kill), [`stop`](ZkServer::stop),
/// [`restart`](ZkServer::restart), [`pause`](ZkServer::pause), [`resume`](ZkServer::resume)).
///
/// Members are configured with `server.i=127.0.0.1:QUORUM:ELECTION` lines, `myid` files,
/// `standaloneEnabled=false` and `reconfigEnabled=false`; a restarted member keeps its ports
/// and data. JVM start-up makes an ensemble cost a few seconds: start one per test binary
/// where tests allow it.
#[derive(Debug)]
pub struct ZkEnsemble {
    nodes: Vec<ZkServer>,
}

impl ZkEnsemble {
    /// Starts `n` servers (3 is typical; 1 gives a one-member quorum, not a standalone server)
    /// with the default settings, and waits until every one serves and exactly one is leader.
    ///
    /// # Errors
    /// [`TestkitError::Config`] for `n == 0`; otherwise as [`ZkServer::start`].
    pub fn start(n: usize) -> Result<ZkEnsemble, TestkitError> {
        ZkServerBuilder::default().start_ensemble(n)
    }

    pub(crate) fn start_with(settings: &ZkServerBuilder, n: usize) -> Result<ZkEnsemble, TestkitError> {
        if n == 0 {
            return Err(TestkitError::Config(
                "an ensemble needs at least one server".into(),
            ));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let peers = (0..n)
                .map(|_| PeerPorts::pick())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TestkitError::io("cannot pick free ports", e))?;
            let nodes = peers
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    ZkServer::prepare(
                        settings,
                        Role::Member {
                            myid: i + 1,
                            peers: peers.clone(),
                        },
                        p.client,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            let ensemble = ZkEnsemble { nodes };
            for node in &ensemble.nodes {
                node.launch()?;
            }
            let deadline = Instant::now() + settings.start_timeout_value();
            let ready = ensemble
                .nodes
                .iter()
                .try_for_each(|node| node.wait_ready(deadline).map(drop));
            match ready.and_then(|()| ensemble.wait_for_leader_until(deadline)) {
                Ok(_) => return Ok(ensemble),
                Err(_) if attempt < PORT_ATTEMPTS && ensemble.nodes.iter().any(ZkServer::address_in_use) => {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The number of servers.
    #[must_use]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always `false`: an ensemble has at least one server.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Server `i` (0-based; its ZooKeeper `myid` is `i + 1`).
    ///
    /// # Panics
    /// If `i >= self.len()`, like slice indexing.
    #[must_use]
    pub fn node(&self, i: usize) -> &ZkServer {
        &self.nodes[i]
    }

    /// All servers, in `myid` order.
    #[must_use]
    pub fn nodes(&self) -> &[ZkServer] {
        &self.nodes
    }

    /// All client addresses, comma-separated: `"127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"`.
    #[must_use]
    pub fn connect_string(&self) -> String {
        self.nodes
            .iter()
            .map(ZkServer::connect_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// What each server says it is right now (`None`: down, paused, or not serving).
    /// Paused servers are skipped without asking; each other one gets up to 500 ms to answer.
    #[must_use]
    pub fn modes(&self) -> Vec<Option<ServerMode>> {
        self.nodes
            .iter()
            .map(|node| {
                if !node.is_running() || node.is_paused() {
                    return None;
                }
                let reply = super::four_letter_word_timeout(node.addr(), "srvr", MODE_TIMEOUT).ok()?;
                ServerMode::from_srvr(&reply)
            })
            .collect()
    }

    /// The index of the server that reports `Mode: leader` (the first, should there be two).
    #[must_use]
    pub fn leader_index(&self) -> Option<usize> {
        self.modes().iter().position(|m| *m == Some(ServerMode::Leader))
    }

    /// The indices of the servers that report `Mode: follower`.
    #[must_use]
    pub fn follower_indices(&self) -> Vec<usize> {
        self.modes()
            .iter()
            .enumerate()
            .filter(|(_, m)| **m == Some(ServerMode::Follower))
            .map(|(i, _)| i)
            .collect()
    }

    /// Waits until exactly one server reports `Mode: leader` (after killing a leader, say) and
    /// returns its index.
    ///
    /// # Errors
    /// [`TestkitError::StartFailed`] naming the first server if there is no single leader after
    /// `timeout` (no quorum, for instance).
    pub fn wait_for_leader(&self, timeout: Duration) -> Result<usize, TestkitError> {
        self.wait_for_leader_until(Instant::now() + timeout)
    }

    fn wait_for_leader_until(&self, deadline: Instant) -> Result<usize, TestkitError> {
        loop {
            let modes = self.modes();
            let leaders: Vec<usize> = (0..modes.len())
                .filter(|&i| modes[i] == Some(ServerMode::Leader))
                .collect();
            if let [leader] = leaders[..] {
                return Ok(leader);
            }
            if Instant::now() >= deadline {
                let summary = modes
                    .iter()
                    .enumerate()
                    .map(|(i, m)| format!("{}: {m:?}", self.nodes[i].addr()))
                    .collect::<Vec<_>>()
                    .join(", ");
                let node = leaders.first().map_or(&self.nodes[0], |&i| &self.nodes[i]);
                return Err(node.start_failed(format!("no single leader in the ensemble ({summary})")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ZkEnsemble {
    fn drop(&mut self) {
        // SIGKILL every member first, so that none spends time electing while the others go.
        for node in &self.nodes {
            if let Some(pid) = node.pid() {
                let _ = super::process::signal(pid, "KILL");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::testkit::process::process_alive;

    #[test]
    fn elects_one_leader_and_survives_failures() {
        let ensemble = ZkEnsemble::start(3).unwrap();
        assert_eq!(ensemble.len(), 3);
        assert_eq!(ensemble.connect_string().split(',').count(), 3);
        let leader = ensemble.leader_index().unwrap();
        let followers = ensemble.follower_indices();
        assert_eq!(followers.len(), 2, "{:?}", ensemble.modes());
        assert!(!followers.contains(&leader));

        // A follower crashes: the rest still serve, under the same leader.
        let follower = followers[0];
        ensemble.node(follower).kill().unwrap();
        for i in (0..3).filter(|&i| i != follower) {
            assert!(ensemble
                .node(i)
                .four_letter_word("srvr")
                .unwrap()
                .contains("Mode: "));
        }
        assert_eq!(ensemble.wait_for_leader(Duration::from_secs(10)).unwrap(), leader);
        ensemble.node(follower).restart().unwrap();
        assert_eq!(ensemble.node(follower).mode(), Some(ServerMode::Follower));

        // The leader crashes: another one takes over.
        ensemble.node(leader).kill().unwrap();
        let next = ensemble.wait_for_leader(Duration::from_secs(30)).unwrap();
        assert_ne!(next, leader);

        let gone: Vec<_> = ensemble
            .nodes()
            .iter()
            .map(|n| (n.pid(), n.data_dir().to_path_buf()))
            .collect();
        drop(ensemble);
        for (pid, dir) in gone {
            assert!(pid.is_none_or(|p| !process_alive(p)));
            assert!(!dir.exists(), "{} still exists", dir.display());
        }
    }

    #[test]
    fn one_member_ensemble_is_its_own_leader() {
        let ensemble = ZkServer::builder().heap_mb(32).start_ensemble(1).unwrap();
        assert_eq!(ensemble.leader_index(), Some(0));
        assert!(ensemble.follower_indices().is_empty());
        assert_eq!(ensemble.connect_string(), ensemble.node(0).connect_string());
    }
}
