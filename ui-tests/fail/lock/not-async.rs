use mazurka::{lock, Session};

fn not_async(session: &Session) -> mazurka::Result<u32> {
    lock!(session, "/locks/a" => { 1 })
}

fn main() {}
