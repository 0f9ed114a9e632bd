use std::time::Duration;

use mazurka::{lock, Session};

async fn forgot_the_option_name(session: &Session) -> mazurka::Result<u32> {
    lock!(session, "/locks/a", Duration::from_secs(1) => { 1 })
}

fn main() {}
