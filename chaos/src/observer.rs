//! Watches a lock directory from the controller and records, for every contender node it saw,
//! a time by which the node was certainly gone: the reply time of the first listing without it.
//! A guard whose grant began after that time was granted for a node that no longer existed.
//!
//! The observer is connected straight to the servers (no proxy, no fault of its own) and lists
//! again after every change, at most every 10 ms so that it stays a small load. Nodes are never
//! re-created under the same name (each carries a random marker), so "seen, then absent" is
//! proof of deletion.

#![allow(clippy::disallowed_types)] // the controller's bare client (see `zk`)

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zookeeper_client as zk;

use crate::event::now_us;

/// A running observer; its task ends when this is dropped.
#[derive(Debug)]
pub struct Observer {
    gone: Arc<Mutex<HashMap<String, i64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// Starts watching `dir` through clients made by connecting to `connect`.
    #[must_use]
    pub fn start(connect: String, dir: String) -> Observer {
        let gone = Arc::new(Mutex::new(HashMap::new()));
        let task = tokio::spawn(watch(connect, dir, gone.clone()));
        Observer { gone, task }
    }

    /// Node name → the time (µs) by which it was certainly deleted.
    #[must_use]
    pub fn gone(&self) -> HashMap<String, i64> {
        self.gone
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn watch(connect: String, dir: String, gone: Arc<Mutex<HashMap<String, i64>>>) {
    let mut present: HashSet<String> = HashSet::new();
    let record = |now: &HashSet<String>, present: &mut HashSet<String>| {
        let t = now_us();
        let mut gone = gone.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for name in present.difference(now) {
            gone.entry(name.clone()).or_insert(t);
        }
        *present = now.clone();
    };
    loop {
        let Ok(client) = crate::zk::connect(&connect).await else {
            continue;
        };
        loop {
            match client.get_and_watch_children(&dir).await {
                Ok((children, _, watcher)) => {
                    record(&children.into_iter().collect(), &mut present);
                    watcher.changed().await;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(zk::Error::NoNode) => {
                    // The directory is gone (a container reaped when empty): so is every node.
                    record(&HashSet::new(), &mut present);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(zk::Error::SessionExpired | zk::Error::ClientClosed) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}
