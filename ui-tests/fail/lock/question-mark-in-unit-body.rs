use mazurka::{lock, Session};

async fn load() -> Result<u32, std::io::Error> {
    Ok(1)
}

// `?` leaves the block, not the function: the block's value must be a `Result`.
async fn demo(session: &Session) -> Result<(), Box<dyn std::error::Error>> {
    lock!(session, "/locks/a" => {
        let n = load().await?;
        println!("{n}");
    })?;
    Ok(())
}

fn main() {}
