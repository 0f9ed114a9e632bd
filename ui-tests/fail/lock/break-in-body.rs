use mazurka::{lock, Session};

// The block is an `async` block: `break` and `continue` cannot reach a loop outside it.
async fn demo(session: &Session) -> mazurka::Result<()> {
    for i in 0..3 {
        lock!(session, "/locks/a" => {
            if i == 1 {
                break;
            }
        })?;
    }
    Ok(())
}

fn main() {}
