use mazurka::{dosync, Ref};

#[dosync(retries = 3)]
async fn a(counter: &Ref<u64>) -> mazurka::Result<u64> {
    counter.get().await
}

#[dosync(retry_limt = 3)]
async fn b(counter: &Ref<u64>) -> mazurka::Result<u64> {
    counter.get().await
}

#[dosync(timeout)]
async fn c(counter: &Ref<u64>) -> mazurka::Result<u64> {
    counter.get().await
}

fn main() {
    let _ = (a, b, c);
}
