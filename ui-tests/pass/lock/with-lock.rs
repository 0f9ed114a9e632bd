// with-lock on a session and a path: every kind of path expression, the block's value, and a
// block that borrows, mutates and moves variables of the enclosing function.
#![deny(warnings)]

use mazurka::{lock, Session};

async fn literal(session: &Session) -> mazurka::Result<u32> {
    let n: u32 = lock!(session, "/locks/ledger" => { 40 + 2 })?;
    Ok(n)
}

async fn unit(session: Session) -> mazurka::Result<()> {
    lock!(&session, "/locks/ledger" => {
        println!("in the critical section");
    })
}

async fn computed_paths(session: &Session, id: u64, name: &str) -> mazurka::Result<()> {
    let owned: String = format!("/locks/jobs/{id}");
    lock!(session, format!("/locks/jobs/{id}") => {})?;
    lock!(session, &*owned => {})?;
    lock!(session, owned.as_str() => {})?;
    lock!(session, owned => {})?;
    lock!(session, name => {})?;
    Ok(())
}

async fn borrows_and_moves(session: &Session) -> mazurka::Result<Vec<u32>> {
    let mut seen = Vec::new();
    let label = String::from("moved in");
    let count = lock!(session, "/locks/a" => {
        seen.push(1); // a mutable borrow of a local
        drop(label); // a move
        seen.len()
    })?;
    seen.push(count as u32);
    Ok(seen)
}

async fn nested(session: &Session) -> mazurka::Result<u32> {
    // The inner lock! is a `Result` inside the outer block: `?` there leaves the outer block.
    let inner: mazurka::Result<u32> = lock!(session, "/locks/outer" => {
        let n = lock!(session, "/locks/inner" => { 1 })?;
        Ok(n + 1)
    })?;
    inner
}

async fn awaits_inside(session: &Session) -> mazurka::Result<()> {
    lock!(session, "/locks/sleepy" => {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    })
}

fn main() {
    // Compile only: nothing here connects to a server.
    let _ = (
        literal,
        unit,
        computed_paths,
        borrows_and_moves,
        nested,
        awaits_inside,
    );
}
