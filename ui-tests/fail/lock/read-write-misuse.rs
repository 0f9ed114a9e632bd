// Misused `read`/`write` keywords: both, twice, `else` without `try`, a path without a session.
use mazurka::{lock, DistributedRwLock, Session};

async fn both(rw: &DistributedRwLock) -> mazurka::Result<()> {
    lock!(read write rw => {})
}

async fn twice(session: &Session) -> mazurka::Result<()> {
    lock!(try write write session, "/locks/rw" => {} else {})
}

async fn else_without_try(session: &Session) -> mazurka::Result<u32> {
    lock!(read session, "/locks/rw" => { 1 } else { 0 })
}

async fn path_alone() -> mazurka::Result<()> {
    lock!(write "/locks/rw" => {})
}

async fn bad_path(session: &Session) -> mazurka::Result<()> {
    lock!(read session, "locks/rw" => {})
}

fn main() {}
