// The future of a `lock!` is `Send` when its block's is: it can run in `tokio::spawn`.
#![deny(warnings)]

use std::time::Duration;

use mazurka::{lock, DistributedLock, Session};

fn spawn_all(session: Session, lock: DistributedLock) -> tokio::task::JoinHandle<mazurka::Result<u32>> {
    tokio::spawn(async move {
        let a = lock!(&session, "/locks/send" => { 1 })?;
        let b = lock!(try &lock => { 2 } else { 0 })?;
        let c = lock!(&lock, timeout = Duration::from_millis(5) => { 3 })?.unwrap_or(0);
        let d = lock!(lock => { 4 })?;
        Ok(a + b + c + d)
    })
}

fn main() {
    let _ = spawn_all;
}
