use mazurka::{lock, Session};

async fn demo(session: &Session) -> mazurka::Result<u32> {
    lock!(session, "/locks/a", foo = 1 => { 1 })
}

async fn misspelled(session: &Session) -> mazurka::Result<Option<u32>> {
    lock!(session, "/locks/a", timout = std::time::Duration::from_secs(1) => { 1 })
}

// The unknown option's value is still checked, and `retries` does not become "unused".
async fn unknown_with_timeout(
    session: &Session,
    patience: std::time::Duration,
    retries: u32,
) -> mazurka::Result<()> {
    lock!(session, "/locks/a", timeout = patience, retries = retries => {} else {})
}

fn main() {}
