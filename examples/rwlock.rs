//! Readers and a writer, each its own ZooKeeper session (as separate processes would be), share
//! one distributed read-write lock: readers overlap, the writer is alone, and a reader that
//! arrives while the writer waits queues behind it. At the end the writer downgrades: it takes
//! the read lock, releases the write lock, and reads along with the others.
//!
//! ```sh
//! cargo run -p mazurka-examples --example rwlock
//! ```

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mazurka::Session;

async fn join(connect: &str) -> mazurka::Result<Session> {
    Session::builder(connect)
        .chroot("/rwlock-example")
        .connect()
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (connect, _server) = common::zookeeper("MAZURKA_ZK")?;
    let readers_inside = Arc::new(AtomicUsize::new(0));
    let writer_inside = Arc::new(AtomicUsize::new(0));

    let mut tasks = Vec::new();
    for reader in 0..3 {
        let session = join(&connect).await?;
        let (readers_inside, writer_inside) = (readers_inside.clone(), writer_inside.clone());
        tasks.push(tokio::spawn(async move {
            let rw = session.rw_lock("/locks/catalog")?;
            for round in 0..4 {
                let guard = rw.read().await?;
                let now = readers_inside.fetch_add(1, Ordering::SeqCst) + 1;
                assert_eq!(writer_inside.load(Ordering::SeqCst), 0, "a reader met the writer");
                println!("reader {reader} reads (round {round}, {now} reader(s) inside)");
                tokio::time::sleep(Duration::from_millis(20)).await; // reading takes a while
                readers_inside.fetch_sub(1, Ordering::SeqCst);
                guard.release().await?;
            }
            session.close().await?;
            Ok::<_, mazurka::Error>(())
        }));
    }

    let session = join(&connect).await?;
    let (readers, writer) = (readers_inside.clone(), writer_inside.clone());
    tasks.push(tokio::spawn(async move {
        let rw = session.rw_lock("/locks/catalog")?;
        for round in 0..3 {
            let guard = rw.write().await?;
            writer.fetch_add(1, Ordering::SeqCst);
            assert_eq!(readers.load(Ordering::SeqCst), 0, "the writer met a reader");
            println!(
                "writer writes alone (round {round}, token {})",
                guard.fencing_token()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            writer.fetch_sub(1, Ordering::SeqCst);
            guard.release().await?;
        }
        // Downgrade: read while still holding the write lock (in its scope), then let the write
        // lock go.
        let write = rw.write().await?;
        let read = write.scope(rw.read()).await?;
        println!(
            "writer downgrades: {} write hold(s), {} read hold(s)",
            rw.write_hold_count(),
            rw.read_hold_count()
        );
        write.release().await?;
        println!("writer now only reads; other readers may join, writers wait");
        // A read holder asking for the write lock would wait for itself: refused at once.
        match rw.write().await {
            Err(mazurka::Error::UpgradeWouldDeadlock { .. }) => println!("upgrade refused, as it should be"),
            other => println!("unexpected: {other:?}"),
        }
        read.release().await?;
        session.close().await?;
        Ok::<_, mazurka::Error>(())
    }));

    for t in tasks {
        t.await??;
    }
    println!("readers shared the lock, the writer always wrote alone");
    Ok(())
}
