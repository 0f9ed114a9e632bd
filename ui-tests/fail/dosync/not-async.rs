use mazurka::{dosync, Ref};

#[dosync]
fn bump(counter: &Ref<u64>) -> mazurka::Result<u64> {
    counter.alter(|n| n + 1).await
}

async fn caller(counter: &Ref<u64>) -> mazurka::Result<u64> {
    // Expanded as the `async fn` it must be: no further errors here or in the body.
    bump(counter).await
}

fn main() {
    let _ = caller;
}
