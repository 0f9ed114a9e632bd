use mazurka::{dosync, Ref};

#[dosync]
async fn read(counter: &Ref<u64>) -> mazurka::Result<impl std::fmt::Display> {
    counter.get().await
}

fn main() {
    let _ = read;
}
