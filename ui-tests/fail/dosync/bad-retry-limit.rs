use mazurka::{dosync, Ref};

#[dosync(retry_limit = 1, retry_limit = 2)]
async fn twice(counter: &Ref<u64>) -> mazurka::Result<u64> {
    counter.get().await
}

#[dosync(retry_limit = 0)]
async fn zero(counter: &Ref<u64>) -> mazurka::Result<u64> {
    counter.get().await
}

const LIMIT: usize = 5;

#[dosync(retry_limit = LIMIT)]
async fn not_u32(counter: &Ref<u64>) -> mazurka::Result<u64> {
    counter.get().await
}

fn main() {
    let _ = (twice, zero, not_u32);
}
