use mazurka::{dosync, Ref};

#[dosync]
async fn bump(counter: &Ref<u64>) -> u64 {
    counter.alter(|n| n + 1).await.unwrap_or_default()
}

#[dosync]
async fn maybe(counter: &Ref<u64>) -> Option<u64> {
    counter.get().await.ok()
}

fn main() {
    let _ = (bump, maybe);
}
