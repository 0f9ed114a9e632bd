use mazurka::{dosync, Ref};

#[dosync]
async fn bump(counter: &Ref<u64>) {
    let _ = counter.alter(|n| n + 1).await;
}

fn main() {
    let _ = bump;
}
