use mazurka::{dosync, Ref};

#[dosync]
async fn bump(counter: &Ref<u64>, seen: &mut Vec<u64>) -> mazurka::Result<()> {
    seen.push(counter.alter(|n| n + 1).await?);
    Ok(())
}

fn main() {
    let _ = bump;
}
