//! The servers of a run — one ZooKeeper, or a 3-node ensemble — and one `FaultProxy` per worker
//! in front of them, through which the nemesis cuts and stalls that worker alone.

use std::net::SocketAddr;

use mazurka::testkit::{FaultProxy, ZkEnsemble, ZkServer, ZkServerBuilder};

use crate::ChaosError;

/// Heap of each server JVM: the run's data is a few thousand small znodes.
const HEAP_MB: u32 = 48;

#[derive(Debug)]
enum Servers {
    Single(Box<ZkServer>),
    Ensemble(ZkEnsemble),
}

/// The servers and the workers' proxies.
#[derive(Debug)]
pub struct Cluster {
    servers: Servers,
    proxies: Vec<FaultProxy>,
}

impl Cluster {
    /// Starts one server, or a 3-node ensemble, and `workers` proxies (worker `w`'s proxy points
    /// at node `w mod 3` of an ensemble).
    ///
    /// # Errors
    /// [`ChaosError::Server`] if a server or a proxy cannot be started.
    pub fn start(ensemble: bool, workers: usize) -> Result<Cluster, ChaosError> {
        let builder = ZkServerBuilder::new().heap_mb(HEAP_MB);
        let servers = if ensemble {
            let e = builder
                .start_ensemble(3)
                .map_err(|e| ChaosError::Server(e.to_string()))?;
            e.wait_for_leader(std::time::Duration::from_secs(30))
                .map_err(|e| ChaosError::Server(e.to_string()))?;
            Servers::Ensemble(e)
        } else {
            Servers::Single(Box::new(
                builder.start().map_err(|e| ChaosError::Server(e.to_string()))?,
            ))
        };
        let mut cluster = Cluster {
            servers,
            proxies: Vec::new(),
        };
        for w in 0..workers {
            let upstream = cluster.node_addr(w % cluster.len());
            cluster
                .proxies
                .push(FaultProxy::start(upstream).map_err(|e| ChaosError::Server(e.to_string()))?);
        }
        Ok(cluster)
    }

    /// Number of server nodes.
    #[must_use]
    pub fn len(&self) -> usize {
        match &self.servers {
            Servers::Single(_) => 1,
            Servers::Ensemble(e) => e.len(),
        }
    }

    /// Whether there is no server (never: a cluster has at least one).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is an ensemble.
    #[must_use]
    pub fn is_ensemble(&self) -> bool {
        matches!(self.servers, Servers::Ensemble(_))
    }

    fn node(&self, i: usize) -> &ZkServer {
        match &self.servers {
            Servers::Single(s) => s,
            Servers::Ensemble(e) => e.node(i),
        }
    }

    fn node_addr(&self, i: usize) -> SocketAddr {
        self.node(i).addr()
    }

    /// The connect string of every server (no proxy), for the controller's own client.
    #[must_use]
    pub fn connect_string(&self) -> String {
        match &self.servers {
            Servers::Single(s) => s.connect_string(),
            Servers::Ensemble(e) => e.connect_string(),
        }
    }

    /// Worker `w`'s proxy.
    #[must_use]
    pub fn proxy(&self, w: usize) -> Option<&FaultProxy> {
        self.proxies.get(w)
    }

    /// Kills the ensemble's leader and points the proxies that went to it at a live node.
    /// Returns the killed node, or `None` on a single server or without a leader.
    ///
    /// # Errors
    /// [`ChaosError::Server`] if the kill fails.
    pub fn kill_leader(&self) -> Result<Option<usize>, ChaosError> {
        let Servers::Ensemble(e) = &self.servers else {
            return Ok(None);
        };
        let Some(leader) = e.leader_index() else {
            return Ok(None);
        };
        e.node(leader)
            .kill()
            .map_err(|err| ChaosError::Server(err.to_string()))?;
        let other = self.node_addr((leader + 1) % e.len());
        let dead = self.node_addr(leader);
        for proxy in &self.proxies {
            if proxy.upstream() == dead {
                proxy.set_upstream(other);
            }
        }
        Ok(Some(leader))
    }

    /// Restarts node `i` (same port, same data).
    ///
    /// # Errors
    /// [`ChaosError::Server`] if the restart fails.
    pub fn restart(&self, i: usize) -> Result<(), ChaosError> {
        self.node(i)
            .restart()
            .map_err(|err| ChaosError::Server(err.to_string()))
    }
}
