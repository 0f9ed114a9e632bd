//! Shared by the examples: where to find ZooKeeper.

#![allow(dead_code)]

use mazurka::testkit::ZkServer;

/// The connect string to use, and the private server if one had to be started.
///
/// `MAZURKA_ZK` (a connect string) wins when set; otherwise a private ZooKeeper is started
/// through the test kit (and stopped when the returned handle drops), and we say so.
pub fn zookeeper(var: &str) -> Result<(String, Option<ZkServer>), Box<dyn std::error::Error>> {
    if let Ok(connect) = std::env::var(var) {
        if !connect.trim().is_empty() {
            eprintln!("using ZooKeeper at {connect} (from {var})");
            return Ok((connect, None));
        }
    }
    eprintln!("{var} is not set: starting a private ZooKeeper server for this run …");
    let server = ZkServer::builder()
        .tick_time(std::time::Duration::from_millis(500))
        .start()?;
    eprintln!("private ZooKeeper listening on {}", server.connect_string());
    Ok((server.connect_string(), Some(server)))
}
