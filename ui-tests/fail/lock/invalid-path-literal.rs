use mazurka::{lock, Session};

async fn relative(session: &Session) -> mazurka::Result<()> {
    lock!(session, "locks/a" => {})
}

async fn trailing_slash(session: &Session) -> mazurka::Result<()> {
    lock!(try session, "/locks/a/" => {} else {})
}

async fn empty_segment(session: &Session) -> mazurka::Result<()> {
    lock!(session, "/locks//a" => {})
}

async fn reserved(session: &Session) -> mazurka::Result<()> {
    lock!(session, "/zookeeper/locks" => {})
}

async fn root(session: &Session) -> mazurka::Result<()> {
    lock!(session, "/" => {})
}

fn main() {}
