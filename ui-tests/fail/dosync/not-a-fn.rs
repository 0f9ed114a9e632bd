use mazurka::{dosync, Ref};

#[dosync]
pub struct Transfer {
    pub from: Ref<u64>,
}

pub trait Bump {
    #[dosync]
    async fn bump(&self) -> mazurka::Result<u64>;
}

fn main() {
    let _ = |t: Transfer| t.from;
}
