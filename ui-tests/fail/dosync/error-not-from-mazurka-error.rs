use mazurka::{dosync, Ref};

#[dosync]
async fn bump(counter: &Ref<u64>) -> Result<u64, String> {
    counter.alter(|n| n + 1).await.map_err(|e| e.to_string())
}

fn main() {
    let _ = bump;
}
