// Every form with an existing lock, by value (moved in) and by reference.
#![deny(warnings)]

use std::time::Duration;

use mazurka::{lock, DistributedLock, Session};

async fn by_reference(lock: &DistributedLock) -> mazurka::Result<u32> {
    let a = lock!(lock => { 1 })?;
    let b = lock!(try lock => { 2 })?.unwrap_or(0);
    let c = lock!(try lock => { 3 } else { 0 })?;
    let d = lock!(lock, timeout = Duration::from_secs(1) => { 4 })?.unwrap_or(0);
    let e = lock!(lock, timeout = Duration::from_secs(1) => { 5 } else { 0 })?;
    Ok(a + b + c + d + e)
}

async fn borrowed_local(session: &Session) -> mazurka::Result<()> {
    let lock = session.lock("/locks/jobs")?;
    lock!(&lock => {})?;
    lock!(try &lock => {} else {})?;
    println!("still usable: {}", lock.path());
    Ok(())
}

async fn by_value(session: &Session) -> mazurka::Result<()> {
    let lock = session.lock("/locks/jobs")?;
    lock!(lock => {})?;
    lock!(session.lock("/locks/other")? => {})?;
    Ok(())
}

struct Service {
    lock: DistributedLock,
    locks: Vec<DistributedLock>,
}

impl Service {
    async fn run(&self) -> mazurka::Result<()> {
        lock!(&self.lock => {})?;
        lock!(&self.locks[0] => {})?;
        for lock in &self.locks {
            lock!(try lock => {})?;
        }
        Ok(())
    }
}

// A variable may be called `read` or `write` (reserved keywords of `lock!` only before a target).
async fn variables_named_like_keywords(
    read: &DistributedLock,
    write: DistributedLock,
) -> mazurka::Result<()> {
    lock!(read => {})?;
    lock!(write.clone() => {})?;
    lock!(try write => {})?;
    Ok(())
}

fn main() {
    let _ = (
        by_reference,
        borrowed_local,
        by_value,
        Service::run,
        variables_named_like_keywords,
    );
}
