//! Pods: a shared job list that several workers edit in place. Each edit runs exactly once, under
//! the pod's distributed lock, and is checked in with a write fenced by that lock — so an edit
//! may have side effects (here: printing), unlike an atom's function, which may be retried.
//!
//! ```sh
//! cargo run -p mazurka-examples --example pod
//! ```

mod common;

use mazurka::{Pod, Session};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Board {
    jobs: Vec<String>,
    last_token: i64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (connect, _server) = common::zookeeper("MAZURKA_ZK")?;
    let root = format!("/pod-example-{}", std::process::id());
    let mut workers = Vec::new();
    for worker in 0..3 {
        let session = Session::builder(&connect).chroot(root.clone()).connect().await?;
        workers.push(tokio::spawn(async move {
            let board: Pod<Board> = Pod::new(&session, "/boards/jobs", Board::default()).await?;
            for n in 0..4 {
                board
                    .edit(|b, token| {
                        // Runs exactly once, holding the lock: side effects are fine here.
                        assert!(token > b.last_token, "fencing tokens only grow");
                        b.last_token = token;
                        b.jobs.push(format!("worker {worker} job {n}"));
                        println!("worker {worker} added job {n} under token {token}");
                    })
                    .await?;
            }
            session.close().await?;
            Ok::<_, mazurka::Error>(())
        }));
    }
    for w in workers {
        w.await??;
    }
    let session = Session::builder(&connect).chroot(root).connect().await?;
    let board: Pod<Board> = Pod::open(&session, "/boards/jobs").await?;
    let jobs = board.deref_sync().await?.jobs;
    println!("{} jobs on the board, none lost", jobs.len());
    assert_eq!(jobs.len(), 12);
    session.close().await?;
    Ok(())
}
