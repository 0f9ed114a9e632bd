use mazurka::{lock, DistributedLock, Session};

async fn session_and_path(session: &Session) -> mazurka::Result<u32> {
    // The error is reported once; the code around the macro still type-checks.
    let n: u32 = lock!(session, "/locks/a" { 1 })?;
    Ok(n)
}

async fn lock_value(lock: &DistributedLock) -> mazurka::Result<()> {
    lock!(lock { println!("hi") })?;
    Ok(())
}

async fn no_block_at_all(session: &Session) -> mazurka::Result<()> {
    lock!(session, "/locks/a")
}

async fn missing_comma(session: &Session) -> mazurka::Result<()> {
    lock!(session "/locks/a" => {})
}

fn main() {}
