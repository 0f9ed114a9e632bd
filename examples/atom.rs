//! Atoms: page-view counters bumped by several "web servers" (sessions) at once, with no lock
//! and no transaction: each bump is one compare-and-set.
//!
//! ```sh
//! cargo run -p mazurka-examples --example atom
//! ```

mod common;

use mazurka::{Atom, Session};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (connect, _server) = common::zookeeper("MAZURKA_ZK")?;
    let root = format!("/atom-example-{}", std::process::id());
    let mut servers = Vec::new();
    for web in 0..4 {
        let session = Session::builder(&connect).chroot(root.clone()).connect().await?;
        servers.push(tokio::spawn(async move {
            let views: Atom<u64> = Atom::new(&session, "/counters/page-views", 0).await?;
            let mut last = 0;
            for _ in 0..250 {
                let now = views.swap(|n| n + 1).await?;
                assert!(now > last, "each server sees its own bumps in order");
                last = now;
            }
            println!("web server {web}: done, its last bump made the count {last}");
            session.close().await?;
            Ok::<_, mazurka::Error>(())
        }));
    }
    for s in servers {
        s.await??;
    }
    let session = Session::builder(&connect).chroot(root).connect().await?;
    let views: Atom<u64> = Atom::open(&session, "/counters/page-views").await?;
    let (total, version) = views.deref_sync_versioned().await?;
    println!("page views: {total} (znode version {version}: one write per bump)");
    assert_eq!(total, 1000);

    // compare_and_set: only if nobody changed it meanwhile.
    let flag: Atom<String> = Atom::new(&session, "/flags/mode", "normal".to_string()).await?;
    let switched = flag
        .compare_and_set(&"normal".to_string(), "maintenance".to_string())
        .await?;
    let again = flag
        .compare_and_set(&"normal".to_string(), "maintenance".to_string())
        .await?;
    println!("switched to maintenance: {switched}; second attempt (stale expectation): {again}");
    session.close().await?;
    Ok(())
}
