use mazurka::{lock, Session};

async fn work() -> u32 {
    1
}

async fn expression_body(session: &Session) -> mazurka::Result<u32> {
    lock!(session, "/locks/a" => work().await)
}

async fn missing_body(session: &Session) -> mazurka::Result<u32> {
    lock!(session, "/locks/a" =>)
}

async fn else_not_a_block(session: &Session) -> mazurka::Result<u32> {
    lock!(try session, "/locks/a" => { 1 } else 0)
}

fn main() {}
