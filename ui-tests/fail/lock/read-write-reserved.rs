use mazurka::{lock, Session};

async fn read(session: &Session) -> mazurka::Result<()> {
    lock!(read session, "/locks/rw" => {})
}

async fn try_write(session: &Session) -> mazurka::Result<()> {
    lock!(try write session, "/locks/rw" => {} else {})
}

fn main() {}
