use std::time::Duration;

use mazurka::{lock, Session};

async fn demo(session: &Session) -> mazurka::Result<u32> {
    lock!(try session, "/locks/a", timeout = Duration::from_secs(1) => { 1 } else { 0 })
}

fn main() {}
