use mazurka::{lock, Session};

async fn demo(session: &Session) -> mazurka::Result<Option<()>> {
    lock!(session, "/locks/a", timeout = 500 => {})
}

fn main() {}
