// The future of a `#[dosync]` fn is `Send` when its arguments are, so it can be spawned.
#![deny(warnings)]

use mazurka::{dosync, Ref};

#[dosync]
async fn bump(counter: Ref<u64>, by: u64, label: String) -> mazurka::Result<String> {
    let n = counter.alter(|n| n + by).await?;
    Ok(format!("{label}: {n}"))
}

fn assert_send<T: Send + 'static>(_: T) {}

fn spawnable(counter: Ref<u64>) {
    assert_send(bump(counter, 1, "c".to_owned()));
}

fn main() {
    let _ = spawnable;
}
