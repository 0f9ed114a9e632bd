use mazurka::{lock, Session};

// Both blocks give the value of the `lock!`: they must have the same type.
async fn demo(session: &Session) -> mazurka::Result<u32> {
    lock!(try session, "/locks/a" => { 1 } else { "busy" })
}

fn main() {}
