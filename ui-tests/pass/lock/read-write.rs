// `lock!(read …)` and `lock!(write …)`: every form, on a session and a path and on a read-write
// lock by reference or by value; nested (a read inside a write is a downgrade); `Send` futures.
#![deny(warnings)]

use std::time::Duration;

use mazurka::{lock, DistributedRwLock, Session};

async fn on_a_path(session: &Session, id: u64) -> mazurka::Result<u32> {
    let a = lock!(read session, "/locks/catalog" => { 1 })?;
    let b = lock!(write &session, format!("/locks/catalog/{id}") => { 2 })?;
    let c = lock!(read try session, "/locks/catalog" => { 3 })?.unwrap_or(0);
    let d = lock!(try write session, "/locks/catalog" => { 4 } else { 0 })?;
    let e = lock!(read session, "/locks/catalog", timeout = Duration::from_secs(1) => { 5 })?.unwrap_or(0);
    let f = lock!(write session, "/locks/catalog", timeout = Duration::from_secs(1) => { 6 } else { 0 })?;
    Ok(a + b + c + d + e + f)
}

async fn on_a_lock(rw: &DistributedRwLock, owned: DistributedRwLock) -> mazurka::Result<u32> {
    let a = lock!(read rw => { 1 })?;
    let b = lock!(write try rw => { 2 } else { 0 })?;
    let c = lock!(read &*rw, timeout = Duration::from_millis(10) => { 3 } else { 0 })?;
    let d = lock!(write owned => { 4 })?;
    Ok(a + b + c + d)
}

async fn downgrade_and_question_marks(rw: &DistributedRwLock) -> mazurka::Result<Result<u32, String>> {
    lock!(write rw => {
        let n: u32 = "41".parse().map_err(|e: std::num::ParseIntError| e.to_string())?;
        // A read inside the write: a downgrade; the outer `?` propagates its lock error.
        let m = lock!(read rw => { n + 1 }).map_err(|e| e.to_string())?;
        Ok(m)
    })
}

// `read` and `write` are keywords only before a target: variables may have these names.
async fn variables_named_read_and_write(
    read: &DistributedRwLock,
    write: DistributedRwLock,
) -> mazurka::Result<()> {
    lock!(read read => {})?;
    lock!(write write.clone() => {})?;
    lock!(try read write => {})?;
    Ok(())
}

fn spawned(session: Session, rw: DistributedRwLock) -> tokio::task::JoinHandle<mazurka::Result<u32>> {
    tokio::spawn(async move {
        let a = lock!(read &session, "/locks/send" => { 1 })?;
        let b = lock!(write try &rw => { 2 } else { 0 })?;
        let c = lock!(read rw => { 3 })?;
        Ok(a + b + c)
    })
}

fn main() {
    let _ = (
        on_a_path,
        on_a_lock,
        downgrade_and_question_marks,
        variables_named_read_and_write,
        spawned,
    );
}
