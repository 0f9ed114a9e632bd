use mazurka::{lock, Session};

async fn demo(session: &Session) -> mazurka::Result<u32> {
    lock!(session, "/locks/a" => { 1 } else { 0 })
}

fn main() {}
