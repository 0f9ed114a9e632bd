use std::sync::Arc;

use mazurka::{lock, DistributedLock, Session};

async fn session_without_path(session: &Session) -> mazurka::Result<()> {
    lock!(session => {})
}

async fn a_path_variable(path: &str) -> mazurka::Result<()> {
    lock!(path => {})
}

async fn behind_an_arc(lock: Arc<DistributedLock>) -> mazurka::Result<()> {
    lock!(&lock => {})
}

async fn session_by_value(session: Session) -> mazurka::Result<()> {
    lock!(session, "/locks/a" => {})
}

async fn path_of_the_wrong_type(session: &Session) -> mazurka::Result<()> {
    lock!(session, 42 => {})
}

fn main() {}
