//! Several workers (each its own ZooKeeper session, as separate processes would be) take turns
//! with one distributed lock; a shared counter shows that no two were ever inside at once.
//!
//! ```sh
//! cargo run -p mazurka-examples --example lock
//! ```

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use mazurka::Session;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (connect, _server) = common::zookeeper("MAZURKA_ZK")?;
    let inside = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let session = Session::builder(&connect)
            .chroot("/lock-example")
            .connect()
            .await?;
        let inside = inside.clone();
        workers.push(tokio::spawn(async move {
            let lock = session.lock("/locks/printer")?;
            for job in 0..5 {
                let guard = lock.lock().await?;
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two workers inside at once"
                );
                println!(
                    "worker {worker} prints job {job} (token {})",
                    guard.fencing_token()
                );
                // Reentrant: code in the hold's scope takes it again without a round trip.
                guard
                    .scope(async {
                        let nested = lock.lock().await?;
                        assert_eq!(lock.hold_count(), 2);
                        nested.release().await
                    })
                    .await?;
                inside.fetch_sub(1, Ordering::SeqCst);
                guard.release().await?;
            }
            session.close().await?;
            Ok::<_, mazurka::Error>(())
        }));
    }
    for w in workers {
        w.await??;
    }
    println!("20 jobs printed, never two at once");
    Ok(())
}
