use std::time::Duration;

use mazurka::{lock, Session};

async fn demo(session: &Session) -> mazurka::Result<u32> {
    lock!(session, "/locks/a", timeout = Duration::from_secs(1), timeout = Duration::from_secs(2) => {
        1
    } else {
        0
    })
}

fn main() {}
