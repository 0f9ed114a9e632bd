//! Quick start: connect, take a distributed lock, write under its fence, release.
//!
//! ```sh
//! cargo run -p mazurka-examples --example quickstart            # starts a private ZooKeeper
//! MAZURKA_ZK=127.0.0.1:2181 cargo run -p mazurka-examples --example quickstart
//! ```

mod common;

use std::time::Duration;

use mazurka::Session;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (connect, _server) = common::zookeeper("MAZURKA_ZK")?;
    // Two sessions stand for two processes on two machines.
    let alice = Session::builder(&connect).chroot("/quickstart").connect().await?;
    let bob = Session::builder(&connect).chroot("/quickstart").connect().await?;
    println!(
        "alice's session {:#x}, bob's {:#x}: both {:?}",
        alice.id(),
        bob.id(),
        alice.state()
    );

    let alices_lock = alice.lock("/locks/report")?;
    let bobs_lock = bob.lock("/locks/report")?;

    let guard = alices_lock.lock().await?;
    println!("alice holds the lock, fencing token {}", guard.fencing_token());
    match bobs_lock.try_lock_for(Duration::from_millis(200)).await? {
        Some(_) => println!("bob got it too?! (this must never print)"),
        None => println!("bob could not get it within 200 ms: alice holds it"),
    }
    if let Some(holder) = bobs_lock.holder().await? {
        println!(
            "bob sees the holder: pid {} on {}, session {}",
            holder.pid, holder.host, holder.session
        );
    }

    // Writes that only land while the lock is still held.
    guard
        .fenced()
        .create("/report", b"written by alice".to_vec())?
        .commit()
        .await?;
    guard.release().await?;
    println!("alice released");

    let guard = bobs_lock.lock().await?;
    println!(
        "bob holds it now, token {} (larger: fencing order)",
        guard.fencing_token()
    );
    guard
        .fenced()
        .set("/report", b"written by bob".to_vec())?
        .commit()
        .await?;
    guard.release().await?;

    alice.close().await?;
    bob.close().await?;
    println!("done");
    Ok(())
}
