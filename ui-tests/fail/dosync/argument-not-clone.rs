use mazurka::{dosync, Ref};

pub struct Ticket {
    pub id: u64,
}

#[dosync]
async fn record(counter: &Ref<u64>, ticket: Ticket) -> mazurka::Result<u64> {
    counter.alter(|n| n + ticket.id).await
}

#[dosync]
async fn generic<T: Into<u64>>(counter: &Ref<u64>, by: T) -> mazurka::Result<u64> {
    let by = by.into();
    counter.alter(|n| n + by).await
}

fn main() {
    let _ = (record, generic::<u8>);
}
