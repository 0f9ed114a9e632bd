use mazurka::{dosync, Ref};

pub struct Counter {
    pub value: Ref<u64>,
    pub bumps: u64,
}

impl Counter {
    #[dosync]
    pub async fn bump_mut(&mut self) -> mazurka::Result<u64> {
        self.bumps += 1;
        self.value.alter(|n| n + 1).await
    }

    #[dosync]
    pub async fn bump_owned(self) -> mazurka::Result<u64> {
        self.value.alter(|n| n + 1).await
    }

    #[dosync]
    pub async fn bump_arc(self: std::sync::Arc<Self>) -> mazurka::Result<u64> {
        self.value.alter(|n| n + 1).await
    }
}

fn main() {
    let _ = (Counter::bump_mut, Counter::bump_owned, Counter::bump_arc);
}
