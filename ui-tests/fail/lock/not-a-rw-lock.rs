// `read`/`write` need a read-write lock, and an exclusive `lock!` needs an exclusive lock.
use mazurka::{lock, DistributedLock, DistributedRwLock, Session};

async fn read_on_an_exclusive_lock(lock: &DistributedLock) -> mazurka::Result<()> {
    lock!(read lock => {})
}

async fn exclusive_on_a_read_write_lock(rw: &DistributedRwLock) -> mazurka::Result<()> {
    lock!(rw => {})
}

async fn write_on_a_session(session: &Session) -> mazurka::Result<()> {
    lock!(write session => {})
}

async fn path_of_the_wrong_type(session: &Session) -> mazurka::Result<()> {
    lock!(read session, 42 => {})
}

fn main() {}
